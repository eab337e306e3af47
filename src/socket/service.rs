//! ZeroMQ sockets as a reactor service: a connection's received messages
//! go to its socket's onloop queue (or are dropped and counted, or pause
//! the connection until the application makes room: NODROP), its
//! subscriptions and its arrival and departure to the socket's control
//! queue, and what the socket queued in the connection's pipe goes out.
//!
//! Connections paused on one socket's full queue resume in turns, one
//! message each (fair queuing), when the application makes room.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use zmtp_codec::{Event, Message, SubscriptionAction};

use super::options::{SocketKind, SocketOptions};
use super::pipe::{Pipe, NO_CONN};
use super::shared::{CoreEvent, SocketShared};
use crate::counters::Counters;
use crate::onloop::Offer;
use crate::reactor::conn::{room, Conn};
use crate::reactor::{ConnOptions, Io, Key, Service};

/// A socket's part of each of its connections' specs.
#[derive(Debug)]
pub(crate) struct SocketSpec {
    pub(crate) socket: Arc<SocketShared>,
    /// SNDHWM of the pipe made for a peer at its handshake.
    pub(crate) sndhwm: usize,
    /// IMMEDIATE: a pipe lives only while its connection does.
    pub(crate) immediate: bool,
}

/// A connection's socket state.
#[derive(Debug)]
pub(crate) struct SocketConn {
    /// The queue from the application; set at the handshake, or from the
    /// start for a connecter's pipe.
    pipe: Option<Arc<Pipe>>,
    /// The pipe was announced to the socket (CoreEvent::Up).
    announced: bool,
    /// The message that did not fit the onloop queue.
    held: Option<Message>,
}

/// Work for the socket service of a reactor.
#[derive(Debug)]
pub(crate) enum SocketCommand {
    /// The application queued items on this pipe.
    PipeReady(Arc<Pipe>),
    /// The socket's onloop queue has room again.
    Resume(u64),
}

/// The sockets' part of one reactor.
#[derive(Default)]
pub(crate) struct SocketService {
    /// Per socket: its connections paused on a full onloop queue.
    paused: HashMap<u64, Vec<Key>>,
    /// Sockets with a wake delay whose application has not been woken for
    /// what this reactor queued, and when it must be.
    deferred_wakes: Vec<(Arc<SocketShared>, Instant)>,
}

/// How many messages [`SocketService::step`] may deliver.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Delivery {
    /// Everything the connection's input holds, while the queue has room.
    Batch,
    /// One: the connection takes turns with other paused ones.
    One,
}

/// What one step of a connection's session did.
enum Step {
    /// A message went to the application (or was dropped and counted).
    Delivered,
    /// The onloop queue is full; the connection paused.
    Paused,
    /// Nothing more to deliver until more bytes arrive.
    Idle,
}

/// A socket's options as the reactor needs them.
pub(crate) fn conn_options(opts: &SocketOptions) -> ConnOptions {
    ConnOptions {
        linger: opts.linger,
        heartbeat_ivl: opts.heartbeat_ivl,
        heartbeat_ttl: opts.heartbeat_ttl,
        heartbeat_timeout: opts.effective_heartbeat_timeout(),
        handshake_ivl: opts.handshake_ivl,
        reconnect_ivl: opts.reconnect_ivl,
        reconnect_ivl_max: opts.reconnect_ivl_max,
        zerocopy_send_above: opts.zerocopy_send_above,
        sndbuf: opts.sndbuf,
        rcvbuf: opts.rcvbuf,
    }
}

impl Service for SocketService {
    type Spec = SocketSpec;
    type Conn = SocketConn;
    type Link = Arc<Pipe>;
    type Command = SocketCommand;

    fn new_conn(
        &mut self,
        _spec: &Arc<crate::reactor::ConnSpec<Self>>,
        link: Option<&Arc<Pipe>>,
    ) -> SocketConn {
        SocketConn {
            pipe: link.cloned(),
            announced: false,
            held: None,
        }
    }

