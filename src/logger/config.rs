//! The logger's settings.

use std::path::PathBuf;
use std::time::Duration;

use super::files::{Fsync, RotationLayout, RotationNames};
use super::postprocess::PostprocessorConfig;
use crate::keys::{CurveConfigError, CurveOptions, CurveSettings};
use crate::reactor::{Backend, ReactorConfig};
use crate::security::AddressLists;
use crate::SocketOption;

/// The writer's default wake delay. Zeek flushes log batches once a
/// second or per 1000 records, so a millisecond is invisible in the logs,
/// while waking the writer per batch costs both threads a few
/// microseconds each time.
pub const DEFAULT_WAKE_DELAY: Duration = Duration::from_millis(1);

/// The reactor's default coalescing window ([`ReactorConfig::coalesce`]).
/// While nodes stream, each receive takes what 200 µs brought instead of
/// one batch: about two thirds of the receive CPU at 64 KiB batches and
/// 1 KiB ones alike (docs/benchmarks.md). The delay is a fifth of the
/// writer's wake delay, invisible beside it.
pub const DEFAULT_COALESCE: Duration = Duration::from_micros(200);

pub use crate::reactor::MAX_COALESCE;

/// The default for `max_paths`, lowered to fit the file descriptor limit
/// when that is low.
pub const DEFAULT_MAX_PATHS: usize = 1024;

/// File descriptors kept for node connections and the logger's own (the
/// io_uring ring, eventfds, the listener, metrics, compression) beside
/// one per open log path.
pub const FD_RESERVE: u64 = 64;

/// What to do with a batch the file system refuses (disk full, quota,
/// I/O error, permissions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteErrorPolicy {
    /// Keep it and write it again (after 100 ms, backing off to every
    /// 5 s) while reading nothing more from the nodes, so that TCP pushes
    /// back on them and their own queues fill: nothing the logger has read
    /// is lost.
    #[default]
    Block,
    /// Drop it, count its records, and go on with the next one.
    Drop,
}

impl WriteErrorPolicy {
    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            WriteErrorPolicy::Block => "block",
            WriteErrorPolicy::Drop => "drop",
        }
    }
}

/// Which of Zeek's log formats to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormatKind {
    /// Zeek's default tab-separated format with `#` header lines.
    #[default]
    Ascii,
    /// One JSON object per line, as `LogAscii::use_json = T`.
    Json,
}

impl LogFormatKind {
    /// The name used by the flag and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            LogFormatKind::Ascii => "ascii",
            LogFormatKind::Json => "json",
        }
    }
}

