//! How a reactor serves broker connections: it feeds their sessions to the
//! broker's shard on this reactor instead of to an application's socket,
//! and carries the broker's commands between reactors.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use zmtp_codec::{Event, SubscriptionAction};

use super::slab::Key;
use super::{CloseReason, Command, Reactor, TimerKey};
use crate::broker::book::Effect;
use crate::broker::shard::Fanout;
use crate::broker::{egress, BrokerCommand, Counter, Side, COORDINATOR};
use crate::socket::pipe::{Pipe, NO_CONN};

impl Reactor {
    /// Sends broker work to a reactor (this one included), in order.
    pub(super) fn broker_send(&mut self, reactor: usize, command: BrokerCommand) {
        if reactor == self.id {
            self.broker_local.push_back(command);
        } else {
            self.send_to(reactor, Command::Broker(command));
        }
    }

    fn count(&self, counter: Counter, n: u64) {
        if let Some(shard) = &self.broker {
            shard.shared.count(self.id, counter, n);
        }
    }

    pub(super) fn broker_command(&mut self, command: BrokerCommand) {
        let Some(shard) = self.broker.as_mut() else {
            tracing::error!(
                reactor = self.id,
                "broker command for a reactor without a broker"
            );
            return;
        };
        let reactors = shard.shared.reactors;
        let mut effects = Vec::new();
        match command {
            BrokerCommand::SubscriberUp { egress, producers } => {
                shard.book.subscriber_up(egress.sub);
                for (reactor, producer) in producers.into_iter().enumerate() {
                    let egress = egress.clone();
                    self.broker_send(reactor, BrokerCommand::AddSubscriber { egress, producer });
                }
            }
            BrokerCommand::Subscription { sub, action, topic } => {
                shard.book.subscription(sub, action, topic, &mut effects);
            }
            BrokerCommand::SubscriberDown { sub } => {
                shard.book.subscriber_down(sub, &mut effects);
                // The cancels count as received, as libzmq's XPUB reports
                // a departed pipe's topics to the proxy.
                for e in &effects {
                    if let Effect::Route { topic, .. } = e {
                        let shared = &shard.shared;
                        shared.count(self.id, Counter::BackendFramesIn, 1);
                        shared.count(self.id, Counter::BackendBytesIn, 1 + topic.len() as u64);
                    }
                }
                self.apply_effects(effects);
                for reactor in 0..reactors {
                    self.broker_send(reactor, BrokerCommand::RemoveSubscriber { sub });
                }
                self.update_gauges();
                return;
            }
            BrokerCommand::PublisherUp { publisher, pipe } => {
                shard.publishers.insert(publisher, pipe);
                shard.book.publisher_up(publisher, &mut effects);
            }
            BrokerCommand::PublisherDown { publisher } => {
                shard.book.publisher_down(publisher);
                shard.publishers.remove(&publisher);
            }
            BrokerCommand::AddSubscriber { egress, producer } => {
                shard.add_subscriber(egress, producer);
                return;
            }
            BrokerCommand::Route { sub, topic, add } => {
                shard.route(sub, &topic, add);
                return;
            }
            BrokerCommand::RemoveSubscriber { sub } => {
                let resumed = shard.remove_subscriber(sub);
                self.unstall_all(resumed);
                return;
            }
            BrokerCommand::Wake { conn } => {
                self.pump_send(Key::from_u64(conn));
                return;
            }
            BrokerCommand::Space { sub } => {
                let resumed = shard.on_space(sub);
                self.flush_wakeups();
                self.unstall_all(resumed);
                return;
            }
            BrokerCommand::Evict { conn } => {
                let timeout = shard.stall_timeout();
                let key = Key::from_u64(conn);
                if self.conns.get_mut(key).is_some_and(|c| c.closing.is_none()) {
                    self.count(Counter::Evictions, 1);
                    let reason = format!(
                        "slow subscriber: kept a publisher waiting over {} ms \
                         (slow_subscriber = disconnect)",
                        timeout.as_millis()
                    );
                    self.close_conn(key, CloseReason::Service(reason));
                }
                return;
            }
        }
        self.apply_effects(effects);
        self.update_gauges();
    }

