//! CURVE: ZMTP-CURVE (RFC 25) carrying CurveZMQ (RFC 26), as libzmq 4.3
//! speaks it (semantics document §3.3).
//!
//! ```text
//! client                                  server
//! HELLO    C', Box[64 zeros](C'->S)    ->
//!                                      <- WELCOME  Box[S', cookie](S->C')
//! INITIATE cookie, Box[C, vouch, metadata](C'->S')  ->   authorise C
//!                                      <- READY    Box[metadata](S'->C')  (or ERROR "400")
//! MESSAGE  Box[flags, payload]         <->
//! ```
//!
//! Boxes are NaCl `crypto_box` (X25519, XSalsa20-Poly1305) in libsodium's
//! "easy" layout, MAC first. The transient shared key is precomputed once
//! per connection (`crypto_box_beforenm`), so a MESSAGE costs one copy
//! into its output buffer, encrypted in place, and one allocation.

use bytes::{BufMut, Bytes, BytesMut};
use crypto_box::aead::generic_array::GenericArray;
use crypto_box::aead::{AeadInPlace, KeyInit};
use crypto_box::SalsaBox;
use crypto_secretbox::XSalsa20Poly1305;
use zeroize::Zeroizing;

use super::auth::{Authorizer, Credentials};
use super::fastbox::{FastBox, PrefixedBox};
use super::keys::{KeyPair, OsRandom, PublicKey, Randomness, SecretKey};
use super::{Mechanism, Step};
use crate::command::{Command, RawCommand};
use crate::error::{printable, Error, Result};
use crate::frame::{Frame, FrameFlags, FrameHeader, RawFrame};
use crate::greeting::MechanismName;
use crate::metadata::Metadata;

/// Body size of HELLO.
pub const HELLO_SIZE: usize = 200;
/// Body size of WELCOME.
pub const WELCOME_SIZE: usize = 168;
/// Smallest INITIATE body (no metadata).
pub const INITIATE_MIN_SIZE: usize = 257;
/// Smallest READY body (no metadata).
pub const READY_MIN_SIZE: usize = 30;
/// Smallest MESSAGE body (flags byte, empty payload).
pub const MESSAGE_MIN_SIZE: usize = 33;
/// `\x07MESSAGE` and the short nonce, before the box.
const MESSAGE_HEADER: usize = 16;
/// The Poly1305 MAC in front of every box.
const TAG: usize = 16;

const HELLO_PREFIX: &[u8; 16] = b"CurveZMQHELLO---";
const WELCOME_PREFIX: &[u8; 8] = b"WELCOME-";
const COOKIE_PREFIX: &[u8; 8] = b"COOKIE--";
const VOUCH_PREFIX: &[u8; 8] = b"VOUCH---";
const INITIATE_PREFIX: &[u8; 16] = b"CurveZMQINITIATE";
const READY_PREFIX: &[u8; 16] = b"CurveZMQREADY---";
const MESSAGE_FROM_CLIENT: &[u8; 16] = b"CurveZMQMESSAGEC";
const MESSAGE_FROM_SERVER: &[u8; 16] = b"CurveZMQMESSAGES";

/// Inner flag bits of a MESSAGE plaintext (libzmq's `msg_t` flags).
const INNER_MORE: u8 = 0x01;
const INNER_COMMAND: u8 = 0x02;

