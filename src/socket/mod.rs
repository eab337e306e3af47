//! ZeroMQ sockets over reactor connections, and the [`Context`] that owns
//! the reactors.
//!
//! A [`Socket`] belongs to one application thread at a time (it is `Send`,
//! not `Sync`), like a libzmq socket. Its routing state (the pipes to its
//! peers, the subscription trie, the round-robin cursor) lives on that
//! thread; reactors tell it about peers and subscriptions through a control
//! queue it drains on every call, and hand it messages through the onloop
//! queue. Nothing on this path takes a lock.

pub mod options;
pub(crate) mod pipe;
#[allow(unsafe_code)]
pub(crate) mod ring;
pub(crate) mod service;
pub(crate) mod shared;
pub(crate) mod trie;

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use zmtp_codec::{Message, SessionConfig, SubscriptionAction};

pub use self::options::{SocketKind, SocketOption, SocketOptions};
use self::pipe::{Outgoing, Pipe, PipeWriter};
use self::service::{SocketCommand, SocketService, SocketSpec};
pub use self::shared::SocketStats;
use self::shared::{CoreEvent, SocketShared};
use self::trie::Trie;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::reactor::{Command, ConnSpec, ReactorConfig, Reactors, Target};
use crate::security::{LiveSecurity, Security};
use crate::sys;

/// How long a send or receive may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Until it can complete.
    Block,
    /// Not at all: [`Error::WouldBlock`] instead (libzmq's ZMQ_DONTWAIT).
    DontWait,
    /// Up to this long, then [`Error::TimedOut`].
    Timeout(Duration),
}

struct ContextInner {
    reactors: Reactors<SocketService>,
    next_socket: AtomicU64,
    next_reactor: AtomicUsize,
}

/// The reactors and everything sockets share. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    inner: Arc<ContextInner>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("reactors", &self.inner.reactors.len())
            .finish()
    }
}

impl Context {
    /// A context with one unpinned reactor.
    pub fn new() -> Result<Context> {
        Context::with_config(&ReactorConfig::default())
    }

    /// A context with reactors as configured. Fails, saying why, where
    /// io_uring is unavailable.
    pub fn with_config(config: &ReactorConfig) -> Result<Context> {
        Ok(Context {
            inner: Arc::new(ContextInner {
                reactors: Reactors::start(config, |_, _| SocketService::default())?,
                next_socket: AtomicU64::new(1),
                next_reactor: AtomicUsize::new(0),
            }),
        })
    }

    /// The kernel interface this context's reactors run on: `"io_uring"`
    /// or `"epoll"` (see [`crate::Backend`]).
    pub fn backend(&self) -> &'static str {
        self.inner.reactors.backend()
    }

    /// A new socket of `kind`.
    pub fn socket(&self, kind: SocketKind) -> Socket {
        Socket {
            kind,
            ctx: self.inner.clone(),
            id: self.inner.next_socket.fetch_add(1, Ordering::Relaxed),
            opts: SocketOptions::defaults(kind),
            shared: None,
            pipes: Vec::new(),
            by_id: PipeIndex::default(),
            rr: 0,
            own_subs: Trie::default(),
            subscribers: Trie::default(),
            pipe_topics: HashMap::new(),
            notifications: VecDeque::new(),
            endpoints: Vec::new(),
            arena: BytesMut::new(),
            fanout: Vec::new(),
            security: Arc::new(LiveSecurity::new(Security::default())),
        }
    }
}

/// Pipe ids (and the broker's connection ids) are small sequential
/// integers: they hash to themselves (the default SipHash costs more than
/// the fan-out it serves).
#[derive(Default, Clone, Copy)]
pub(crate) struct PipeIdHasher(u64);

impl std::hash::Hasher for PipeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

/// A map keyed by sequential ids.
pub(crate) type IdMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<PipeIdHasher>>;
type PipeIndex = IdMap<usize>;

struct PipeEntry {
    pipe: Arc<Pipe>,
    writer: PipeWriter,
    /// A connection serves it now.
    up: bool,
    /// A connect pipe that has our subscriptions queued from the start (as
    /// libzmq queues them at connect) and has not been up yet.
    fresh: bool,
}

