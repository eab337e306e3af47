//! The one error type of the codec. Every variant names what was wrong, so the
//! I/O layer can log a useful reason when it closes a connection.

use crate::socket_type::SocketType;

/// Why the codec refused the peer's bytes or a local request.
///
/// Any error returned while decoding is fatal for that connection: the stream is
/// no longer in a known state, so the caller closes it (and only it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The first byte of the greeting was not 0xFF: not a ZMTP peer at all.
    #[error("peer is not speaking ZMTP: greeting byte 0 is {0:#04x}, expected 0xff")]
    NotZmtp(u8),

    /// Byte 9 of the signature has bit 0 clear: a ZMTP 1.0 peer.
    #[error("peer speaks ZMTP 1.0 (signature byte 9 is {0:#04x}); only ZMTP 3.x is supported")]
    Zmtp10(u8),

    /// The peer announced a major version below 3 (ZMTP 1.0 or 2.0).
    #[error("peer announced ZMTP revision {0} (ZMTP 1.0/2.0); only ZMTP 3.x is supported")]
    UnsupportedVersion(u8),

    /// The peer's security mechanism is not ours. libzmq closes silently here too.
    #[error("security mechanism mismatch: we use {ours}, peer uses {theirs}")]
    MechanismMismatch {
        /// Our mechanism name.
        ours: String,
        /// The peer's mechanism field, printable part only.
        theirs: String,
    },

    /// A frame header declared a body larger than the configured limit.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge {
        /// Declared body size.
        size: u64,
        /// Configured maximum frame size.
        limit: u64,
    },

    /// The frames of one multipart message add up to more than the limit.
    #[error("message of at least {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Bytes of the message seen so far.
        size: u64,
        /// Configured maximum message size.
        limit: u64,
    },

    /// A command frame whose body does not parse.
    #[error("malformed {command} command: {reason}")]
    MalformedCommand {
        /// The command name, or `command` when even the name is unreadable.
        command: String,
        /// What exactly was wrong.
        reason: String,
    },

    /// READY/INITIATE metadata that does not parse.
    #[error("malformed metadata: {0}")]
    MalformedMetadata(String),

    /// The peer's Socket-Type property names no ZeroMQ socket type.
    #[error("peer announced unknown socket type {0:?}")]
    UnknownSocketType(String),

    /// The peer's socket type cannot talk to ours (e.g. PUSH to XPUB).
    #[error("peer socket type {peer} is not compatible with our {local}")]
    IncompatibleSocketType {
        /// Our socket type.
        local: SocketType,
        /// The peer's socket type.
        peer: SocketType,
    },

    /// A command that is not valid at this point of the handshake.
    #[error("unexpected {command} command during the {phase}")]
    UnexpectedCommand {
        /// The command name received.
        command: String,
        /// Where we were (e.g. `NULL handshake`).
        phase: &'static str,
    },

    /// A data frame arrived before the handshake finished.
    #[error("data frame received before the handshake finished")]
    DataBeforeReady,

    /// The peer sent an ERROR command; the connection is over.
    #[error("peer sent ERROR: {0}")]
    PeerError(String),

    /// The caller's authoriser (the ZAP-like hook) refused the peer's
    /// credentials. The ERROR command libzmq sends in this case is already
    /// queued (unless the status was 300, which libzmq answers by closing).
    #[error("{mechanism} peer refused by the authoriser: {reason}")]
    Refused {
        /// `PLAIN` or `CURVE`.
        mechanism: &'static str,
        /// The authoriser's reason (its status code and text).
        reason: String,
    },

    /// A CURVE box that does not open: the peer used another key than the one
    /// we expect (e.g. a wrong server public key), or bytes were altered.
    #[error("CURVE {what} box does not open: wrong key, or bytes altered in transit")]
    BadBox {
        /// Which box: `HELLO`, `WELCOME`, `cookie`, `INITIATE`, `vouch`,
        /// `READY` or `MESSAGE`.
        what: &'static str,
    },

    /// A CURVE short nonce that is not above the last one the peer used: a
    /// replayed or reordered command.
    #[error("CURVE {command} nonce {nonce} is not above the last one seen ({last}): replayed or reordered")]
    NonceOutOfOrder {
        /// The command that carried it.
        command: &'static str,
        /// The nonce received.
        nonce: u64,
        /// The highest nonce seen before.
        last: u64,
    },

    /// A CURVE box that opens but whose contents contradict the handshake
    /// (a cookie or vouch for another transient key).
    #[error("CURVE {command} does not match this handshake: {reason}")]
    CurveMismatch {
        /// The command.
        command: &'static str,
        /// What did not match.
        reason: &'static str,
    },

    /// We ran out of nonces (2^64 commands in one direction) or the
    /// randomness source failed: the connection cannot go on safely.
    #[error("CURVE cannot continue safely: {0}")]
    CurveExhausted(String),

    /// A local request that needs a finished handshake was made too early.
    #[error("the handshake has not finished yet")]
    NotReady,

    /// A local request on a session that already failed.
    #[error("the session has failed and must be closed")]
    Failed,

    /// A local request with an argument the wire cannot carry.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Shorthand used throughout the codec.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Renders bytes from the wire for an error message: printable ASCII as is,
/// everything else escaped, and never more than 64 characters.
pub(crate) fn printable(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(64) {
        if b.is_ascii_graphic() || b == b' ' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > 64 {
        out.push('…');
    }
    out
}
