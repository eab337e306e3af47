//! One reactor's part of the broker: its copy of the routing table, the
//! writing ends of every subscriber's lane for this reactor, and the
//! publishers on this reactor that wait for room.
//!
//! Routing runs on the reactor that received the message, against this
//! copy; the copy changes only through updates from the coordinator
//! (reactor 0, which owns the book), in the order it issued them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use zmtp_codec::Message;

use super::book::SubId;
use super::coordinator::Update;
use super::egress::Egress;
use super::match_cache::MatchCache;
use super::{BrokerShared, Counter, SlowSubscriber};
use crate::socket::pipe::PipeWriter;
use crate::socket::trie::Trie;
use crate::socket::IdMap;

/// A subscriber as one reactor sees it.
struct Route {
    producer: PipeWriter<Message>,
    egress: Arc<Egress>,
    /// The message number this subscriber was last matched for, so a
    /// message matching several of its prefixes is queued once.
    stamp: u64,
    /// Publisher connections (reactor keys) waiting for room in its lane.
    waiters: Vec<u64>,
    /// Listed in `Shard::touched`.
    touched: bool,
}

/// A publisher connection that could not queue a message for every
/// matching subscriber.
struct Stall {
    message: Message,
    /// Subscribers still to be given the message.
    pending: Vec<SubId>,
    since: Instant,
}

/// How a fan-out ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fanout {
    /// Queued for every matching subscriber (or dropped and counted).
    Done,
    /// A matching subscriber's lane is full: the publisher must stop
    /// reading until the shard says it may go on.
    Stalled,
}

/// A reactor's broker state.
pub(crate) struct Shard {
    pub(crate) reactor: usize,
    pub(crate) shared: Arc<BrokerShared>,
    routes: Trie<Vec<SubId>>,
    /// What recent first frames matched in `routes`, among `subs`.
    recent: MatchCache,
    subs: IdMap<Route>,
    stamp: u64,
    matched: Vec<SubId>,
    /// Subscribers given messages since `take_touched`.
    touched: Vec<SubId>,
    stalls: IdMap<Stall>,
}

impl Shard {
    pub(crate) fn new(reactor: usize, shared: Arc<BrokerShared>) -> Shard {
        Shard {
            reactor,
            shared,
            routes: Trie::default(),
            recent: MatchCache::default(),
            subs: IdMap::default(),
            stamp: 0,
            matched: Vec::new(),
            touched: Vec::new(),
            stalls: IdMap::default(),
        }
    }

    fn count(&self, counter: Counter, n: u64) {
        self.shared.count(self.reactor, counter, n);
    }

    /// Applies the coordinator's change to this copy; returns the
    /// publishers (connection keys) that may go on.
    pub(crate) fn apply(&mut self, update: Update) -> Vec<u64> {
        match update {
            Update::AddSubscriber { egress, producer } => self.add_subscriber(egress, producer),
            Update::Route { sub, topic, add } => self.route(sub, &topic, add),
            Update::RemoveSubscriber { sub } => return self.remove_subscriber(sub),
        }
        Vec::new()
    }

    /// A subscriber appeared; `producer` writes its lane for this reactor.
    pub(crate) fn add_subscriber(&mut self, egress: Arc<Egress>, producer: PipeWriter<Message>) {
        self.recent.clear();
        self.subs.insert(
            egress.sub,
            Route {
                producer,
                egress,
                stamp: 0,
                waiters: Vec::new(),
                touched: false,
            },
        );
    }

    /// Starts or stops routing `topic` to `sub`.
    pub(crate) fn route(&mut self, sub: SubId, topic: &Bytes, add: bool) {
        self.recent.clear();
        if add {
            let subs = self.routes.entry(topic, Vec::new);
            if !subs.contains(&sub) {
                subs.push(sub);
            }
        } else if let Some(subs) = self.routes.get_mut(topic) {
            subs.retain(|&s| s != sub);
            if subs.is_empty() {
                self.routes.remove(topic);
            }
        }
    }

    /// A subscriber is gone (its routes were removed before). Messages its
    /// lane still held are counted as lost; returns the publishers that were
    /// waiting only for it and may go on.
    pub(crate) fn remove_subscriber(&mut self, sub: SubId) -> Vec<u64> {
        self.recent.clear();
        let Some(route) = self.subs.remove(&sub) else {
            return Vec::new();
        };
        let lost = route.producer.abandoned().unwrap_or(0) as u64;
        self.count(Counter::LostOnDisconnect, lost);
        route
            .waiters
            .into_iter()
            .filter(|&conn| self.retry(conn))
            .collect()
    }