impl PipeEntry {
    /// Whether subscription changes should be queued on it now; otherwise
    /// its next connection gets the whole set replayed.
    fn takes_subscriptions(&self) -> bool {
        self.up || self.fresh
    }
}

/// A ZeroMQ socket: PUB, SUB, XPUB, XSUB, PUSH or PULL.
pub struct Socket {
    kind: SocketKind,
    ctx: Arc<ContextInner>,
    id: u64,
    opts: SocketOptions,
    /// Made at the first bind or connect, with the options of that moment.
    shared: Option<Arc<SocketShared>>,
    pipes: Vec<PipeEntry>,
    by_id: PipeIndex,
    /// PUSH round-robin cursor.
    rr: usize,
    /// SUB/XSUB: our subscriptions, reference-counted.
    own_subs: Trie<usize>,
    /// PUB/XPUB: per topic, the pipes subscribed to it.
    subscribers: Trie<Vec<u64>>,
    /// PUB/XPUB: per pipe, its topics (to cancel them when it leaves).
    pipe_topics: HashMap<u64, HashSet<Bytes>>,
    /// XPUB: subscription reports waiting for the application.
    notifications: VecDeque<Message>,
    endpoints: Vec<String>,
    /// Where copied messages are encoded, back to back (see `Message::encode_in`).
    arena: BytesMut,
    /// Scratch list of fan-out targets, kept to avoid an allocation per message.
    fanout: Vec<usize>,
    /// The mechanism of every connection (see [`Socket::set_security`]).
    security: Arc<LiveSecurity>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("kind", &self.kind)
            .field("endpoints", &self.endpoints)
            .field("peers", &self.pipes.len())
            .finish()
    }
}

/// The `poll` timeout until `deadline` (-1: none), rounded up to whole
/// milliseconds: rounded down, the last part of every wait became
/// `poll(0)` in a loop, up to a millisecond of spinning per timed wait.
fn wait_ms(deadline: Option<Instant>) -> i32 {
    match deadline {
        None => -1,
        Some(d) => d
            .saturating_duration_since(Instant::now())
            .as_micros()
            .div_ceil(1000)
            .min(i32::MAX as u128) as i32,
    }
}

impl Socket {
    /// The socket's kind.
    pub fn kind(&self) -> SocketKind {
        self.kind
    }

    /// The options in effect.
    pub fn options(&self) -> &SocketOptions {
        &self.opts
    }

    /// Sets an option. Options apply to binds and connects made after the
    /// call; RCVHWM and RcvNodrop shape the onloop queue and must come
    /// before the first bind or connect.
    pub fn set(&mut self, option: SocketOption) -> Result<()> {
        if let SocketOption::SndHwm(v) | SocketOption::RcvHwm(v) = option {
            if v > MAX_HWM {
                return Err(Error::OptionOutOfRange {
                    option: if matches!(option, SocketOption::SndHwm(_)) {
                        "SNDHWM"
                    } else {
                        "RCVHWM"
                    },
                    value: v.to_string(),
                    why: "at most 2^31 - 1 messages, as libzmq's int",
                });
            }
        }
        if self.shared.is_some() {
            match option {
                SocketOption::RcvHwm(_) => return Err(Error::OptionTooLate { option: "RCVHWM" }),
                SocketOption::RcvNodrop(_) => {
                    return Err(Error::OptionTooLate {
                        option: "RcvNodrop",
                    })
                }
                SocketOption::RcvWakeDelay(_) => {
                    return Err(Error::OptionTooLate {
                        option: "RcvWakeDelay",
                    })
                }
                _ => {}
            }
        }
        self.opts.apply(option);
        Ok(())
    }

