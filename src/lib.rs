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
