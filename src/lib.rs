//! zring: a native, libzmq-free ZMTP 3.x dataplane on io_uring.
//!
//! Today this crate re-exports the sans-IO codec ([`zmtp_codec`]); the
//! io_uring reactor, the ZeroMQ sockets, the Zeek broker and the Zeek logger
//! are being built on top of it (see `docs/architecture.md`).

#![warn(missing_docs)]

pub use zmtp_codec as codec;
