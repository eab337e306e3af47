//! The broker as a reactor service: a publisher's messages go into the
//! lanes of the subscribers that match them (the shard of the reactor that
//! received them), a subscriber's subscriptions go to the coordinator, and
//! what the lanes and the publishers' pipes hold goes out.
//!
//! Every reactor runs one `BrokerService`; reactor 0's also runs the
//! [`Coordinator`]. They talk through [`BrokerCommand`]s over the mesh.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use zmtp_codec::{Event, Message, SubscriptionAction};

use super::book::SubId;
use super::coordinator::{Coordinator, Order, Request, Update};
use super::egress::{self, Lanes};
use super::shard::{Fanout, Shard};
use super::{BrokerShared, Counter, Side, COORDINATOR};
use crate::reactor::conn::{room, Conn};
use crate::reactor::refusals;
use crate::reactor::{CloseReason, ConnSpec, Io, Key, Service};
use crate::socket::pipe::{Pipe, NO_CONN};

/// Work for the broker on a reactor.
pub(crate) enum BrokerCommand {
    /// For the coordinator (reactor 0).
    Request(Request),
    /// From the coordinator to every reactor's shard, in its order.
    Update(Update),
    /// Subscription changes wait in a publisher's pipe: send them.
    Echo(Arc<Pipe>),
    /// Messages wait in a subscriber's lanes: send them.
    Wake { conn: u64 },
    /// A subscriber's lane for this reactor has room again.
    Space { sub: SubId },
    /// Close a slow subscriber (policy disconnect).
    Evict { conn: u64 },
}

/// A broker endpoint's part of each of its connections' specs.
#[derive(Debug)]
pub(crate) struct BrokerSpec {
    pub(crate) shared: Arc<BrokerShared>,
    pub(crate) side: Side,
}

/// The broker's state of one connection.
#[derive(Default)]
pub(crate) struct BrokerConn {
    /// Its id once its handshake is done (0 before).
    id: u64,
    /// A subscriber's lanes, which it sends from.
    lanes: Option<Lanes>,
    /// A publisher's pipe, which carries subscription changes to it.
    pipe: Option<Arc<Pipe>>,
}

/// The broker's part of one reactor.
pub(crate) struct BrokerService {
    shard: Shard,
    /// Reactor 0's.
    coordinator: Option<Coordinator>,
    orders: Vec<Order>,
    wakes: Vec<(usize, u64)>,
}

impl BrokerService {
    pub(crate) fn new(reactor: usize, shared: Arc<BrokerShared>) -> BrokerService {
        BrokerService {
            coordinator: (reactor == COORDINATOR).then(|| Coordinator::new(shared.clone())),
            shard: Shard::new(reactor, shared),
            orders: Vec::new(),
            wakes: Vec::new(),
        }
    }

    fn count(&self, counter: Counter, n: u64) {
        self.shard.shared.count(self.shard.reactor, counter, n);
    }
}

impl Service for BrokerService {
    /// The broker logs each disconnect once, in its own words, when the
    /// connection is gone.
    const LOG_CLOSES: bool = false;

    type Spec = BrokerSpec;
    type Conn = BrokerConn;
    /// The broker only binds: no connecters.
    type Link = ();
    type Command = BrokerCommand;

    fn new_conn(&mut self, _spec: &Arc<ConnSpec<Self>>, _link: Option<&()>) -> BrokerConn {
        BrokerConn::default()
    }

    fn on_input(&mut self, io: &mut Io<'_, Self>, key: Key) {
        let Some(side) = io.conn(key).map(|c| c.spec.service.side) else {
            return;
        };
        match side {
            Side::Publishers => self.publisher_batch(io, key),
            Side::Subscribers => self.subscriber_batch(io, key),
        }
        self.flush_wakeups(io);
    }

    fn fill(conn: &mut Conn<Self>) -> zmtp_codec::Result<()> {
        if let Some(lanes) = &mut conn.svc.lanes {
            loop {
                lanes.take_into(&mut conn.session, room, &mut conn.batch_messages)?;
                if !conn.session.outbox().is_empty() || !lanes.unschedule_and_recheck() {
                    return Ok(());
                }
            }
        }
        match &conn.svc.pipe {
            Some(pipe) => pipe.fill(&mut conn.session, room, &mut conn.batch_messages),
            None => Ok(()),
        }
    }

