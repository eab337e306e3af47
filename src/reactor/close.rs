//! Why a connection closed: one type for the reactor, the services it
//! drives, logs and counters, instead of sentences compared as text.

use std::fmt;
use std::io;
use std::time::Duration;

/// Why a connection closed.
#[derive(Debug)]
pub(crate) enum CloseReason {
    /// The peer closed the connection (an orderly end).
    PeerClosed,
    /// The peer closed it during a PLAIN or CURVE handshake: it runs
    /// another mechanism, or refused our keys or credentials.
    PeerClosedDuringHandshake { mechanism: &'static str },
    /// Our socket was closed and nothing was left to send.
    SocketClosed,
    /// Our socket was closed and its LINGER ran out before all was sent.
    LingerExpired,
    /// The reactor is shutting down.
    Shutdown,
    /// The peer broke the protocol or a limit.
    Protocol {
        error: zmtp_codec::Error,
        during_handshake: bool,
    },
    /// A PLAIN or CURVE handshake failed or was refused.
    Security {
        mechanism: &'static str,
        error: zmtp_codec::Error,
    },
    /// The handshake took longer than HANDSHAKE_IVL.
    HandshakeTimeout,
    /// No traffic came within HEARTBEAT_TIMEOUT of our PING.
    HeartbeatTimeout,
    /// No traffic came within the TTL of the peer's PING.
    PeerTtlExpired,
    /// Receiving or sending failed.
    Io {
        operation: &'static str,
        error: io::Error,
    },
    /// A message could not be encoded for the peer.
    Encode(zmtp_codec::Error),
    /// A subscriber kept a publisher waiting for room longer than this
    /// (the broker's policy `slow_subscriber = disconnect`).
    SlowSubscriber { waited: Duration },
}

impl CloseReason {
    /// An end that needs no warning: the peer or our own socket closed.
    pub(crate) fn is_orderly(&self) -> bool {
        matches!(self, CloseReason::PeerClosed | CloseReason::SocketClosed)
    }

    /// A peer refused by its handshake (CURVE or PLAIN), or one that
    /// refused ours: logged as refusals are, first per address at warn.
    pub(crate) fn is_refusal(&self) -> bool {
        matches!(
            self,
            CloseReason::Security { .. } | CloseReason::PeerClosedDuringHandshake { .. }
        )
    }

    /// An end logged at debug level only: orderly, or a shutdown.
    pub(crate) fn is_quiet(&self) -> bool {
        self.is_orderly() || matches!(self, CloseReason::Shutdown)
    }

    /// A handshake or heartbeat timeout (counted as such).
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(
            self,
            CloseReason::HandshakeTimeout
                | CloseReason::HeartbeatTimeout
                | CloseReason::PeerTtlExpired
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed the connection"),
            CloseReason::PeerClosedDuringHandshake { mechanism } => write!(
                f,
                "peer closed during the {mechanism} handshake: it runs another mechanism \
                 (NULL?), or refused our keys or credentials"
            ),
            CloseReason::SocketClosed => f.write_str("socket closed"),
            CloseReason::LingerExpired => f.write_str("socket closed (linger expired)"),
            CloseReason::Shutdown => f.write_str("reactor shutting down"),
            CloseReason::Protocol {
                error,
                during_handshake,
            } => {
                let phase = if *during_handshake {
                    " during the handshake"
                } else {
                    ""
                };
                write!(f, "protocol error{phase}: {error}")
            }
            CloseReason::Security { mechanism, error } => {
                write!(f, "{mechanism} handshake failed: {error}")
            }
            CloseReason::HandshakeTimeout => f.write_str("handshake timed out (HANDSHAKE_IVL)"),
            CloseReason::HeartbeatTimeout => {
                f.write_str("heartbeat timed out: no traffic after our PING (HEARTBEAT_TIMEOUT)")
            }
            CloseReason::PeerTtlExpired => {
                f.write_str("heartbeat timed out: no traffic within the peer's PING TTL")
            }
            CloseReason::Io { operation, error } => write!(f, "{operation} failed: {error}"),
            CloseReason::Encode(error) => write!(f, "cannot encode a message: {error}"),
            CloseReason::SlowSubscriber { waited } => write!(
                f,
                "slow subscriber: kept a publisher waiting over {} ms \
                 (slow_subscriber = disconnect)",
                waited.as_millis()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_before_and_classify() {
        assert_eq!(
            CloseReason::PeerClosed.to_string(),
            "peer closed the connection"
        );
        assert_eq!(CloseReason::SocketClosed.to_string(), "socket closed");
        assert!(CloseReason::SocketClosed.is_orderly());
        assert!(CloseReason::Shutdown.is_quiet() && !CloseReason::Shutdown.is_orderly());
        assert!(CloseReason::PeerTtlExpired.is_timeout());
        assert!(!CloseReason::LingerExpired.is_quiet());
        let io = CloseReason::Io {
            operation: "receive",
            error: io::Error::from_raw_os_error(libc::ECONNRESET),
        };
        assert!(io.to_string().starts_with("receive failed: "), "{io}");
        let slow = CloseReason::SlowSubscriber {
            waited: Duration::from_millis(1500),
        };
        assert_eq!(
            slow.to_string(),
            "slow subscriber: kept a publisher waiting over 1500 ms (slow_subscriber = disconnect)"
        );
        assert!(!slow.is_quiet());
    }
}
