//! `zring bench`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use zring::bench::{self, PubSubConfig, PushConfig, Report, SinkConfig};

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    pub(crate) what: What,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum What {
    /// Publishers (XPUB, as Zeek's nodes) and subscribers (XSUB) through a
    /// broker: throughput, loss and latency, and the broker's cost.
    ///
    /// Every message carries its publisher, topic and number: each
    /// subscriber reports gaps, duplicates and reordering (with blocking
    /// sends all must be zero). With --broker-pid the broker's CPU time and
    /// peak RSS over the run are reported beside the generator's own.
    Pubsub(PubSubArgs),
    /// Fixed-rate one-way latency through a broker (or, with --direct,
    /// without one: the generator's own floor), in an HDR histogram of
    /// intended-send-time latencies (corrected for coordinated omission).
    Latency(LatencyArgs),
    /// PUSH senders into a PULL peer (a Zeek logger, zring logger, or a
    /// sink), or, with --sink, a PULL sink that counts and checks.
    Pushpull(PushPullArgs),
}

/// Options every benchmark takes.
#[derive(Debug, clap::Args)]
pub(crate) struct Common {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write the latency histogram here, in HdrHistogram's interval log
    /// format (values in nanoseconds).
    #[arg(long, value_name = "FILE")]
    pub(crate) hdr_out: Option<PathBuf>,
    /// How long to wait for the peers to connect, and for the last
    /// messages once sending ended.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = seconds)]
    pub(crate) timeout: f64,
    /// The broker's (or peer's) process: its CPU time and peak RSS over
    /// the run are reported.
    #[arg(long, value_name = "PID")]
    pub(crate) broker_pid: Option<u32>,
}

/// Where the broker is, under Zeek's option names and defaults.
#[derive(Debug, clap::Args)]
pub(crate) struct Endpoints {
    /// Where publishers (XPUB) connect: the broker's XSUB side.
    #[arg(long, value_name = "ENDPOINT", default_value = "tcp://127.0.0.1:5556")]
    pub(crate) connect_xpub_endpoint: String,
    /// Where subscribers (XSUB) connect: the broker's XPUB side.
    #[arg(long, value_name = "ENDPOINT", default_value = "tcp://127.0.0.1:5555")]
    pub(crate) connect_xsub_endpoint: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct PubSubArgs {
    #[command(flatten)]
    pub(crate) endpoints: Endpoints,
    /// Publishing nodes, one connection and thread each.
    #[arg(long, short = 'P', default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) publishers: u32,
    /// Subscribing nodes, one connection and thread each.
    #[arg(long, short = 'S', default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) subscribers: u32,
    /// Bytes of each message's last frame (the payload).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=(64 << 20)))]
    pub(crate) size: u32,
    /// Frames per message: topic, header, then Zeek-like frames and the
    /// payload (Zeek's events have 4).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=64))]
    pub(crate) frames: u32,
    /// Topics the publishers cycle through. 1: every subscriber gets every
    /// message; more: each subscriber subscribes to its share (then at
    /// least --subscribers). At most 100000, and --publishers × --topics
    /// at most a million: each subscriber checks every such stream.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) topics: u32,
    /// Prefixes each subscriber and idle node subscribes to: its topics,
    /// then prefixes nothing is published on (Zeek's nodes hold about
    /// five each).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) subscriptions_per_subscriber: u32,
    /// Messages per publisher.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "duration")]
    pub(crate) messages: Option<u64>,
    /// Publish for this long instead of a number of messages.
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    pub(crate) duration: Option<f64>,
    /// Messages per second over all publishers; 0: as fast as the broker
    /// takes them (blocking sends, so nothing is dropped by the generator).
    #[arg(long, default_value_t = 0)]
    pub(crate) rate: u64,
    /// Extra idle nodes, an XPUB and an XSUB each, with their own
    /// subscriptions: how the broker's cost grows with the cluster.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub(crate) connections: u32,
    #[command(flatten)]
    pub(crate) common: Common,
}

#[derive(Debug, clap::Args)]
pub(crate) struct LatencyArgs {
    #[command(flatten)]
    pub(crate) endpoints: Endpoints,
    /// Messages per second; a comma-separated list sweeps them.
    #[arg(long, value_delimiter = ',', default_value = "10000", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) rate: Vec<u64>,
    /// How long each rate runs.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = seconds)]
    pub(crate) duration: f64,
    /// Bytes of each message's payload.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=(64 << 20)))]
    pub(crate) size: u32,
    /// Frames per message.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=64))]
    pub(crate) frames: u32,
    /// No broker: the subscriber connects to the publisher, on loopback.
    /// What a broker adds is its latency less this.
    #[arg(long)]
    pub(crate) direct: bool,
    #[command(flatten)]
    pub(crate) common: Common,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("role").required(true).args(["connect", "sink"])))]