fn short_nonce(prefix: &[u8; 16], counter: u64) -> [u8; 24] {
    let mut nonce = [0u8; 24];
    nonce[..16].copy_from_slice(prefix);
    nonce[16..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

fn long_nonce(prefix: &[u8; 8], random: &[u8]) -> [u8; 24] {
    let mut nonce = [0u8; 24];
    nonce[..8].copy_from_slice(prefix);
    nonce[8..].copy_from_slice(&random[..16]);
    nonce
}

/// The three boxes CURVE uses: `crypto_box` between long-term or transient
/// keys in the handshake (crypto_box's [`SalsaBox`]), the cookie's
/// `crypto_secretbox`, and the precomputed transient box of the data path
/// ([`FastBox`]).
trait Boxer {
    /// Encrypts `text` in place; returns the MAC.
    fn seal(&self, nonce: &[u8; 24], text: &mut [u8]) -> Result<[u8; TAG]>;
    /// Checks `tag` and decrypts `text` in place.
    fn open(&self, nonce: &[u8; 24], tag: &[u8], text: &mut [u8]) -> bool;
}

fn aead_seal(cipher: &impl AeadInPlace, nonce: &[u8; 24], text: &mut [u8]) -> Result<[u8; TAG]> {
    let mac = cipher
        .encrypt_in_place_detached(GenericArray::from_slice(nonce), b"", text)
        .map_err(|_| Error::CurveExhausted("the box cannot be sealed".into()))?;
    let mut tag = [0u8; TAG];
    tag.copy_from_slice(&mac);
    Ok(tag)
}

fn aead_open(cipher: &impl AeadInPlace, nonce: &[u8; 24], tag: &[u8], text: &mut [u8]) -> bool {
    cipher
        .decrypt_in_place_detached(
            GenericArray::from_slice(nonce),
            b"",
            text,
            GenericArray::from_slice(tag),
        )
        .is_ok()
}

impl Boxer for SalsaBox {
    fn seal(&self, nonce: &[u8; 24], text: &mut [u8]) -> Result<[u8; TAG]> {
        aead_seal(self, nonce, text)
    }
    fn open(&self, nonce: &[u8; 24], tag: &[u8], text: &mut [u8]) -> bool {
        aead_open(self, nonce, tag, text)
    }
}

impl Boxer for XSalsa20Poly1305 {
    fn seal(&self, nonce: &[u8; 24], text: &mut [u8]) -> Result<[u8; TAG]> {
        aead_seal(self, nonce, text)
    }
    fn open(&self, nonce: &[u8; 24], tag: &[u8], text: &mut [u8]) -> bool {
        aead_open(self, nonce, tag, text)
    }
}

impl Boxer for FastBox {
    fn seal(&self, nonce: &[u8; 24], text: &mut [u8]) -> Result<[u8; TAG]> {
        Ok(FastBox::seal(self, nonce, text))
    }
    fn open(&self, nonce: &[u8; 24], tag: &[u8], text: &mut [u8]) -> bool {
        FastBox::open(self, nonce, tag, text)
    }
}

/// Encrypts `buf[TAG..]` in place and puts the MAC in `buf[..TAG]`.
fn seal_in_place(cipher: &impl Boxer, nonce: &[u8; 24], buf: &mut [u8]) -> Result<()> {
    let (tag, text) = buf.split_at_mut(TAG);
    tag.copy_from_slice(&cipher.seal(nonce, text)?);
    Ok(())
}

/// Checks the MAC in `tag` and decrypts `text` in place.
fn open_detached(
    cipher: &impl Boxer,
    nonce: &[u8; 24],
    tag: &[u8],
    text: &mut [u8],
    what: &'static str,
) -> Result<()> {
    if cipher.open(nonce, tag, text) {
        Ok(())
    } else {
        Err(Error::BadBox { what })
    }
}

/// Opens a box `[MAC | ciphertext]` in place; afterwards `buf[TAG..]` is the plaintext.
fn open_in_place(
    cipher: &impl Boxer,
    nonce: &[u8; 24],
    buf: &mut [u8],
    what: &'static str,
) -> Result<()> {
    if buf.len() < TAG {
        return Err(Error::BadBox { what });
    }
    let (tag, text) = buf.split_at_mut(TAG);
    open_detached(cipher, nonce, tag, text, what)
}

fn precompute(public: &PublicKey, secret: &SecretKey) -> SalsaBox {
    SalsaBox::new(&public.to_box_key(), &secret.to_box_key())
}

fn key_at(bytes: &[u8], at: usize) -> PublicKey {
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes[at..at + 32]);
    PublicKey::from_bytes(key)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut be = [0u8; 8];
    be.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(be)
}

fn malformed(command: &str, reason: impl Into<String>) -> Error {
    Error::MalformedCommand {
        command: command.to_string(),
        reason: reason.into(),
    }
}

/// Parses a handshake command and checks it is `expected`; an ERROR from the
/// peer becomes [`Error::PeerError`].
fn expect_command(body: &Bytes, expected: &'static str, phase: &'static str) -> Result<()> {
    let raw = RawCommand::parse(body.clone())?;
    if raw.is(expected) {
        return Ok(());
    }
    if raw.is("ERROR") {
        if let Command::Error(reason) = Command::decode(body.clone())? {
            return Err(Error::PeerError(printable(&reason)));
        }
    }
    Err(Error::UnexpectedCommand {
        command: raw.name_lossy(),
        phase,
    })
}

fn check_size(body: &[u8], command: &str, exact: Option<usize>, min: usize) -> Result<()> {
    match exact {
        Some(size) if body.len() != size => Err(malformed(
            command,
            format!("a CURVE {command} is {size} bytes, got {}", body.len()),
        )),
        None if body.len() < min => Err(malformed(
            command,
            format!(
                "a CURVE {command} is at least {min} bytes, got {}",
                body.len()
            ),
        )),
        _ => Ok(()),
    }
}

/// The encrypted data phase: one precomputed key (and its MESSAGE keys for
/// each direction), a send counter and the highest nonce the peer has used.
struct Traffic {
    cipher: FastBox,
    send: PrefixedBox,
    recv: PrefixedBox,
    next_send: u64,
    last_recv: u64,
    send_scratch: Scratch,
    recv_scratch: Scratch,
}

/// Boxes are cut from shared chunks: a chunk costs one allocation for many
/// messages and, once every message cut from it has dropped, is reused in
/// place, its pages still mapped. (Allocated one by one, 4 KiB boxes in
/// flight made glibc grow and trim its heap, a tenth of the sender's CPU
/// in page faults.)
struct Scratch {
    small: Chunks,
    /// For pieces above `small.piece_max` (sending only): large sealed
    /// boxes (Zeek's 64 KiB log batches) churned the heap just as small
    /// ones did, page faults and all. Its first chunk is allocated only
    /// when such a piece is asked for. Boxed although an empty `BytesMut`
    /// allocates nothing: in place, the two `Scratch`es made [`Traffic`]
    /// 80 bytes larger (376 bytes), and `ServerState`, which holds it,
    /// too large a variant for clippy; this is touched only for pieces
    /// above 16 KiB, the rest of `Traffic` on every message.
    large: Option<Box<Chunks>>,
}

/// Pieces up to `piece_max` cut from chunks of `chunk_size`.
struct Chunks {
    chunk: BytesMut,
    piece_max: usize,
    chunk_size: usize,
}

impl Chunks {
    fn new(piece_max: usize, chunk_size: usize) -> Chunks {
        Chunks {
            chunk: BytesMut::new(),
            piece_max,
            chunk_size,
        }
    }

    fn piece(&mut self, len: usize) -> BytesMut {
        if self.chunk.capacity() < len {
            // Takes the chunk back whole when no piece of it is alive;
            // allocates a new one otherwise.
            self.chunk.reserve(self.chunk_size);
        }
        let rest = self.chunk.split_off(len);
        std::mem::replace(&mut self.chunk, rest)
    }
}

impl Scratch {
    /// Sealed MESSAGEs live only until the socket has taken them, so
    /// pieces up to 16 KiB come from 64 KiB chunks, and pieces up to
    /// 256 KiB from 1 MiB chunks (made only once such a piece is asked
    /// for).
    fn for_sending() -> Scratch {
        Scratch {
            small: Chunks::new(16 * 1024, 64 * 1024),
            large: Some(Box::new(Chunks::new(256 * 1024, 1 << 20))),
        }
    }

    /// Opened messages go to the application, which may keep some for
    /// long: only small ones share a chunk, so that a kept message pins
    /// at most a few kilobytes.
    fn for_receiving() -> Scratch {
        Scratch {
            small: Chunks::new(512, 8 * 1024),
            large: None,
        }
    }

    /// An empty buffer with room for exactly `len` bytes.
    fn piece(&mut self, len: usize) -> BytesMut {
        if len <= self.small.piece_max {
            return self.small.piece(len);
        }
        match &mut self.large {
            Some(large) if len <= large.piece_max => large.piece(len),
            _ => BytesMut::with_capacity(len),
        }
    }
}

impl Traffic {
    fn new(
        cipher: FastBox,
        sending: &[u8; 16],
        receiving: &[u8; 16],
        next_send: u64,
        last_recv: u64,
    ) -> Traffic {
        Traffic {
            send: cipher.with_prefix(sending),
            recv: cipher.with_prefix(receiving),
            cipher,
            next_send,
            last_recv,
            send_scratch: Scratch::for_sending(),
            recv_scratch: Scratch::for_receiving(),
        }
    }

    fn take_nonce(&mut self) -> Result<u64> {
        let nonce = self.next_send;
        self.next_send = nonce
            .checked_add(1)
            .ok_or_else(|| Error::CurveExhausted("2^64 messages sent: nonces used up".into()))?;
        Ok(nonce)
    }

    fn seal(&mut self, flags: FrameFlags, payload: &[u8]) -> Result<Frame> {
        let nonce = self.take_nonce()?;
        let mut inner = 0;
        if flags.more() {
            inner |= INNER_MORE;
        }
        if flags.is_command() {
            inner |= INNER_COMMAND;
        }
        let mut body = self.send_scratch.piece(MESSAGE_MIN_SIZE + payload.len());
        body.put_slice(b"\x07MESSAGE");
        body.put_u64(nonce);
        body.put_bytes(0, TAG);
        body.put_u8(inner);
        body.put_slice(payload);
        let (tag, text) = body[MESSAGE_HEADER..].split_at_mut(TAG);
        tag.copy_from_slice(&self.send.seal(nonce, text));
        // The outer frame is a plain data frame: libzmq never sets COMMAND
        // or MORE on it, and ORs what it finds there into the message.
        Ok(Frame {
            flags: FrameFlags::data(false),
            body: body.freeze(),
        })
    }

    /// Opens a MESSAGE into the plain ZMTP wire form of the frame it carries,
    /// so a lone frame can become a message without another copy.
    fn open(&mut self, frame: Frame) -> Result<RawFrame> {
        let body = &frame.body;
        if body.get(..8) != Some(b"\x07MESSAGE") {
            let raw = RawCommand::parse(body.clone())?;
            if raw.is("ERROR") {
                if let Ok(Command::Error(reason)) = Command::decode(body.clone()) {
                    return Err(Error::PeerError(printable(&reason)));
                }
            }
            return Err(Error::UnexpectedCommand {
                command: raw.name_lossy(),
                phase: "CURVE traffic (only MESSAGE commands may follow READY)",
            });
        }
        check_size(body, "MESSAGE", None, MESSAGE_MIN_SIZE)?;
        let nonce = u64_at(body, 8);
        if nonce <= self.last_recv {
            return Err(Error::NonceOutOfOrder {
                command: "MESSAGE",
                nonce,
                last: self.last_recv,
            });
        }
        let ciphertext = &body[MESSAGE_HEADER + TAG..];
        let payload_len = ciphertext.len() - 1;
        let header_len = FrameHeader::encoded_len(payload_len);
        // Decrypt where the flags byte lands just before the payload, then
        // write the frame header over the bytes in front of it.
        let mut wire = self.recv_scratch.piece(header_len + payload_len);
        wire.put_bytes(0, header_len - 1);
        wire.put_slice(ciphertext);
        let tag = &body[MESSAGE_HEADER..MESSAGE_HEADER + TAG];
        if !self.recv.open(nonce, tag, &mut wire[header_len - 1..]) {
            return Err(Error::BadBox { what: "MESSAGE" });
        }
        self.last_recv = nonce;
        let inner = wire[header_len - 1];
        // libzmq ORs the outer frame's MORE and COMMAND bits into the message.
        let mut bits = frame.flags.bits() & (FrameFlags::MORE | FrameFlags::COMMAND);
        if inner & INNER_MORE != 0 {
            bits |= FrameFlags::MORE;
        }
        if inner & INNER_COMMAND != 0 {
            bits |= FrameFlags::COMMAND;
        }
        let header = FrameHeader::new(FrameFlags::from_bits(bits), payload_len);
        wire[..header_len].copy_from_slice(header.as_bytes());
        Ok(RawFrame {
            flags: FrameFlags::from_bits(header.as_bytes()[0]),
            wire: wire.freeze(),
            header_len,
        })
    }
}

impl std::fmt::Debug for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traffic")
            .field("next_send", &self.next_send)
            .field("last_recv", &self.last_recv)
            .finish_non_exhaustive()
    }
}