    fn drained(conn: &Conn<Self>) -> bool {
        conn.svc.lanes.as_ref().is_none_or(|l| l.is_empty())
            && conn.svc.pipe.as_ref().is_none_or(|p| p.is_queue_empty())
    }

    fn on_sent(&mut self, io: &mut Io<'_, Self>, key: Key, done: usize) {
        let Some(conn) = io.conn(key) else {
            return;
        };
        if let Some(pipe) = &conn.svc.pipe {
            pipe.release(done);
        }
        if conn.is_closing() {
            // A closing connection's lanes already told their producers.
            return;
        }
        if let Some(lanes) = &mut conn.svc.lanes {
            let sub = lanes.egress.sub;
            for reactor in lanes.release(done) {
                io.command(reactor, BrokerCommand::Space { sub });
            }
        }
    }

    fn on_closing(&mut self, io: &mut Io<'_, Self>, key: Key) {
        let Some(lanes) = io.conn(key).and_then(|c| c.svc.lanes.as_ref()) else {
            return;
        };
        // Publishers stop routing to it now, and those waiting for its
        // room go on.
        let sub = lanes.egress.sub;
        for reactor in lanes.egress.close() {
            io.command(reactor, BrokerCommand::Space { sub });
        }
    }

    fn on_gone(&mut self, io: &mut Io<'_, Self>, conn: &mut Conn<Self>, _reconnects: bool) {
        let id = conn.svc.id;
        let side = conn.spec.service.side;
        match side {
            Side::Subscribers => {
                if let Some(lanes) = conn.svc.lanes.take() {
                    // Taken for a send that never completed: lost. The
                    // lanes go first, so what they held is final before any
                    // shard counts it.
                    self.count(Counter::LostOnDisconnect, conn.batch_messages as u64);
                    lanes.egress.close();
                    drop(lanes);
                }
                if id != 0 {
                    let request = Request::SubscriberDown { sub: id };
                    io.command(COORDINATOR, BrokerCommand::Request(request));
                }
            }
            Side::Publishers => {
                self.shard.forget_publisher(conn.key.to_u64());
                if id != 0 {
                    let request = Request::PublisherDown { publisher: id };
                    io.command(COORDINATOR, BrokerCommand::Request(request));
                }
            }
        }
        log_disconnect(conn, side);
    }

    fn on_command(&mut self, io: &mut Io<'_, Self>, command: BrokerCommand) {
        match command {
            BrokerCommand::Request(request) => {
                let Some(coordinator) = self.coordinator.as_mut() else {
                    tracing::error!(reactor = io.reactor, "a coordinator request off reactor 0");
                    return;
                };
                let mut orders = std::mem::take(&mut self.orders);
                coordinator.handle(request, &mut orders);
                for order in orders.drain(..) {
                    match order {
                        Order::Update(reactor, update) => {
                            io.command(reactor, BrokerCommand::Update(update));
                        }
                        Order::Echo(pipe) => {
                            if pipe.reactor == io.reactor {
                                echo(io, &pipe);
                            } else {
                                io.command(pipe.reactor, BrokerCommand::Echo(pipe));
                            }
                        }
                    }
                }
                self.orders = orders;
            }
            BrokerCommand::Update(update) => {
                let resumed = self.shard.apply(update);
                unstall_all(io, resumed);
            }
            BrokerCommand::Echo(pipe) => echo(io, &pipe),
            BrokerCommand::Wake { conn } => io.send(Key::from_u64(conn)),
            BrokerCommand::Space { sub } => {
                let resumed = self.shard.on_space(sub);
                self.flush_wakeups(io);
                unstall_all(io, resumed);
            }
            BrokerCommand::Evict { conn } => {
                let key = Key::from_u64(conn);
                if io.conn(key).is_some_and(|c| !c.is_closing()) {
                    self.count(Counter::Evictions, 1);
                    let waited = self.shard.stall_timeout();
                    io.close(key, CloseReason::SlowSubscriber { waited });
                }
            }
        }
    }

    /// A stalled publisher's wait ran out (policy disconnect).
    fn on_timer(&mut self, io: &mut Io<'_, Self>, key: Key, now: Instant) {
        let id = key.to_u64();
        let Some(evicted) = self.shard.evict_for(id, now) else {
            if let Some(at) = self.shard.stall_deadline(id).filter(|&at| at > now) {
                io.timer(at, key);
            }
            return;
        };
        for egress in evicted {
            let sub = egress.sub;
            for reactor in egress.close() {
                io.command(reactor, BrokerCommand::Space { sub });
            }
            let conn = egress.conn;
            io.command(egress.reactor, BrokerCommand::Evict { conn });
        }
        unstall(io, key);
    }
}

