//! Command frames: `name-len(1) name data` (RFC 37), and the commands the NULL
//! mechanism, subscriptions and heartbeats use, with symmetric encode/decode.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{printable, Error, Result};
use crate::metadata::Metadata;

/// The longest PING context a peer may send and we echo (RFC 37; libzmq
/// truncates longer ones to this, and so do we).
pub const MAX_PING_CONTEXT: usize = 16;

/// The largest heartbeat TTL we put on the wire, in deciseconds. libzmq
/// multiplies the TTL by 100 in a 16-bit integer, so anything above 655 ds
/// wraps around and makes it close the connection almost at once.
pub const MAX_WIRE_TTL_DECISECONDS: u16 = 655;

/// A command as name and data, without interpretation. Mechanisms parse the
/// commands of their handshake (HELLO, WELCOME, ...) from this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCommand {
    /// The command name (1..=255 ASCII letters on the wire).
    pub name: Bytes,
    /// Everything after the name.
    pub data: Bytes,
}

impl RawCommand {
    /// Splits a command frame body into name and data.
    pub fn parse(body: Bytes) -> Result<RawCommand> {
        let Some(&name_len) = body.first() else {
            return Err(malformed("command", "empty command frame"));
        };
        let name_len = usize::from(name_len);
        if name_len == 0 {
            return Err(malformed("command", "command name of length 0"));
        }
        if body.len() < 1 + name_len {
            return Err(malformed(
                "command",
                format!(
                    "name length {name_len} overruns the {}-byte frame",
                    body.len()
                ),
            ));
        }
        Ok(RawCommand {
            name: body.slice(1..1 + name_len),
            data: body.slice(1 + name_len..),
        })
    }

    /// The name for messages.
    pub fn name_lossy(&self) -> String {
        printable(&self.name)
    }

    /// Whether the name is `name`, compared case-sensitively as libzmq does.
    pub fn is(&self, name: &str) -> bool {
        self.name.as_ref() == name.as_bytes()
    }
}

/// A command frame body with a name and data, ready to be framed.
pub fn command_body(name: &str, data_len: usize, write_data: impl FnOnce(&mut BytesMut)) -> Bytes {
    debug_assert!(!name.is_empty() && name.len() <= 255);
    let mut out = BytesMut::with_capacity(1 + name.len() + data_len);
    out.put_u8(name.len() as u8);
    out.put_slice(name.as_bytes());
    write_data(&mut out);
    out.freeze()
}

/// The commands the codec understands after (and, for READY/ERROR, during)
/// the NULL handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Handshake complete; carries the sender's metadata.
    Ready(Metadata),
    /// The peer refuses us; carries its reason (libzmq sends a ZAP status code).
    Error(Bytes),
    /// ZMTP 3.1 subscription.
    Subscribe(Bytes),
    /// ZMTP 3.1 cancellation.
    Cancel(Bytes),
    /// Heartbeat: TTL in deciseconds and an opaque context of up to 16 bytes.
    Ping {
        /// How long the sender will wait for traffic, in deciseconds (0 = no limit).
        ttl_deciseconds: u16,
        /// Echoed back in the PONG.
        context: Bytes,
    },
    /// Heartbeat reply, echoing the PING's context.
    Pong(Bytes),
    /// A command this codec does not interpret. libzmq ignores these after
    /// the handshake, and so do we.
    Other(RawCommand),
}

impl Command {
    /// Interprets a command frame body.
    pub fn decode(body: Bytes) -> Result<Command> {
        let raw = RawCommand::parse(body)?;
        let data = raw.data.clone();
        Ok(match &raw.name[..] {
            b"READY" => Command::Ready(Metadata::decode(data)?),
            b"ERROR" => {
                let Some(&len) = data.first() else {
                    return Err(malformed("ERROR", "no reason length"));
                };
                let len = usize::from(len);
                if data.len() != 1 + len {
                    return Err(malformed(
                        "ERROR",
                        format!("reason length {len} but {} bytes follow", data.len() - 1),
                    ));
                }
                Command::Error(data.slice(1..))
            }
            b"SUBSCRIBE" => Command::Subscribe(data),
            b"CANCEL" => Command::Cancel(data),
            b"PING" => {
                if data.len() < 2 {
                    return Err(malformed(
                        "PING",
                        format!("{} bytes where a 2-byte TTL is required", data.len()),
                    ));
                }
                Command::Ping {
                    ttl_deciseconds: u16::from_be_bytes([data[0], data[1]]),
                    context: data.slice(2..),
                }
            }
            b"PONG" => Command::Pong(data),
            _ => Command::Other(raw),
        })
    }