    /// Sets how connections authenticate and encrypt: NULL (the default),
    /// PLAIN or CURVE, as client or server, and for servers who may
    /// connect. Like libzmq's ZMQ_CURVE_* and ZMQ_PLAIN_* options it applies
    /// to connections made after it; zring asks for it before the first
    /// bind or connect, so that no endpoint of a socket runs another
    /// mechanism.
    pub fn set_security(&mut self, security: Security) -> Result<()> {
        if self.shared.is_some() {
            return Err(Error::OptionTooLate { option: "security" });
        }
        self.security = Arc::new(LiveSecurity::new(security));
        Ok(())
    }

    /// The security its connections start with, which a reload may replace
    /// ([`LiveSecurity::replace`]) for connections made from then on.
    pub fn live_security(&self) -> Arc<LiveSecurity> {
        self.security.clone()
    }

    fn shared(&mut self) -> Result<Arc<SocketShared>> {
        if let Some(s) = &self.shared {
            return Ok(s.clone());
        }
        let shared = Arc::new(
            SocketShared::new(
                self.id,
                self.kind,
                self.opts.rcvhwm,
                self.opts.rcv_nodrop,
                self.ctx.reactors.len(),
            )
            .map(|shared| shared.with_wake_delay(self.opts.rcv_wake_delay))
            .map_err(|source| Error::Io {
                what: "cannot create the socket's eventfds".into(),
                source,
            })?,
        );
        self.shared = Some(shared.clone());
        Ok(shared)
    }

    fn spec(&mut self) -> Result<Arc<ConnSpec<SocketService>>> {
        let socket = self.shared()?;
        let mut session = SessionConfig::new(self.kind.zmtp_type());
        if let Some(max) = self.opts.max_msg_size {
            session.max_frame_size = max;
            session.max_message_size = session.max_message_size.max(max);
        }
        Ok(Arc::new(ConnSpec {
            owner: self.id,
            opts: service::conn_options(&self.opts),
            session,
            security: self.security.clone(),
            counters: socket.counters.clone(),
            service: SocketSpec {
                socket,
                sndhwm: self.opts.sndhwm,
                immediate: self.opts.immediate,
            },
        }))
    }

    fn pick_reactor(&self) -> usize {
        self.ctx.next_reactor.fetch_add(1, Ordering::Relaxed) % self.ctx.reactors.len()
    }

    /// Binds to `endpoint` and returns the endpoint actually bound (with
    /// the port the kernel chose for `tcp://HOST:*`).
    pub fn bind(&mut self, endpoint: &str) -> Result<String> {
        let parsed = Endpoint::parse(endpoint)?;
        let spec = self.spec()?;
        let io = |source| Error::Io {
            what: format!("cannot bind {endpoint}"),
            source,
        };
        let (fd, bound) = match &parsed {
            Endpoint::Tcp { .. } => {
                let addr = parsed.bind_addrs()?[0];
                let (fd, local) = sys::tcp_listen(addr).map_err(io)?;
                let shown = match local {
                    std::net::SocketAddr::V6(a) => format!("tcp://[{}]:{}", a.ip(), a.port()),
                    std::net::SocketAddr::V4(a) => format!("tcp://{a}"),
                };
                (fd, shown)
            }
            Endpoint::Ipc(path) => (sys::ipc_listen(path).map_err(io)?, parsed.to_string()),
        };
        sys::set_backlog(fd.as_raw_fd(), self.opts.backlog);
        let reactor = self.pick_reactor();
        self.ctx.reactors.post(
            reactor,
            Command::Listen {
                spec,
                fd,
                name: bound.clone(),
            },
        );
        self.endpoints.push(bound.clone());
        Ok(bound)
    }