impl BrokerService {
    /// Routes a publisher's messages into the subscribers' lanes, until its
    /// input runs dry or a full subscriber stalls it.
    fn publisher_batch(&mut self, io: &mut Io<'_, Self>, key: Key) {
        let id = key.to_u64();
        loop {
            let Some(conn) = io.conn(key) else {
                return;
            };
            if conn.is_closing() || conn.paused {
                return;
            }
            // The data plane: every whole message in the input, no event
            // per message.
            let (mut messages, mut frames, mut bytes, mut stalled) = (0u64, 0u64, 0u64, false);
            let shard = &mut self.shard;
            let mut route = |message: Message| {
                messages += 1;
                frames += message.frame_count() as u64;
                bytes += message.body_len();
                if shard.fan_out(id, &message) == Fanout::Stalled {
                    stalled = true;
                    // The shard keeps its own handle; this stops the drain.
                    return Some(message);
                }
                None
            };
            let drained = conn.session.drain_messages(&mut route).is_some();
            let event = if stalled || drained || messages > 0 {
                None
            } else {
                match conn.session.poll() {
                    Ok(event) => event,
                    Err(e) => {
                        io.failed(key, e);
                        return;
                    }
                }
            };
            let mut idle = false;
            match event {
                Some(Event::Message(message)) => {
                    messages += 1;
                    frames += message.frame_count() as u64;
                    bytes += message.body_len();
                    stalled = self.shard.fan_out(id, &message) == Fanout::Stalled;
                }
                Some(Event::Ready(_)) => self.ready(io, key),
                Some(Event::Ping {
                    ttl_deciseconds, ..
                }) => conn.note_ping_ttl(ttl_deciseconds),
                // A node's XPUB sends no subscriptions; nothing to do.
                Some(Event::Subscription(_)) | Some(Event::Pong { .. }) => {}
                None => idle = messages == 0,
            }
            if messages > 0 {
                if let Some(conn) = io.conn(key) {
                    conn.unflushed_in.0 += messages;
                    conn.unflushed_in.1 += bytes;
                }
                self.count(Counter::MessagesIn, messages);
                self.count(Counter::FrontendFramesIn, frames);
                self.count(Counter::FrontendBytesIn, bytes);
                self.count(Counter::BackendFramesOut, frames);
                self.count(Counter::BackendBytesOut, bytes);
            }
            if stalled {
                self.stall(io, key);
                return;
            }
            if idle {
                return;
            }
        }
    }

    /// Sends a subscriber's subscriptions to the coordinator.
    fn subscriber_batch(&mut self, io: &mut Io<'_, Self>, key: Key) {
        loop {
            let Some(conn) = io.conn(key) else {
                return;
            };
            if conn.is_closing() {
                return;
            }
            let event = match conn.session.poll() {
                Ok(Some(event)) => event,
                Ok(None) => return,
                Err(e) => {
                    io.failed(key, e);
                    return;
                }
            };
            match event {
                Event::Ready(_) => self.ready(io, key),
                Event::Subscription(s) => {
                    let sub = conn.svc.id;
                    let counters = &conn.spec.counters;
                    let counter = match s.action {
                        SubscriptionAction::Subscribe => {
                            counters.subscriptions_in.fetch_add(1, Ordering::Relaxed);
                            Counter::SubscriptionsIn
                        }
                        SubscriptionAction::Cancel => {
                            counters.cancels_in.fetch_add(1, Ordering::Relaxed);
                            Counter::CancelsIn
                        }
                    };
                    self.count(counter, 1);
                    self.count(Counter::BackendFramesIn, 1);
                    self.count(Counter::BackendBytesIn, 1 + s.topic.len() as u64);
                    let request = Request::Subscription {
                        sub,
                        action: s.action,
                        topic: s.topic,
                    };
                    io.command(COORDINATOR, BrokerCommand::Request(request));
                }
                Event::Message(message) => {
                    // libzmq's proxy would pass these to the publishers;
                    // Zeek's nodes send none. Counted and ignored.
                    conn.unflushed_in.0 += 1;
                    conn.unflushed_in.1 += message.body_len();
                    self.count(Counter::IgnoredFromSubscribers, 1);
                }
                Event::Ping {
                    ttl_deciseconds, ..
                } => conn.note_ping_ttl(ttl_deciseconds),
                Event::Pong { .. } => {}
            }
        }
    }

