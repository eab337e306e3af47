//! `zring logger`: a Zeek logger node. A PULL socket receives the
//! `log-write` messages Zeek's nodes push (contract §3.3), `batch` decodes
//! their `zeek-bin-serializer` payload (§4), and the writer turns the
//! records into Zeek's ASCII or JSON logs (`files`, `ascii`, `json`).
//!
//! The reactors receive; one writer thread owns the socket and the files.
//! Batches cross through the socket's onloop queue with NODROP, so a slow
//! disk makes the logger stop reading and TCP pushes back on the nodes,
//! whose PUSH queues fill: nothing is lost in the logger. Each batch is
//! decoded and formatted whole before one write, so a bad batch costs only
//! itself and no record is ever written half.

pub mod ascii;
pub mod batch;
pub mod config;
pub mod files;
pub mod format;
pub mod json;
pub mod naming;
pub mod numbers;
pub mod stats;
#[cfg(test)]
mod test_support;
pub mod value;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use zmtp_codec::Message;

pub use self::batch::{Batch, BatchError, ElementsIter, Place, Records, SERIALIZER_NAME};
pub use self::config::{LogFormatKind, LoggerConfig};
use self::files::{LogFiles, WriteError};
pub use self::stats::LoggerStats;
pub use self::value::{Elements, Field, Header, Proto, TypeTag, Value};
use crate::metrics::Source;
use crate::{Context, Error, Security, Socket, SocketKind, Wait};

