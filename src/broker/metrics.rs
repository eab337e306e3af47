//! The broker's counters in Prometheus' text format, and a small HTTP
//! endpoint that serves them.
//!
//! Zeek 8.2's proxy exports eight `zeek_cluster_zeromq_proxy_*` counters
//! (frontend = the XSUB side, backend = the XPUB side; "messages" are
//! frames). They are exported here with the same names and meaning, so
//! dashboards built for Zeek's proxy keep working; zring's own counters
//! follow under `zring_broker_*`.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::BrokerStats;

/// Renders the metrics text on demand.
pub type Source = Arc<dyn Fn() -> String + Send + Sync>;

struct Writer(String);

impl Writer {
    fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(self.0, "{name} {value}");
            } else {
                let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
            }
        }
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.metric(name, "counter", help, &[("", value)]);
    }
}

/// The Prometheus text for a snapshot.
pub fn render(s: &BrokerStats) -> String {
    let b = &s.broker;
    let mut w = Writer(String::with_capacity(8192));
    let zeek = "zeek_cluster_zeromq_proxy";
    for (name, help, value) in [
        (
            "frontend_messages_received_total",
            "Frames received on the XSUB side (published data).",
            b.frontend_frames_in,
        ),
        (
            "frontend_bytes_received_total",
            "Frame body bytes received on the XSUB side.",
            b.frontend_bytes_in,
        ),
        (
            "frontend_messages_sent_total",
            "Frames sent on the XSUB side (forwarded subscriptions, once each).",
            b.frontend_frames_out,
        ),
        (
            "frontend_bytes_sent_total",
            "Frame body bytes sent on the XSUB side.",
            b.frontend_bytes_out,
        ),
        (
            "backend_messages_received_total",
            "Frames received on the XPUB side (subscriptions).",
            b.backend_frames_in,
        ),
        (
            "backend_bytes_received_total",
            "Frame body bytes received on the XPUB side.",
            b.backend_bytes_in,
        ),
        (
            "backend_messages_sent_total",
            "Frames forwarded to the XPUB side (once per message).",
            b.backend_frames_out,
        ),
        (
            "backend_bytes_sent_total",
            "Frame body bytes forwarded to the XPUB side.",
            b.backend_bytes_out,
        ),
    ] {
        w.counter(&format!("{zeek}_{name}"), help, value);
    }
    let z = "zring_broker";
    w.counter(
        &format!("{z}_messages_received_total"),
        "Data messages received from publishers.",
        b.messages_in,
    );
    w.counter(
        &format!("{z}_messages_unmatched_total"),
        "Data messages no subscriber wanted.",
        b.unmatched,
    );
    w.counter(
        &format!("{z}_deliveries_total"),
        "Messages queued for a subscriber (one per message and subscriber).",
        b.deliveries,
    );
    w.counter(
        &format!("{z}_messages_sent_total"),
        "Messages handed to the kernel for subscribers.",
        s.xpub_side.messages_out,
    );
    w.metric(
        &format!("{z}_dropped_total"),
        "counter",
        "Deliveries that did not happen, by policy in effect and reason.",
        &[
            ("reason=\"slow_subscriber\",policy=\"drop\"", b.dropped_slow),
            (
                "reason=\"slow_subscriber\",policy=\"disconnect\"",
                b.dropped_evicted,
            ),
            ("reason=\"subscriber_gone\"", b.dropped_subscriber_gone),
            ("reason=\"publisher_gone\"", b.dropped_publisher_gone),
        ],
    );
    w.counter(
        &format!("{z}_lost_on_disconnect_total"),
        "Messages queued for a subscriber that disconnected before they were sent.",
        b.lost_on_disconnect,
    );
    w.counter(
        &format!("{z}_stalls_total"),
        "Times a publisher waited for a full subscriber.",
        b.stalls,
    );
    w.counter(
        &format!("{z}_stall_seconds_total"),
        "Time publishers spent waiting for full subscribers (whole seconds).",
        b.stall_micros / 1_000_000,
    );
    w.counter(
        &format!("{z}_evictions_total"),
        "Subscribers disconnected for keeping a publisher waiting (policy disconnect).",
        b.evictions,
    );
    w.counter(
        &format!("{z}_subscriptions_received_total"),
        "Subscribe messages from subscribers.",
        b.subscriptions_in,
    );
    w.counter(
        &format!("{z}_cancels_received_total"),
        "Cancel messages from subscribers.",
        b.cancels_in,
    );
    w.counter(
        &format!("{z}_ignored_messages_total"),
        "Data messages subscribers sent (ignored).",
        b.ignored_from_subscribers,
    );
    w.metric(
        &format!("{z}_subscriptions"),
        "gauge",
        "Prefixes held by at least one subscriber.",
        &[("", s.upstream_prefixes)],
    );
    w.metric(
        &format!("{z}_peers"),
        "gauge",
        "Connections past their handshake, by side.",
        &[
            ("side=\"xpub\"", s.subscribers),
            ("side=\"xsub\"", s.publishers),
        ],
    );
    let sides = [("xpub", &s.xpub_side), ("xsub", &s.xsub_side)];
    let per_side = |f: fn(&crate::socket::SocketStats) -> u64| -> Vec<(String, u64)> {
        sides
            .iter()
            .map(|(n, st)| (format!("side=\"{n}\""), f(st)))
            .collect()
    };
    for (name, help, f) in [
        (
            "connections_accepted_total",
            "Connections accepted.",
            (|s| s.connections_accepted) as fn(&crate::socket::SocketStats) -> u64,
        ),
        ("handshakes_total", "ZMTP handshakes completed.", |s| {
            s.handshakes
        }),
        (
            "disconnects_total",
            "Connections closed, for any reason.",
            |s| s.disconnects,
        ),
        (
            "protocol_errors_total",
            "Connections closed for malformed input or a broken limit.",
            |s| s.protocol_errors,
        ),
        (
            "timeouts_total",
            "Connections closed by a handshake or heartbeat timeout.",
            |s| s.timeouts,
        ),
        ("bytes_received_total", "Frame body bytes received.", |s| {
            s.bytes_in
        }),
        ("bytes_sent_total", "Bytes written to peers.", |s| {
            s.bytes_out
        }),
    ] {
        let samples = per_side(f);
        let refs: Vec<(&str, u64)> = samples.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        w.metric(&format!("{z}_{name}"), "counter", help, &refs);
    }
    w.0
}