    /// The frame body (name and data). Values that cannot be represented are
    /// clamped the way a libzmq peer needs: PING TTLs to 655 deciseconds,
    /// PING/PONG contexts to 16 bytes, ERROR reasons to 255 bytes.
    pub fn encode(&self) -> Bytes {
        match self {
            Command::Ready(md) => command_body("READY", md.encoded_len(), |out| md.encode(out)),
            Command::Error(reason) => {
                let reason = &reason[..reason.len().min(255)];
                command_body("ERROR", 1 + reason.len(), |out| {
                    out.put_u8(reason.len() as u8);
                    out.put_slice(reason);
                })
            }
            Command::Subscribe(topic) => {
                command_body("SUBSCRIBE", topic.len(), |out| out.put_slice(topic))
            }
            Command::Cancel(topic) => {
                command_body("CANCEL", topic.len(), |out| out.put_slice(topic))
            }
            Command::Ping {
                ttl_deciseconds,
                context,
            } => {
                let context = &context[..context.len().min(MAX_PING_CONTEXT)];
                command_body("PING", 2 + context.len(), |out| {
                    out.put_u16((*ttl_deciseconds).min(MAX_WIRE_TTL_DECISECONDS));
                    out.put_slice(context);
                })
            }
            Command::Pong(context) => {
                let context = &context[..context.len().min(MAX_PING_CONTEXT)];
                command_body("PONG", context.len(), |out| out.put_slice(context))
            }
            Command::Other(raw) => {
                let name = String::from_utf8_lossy(&raw.name);
                command_body(&name, raw.data.len(), |out| out.put_slice(&raw.data))
            }
        }
    }
}

/// Converts a TTL in milliseconds to what goes into a PING: deciseconds,
/// rounded down as libzmq does, and never above 655 (see
/// [`MAX_WIRE_TTL_DECISECONDS`]).
pub fn ttl_to_deciseconds(ttl_ms: u64) -> u16 {
    (ttl_ms / 100).min(u64::from(MAX_WIRE_TTL_DECISECONDS)) as u16
}

fn malformed(command: &str, reason: impl Into<String>) -> Error {
    Error::MalformedCommand {
        command: command.to_string(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{encode_frame, FrameFlags};

    fn framed(cmd: &Command) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_frame(FrameFlags::command(), &cmd.encode(), &mut out);
        out.to_vec()
    }

    /// Byte layouts libzmq emits (semantics document §2.3).
    #[test]
    fn matches_libzmq_command_bytes() {
        let mut md = Metadata::new();
        md.push("Socket-Type", "XPUB").unwrap();
        assert_eq!(
            framed(&Command::Ready(md)),
            b"\x04\x1a\x05READY\x0bSocket-Type\x00\x00\x00\x04XPUB"
        );
        assert_eq!(
            framed(&Command::Error("400".into())),
            b"\x04\x0a\x05ERROR\x03400"
        );
        assert_eq!(
            framed(&Command::Subscribe("A".into())),
            b"\x04\x0b\x09SUBSCRIBEA"
        );
        assert_eq!(framed(&Command::Cancel("A".into())), b"\x04\x08\x06CANCELA");
        let ping = Command::Ping {
            ttl_deciseconds: 50,
            context: Bytes::new(),
        };
        assert_eq!(framed(&ping), b"\x04\x07\x04PING\x00\x32");
        assert_eq!(framed(&Command::Pong(Bytes::new())), b"\x04\x05\x04PONG");
    }

    #[test]
    fn decodes_what_it_encodes() {
        let mut md = Metadata::new();
        md.push("Socket-Type", "SUB").unwrap();
        md.push("X-Node", "worker-1").unwrap();
        for cmd in [
            Command::Ready(md),
            Command::Error("500".into()),
            Command::Subscribe(Bytes::new()),
            Command::Cancel("zeek.cluster.".into()),
            Command::Ping {
                ttl_deciseconds: 655,
                context: "ctx".into(),
            },
            Command::Pong("ctx".into()),
        ] {
            assert_eq!(Command::decode(cmd.encode()).unwrap(), cmd);
        }
    }

    #[test]
    fn clamps_what_libzmq_cannot_take() {
        let ping = Command::Ping {
            ttl_deciseconds: 1000,
            context: Bytes::from(vec![1u8; 23]),
        };
        match Command::decode(ping.encode()).unwrap() {
            Command::Ping {
                ttl_deciseconds,
                context,
            } => {
                assert_eq!(ttl_deciseconds, 655);
                assert_eq!(context.len(), 16);
            }
            other => panic!("decoded {other:?}"),
        }
        assert_eq!(ttl_to_deciseconds(65_600), 655);
        assert_eq!(ttl_to_deciseconds(99), 0);
        assert_eq!(ttl_to_deciseconds(5_000), 50);
    }

    #[test]
    fn rejects_malformed_commands_with_a_reason() {
        for (body, needle) in [
            (&b""[..], "empty command frame"),
            (b"\x00", "length 0"),
            (b"\x09SUB", "overruns"),
            (b"\x04PING\x00", "2-byte TTL"),
            (b"\x05ERROR\x05ab", "reason length 5"),
            (b"\x05READY\x03ab", "overrun"),
        ] {
            let err = Command::decode(Bytes::from_static(body)).unwrap_err();
            assert!(err.to_string().contains(needle), "{body:?}: {err}");
        }
    }

    #[test]
    fn unknown_commands_are_kept_raw() {
        let cmd = Command::decode(Bytes::from_static(b"\x05HELLOabc")).unwrap();
        let Command::Other(raw) = &cmd else {
            panic!("{cmd:?}")
        };
        assert!(raw.is("HELLO"));
        assert_eq!(&raw.data[..], b"abc");
        assert_eq!(cmd.encode(), Bytes::from_static(b"\x05HELLOabc"));
    }
}
