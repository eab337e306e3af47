//! PLAIN (RFC 24) as libzmq 4.3 speaks it (semantics document §3.2): the
//! client sends HELLO with a username and password in the clear, the server
//! answers WELCOME (or ERROR once its authoriser refused), the client sends
//! INITIATE with its metadata and the server READY with its own. No
//! encryption: data frames go out as they are.
//!
//! A refusal is answered with libzmq's own (not the RFC's) ERROR form: see
//! [`LIBZMQ_PLAIN_ERROR_PREFIX`].

use bytes::{BufMut, Bytes};

use super::auth::{Authorizer, Credentials};
use super::{Mechanism, Step};
use crate::command::{command_body, Command, RawCommand};
use crate::error::{printable, Error, Result};
use crate::frame::Frame;
use crate::greeting::MechanismName;
use crate::metadata::Metadata;

fn malformed(command: &str, reason: impl Into<String>) -> Error {
    Error::MalformedCommand {
        command: command.to_string(),
        reason: reason.into(),
    }
}

/// How a PLAIN ERROR starts as libzmq 4.3 writes and reads it.
///
/// libzmq's PLAIN ERROR is not the RFC's: its prefix is the C literal
/// `"\x05ERROR"`, where the hex escape swallows the `E`, so the command
/// libzmq sends, and the only ERROR its PLAIN client recognises, is
/// `5e 'RROR' len reason` (9 bytes for `400`), a command name 94 bytes long
/// to anyone else. Checked against libzmq 4.3.5: sent the RFC's
/// `05 'ERROR' 03 '400'`, a libzmq PLAIN client reports a protocol error
/// (unexpected command); sent libzmq's form, it reports an authentication
/// failure with status 400, as with a libzmq server. So [`PlainServer`]
/// sends libzmq's form, and [`PlainClient`] takes both. CURVE's ERROR is the
/// RFC's in libzmq too.
pub const LIBZMQ_PLAIN_ERROR_PREFIX: &[u8] = b"\x5eRROR";

/// libzmq's PLAIN ERROR for `reason`.
fn libzmq_plain_error(reason: &str) -> Bytes {
    let reason = &reason.as_bytes()[..reason.len().min(255)];
    let mut out = Vec::with_capacity(LIBZMQ_PLAIN_ERROR_PREFIX.len() + 1 + reason.len());
    out.extend_from_slice(LIBZMQ_PLAIN_ERROR_PREFIX);
    out.push(reason.len() as u8);
    out.extend_from_slice(reason);
    Bytes::from(out)
}