/// Why the logger could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoggerError {
    /// A setting that cannot work.
    #[error("{0}")]
    Config(String),
    /// The log directory cannot be used.
    #[error("log directory {dir}: {source}")]
    Dir {
        /// The directory.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// The socket could not start or bind.
    #[error(transparent)]
    Socket(#[from] Error),
}

/// A running logger; `shutdown` stops it cleanly.
pub struct Logger {
    endpoint: String,
    stats: Arc<Mutex<LoggerStats>>,
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
}

impl Logger {
    /// Binds the PULL socket and starts writing into `config.dir`.
    pub fn start(config: LoggerConfig) -> Result<Logger, LoggerError> {
        Logger::start_with_security(config, Security::Null)
    }

    /// As [`Logger::start`], with the PULL socket's connections run with
    /// `security` (Zeek 8.2's encrypted clusters: a CURVE server admitting
    /// the cluster's client key).
    pub fn start_with_security(
        config: LoggerConfig,
        security: Security,
    ) -> Result<Logger, LoggerError> {
        config.validate().map_err(LoggerError::Config)?;
        let security = security.with_address_lists(&config.addresses);
        let dir_error = |source| LoggerError::Dir {
            dir: config.dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&config.dir).map_err(dir_error)?;
        probe_writable(&config.dir).map_err(dir_error)?;

        let ctx = Context::with_config(&config.reactor_config())?;
        let mut pull = ctx.socket(SocketKind::Pull);
        for option in config.socket_options() {
            pull.set(option)?;
        }
        pull.set_security(security)?;
        let endpoint = pull
            .bind(&config.listen)
            .map_err(|e| LoggerError::Config(format!("listen = {:?}: {e}", config.listen)))?;

        let format: Box<dyn format::LogFormat> = match config.format {
            LogFormatKind::Ascii => Box::new(ascii::Ascii),
            LogFormatKind::Json => Box::new(json::Json),
        };
        let files = LogFiles::new(&config.dir, format, config.gzip, config.max_paths);
        let stats = Arc::new(Mutex::new(LoggerStats::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut writer = Writer {
            _ctx: ctx,
            pull,
            files,
            stats: stats.clone(),
            stop: stop.clone(),
            rotate_interval: config.rotate_interval,
            warned: HashSet::new(),
        };
        let writer = std::thread::Builder::new()
            .name("zring-logger".into())
            .spawn(move || writer.run())
            .map_err(|e| LoggerError::Config(format!("cannot start the writer thread: {e}")))?;
        Ok(Logger {
            endpoint,
            stats,
            stop,
            writer: Some(writer),
        })
    }

    /// The endpoint as bound (with the port chosen for `:*`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> LoggerStats {
        lock(&self.stats).clone()
    }

    /// A function that renders the metrics, for a metrics server thread.
    pub fn metrics_source(&self) -> Source {
        let stats = self.stats.clone();
        Arc::new(move || stats::render(&lock(&stats)))
    }

    /// Writes the batches already received, closes every file with its
    /// closing lines, and stops.
    pub fn shutdown(mut self) -> LoggerStats {
        self.stop_and_join();
        self.stats()
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.writer.take() {
            if w.join().is_err() {
                tracing::error!("the logger's writer thread panicked");
            }
        }
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn lock(stats: &Mutex<LoggerStats>) -> std::sync::MutexGuard<'_, LoggerStats> {
    // Counters stay meaningful even if a holder panicked.
    stats.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fails now, with the system's reason, if files cannot be created in `dir`.
fn probe_writable(dir: &std::path::Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".zring-logger-probe-{}", std::process::id()));
    std::fs::File::create(&probe)?;
    std::fs::remove_file(&probe)
}

/// Distinct (node, reason) pairs whose first rejection was logged; later
/// ones are only counted.
const MAX_WARNED: usize = 4096;

/// How long a stopping writer keeps taking batches that keep arriving.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

struct Writer {
    // Dropped after the socket (field order): the reactors outlive it.
    pull: Socket,
    _ctx: Context,
    files: LogFiles,
    stats: Arc<Mutex<LoggerStats>>,
    stop: Arc<AtomicBool>,
    rotate_interval: Option<Duration>,
    warned: HashSet<(String, &'static str)>,
}

impl Writer {
    fn run(&mut self) {
        let mut next_rotation = self
            .rotate_interval
            .map(|i| files::next_rotation(SystemTime::now(), i));
        let mut drain_until: Option<Instant> = None;
        loop {
            if drain_until.is_none() && self.stop.load(Ordering::Relaxed) {
                drain_until = Some(Instant::now() + DRAIN_LIMIT);
            }
            let wait = match drain_until {
                Some(_) => Wait::DontWait,
                None => {
                    let until_rotation = next_rotation
                        .and_then(|at| at.duration_since(SystemTime::now()).ok())
                        .unwrap_or(Duration::MAX);
                    Wait::Timeout(until_rotation.min(Duration::from_millis(100)))
                }
            };
            match self.pull.recv(wait) {
                Ok(message) => self.handle(message),
                Err(Error::WouldBlock) if drain_until.is_some() => break,
                Err(Error::WouldBlock | Error::TimedOut) => {}
                Err(e) => {
                    tracing::error!("receiving log batches failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            if drain_until.is_some_and(|d| Instant::now() >= d) {
                tracing::warn!(
                    queued = self.pull.queued(),
                    "stopping with batches still arriving after {DRAIN_LIMIT:?} of draining"
                );
                break;
            }
            if let (Some(at), Some(interval)) = (next_rotation, self.rotate_interval) {
                let now = SystemTime::now();
                if now >= at {
                    for e in self.files.rotate_all(now) {
                        tracing::error!("rotation failed: {e}");
                        lock(&self.stats).write_errors += 1;
                    }
                    next_rotation = Some(files::next_rotation(now, interval));
                }
            }
            self.refresh_gauges();
        }
        let errors = self.files.close_all(SystemTime::now());
        for e in &errors {
            tracing::error!("closing a log file failed: {e}");
        }
        let mut stats = lock(&self.stats);
        stats.write_errors += errors.len() as u64;
        stats.rotations = self.files.rotations();
    }

    fn refresh_gauges(&self) {
        let mut stats = lock(&self.stats);
        stats.socket = self.pull.stats();
        stats.queue_depth = self.pull.queued() as u64;
        stats.rotations = self.files.rotations();
    }

    /// One `log-write` message: frames `log-write`, node id, serializer
    /// name, batch (contract §3.3). Frame 0 is not checked, as in Zeek.
    fn handle(&mut self, message: Message) {
        let node = message
            .frame(1)
            .map(|id| printable(&id))
            .unwrap_or_else(|| "(none)".to_owned());
        if message.frame_count() != 4 {
            let why = format!(
                "a log-write message has 4 frames, this one has {}",
                message.frame_count()
            );
            return self.reject("frame_count", &node, &why);
        }
        let serializer = message.frame(2).expect("4 frames");
        if serializer != batch::SERIALIZER_NAME {
            let why = format!(
                "log serializer `{}` is not `zeek-bin-serializer`",
                printable(&serializer)
            );
            return self.reject("unknown_serializer", &node, &why);
        }
        let parsed = match batch::Batch::parse(message.frame(3).expect("4 frames")) {
            Ok(b) => b,
            Err(e) => return self.reject(e.reason(), &node, &e.to_string()),
        };
        match self.files.write(&parsed, SystemTime::now()) {
            Ok(written) => {
                let mut stats = lock(&self.stats);
                stats.batches += 1;
                stats.records += written.records;
                stats.bytes_written += written.bytes;
                let path = LoggerStats::tally(&mut stats.paths, &parsed.header().path);
                path.batches += 1;
                path.records += written.records;
                path.bytes += written.bytes;
                let from = LoggerStats::tally(&mut stats.nodes, &node);
                from.batches += 1;
                from.records += written.records;
            }
            Err(e @ WriteError::Io { .. }) => {
                tracing::error!(node, "log batch lost: {e}");
                lock(&self.stats).write_errors += 1;
            }
            Err(e) => self.reject(e.reason(), &node, &e.to_string()),
        }
    }

    fn reject(&mut self, reason: &'static str, node: &str, why: &str) {
        lock(&self.stats).reject(reason, node);
        let key = (node.to_owned(), reason);
        if self.warned.len() < MAX_WARNED && self.warned.insert(key) {
            tracing::warn!(
                node,
                reason,
                "log batch rejected: {why} (further `{reason}` rejections from this node are only counted)"
            );
        } else {
            tracing::debug!(node, reason, "log batch rejected: {why}");
        }
    }
}

/// A node id or name for logs and labels: printable ASCII kept, other
/// bytes as `\xNN`, at most 128 bytes of input.
fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().min(128));
    for &b in bytes.iter().take(128) {
        if b.is_ascii_graphic() || b == b' ' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > 128 {
        out.push('…');
    }
    out
}