    /// Connects to `endpoint`, reconnecting whenever the connection drops
    /// (RECONNECT_IVL). Without IMMEDIATE, messages queue for the peer from
    /// now on, as in libzmq.
    pub fn connect(&mut self, endpoint: &str) -> Result<()> {
        let parsed = Endpoint::parse(endpoint)?;
        let targets = match &parsed {
            Endpoint::Tcp { .. } => parsed
                .connect_addrs()?
                .into_iter()
                .map(Target::Tcp)
                .collect(),
            Endpoint::Ipc(path) => vec![Target::Ipc(path.clone())],
        };
        let spec = self.spec()?;
        let reactor = self.pick_reactor();
        let pipe = if self.opts.immediate {
            None
        } else {
            let socket = &spec.service.socket;
            let (pipe, writer) = Pipe::new(socket.new_pipe_id(), reactor, self.opts.sndhwm);
            self.add_pipe(pipe.clone(), writer, false);
            if matches!(self.kind, SocketKind::Sub | SocketKind::Xsub) {
                self.replay_subscriptions(pipe.id);
                self.pipes.last_mut().expect("just added").fresh = true;
            }
            Some(pipe)
        };
        self.ctx.reactors.post(
            reactor,
            Command::Connect {
                spec,
                targets,
                link: pipe,
                name: parsed.to_string(),
            },
        );
        self.endpoints.push(parsed.to_string());
        Ok(())
    }

    /// Stops accepting connections on every endpoint this socket bound:
    /// the listening sockets close (a peer connecting now is refused), and
    /// the connections already accepted stay, with whatever they still
    /// send. `zring logger` does this when it stops, so that it can read
    /// what its nodes already sent while no new node joins. Unlike
    /// libzmq's `zmq_unbind`, which also ends the connections accepted on
    /// the endpoint.
    pub fn stop_accepting(&mut self) {
        if self.shared.is_none() {
            return;
        }
        for reactor in 0..self.ctx.reactors.len() {
            self.ctx
                .reactors
                .post(reactor, Command::StopAccepting(self.id));
        }
    }

    /// A file descriptor that is readable while a message or event waits.
    /// After it polls readable, call [`Socket::recv`] with
    /// [`Wait::DontWait`] until it returns [`Error::WouldBlock`].
    pub fn fd(&mut self) -> Result<RawFd> {
        Ok(self.shared()?.onloop.readiness().raw_fd())
    }

    /// A snapshot of the socket's counters.
    pub fn stats(&self) -> SocketStats {
        self.shared
            .as_ref()
            .map(|s| s.counters.snapshot())
            .unwrap_or_default()
    }

    /// Received messages waiting in the onloop queue for the application.
    pub fn queued(&self) -> usize {
        self.shared.as_ref().map_or(0, |s| s.onloop.len())
    }

    /// Topics subscribed: by peers (PUB, XPUB) or by us (SUB, XSUB).
    pub fn topic_count(&mut self) -> usize {
        self.process_events();
        self.subscribers.len() + self.own_subs.len()
    }

    /// Peers with a pipe now.
    pub fn peer_count(&mut self) -> usize {
        self.process_events();
        self.pipes.len()
    }

    // ---- control events ----

    fn add_pipe(&mut self, pipe: Arc<Pipe>, writer: PipeWriter, up: bool) {
        self.by_id.insert(pipe.id, self.pipes.len());
        self.pipes.push(PipeEntry {
            pipe,
            writer,
            up,
            fresh: false,
        });
    }

    fn remove_pipe(&mut self, pipe_id: u64) {
        let Some(index) = self.by_id.remove(&pipe_id) else {
            return;
        };
        let entry = self.pipes.remove(index);
        for (i, e) in self.pipes.iter().enumerate().skip(index) {
            self.by_id.insert(e.pipe.id, i);
        }
        // The reactor no longer reads it: what is left is lost.
        let lost = entry.pipe.discard_queued();
        if let Some(s) = &self.shared {
            s.counters
                .disconnect_drops
                .fetch_add(lost as u64, Ordering::Relaxed);
        }
    }

