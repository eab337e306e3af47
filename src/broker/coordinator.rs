//! The broker's coordinator: the one owner of the subscription [`Book`],
//! on reactor 0, and the only writer of every reactor's routing copy.
//!
//! It is I/O-free: [`Coordinator::handle`] takes one [`Request`] and
//! returns [`Order`]s, which the broker service on reactor 0 carries out
//! (an [`Update`] for a reactor's shard goes through the mesh; an echo
//! wakes the publisher's reactor). What it writes directly is memory only:
//! subscription changes into publishers' pipes, counters and gauges.
//!
//! The rule that makes routing exact: **a route is in place on every
//! reactor before the subscription's echo can leave.** A node answers its
//! own echoed subscription (Zeek's hello and its first events depend on
//! it), and that answer may arrive on any reactor. So the orders of one
//! request list the route updates first and the echoes after them; the
//! service sends them in that order, each reactor takes its mesh commands
//! in order and drains its mailbox before it reads completions, and the
//! echo is submitted to the kernel only after the mesh is flushed.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use zmtp_codec::{Message, SubscriptionAction};

use super::book::{Book, Effect, PubId, SubId};
use super::egress::Egress;
use super::{BrokerShared, Counter, COORDINATOR};
use crate::socket::pipe::{Pipe, PipeWriter};
use crate::socket::IdMap;

/// What the reactors ask of the coordinator.
pub(crate) enum Request {
    /// A subscriber finished its handshake; `producers` are the writing
    /// ends of its lanes, one per reactor (index = reactor).
    SubscriberUp {
        egress: Arc<Egress>,
        producers: Vec<PipeWriter<Message>>,
    },
    /// A subscriber sent a subscribe or cancel.
    Subscription {
        sub: SubId,
        action: SubscriptionAction,
        topic: Bytes,
    },
    /// A subscriber is gone.
    SubscriberDown { sub: SubId },
    /// A publisher finished its handshake; `pipe` carries subscription
    /// changes to it.
    PublisherUp { publisher: PubId, pipe: Arc<Pipe> },
    /// A publisher is gone.
    PublisherDown { publisher: PubId },
}

/// A change to one reactor's routing copy, in the coordinator's order.
pub(crate) enum Update {
    /// A subscriber appeared; `producer` writes its lane for that reactor.
    AddSubscriber {
        egress: Arc<Egress>,
        producer: PipeWriter<Message>,
    },
    /// Start (`add`) or stop routing `topic` to `sub`.
    Route { sub: SubId, topic: Bytes, add: bool },
    /// A subscriber is gone (its routes were removed before).
    RemoveSubscriber { sub: SubId },
}

/// What the coordinator's owner must carry out, in this order.
pub(crate) enum Order {
    /// Apply this update to reactor `.0`'s shard.
    Update(usize, Update),
    /// Subscription changes wait in this publisher's pipe: its reactor
    /// must send them.
    Echo(Arc<Pipe>),
}

/// The book and what it needs to reach publishers.
pub(crate) struct Coordinator {
    shared: Arc<BrokerShared>,
    book: Book,
    /// Publishers' pipes, by publisher id.
    publishers: IdMap<Arc<Pipe>>,
}

impl Coordinator {
    pub(crate) fn new(shared: Arc<BrokerShared>) -> Coordinator {
        Coordinator {
            shared,
            book: Book::default(),
            publishers: IdMap::default(),
        }
    }

    fn count(&self, counter: Counter, n: u64) {
        self.shared.count(COORDINATOR, counter, n);
    }

    /// Takes one request; appends what must follow to `out`, in order.
    pub(crate) fn handle(&mut self, request: Request, out: &mut Vec<Order>) {
        let reactors = self.shared.reactors;
        let mut effects = Vec::new();
        match request {
            Request::SubscriberUp { egress, producers } => {
                self.book.subscriber_up(egress.sub);
                debug_assert_eq!(producers.len(), reactors);
                for (reactor, producer) in producers.into_iter().enumerate() {
                    let egress = egress.clone();
                    out.push(Order::Update(
                        reactor,
                        Update::AddSubscriber { egress, producer },
                    ));
                }
            }
            Request::Subscription { sub, action, topic } => {
                self.book.subscription(sub, action, topic, &mut effects);
                self.carry_out(effects, out);
            }
            Request::SubscriberDown { sub } => {
                self.book.subscriber_down(sub, &mut effects);
                // The cancels count as received, as libzmq's XPUB reports a
                // departed pipe's topics to the proxy.
                for e in &effects {
                    if let Effect::Route { topic, .. } = e {
                        self.count(Counter::BackendFramesIn, 1);
                        self.count(Counter::BackendBytesIn, 1 + topic.len() as u64);
                    }
                }
                self.carry_out(effects, out);
                // After its routes are gone everywhere.
                for reactor in 0..reactors {
                    out.push(Order::Update(reactor, Update::RemoveSubscriber { sub }));
                }
            }
            Request::PublisherUp { publisher, pipe } => {
                self.publishers.insert(publisher, pipe);
                self.book.publisher_up(publisher, &mut effects);
                self.carry_out(effects, out);
            }
            Request::PublisherDown { publisher } => {
                self.book.publisher_down(publisher);
                self.publishers.remove(&publisher);
            }
        }
        self.update_gauges();
    }