enum ClientState {
    Start,
    AwaitWelcome {
        transient: SecretKey,
        transient_public: PublicKey,
        /// Box(S, c'), which also opens WELCOME.
        hello_box: Box<SalsaBox>,
    },
    AwaitReady(Traffic),
    Ready(Traffic),
    Failed,
}

impl ClientState {
    fn name(&self) -> &'static str {
        match self {
            ClientState::Start => "start",
            ClientState::AwaitWelcome { .. } => "awaiting WELCOME",
            ClientState::AwaitReady(_) => "awaiting READY",
            ClientState::Ready(_) => "ready",
            ClientState::Failed => "failed",
        }
    }
}

/// The client side of CURVE: knows the server's public key in advance and
/// proves its own long-term key in the vouch.
///
/// Randomness is drawn in this order: the transient secret key (32 bytes,
/// when the greeting is done), then the VOUCH nonce (16, on WELCOME).
pub struct CurveClient {
    keys: KeyPair,
    server: PublicKey,
    rng: Box<dyn Randomness>,
    state: ClientState,
}

impl CurveClient {
    /// A client with long-term `keys` for the server whose public key is
    /// `server` (libzmq's `ZMQ_CURVE_SERVERKEY`), using the OS generator.
    pub fn new(keys: KeyPair, server: PublicKey) -> CurveClient {
        CurveClient {
            keys,
            server,
            rng: Box::new(OsRandom),
            state: ClientState::Start,
        }
    }

