//! Security mechanisms. The session runs the greeting and framing; a
//! mechanism runs the handshake that follows and, if it encrypts, wraps each
//! frame afterwards. NULL lives here; PLAIN and CURVE implement the same trait.

use bytes::Bytes;

use crate::error::Result;
use crate::frame::{Frame, FrameFlags};
use crate::greeting::MechanismName;
use crate::metadata::Metadata;

mod null;

pub use null::Null;

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

    /// Unwraps an incoming frame.
    fn open(&mut self, frame: Frame) -> Result<Frame> {
        Ok(frame)
    }
}
