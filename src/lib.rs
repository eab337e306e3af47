//! zring: a native, libzmq-free ZMTP 3.x dataplane on io_uring.
//!
//! The wire protocol lives in [`zmtp_codec`] (re-exported as [`codec`]);
//! this crate adds the io_uring reactor, ZeroMQ socket semantics, and the
//! applications built on them.

pub use zmtp_codec as codec;

pub mod broker;
pub mod cat;
pub mod endpoint;
pub mod error;
pub mod keys;
pub mod logger;
pub mod metrics;
pub mod onloop;
pub mod reactor;
pub mod security;
pub mod socket;

pub use error::{Error, Result};
pub use reactor::ReactorConfig;
pub use security::{Access, AddressLists, Security};
pub use socket::{Context, Socket, SocketKind, SocketOption, SocketOptions, SocketStats, Wait};

/// Raises this process's soft limit on open file descriptors to its hard
/// limit and returns the limit now in force. A daemon with many
/// connections or files wants it: the usual soft limit (1024) is a
/// leftover of `select`, while the hard one is typically far higher. The
/// `zring` binary does it at start; a library user decides for their
/// process.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    reactor::sys::raise_nofile_limit()
}
