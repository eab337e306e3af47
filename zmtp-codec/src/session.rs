//! One ZMTP connection as a pure state machine: greeting, mechanism
//! handshake, then traffic. Feed it received bytes, poll it for events, and
//! write out what its [`Outbox`] holds. It owns no socket, thread or clock;
//! timers (handshake timeout, heartbeats) are the caller's, driven by the
//! events and methods here.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Buf, Bytes};

use crate::command::{ttl_to_deciseconds, Command};
use crate::error::{Error, Result};
use crate::frame::{
    parse_header, Frame, FrameDecoder, FrameFlags, ParsedHeader, RawFrame, MAX_HEADER_LEN,
};
use crate::greeting::{Greeting, GREETING_LEN};
use crate::limits::{Limits, MessageSize};
use crate::mechanism::{Mechanism, Null, Step};
use crate::message::{Message, MessageBuilder};
use crate::metadata::{Metadata, IDENTITY, SOCKET_TYPE};
use crate::outbox::Outbox;
use crate::reassembly::{BufferPool, HeapPool, Progress, Reassembly};
use crate::socket_type::SocketType;
use crate::subscription::{Subscription, SubscriptionAction};

/// Default limit on one frame's body: large enough for any Zeek log batch,
/// small enough that a hostile peer cannot make us buffer without end.
pub const DEFAULT_MAX_FRAME_SIZE: u64 = 256 * 1024 * 1024;
/// Default limit on the sum of one message's frames.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 256 * 1024 * 1024;

/// What a session announces and enforces.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our socket type, sent as `Socket-Type` and checked against the peer's.
    pub socket_type: SocketType,
    /// Our routing id, sent as `Identity` (only for REQ, DEALER and ROUTER, as libzmq).
    pub routing_id: Bytes,
    /// Extra READY properties (libzmq's ZMQ_METADATA uses `X-` names).
    pub properties: Metadata,
    /// Largest frame body accepted from the peer (ZMQ_MAXMSGSIZE is per frame in libzmq).
    pub max_frame_size: u64,
    /// Largest multipart message (sum of frame bodies) accepted from the peer.
    pub max_message_size: u64,
    /// The ZMTP minor version we announce: 1 (default). 0 exists to test
    /// peers' 3.0 behaviour.
    pub zmtp_minor: u8,
    /// Where buffers for messages that straddle fed chunks come from
    /// (default: plain allocations).
    pub buffers: Arc<dyn BufferPool>,
}

impl SessionConfig {
    /// Defaults for a socket of type `socket_type`.
    pub fn new(socket_type: SocketType) -> SessionConfig {
        SessionConfig {
            socket_type,
            routing_id: Bytes::new(),
            properties: Metadata::new(),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            zmtp_minor: 1,
            buffers: Arc::new(HeapPool),
        }
    }
}

/// What we learnt about the peer in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// ZMTP version from its greeting (major, minor).
    pub version: (u8, u8),
    /// Its `Socket-Type`, if it sent one (libzmq accepts READY without it).
    pub socket_type: Option<SocketType>,
    /// All READY properties, `Socket-Type` and `Identity` included.
    pub metadata: Metadata,
}

impl PeerInfo {
    /// Its routing id, if it sent one.
    pub fn identity(&self) -> Option<&Bytes> {
        self.metadata.identity()
    }

    /// Its ZMTP version as people write it: `3.1`.
    pub fn version_text(&self) -> String {
        format!("{}.{}", self.version.0, self.version.1)
    }
}

/// Something the peer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake finished; traffic may flow both ways.
    Ready(PeerInfo),
    /// A whole multipart data message.
    Message(Message),
    /// A subscription change, in either wire form. Only sessions whose socket
    /// type receives subscriptions (PUB, XPUB) report these; for them every
    /// data frame starting with 0x01/0x00 is a subscription, as in libzmq,
    /// and the other frames of such a message are reported as a message.
    Subscription(Subscription),
    /// A heartbeat. The PONG is already queued; the caller arms a timer of
    /// `ttl_deciseconds` (if non-zero) that any received byte cancels.
    Ping {
        /// The peer's TTL in deciseconds.
        ttl_deciseconds: u16,
        /// The context, echoed in the PONG.
        context: Bytes,
    },
    /// The answer to one of our PINGs.
    Pong {
        /// The context we sent.
        context: Bytes,
    },
}