    /// Replaces the randomness source (for reproducible tests).
    pub fn with_randomness(mut self, rng: Box<dyn Randomness>) -> CurveClient {
        self.rng = rng;
        self
    }

    fn hello(&mut self, send: &mut Vec<Bytes>) -> Result<()> {
        let transient = SecretKey::generate(self.rng.as_mut())?;
        let transient_public = transient.public_key();
        let hello_box = Box::new(precompute(&self.server, &transient));
        let nonce = 1u64;
        let mut body = BytesMut::with_capacity(HELLO_SIZE);
        body.put_slice(b"\x05HELLO\x01\x00");
        body.put_bytes(0, 72);
        body.put_slice(transient_public.as_bytes());
        body.put_u64(nonce);
        body.put_bytes(0, TAG + 64);
        seal_in_place(
            hello_box.as_ref(),
            &short_nonce(HELLO_PREFIX, nonce),
            &mut body[120..],
        )?;
        send.push(body.freeze());
        self.state = ClientState::AwaitWelcome {
            transient,
            transient_public,
            hello_box,
        };
        Ok(())
    }

    fn on_welcome(
        &mut self,
        body: &Bytes,
        transient: SecretKey,
        transient_public: PublicKey,
        hello_box: &SalsaBox,
        local: &Metadata,
        send: &mut Vec<Bytes>,
    ) -> Result<()> {
        expect_command(body, "WELCOME", "CURVE handshake (awaiting WELCOME)")?;
        check_size(body, "WELCOME", Some(WELCOME_SIZE), WELCOME_SIZE)?;
        let mut plain = [0u8; WELCOME_SIZE - 24];
        plain.copy_from_slice(&body[24..]);
        open_in_place(
            hello_box,
            &long_nonce(WELCOME_PREFIX, &body[8..24]),
            &mut plain,
            "WELCOME",
        )?;
        let server_transient = key_at(&plain, TAG);
        let cookie = &plain[TAG + 32..];
        let cipher = FastBox::new(&server_transient, &transient);

        // The vouch: our transient key and the server's, boxed from our
        // long-term key to the server's transient one.
        let mut vouch_nonce = [0u8; 16];
        self.rng.fill(&mut vouch_nonce)?;
        let mut vouch = [0u8; TAG + 64];
        vouch[TAG..TAG + 32].copy_from_slice(transient_public.as_bytes());
        vouch[TAG + 32..].copy_from_slice(self.server.as_bytes());
        seal_in_place(
            &precompute(&server_transient, &self.keys.secret),
            &long_nonce(VOUCH_PREFIX, &vouch_nonce),
            &mut vouch,
        )?;

        let nonce = 2u64;
        let mut out = BytesMut::with_capacity(INITIATE_MIN_SIZE + local.encoded_len());
        out.put_slice(b"\x08INITIATE");
        out.put_slice(cookie);
        out.put_u64(nonce);
        out.put_bytes(0, TAG);
        out.put_slice(self.keys.public.as_bytes());
        out.put_slice(&vouch_nonce);
        out.put_slice(&vouch);
        local.encode(&mut out);
        seal_in_place(
            &cipher,
            &short_nonce(INITIATE_PREFIX, nonce),
            &mut out[113..],
        )?;
        send.push(out.freeze());
        drop(transient);
        self.state = ClientState::AwaitReady(Traffic::new(
            cipher,
            MESSAGE_FROM_CLIENT,
            MESSAGE_FROM_SERVER,
            3,
            0,
        ));
        Ok(())
    }

