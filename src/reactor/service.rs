//! The seam between the reactor and what runs on it.
//!
//! The reactor knows connections, receive buffers, timers, the mesh between
//! reactors and the kernel. A [`Service`] (ZeroMQ sockets, the broker) knows
//! what a connection's session means: it drives the session when input
//! arrives, fills the session's outbox when the connection can send, hears
//! what was sent and what closed, and takes its own commands and timers.
//!
//! A hook gets an [`Io`]: the reactor's connections, to read and change
//! their session and the service's own state of each, and a sink of
//! actions (close, send, receive again, a command to another reactor) that
//! the reactor carries out in order once the hook has returned. A hook
//! never calls back into the reactor, and the reactor imports no service:
//! it is generic over one (`Reactor<S>`), so the data path stays
//! monomorphic.
//!
//! What a hook may rely on:
//! - hooks of one reactor run one at a time, on its thread;
//! - actions run in the order they were asked for, before the reactor
//!   reads another completion or command; commands to one reactor arrive
//!   in the order they were sent;
//! - a connection whose close was asked for gets no more input, and
//!   `on_gone` once the kernel holds nothing of it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zmtp_codec::SessionConfig;

use super::close::CloseReason;
use super::conn::Conn;
use super::slab::{Key, Slab};
use super::TimerKey;
use crate::counters::Counters;
use crate::security::LiveSecurity;

/// What the reactor needs of a connection's options: timers, buffers,
/// reconnecting, sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnOptions {
    /// How long a closed owner's connections may go on sending (None:
    /// forever).
    pub(crate) linger: Option<Duration>,
    /// Our PINGs' interval (None: no heartbeats).
    pub(crate) heartbeat_ivl: Option<Duration>,
    /// The TTL our PINGs announce.
    pub(crate) heartbeat_ttl: Duration,
    /// How long after our PING the peer must have been heard.
    pub(crate) heartbeat_timeout: Option<Duration>,
    /// The longest a handshake may take.
    pub(crate) handshake_ivl: Option<Duration>,
    /// The first wait before reconnecting (None: never reconnect).
    pub(crate) reconnect_ivl: Option<Duration>,
    /// The longest wait between reconnects, when above `reconnect_ivl`.
    pub(crate) reconnect_ivl_max: Duration,
    /// Sends holding a frame this large go zero-copy.
    pub(crate) zerocopy_send_above: Option<usize>,
    /// SO_SNDBUF and SO_RCVBUF (None: the kernel's).
    pub(crate) sndbuf: Option<usize>,
    pub(crate) rcvbuf: Option<usize>,
}

/// Everything a connection needs from its owner (a socket, a side of the
/// broker), shared by a listener's or connecter's connections.
pub(crate) struct ConnSpec<S: Service> {
    /// The owner's id: closing it (or stopping its accepting) reaches its
    /// listeners, connecters and connections.
    pub(crate) owner: u64,
    pub(crate) opts: ConnOptions,
    pub(crate) session: SessionConfig,
    /// The mechanism each connection runs, and for servers who may
    /// connect: read when a connection starts, so a reload applies to new
    /// ones.
    pub(crate) security: Arc<LiveSecurity>,
    /// Where the reactor counts the connections' traffic and events.
    pub(crate) counters: Arc<Counters>,
    /// The service's own part.
    pub(crate) service: S::Spec,
}

impl<S: Service> std::fmt::Debug for ConnSpec<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnSpec")
            .field("owner", &self.owner)
            .field("opts", &self.opts)
            .finish()
    }
}

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Accepted on a bound endpoint.
    Accepted,
    /// Made by the connecter with this key.
    Connected(Key),
}