    /// Carries out what the book decided (coordinator only).
    fn apply_effects(&mut self, effects: Vec<Effect>) {
        let Some(shard) = self.broker.as_mut() else {
            return;
        };
        let reactors = shard.shared.reactors;
        let mut told: Vec<Arc<Pipe>> = Vec::new();
        let mut routes = Vec::new();
        for effect in effects {
            match effect {
                Effect::Route { sub, topic, add } => routes.push((sub, topic, add)),
                Effect::Tell {
                    publisher,
                    action,
                    topic,
                } => {
                    if let Some(pipe) = shard.publishers.get(&publisher) {
                        pipe.push_subscription(action, topic);
                        if !told.iter().any(|p| p.id == pipe.id) {
                            told.push(pipe.clone());
                        }
                    }
                }
                Effect::Forwarded { topic_len } => {
                    shard.shared.count(self.id, Counter::FrontendFramesOut, 1);
                    let bytes = 1 + topic_len as u64;
                    shard
                        .shared
                        .count(self.id, Counter::FrontendBytesOut, bytes);
                }
            }
        }
        // Routes first: every reactor's copy changes before the echo of the
        // same subscription can leave (commands to one reactor keep their
        // order, and our own sends are submitted after the mesh is flushed).
        for (sub, topic, add) in routes {
            for reactor in 0..reactors {
                let topic = topic.clone();
                self.broker_send(reactor, BrokerCommand::Route { sub, topic, add });
            }
        }
        for pipe in told {
            if pipe.schedule() {
                if pipe.reactor == self.id {
                    let conn = pipe.conn.load(Ordering::Acquire);
                    if conn != NO_CONN {
                        self.pump_send(Key::from_u64(conn));
                    }
                } else {
                    self.send_to(pipe.reactor, Command::PipeReady(pipe));
                }
            }
        }
    }

    fn update_gauges(&self) {
        if let Some(shard) = &self.broker {
            let shared = &shard.shared;
            let book = &shard.book;
            shared
                .upstream_prefixes
                .store(book.upstream_len() as u64, Ordering::Relaxed);
            shared
                .subscribers
                .store(book.subscribers() as u64, Ordering::Relaxed);
            shared
                .publishers
                .store(shard.publishers.len() as u64, Ordering::Relaxed);
        }
    }

    /// Runs a broker connection's session: a publisher's messages go to
    /// the subscribers' lanes; a subscriber's subscriptions to the book.
    pub(super) fn broker_process(&mut self, key: Key) {
        let Some(side) = self
            .conns
            .get_mut(key)
            .and_then(|c| c.spec.broker.as_ref().map(|r| r.side))
        else {
            return;
        };
        match side {
            Side::Publishers => self.publisher_batch(key),
            Side::Subscribers => self.subscriber_batch(key),
        }
        if let Some(conn) = self.conns.get_mut(key) {
            conn.flush_received_counters();
        }
        self.flush_wakeups();
        self.schedule_timer(key);
        self.pump_send(key);
    }