/// Checks that `body` is the command `expected`; an ERROR from the peer, in
/// the RFC's form or libzmq's, becomes [`Error::PeerError`]. Returns the
/// command's data.
fn expect(body: Bytes, expected: &'static str, phase: &'static str) -> Result<Bytes> {
    if let Some(rest) = body.strip_prefix(LIBZMQ_PLAIN_ERROR_PREFIX) {
        return match rest.split_first() {
            Some((&len, reason)) if reason.len() == usize::from(len) => {
                Err(Error::PeerError(printable(reason)))
            }
            _ => Err(malformed(
                "ERROR",
                "libzmq-style PLAIN ERROR whose reason length does not match",
            )),
        };
    }
    let raw = RawCommand::parse(body.clone())?;
    if raw.is(expected) {
        return Ok(raw.data);
    }
    if raw.is("ERROR") {
        if let Command::Error(reason) = Command::decode(body)? {
            return Err(Error::PeerError(printable(&reason)));
        }
    }
    Err(Error::UnexpectedCommand {
        command: raw.name_lossy(),
        phase,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Start,
    AwaitWelcome,
    AwaitReady,
    Done,
}

/// The client side of PLAIN (`ZMQ_PLAIN_USERNAME`/`ZMQ_PLAIN_PASSWORD`).
pub struct PlainClient {
    username: Bytes,
    password: Bytes,
    state: ClientState,
}

impl PlainClient {
    /// A client that logs in as `username` with `password`, each at most 255 bytes.
    pub fn new(username: impl Into<Bytes>, password: impl Into<Bytes>) -> Result<PlainClient> {
        let username = username.into();
        let password = password.into();
        for (what, value) in [("username", &username), ("password", &password)] {
            if value.len() > 255 {
                return Err(Error::InvalidArgument(format!(
                    "a PLAIN {what} is at most 255 bytes, got {}",
                    value.len()
                )));
            }
        }
        Ok(PlainClient {
            username,
            password,
            state: ClientState::Start,
        })
    }
}

impl std::fmt::Debug for PlainClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainClient")
            .field("username", &printable(&self.username))
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Mechanism for PlainClient {
    fn name(&self) -> MechanismName {
        MechanismName::PLAIN
    }

    fn as_server(&self) -> bool {
        false
    }

    fn start(&mut self, _local: &Metadata, send: &mut Vec<Bytes>) -> Result<Step> {
        let (user, pass) = (&self.username, &self.password);
        send.push(command_body("HELLO", 2 + user.len() + pass.len(), |out| {
            out.put_u8(user.len() as u8);
            out.put_slice(user);
            out.put_u8(pass.len() as u8);
            out.put_slice(pass);
        }));
        self.state = ClientState::AwaitWelcome;
        Ok(Step::Continue)
    }

    fn on_frame(&mut self, frame: Frame, local: &Metadata, send: &mut Vec<Bytes>) -> Result<Step> {
        match self.state {
            ClientState::AwaitWelcome => {
                let data = expect(frame.body, "WELCOME", "PLAIN handshake (awaiting WELCOME)")?;
                if !data.is_empty() {
                    return Err(malformed(
                        "WELCOME",
                        format!("a PLAIN WELCOME has no data, got {} bytes", data.len()),
                    ));
                }
                send.push(command_body("INITIATE", local.encoded_len(), |out| {
                    local.encode(out)
                }));
                self.state = ClientState::AwaitReady;
                Ok(Step::Continue)
            }
            ClientState::AwaitReady => {
                let data = expect(frame.body, "READY", "PLAIN handshake (awaiting READY)")?;
                let metadata = Metadata::decode(data)?;
                self.state = ClientState::Done;
                Ok(Step::Done(metadata))
            }
            ClientState::Start | ClientState::Done => Err(Error::UnexpectedCommand {
                command: RawCommand::parse(frame.body)
                    .map(|raw| raw.name_lossy())
                    .unwrap_or_else(|_| "unreadable".into()),
                phase: "PLAIN handshake",
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    AwaitHello,
    AwaitInitiate,
    Done,
}

/// The server side of PLAIN (`ZMQ_PLAIN_SERVER`). libzmq refuses PLAIN
/// clients outright without a ZAP handler; here the authoriser is required.
/// A refusal is answered with libzmq's own ERROR form
/// ([`LIBZMQ_PLAIN_ERROR_PREFIX`]).
pub struct PlainServer {
    authorizer: Box<dyn Authorizer>,
    state: ServerState,
}

impl PlainServer {
    /// A server that lets in the clients `authorizer` accepts.
    pub fn new(authorizer: Box<dyn Authorizer>) -> PlainServer {
        PlainServer {
            authorizer,
            state: ServerState::AwaitHello,
        }
    }

    fn on_hello(&mut self, body: Bytes, send: &mut Vec<Bytes>) -> Result<()> {
        let data = expect(body, "HELLO", "PLAIN handshake (awaiting HELLO)")?;
        let Some(&user_len) = data.first() else {
            return Err(malformed("HELLO", "no username length"));
        };
        let user_end = 1 + usize::from(user_len);
        let Some(&pass_len) = data.get(user_end) else {
            return Err(malformed(
                "HELLO",
                format!(
                    "username of {user_len} bytes and the password length overrun the {} bytes of data",
                    data.len()
                ),
            ));
        };
        let pass_end = user_end + 1 + usize::from(pass_len);
        if data.len() != pass_end {
            return Err(malformed(
                "HELLO",
                format!(
                    "username of {user_len} and password of {pass_len} bytes need {pass_end} bytes of data, got {}",
                    data.len()
                ),
            ));
        }
        let credentials = Credentials::Plain {
            username: &data[1..user_end],
            password: &data[user_end + 1..pass_end],
        };
        if let Err(refusal) = self.authorizer.authorize(&credentials) {
            if let Some(reason) = refusal.error_reason() {
                send.push(libzmq_plain_error(reason));
            }
            return Err(Error::Refused {
                mechanism: "PLAIN",
                reason: refusal.describe(),
            });
        }
        send.push(Bytes::from_static(b"\x07WELCOME"));
        Ok(())
    }
}

impl std::fmt::Debug for PlainServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainServer")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Mechanism for PlainServer {
    fn name(&self) -> MechanismName {
        MechanismName::PLAIN
    }

    fn as_server(&self) -> bool {
        true
    }

    fn start(&mut self, _local: &Metadata, _send: &mut Vec<Bytes>) -> Result<Step> {
        Ok(Step::Continue)
    }

    fn on_frame(&mut self, frame: Frame, local: &Metadata, send: &mut Vec<Bytes>) -> Result<Step> {
        match self.state {
            ServerState::AwaitHello => {
                self.state = ServerState::Done;
                self.on_hello(frame.body, send)?;
                self.state = ServerState::AwaitInitiate;
                Ok(Step::Continue)
            }
            ServerState::AwaitInitiate => {
                let data = expect(
                    frame.body,
                    "INITIATE",
                    "PLAIN handshake (awaiting INITIATE)",
                )?;
                let metadata = Metadata::decode(data)?;
                send.push(Command::Ready(local.clone()).encode());
                self.state = ServerState::Done;
                Ok(Step::Done(metadata))
            }
            ServerState::Done => Err(Error::UnexpectedCommand {
                command: RawCommand::parse(frame.body)
                    .map(|raw| raw.name_lossy())
                    .unwrap_or_else(|_| "unreadable".into()),
                phase: "PLAIN handshake",
            }),
        }
    }
}
