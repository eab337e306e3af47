//! How reactors are set up, and why they could not start.

use std::io;
use std::time::Duration;

use io_uring::IoUring;

pub use super::driver::Backend;

/// How reactors are set up.
#[derive(Debug, Clone)]
pub struct ReactorConfig {
    /// Cores to pin reactor threads to, one thread per entry; `None` entries
    /// are not pinned.
    pub cores: Vec<Option<usize>>,
    /// Submission queue entries per ring.
    pub ring_entries: u32,
    /// Receive buffers per reactor (a power of two).
    pub buffer_count: u16,
    /// Size of one receive buffer.
    pub buffer_size: usize,
    /// Receives smaller than this are copied and their buffer returned at
    /// once, so slow consumers of small messages cannot pin the pool.
    pub copy_below: usize,
    /// Register the receive ring with `IOU_PBUF_RING_INC` (Linux 6.12;
    /// ignored before): a receive takes only the bytes it fills, so large
    /// buffers waste nothing, and a message that two receives brought lies
    /// in one piece of memory, which the session then takes without a copy.
    pub incremental_buffers: bool,
    /// Interrupt-style coalescing (None: off; at most [`MAX_COALESCE`]). A
    /// reactor that has just had completions sleeps until this much time
    /// has passed or a batch of completions waits, instead of waking for
    /// the first; each receive then takes all that arrived meanwhile. While
    /// traffic flows, every event may wait up to this long, commands from
    /// application threads (sends, closes, shutdown) included; when idle it
    /// costs nothing: the first event after a quiet spell is served at
    /// once. For throughput paths such as the logger's ingest, not for the
    /// broker. It relies on the kernel deferring poll-driven receives until
    /// the reactor wakes (deferred task work, lazy wake-ups: recent 6.x);
    /// where it does not, the wait is still bounded but saves less.
    pub coalesce: Option<Duration>,
    /// The kernel interface: io_uring, epoll, or the first of them that
    /// works here ([`Backend::Auto`]).
    pub backend: Backend,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        ReactorConfig {
            cores: vec![None],
            ring_entries: 1024,
            buffer_count: 256,
            buffer_size: 64 * 1024,
            copy_below: 2048,
            incremental_buffers: false,
            coalesce: None,
            backend: Backend::Auto,
        }
    }
}

/// The longest coalescing window accepted ([`ReactorConfig::coalesce`]).
/// Beyond a few milliseconds nothing more is saved, commands wait as long,
/// and TCP's receive window fills while the reactor sleeps.
pub const MAX_COALESCE: Duration = Duration::from_millis(100);

/// Why reactors could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReactorError {
    /// io_uring is missing or forbidden here.
    #[error("io_uring is not available: {detail}")]
    Unavailable {
        /// The cause and what to do about it.
        detail: String,
    },
    /// Any other setup failure.
    #[error("cannot start a reactor: {0}")]
    Setup(#[from] io::Error),
}

/// The environment variable that picks the backend where the
/// configuration leaves it to `auto`: `io_uring` or `epoll`.
pub const BACKEND_ENV: &str = "ZRING_BACKEND";

/// Checks the settings and picks the driver before any reactor starts:
/// io_uring when asked for (or its error), epoll when asked for, and for
/// `auto` io_uring if a probe of everything zring needs of it works here,
/// else epoll with one warning that says why. The backend returned is
/// never [`Backend::Auto`].
pub(super) fn check(config: &ReactorConfig) -> Result<Backend, ReactorError> {
    if let Some(window) = config.coalesce.filter(|&w| w > MAX_COALESCE) {
        return Err(ReactorError::Setup(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the coalescing window must be at most {MAX_COALESCE:?}, not {window:?}: \
                 every event waits up to that long"
            ),
        )));
    }
    let mut backend = config.backend;
    if backend == Backend::Auto {
        if let Ok(value) = std::env::var(BACKEND_ENV) {
            backend = value.parse().map_err(|e: String| {
                ReactorError::Setup(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{BACKEND_ENV}: {e}"),
                ))
            })?;
        }
    }
    match backend {
        Backend::IoUring => super::driver::probe_io_uring().map(|()| Backend::IoUring),
        Backend::Epoll => Ok(Backend::Epoll),
        Backend::Auto => match super::driver::probe_io_uring() {
            Ok(()) => Ok(Backend::IoUring),
            Err(e) => {
                tracing::warn!(
                    "{e}; running on epoll instead, which costs more CPU per message. \
                     To run on io_uring, see \"Containers and hardened hosts\" in \
                     docs/operations.md; --backend epoll silences this warning"
                );
                Ok(Backend::Epoll)
            }
        },
    }
}

pub(super) fn check_kernel() -> Result<(), ReactorError> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']);
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if major != 0 && (major, minor) < (6, 0) {
        return Err(ReactorError::Unavailable {
            detail: format!(
                "zring needs Linux 6.0 or later (multishot receive with provided \
                 buffer rings); this kernel is {}",
                release.trim()
            ),
        });
    }
    if let Ok(disabled) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        if disabled.trim() == "2" {
            return Err(ReactorError::Unavailable {
                detail: "the sysctl kernel.io_uring_disabled is 2; set it to 0 \
                         (or 1 and run zring in the group kernel.io_uring_group)"
                    .into(),
            });
        }
    }
    Ok(())
}

pub(super) fn build_ring(entries: u32) -> Result<IoUring, ReactorError> {
    // A reactor is the only thread that touches its ring: single issuer and
    // deferred task work keep completions on this thread, batched.
    let tuned = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries);
    let result = match tuned {
        Ok(ring) => Ok(ring),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::new(entries),
        Err(e) => Err(e),
    };
    result.map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSYS) => ReactorError::Unavailable {
            detail: "io_uring_setup is not implemented by this kernel (built \
                     without CONFIG_IO_URING?); zring needs Linux 6.0 or later \
                     with io_uring"
                .into(),
        },
        Some(libc::EPERM) | Some(libc::EACCES) => ReactorError::Unavailable {
            detail: format!(
                "io_uring_setup was refused ({e}). A container's seccomp profile \
                 blocks it (Docker's default does: run with a profile allowing \
                 io_uring_setup, io_uring_enter and io_uring_register, e.g. \
                 --security-opt seccomp=unconfined), or the sysctl \
                 kernel.io_uring_disabled restricts it"
            ),
        },
        Some(libc::ENOMEM) => ReactorError::Unavailable {
            detail: format!(
                "io_uring_setup ran out of locked memory ({e}); raise `ulimit -l` \
                 or lower the ring size"
            ),
        },
        _ => ReactorError::Setup(e),
    })
}
