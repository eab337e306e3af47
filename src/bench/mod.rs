//! `zring bench`: a load generator and latency probe for any ZeroMQ broker
//! or peer, cheap enough that what it measures is the peer.
//!
//! It speaks ZMTP itself: the handshake through the codec, then messages
//! encoded once per block and written a block at a time, and received
//! bytes walked frame header by frame header ([`wire`]). Every message
//! carries its publisher, topic, number and intended send time
//! ([`sequence`]), so every receiver checks that nothing was lost,
//! repeated or reordered and measures one-way latency on one clock.
//! See docs/benchmarking.md.

mod message;
pub mod procstat;
pub mod pubsub;
pub mod pushpull;
pub mod report;
pub mod sequence;
pub mod wire;

pub use self::pubsub::PubSubConfig;
pub use self::pushpull::{PushConfig, SinkConfig};
pub use self::report::Report;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Options that cannot go together.
    #[error("{0}")]
    Usage(String),
    /// Connecting, or the handshake, failed.
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    /// The peers did not get ready (subscriptions, connections).
    #[error("{0}")]
    Setup(String),
    /// Reading `/proc`, a file, or a socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
