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
pub mod logfile;
pub mod naming;
pub mod numbers;
pub mod outage;
pub mod postprocess;
pub mod stats;
#[cfg(test)]
mod test_support;
pub mod value;
mod writer;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use self::batch::{Batch, BatchError, ElementsIter, Place, Records, SERIALIZER_NAME};
pub use self::config::{LogFormatKind, LoggerConfig, WriteErrorPolicy};
pub use self::files::Fsync;
use self::files::{FileOptions, LogFiles};
use self::postprocess::Postprocessor;
pub use self::stats::LoggerStats;
pub use self::value::{Elements, Field, Header, Proto, TypeTag, Value};
use self::writer::{Writer, WriterSettings};
use crate::metrics::Source;
use crate::security::{AddressLists, LiveSecurity};
use crate::{Context, Error, Security, SocketKind};

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
    backend: &'static str,
    stats: Arc<Mutex<LoggerStats>>,
    stop: Arc<AtomicBool>,
    reopen: Arc<AtomicBool>,
    security: Arc<LiveSecurity>,
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
        let fd_limit = crate::sys::nofile_limit().map_err(|e| {
            LoggerError::Config(format!("cannot read the file descriptor limit: {e}"))
        })?;
        let max_paths = config
            .max_paths_for(fd_limit)
            .map_err(LoggerError::Config)?;
        if config.max_paths.is_none() && max_paths < config::DEFAULT_MAX_PATHS {
            tracing::warn!(
                max_paths,
                fd_limit,
                "at most {max_paths} log paths can be open under the file descriptor limit \
                 of {fd_limit}; raise it for more"
            );
        }

        let ctx = Context::with_config(&config.reactor_config())?;
        let mut pull = ctx.socket(SocketKind::Pull);
        for option in config.socket_options() {
            pull.set(option)?;
        }
        pull.set_security(security)?;
        let endpoint = pull
            .bind(&config.listen)
            .map_err(|e| LoggerError::Config(format!("listen = {:?}: {e}", config.listen)))?;
        // Only once the endpoint is ours: a start that fails on a taken
        // port leaves nothing on disk.
        let dir_error = |source| LoggerError::Dir {
            dir: config.dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&config.dir).map_err(dir_error)?;
        probe_writable(&config.dir).map_err(dir_error)?;

        let format: Box<dyn format::LogFormat> = match config.format {
            LogFormatKind::Ascii => Box::new(ascii::Ascii),
            LogFormatKind::Json => Box::new(json::Json),
        };
        let options = FileOptions {
            gzip: config.gzip,
            max_paths,
            fsync: config.fsync,
            rotation: config.rotation_layout().map_err(LoggerError::Config)?,
        };
        let mut files = LogFiles::new(&config.dir, format, options);
        let postprocessor = match config.postprocessor_config() {
            Some(post) => Some(Postprocessor::start(post, config.dir.clone()).map_err(|e| {
                LoggerError::Config(format!("cannot start the postprocessor's threads: {e}"))
            })?),
            None => None,
        };
        files.set_postprocess(postprocessor.as_ref().and_then(Postprocessor::queue));
        // Before any batch: what an earlier run left is rotated (and
        // postprocessed) as Zeek rotates leftover logs.
        for e in files.rotate_leftovers(std::time::SystemTime::now()) {
            tracing::error!("cannot rotate a log file an earlier run left: {e}");
        }
        let backend = ctx.backend();
        let stats = Arc::new(Mutex::new(LoggerStats {
            backend,
            ..LoggerStats::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let reopen = Arc::new(AtomicBool::new(false));
        let security = pull.live_security();
        let mut writer = Writer {
            pull,
            _ctx: ctx,
            files,
            stats: stats.clone(),
            stop: stop.clone(),
            reopen: reopen.clone(),
            settings: WriterSettings {
                rotate_interval: config.rotate_interval,
                on_write_error: config.on_write_error,
                fsync: config.fsync,
                rotate_on_shutdown: config.rotate_on_shutdown,
                drain: config.drain,
                linger: config.linger,
            },
            postprocessor,
            counts: LoggerStats {
                backend,
                ..LoggerStats::default()
            },
            published: std::time::Instant::now(),
            warned: HashSet::new(),
            outages: Default::default(),
            held: None,
            unflushed: false,
            rotation_failing: false,
            sync_failing: false,
            headers: Default::default(),
            node_names: Default::default(),
        };
        let writer = std::thread::Builder::new()
            .name("zring-logger".into())
            .spawn(move || writer.run())
            .map_err(|e| LoggerError::Config(format!("cannot start the writer thread: {e}")))?;
        Ok(Logger {
            endpoint,
            backend,
            stats,
            stop,
            reopen,
            security,
            writer: Some(writer),
        })
    }

    /// Closes, within 100 ms, every open file whose name was moved or
    /// removed (by a log shipper, say), so the next records start new files
    /// under the names; files still in place stay open. The writer checks
    /// this once a second anyway; a reload asks for it at once.
    pub fn reopen_files(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }

    /// Replaces the security and address lists for connections accepted
    /// from now on (see [`crate::broker::Broker::reload_security`]).
    pub fn reload_security(&self, security: Security, lists: &AddressLists) -> Result<(), String> {
        self.security.replace(security.with_address_lists(lists))
    }

    /// The endpoint as bound (with the port chosen for `:*`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The kernel interface the reactors run on: `"io_uring"` or `"epoll"`.
    pub fn backend(&self) -> &'static str {
        self.backend
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

    /// Stops accepting connections, reads what the connected nodes already
    /// sent until they have been quiet for the drain time (at most the
    /// linger time), writes it, closes every file with its closing lines,
    /// and stops.
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