    fn process_events(&mut self) {
        let Some(shared) = &self.shared else {
            return;
        };
        if !shared.has_events() {
            return;
        }
        let shared = shared.clone();
        while let Some(event) = shared.next_event() {
            match event {
                CoreEvent::Up { pipe, writer } => {
                    let id = pipe.id;
                    let mut replay = true;
                    if let Some(writer) = writer {
                        self.add_pipe(pipe, writer, true);
                    } else if let Some(&i) = self.by_id.get(&id) {
                        let entry = &mut self.pipes[i];
                        entry.up = true;
                        replay = !std::mem::take(&mut entry.fresh);
                    }
                    if replay && matches!(self.kind, SocketKind::Sub | SocketKind::Xsub) {
                        self.replay_subscriptions(id);
                    }
                }
                CoreEvent::Down { pipe_id, remove } => {
                    if matches!(self.kind, SocketKind::Pub | SocketKind::Xpub) {
                        self.unsubscribe_pipe(pipe_id);
                    }
                    if remove {
                        self.remove_pipe(pipe_id);
                    } else if let Some(&i) = self.by_id.get(&pipe_id) {
                        self.pipes[i].up = false;
                    }
                }
                CoreEvent::Subscription { pipe_id, sub } => {
                    self.apply_subscription(pipe_id, sub.action, sub.topic);
                }
            }
        }
    }

    fn notify(&mut self, action: SubscriptionAction, topic: &[u8]) {
        if self.kind != SocketKind::Xpub {
            return;
        }
        let mut body = Vec::with_capacity(topic.len() + 1);
        body.push(match action {
            SubscriptionAction::Subscribe => 1,
            SubscriptionAction::Cancel => 0,
        });
        body.extend_from_slice(topic);
        self.notifications.push_back(Message::from_frames(&[body]));
    }

    /// A peer's (un)subscription, with libzmq's per-peer set semantics and
    /// VERBOSE/VERBOSER reporting, except that a cancel of a topic the peer
    /// never held is reported only with VERBOSER (libzmq always reports it,
    /// which lets one peer cut a topic for everyone through a proxy).
    fn apply_subscription(&mut self, pipe_id: u64, action: SubscriptionAction, topic: Bytes) {
        if !self.by_id.contains_key(&pipe_id) {
            return;
        }
        let (verbose, verboser) = (self.opts.xpub_verbose, self.opts.xpub_verboser);
        let report = match action {
            SubscriptionAction::Subscribe => {
                let holders = self.subscribers.entry(&topic, Vec::new);
                let first = holders.is_empty();
                if !holders.contains(&pipe_id) {
                    holders.push(pipe_id);
                    self.pipe_topics
                        .entry(pipe_id)
                        .or_default()
                        .insert(topic.clone());
                }
                first || verbose || verboser
            }
            SubscriptionAction::Cancel => {
                let held = self
                    .pipe_topics
                    .get_mut(&pipe_id)
                    .is_some_and(|t| t.remove(&topic));
                if held {
                    self.drop_holder(&topic, pipe_id) || verboser
                } else {
                    verboser
                }
            }
        };
        if report {
            self.notify(action, &topic);
        }
    }

    /// Removes one holder of `topic`; true if nobody holds it now.
    fn drop_holder(&mut self, topic: &[u8], pipe_id: u64) -> bool {
        let Some(holders) = self.subscribers.get_mut(topic) else {
            return false;
        };
        holders.retain(|&p| p != pipe_id);
        if holders.is_empty() {
            self.subscribers.remove(topic);
            true
        } else {
            false
        }
    }

    fn unsubscribe_pipe(&mut self, pipe_id: u64) {
        let Some(topics) = self.pipe_topics.remove(&pipe_id) else {
            return;
        };
        let mut topics: Vec<Bytes> = topics.into_iter().collect();
        topics.sort();
        for topic in topics {
            if self.drop_holder(&topic, pipe_id) || self.opts.xpub_verboser {
                self.notify(SubscriptionAction::Cancel, &topic);
            }
        }
    }

    fn replay_subscriptions(&mut self, pipe_id: u64) {
        let Some(&i) = self.by_id.get(&pipe_id) else {
            return;
        };
        let pipe = self.pipes[i].pipe.clone();
        for (topic, _) in self.own_subs.iter() {
            pipe.push_subscription(SubscriptionAction::Subscribe, Bytes::from(topic));
        }
        self.wake(&pipe);
    }

    fn wake(&self, pipe: &Arc<Pipe>) {
        if pipe.schedule() {
            self.ctx.reactors.post(
                pipe.reactor,
                Command::Service(SocketCommand::PipeReady(pipe.clone())),
            );
        }
    }