/// What the fast path found at the front of the input.
enum Scan {
    /// A whole data message within the front chunk.
    Whole(Message),
    /// A data message that runs past the front chunk, of at least this many bytes.
    Straddles { size_hint: usize },
    /// Nothing, or something for the frame-by-frame path.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Greeting,
    Handshake,
    Ready,
    Failed,
}

/// Counters of things that are not events but worth reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Data messages received.
    pub messages_received: u64,
    /// Messages that straddled fed chunks and were copied into a buffer of
    /// their own (the decoder's straddling copies are in `copied_bytes`).
    pub messages_copied: u64,
    /// Fed chunks joined with the one before, without a copy, because the
    /// buffer pool knew them to be adjacent ([`BufferPool::join`]).
    pub chunks_joined: u64,
    /// Data frames queued for sending.
    pub frames_sent: u64,
    /// Commands received after the handshake that we ignored (unknown names,
    /// empty command frames, a second READY), as libzmq ignores them.
    pub ignored_commands: u64,
}

/// One ZMTP 3.x connection.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    mechanism: Box<dyn Mechanism>,
    /// `mechanism.transforms_frames()`, asked once: the data path checks it
    /// per message and should not pay a virtual call for it.
    transforms_frames: bool,
    /// A frame the fast path opened but cannot deliver itself (one of
    /// several, a command, over a limit): the slow path takes it first.
    opened: Option<RawFrame>,
    local_metadata: Metadata,
    phase: Phase,
    greeting: [u8; GREETING_LEN],
    greeting_len: usize,
    peer: Option<PeerInfo>,
    peer_uses_commands: bool,
    decoder: FrameDecoder,
    input: VecDeque<Bytes>,
    outbox: Outbox,
    /// Bytes of the inbound message being received (reset after a frame without MORE).
    /// The message being built frame by frame, as admitted so far.
    inbound: MessageSize,
    /// Frames of a message that straddles chunks, copied together: the
    /// frame-by-frame path's (commands between frames, encrypted frames).
    builder: MessageBuilder,
    /// A data message that straddles chunks, gathered with one copy.
    reassembly: Option<Reassembly>,
    /// Events found while splitting a message (XPUB subscriptions mixed with
    /// user frames), returned before anything else is decoded.
    pending: VecDeque<Event>,
    /// Bytes copied by the builder.
    builder_copied_bytes: u64,
    /// Scratch for mechanism output, kept to avoid an allocation per step.
    handshake_out: Vec<Bytes>,
    stats: SessionStats,
}

impl Session {
    /// A session with the NULL mechanism.
    pub fn new(config: SessionConfig) -> Session {
        Session::with_mechanism(config, Box::new(Null::new()))
    }

    /// A session with any mechanism. Our greeting is queued at once, whole:
    /// libzmq will not send its own past byte 10 until it has seen ours.
    pub fn with_mechanism(config: SessionConfig, mechanism: Box<dyn Mechanism>) -> Session {
        let mut local_metadata = Metadata::new();
        local_metadata
            .push(SOCKET_TYPE, config.socket_type.as_str())
            .expect("socket type names are valid property values");
        if config.socket_type.sends_identity() {
            local_metadata
                .push(IDENTITY, config.routing_id.clone())
                .expect("a routing id is far below the 4 GiB property limit");
        }
        for (name, value) in config.properties.iter() {
            local_metadata
                .push(name.clone(), value.clone())
                .expect("properties were validated when added");
        }
        let mut outbox = Outbox::new();
        let greeting = Greeting::new(config.zmtp_minor, mechanism.name(), mechanism.as_server());
        outbox.push_raw(Bytes::copy_from_slice(&greeting.encode()));
        let mut decoder = FrameDecoder::new(config.max_frame_size);
        decoder.set_max_message_size(config.max_message_size);
        decoder.set_count_messages(!mechanism.transforms_frames());
        decoder.set_repair_long_commands(config.socket_type.receives_subscriptions());
        Session {
            config,
            transforms_frames: mechanism.transforms_frames(),
            opened: None,
            mechanism,
            local_metadata,
            phase: Phase::Greeting,
            greeting: [0; GREETING_LEN],
            greeting_len: 0,
            peer: None,
            peer_uses_commands: true,
            decoder,
            input: VecDeque::new(),
            outbox,
            inbound: MessageSize::default(),
            builder: MessageBuilder::new(),
            reassembly: None,
            pending: VecDeque::new(),
            builder_copied_bytes: 0,
            handshake_out: Vec::new(),
            stats: SessionStats::default(),
        }
    }