    fn publisher_batch(&mut self, key: Key) {
        let id = key.to_u64();
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let Some(shard) = self.broker.as_mut() else {
                return;
            };
            if conn.closing.is_some() || conn.paused {
                return;
            }
            // The data plane: every whole message in the input, no event
            // per message.
            let (mut messages, mut frames, mut bytes, mut stalled) = (0u64, 0u64, 0u64, false);
            let mut route = |message: zmtp_codec::Message| {
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
                        self.protocol_error(key, e);
                        return;
                    }
                }
            };
            let mut event_message = None;
            let mut idle = false;
            match event {
                Some(Event::Message(message)) => event_message = Some(message),
                Some(Event::Ready(_)) => self.broker_ready(key, Side::Publishers),
                Some(Event::Ping {
                    ttl_deciseconds, ..
                }) => self.note_ping_ttl(key, ttl_deciseconds),
                // A node's XPUB sends no subscriptions; nothing to do.
                Some(Event::Subscription(_)) | Some(Event::Pong { .. }) => {}
                None => idle = messages == 0,
            }
            if let Some(message) = event_message {
                messages += 1;
                frames += message.frame_count() as u64;
                bytes += message.body_len();
                let shard = self.broker.as_mut().expect("checked");
                stalled = shard.fan_out(id, &message) == Fanout::Stalled;
            }
            if messages > 0 {
                if let Some(conn) = self.conns.get_mut(key) {
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
                self.broker_stall(key);
                return;
            }
            if idle {
                return;
            }
        }
    }

    fn subscriber_batch(&mut self, key: Key) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.closing.is_some() {
                return;
            }
            let event = match conn.session.poll() {
                Ok(Some(event)) => event,
                Ok(None) => return,
                Err(e) => {
                    self.protocol_error(key, e);
                    return;
                }
            };
            match event {
                Event::Ready(_) => self.broker_ready(key, Side::Subscribers),
                Event::Subscription(s) => {
                    let sub = conn.broker_id;
                    let counters = &conn.spec.socket.counters;
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
                    let command = BrokerCommand::Subscription {
                        sub,
                        action: s.action,
                        topic: s.topic,
                    };
                    self.broker_send(COORDINATOR, command);
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
                } => self.note_ping_ttl(key, ttl_deciseconds),
                Event::Pong { .. } => {}
            }
        }
    }

    fn note_ping_ttl(&mut self, key: Key, ttl_deciseconds: u16) {
        if let Some(conn) = self.conns.get_mut(key) {
            if ttl_deciseconds > 0 {
                let ttl = std::time::Duration::from_millis(u64::from(ttl_deciseconds) * 100);
                conn.peer_ttl = Some(Instant::now() + ttl);
            }
        }
    }

    fn protocol_error(&mut self, key: Key, e: zmtp_codec::Error) {
        self.session_failed(key, e);
    }

    /// A broker connection finished its handshake: it joins the book.
    fn broker_ready(&mut self, key: Key, side: Side) {
        let reactor = self.id;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(shared) = conn.spec.broker.as_ref().map(|r| r.shared.clone()) else {
            return;
        };
        conn.handshake_deadline = None;
        conn.next_ping = conn.spec.opts.heartbeat_ivl.map(|d| Instant::now() + d);
        let counters = &conn.spec.socket.counters;
        counters.handshakes.fetch_add(1, Ordering::Relaxed);
        let id = shared.next_id();
        conn.broker_id = id;
        let version = conn.session.peer().map(|p| p.version);
        let command = match side {
            Side::Subscribers => {
                tracing::info!(peer = %conn.peer, ?version, "subscriber connected (XPUB side)");
                let hwm = shared.config.xpub_sndhwm;
                let (lanes, producers) =
                    egress::lanes(id, reactor, key.to_u64(), shared.reactors, hwm);
                let egress = lanes.egress.clone();
                conn.lanes = Some(lanes);
                BrokerCommand::SubscriberUp { egress, producers }
            }
            Side::Publishers => {
                tracing::info!(peer = %conn.peer, ?version, "publisher connected (XSUB side)");
                // The pipe carries only subscriptions to the node: it is
                // sent no data, so its message queue is the smallest.
                let (pipe, _no_data) = Pipe::new(id, reactor, 1);
                pipe.conn.store(key.to_u64(), Ordering::Release);
                conn.pipe = Some(pipe.clone());
                BrokerCommand::PublisherUp {
                    publisher: id,
                    pipe,
                }
            }
        };
        self.broker_send(COORDINATOR, command);
    }

    /// A broker connection is being freed: it leaves the book. Called
    /// before the connection is dropped, with its lanes taken out first so
    /// that what they held is final before any shard counts it.
    pub(super) fn broker_conn_gone(&mut self, conn: &mut super::conn::Conn) {
        let Some(side) = conn.spec.broker.as_ref().map(|r| r.side) else {
            return;
        };
        let id = conn.broker_id;
        match side {
            Side::Subscribers => {
                if let Some(lanes) = conn.lanes.take() {
                    // Taken for a send that never completed: lost.
                    self.count(Counter::LostOnDisconnect, conn.batch_messages as u64);
                    lanes.egress.close();
                    drop(lanes);
                }
                if id != 0 {
                    self.broker_send(COORDINATOR, BrokerCommand::SubscriberDown { sub: id });
                }
            }
            Side::Publishers => {
                if let Some(shard) = self.broker.as_mut() {
                    shard.forget_publisher(conn.key.to_u64());
                }
                if id != 0 {
                    let command = BrokerCommand::PublisherDown { publisher: id };
                    self.broker_send(COORDINATOR, command);
                }
            }
        }
        let side = match side {
            Side::Subscribers => "subscriber (XPUB side)",
            Side::Publishers => "publisher (XSUB side)",
        };
        // Called for closing connections only.
        let Some(reason) = &conn.closing else {
            return;
        };
        if id == 0 {
            tracing::info!(peer = %conn.peer, "connection closed before its handshake: {reason}");
        } else if reason.is_orderly() {
            tracing::info!(peer = %conn.peer, "{side} disconnected: {reason}");
        } else {
            tracing::warn!(peer = %conn.peer, "{side} disconnected: {reason}");
        }
    }

    /// Tells the reactors serving subscribers that were given messages.
    fn flush_wakeups(&mut self) {
        let Some(shard) = self.broker.as_mut() else {
            return;
        };
        let mut wakes = Vec::new();
        shard.take_wakeups(&mut wakes);
        for (reactor, conn) in wakes {
            if reactor == self.id {
                self.pump_send(Key::from_u64(conn));
            } else {
                self.send_to(reactor, Command::Broker(BrokerCommand::Wake { conn }));
            }
        }
    }

    /// A publisher waits for room: stop reading it (after a bounded read
    /// ahead), so TCP pushes back on it.
    fn broker_stall(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.paused = true;
        conn.read_ahead = 0;
        tracing::trace!(peer = %conn.peer, "publisher waits for a full subscriber");
        let deadline = self
            .broker
            .as_ref()
            .and_then(|s| s.stall_deadline(key.to_u64()));
        if let Some(at) = deadline {
            self.timers
                .push(std::cmp::Reverse((at, TimerKey::Stall(key))));
        }
    }

    fn unstall_all(&mut self, conns: Vec<u64>) {
        for conn in conns {
            self.broker_unstall(Key::from_u64(conn));
        }
    }

    /// A publisher may go on: deliver what it already sent, then read again.
    fn broker_unstall(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.paused = false;
        self.broker_process(key);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.paused || conn.closing.is_some() {
            return;
        }
        if conn.eof {
            self.close_conn(key, CloseReason::PeerClosed);
        } else {
            self.arm_recv(key);
        }
    }

    /// Policy disconnect: a publisher's wait ran out.
    pub(super) fn broker_stall_timer(&mut self, key: Key, now: Instant) {
        let Some(shard) = self.broker.as_mut() else {
            return;
        };
        let id = key.to_u64();
        let Some(evicted) = shard.evict_for(id, now) else {
            if let Some(at) = shard.stall_deadline(id).filter(|&at| at > now) {
                self.timers
                    .push(std::cmp::Reverse((at, TimerKey::Stall(key))));
            }
            return;
        };
        for egress in evicted {
            let sub = egress.sub;
            for reactor in egress.close() {
                self.broker_send(reactor, BrokerCommand::Space { sub });
            }
            let conn = egress.conn;
            self.broker_send(egress.reactor, BrokerCommand::Evict { conn });
        }
        self.broker_unstall(key);
    }
}