    // ---- subscriptions we make (SUB, XSUB) ----

    /// Subscribes to messages whose first frame starts with `topic` (SUB,
    /// XSUB). SUB tells peers only about new topics; XSUB forwards every
    /// subscribe, as libzmq does.
    pub fn subscribe(&mut self, topic: &[u8]) -> Result<()> {
        self.change_subscription(SubscriptionAction::Subscribe, topic)
    }

    /// Undoes one [`Socket::subscribe`]; peers hear of it when no
    /// subscription to `topic` is left. Unknown topics are ignored.
    pub fn unsubscribe(&mut self, topic: &[u8]) -> Result<()> {
        self.change_subscription(SubscriptionAction::Cancel, topic)
    }

    fn change_subscription(&mut self, action: SubscriptionAction, topic: &[u8]) -> Result<()> {
        if !matches!(self.kind, SocketKind::Sub | SocketKind::Xsub) {
            return Err(Error::NotSupported {
                kind: self.kind.name(),
                op: "subscribe",
            });
        }
        self.process_events();
        let forward = match action {
            SubscriptionAction::Subscribe => {
                let count = self.own_subs.entry(topic, || 0);
                *count += 1;
                *count == 1 || self.kind == SocketKind::Xsub
            }
            SubscriptionAction::Cancel => match self.own_subs.get_mut(topic) {
                None => false,
                Some(count) => {
                    *count -= 1;
                    if *count == 0 {
                        self.own_subs.remove(topic);
                        true
                    } else {
                        false
                    }
                }
            },
        };
        if forward {
            let topic = Bytes::copy_from_slice(topic);
            for entry in self.pipes.iter().filter(|e| e.takes_subscriptions()) {
                entry.pipe.push_subscription(action, topic.clone());
                self.wake(&entry.pipe);
            }
        }
        Ok(())
    }

    // ---- sending ----

    /// Sends a multipart message given as frames, without copying them.
    pub fn send_frames(&mut self, frames: Vec<Bytes>, wait: Wait) -> Result<()> {
        if frames.is_empty() {
            return Err(Error::EmptyMessage);
        }
        if self.kind == SocketKind::Xsub && frames.len() == 1 {
            if let Some((&flag @ (0 | 1), topic)) = frames[0].split_first() {
                let action = if flag == 1 {
                    SubscriptionAction::Subscribe
                } else {
                    SubscriptionAction::Cancel
                };
                return self.change_subscription(action, topic);
            }
        }
        if frames.len() == 1 {
            let frame = frames.into_iter().next().expect("one frame");
            return self.send_item(Outgoing::Single(frame), wait);
        }
        self.send_item(Outgoing::Frames(frames.into()), wait)
    }

    /// Sends a message in wire form, e.g. one received on another socket:
    /// its bytes go out as they are.
    pub fn send_message(&mut self, message: &Message, wait: Wait) -> Result<()> {
        if self.kind == SocketKind::Xsub && message.frame_count() == 1 {
            return self.send_frames(message.to_frames(), wait);
        }
        self.send_item(Outgoing::Wire(message.clone()), wait)
    }

    /// Sends a message made of byte slices, blocking. They are copied,
    /// once, into the message's wire form.
    pub fn send<B: AsRef<[u8]>>(&mut self, frames: &[B]) -> Result<()> {
        self.send_copy(frames, Wait::Block)
    }

    /// Like [`Socket::send`], with a choice of waiting.
    pub fn send_copy<B: AsRef<[u8]>>(&mut self, frames: &[B], wait: Wait) -> Result<()> {
        if frames.is_empty() {
            return Err(Error::EmptyMessage);
        }
        let message = Message::encode_in(frames, &mut self.arena);
        if self.kind == SocketKind::Xsub {
            // Single frames may be (un)subscriptions.
            return self.send_message(&message, wait);
        }
        self.send_item(Outgoing::Wire(message), wait)
    }

