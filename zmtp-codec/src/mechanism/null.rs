//! The NULL mechanism: each side sends READY with its metadata right after the
//! greeting, without waiting for the other's (as libzmq does), and the
//! handshake is done when the peer's READY arrives.

use bytes::Bytes;

use super::{Mechanism, Step};
use crate::command::{Command, RawCommand};
use crate::error::{printable, Error, Result};
use crate::frame::Frame;
use crate::greeting::MechanismName;
use crate::metadata::Metadata;

/// The NULL mechanism: no authentication, no encryption.
#[derive(Debug, Default, Clone)]
pub struct Null {
    _private: (),
}

impl Null {
    /// A NULL mechanism.
    pub fn new() -> Null {
        Null::default()
    }
}

impl Mechanism for Null {
    fn name(&self) -> MechanismName {
        MechanismName::NULL
    }

    fn as_server(&self) -> bool {
        false
    }

    fn start(&mut self, local: &Metadata, send: &mut Vec<Bytes>) -> Result<Step> {
        send.push(Command::Ready(local.clone()).encode());
        Ok(Step::Continue)
    }

    fn on_frame(
        &mut self,
        frame: Frame,
        _local: &Metadata,
        _send: &mut Vec<Bytes>,
    ) -> Result<Step> {
        // libzmq's handshake does not look at the COMMAND bit, so a READY sent
        // as a data frame is accepted; we are as lenient.
        let raw = RawCommand::parse(frame.body.clone())?;
        match Command::decode(frame.body)? {
            Command::Ready(metadata) => Ok(Step::Done(metadata)),
            Command::Error(reason) => Err(Error::PeerError(printable(&reason))),
            _ => Err(Error::UnexpectedCommand {
                command: raw.name_lossy(),
                phase: "NULL handshake",
            }),
        }
    }
}