    fn on_input(&mut self, io: &mut Io<'_, Self>, key: Key) {
        let Some(socket) = io.conn(key).map(|c| c.spec.service.socket.clone()) else {
            return;
        };
        while let Step::Delivered = self.step(io, key, Delivery::Batch) {}
        // Counted before the application can see the messages.
        if let Some(conn) = io.conn(key) {
            conn.flush_received_counters();
        }
        // One wake-up for everything this batch delivered.
        self.wake_application(&socket);
    }

    fn fill(conn: &mut Conn<Self>) -> zmtp_codec::Result<()> {
        match &conn.svc.pipe {
            Some(pipe) => pipe.fill(&mut conn.session, room, &mut conn.batch_messages),
            None => Ok(()),
        }
    }

    fn drained(conn: &Conn<Self>) -> bool {
        conn.svc.pipe.as_ref().is_none_or(|p| p.is_queue_empty())
    }

    fn on_sent(&mut self, io: &mut Io<'_, Self>, key: Key, done: usize) {
        let Some(conn) = io.conn(key) else {
            return;
        };
        if let Some(pipe) = &conn.svc.pipe {
            pipe.release(done);
        }
        if !conn.is_closing() {
            conn.spec.service.socket.notify_writable();
        }
    }

    fn on_gone(&mut self, _io: &mut Io<'_, Self>, conn: &mut Conn<Self>, reconnects: bool) {
        let spec = &conn.spec.service;
        let socket = &spec.socket;
        let mut lost = conn.batch_messages as u64;
        if conn.svc.held.is_some() {
            lost += 1;
        }
        if let Some(pipe) = &conn.svc.pipe {
            pipe.conn.store(NO_CONN, Ordering::Release);
            pipe.release(conn.batch_messages);
            // A connecter's pipe (no IMMEDIATE) outlives its connections.
            let remove = !reconnects || spec.immediate;
            if conn.svc.announced {
                socket.post(CoreEvent::Down {
                    pipe_id: pipe.id,
                    remove,
                });
            }
            socket.notify_writable();
        }
        conn.spec
            .counters
            .disconnect_drops
            .fetch_add(lost, Ordering::Relaxed);
    }

    fn on_command(&mut self, io: &mut Io<'_, Self>, command: SocketCommand) {
        match command {
            SocketCommand::PipeReady(pipe) => {
                let conn = pipe.conn.load(Ordering::Acquire);
                if conn != NO_CONN {
                    io.send(Key::from_u64(conn));
                }
            }
            SocketCommand::Resume(socket) => self.resume(io, socket),
        }
    }

    fn on_tick(&mut self, _io: &mut Io<'_, Self>) {
        self.fire_deferred_wakes();
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.deferred_wakes.iter().map(|&(_, at)| at).min()
    }

    fn link_detached(pipe: &Arc<Pipe>) {
        pipe.conn.store(NO_CONN, Ordering::Release);
    }

    fn link_queued(pipe: &Arc<Pipe>) -> bool {
        !pipe.is_queue_empty()
    }

    fn link_discard(pipe: &Arc<Pipe>, counters: &Counters) {
        let lost = pipe.discard_queued();
        counters
            .disconnect_drops
            .fetch_add(lost as u64, Ordering::Relaxed);
    }
}