    /// A connection finished its handshake: it joins the book.
    fn ready(&mut self, io: &mut Io<'_, Self>, key: Key) {
        let (reactor, reactors) = (io.reactor, io.reactors);
        let Some(conn) = io.conn(key) else {
            return;
        };
        let shared = conn.spec.service.shared.clone();
        let id = shared.next_id();
        conn.svc.id = id;
        let version = conn
            .session
            .peer()
            .map_or_else(|| "unknown".to_owned(), |p| p.version_text());
        let request = match conn.spec.service.side {
            Side::Subscribers => {
                tracing::info!(peer = %conn.peer, version, "subscriber connected (XPUB side)");
                let hwm = shared.config.xpub_sndhwm;
                let (lanes, producers) = egress::lanes(id, reactor, key.to_u64(), reactors, hwm);
                let egress = lanes.egress.clone();
                conn.svc.lanes = Some(lanes);
                Request::SubscriberUp { egress, producers }
            }
            Side::Publishers => {
                tracing::info!(peer = %conn.peer, version, "publisher connected (XSUB side)");
                // The pipe carries only subscriptions to the node: it is
                // sent no data, so its message queue is the smallest.
                let (pipe, _no_data) = Pipe::new(id, reactor, 1);
                pipe.conn.store(key.to_u64(), Ordering::Release);
                conn.svc.pipe = Some(pipe.clone());
                Request::PublisherUp {
                    publisher: id,
                    pipe,
                }
            }
        };
        io.handshake_done(key);
        io.command(COORDINATOR, BrokerCommand::Request(request));
    }

    /// Tells the reactors serving subscribers that were given messages.
    fn flush_wakeups(&mut self, io: &mut Io<'_, Self>) {
        self.shard.take_wakeups(&mut self.wakes);
        for (reactor, conn) in self.wakes.drain(..) {
            if reactor == io.reactor {
                io.send(Key::from_u64(conn));
            } else {
                io.command(reactor, BrokerCommand::Wake { conn });
            }
        }
    }

    /// A publisher waits for room: stop reading it (after a bounded read
    /// ahead), so TCP pushes back on it.
    fn stall(&mut self, io: &mut Io<'_, Self>, key: Key) {
        let Some(conn) = io.conn(key) else {
            return;
        };
        conn.pause();
        tracing::trace!(peer = %conn.peer, "publisher waits for a full subscriber");
        if let Some(at) = self.shard.stall_deadline(key.to_u64()) {
            io.timer(at, key);
        }
    }
}

/// Sends what waits in a publisher's pipe from its connection, if it has one.
fn echo(io: &mut Io<'_, BrokerService>, pipe: &Pipe) {
    let conn = pipe.conn.load(Ordering::Acquire);
    if conn != NO_CONN {
        io.send(Key::from_u64(conn));
    }
}

fn unstall_all(io: &mut Io<'_, BrokerService>, conns: Vec<u64>) {
    for conn in conns {
        unstall(io, Key::from_u64(conn));
    }
}

/// A publisher may go on: deliver what it already sent, then read again.
fn unstall(io: &mut Io<'_, BrokerService>, key: Key) {
    let Some(conn) = io.conn(key) else {
        return;
    };
    conn.paused = false;
    io.input(key);
    // After the input: it may have stalled again, or be at its end.
    io.receive(key);
}

/// Logs a broker connection's end once, with why.
fn log_disconnect(conn: &Conn<BrokerService>, side: Side) {
    let (side, endpoint) = match side {
        Side::Subscribers => ("subscriber (XPUB side)", "listen_xpub_endpoint"),
        Side::Publishers => ("publisher (XSUB side)", "listen_xsub_endpoint"),
    };
    let Some(reason) = conn.close_reason() else {
        return;
    };
    if reason.is_refusal() {
        refusals::refused(
            &conn.peer,
            Some(endpoint),
            refusals::Refusal::Security,
            reason,
        );
    } else if conn.svc.id == 0 {
        tracing::info!(peer = %conn.peer, "connection closed before its handshake: {reason}");
    } else if reason.is_orderly() {
        tracing::info!(peer = %conn.peer, "{side} disconnected: {reason}");
    } else {
        tracing::warn!(peer = %conn.peer, "{side} disconnected: {reason}");
    }
}
