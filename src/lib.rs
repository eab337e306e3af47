//! zring: a native, libzmq-free ZMTP 3.x dataplane on io_uring.
//!
//! The wire protocol lives in [`zmtp_codec`] (re-exported as [`codec`]);
//! this crate adds the io_uring reactor, ZeroMQ socket semantics, and the
//! applications built on them.
//!
//! `unsafe` code is denied crate-wide and allowed only where the kernel's
//! interfaces or a lock-free structure need it: the reactor's io_uring
//! driver, its receive buffer ring and a connection's send header
//! (`reactor/{driver,bufring,conn}.rs`), the socket's single-producer ring,
//! and `sys`, the system call wrappers. Each block says why it is sound.
//!
//! The layers, each using only those below it: `sys`; the codec; the
//! reactor, which drives a `Service` and names none; the services (ZeroMQ
//! sockets, the broker); the applications (`logger`, `cat`). See
//! docs/architecture.md.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub use zmtp_codec as codec;

pub mod bench;
pub mod broker;
pub mod cat;
pub mod config_file;
pub(crate) mod counters;
pub mod endpoint;
pub mod error;
pub mod keys;
pub mod logger;
pub mod metrics;
pub(crate) mod onloop;
pub(crate) mod reactor;
pub mod security;
pub mod socket;
#[allow(unsafe_code)]
pub(crate) mod sys;

pub use error::{Error, Result};
pub use reactor::{Backend, ReactorConfig, ReactorError, BACKEND_ENV, MAX_COALESCE};
pub use security::{Access, AddressLists, LiveSecurity, Security};
pub use socket::{Context, Socket, SocketKind, SocketOption, SocketOptions, SocketStats, Wait};
pub use sys::{DaemonSignals, Signal};

/// Raises this process's soft limit on open file descriptors to its hard
/// limit and returns the limit now in force. A daemon with many
/// connections or files wants it: the usual soft limit (1024) is a
/// leftover of `select`, while the hard one is typically far higher. The
/// `zring` binary does it at start; a library user decides for their
/// process.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    sys::raise_nofile_limit()
}
