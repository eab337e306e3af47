//! The broker's subscription book: who downstream holds which prefix, and
//! what the publishers upstream must be told. A pure state machine (no I/O,
//! no threads), so contract §3.6 B1–B6 is tested here directly.
//!
//! - B1: each subscriber connection holds a *set* of prefixes; a repeated
//!   subscribe is idempotent for routing.
//! - B2/B4: every subscribe received is forwarded to every publisher, even
//!   when the prefix was already held (XPUB_VERBOSER; Zeek's subscription
//!   callbacks depend on it). A cancel is forwarded only when the last holder
//!   of the prefix lets go.
//! - B3: a subscriber that leaves cancels each prefix it held.
//! - B5: a publisher that arrives gets every held prefix, in byte order,
//!   before anything else.
//! - B6: the originator's own publisher connection is one of "every
//!   publisher", so a node sees its own subscriptions echoed.
//!
//! Upstream reference counts count *holders* (subscriber, prefix), not
//! subscribe messages. libzmq counts messages, so a node that subscribes
//! twice and disconnects leaves a "ghost" subscription upstream forever; here
//! its departure cancels the prefix. A cancel for a prefix the subscriber
//! does not hold changes nothing and is not forwarded.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use zmtp_codec::SubscriptionAction;

/// A subscriber (downstream) connection, unique within a broker.
pub(crate) type SubId = u64;
/// A publisher (upstream) connection, unique within a broker.
pub(crate) type PubId = u64;

/// What the book's owner must do after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Start (`add`) or stop routing messages with this prefix to `sub`.
    Route { sub: SubId, topic: Bytes, add: bool },
    /// Send this subscription change to one publisher.
    Tell {
        publisher: PubId,
        action: SubscriptionAction,
        topic: Bytes,
    },
    /// One subscription message was forwarded upward (counted once, however
    /// many publishers it reaches: it is one message into libzmq's XSUB).
    Forwarded { topic_len: usize },
}

/// The state behind B1–B6.
#[derive(Debug, Default)]
pub(crate) struct Book {
    /// B1: per subscriber, the prefixes it holds.
    held: HashMap<SubId, HashSet<Bytes>>,
    /// B4: per prefix, how many subscribers hold it (always > 0). Ordered,
    /// so a replay goes out in byte order as libzmq's trie walk does.
    upstream: BTreeMap<Bytes, u32>,
    /// Publishers in the order they arrived.
    publishers: Vec<PubId>,
}

impl Book {
    /// Prefixes held by at least one subscriber.
    pub(crate) fn upstream_len(&self) -> usize {
        self.upstream.len()
    }

    /// Subscribers known.
    pub(crate) fn subscribers(&self) -> usize {
        self.held.len()
    }

    /// A subscriber connection finished its handshake.
    pub(crate) fn subscriber_up(&mut self, sub: SubId) {
        self.held.entry(sub).or_default();
    }

    /// A subscriber sent a subscribe or cancel.
    pub(crate) fn subscription(
        &mut self,
        sub: SubId,
        action: SubscriptionAction,
        topic: Bytes,
        out: &mut Vec<Effect>,
    ) {
        let Some(held) = self.held.get_mut(&sub) else {
            return;
        };
        match action {
            SubscriptionAction::Subscribe => {
                if held.insert(topic.clone()) {
                    *self.upstream.entry(topic.clone()).or_insert(0) += 1;
                    out.push(Effect::Route {
                        sub,
                        topic: topic.clone(),
                        add: true,
                    });
                }
                self.tell_all(action, topic, out);
            }
            SubscriptionAction::Cancel => {
                if held.remove(&topic) {
                    out.push(Effect::Route {
                        sub,
                        topic: topic.clone(),
                        add: false,
                    });
                    self.release_upstream(topic, out);
                }
            }
        }
    }

    /// A subscriber connection is gone: each prefix it held is cancelled.
    pub(crate) fn subscriber_down(&mut self, sub: SubId, out: &mut Vec<Effect>) {
        let Some(held) = self.held.remove(&sub) else {
            return;
        };
        // Byte order, so what publishers see does not depend on hashing.
        let mut topics: Vec<Bytes> = held.into_iter().collect();
        topics.sort();
        for topic in topics {
            out.push(Effect::Route {
                sub,
                topic: topic.clone(),
                add: false,
            });
            self.release_upstream(topic, out);
        }
    }