    /// Hands the session bytes received from the peer. Frames that lie within
    /// one chunk are returned as slices of it.
    pub fn feed(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.input.push_back(bytes);
        }
    }

    /// The next event, or `Ok(None)` when the fed bytes are used up. An error
    /// is final: the caller closes the connection (after writing out what the
    /// outbox holds, if it wants the peer to see an ERROR).
    pub fn poll(&mut self) -> Result<Option<Event>> {
        if self.phase == Phase::Failed {
            return Err(Error::Failed);
        }
        let result = self.poll_inner();
        if result.is_err() {
            self.phase = Phase::Failed;
            self.input.clear();
            if let Some(reassembly) = self.reassembly.take() {
                reassembly.abandon(&*self.config.buffers);
            }
        }
        result
    }

    fn poll_inner(&mut self) -> Result<Option<Event>> {
        loop {
            match self.phase {
                Phase::Greeting => {
                    if !self.read_greeting()? {
                        return Ok(None);
                    }
                }
                Phase::Handshake => {
                    let Some(raw) = self.next_frame()? else {
                        return Ok(None);
                    };
                    if let Some(event) = self.on_handshake_frame(raw.into_frame())? {
                        return Ok(Some(event));
                    }
                }
                Phase::Ready => {
                    if let Some(event) = self.pending.pop_front() {
                        return Ok(Some(event));
                    }
                    if self.reassembly.is_some() && !self.decoder.has_partial() {
                        match self.feed_reassembly()? {
                            Progress::Done(message) => {
                                if let Some(event) = self.on_message(message) {
                                    return Ok(Some(event));
                                }
                                continue;
                            }
                            // A command between two of its frames: decoded below.
                            Progress::Command => {}
                            Progress::NeedInput => return Ok(None),
                        }
                    } else {
                        match self.next_whole_message() {
                            Scan::Whole(message) => {
                                if let Some(event) = self.on_message(message) {
                                    return Ok(Some(event));
                                }
                                continue;
                            }
                            Scan::Straddles { size_hint } => {
                                let buffers = &*self.config.buffers;
                                if self.input.len() >= 2 {
                                    // The next chunk may continue this one in
                                    // memory: then the message is one slice.
                                    if let Some(joined) =
                                        buffers.join(&self.input[0], &self.input[1])
                                    {
                                        self.input.pop_front();
                                        self.input[0] = joined;
                                        self.stats.chunks_joined += 1;
                                        continue;
                                    }
                                } else if buffers.joins() {
                                    return Ok(None);
                                }
                                self.reassembly = Some(Reassembly::new(buffers, size_hint));
                                continue;
                            }
                            Scan::Other => {}
                        }
                    }
                    if let Some(opened) = self.opened.take() {
                        if let Some(event) = self.on_opened_frame(opened)? {
                            return Ok(Some(event));
                        }
                        continue;
                    }
                    let Some(raw) = self.next_frame()? else {
                        return Ok(None);
                    };
                    if let Some(event) = self.on_traffic_frame(raw)? {
                        return Ok(Some(event));
                    }
                }
                Phase::Failed => return Err(Error::Failed),
            }
        }
    }

    /// The data plane's fast path: hands `deliver` each whole data message
    /// lying within a fed chunk, in order, as a slice of it, exactly as
    /// [`Session::poll`] would return them as [`Event::Message`], without an
    /// event per message. Stops, returning `None`, where `poll` is needed: a
    /// command, a message that straddles chunks or breaks a limit, a socket
    /// type that receives subscriptions, an encrypting mechanism, a pending
    /// event, the handshake. `deliver` returns a message it has no room for;
    /// draining stops and that message is returned, received and owned by
    /// the caller now.
    pub fn drain_messages(
        &mut self,
        mut deliver: impl FnMut(Message) -> Option<Message>,
    ) -> Option<Message> {
        if self.phase != Phase::Ready
            || !self.pending.is_empty()
            || self.config.socket_type.receives_subscriptions()
        {
            return None;
        }
        if self.transforms_frames {
            while let Some(message) = self.next_opened_message() {
                self.stats.messages_received += 1;
                if let Some(back) = deliver(message) {
                    return Some(back);
                }
            }
            return None;
        }
        while let Scan::Whole(message) = self.next_whole_message() {
            self.stats.messages_received += 1;
            if let Some(back) = deliver(message) {
                return Some(back);
            }
        }
        None
    }

    /// The fast path of an encrypting mechanism: the next whole frame in
    /// the front chunk, opened, when it is a message of its own. A frame
    /// that does not open is left where it is, for `poll` to report; one
    /// that opens but is not a lone data frame within the limits is kept
    /// for `poll` to handle, since opening it used up its nonce.
    fn next_opened_message(&mut self) -> Option<Message> {
        if !self.builder.is_empty()
            || self.decoder.has_partial()
            || self.reassembly.is_some()
            || self.opened.is_some()
        {
            return None;
        }
        let chunk = self.input.front_mut()?;
        let header = parse_header(chunk, false)?;
        if header.body_len > self.config.max_frame_size {
            return None;
        }
        let end = header
            .header_len
            .checked_add(usize::try_from(header.body_len).ok()?)?;
        if end > chunk.len() {
            return None;
        }
        let frame = Frame {
            flags: header.flags,
            body: chunk.slice(header.header_len..end),
        };
        // On an error nothing was consumed, neither bytes nor nonce.
        let raw = self.mechanism.open(frame).ok()?;
        chunk.advance(end);
        if chunk.is_empty() {
            self.input.pop_front();
        }
        let body_len = raw.wire.len() - raw.header_len;
        let header = ParsedHeader {
            flags: raw.flags,
            body_len: body_len as u64,
            header_len: 0,
        };
        // The same admission as `check_message_size`, for a lone frame.
        if raw.flags.is_command()
            || raw.flags.more()
            || MessageSize::default()
                .admit(&header, self.limits())
                .is_err()
        {
            self.opened = Some(raw);
            return None;
        }
        Some(Message::from_validated_wire(raw.wire, 1, body_len as u64))
    }

    /// Takes greeting bytes from the input. Returns true once the greeting is
    /// complete and the handshake has started.
    fn read_greeting(&mut self) -> Result<bool> {
        while self.greeting_len < GREETING_LEN {
            let Some(chunk) = self.input.front_mut() else {
                return Ok(false);
            };
            let take = (GREETING_LEN - self.greeting_len).min(chunk.len());
            self.greeting[self.greeting_len..self.greeting_len + take]
                .copy_from_slice(&chunk[..take]);
            chunk.advance(take);
            if chunk.is_empty() {
                self.input.pop_front();
            }
            self.greeting_len += take;
            // Check as we go, so a non-ZMTP peer is refused on its first byte.
            Greeting::decode_partial(&self.greeting[..self.greeting_len])?;
        }
        let peer =
            Greeting::decode_partial(&self.greeting)?.expect("64 bytes are a whole greeting");
        let ours = self.mechanism.name();
        if peer.mechanism != ours {
            return Err(Error::MechanismMismatch {
                ours: ours.display(),
                theirs: peer.mechanism.display(),
            });
        }
        self.peer_uses_commands = peer.uses_subscribe_commands();
        self.phase = Phase::Handshake;
        let step = self
            .mechanism
            .start(&self.local_metadata, &mut self.handshake_out)?;
        self.flush_handshake_out();
        debug_assert_eq!(
            step,
            Step::Continue,
            "no mechanism finishes without hearing from the peer"
        );
        Ok(true)
    }

    fn on_handshake_frame(&mut self, frame: Frame) -> Result<Option<Event>> {
        let step = self
            .mechanism
            .on_frame(frame, &self.local_metadata, &mut self.handshake_out);
        self.flush_handshake_out();
        let Step::Done(metadata) = step? else {
            return Ok(None);
        };
        let socket_type = metadata.socket_type()?;
        if let Some(peer_type) = socket_type {
            if !self.config.socket_type.accepts(peer_type) {
                return Err(Error::IncompatibleSocketType {
                    local: self.config.socket_type,
                    peer: peer_type,
                });
            }
        }
        let info = PeerInfo {
            version: (self.greeting[10], self.greeting[11]),
            socket_type,
            metadata,
        };
        self.peer = Some(info.clone());
        self.phase = Phase::Ready;
        Ok(Some(Event::Ready(info)))
    }

    /// The fast path: a whole message of data frames lying in the front chunk
    /// becomes one slice of it. One that runs past the chunk is gathered by
    /// a [`Reassembly`]. Anything else (a command, a frame over the limits,
    /// an encrypting mechanism) is left to the frame-by-frame path, which
    /// also reports the errors.
    fn next_whole_message(&mut self) -> Scan {
        if self.transforms_frames
            || !self.builder.is_empty()
            || self.decoder.has_partial()
            || self.reassembly.is_some()
        {
            return Scan::Other;
        }
        let limits = self.limits();
        let Some(chunk) = self.input.front_mut() else {
            return Scan::Other;
        };
        let mut size = MessageSize::default();
        let mut frames = 0u32;
        loop {
            let Some(header) = parse_header(&chunk[size.wire..], false) else {
                return Scan::Straddles {
                    size_hint: chunk.len() + MAX_HEADER_LEN,
                };
            };
            if header.flags.is_command() {
                return Scan::Other;
            }
            // A frame over a limit is left to the frame-by-frame path,
            // which reports it: it admits frames the same way.
            let Ok(end) = size.admit(&header, limits) else {
                return Scan::Other;
            };
            if end > chunk.len() {
                return Scan::Straddles { size_hint: end };
            }
            frames += 1;
            if !header.flags.more() {
                break;
            }
        }
        let wire = chunk.split_to(size.wire);
        if chunk.is_empty() {
            self.input.pop_front();
        }
        Scan::Whole(Message::from_validated_wire(wire, frames, size.body))
    }

    /// The limits received messages are held to.
    fn limits(&self) -> Limits {
        Limits {
            max_frame_size: self.config.max_frame_size,
            max_message_size: self.config.max_message_size,
        }
    }

    /// Feeds the message being gathered from the input.
    fn feed_reassembly(&mut self) -> Result<Progress> {
        let limits = self.limits();
        let reassembly = self.reassembly.as_mut().expect("called while gathering");
        while let Some(chunk) = self.input.front_mut() {
            let (progress, copied) = reassembly.feed(chunk, limits, &*self.config.buffers)?;
            self.builder_copied_bytes += copied as u64;
            if chunk.is_empty() {
                self.input.pop_front();
            }
            match progress {
                Progress::NeedInput => continue,
                Progress::Command => return Ok(Progress::Command),
                Progress::Done(message) => {
                    self.reassembly = None;
                    self.stats.messages_copied += 1;
                    return Ok(Progress::Done(message));
                }
            }
        }
        Ok(Progress::NeedInput)
    }

    /// The slow path: one frame at a time, for commands and for messages
    /// that straddle chunks.
    fn on_traffic_frame(&mut self, raw: RawFrame) -> Result<Option<Event>> {
        // An encrypting mechanism hands back the plain frame in wire form, so
        // a lone decrypted frame is a message without another copy.
        let raw = if self.transforms_frames {
            self.mechanism.open(raw.into_frame())?
        } else {
            raw
        };
        self.on_opened_frame(raw)
    }

    /// A frame in plain wire form (decrypted, if the mechanism encrypts).
    fn on_opened_frame(&mut self, raw: RawFrame) -> Result<Option<Event>> {
        if raw.flags.is_command() {
            return self.on_command(raw.into_frame().body);
        }
        self.on_data_frame(raw)
    }

    fn on_data_frame(&mut self, raw: RawFrame) -> Result<Option<Event>> {
        let body_len = raw.wire.len() - raw.header_len;
        self.check_message_size(body_len, raw.flags.more())?;
        if !raw.flags.more() && self.builder.is_empty() {
            // A lone frame is its own message, header and all: no copy
            // beyond what the decoder made if it straddled.
            let message = Message::from_validated_wire(raw.wire, 1, body_len as u64);
            return Ok(self.on_message(message));
        }
        self.builder.push(&raw.wire[raw.header_len..]);
        self.builder_copied_bytes += body_len as u64;
        if raw.flags.more() {
            return Ok(None);
        }
        self.stats.messages_copied += 1;
        let message = self.builder.take().expect("a frame was just pushed");
        Ok(self.on_message(message))
    }

    /// Admits a data frame, as received (or opened, with CURVE), into the
    /// message being built: the same rules as at the headers of frames in
    /// clear, and the only check for sealed frames' plaintext.
    fn check_message_size(&mut self, frame_len: usize, more: bool) -> Result<()> {
        let header = ParsedHeader {
            flags: FrameFlags::data(more),
            body_len: frame_len as u64,
            header_len: 0,
        };
        let limits = self.limits();
        self.inbound.admit(&header, limits)?;
        if !more {
            self.inbound = MessageSize::default();
        }
        Ok(())
    }

    /// Classifies a received message: for PUB and XPUB every frame starting
    /// with 0x01/0x00 is a subscription (libzmq looks at every frame).
    fn on_message(&mut self, message: Message) -> Option<Event> {
        self.stats.messages_received += 1;
        if !self.config.socket_type.receives_subscriptions() {
            return Some(Event::Message(message));
        }
        if message.frame_count() == 1 {
            let frame = Frame::data(message.frame(0).expect("one frame"), false);
            return Some(match Subscription::from_data_frame(&frame) {
                Some(sub) => Event::Subscription(sub),
                None => Event::Message(message),
            });
        }
        let mut user = MessageBuilder::new();
        for body in message.to_frames() {
            match Subscription::from_data_frame(&Frame::data(body.clone(), false)) {
                Some(sub) => self.pending.push_back(Event::Subscription(sub)),
                None => user.push(&body),
            }
        }
        if let Some(user) = user.finish() {
            self.pending.push_back(Event::Message(user));
        }
        self.pending.pop_front()
    }

    fn on_command(&mut self, body: Bytes) -> Result<Option<Event>> {
        if body.is_empty() {
            // libzmq tolerates an empty command frame after the handshake.
            self.stats.ignored_commands += 1;
            return Ok(None);
        }
        let command = Command::decode(body)?;
        match command {
            Command::Subscribe(_) | Command::Cancel(_) => {
                if self.config.socket_type.receives_subscriptions() {
                    let sub = Subscription::from_command(&command).expect("matched a subscription");
                    return Ok(Some(Event::Subscription(sub)));
                }
                self.stats.ignored_commands += 1;
                Ok(None)
            }
            Command::Ping {
                ttl_deciseconds,
                context,
            } => {
                self.queue_command(&Command::Pong(context.clone()))?;
                Ok(Some(Event::Ping {
                    ttl_deciseconds,
                    context,
                }))
            }
            Command::Pong(context) => Ok(Some(Event::Pong { context })),
            Command::Error(reason) => Err(Error::PeerError(crate::error::printable(&reason))),
            Command::Ready(_) | Command::Other(_) => {
                self.stats.ignored_commands += 1;
                Ok(None)
            }
        }
    }

    /// The next whole frame from the input, if the fed bytes hold one.
    fn next_frame(&mut self) -> Result<Option<RawFrame>> {
        if self.phase == Phase::Ready && self.builder.is_empty() && !self.decoder.has_partial() {
            self.decoder.start_message();
        }
        while let Some(chunk) = self.input.front_mut() {
            let frame = self.decoder.decode_raw(chunk)?;
            if chunk.is_empty() {
                self.input.pop_front();
            }
            if frame.is_some() {
                return Ok(frame);
            }
        }
        Ok(None)
    }

    fn flush_handshake_out(&mut self) {
        for body in self.handshake_out.drain(..) {
            self.outbox.push_frame(FrameFlags::command(), body, false);
        }
    }

    fn ensure_ready(&self) -> Result<()> {
        match self.phase {
            Phase::Ready => Ok(()),
            Phase::Failed => Err(Error::Failed),
            Phase::Greeting | Phase::Handshake => Err(Error::NotReady),
        }
    }

    /// Queues one data frame; `more` says another frame of the same message
    /// follows. The body is not copied (unless the mechanism encrypts).
    pub fn send_frame(&mut self, body: Bytes, more: bool) -> Result<()> {
        self.ensure_ready()?;
        self.queue_data_frame(body, more, !more)
    }

    /// Queues a data frame; `ends_message` says whether taking its last
    /// byte counts as a completed application message in the outbox.
    fn queue_data_frame(&mut self, body: Bytes, more: bool, ends_message: bool) -> Result<()> {
        let flags = FrameFlags::data(more);
        self.stats.frames_sent += 1;
        if self.transforms_frames {
            let sealed = self.mechanism.seal(flags, body)?;
            self.outbox
                .push_frame(sealed.flags, sealed.body, ends_message);
        } else {
            self.outbox.push_frame(flags, body, ends_message);
        }
        Ok(())
    }

    /// Queues a whole multipart application message given as separate
    /// buffers, without copying them. An empty slice sends nothing.
    pub fn send_frames(&mut self, frames: &[Bytes]) -> Result<()> {
        self.ensure_ready()?;
        if let Some((last, rest)) = frames.split_last() {
            for frame in rest {
                self.send_frame(frame.clone(), true)?;
            }
            self.send_frame(last.clone(), false)?;
        }
        Ok(())
    }

    /// Queues a message, e.g. one received from another session. Without
    /// encryption its wire bytes go out as they are: one segment, no copy,
    /// no re-encoding. Taken by value: the outbox keeps the caller's
    /// reference instead of taking another (clone first to keep one).
    pub fn send(&mut self, message: Message) -> Result<()> {
        self.ensure_ready()?;
        if self.transforms_frames {
            // Frame by frame, each sealed on its own; no list of them is
            // built (that allocation showed in the CURVE sender's profile).
            let mut frames = message.frames().peekable();
            while let Some(body) = frames.next() {
                let more = frames.peek().is_some();
                self.send_frame(message.wire().slice_ref(body), more)?;
            }
            return Ok(());
        }
        self.stats.frames_sent += message.frame_count() as u64;
        self.outbox.push_message_wire(message.into_wire());
        Ok(())
    }

    /// Queues a subscription change in the form the peer expects: a command
    /// for ZMTP 3.1 peers, a 0x01/0x00 data frame for 3.0 peers.
    pub fn send_subscription(&mut self, action: SubscriptionAction, topic: Bytes) -> Result<()> {
        self.ensure_ready()?;
        let sub = Subscription {
            action,
            topic,
            form: crate::subscription::SubscriptionForm::Command,
        };
        if self.peer_uses_commands {
            self.queue_command(&sub.to_command())
        } else {
            // A data frame on the wire, but not an application message: it
            // must not count as one completed (that count frees HWM slots).
            self.queue_data_frame(sub.to_legacy_body(), false, false)
        }
    }

    /// Queues a PING. `ttl_ms` is how long the peer should wait for our
    /// traffic before closing (0: no limit); it is sent in deciseconds and
    /// capped at 65.5 s, because libzmq misreads larger values.
    pub fn send_ping(&mut self, ttl_ms: u64, context: Bytes) -> Result<()> {
        self.ensure_ready()?;
        self.queue_command(&Command::Ping {
            ttl_deciseconds: ttl_to_deciseconds(ttl_ms),
            context,
        })
    }

    /// Queues an ERROR command (a refusal the peer will not retry: libzmq
    /// stops reconnecting after it). Allowed in any phase once greetings are
    /// exchanged.
    pub fn send_error(&mut self, reason: &str) -> Result<()> {
        self.queue_command(&Command::Error(Bytes::copy_from_slice(reason.as_bytes())))
    }

    fn queue_command(&mut self, command: &Command) -> Result<()> {
        let body = command.encode();
        if self.phase == Phase::Ready && self.transforms_frames {
            let sealed = self.mechanism.seal(FrameFlags::command(), body)?;
            self.outbox.push_frame(sealed.flags, sealed.body, false);
        } else {
            self.outbox.push_frame(FrameFlags::command(), body, false);
        }
        Ok(())
    }

    /// Bytes to write to the peer. Take from it with [`bytes::Buf`]:
    /// `chunks_vectored` for a vectored write, then `advance` by what was written.
    pub fn outbox(&mut self) -> &mut Outbox {
        &mut self.outbox
    }

    /// Whether the handshake finished and the session has not failed.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// The peer, once the handshake finished.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// Our configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Bytes copied because a frame or message straddled fed chunks.
    pub fn copied_bytes(&self) -> u64 {
        self.decoder.copied_bytes() + self.builder_copied_bytes
    }

    /// Hands back the bytes fed but not yet decoded, in order, for a caller
    /// that reads the rest of the stream itself once the handshake is done
    /// (a load generator that only counts frames). A peer may send its
    /// first messages right behind its READY, in the same read, so they
    /// are often here already.
    ///
    /// `None`, with nothing taken, unless the session is ready, unencrypted
    /// and between messages with nothing decoded but not yet returned:
    /// otherwise part of a message would be lost or split. After `Some`
    /// the session holds no input; feeding it more goes on from there.
    pub fn take_unread(&mut self) -> Option<Vec<Bytes>> {
        let between_messages = self.phase == Phase::Ready
            && !self.transforms_frames
            && !self.decoder.has_partial()
            && self.reassembly.is_none()
            && self.builder.is_empty()
            && self.inbound.frames == 0
            && self.pending.is_empty()
            && self.opened.is_none();
        between_messages.then(|| self.input.drain(..).collect())
    }
}