    fn on_ready(&mut self, body: &Bytes, mut traffic: Traffic) -> Result<Metadata> {
        expect_command(body, "READY", "CURVE handshake (awaiting READY)")?;
        check_size(body, "READY", None, READY_MIN_SIZE)?;
        let nonce = u64_at(body, 6);
        if nonce <= traffic.last_recv {
            return Err(Error::NonceOutOfOrder {
                command: "READY",
                nonce,
                last: traffic.last_recv,
            });
        }
        let mut plain = BytesMut::from(&body[14..]);
        open_in_place(
            &traffic.cipher,
            &short_nonce(READY_PREFIX, nonce),
            &mut plain,
            "READY",
        )?;
        let metadata = Metadata::decode(plain.freeze().slice(TAG..))?;
        traffic.last_recv = nonce;
        self.state = ClientState::Ready(traffic);
        Ok(metadata)
    }
}

impl std::fmt::Debug for CurveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveClient")
            .field("public", &self.keys.public)
            .field("server", &self.server)
            .field("state", &self.state.name())
            .finish_non_exhaustive()
    }
}

impl Mechanism for CurveClient {
    fn name(&self) -> MechanismName {
        MechanismName::CURVE
    }

    fn as_server(&self) -> bool {
        false
    }

    fn start(&mut self, _local: &Metadata, send: &mut Vec<Bytes>) -> Result<Step> {
        if !matches!(self.state, ClientState::Start) {
            return Err(Error::InvalidArgument(
                "CURVE handshake started twice".into(),
            ));
        }
        self.state = ClientState::Failed;
        self.hello(send)?;
        Ok(Step::Continue)
    }

    fn on_frame(&mut self, frame: Frame, local: &Metadata, send: &mut Vec<Bytes>) -> Result<Step> {
        match std::mem::replace(&mut self.state, ClientState::Failed) {
            ClientState::AwaitWelcome {
                transient,
                transient_public,
                hello_box,
            } => {
                self.on_welcome(
                    &frame.body,
                    transient,
                    transient_public,
                    &hello_box,
                    local,
                    send,
                )?;
                Ok(Step::Continue)
            }
            ClientState::AwaitReady(traffic) => {
                Ok(Step::Done(self.on_ready(&frame.body, traffic)?))
            }
            other => {
                let ready = other.name() == "ready";
                self.state = other;
                Err(unexpected_command(frame.body, ready))
            }
        }
    }

    fn transforms_frames(&self) -> bool {
        true
    }

    fn seal(&mut self, flags: FrameFlags, body: Bytes) -> Result<Frame> {
        match &mut self.state {
            ClientState::Ready(traffic) => traffic.seal(flags, &body),
            _ => Err(Error::NotReady),
        }
    }

    fn open(&mut self, frame: Frame) -> Result<RawFrame> {
        match &mut self.state {
            ClientState::Ready(traffic) => traffic.open(frame),
            _ => Err(Error::NotReady),
        }
    }
}

/// A command frame the mechanism does not expect where it stands.
fn unexpected_command(body: Bytes, ready: bool) -> Error {
    let command = RawCommand::parse(body)
        .map(|raw| raw.name_lossy())
        .unwrap_or_else(|_| "unreadable".into());
    Error::UnexpectedCommand {
        command,
        phase: if ready {
            "CURVE traffic"
        } else {
            "CURVE handshake"
        },
    }
}

/// What the server keeps between HELLO and INITIATE.
struct Welcomed {
    client_transient: PublicKey,
    transient: SecretKey,
    cookie_key: Zeroizing<[u8; 32]>,
    hello_nonce: u64,
}

enum ServerState {
    AwaitHello,
    AwaitInitiate(Welcomed),
    Ready(Traffic),
    Failed,
}

impl ServerState {
    fn name(&self) -> &'static str {
        match self {
            ServerState::AwaitHello => "awaiting HELLO",
            ServerState::AwaitInitiate(_) => "awaiting INITIATE",
            ServerState::Ready(_) => "ready",
            ServerState::Failed => "failed",
        }
    }
}

/// The server side of CURVE: answers HELLO with a WELCOME whose cookie is
/// sealed with a key made for this connection alone (and wiped once
/// INITIATE has been checked), and asks its [`Authorizer`] about the
/// client's long-term key before sending READY. A refused client gets the
/// ERROR command libzmq sends (`400`/`500`).
///
/// Randomness is drawn on HELLO, in this order: the transient secret key
/// (32 bytes), the cookie key (32), the cookie nonce (16), the WELCOME
/// nonce (16).
pub struct CurveServer {
    keys: KeyPair,
    rng: Box<dyn Randomness>,
    authorizer: Box<dyn Authorizer>,
    state: ServerState,
}

