//! What a benchmark run found: a table for people, JSON for scripts, and
//! the latency histogram in HdrHistogram's log format for its plotters.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::sequence::SequenceCounts;

/// One run's figures.
#[derive(Debug, Clone)]
pub struct Report {
    /// `pubsub`, `direct`, `latency`, `push` or `sink`.
    pub kind: &'static str,
    /// Messages the generator sent.
    pub sent: u64,
    /// Deliveries expected (each message once per matching subscriber).
    pub expected: u64,
    /// What the receivers saw.
    pub counts: SequenceCounts,
    /// Expected deliveries that never came.
    pub lost: u64,
    /// From the first send to the last delivery.
    pub elapsed: Duration,
    /// From the start of the measured phase to its end (CPU figures are
    /// over this).
    pub wall: Duration,
    /// The generator's own CPU time (this process, all threads).
    pub generator_cpu_s: f64,
    /// The generator's busy threads (publishers and subscribers).
    pub generator_threads: usize,
    /// The broker's CPU time over the run (`--broker-pid`).
    pub broker_cpu_s: Option<f64>,
    /// The broker's highest resident memory seen (`--broker-pid`).
    pub broker_peak_rss_bytes: Option<u64>,
    /// Encoded bytes of one message.
    pub bytes_per_message: usize,
    /// One-way latency in nanoseconds, per delivered message.
    pub histogram: Histogram<u64>,
    /// The fixed rate asked for (0: as fast as possible).
    pub rate: u64,
    /// Subscriptions the broker never forwarded to a publisher (the most
    /// any publisher missed): a broker that drops them under a burst.
    pub subscriptions_missing: usize,
}