pub(crate) struct PushPullArgs {
    /// PUSH to the PULL peer at this endpoint.
    #[arg(long, value_name = "ENDPOINT")]
    pub(crate) connect: Option<String>,
    /// Be the PULL sink: bind here, count and check what arrives.
    #[arg(long, value_name = "ENDPOINT")]
    pub(crate) sink: Option<String>,
    /// PUSH connections (threads); for --sink, the connections to wait for.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) senders: u32,
    /// Bytes of each message's payload.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=(64 << 20)))]
    pub(crate) size: u32,
    /// Frames per message.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=64))]
    pub(crate) frames: u32,
    /// Messages per sender (for --sink: in all, then stop; fewer by the
    /// time it is quiet for --timeout count as lost).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "duration")]
    pub(crate) messages: Option<u64>,
    /// Send for this long instead.
    #[arg(long, value_name = "SECONDS", value_parser = seconds, conflicts_with = "sink")]
    pub(crate) duration: Option<f64>,
    /// Replay Zeek log batches recorded in perf/data's format
    /// (perf/data/zeek-8.2-cluster-log-batches.bin: real `log-write`
    /// messages of a Zeek 8.2 cluster) instead of benchmark messages, to
    /// measure anything that takes Zeek's logs.
    #[arg(long, value_name = "FILE", conflicts_with = "sink")]
    pub(crate) zeek_log_batches: Option<PathBuf>,
    /// With --zeek-log-batches: replay only the batches of this log (a
    /// Zeek log path such as conn, dns, http); `all` keeps every one.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "conn",
        requires = "zeek_log_batches"
    )]
    pub(crate) zeek_log_path: String,
    #[command(flatten)]
    pub(crate) common: Common,
}

/// Messages per sender: `--messages`, none with `--duration` (clap keeps
/// the two apart), else a million.
fn messages(messages: Option<u64>, duration: Option<f64>) -> Option<u64> {
    match duration {
        Some(_) => None,
        None => Some(messages.unwrap_or(1_000_000)),
    }
}

/// How long to send when there is no message count.
fn duration(seconds: Option<f64>) -> Duration {
    Duration::from_secs_f64(seconds.unwrap_or(10.0))
}

fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s < 1e7 => Ok(s),
        _ => Err(format!("`{text}` is not a positive number of seconds")),
    }
}

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    let progress = std::io::stderr().is_terminal();
    match args.what {
        What::Pubsub(a) => {
            let config = PubSubConfig {
                connect_xpub_endpoint: a.endpoints.connect_xpub_endpoint,
                connect_xsub_endpoint: a.endpoints.connect_xsub_endpoint,
                direct: None,
                publishers: a.publishers as usize,
                subscribers: a.subscribers as usize,
                size: a.size as usize,
                frames: a.frames as usize,
                topics: a.topics as usize,
                subscriptions_per_subscriber: a.subscriptions_per_subscriber as usize,
                messages: messages(a.messages, a.duration),
                duration: duration(a.duration),
                rate: a.rate,
                connections: a.connections as usize,
                timeout: Duration::from_secs_f64(a.common.timeout),
                broker_pid: a.common.broker_pid,
                progress: progress && !a.common.json,
            };
            let report = bench::pubsub::run(&config)?;
            finish(&[report], &a.common)
        }
        What::Latency(a) => {
            let mut reports = Vec::new();
            for &rate in &a.rate {
                let config = PubSubConfig {
                    connect_xpub_endpoint: a.endpoints.connect_xpub_endpoint.clone(),
                    connect_xsub_endpoint: a.endpoints.connect_xsub_endpoint.clone(),
                    direct: a.direct.then(|| "tcp://127.0.0.1:0".to_owned()),
                    publishers: 1,
                    subscribers: 1,
                    size: a.size as usize,
                    frames: a.frames as usize,
                    topics: 1,
                    subscriptions_per_subscriber: 1,
                    messages: None,
                    duration: Duration::from_secs_f64(a.duration),
                    rate,
                    connections: 0,
                    timeout: Duration::from_secs_f64(a.common.timeout),
                    broker_pid: a.common.broker_pid,
                    progress: false,
                };
                let mut report = bench::pubsub::run(&config)?;
                report.kind = if a.direct {
                    "latency-direct"
                } else {
                    "latency"
                };
                reports.push(report);
            }
            finish(&reports, &a.common)
        }
        What::Pushpull(a) => {
            let report = match (&a.connect, &a.sink) {
                (Some(endpoint), _) => {
                    let recorded = match &a.zeek_log_batches {
                        Some(path) => {
                            let bytes = std::fs::read(path).map_err(|e| {
                                anyhow::anyhow!("--zeek-log-batches {}: {e}", path.display())
                            })?;
                            let all = bench::pushpull::read_recording(&bytes).map_err(|e| {
                                anyhow::anyhow!("--zeek-log-batches {}: {e}", path.display())
                            })?;
                            let wanted = Some(a.zeek_log_path.as_str()).filter(|p| *p != "all");
                            Some(bench::pushpull::only_path(all, wanted).map_err(|e| {
                                anyhow::anyhow!("--zeek-log-batches {}: {e}", path.display())
                            })?)
                        }
                        None => None,
                    };
                    bench::pushpull::push(&PushConfig {
                        connect: endpoint.clone(),
                        senders: a.senders as usize,
                        size: a.size as usize,
                        frames: a.frames as usize,
                        messages: messages(a.messages, a.duration),
                        duration: duration(a.duration),
                        zeek_log_batches: recorded,
                        timeout: Duration::from_secs_f64(a.common.timeout),
                        peer_pid: a.common.broker_pid,
                    })?
                }
                (None, Some(endpoint)) => bench::pushpull::sink(
                    &SinkConfig {
                        bind: endpoint.clone(),
                        messages: a.messages,
                        senders: a.senders as usize,
                        timeout: Duration::from_secs_f64(a.common.timeout),
                    },
                    |bound| eprintln!("zring bench: sink bound to {bound}"),
                )?,
                (None, None) => unreachable!("clap requires --connect or --sink"),
            };
            finish(&[report], &a.common)
        }
    }
}

/// Prints the reports, then writes `--hdr-out` (so that a file that cannot
/// be written does not lose the report); fails (status 1) when any message
/// was lost, repeated or reordered.
fn finish(reports: &[Report], common: &Common) -> anyhow::Result<std::process::ExitCode> {
    if common.json {
        let values: Vec<_> = reports.iter().map(Report::json).collect();
        let out = if values.len() == 1 {
            values.into_iter().next().expect("one")
        } else {
            serde_json::Value::Array(values)
        };
        println!("{out}");
    } else {
        for report in reports {
            print!("{}", report.table());
            if let Some(why) = report.generator_limited() {
                println!("{:<28} {why}", "warning");
            }
            println!();
        }
    }
    if let Some(path) = &common.hdr_out {
        write_hdr_logs(reports, path)
            .map_err(|e| anyhow::anyhow!("--hdr-out {}: {e}", path.display()))?;
    }
    // Saturating: a hostile sequence number makes a gap of up to 2^64.
    let faults: u64 = reports
        .iter()
        .flat_map(|r| [r.lost, r.counts.duplicates, r.counts.reordered])
        .fold(0, u64::saturating_add);
    if faults > 0 {
        anyhow::bail!(
            "{faults} message(s) lost, repeated or reordered (with blocking sends there must be none)"
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Every report's histogram, one after another, into the file at `path`.
fn write_hdr_logs(reports: &[Report], path: &std::path::Path) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    for report in reports {
        report.write_hdr_log(&mut file)?;
    }
    Ok(())
}