    /// Sends a single-frame message without copying `frame`.
    pub fn send_bytes(&mut self, frame: Bytes, wait: Wait) -> Result<()> {
        if self.kind == SocketKind::Xsub {
            return self.send_frames(vec![frame], wait);
        }
        self.send_item(Outgoing::Single(frame), wait)
    }

    fn send_item(&mut self, item: Outgoing, wait: Wait) -> Result<()> {
        if !self.kind.can_send() {
            return Err(Error::NotSupported {
                kind: self.kind.name(),
                op: "send",
            });
        }
        let deadline = match wait {
            Wait::Timeout(d) => Some(Instant::now() + d),
            _ => None,
        };
        let mut prepared = false;
        let mut item = item;
        loop {
            self.process_events();
            match self.route(item) {
                Ok(()) => return Ok(()),
                Err(back) => item = back,
            }
            match wait {
                Wait::DontWait => return Err(Error::WouldBlock),
                Wait::Timeout(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    return Err(Error::TimedOut)
                }
                _ => {}
            }
            let shared = self.shared()?;
            if !prepared {
                // Announce the wait, then try again before sleeping, so a
                // slot freed in between is not missed.
                shared.prepare_wait_writable();
                prepared = true;
                continue;
            }
            shared.wait_writable(wait_ms(deadline));
            prepared = false;
        }
    }

    /// Queues `item` where the socket type sends it; gives it back when it
    /// must wait (no peer, or full pipes where the type does not drop).
    fn route(&mut self, item: Outgoing) -> Result<(), Outgoing> {
        match self.kind {
            SocketKind::Push => self.route_round_robin(item),
            SocketKind::Pub | SocketKind::Xpub => self.route_fan_out(item),
            SocketKind::Xsub => {
                let pipes: Vec<usize> = (0..self.pipes.len())
                    .filter(|&i| self.pipes[i].up)
                    .collect();
                self.push_all(&pipes, item);
                Ok(())
            }
            SocketKind::Sub | SocketKind::Pull => unreachable!("checked by can_send"),
        }
    }