/// What runs on the reactors: the meaning of connections' sessions.
pub(crate) trait Service: Sized + 'static {
    /// Whether the reactor logs each close (else the service does, once a
    /// connection is gone, in its own words).
    const LOG_CLOSES: bool = true;

    /// A listener's or connecter's part for its connections.
    type Spec: Send + Sync + 'static;
    /// The service's state of one connection.
    type Conn: Send + 'static;
    /// What a connecter hands each connection it makes, kept across
    /// reconnects (a socket's pipe, when messages queue for a peer not yet
    /// connected).
    type Link: Send + 'static;
    /// Work for the service, from application threads or other reactors.
    type Command: Send + 'static;

    /// The service's state for a new connection.
    fn new_conn(&mut self, spec: &Arc<ConnSpec<Self>>, link: Option<&Self::Link>) -> Self::Conn;

    /// The connection's session has new input (or the service asked to
    /// hear it again): decode and deliver what it can.
    fn on_input(&mut self, io: &mut Io<'_, Self>, key: Key);

    /// Moves what is queued for the peer into the session, up to one send
    /// batch (see [`super::conn::room`]). Called when no send is in flight
    /// and the handshake is done: before, the session sends only its own.
    fn fill(conn: &mut Conn<Self>) -> zmtp_codec::Result<()>;

    /// Whether nothing waits in the service's queues for this connection
    /// (its session's outbox is the reactor's to check).
    fn drained(conn: &Conn<Self>) -> bool;

    /// `done` messages of this connection reached the kernel.
    fn on_sent(&mut self, io: &mut Io<'_, Self>, key: Key, done: usize);

    /// The connection started closing; it gets no more input. Nothing by
    /// default: a service that lets others wait on a connection (for its
    /// room) tells them here; one that does not has `on_gone` to clean up.
    fn on_closing(&mut self, _io: &mut Io<'_, Self>, _key: Key) {}

    /// The connection is gone: the kernel holds nothing of it. It is still
    /// in `conn` (no longer in `io`), with what it counted; `reconnects`
    /// when its connecter will connect again.
    fn on_gone(&mut self, io: &mut Io<'_, Self>, conn: &mut Conn<Self>, reconnects: bool);

    /// A command for the service.
    fn on_command(&mut self, io: &mut Io<'_, Self>, command: Self::Command);

    /// A timer the service set for `key` ([`Io::timer`]) is due. Nothing
    /// by default: only a service that sets timers gets here.
    fn on_timer(&mut self, _io: &mut Io<'_, Self>, _key: Key, _now: Instant) {}

    /// Once per turn of the reactor's loop, before it waits: for work the
    /// service defers (a socket's delayed wake-ups of its application).
    fn on_tick(&mut self, _io: &mut Io<'_, Self>) {}

    /// When [`Service::on_tick`] must run next, if it has a deadline.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// A connecter starts, with no connection yet. Nothing by default, nor
    /// in the two hooks below: they are for a service whose connecters
    /// queue messages in a link, and one that never connects (the broker)
    /// or keeps nothing in its links has nothing to track or lose.
    fn link_detached(_link: &Self::Link) {}

    /// Whether messages wait in a connecter's link for a connection (a
    /// closed owner's connecter then lingers to deliver them).
    fn link_queued(_link: &Self::Link) -> bool {
        false
    }

    /// A connecter goes for good: what waited in its link is lost; it is
    /// counted in `counters`.
    fn link_discard(_link: &Self::Link, _counters: &Counters) {}
}

/// What the reactor carries out for a service, in order, after a hook.
pub(crate) enum Action<S: Service> {
    /// Close the connection.
    Close(Key, CloseReason),
    /// Its session failed.
    Failed(Key, zmtp_codec::Error),
    /// Send what is queued for it, if no send is in flight.
    Send(Key),
    /// Read from it again (if it is not paused, at its end, or closing).
    Receive(Key),
    /// Run its input again ([`Service::on_input`]).
    Input(Key),
    /// Its deadlines changed.
    Deadlines(Key),
    /// Its handshake is done: heartbeats start, the handshake deadline
    /// goes, its connecter's backoff starts over.
    HandshakeDone(Key),
    /// A command for the service on this reactor (queued, in order) or
    /// another one (through the mesh).
    Command(usize, S::Command),
}

/// The reactor as a service's hook sees it.
pub(crate) struct Io<'a, S: Service> {
    /// This reactor.
    pub(crate) reactor: usize,
    /// How many reactors there are.
    pub(crate) reactors: usize,
    pub(super) conns: &'a mut Slab<Box<Conn<S>>>,
    pub(super) actions: &'a mut VecDeque<Action<S>>,
    pub(super) timers: &'a mut BinaryHeap<Reverse<(Instant, TimerKey)>>,
}

impl<S: Service> Io<'_, S> {
    /// A connection of this reactor, if it is still there.
    pub(crate) fn conn(&mut self, key: Key) -> Option<&mut Conn<S>> {
        self.conns.get_mut(key).map(|c| &mut **c)
    }

    /// Closes a connection.
    pub(crate) fn close(&mut self, key: Key, reason: CloseReason) {
        self.actions.push_back(Action::Close(key, reason));
    }

    /// A connection's session failed (a protocol error, a refused
    /// handshake): the reactor counts it, sends the session's last words
    /// (a refused peer's ERROR) and closes.
    pub(crate) fn failed(&mut self, key: Key, error: zmtp_codec::Error) {
        self.actions.push_back(Action::Failed(key, error));
    }

    /// Sends what is queued for a connection.
    pub(crate) fn send(&mut self, key: Key) {
        self.actions.push_back(Action::Send(key));
    }

    /// Reads from a connection again.
    pub(crate) fn receive(&mut self, key: Key) {
        self.actions.push_back(Action::Receive(key));
    }

    /// Runs a connection's input again.
    pub(crate) fn input(&mut self, key: Key) {
        self.actions.push_back(Action::Input(key));
    }

    /// A connection's deadlines changed (heartbeats, TTL).
    pub(crate) fn deadlines(&mut self, key: Key) {
        self.actions.push_back(Action::Deadlines(key));
    }

    /// A connection finished its handshake.
    pub(crate) fn handshake_done(&mut self, key: Key) {
        self.actions.push_back(Action::HandshakeDone(key));
    }

    /// Sends a command to the service on `reactor` (this one included).
    pub(crate) fn command(&mut self, reactor: usize, command: S::Command) {
        self.actions.push_back(Action::Command(reactor, command));
    }

    /// Calls [`Service::on_timer`] for `key` at `at`.
    pub(crate) fn timer(&mut self, at: Instant, key: Key) {
        self.timers.push(Reverse((at, TimerKey::Service(key))));
    }
}
