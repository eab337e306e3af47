//! The counters of a set of connections (a socket's, or one side of the
//! broker's): what the reactors that serve them count, and the snapshot
//! the application reads. Reactors add to them per batch; readers take a
//! snapshot now and then.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {
        /// Live counters of a set of connections, on cache lines of their
        /// own: reactors write them per batch, readers rarely look.
        #[derive(Debug, Default)]
        #[repr(align(128))]
        pub(crate) struct Counters { $(pub(crate) $name: AtomicU64,)* }

        /// A snapshot of a socket's (or a broker side's) counters.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct SocketStats {
            $(#[$doc] pub $name: u64,)*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> SocketStats {
                SocketStats { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Data messages received from peers.
    messages_in,
    /// Bytes of frame bodies received from peers.
    bytes_in,
    /// Data messages handed to the kernel.
    messages_out,
    /// Bytes written to peers (all wire bytes).
    bytes_out,
    /// Received messages dropped because the onloop queue was full.
    onloop_drops,
    /// Messages not queued for a peer because its pipe was at SNDHWM.
    hwm_drops,
    /// Queued messages lost because their peer disconnected.
    disconnect_drops,
    /// Messages the socket type ignores (e.g. a PUB's peer sending data).
    ignored_messages,
    /// Received messages a SUB discarded for matching no subscription.
    filtered_messages,
    /// Connections accepted on bound endpoints.
    connections_accepted,
    /// Outgoing connections established.
    connections_established,
    /// Handshakes completed.
    handshakes,
    /// Connections closed, for any reason.
    disconnects,
    /// Connections closed because the peer broke the protocol or a limit.
    protocol_errors,
    /// Connections closed because a PLAIN or CURVE handshake failed or was refused (unknown key or user, mechanism mismatch, bad box, nonce out of order).
    security_failures,
    /// Connections refused on accept because of the peer's address.
    access_denied,
    /// Connections closed because a heartbeat or the handshake timed out.
    timeouts,
    /// Failed connection attempts.
    connect_failures,
    /// Subscriptions received from peers.
    subscriptions_in,
    /// Cancels received from peers.
    cancels_in,
    /// Received bytes copied out of receive buffers (small receives, and all while half the pool is held).
    copied_small_bytes,
}