    /// Queues `message` (from publisher connection `from`) for every
    /// subscriber with a prefix of its first frame.
    pub(crate) fn fan_out(&mut self, from: u64, message: &Message) -> Fanout {
        self.stamp += 1;
        let stamp = self.stamp;
        let mut matched = std::mem::take(&mut self.matched);
        matched.clear();
        let topic = message.first_frame();
        if let Some(ids) = self.recent.get(topic) {
            matched.extend_from_slice(ids);
        } else {
            let subs = &mut self.subs;
            self.routes.for_each_prefix(topic, |ids| {
                for id in ids {
                    if let Some(route) = subs.get_mut(id) {
                        if route.stamp != stamp {
                            route.stamp = stamp;
                            matched.push(*id);
                        }
                    }
                }
            });
            self.recent.insert(topic, &matched);
        }
        if matched.is_empty() {
            self.count(Counter::Unmatched, 1);
        }
        let mut pending = Vec::new();
        for &sub in &matched {
            if !self.offer(sub, message) {
                pending.push(sub);
            }
        }
        self.matched = matched;
        if pending.is_empty() {
            return Fanout::Done;
        }
        self.stall(from, message.clone(), pending);
        Fanout::Stalled
    }

    /// Tries to queue `message` for `sub`. False when the publisher must
    /// wait (policy block or disconnect, lane full); true when queued or
    /// dropped and counted.
    fn offer(&mut self, sub: SubId, message: &Message) -> bool {
        let policy = self.shared.config.slow_subscriber;
        let Some(route) = self.subs.get_mut(&sub) else {
            self.shared
                .count(self.reactor, Counter::DroppedSubscriberGone, 1);
            return true;
        };
        if route.egress.is_closed() {
            self.shared
                .count(self.reactor, Counter::DroppedSubscriberGone, 1);
            return true;
        }
        let mut pushed = route.producer.push(message.clone());
        if pushed.is_err() && policy != SlowSubscriber::Drop {
            // Announce the wait, then look once more: either this retry
            // finds room or the subscriber's reactor sees the flag.
            route.egress.want_space(self.reactor);
            if route.egress.is_closed() {
                self.shared
                    .count(self.reactor, Counter::DroppedSubscriberGone, 1);
                return true;
            }
            pushed = route.producer.push(match pushed {
                Err(back) => back,
                Ok(()) => unreachable!("only a refused push is retried"),
            });
        }
        match pushed {
            Ok(()) => {
                self.shared.count(self.reactor, Counter::Deliveries, 1);
                if !route.touched {
                    route.touched = true;
                    self.touched.push(sub);
                }
                true
            }
            Err(_) if policy == SlowSubscriber::Drop => {
                self.shared.count(self.reactor, Counter::DroppedSlow, 1);
                true
            }
            Err(_) => false,
        }
    }

    fn stall(&mut self, conn: u64, message: Message, pending: Vec<SubId>) {
        for sub in &pending {
            if let Some(route) = self.subs.get_mut(sub) {
                if !route.waiters.contains(&conn) {
                    route.waiters.push(conn);
                }
            }
        }
        self.count(Counter::Stalls, 1);
        self.stalls.insert(
            conn,
            Stall {
                message,
                pending,
                since: Instant::now(),
            },
        );
    }

    /// Offers a stalled publisher's message again to the subscribers it
    /// waits for. True when it is done and the publisher may go on.
    fn retry(&mut self, conn: u64) -> bool {
        let Some(mut stall) = self.stalls.remove(&conn) else {
            return false;
        };
        let mut still = Vec::new();
        for &sub in &stall.pending {
            if !self.offer(sub, &stall.message) {
                still.push(sub);
            }
        }
        if still.is_empty() {
            self.count_stall_time(stall.since);
            return true;
        }
        stall.pending = still;
        self.stalls.insert(conn, stall);
        false
    }

    fn count_stall_time(&self, since: Instant) {
        let micros = since.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        self.count(Counter::StallMicros, micros);
    }

    /// A subscriber's lane has room again: returns the publishers that may
    /// go on.
    pub(crate) fn on_space(&mut self, sub: SubId) -> Vec<u64> {
        let Some(route) = self.subs.get_mut(&sub) else {
            return Vec::new();
        };
        let waiters = std::mem::take(&mut route.waiters);
        let mut resumed = Vec::new();
        for conn in waiters {
            if self.retry(conn) {
                resumed.push(conn);
            } else if let Some(route) = self.subs.get_mut(&sub) {
                if self
                    .stalls
                    .get(&conn)
                    .is_some_and(|s| s.pending.contains(&sub))
                {
                    route.waiters.push(conn);
                }
            }
        }
        resumed
    }

    /// When a stalled publisher's wait should end in evictions (policy
    /// disconnect).
    pub(crate) fn stall_deadline(&self, conn: u64) -> Option<Instant> {
        let timeout = self.shared.config.stall_timeout;
        match self.shared.config.slow_subscriber {
            SlowSubscriber::Disconnect => self.stalls.get(&conn).map(|s| s.since + timeout),
            _ => None,
        }
    }