/// A running metrics endpoint; dropping it stops it.
pub struct MetricsServer {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Serves `source` at `http://LISTEN/metrics` (any path answers) on a
    /// thread of its own; `listen` is `HOST:PORT`.
    pub fn start(listen: &str, source: Source) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("zring-metrics".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if let Err(e) = answer(stream, &source) {
                                tracing::debug!("metrics request failed: {e}");
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Err(e) => {
                            tracing::warn!("metrics endpoint: accept failed: {e}");
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                }
            })?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (bounded, with a timeout) and writes the metrics.
fn answer(mut stream: TcpStream, source: &Source) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let (status, body) = if request.starts_with(b"GET ") || request.starts_with(b"HEAD ") {
        ("200 OK", source())
    } else {
        ("405 Method Not Allowed", "only GET is served\n".to_owned())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !request.starts_with(b"HEAD ") {
        stream.write_all(body.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_zeeks_eight_counters_and_valid_lines() {
        let mut s = BrokerStats::default();
        s.broker.frontend_frames_in = 4;
        s.broker.dropped_slow = 7;
        let text = render(&s);
        for name in [
            "frontend_messages_received_total",
            "frontend_bytes_received_total",
            "frontend_messages_sent_total",
            "frontend_bytes_sent_total",
            "backend_messages_received_total",
            "backend_bytes_received_total",
            "backend_messages_sent_total",
            "backend_bytes_sent_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE zeek_cluster_zeromq_proxy_{name} counter")),
                "{name}"
            );
        }
        assert!(text.contains("zeek_cluster_zeromq_proxy_frontend_messages_received_total 4\n"));
        assert!(text.contains(
            "zring_broker_dropped_total{reason=\"slow_subscriber\",policy=\"drop\"} 7\n"
        ));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').expect("name value");
            assert!(value.parse::<u64>().is_ok(), "{line}");
            assert!(
                name.starts_with("zeek_") || name.starts_with("zring_"),
                "{line}"
            );
        }
    }

    #[test]
    fn serves_over_http() {
        let server = MetricsServer::start("127.0.0.1:0", Arc::new(|| "x 1\n".to_owned())).unwrap();
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nx 1\n"), "{out}");
    }
}