impl Report {
    /// Deliveries per second.
    pub fn delivered_per_s(&self) -> f64 {
        self.counts.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn per_million(&self, cpu_s: f64) -> f64 {
        cpu_s * 1e6 / (self.counts.delivered.max(1) as f64)
    }

    /// The generator's CPU seconds per million deliveries.
    pub fn generator_cpu_s_per_million(&self) -> f64 {
        self.per_million(self.generator_cpu_s)
    }

    /// The broker's CPU seconds per million deliveries.
    pub fn broker_cpu_s_per_million(&self) -> Option<f64> {
        self.broker_cpu_s.map(|c| self.per_million(c))
    }

    /// A latency percentile in microseconds.
    pub fn percentile_us(&self, q: f64) -> f64 {
        self.histogram.value_at_quantile(q) as f64 / 1000.0
    }

    /// Why these figures may say more about the generator than the broker,
    /// if they may.
    pub fn generator_limited(&self) -> Option<String> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let busy = self.generator_cpu_s / self.wall.as_secs_f64().max(1e-9);
        let threads = (self.generator_threads as f64).min(cores);
        if self.rate == 0 && busy >= 0.9 * threads {
            return Some(format!(
                "the generator kept {busy:.1} cores busy ({} threads): it, not the broker, may \
                 have set the rate; give it more cores or fewer threads",
                self.generator_threads
            ));
        }
        match self.broker_cpu_s_per_million() {
            // At a fixed rate both costs are mostly waiting; only a run at
            // full speed compares them.
            Some(broker) if self.rate == 0 && self.generator_cpu_s_per_million() > broker => {
                Some(format!(
                "the generator cost more CPU per message ({:.3} s/M) than the broker ({broker:.3} \
                 s/M): on a machine where they share cores, the broker's rate is understated",
                self.generator_cpu_s_per_million()
            ))
            }
            _ => None,
        }
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, k: &str, v: String| {
            out.push_str(&format!("{k:<28} {v}\n"));
        };
        line(&mut out, "run", self.kind.to_owned());
        line(
            &mut out,
            "delivered",
            format!(
                "{} of {} expected ({} sent)",
                self.counts.delivered, self.expected, self.sent
            ),
        );
        line(
            &mut out,
            "lost / reordered / dup",
            format!(
                "{} / {} / {}",
                self.lost, self.counts.reordered, self.counts.duplicates
            ),
        );
        line(
            &mut out,
            "rate",
            format!(
                "{:.0} msg/s, {:.1} MB/s over {:.2} s",
                self.delivered_per_s(),
                self.delivered_per_s() * self.bytes_per_message as f64 / 1e6,
                self.elapsed.as_secs_f64()
            ),
        );
        if !self.histogram.is_empty() {
            line(
                &mut out,
                "latency µs p50/p90/p99",
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    self.percentile_us(0.5),
                    self.percentile_us(0.9),
                    self.percentile_us(0.99)
                ),
            );
            line(
                &mut out,
                "latency µs p99.9/99.99/max",
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    self.percentile_us(0.999),
                    self.percentile_us(0.9999),
                    self.histogram.max() as f64 / 1000.0
                ),
            );
        }
        line(
            &mut out,
            "generator CPU",
            format!(
                "{:.3} s per M delivered ({:.2} s)",
                self.generator_cpu_s_per_million(),
                self.generator_cpu_s
            ),
        );
        if let Some(b) = self.broker_cpu_s_per_million() {
            line(
                &mut out,
                "broker CPU",
                format!(
                    "{b:.3} s per M delivered ({:.2} s)",
                    self.broker_cpu_s.unwrap_or(0.0)
                ),
            );
        }
        if self.subscriptions_missing > 0 {
            line(
                &mut out,
                "subscriptions not forwarded",
                format!(
                    "{} (the broker dropped them; the published topics' were forwarded)",
                    self.subscriptions_missing
                ),
            );
        }
        if let Some(rss) = self.broker_peak_rss_bytes {
            line(
                &mut out,
                "broker peak RSS",
                format!("{:.1} MiB", rss as f64 / (1 << 20) as f64),
            );
        }
        out
    }

    /// The JSON object (`--json`).
    pub fn json(&self) -> serde_json::Value {
        let latency = !self.histogram.is_empty();
        let us = |q: f64| latency.then(|| self.percentile_us(q));
        serde_json::json!({
            "kind": self.kind,
            "sent": self.sent,
            "expected": self.expected,
            "delivered": self.counts.delivered,
            "delivered_per_s": self.delivered_per_s(),
            "megabytes_per_s": self.delivered_per_s() * self.bytes_per_message as f64 / 1e6,
            "lost": self.lost,
            "reordered": self.counts.reordered,
            "duplicates": self.counts.duplicates,
            "foreign": self.counts.foreign,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "rate": self.rate,
            "generator_cpu_s": self.generator_cpu_s,
            "generator_cpu_s_per_million": self.generator_cpu_s_per_million(),
            "broker_cpu_s": self.broker_cpu_s,
            "broker_cpu_s_per_million": self.broker_cpu_s_per_million(),
            "broker_peak_rss_bytes": self.broker_peak_rss_bytes,
            "p50_us": us(0.5),
            "p90_us": us(0.9),
            "p99_us": us(0.99),
            "p999_us": us(0.999),
            "p9999_us": us(0.9999),
            "max_us": latency.then(|| self.histogram.max() as f64 / 1000.0),
            "generator_limited": self.generator_limited(),
            "subscriptions_missing": self.subscriptions_missing,
        })
    }

    /// Writes the histogram as an HdrHistogram interval log (one interval,
    /// the whole run; values in nanoseconds), which HdrHistogram's
    /// plotters and `HistogramLogProcessor` read.
    pub fn write_hdr_log(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
        use hdrhistogram::serialization::V2DeflateSerializer;

        let mut serializer = V2DeflateSerializer::new();
        let now = std::time::SystemTime::now();
        let mut writer = IntervalLogWriterBuilder::new()
            .with_base_time(now)
            .with_start_time(now)
            .with_max_value_divisor(1000.0)
            .begin_log_with(out, &mut serializer)
            .map_err(std::io::Error::other)?;
        writer
            .write_comment(&format!("zring bench {}: latency in ns", self.kind))
            .map_err(std::io::Error::other)?;
        writer
            .write_histogram(&self.histogram, Duration::ZERO, self.elapsed, None)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        Ok(())
    }
}