impl SocketService {
    /// Advances one connection's session to its next delivered message, or
    /// with `Delivery::Batch` past every data message its input holds.
    fn step(&mut self, io: &mut Io<'_, Self>, key: Key, delivery: Delivery) -> Step {
        let reactor = io.reactor;
        let Some(conn) = io.conn(key) else {
            return Step::Idle;
        };
        if conn.is_closing() {
            return Step::Idle;
        }
        if let Some(held) = conn.svc.held.take() {
            return self.offer(io, key, held);
        }
        let socket = &conn.spec.service.socket;
        if delivery == Delivery::Batch
            && socket.kind.can_recv()
            && (self.paused.is_empty() || !self.paused.contains_key(&socket.id))
        {
            // The data plane: no event per message, one counter update per
            // batch. Anything else (a full queue, a command, a message across
            // chunks) takes the general path below.
            let (mut messages, mut bytes, mut drops) = (0u64, 0u64, 0u64);
            let back = conn.session.drain_messages(|message| {
                messages += 1;
                bytes += message.body_len();
                match socket.onloop.offer_quiet(message) {
                    Offer::Queued => None,
                    Offer::Dropped => {
                        drops += 1;
                        None
                    }
                    Offer::Full(message) => Some(message),
                }
            });
            conn.unflushed_in.0 += messages;
            conn.unflushed_in.1 += bytes;
            if drops > 0 {
                conn.spec
                    .counters
                    .onloop_drops
                    .fetch_add(drops, Ordering::Relaxed);
            }
            if let Some(message) = back {
                return self.offer(io, key, message);
            }
            if messages > 0 {
                return Step::Delivered;
            }
        }
        loop {
            let Some(conn) = io.conn(key) else {
                return Step::Idle;
            };
            let event = match conn.session.poll() {
                Ok(Some(event)) => event,
                Ok(None) => return Step::Idle,
                Err(e) => {
                    io.failed(key, e);
                    return Step::Idle;
                }
            };
            match event {
                Event::Ready(_) => {
                    let spec = &conn.spec.service;
                    let socket = spec.socket.clone();
                    let (pipe, writer) = match &conn.svc.pipe {
                        Some(p) => (p.clone(), None),
                        None => {
                            let (pipe, writer) =
                                Pipe::new(socket.new_pipe_id(), reactor, spec.sndhwm);
                            conn.svc.pipe = Some(pipe.clone());
                            (pipe, Some(writer))
                        }
                    };
                    pipe.conn.store(key.to_u64(), Ordering::Release);
                    conn.svc.announced = true;
                    socket.post(CoreEvent::Up { pipe, writer });
                    // A sender blocked for want of peers may go on.
                    socket.notify_writable();
                    io.handshake_done(key);
                    return Step::Delivered;
                }
                Event::Message(message) => {
                    conn.unflushed_in.0 += 1;
                    conn.unflushed_in.1 += message.body_len();
                    match conn.spec.service.socket.kind {
                        SocketKind::Pub | SocketKind::Push => {
                            let counters = &conn.spec.counters;
                            counters.ignored_messages.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => return self.offer(io, key, message),
                    }
                }
                Event::Subscription(sub) => {
                    let counters = &conn.spec.counters;
                    let counter = match sub.action {
                        SubscriptionAction::Subscribe => &counters.subscriptions_in,
                        SubscriptionAction::Cancel => &counters.cancels_in,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if let Some(pipe) = &conn.svc.pipe {
                        conn.spec.service.socket.post(CoreEvent::Subscription {
                            pipe_id: pipe.id,
                            sub,
                        });
                    }
                }
                Event::Ping {
                    ttl_deciseconds, ..
                } => conn.note_ping_ttl(ttl_deciseconds),
                Event::Pong { .. } => {}
            }
        }
    }

    /// Offers a received message to the application. The caller wakes the
    /// application once its batch is done.
    fn offer(&mut self, io: &mut Io<'_, Self>, key: Key, message: Message) -> Step {
        let reactor = io.reactor;
        let Some(conn) = io.conn(key) else {
            return Step::Idle;
        };
        let socket = &conn.spec.service.socket;
        // Peers already waiting for room go first: take a place in line
        // rather than the room they wait for (fair queuing). They also
        // guarantee a Resume is coming.
        let others_wait =
            !self.paused.is_empty() && self.paused.get(&socket.id).is_some_and(|l| !l.is_empty());
        let mut message = message;
        if !others_wait {
            message = match socket.onloop.offer_quiet(message) {
                Offer::Queued => return Step::Delivered,
                Offer::Dropped => {
                    let counters = &conn.spec.counters;
                    counters.onloop_drops.fetch_add(1, Ordering::Relaxed);
                    return Step::Delivered;
                }
                Offer::Full(message) => message,
            };
            // Announce the pause before retrying once: either the
            // application sees the flag after making room, or the retry
            // sees the room. What is queued must wake it, or nothing will.
            socket.set_paused(reactor);
            socket.onloop.readiness().notify();
            message = match socket.onloop.offer_quiet(message) {
                Offer::Queued => return Step::Delivered,
                Offer::Dropped => unreachable!("a NODROP queue never drops"),
                Offer::Full(message) => message,
            };
        }
        let socket_id = socket.id;
        conn.svc.held = Some(message);
        tracing::trace!(peer = %conn.peer, "onloop queue full: pausing");
        if !conn.paused {
            conn.pause();
            self.paused.entry(socket_id).or_default().push(key);
        }
        Step::Paused
    }

    /// The application made room: deliver from paused connections one
    /// message each in turn (fair queuing), until they run dry or the
    /// queue fills again.
    fn resume(&mut self, io: &mut Io<'_, Self>, socket: u64) {
        let Some(keys) = self.paused.remove(&socket) else {
            tracing::trace!(socket, "resume: nothing paused");
            return;
        };
        tracing::trace!(socket, paused = keys.len(), "resume");
        let shared = keys
            .iter()
            .find_map(|&k| io.conn(k).map(|c| c.spec.service.socket.clone()));
        let mut turn: VecDeque<Key> = keys.into();
        for key in &turn {
            if let Some(conn) = io.conn(*key) {
                conn.paused = false;
            }
        }
        while let Some(key) = turn.pop_front() {
            // Alone in line, a connection needs no turns: it delivers its batch.
            let delivery = if turn.is_empty() {
                Delivery::Batch
            } else {
                Delivery::One
            };
            let mut step = self.step(io, key, delivery);
            while turn.is_empty() && matches!(step, Step::Delivered) {
                step = self.step(io, key, Delivery::Batch);
            }
            if let Some(conn) = io.conn(key) {
                conn.flush_received_counters();
            }
            match step {
                Step::Delivered => turn.push_back(key),
                Step::Idle => {
                    // At its end, receive_again closes it; else it reads on.
                    io.deadlines(key);
                    io.receive(key);
                    io.send(key);
                }
                Step::Paused => {
                    // Full again: everyone still waiting stays paused.
                    for key in turn.drain(..) {
                        if let Some(conn) = io.conn(key) {
                            conn.pause();
                            self.paused.entry(socket).or_default().push(key);
                        }
                    }
                }
            }
        }
        if let Some(shared) = shared {
            self.wake_application(&shared);
        }
    }

    /// Wakes `socket`'s application for what this reactor queued: at once,
    /// or, with a wake delay, when the delay has passed since the first
    /// batch it was not woken for, or sooner if the queue is half full.
    /// Only the wake-up waits; the messages are already in the queue.
    fn wake_application(&mut self, socket: &Arc<SocketShared>) {
        let Some(delay) = socket.wake_delay else {
            socket.onloop.readiness().notify();
            return;
        };
        let deferred = self
            .deferred_wakes
            .iter()
            .position(|(s, _)| Arc::ptr_eq(s, socket));
        if socket.wake_now() {
            socket.onloop.readiness().notify();
            if let Some(i) = deferred {
                self.deferred_wakes.swap_remove(i);
            }
        } else if deferred.is_none() {
            self.deferred_wakes
                .push((socket.clone(), Instant::now() + delay));
        }
    }

    /// Performs the deferred wake-ups that are due.
    fn fire_deferred_wakes(&mut self) {
        if self.deferred_wakes.is_empty() {
            return;
        }
        let now = Instant::now();
        self.deferred_wakes.retain(|(socket, at)| {
            let due = *at <= now;
            if due {
                socket.onloop.readiness().notify();
            }
            !due
        });
    }
}