impl CurveServer {
    /// A server with long-term `keys` (libzmq's `ZMQ_CURVE_SECRETKEY` with
    /// `ZMQ_CURVE_SERVER`) that lets in the clients `authorizer` accepts
    /// ([`crate::AllowAll`] for libzmq's behaviour without a ZAP handler).
    pub fn new(keys: KeyPair, authorizer: Box<dyn Authorizer>) -> CurveServer {
        CurveServer {
            keys,
            rng: Box::new(OsRandom),
            authorizer,
            state: ServerState::AwaitHello,
        }
    }

    /// Replaces the randomness source (for reproducible tests).
    pub fn with_randomness(mut self, rng: Box<dyn Randomness>) -> CurveServer {
        self.rng = rng;
        self
    }

    fn on_hello(&mut self, body: &Bytes, send: &mut Vec<Bytes>) -> Result<()> {
        expect_command(body, "HELLO", "CURVE handshake (awaiting HELLO)")?;
        check_size(body, "HELLO", Some(HELLO_SIZE), HELLO_SIZE)?;
        if body[6..8] != [1, 0] {
            return Err(malformed(
                "HELLO",
                format!("CurveZMQ version {}.{}, only 1.0 exists", body[6], body[7]),
            ));
        }
        let client_transient = key_at(body, 80);
        let hello_nonce = u64_at(body, 112);
        let hello_box = precompute(&client_transient, &self.keys.secret);
        let mut signature = [0u8; TAG + 64];
        signature.copy_from_slice(&body[120..]);
        open_in_place(
            &hello_box,
            &short_nonce(HELLO_PREFIX, hello_nonce),
            &mut signature,
            "HELLO",
        )?;

        let transient = SecretKey::generate(self.rng.as_mut())?;
        let mut cookie_key = Zeroizing::new([0u8; 32]);
        self.rng.fill(&mut cookie_key[..])?;
        let mut cookie_nonce = [0u8; 16];
        self.rng.fill(&mut cookie_nonce)?;
        let mut welcome_nonce = [0u8; 16];
        self.rng.fill(&mut welcome_nonce)?;

        let mut out = BytesMut::with_capacity(WELCOME_SIZE);
        out.put_slice(b"\x07WELCOME");
        out.put_slice(&welcome_nonce);
        out.put_bytes(0, TAG);
        out.put_slice(transient.public_key().as_bytes());
        // The cookie: C' and s', sealed so that only we can open them again.
        out.put_slice(&cookie_nonce);
        out.put_bytes(0, TAG);
        out.put_slice(client_transient.as_bytes());
        out.put_slice(transient.as_bytes());
        let cookie_at = 24 + TAG + 32 + 16;
        let sealed = seal_in_place(
            &XSalsa20Poly1305::new(GenericArray::from_slice(&cookie_key[..])),
            &long_nonce(COOKIE_PREFIX, &cookie_nonce),
            &mut out[cookie_at..],
        )
        .and_then(|()| {
            seal_in_place(
                &hello_box,
                &long_nonce(WELCOME_PREFIX, &welcome_nonce),
                &mut out[24..],
            )
        });
        if let Err(e) = sealed {
            // s' is in the clear in `out` until the cookie box is sealed.
            zeroize::Zeroize::zeroize(&mut out[..]);
            return Err(e);
        }
        send.push(out.freeze());
        self.state = ServerState::AwaitInitiate(Welcomed {
            client_transient,
            transient,
            cookie_key,
            hello_nonce,
        });
        Ok(())
    }