    /// A publisher connection finished its handshake: it is told every held
    /// prefix first (B5), then joins every later broadcast.
    pub(crate) fn publisher_up(&mut self, publisher: PubId, out: &mut Vec<Effect>) {
        for topic in self.upstream.keys() {
            out.push(Effect::Tell {
                publisher,
                action: SubscriptionAction::Subscribe,
                topic: topic.clone(),
            });
        }
        self.publishers.push(publisher);
    }

    /// A publisher connection is gone.
    pub(crate) fn publisher_down(&mut self, publisher: PubId) {
        self.publishers.retain(|&p| p != publisher);
    }

    fn release_upstream(&mut self, topic: Bytes, out: &mut Vec<Effect>) {
        let Some(count) = self.upstream.get_mut(&topic) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            self.upstream.remove(&topic);
            self.tell_all(SubscriptionAction::Cancel, topic, out);
        }
    }

    fn tell_all(&self, action: SubscriptionAction, topic: Bytes, out: &mut Vec<Effect>) {
        out.push(Effect::Forwarded {
            topic_len: topic.len(),
        });
        for &publisher in &self.publishers {
            out.push(Effect::Tell {
                publisher,
                action,
                topic: topic.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use SubscriptionAction::{Cancel, Subscribe};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// What each publisher was told, as "+topic" / "-topic".
    fn told(effects: &[Effect], publisher: PubId) -> Vec<String> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Tell {
                    publisher: p,
                    action,
                    topic,
                } if *p == publisher => {
                    let sign = if *action == Subscribe { '+' } else { '-' };
                    Some(format!("{sign}{}", String::from_utf8_lossy(topic)))
                }
                _ => None,
            })
            .collect()
    }

    fn routes(effects: &[Effect]) -> Vec<(SubId, String, bool)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Route { sub, topic, add } => {
                    Some((*sub, String::from_utf8_lossy(topic).into_owned(), *add))
                }
                _ => None,
            })
            .collect()
    }

    /// Two nodes, each with a subscriber (1, 2) and a publisher (10, 20)
    /// connection.
    fn two_nodes() -> Book {
        let mut book = Book::default();
        let mut out = Vec::new();
        book.subscriber_up(1);
        book.subscriber_up(2);
        book.publisher_up(10, &mut out);
        book.publisher_up(20, &mut out);
        assert!(out.is_empty(), "nothing held yet, nothing replayed");
        book
    }

    #[test]
    fn every_subscribe_reaches_every_publisher_including_the_originators() {
        // B2, B4, B6.
        let mut book = two_nodes();
        let mut out = Vec::new();
        book.subscription(1, Subscribe, b("topic.common"), &mut out);
        book.subscription(2, Subscribe, b("topic.common"), &mut out);
        assert_eq!(told(&out, 10), ["+topic.common", "+topic.common"]);
        assert_eq!(told(&out, 20), ["+topic.common", "+topic.common"]);
        assert_eq!(
            routes(&out),
            [
                (1, "topic.common".into(), true),
                (2, "topic.common".into(), true)
            ]
        );
    }

    #[test]
    fn a_shared_prefix_is_cancelled_upstream_only_when_the_last_holder_leaves() {
        // B4: unsubscribe-two-workers.
        let mut book = two_nodes();
        let mut out = Vec::new();
        book.subscription(1, Subscribe, b("shared"), &mut out);
        book.subscription(2, Subscribe, b("shared"), &mut out);
        out.clear();
        book.subscription(2, Cancel, b("shared"), &mut out);
        assert!(told(&out, 10).is_empty(), "1 still holds it");
        assert_eq!(routes(&out), [(2, "shared".into(), false)]);
        out.clear();
        book.subscription(1, Cancel, b("shared"), &mut out);
        assert_eq!(told(&out, 10), ["-shared"]);
        assert_eq!(told(&out, 20), ["-shared"]);
        assert_eq!(book.upstream_len(), 0);
    }

    #[test]
    fn a_departing_subscriber_cancels_only_what_no_one_else_holds() {
        // B3, as observed: B held `shared` and `onlyB`; A sees only -onlyB.
        let mut book = two_nodes();
        let mut out = Vec::new();
        book.subscription(1, Subscribe, b("shared"), &mut out);
        book.subscription(2, Subscribe, b("shared"), &mut out);
        book.subscription(2, Subscribe, b("onlyB"), &mut out);
        out.clear();
        book.publisher_down(20);
        book.subscriber_down(2, &mut out);
        assert_eq!(told(&out, 10), ["-onlyB"]);
        assert_eq!(
            routes(&out),
            [(2, "onlyB".into(), false), (2, "shared".into(), false)]
        );
    }

    #[test]
    fn a_late_publisher_gets_the_held_set_in_byte_order_first() {
        // B5.
        let mut book = two_nodes();
        let mut out = Vec::new();
        book.subscription(1, Subscribe, b("zeek.cluster.nodeid.A."), &mut out);
        book.subscription(2, Subscribe, b("topic.common"), &mut out);
        book.subscription(1, Subscribe, b("topic.common"), &mut out);
        out.clear();
        book.publisher_up(30, &mut out);
        assert_eq!(told(&out, 30), ["+topic.common", "+zeek.cluster.nodeid.A."]);
        out.clear();
        book.subscription(2, Subscribe, b("later"), &mut out);
        assert_eq!(told(&out, 30), ["+later"], "then joins broadcasts");
    }

    #[test]
    fn no_ghost_subscription_after_a_double_subscribe() {
        // libzmq keeps `twice` upstream forever; we cancel it.
        let mut book = two_nodes();
        let mut out = Vec::new();
        book.subscription(2, Subscribe, b("twice"), &mut out);
        book.subscription(2, Subscribe, b("twice"), &mut out);
        assert_eq!(told(&out, 10), ["+twice", "+twice"], "both echoed");
        assert_eq!(routes(&out), [(2, "twice".into(), true)], "routed once");
        out.clear();
        book.subscriber_down(2, &mut out);
        assert_eq!(told(&out, 10), ["-twice"]);
        out.clear();
        book.publisher_up(30, &mut out);
        assert!(told(&out, 30).is_empty(), "nothing to replay");
    }

    #[test]
    fn a_cancel_for_a_prefix_not_held_changes_nothing() {
        let mut book = two_nodes();
        let mut out = Vec::new();
        book.subscription(1, Subscribe, b("x"), &mut out);
        out.clear();
        book.subscription(2, Cancel, b("x"), &mut out);
        book.subscription(2, Cancel, b("never"), &mut out);
        assert!(out.is_empty());
        assert_eq!(book.upstream_len(), 1);
    }

    #[test]
    fn forwarded_counts_one_message_per_subscription_however_many_publishers() {
        let mut book = two_nodes();
        let mut out = Vec::new();
        book.subscription(1, Subscribe, b("abc"), &mut out);
        let forwarded: Vec<_> = out
            .iter()
            .filter(|e| matches!(e, Effect::Forwarded { .. }))
            .collect();
        assert_eq!(forwarded, [&Effect::Forwarded { topic_len: 3 }]);
    }

    proptest! {
        /// Whatever happens, the upstream set is exactly the union of what
        /// subscribers hold, and publishers were told a cancel only for a
        /// prefix nobody holds any more.
        #[test]
        fn upstream_is_the_union_of_what_subscribers_hold(
            ops in proptest::collection::vec((0u64..4, 0u8..3, 0u8..3), 0..80),
        ) {
            let mut book = Book::default();
            let mut out = Vec::new();
            book.publisher_up(100, &mut out);
            let mut model: HashMap<SubId, HashSet<Bytes>> = HashMap::new();
            for (sub, op, topic) in ops {
                let topic = Bytes::from(vec![b'a' + topic]);
                out.clear();
                match op {
                    0 => {
                        book.subscriber_up(sub);
                        model.entry(sub).or_default();
                        book.subscription(sub, Subscribe, topic.clone(), &mut out);
                        model.get_mut(&sub).unwrap().insert(topic);
                    }
                    1 => {
                        book.subscription(sub, Cancel, topic.clone(), &mut out);
                        if let Some(h) = model.get_mut(&sub) { h.remove(&topic); }
                    }
                    _ => {
                        book.subscriber_down(sub, &mut out);
                        model.remove(&sub);
                    }
                }
                let union: HashSet<Bytes> = model.values().flatten().cloned().collect();
                let upstream: HashSet<Bytes> = book.upstream.keys().cloned().collect();
                prop_assert_eq!(&upstream, &union);
                for e in &out {
                    if let Effect::Tell { action: Cancel, topic, .. } = e {
                        prop_assert!(!union.contains(topic));
                    }
                }
            }
        }
    }
}
