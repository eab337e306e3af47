//! Security mechanisms. The session runs the greeting and framing; a
//! mechanism runs the handshake that follows and, if it encrypts, wraps each
//! frame afterwards: NULL (no security), PLAIN (RFC 24: a clear-text
//! username and password) and CURVE (RFCs 25/26: encryption and
//! authentication by key). PLAIN and CURVE servers ask an [`Authorizer`],
//! the in-process counterpart of a ZAP handler.

use bytes::{Bytes, BytesMut};

use crate::error::Result;
use crate::frame::{encode_frame, Frame, FrameFlags, RawFrame};
use crate::greeting::MechanismName;
use crate::metadata::Metadata;

mod auth;
mod curve;
mod fastbox;
mod keys;
mod null;
mod plain;
mod salsa;
#[allow(unsafe_code)]
mod simd;

pub use auth::{AllowAll, Authorizer, Credentials, Refusal};
pub use curve::{
    CurveClient, CurveServer, HELLO_SIZE, INITIATE_MIN_SIZE, MESSAGE_MIN_SIZE, READY_MIN_SIZE,
    WELCOME_SIZE,
};
pub use keys::{KeyPair, KeyPairError, OsRandom, PublicKey, Randomness, SecretKey};
pub use null::Null;
pub use plain::{PlainClient, PlainServer, LIBZMQ_PLAIN_ERROR_PREFIX};
pub use simd::{curve_kernel, curve_kernel_note, CurveKernel, KERNEL_ENV};

/// Where a handshake stands after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// More handshake frames are expected from the peer.
    Continue,
    /// The handshake is complete; carries the peer's metadata.
    Done(Metadata),
}

/// A ZMTP security mechanism (RFC 37 §"Authentication and Confidentiality").
///
/// Implementations are pure state machines like the session: they receive the
/// peer's handshake frames and push the command bodies they want sent.
pub trait Mechanism: Send + std::fmt::Debug {
    /// The name written into the greeting; the peer's must match exactly.
    fn name(&self) -> MechanismName;

    /// Whether we act as the server of this mechanism (written into the
    /// greeting; libzmq ignores the peer's value and so do we).
    fn as_server(&self) -> bool;

    /// Called once both greetings are exchanged. `local` is the metadata we
    /// announce (Socket-Type, Identity, application properties). Pushes the
    /// command bodies to send first.
    fn start(&mut self, local: &Metadata, send: &mut Vec<Bytes>) -> Result<Step>;

    /// Handles one frame received during the handshake.
    fn on_frame(&mut self, frame: Frame, local: &Metadata, send: &mut Vec<Bytes>) -> Result<Step>;

    /// Whether data frames must pass through [`Mechanism::seal`] and
    /// [`Mechanism::open`] after the handshake. NULL and PLAIN send them as
    /// they are, which keeps their data path free of any per-frame work.
    /// Asked once, when the session is made: the answer must not change.
    fn transforms_frames(&self) -> bool {
        false
    }

    /// Wraps an outgoing frame (CURVE: a MESSAGE box).
    fn seal(&mut self, flags: FrameFlags, body: Bytes) -> Result<Frame> {
        Ok(Frame { flags, body })
    }

    /// Unwraps an incoming frame into the plain frame it carries, in wire
    /// form (header and body in one buffer), so that a lone frame can
    /// become a [`crate::Message`] without another copy.
    fn open(&mut self, frame: Frame) -> Result<RawFrame> {
        let mut wire = BytesMut::new();
        encode_frame(frame.flags, &frame.body, &mut wire);
        let header_len = wire.len() - frame.body.len();
        Ok(RawFrame {
            flags: FrameFlags::from_bits(wire[0]),
            wire: wire.freeze(),
            header_len,
        })
    }
}