/// A logger's settings. Defaults follow a Zeek logger's.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggerConfig {
    /// Where nodes' log PUSH sockets connect (Zeek: the logger's
    /// `listen_log_endpoint`).
    pub listen: String,
    /// The directory logs are written to.
    pub dir: PathBuf,
    /// The output format.
    pub format: LogFormatKind,
    /// How often files are rotated, aligned to multiples of the interval
    /// (None: never). Zeek's cluster loggers rotate hourly.
    pub rotate_interval: Option<Duration>,
    /// Compress rotated files with gzip (`.log.gz`), off the write path.
    pub gzip: bool,
    /// Received batches queued for the writer before the logger stops
    /// reading from nodes (Zeek: `log_rcvhwm`, 1000). Nothing is dropped:
    /// TCP pushes back, and the nodes' PUSH queues fill.
    pub rcvhwm: usize,
    /// SO_RCVBUF of node connections (None: the OS default).
    pub rcvbuf: Option<usize>,
    /// Largest message accepted from a node, in bytes.
    pub max_message_size: u64,
    /// Most distinct log paths (files) kept open; a batch for one more is
    /// rejected, so a misbehaving node cannot exhaust file descriptors.
    /// None: [`DEFAULT_MAX_PATHS`], or fewer if the file descriptor limit
    /// does not leave room for that many (see [`LoggerConfig::max_paths_for`]).
    pub max_paths: Option<usize>,
    /// What a batch the file system refuses costs.
    pub on_write_error: WriteErrorPolicy,
    /// When written logs are flushed to the disk.
    pub fsync: Fsync,
    /// At a stop (with rotation on), rotate every file and postprocess it
    /// as Zeek's logger node does; else close them in place.
    pub rotate_on_shutdown: bool,
    /// Where rotated files go (None: beside the open ones in `dir`;
    /// relative: to `dir`). Zeek's `Log::default_rotation_dir`.
    pub rotation_dir: Option<PathBuf>,
    /// How rotated files are named.
    pub rotation_names: RotationNames,
    /// `archiver_log_metadata` for archiver names, in order.
    pub archiver_metadata: Vec<(String, String)>,
    /// A command run on each rotated file, as Zeek's
    /// `Log::default_rotation_postprocessor_cmd` (e.g. zeekctl's
    /// `archive-log`).
    pub postprocessor: Option<String>,
    /// Set as `ZEEK_ARG_<KEY>` for the postprocessor, as Zeek's
    /// `Log::default_rotation_postprocessor_cmd_env`.
    pub postprocessor_env: Vec<(String, String)>,
    /// At a stop, read on until no batch has arrived for this long...
    pub drain: Duration,
    /// ...or this long has passed since the stop, whichever comes first.
    pub linger: Duration,
    /// Reactor threads receiving from nodes.
    pub reactors: usize,
    /// The kernel interface the reactors run on.
    pub backend: Backend,
    /// Cores to pin reactors to, in order (empty: not pinned).
    pub cores: Vec<usize>,
    /// Where to serve Prometheus metrics (None: off).
    pub metrics_listen: Option<String>,
    /// How long the writer may sleep on after a batch arrives, so that it
    /// wakes once for several (None: at once). See
    /// [`SocketOption::RcvWakeDelay`].
    pub wake_delay: Option<Duration>,
    /// How long the receiving reactor, once busy, lets data gather before
    /// it wakes to read it (None: it wakes for every arrival). See
    /// [`ReactorConfig::coalesce`].
    pub coalesce: Option<Duration>,
    /// CURVE keys as given (`curve_*` options), resolved at start-up by
    /// [`LoggerConfig::curve`]. A logger uses the same server key pair as
    /// the cluster's broker (contract §7.4). Its `Debug` output redacts
    /// the secret.
    pub curve: CurveOptions,
    /// Peer addresses let in and refused, whatever the mechanism (empty:
    /// anyone).
    pub addresses: AddressLists,
}

impl LoggerConfig {
    /// Defaults, listening on `listen`.
    pub fn new(listen: impl Into<String>) -> LoggerConfig {
        LoggerConfig {
            listen: listen.into(),
            dir: PathBuf::from("."),
            format: LogFormatKind::Ascii,
            rotate_interval: Some(Duration::from_secs(3600)),
            gzip: false,
            rcvhwm: 1000,
            rcvbuf: None,
            max_message_size: 256 << 20,
            max_paths: None,
            on_write_error: WriteErrorPolicy::Block,
            fsync: Fsync::Rotate,
            rotate_on_shutdown: true,
            rotation_dir: None,
            rotation_names: RotationNames::Zeek,
            archiver_metadata: Vec::new(),
            postprocessor: None,
            postprocessor_env: Vec::new(),
            drain: Duration::from_millis(200),
            linger: Duration::from_secs(2),
            reactors: 1,
            backend: Backend::Auto,
            cores: Vec::new(),
            metrics_listen: None,
            wake_delay: Some(DEFAULT_WAKE_DELAY),
            coalesce: Some(DEFAULT_COALESCE),
            curve: CurveOptions::default(),
            addresses: AddressLists::default(),
        }
    }

    /// The CURVE keys from the `curve_*` options, their key file or Zeek's
    /// environment variables (looked up through `env`; the binary passes
    /// [`crate::keys::process_env`]). `Ok(None)`: none is set, the logger
    /// speaks plaintext (NULL). See [`CurveOptions::resolve`].
    pub fn curve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<CurveSettings>, CurveConfigError> {
        self.curve.resolve(env)
    }