    /// Policy disconnect: the publisher waited too long. Every subscriber
    /// it still waits for is marked closed and returned (to be closed by
    /// its reactor), and the message is dropped for them. The publisher
    /// may go on.
    pub(crate) fn evict_for(&mut self, conn: u64, now: Instant) -> Option<Vec<Arc<Egress>>> {
        let stall = self.stalls.get(&conn)?;
        if now < stall.since + self.shared.config.stall_timeout {
            return None;
        }
        let stall = self.stalls.remove(&conn).expect("present");
        self.count_stall_time(stall.since);
        let mut evicted = Vec::new();
        for sub in stall.pending {
            self.count(Counter::DroppedEvicted, 1);
            if let Some(route) = self.subs.get_mut(&sub) {
                route.waiters.retain(|&c| c != conn);
                evicted.push(route.egress.clone());
            }
        }
        Some(evicted)
    }

    /// A publisher connection closed: a message it was stalled on is lost
    /// for the subscribers that had not got it.
    pub(crate) fn forget_publisher(&mut self, conn: u64) {
        if let Some(stall) = self.stalls.remove(&conn) {
            self.count_stall_time(stall.since);
            self.count(Counter::DroppedPublisherGone, stall.pending.len() as u64);
            for sub in stall.pending {
                if let Some(route) = self.subs.get_mut(&sub) {
                    route.waiters.retain(|&c| c != conn);
                }
            }
        }
    }

    /// Subscribers given messages since the last call whose reactor must
    /// be told: (reactor, connection key), once each.
    pub(crate) fn take_wakeups(&mut self, out: &mut Vec<(usize, u64)>) {
        for sub in self.touched.drain(..) {
            if let Some(route) = self.subs.get_mut(&sub) {
                route.touched = false;
                if route.egress.schedule() {
                    out.push((route.egress.reactor, route.egress.conn));
                }
            }
        }
    }

    /// The stall timeout in effect (policy disconnect).
    pub(crate) fn stall_timeout(&self) -> Duration {
        self.shared.config.stall_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::egress::{lanes, Lanes};

    fn subscriber(shard: &mut Shard, sub: SubId) -> Lanes {
        let (lanes, mut producers) = lanes(sub, 0, sub, 1, 100);
        shard.add_subscriber(lanes.egress.clone(), producers.remove(0));
        lanes
    }

    fn delivered(lanes: &mut Lanes) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| lanes.pop(0))
            .map(|m| m.first_frame().to_vec())
            .collect()
    }

    #[test]
    fn routing_follows_every_change_of_routes_and_subscribers() {
        // The shard remembers what recent topics matched (MatchCache);
        // each change must be seen by the very next message.
        let mut shard = Shard::new(0, BrokerShared::for_tests(1));
        let mut one = subscriber(&mut shard, 1);
        let mut all = subscriber(&mut shard, 2);
        shard.route(1, &Bytes::from_static(b"zeek.cluster.node.worker-1."), true);
        shard.route(2, &Bytes::from_static(b"zeek.cluster."), true);
        let w10 = Message::from_frames(&[&b"zeek.cluster.node.worker-10.x"[..], b"event"]);
        let w1 = Message::from_frames(&[&b"zeek.cluster.node.worker-1.x"[..], b"event"]);
        for _ in 0..2 {
            // The second time from what the first remembered.
            assert_eq!(shard.fan_out(9, &w10), Fanout::Done);
            assert_eq!(shard.fan_out(9, &w1), Fanout::Done);
        }
        assert_eq!(delivered(&mut one).len(), 2, "worker-1. is not worker-10.");
        assert_eq!(delivered(&mut all).len(), 4);

        // A new route, for a topic just remembered as not matching it.
        shard.route(1, &Bytes::from_static(b"zeek.cluster.node.worker-10"), true);
        shard.fan_out(9, &w10);
        assert_eq!(delivered(&mut one), [b"zeek.cluster.node.worker-10.x"]);
        assert_eq!(delivered(&mut all).len(), 1);

        // Two of its prefixes match: queued once.
        shard.route(1, &Bytes::from_static(b"zeek."), true);
        shard.fan_out(9, &w1);
        shard.fan_out(9, &w1);
        assert_eq!(delivered(&mut one).len(), 2);
        assert_eq!(delivered(&mut all).len(), 2);

        // A cancel.
        shard.route(2, &Bytes::from_static(b"zeek.cluster."), false);
        shard.fan_out(9, &w10);
        assert_eq!(delivered(&mut one).len(), 1);
        assert!(delivered(&mut all).is_empty());

        // A subscriber gone (its routes are removed first, as the
        // coordinator does), then a new one with a matching route.
        for topic in [
            &b"zeek.cluster.node.worker-1."[..],
            b"zeek.cluster.node.worker-10",
            b"zeek.",
        ] {
            shard.route(1, &Bytes::copy_from_slice(topic), false);
        }
        shard.remove_subscriber(1);
        shard.fan_out(9, &w10);
        assert!(delivered(&mut one).is_empty());
        let mut late = subscriber(&mut shard, 3);
        shard.route(3, &Bytes::from_static(b"zeek.cluster.node."), true);
        shard.fan_out(9, &w10);
        assert_eq!(delivered(&mut late).len(), 1);
        assert!(delivered(&mut all).is_empty());
    }
}
