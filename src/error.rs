//! The errors of zring's library API.

use crate::endpoint::EndpointError;
use crate::reactor::ReactorError;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad endpoint string, or one that does not resolve.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// A system call failed; `what` says which step.
    #[error("{what}: {source}")]
    Io {
        /// The step that failed, with its endpoint.
        what: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// The reactors could not start.
    #[error(transparent)]
    Reactor(#[from] ReactorError),
    /// Non-blocking send or receive found nothing to do (libzmq's EAGAIN).
    #[error("the operation would block")]
    WouldBlock,
    /// A send or receive with a timeout ran out of time.
    #[error("timed out")]
    TimedOut,
    /// The socket type does not allow the operation (libzmq's ENOTSUP).
    #[error("a {kind} socket cannot {op}")]
    NotSupported {
        /// The socket kind.
        kind: &'static str,
        /// What was attempted.
        op: &'static str,
    },
    /// An option that shapes the socket's queues was set after they exist.
    #[error("{option} must be set before the first bind or connect")]
    OptionTooLate {
        /// The option.
        option: &'static str,
    },
    /// An option value out of its range.
    #[error("{option} = {value} is out of range: {why}")]
    OptionOutOfRange {
        /// The option.
        option: &'static str,
        /// The value given.
        value: String,
        /// The allowed range.
        why: &'static str,
    },
    /// A message without frames.
    #[error("a message needs at least one frame")]
    EmptyMessage,
}

/// The result of a zring call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