    /// Turns the book's effects into orders: route updates for every
    /// reactor first, then one echo per publisher told anything.
    fn carry_out(&mut self, effects: Vec<Effect>, out: &mut Vec<Order>) {
        let reactors = self.shared.reactors;
        let mut told: Vec<Arc<Pipe>> = Vec::new();
        for effect in effects {
            match effect {
                Effect::Route { sub, topic, add } => {
                    for reactor in 0..reactors {
                        let topic = topic.clone();
                        out.push(Order::Update(reactor, Update::Route { sub, topic, add }));
                    }
                }
                Effect::Tell {
                    publisher,
                    action,
                    topic,
                } => {
                    if let Some(pipe) = self.publishers.get(&publisher) {
                        pipe.push_subscription(action, topic);
                        if !told.iter().any(|p| p.id == pipe.id) {
                            told.push(pipe.clone());
                        }
                    }
                }
                Effect::Forwarded { topic_len } => {
                    self.count(Counter::FrontendFramesOut, 1);
                    self.count(Counter::FrontendBytesOut, 1 + topic_len as u64);
                }
            }
        }
        // Echoes last: see the module's comment.
        for pipe in told {
            if pipe.schedule() {
                out.push(Order::Echo(pipe));
            }
        }
    }

    fn update_gauges(&self) {
        let shared = &self.shared;
        let book = &self.book;
        shared
            .upstream_prefixes
            .store(book.upstream_len() as u64, Ordering::Relaxed);
        shared
            .subscribers
            .store(book.subscribers() as u64, Ordering::Relaxed);
        shared
            .publishers
            .store(self.publishers.len() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    //! The coordinator with a simulated set of reactors: each has a shard
    //! and an inbox that keeps the coordinator's order, and, like a real
    //! reactor, takes everything in its inbox before it handles traffic.

    use std::collections::VecDeque;

    use super::super::egress::{lanes, Lanes};
    use super::super::shard::{Fanout, Shard};
    use super::*;
    use SubscriptionAction::{Cancel, Subscribe};

    struct Reactor {
        shard: Shard,
        inbox: VecDeque<Update>,
    }

    /// A node's two connections to the broker: its XSUB (a subscriber, on
    /// one reactor) and its XPUB (a publisher, on another).
    struct Node {
        sub: SubId,
        lanes: Lanes,
        publisher: PubId,
        pipe: Arc<Pipe>,
    }

    /// The coordinator and `n` reactors.
    struct Sim {
        shared: Arc<BrokerShared>,
        coordinator: Coordinator,
        reactors: Vec<Reactor>,
        /// Echoes that left, in order: (publisher, "+topic"/"-topic").
        echoes: Vec<(PubId, String)>,
        /// When set, a publisher answers each echo at once with a message
        /// on that topic, from its own reactor.
        answer_echoes: bool,
        next_id: u64,
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    impl Sim {
        fn new(n: usize) -> Sim {
            let shared = BrokerShared::for_tests(n);
            Sim {
                coordinator: Coordinator::new(shared.clone()),
                reactors: (0..n)
                    .map(|id| Reactor {
                        shard: Shard::new(id, shared.clone()),
                        inbox: VecDeque::new(),
                    })
                    .collect(),
                shared,
                echoes: Vec::new(),
                answer_echoes: false,
                next_id: 1,
            }
        }

        /// Sends a request and carries out its orders as the service does:
        /// updates into the reactors' inboxes, echoes out to the nodes.
        fn request(&mut self, request: Request) {
            let mut orders = Vec::new();
            self.coordinator.handle(request, &mut orders);
            for order in orders {
                match order {
                    Order::Update(reactor, update) => {
                        self.reactors[reactor].inbox.push_back(update)
                    }
                    Order::Echo(pipe) => self.echo(&pipe),
                }
            }
        }

        /// The publisher's reactor sends what its pipe holds.
        fn echo(&mut self, pipe: &Pipe) {
            pipe.unschedule();
            while let Some((action, topic)) = pipe.pop_subscription() {
                let sign = if action == Subscribe { '+' } else { '-' };
                let text = String::from_utf8_lossy(&topic);
                self.echoes.push((pipe.id, format!("{sign}{text}")));
                if self.answer_echoes {
                    let mut answer = topic.to_vec();
                    let word = if action == Subscribe { "hello" } else { "bye" };
                    answer.extend_from_slice(format!(".{word}").as_bytes());
                    self.publish(pipe.reactor, pipe.id, &answer);
                }
            }
        }

        /// A reactor takes what its inbox holds, as before any traffic.
        fn drain(&mut self, reactor: usize) -> Vec<u64> {
            let mut resumed = Vec::new();
            let r = &mut self.reactors[reactor];
            while let Some(update) = r.inbox.pop_front() {
                resumed.extend(r.shard.apply(update));
            }
            resumed
        }

        fn drain_all(&mut self) {
            for reactor in 0..self.reactors.len() {
                self.drain(reactor);
            }
        }

        /// A publisher's message arrives on `reactor`.
        fn publish(&mut self, reactor: usize, publisher: PubId, topic: &[u8]) -> Fanout {
            self.drain(reactor);
            let message = Message::from_frames(&[topic, b"payload"]);
            self.reactors[reactor].shard.fan_out(publisher, &message)
        }

        /// A node whose subscriber is served by reactor `sub_on` and whose
        /// publisher by `pub_on`; both finish their handshakes.
        fn node(&mut self, sub_on: usize, pub_on: usize) -> Node {
            let n = self.reactors.len();
            let sub = self.next_id;
            let publisher = self.next_id + 1;
            self.next_id += 2;
            let (lanes, producers) = lanes(sub, sub_on, sub, n, 16);
            let egress = lanes.egress.clone();
            self.request(Request::SubscriberUp { egress, producers });
            let (pipe, _no_data) = Pipe::new(publisher, pub_on, 1);
            let up = Request::PublisherUp {
                publisher,
                pipe: pipe.clone(),
            };
            self.request(up);
            Node {
                sub,
                lanes,
                publisher,
                pipe,
            }
        }

        fn subscribe(&mut self, node: &Node, topic: &str) {
            let (sub, action, topic) = (node.sub, Subscribe, b(topic));
            self.request(Request::Subscription { sub, action, topic });
        }

        fn cancel(&mut self, node: &Node, topic: &str) {
            let (sub, action, topic) = (node.sub, Cancel, b(topic));
            self.request(Request::Subscription { sub, action, topic });
        }

        fn echoes_to(&self, node: &Node) -> Vec<&str> {
            self.echoes
                .iter()
                .filter(|(p, _)| *p == node.publisher)
                .map(|(_, e)| e.as_str())
                .collect()
        }
    }

    /// Topics a subscriber's lanes hold, lane by lane.
    fn received(lanes: &mut Lanes, reactors: usize) -> Vec<String> {
        let mut topics = Vec::new();
        for reactor in 0..reactors {
            while let Some(m) = lanes.pop(reactor) {
                topics.push(String::from_utf8_lossy(m.first_frame()).into_owned());
            }
        }
        topics
    }

    #[test]
    fn a_route_is_in_place_on_every_reactor_before_the_echo_leaves() {
        // The node's subscriber is on reactor 2, its publisher on reactor
        // 1: the answer to its echo arrives on a reactor that is neither
        // the coordinator's nor the subscriber's. It must be routed.
        let mut sim = Sim::new(3);
        let mut node = sim.node(2, 1);
        sim.answer_echoes = true;
        sim.subscribe(&node, "zeek.cluster.node.A");
        assert_eq!(sim.echoes_to(&node), ["+zeek.cluster.node.A"]);
        assert_eq!(
            received(&mut node.lanes, 3),
            ["zeek.cluster.node.A.hello"],
            "the answer to the echo reached the subscriber"
        );
        assert_eq!(sim.shared.snapshot().unmatched, 0);
    }

    #[test]
    fn a_cancel_stops_routing_on_every_reactor_before_its_echo() {
        let mut sim = Sim::new(2);
        let mut node = sim.node(0, 1);
        sim.answer_echoes = true;
        sim.subscribe(&node, "t");
        sim.cancel(&node, "t");
        assert_eq!(sim.echoes_to(&node), ["+t", "-t"]);
        // The answer to the subscribe's echo is routed; the one to the
        // cancel's is not.
        assert_eq!(received(&mut node.lanes, 2), ["t.hello"]);
        assert_eq!(sim.shared.snapshot().unmatched, 1);
        // Nor is anything later, from either reactor.
        for reactor in 0..2 {
            sim.publish(reactor, node.publisher, b"t.x");
        }
        assert!(received(&mut node.lanes, 2).is_empty());
        assert_eq!(sim.shared.snapshot().unmatched, 3);
    }

    #[test]
    fn an_upstream_cancel_waits_for_the_last_holder() {
        let mut sim = Sim::new(2);
        let a = sim.node(0, 1);
        let b_ = sim.node(1, 0);
        sim.subscribe(&a, "shared");
        sim.subscribe(&b_, "shared");
        // B2: every subscribe is echoed to every publisher, also repeats.
        assert_eq!(sim.echoes_to(&a), ["+shared", "+shared"]);
        sim.cancel(&a, "shared");
        assert_eq!(sim.echoes_to(&a), ["+shared", "+shared"], "b holds it");
        sim.cancel(&b_, "shared");
        assert_eq!(sim.echoes_to(&a), ["+shared", "+shared", "-shared"]);
        assert_eq!(sim.echoes_to(&b_), ["+shared", "+shared", "-shared"]);
        assert_eq!(sim.shared.upstream_prefixes.load(Ordering::Relaxed), 0);
        let counters = sim.shared.snapshot();
        assert_eq!(counters.frontend_frames_out, 3, "2 subscribes, 1 cancel");
    }

    #[test]
    fn a_late_publisher_gets_the_held_prefixes_in_byte_order_before_anything_else() {
        let mut sim = Sim::new(2);
        let a = sim.node(0, 0);
        sim.subscribe(&a, "zeek.b");
        sim.subscribe(&a, "zeek.a");
        sim.subscribe(&a, "zeek.a");
        let late = sim.node(1, 1);
        assert_eq!(sim.echoes_to(&late), ["+zeek.a", "+zeek.b"]);
        sim.subscribe(&a, "zeek.c");
        assert_eq!(sim.echoes_to(&late), ["+zeek.a", "+zeek.b", "+zeek.c"]);
        assert!(late.pipe.pop_subscription().is_none(), "all sent");
    }

    #[test]
    fn a_departing_subscriber_cancels_what_only_it_held_and_leaves_every_reactor() {
        let mut sim = Sim::new(3);
        let stays = sim.node(0, 1);
        let mut leaves = sim.node(2, 2);
        sim.subscribe(&stays, "shared");
        sim.subscribe(&leaves, "shared");
        sim.subscribe(&leaves, "only.leaves");
        sim.drain_all();
        let before = sim.shared.snapshot();
        sim.request(Request::SubscriberDown { sub: leaves.sub });
        let cancels: Vec<_> = sim.echoes_to(&stays).into_iter().skip(3).collect();
        assert_eq!(cancels, ["-only.leaves"]);
        let after = sim.shared.snapshot();
        assert_eq!(
            after.backend_frames_in - before.backend_frames_in,
            2,
            "its two prefixes count as cancels received"
        );
        // Every reactor drops it: nothing more is queued for it, while the
        // one that stays still gets `shared`.
        for reactor in 0..3 {
            sim.publish(reactor, stays.publisher, b"shared.x");
            sim.publish(reactor, stays.publisher, b"only.leaves.x");
        }
        assert!(received(&mut leaves.lanes, 3).is_empty());
        assert_eq!(sim.shared.snapshot().unmatched - after.unmatched, 3);
        assert_eq!(sim.shared.subscribers.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_departed_publisher_is_told_nothing_more() {
        let mut sim = Sim::new(2);
        let a = sim.node(0, 1);
        let gone = sim.node(1, 0);
        sim.request(Request::PublisherDown {
            publisher: gone.publisher,
        });
        sim.subscribe(&a, "x");
        assert!(sim.echoes_to(&gone).is_empty());
        assert_eq!(sim.echoes_to(&a), ["+x"]);
        assert_eq!(sim.shared.publishers.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn one_echo_per_publisher_until_its_reactor_sends() {
        // The publisher's reactor is woken once; what is queued meanwhile
        // rides along with the send it already has coming.
        let shared = BrokerShared::for_tests(2);
        let mut coordinator = Coordinator::new(shared);
        let (pipe, _) = Pipe::new(10, 1, 1);
        let mut orders = Vec::new();
        coordinator.handle(
            Request::PublisherUp {
                publisher: 10,
                pipe: pipe.clone(),
            },
            &mut orders,
        );
        let (lanes, producers) = lanes(1, 0, 1, 2, 4);
        let egress = lanes.egress.clone();
        coordinator.handle(Request::SubscriberUp { egress, producers }, &mut orders);
        orders.clear();
        for topic in ["a", "b"] {
            let (sub, action, topic) = (1, Subscribe, b(topic));
            coordinator.handle(Request::Subscription { sub, action, topic }, &mut orders);
        }
        let kinds: Vec<&str> = orders
            .iter()
            .map(|o| match o {
                Order::Update(_, Update::Route { .. }) => "route",
                Order::Update(..) => "other",
                Order::Echo(_) => "echo",
            })
            .collect();
        assert_eq!(kinds, ["route", "route", "echo", "route", "route"]);
    }
}
