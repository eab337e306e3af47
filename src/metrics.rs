//! A small HTTP endpoint serving Prometheus' text format, shared by the
//! broker and the logger, and a writer for that format.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Renders the metrics text on demand.
pub type Source = Arc<dyn Fn() -> String + Send + Sync>;

/// Prometheus' text exposition format, written metric by metric.
pub(crate) struct PromText(String);

impl PromText {
    pub(crate) fn with_capacity(n: usize) -> PromText {
        PromText(String::with_capacity(n))
    }

    pub(crate) fn finish(self) -> String {
        self.0
    }

    pub(crate) fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
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

    pub(crate) fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.metric(name, "counter", help, &[("", value)]);
    }

    /// `zring_backend_info{backend="..."} 1`: which kernel interface the
    /// reactors run on.
    pub(crate) fn backend(&mut self, backend: &str) {
        let label = format!("backend=\"{backend}\"");
        self.metric(
            "zring_backend_info",
            "gauge",
            "The kernel interface the reactors run on (io_uring or epoll); always 1.",
            &[(&label, 1)],
        );
        let label = format!(
            "version=\"{}\",commit=\"{}\",backend=\"{backend}\"",
            env!("CARGO_PKG_VERSION"),
            env!("ZRING_COMMIT")
        );
        self.metric(
            "zring_build_info",
            "gauge",
            "The version and commit (build.rs) of this binary, and its backend; always 1.",
            &[(&label, 1)],
        );
    }
}

/// A running metrics endpoint; dropping it stops it.
pub struct MetricsServer {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A metrics address bound but not yet served: a daemon binds it with its
/// other listeners, before anything runs, so a bad or busy address stops
/// the start instead of surfacing after "running".
pub struct MetricsListener {
    listener: TcpListener,
    addr: std::net::SocketAddr,
}

impl MetricsListener {
    /// Binds `listen` (`HOST:PORT`).
    pub fn bind(listen: &str) -> std::io::Result<MetricsListener> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        Ok(MetricsListener { listener, addr })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Serves `source` at `http://ADDR/metrics` (any path answers) on a
    /// thread of its own.
    pub fn serve(self, source: Source) -> std::io::Result<MetricsServer> {
        let MetricsListener { listener, addr } = self;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("zring-metrics".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if flag.load(Ordering::Relaxed) {
                                break; // Drop's wake-up call
                            }
                            if let Err(e) = answer(stream, &source) {
                                tracing::debug!("metrics request failed: {e}");
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            // Sleeps until a scrape arrives; Drop connects to
                            // wake it. The timeout bounds the stop if that
                            // connection cannot be made.
                            crate::sys::wait_readable(listener.as_raw_fd(), 1000);
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
}

impl MetricsServer {
    /// Binds and serves `source` at `http://LISTEN/metrics`; `listen` is
    /// `HOST:PORT`.
    pub fn start(listen: &str, source: Source) -> std::io::Result<MetricsServer> {
        MetricsListener::bind(listen)?.serve(source)
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop at once: a connection it takes, sees the
        // flag, and drops. A wildcard address is reached on loopback.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = std::net::TcpStream::connect_timeout(&wake, Duration::from_millis(200));
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

    #[test]
    fn an_idle_server_sleeps_and_stops_at_once() {
        let server = MetricsServer::start("0.0.0.0:0", Arc::new(|| "x 1\n".to_owned())).unwrap();
        // Idle, its thread sleeps in poll instead of ticking (it used to
        // wake every 50 ms): once asleep, its context switches stay put.
        std::thread::sleep(Duration::from_millis(100));
        let switches = || {
            let tasks = std::fs::read_dir("/proc/self/task").unwrap();
            tasks
                .filter_map(|t| {
                    let dir = t.ok()?.path();
                    let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
                    (comm.trim() == "zring-metrics").then(|| {
                        let status = std::fs::read_to_string(dir.join("status")).unwrap();
                        status
                            .lines()
                            .find(|l| l.starts_with("voluntary_ctxt_switches:"))
                            .and_then(|l| l.split_whitespace().nth(1))
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap()
                    })
                })
                .sum::<u64>()
        };
        let before = switches();
        std::thread::sleep(Duration::from_millis(400));
        let woke = switches() - before;
        assert!(
            woke <= 2,
            "the idle metrics thread woke {woke} times in 400 ms"
        );
        // A wildcard listener is woken on loopback: the stop does not wait
        // for the poll timeout.
        let started = std::time::Instant::now();
        drop(server);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
}