    fn route_round_robin(&mut self, mut item: Outgoing) -> Result<(), Outgoing> {
        let n = self.pipes.len();
        // `rr` may point past the end after a pipe left: start over there.
        let mut i = if self.rr < n { self.rr } else { 0 };
        for _ in 0..n {
            match self.pipes[i].writer.push(item) {
                Ok(()) => {
                    self.rr = i + 1;
                    self.wake(&self.pipes[i].pipe);
                    return Ok(());
                }
                Err(back) => item = back,
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
        Err(item)
    }

    fn first_frame(item: &Outgoing) -> &[u8] {
        match item {
            Outgoing::Wire(m) => m.first_frame(),
            Outgoing::Single(f) => f,
            Outgoing::Frames(f) => &f[0],
        }
    }

    fn route_fan_out(&mut self, item: Outgoing) -> Result<(), Outgoing> {
        let mut targets = std::mem::take(&mut self.fanout);
        targets.clear();
        let mut nodes = 0;
        let by_id = &self.by_id;
        self.subscribers
            .for_each_prefix(Self::first_frame(&item), |holders| {
                nodes += 1;
                targets.extend(holders.iter().filter_map(|id| by_id.get(id)))
            });
        if nodes > 1 {
            // A peer subscribed to two prefixes of the topic gets it once.
            targets.sort_unstable();
            targets.dedup();
        }
        let result =
            if self.opts.xpub_nodrop && targets.iter().any(|&i| self.pipes[i].writer.is_full()) {
                Err(item)
            } else {
                self.push_all(&targets, item);
                Ok(())
            };
        self.fanout = targets;
        result
    }

    /// Queues `item` on the pipes at `indexes`, dropping (and counting) it
    /// for full ones. The last pipe gets the item itself, the others clones.
    fn push_all(&mut self, indexes: &[usize], item: Outgoing) {
        let Some((&last, rest)) = indexes.split_last() else {
            return;
        };
        let mut dropped = 0;
        for &i in rest {
            match self.pipes[i].writer.push(item.clone()) {
                Ok(()) => self.wake(&self.pipes[i].pipe),
                Err(_) => dropped += 1,
            }
        }
        match self.pipes[last].writer.push(item) {
            Ok(()) => self.wake(&self.pipes[last].pipe),
            Err(_) => dropped += 1,
        }
        if dropped > 0 {
            if let Some(s) = &self.shared {
                s.counters.hwm_drops.fetch_add(dropped, Ordering::Relaxed);
            }
        }
    }

    // ---- receiving ----

    /// Receives the next message (for XPUB also subscription reports,
    /// `\x01topic` / `\x00topic`).
    pub fn recv(&mut self, wait: Wait) -> Result<Message> {
        if !self.kind.can_recv() {
            return Err(Error::NotSupported {
                kind: self.kind.name(),
                op: "receive",
            });
        }
        if self.shared.is_none() {
            self.shared()?;
        }
        let deadline = match wait {
            Wait::Timeout(d) => Some(Instant::now() + d),
            _ => None,
        };
        loop {
            self.process_events();
            if let Some(m) = self.take() {
                return Ok(m);
            }
            let shared = self.shared.as_ref().expect("made above");
            // Nothing: arm the wake-up, then look once more before waiting.
            shared.onloop.readiness().arm();
            self.process_events();
            if let Some(m) = self.take() {
                return Ok(m);
            }
            let shared = self.shared.as_ref().expect("made above");
            match wait {
                Wait::DontWait => return Err(Error::WouldBlock),
                Wait::Timeout(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    return Err(Error::TimedOut)
                }
                _ => shared.onloop.readiness().wait(wait_ms(deadline)),
            }
        }
    }

    /// The next deliverable message: a subscription report (XPUB) or a
    /// received message (SUB drops what matches none of its subscriptions).
    fn take(&mut self) -> Option<Message> {
        if let Some(m) = self.notifications.pop_front() {
            return Some(m);
        }
        let shared = self.shared.as_ref()?;
        while let Some(m) = shared.onloop.pop() {
            after_pop(&self.ctx, self.id, shared);
            if self.kind == SocketKind::Sub && !self.own_subs.matches(m.first_frame()) {
                shared
                    .counters
                    .filtered_messages
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            return Some(m);
        }
        None
    }
}

/// Resumes reactors that paused peers, once the queue is half empty
/// (waking them per message would cost more than it frees).
fn after_pop(ctx: &ContextInner, socket: u64, shared: &SocketShared) {
    let onloop = &shared.onloop;
    if shared.any_paused() && onloop.len() <= onloop.capacity() / 2 {
        for reactor in shared.take_paused() {
            let resume = Command::Service(SocketCommand::Resume(socket));
            ctx.reactors.post(reactor, resume);
        }
    }
}

/// The largest SNDHWM and RCVHWM, as libzmq's `int` options. A bounded
/// queue preallocates a slot (a few words) per message of its mark, so a
/// mark in the millions costs tens of MiB per peer (docs/operations.md).
pub const MAX_HWM: usize = i32::MAX as usize;

impl Drop for Socket {
    fn drop(&mut self) {
        if self.shared.is_none() {
            return;
        }
        for reactor in 0..self.ctx.reactors.len() {
            self.ctx
                .reactors
                .post(reactor, Command::CloseOwner(self.id));
        }
    }
}

#[cfg(test)]
mod wait_ms_tests {
    use super::*;

    #[test]
    fn timed_waits_round_up_to_whole_milliseconds() {
        assert_eq!(wait_ms(None), -1);
        let now = Instant::now();
        assert_eq!(wait_ms(Some(now)), 0, "due: no wait");
        // A fraction of a millisecond left still sleeps, for one.
        assert_eq!(
            wait_ms(Some(Instant::now() + Duration::from_micros(300))),
            1
        );
        let ms = wait_ms(Some(Instant::now() + Duration::from_micros(2500)));
        assert!(ms == 3 || ms == 2, "{ms}"); // 2 only if 500 µs passed meanwhile
        assert_eq!(
            wait_ms(Some(Instant::now() + Duration::from_secs(1 << 40))),
            i32::MAX
        );
    }
}