    /// Checks values that cannot work, naming the option.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(i) = self.rotate_interval {
            if i < Duration::from_secs(1) {
                return Err(format!(
                    "rotate-interval must be at least 1 second (0 = never), not {i:?}"
                ));
            }
        }
        if self.rcvhwm == 0 {
            return Err("rcvhwm must be at least 1: the writer's queue is bounded".into());
        }
        if self.rcvhwm > crate::socket::MAX_HWM {
            return Err(format!(
                "rcvhwm must be at most 2147483647, not {}",
                self.rcvhwm
            ));
        }
        if let Some(window) = self.coalesce {
            if window > MAX_COALESCE {
                return Err(format!(
                    "coalesce-us must be at most {}: it delays every receive by up \
                     to that many microseconds, not {}",
                    MAX_COALESCE.as_micros(),
                    window.as_micros()
                ));
            }
        }
        if self.max_paths == Some(0) {
            return Err("max-paths must be at least 1".into());
        }
        self.rotation_layout()?;
        if self
            .postprocessor
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            return Err("postprocessor is empty: give a command, or leave it out".into());
        }
        for (key, _) in &self.postprocessor_env {
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "postprocessor-env key `{key}` must be letters, digits and `_` \
                     (it becomes the variable ZEEK_ARG_<KEY>)"
                ));
            }
        }
        if self.reactors == 0 {
            return Err("reactors must be at least 1".into());
        }
        if !self.cores.is_empty() && self.cores.len() != self.reactors {
            return Err(format!(
                "cores lists {} cores for {} reactors; give one per reactor",
                self.cores.len(),
                self.reactors
            ));
        }
        Ok(())
    }

    /// The paths that may be open at once under a file descriptor limit
    /// of `fd_limit` (the soft RLIMIT_NOFILE): `max_paths` if it fits with
    /// [`FD_RESERVE`] beside it, else an error naming both numbers; by
    /// default 1024, or what fits if that is fewer.
    pub fn max_paths_for(&self, fd_limit: u64) -> Result<usize, String> {
        let room = fd_limit.saturating_sub(FD_RESERVE);
        match self.max_paths {
            Some(n) if n as u64 > room => Err(format!(
                "max-paths {n} needs {} file descriptors ({FD_RESERVE} are kept for node \
                 connections and the logger's own), but the limit (RLIMIT_NOFILE) is {fd_limit}: \
                 raise it (LimitNOFILE= in a systemd unit, ulimit -n) or lower max-paths to {room}",
                n as u64 + FD_RESERVE
            )),
            Some(n) => Ok(n),
            None if room == 0 => Err(format!(
                "the file descriptor limit (RLIMIT_NOFILE) is {fd_limit}, which leaves none for \
                 log files beside the {FD_RESERVE} kept for node connections and the logger's \
                 own: raise it (LimitNOFILE= in a systemd unit, ulimit -n)"
            )),
            None => Ok((DEFAULT_MAX_PATHS as u64).min(room) as usize),
        }
    }

    /// Where rotated files go, checked: metadata only with archiver names,
    /// and only what zeek-archiver can read back.
    pub fn rotation_layout(&self) -> Result<RotationLayout, String> {
        let metadata = super::naming::archiver_metadata(&self.archiver_metadata)?;
        if !metadata.is_empty() && self.rotation_names != RotationNames::Archiver {
            return Err(
                "archiver-metadata goes into archiver names: use it with rotation-names archiver"
                    .into(),
            );
        }
        Ok(RotationLayout {
            dir: self.rotation_dir.clone(),
            names: self.rotation_names,
            metadata,
        })
    }

    /// The postprocessor to run, if any.
    pub fn postprocessor_config(&self) -> Option<PostprocessorConfig> {
        self.postprocessor
            .as_ref()
            .map(|command| PostprocessorConfig {
                command: command.clone(),
                env: self.postprocessor_env.clone(),
            })
    }

    /// The options of the PULL socket nodes push to.
    pub fn socket_options(&self) -> Vec<SocketOption> {
        vec![
            SocketOption::RcvHwm(self.rcvhwm),
            // A slow disk pushes back to the nodes instead of losing logs.
            SocketOption::RcvNodrop(true),
            SocketOption::MaxMsgSize(Some(self.max_message_size)),
            SocketOption::RcvBuf(self.rcvbuf),
            SocketOption::RcvWakeDelay(self.wake_delay),
        ]
    }

    /// The reactor settings these options ask for.
    pub fn reactor_config(&self) -> ReactorConfig {
        let cores = if self.cores.is_empty() {
            vec![None; self.reactors]
        } else {
            self.cores.iter().map(|&c| Some(c)).collect()
        };
        ReactorConfig {
            cores,
            // The default pool (16 MiB) in 1 MiB buffers that receives fill
            // one after another (IOU_PBUF_RING_INC, Linux 6.12): a batch
            // that two receives brought lies in one piece of memory and is
            // taken as it is, and only one that crosses into the next
            // buffer is gathered. Before 6.12 each receive takes a whole
            // buffer; then 1 MiB buffers still cost what 256 KiB ones did
            // (docs/benchmarks.md).
            buffer_count: 16,
            buffer_size: 1024 * 1024,
            incremental_buffers: true,
            coalesce: self.coalesce,
            backend: self.backend,
            ..ReactorConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_the_option() {
        let c = LoggerConfig::new("tcp://127.0.0.1:0");
        assert!(c.validate().is_ok());
        let mut bad = c.clone();
        bad.rotate_interval = Some(Duration::from_millis(10));
        assert!(bad.validate().unwrap_err().contains("rotate-interval"));
        let mut bad = c.clone();
        bad.rcvhwm = 0;
        assert!(bad.validate().unwrap_err().contains("rcvhwm"));
        let mut bad = c.clone();
        bad.cores = vec![0, 1];
        assert!(bad.validate().unwrap_err().contains("cores"));
        let mut bad = c.clone();
        bad.coalesce = Some(Duration::from_secs(1));
        assert!(bad.validate().unwrap_err().contains("coalesce-us"));
        // The window reaches the reactor.
        assert_eq!(c.reactor_config().coalesce, Some(DEFAULT_COALESCE));
        let mut bad = c.clone();
        bad.max_paths = Some(0);
        assert!(bad.validate().unwrap_err().contains("max-paths"));
        let mut bad = c.clone();
        bad.archiver_metadata = vec![("log_suffix".into(), "logger-1".into())];
        assert!(bad
            .validate()
            .unwrap_err()
            .contains("rotation-names archiver"));
        bad.rotation_names = RotationNames::Archiver;
        assert_eq!(
            bad.rotation_layout().unwrap().metadata,
            "log_suffix=logger-1"
        );
        bad.archiver_metadata = vec![("a=b".into(), "c".into())];
        assert!(bad.validate().unwrap_err().contains("a=b=c"));
        let mut bad = c.clone();
        bad.postprocessor_env = vec![("NO SPACE".into(), "x".into())];
        assert!(bad.validate().unwrap_err().contains("postprocessor-env"));
        bad.postprocessor_env.clear();
        bad.postprocessor = Some("  ".into());
        assert!(bad.validate().unwrap_err().contains("postprocessor"));
    }

    #[test]
    fn max_paths_fit_the_file_descriptor_limit() {
        let mut c = LoggerConfig::new("tcp://127.0.0.1:0");
        // By default 1024, or what the limit leaves room for.
        assert_eq!(c.max_paths_for(1 << 20), Ok(DEFAULT_MAX_PATHS));
        assert_eq!(c.max_paths_for(1024), Ok(1024 - FD_RESERVE as usize));
        let e = c.max_paths_for(FD_RESERVE).unwrap_err();
        assert!(
            e.contains("RLIMIT_NOFILE") && e.contains(&FD_RESERVE.to_string()),
            "{e}"
        );
        // Asked for, it must fit: the error names both numbers.
        c.max_paths = Some(300);
        assert_eq!(c.max_paths_for(364), Ok(300));
        let e = c.max_paths_for(128).unwrap_err();
        assert!(
            e.contains("max-paths 300 needs 364") && e.contains("is 128"),
            "{e}"
        );
    }

    #[test]
    fn curve_keys_resolve_and_the_secret_is_not_shown() {
        let secret = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
        let mut c = LoggerConfig::new("tcp://127.0.0.1:0");
        assert_eq!(c.curve(|_| None), Ok(None));
        c.curve.server_secretkey = Some(secret.into());
        c.curve.client_publickey = Some("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID".into());
        assert!(!format!("{c:?}").contains(secret));
        let s = c.curve(|_| None).unwrap().unwrap();
        assert_eq!(
            s.server.public.to_z85(),
            "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
        );
        let e = c
            .curve(|name| (name == crate::keys::ENV_SERVER_SECRETKEY).then(|| secret.to_owned()))
            .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
    }
}