    fn on_initiate(
        &mut self,
        body: &Bytes,
        welcomed: Welcomed,
        local: &Metadata,
        send: &mut Vec<Bytes>,
    ) -> Result<Metadata> {
        let Welcomed {
            client_transient,
            transient,
            cookie_key,
            hello_nonce,
        } = welcomed;
        expect_command(body, "INITIATE", "CURVE handshake (awaiting INITIATE)")?;
        check_size(body, "INITIATE", None, INITIATE_MIN_SIZE)?;
        let cookie = &body[9..105];
        let mut opened = Zeroizing::new([0u8; TAG + 64]);
        opened.copy_from_slice(&cookie[16..]);
        open_in_place(
            &XSalsa20Poly1305::new(GenericArray::from_slice(&cookie_key[..])),
            &long_nonce(COOKIE_PREFIX, &cookie[..16]),
            &mut opened[..],
            "cookie",
        )?;
        drop(cookie_key);
        if opened[TAG..TAG + 32] != client_transient.as_bytes()[..]
            || opened[TAG + 32..] != transient.as_bytes()[..]
        {
            return Err(Error::CurveMismatch {
                command: "INITIATE",
                reason: "its cookie was made for another connection",
            });
        }
        let nonce = u64_at(body, 105);
        if nonce <= hello_nonce {
            return Err(Error::NonceOutOfOrder {
                command: "INITIATE",
                nonce,
                last: hello_nonce,
            });
        }
        let cipher = FastBox::new(&client_transient, &transient);
        let mut plain = BytesMut::from(&body[113..]);
        open_in_place(
            &cipher,
            &short_nonce(INITIATE_PREFIX, nonce),
            &mut plain,
            "INITIATE",
        )?;
        let plain = plain.freeze().slice(TAG..);
        let client = key_at(&plain, 0);
        let mut vouch = [0u8; TAG + 64];
        vouch.copy_from_slice(&plain[48..128]);
        open_in_place(
            &precompute(&client, &transient),
            &long_nonce(VOUCH_PREFIX, &plain[32..48]),
            &mut vouch,
            "vouch",
        )?;
        if vouch[TAG..TAG + 32] != client_transient.as_bytes()[..] {
            return Err(Error::CurveMismatch {
                command: "INITIATE",
                reason: "its vouch names another transient key",
            });
        }
        if vouch[TAG + 32..] != self.keys.public.as_bytes()[..] {
            return Err(Error::CurveMismatch {
                command: "INITIATE",
                reason: "its vouch is for another server key",
            });
        }
        drop(transient);
        if let Err(refusal) = self.authorizer.authorize(&Credentials::Curve {
            public_key: client.as_bytes(),
        }) {
            if let Some(reason) = refusal.error_reason() {
                send.push(Command::Error(Bytes::from_static(reason.as_bytes())).encode());
            }
            return Err(Error::Refused {
                mechanism: "CURVE",
                reason: refusal.describe(),
            });
        }
        let metadata = Metadata::decode(plain.slice(128..))?;

        let mut traffic = Traffic::new(cipher, MESSAGE_FROM_SERVER, MESSAGE_FROM_CLIENT, 1, nonce);
        let ready_nonce = traffic.take_nonce()?;
        let mut out = BytesMut::with_capacity(READY_MIN_SIZE + local.encoded_len());
        out.put_slice(b"\x05READY");
        out.put_u64(ready_nonce);
        out.put_bytes(0, TAG);
        local.encode(&mut out);
        seal_in_place(
            &traffic.cipher,
            &short_nonce(READY_PREFIX, ready_nonce),
            &mut out[14..],
        )?;
        send.push(out.freeze());
        self.state = ServerState::Ready(traffic);
        Ok(metadata)
    }
}

impl std::fmt::Debug for CurveServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveServer")
            .field("public", &self.keys.public)
            .field("state", &self.state.name())
            .finish_non_exhaustive()
    }
}

impl Mechanism for CurveServer {
    fn name(&self) -> MechanismName {
        MechanismName::CURVE
    }

    fn as_server(&self) -> bool {
        true
    }

    fn start(&mut self, _local: &Metadata, _send: &mut Vec<Bytes>) -> Result<Step> {
        Ok(Step::Continue)
    }

    fn on_frame(&mut self, frame: Frame, local: &Metadata, send: &mut Vec<Bytes>) -> Result<Step> {
        match std::mem::replace(&mut self.state, ServerState::Failed) {
            ServerState::AwaitHello => {
                self.on_hello(&frame.body, send)?;
                Ok(Step::Continue)
            }
            ServerState::AwaitInitiate(welcomed) => Ok(Step::Done(self.on_initiate(
                &frame.body,
                welcomed,
                local,
                send,
            )?)),
            other => {
                let ready = matches!(other, ServerState::Ready(_));
                self.state = other;
                Err(unexpected_command(frame.body, ready))
            }
        }
    }

    fn transforms_frames(&self) -> bool {
        true
    }

    fn seal(&mut self, flags: FrameFlags, body: Bytes) -> Result<Frame> {
        match &mut self.state {
            ServerState::Ready(traffic) => traffic.seal(flags, &body),
            _ => Err(Error::NotReady),
        }
    }

    fn open(&mut self, frame: Frame) -> Result<RawFrame> {
        match &mut self.state {
            ServerState::Ready(traffic) => traffic.open(frame),
            _ => Err(Error::NotReady),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::AllowAll;

    /// Bytes counting up from a start value, so the tests know every
    /// transient key.
    struct Counting(u8);

    impl Randomness for Counting {
        fn fill(&mut self, dest: &mut [u8]) -> Result<()> {
            for b in dest {
                *b = self.0;
                self.0 = self.0.wrapping_add(1);
            }
            Ok(())
        }
    }

    fn secret_from(start: u8) -> SecretKey {
        let mut bytes = [0u8; 32];
        Counting(start).fill(&mut bytes).unwrap();
        SecretKey::from_bytes(bytes)
    }

    fn metadata(socket_type: &str) -> Metadata {
        let mut md = Metadata::new();
        md.push("Socket-Type", socket_type.to_string()).unwrap();
        md
    }

    /// Opens a box sealed with `cipher` at `at` in `body`, lets `edit`
    /// change the plaintext, and seals it again.
    fn reseal(
        body: &[u8],
        at: usize,
        cipher: &FastBox,
        nonce: &[u8; 24],
        edit: impl FnOnce(&mut Vec<u8>),
    ) -> Bytes {
        let mut boxed = body[at..].to_vec();
        let (tag, text) = boxed.split_at_mut(TAG);
        assert!(cipher.open(nonce, tag, text));
        let mut plain = boxed[TAG..].to_vec();
        edit(&mut plain);
        let tag = cipher.seal(nonce, &mut plain);
        let mut out = body[..at].to_vec();
        out.extend_from_slice(&tag);
        out.extend_from_slice(&plain);
        Bytes::from(out)
    }

    struct Handshake {
        client: CurveClient,
        server: CurveServer,
        initiate: Bytes,
    }

    fn up_to_initiate() -> Handshake {
        let server_keys = KeyPair::from_secret(secret_from(0xa0));
        let mut client =
            CurveClient::new(KeyPair::from_secret(secret_from(0xc0)), server_keys.public)
                .with_randomness(Box::new(Counting(0x01)));
        let mut server = CurveServer::new(server_keys, Box::new(AllowAll))
            .with_randomness(Box::new(Counting(0x21)));
        let (md_c, md_s) = (metadata("DEALER"), metadata("DEALER"));
        let mut out = Vec::new();
        client.start(&md_c, &mut out).unwrap();
        let hello = out.pop().unwrap();
        server
            .on_frame(Frame::command(hello), &md_s, &mut out)
            .unwrap();
        let welcome = out.pop().unwrap();
        client
            .on_frame(Frame::command(welcome), &md_c, &mut out)
            .unwrap();
        let initiate = out.pop().unwrap();
        Handshake {
            client,
            server,
            initiate,
        }
    }

    fn client_server_box() -> FastBox {
        // c' = 01..20 (the client's first draw), s' = 21..40 (the server's).
        FastBox::new(&secret_from(0x21).public_key(), &secret_from(0x01))
    }

    #[test]
    fn malformed_metadata_inside_initiate_is_refused() {
        let mut h = up_to_initiate();
        let tampered = reseal(
            &h.initiate,
            113,
            &client_server_box(),
            &short_nonce(INITIATE_PREFIX, 2),
            |plain| plain.extend_from_slice(b"\x05X-Bad\x00\x00\x00\x09ab"),
        );
        let err = h
            .server
            .on_frame(
                Frame::command(tampered),
                &metadata("DEALER"),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(
            matches!(&err, Error::MalformedMetadata(reason) if reason.contains("X-Bad")),
            "{err}"
        );
    }

    #[test]
    fn initiate_box_too_short_for_the_vouch_cannot_be_forged() {
        // Resealing lets us shrink the box below C + vouch only if the
        // size check did not come first: it does, naming INITIATE.
        let mut h = up_to_initiate();
        let tampered = reseal(
            &h.initiate,
            113,
            &client_server_box(),
            &short_nonce(INITIATE_PREFIX, 2),
            |plain| plain.truncate(100),
        );
        let err = h
            .server
            .on_frame(
                Frame::command(tampered),
                &metadata("DEALER"),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(
            matches!(&err, Error::MalformedCommand { command, .. } if command == "INITIATE"),
            "{err}"
        );
    }

    #[test]
    fn malformed_metadata_inside_ready_is_refused() {
        let mut h = up_to_initiate();
        let mut out = Vec::new();
        h.server
            .on_frame(
                Frame::command(h.initiate.clone()),
                &metadata("DEALER"),
                &mut out,
            )
            .unwrap();
        let ready = out.pop().unwrap();
        let tampered = reseal(
            &ready,
            14,
            &client_server_box(),
            &short_nonce(READY_PREFIX, 1),
            |plain| {
                plain.clear();
                plain.extend_from_slice(b"\x0bSocket-Type\x00\x00\x01\x00DEALER");
            },
        );
        let err = h
            .client
            .on_frame(Frame::command(tampered), &metadata("DEALER"), &mut out)
            .unwrap_err();
        assert!(
            matches!(&err, Error::MalformedMetadata(reason) if reason.contains("Socket-Type")),
            "{err}"
        );
    }

    #[test]
    fn the_vouch_must_name_our_server_key() {
        let mut h = up_to_initiate();
        // Replace the vouch with one for another server key, sealed
        // correctly from the client's long-term key to S'.
        let client_secret = secret_from(0xc0);
        let vouch_box = FastBox::new(&secret_from(0x21).public_key(), &client_secret);
        let tampered = reseal(
            &h.initiate,
            113,
            &client_server_box(),
            &short_nonce(INITIATE_PREFIX, 2),
            |plain| {
                let nonce = long_nonce(VOUCH_PREFIX, &plain[32..48]);
                let mut vouch = [0u8; 64];
                vouch[..32].copy_from_slice(secret_from(0x01).public_key().as_bytes());
                vouch[32..].copy_from_slice(&[9u8; 32]);
                let tag = vouch_box.seal(&nonce, &mut vouch);
                plain[48..64].copy_from_slice(&tag);
                plain[64..128].copy_from_slice(&vouch);
            },
        );
        let err = h
            .server
            .on_frame(
                Frame::command(tampered),
                &metadata("DEALER"),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert_eq!(
            err,
            Error::CurveMismatch {
                command: "INITIATE",
                reason: "its vouch is for another server key"
            }
        );
    }

    #[test]
    fn seal_and_open_before_the_handshake_are_refused() {
        let mut client = CurveClient::new(
            KeyPair::from_secret(secret_from(1)),
            secret_from(2).public_key(),
        );
        assert_eq!(
            client
                .seal(FrameFlags::data(false), Bytes::new())
                .unwrap_err(),
            Error::NotReady
        );
        assert_eq!(
            client.open(Frame::data(Bytes::new(), false)).unwrap_err(),
            Error::NotReady
        );
        assert!(!format!("{client:?}").contains(&secret_from(1).to_z85()));
    }
}
