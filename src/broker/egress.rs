//! What the broker queued for one subscriber connection.
//!
//! Every reactor may receive a message this subscriber wants, and each
//! reactor must stay the only producer of the ring it writes, so a
//! subscriber has one *lane* (an SPSC ring, `crate::socket::ring`) per
//! reactor. Lane `i` is written only by reactor `i` and read only by the
//! subscriber's own reactor. A publisher lives on one reactor, so its
//! messages share a lane and keep their order. The broker's SNDHWM bounds
//! each lane: a message holds its slot until the kernel has its last byte.
//!
//! The flags here are how the two sides reach each other without a lock:
//! `scheduled` (a send is coming, as for socket pipes), `want_space` (a
//! producer waits for room in its lane) and `closed`.

use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, Ordering};

use zmtp_codec::{Message, Session};

use super::book::SubId;
use crate::socket::pipe::{self, MessageReader, PipeWriter};

/// The flags a subscriber's lanes share with their producers.
#[derive(Debug)]
pub(crate) struct Egress {
    pub(crate) sub: SubId,
    /// The reactor serving the subscriber.
    pub(crate) reactor: usize,
    /// That reactor's key of the connection.
    pub(crate) conn: u64,
    scheduled: AtomicBool,
    /// The subscriber is closing: route nothing more to it.
    closed: AtomicBool,
    /// Per producing reactor: it waits for a slot in its lane.
    want_space: Box<[AtomicBool]>,
}

impl Egress {
    /// After queueing: true if the serving reactor must be told (see
    /// `Pipe::schedule`, whose protocol this is).
    pub(crate) fn schedule(&self) -> bool {
        !self.scheduled.load(Ordering::SeqCst) && !self.scheduled.swap(true, Ordering::SeqCst)
    }

    fn unschedule(&self) {
        self.scheduled.store(false, Ordering::SeqCst);
    }

    /// Whether the subscriber is going away.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Marks the subscriber as going away (any thread). Returns the
    /// reactors waiting for room, which must now be told.
    pub(crate) fn close(&self) -> Vec<usize> {
        self.closed.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.take_waiters()
    }

    /// A producer on `reactor` found its lane full and will wait for a
    /// `Space` notice. It must retry its push after this call: either the
    /// retry finds room or the consumer sees this flag.
    pub(crate) fn want_space(&self, reactor: usize) {
        self.want_space[reactor].store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    fn take_waiters(&self) -> Vec<usize> {
        self.want_space
            .iter()
            .enumerate()
            .filter(|(_, w)| w.load(Ordering::SeqCst) && w.swap(false, Ordering::SeqCst))
            .map(|(i, _)| i)
            .collect()
    }
}

/// The subscriber's side: its lanes' reading ends, owned by its connection.
pub(crate) struct Lanes {
    pub(crate) egress: std::sync::Arc<Egress>,
    readers: Vec<MessageReader<Message>>,
    /// Taken and not yet released, in send order: (lane, count).
    runs: VecDeque<(usize, usize)>,
    /// The lane to take from first next time (round robin).
    next: usize,
}

/// A new subscriber's lanes: the reading ends, and one writing end per
/// reactor (index = reactor).
pub(crate) fn lanes(
    sub: SubId,
    reactor: usize,
    conn: u64,
    reactors: usize,
    hwm: usize,
) -> (Lanes, Vec<PipeWriter<Message>>) {
    let egress = std::sync::Arc::new(Egress {
        sub,
        reactor,
        conn,
        scheduled: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        want_space: (0..reactors).map(|_| AtomicBool::new(false)).collect(),
    });
    let (producers, readers) = (0..reactors).map(|_| pipe::queue(hwm)).unzip();
    let lanes = Lanes {
        egress,
        readers,
        runs: VecDeque::new(),
        next: 0,
    };
    (lanes, producers)
}

impl Lanes {
    /// Takes and releases the next message of the lane from `reactor`.
    #[cfg(test)]
    pub(crate) fn pop(&mut self, reactor: usize) -> Option<Message> {
        let m = self.readers[reactor].take();
        self.readers[reactor].release(usize::from(m.is_some()));
        m
    }

    /// Moves messages into `session` while `room` says so, one lane after
    /// another, keeping a lane's order. Adds how many were taken to
    /// `taken`, also when the session refuses one: a taken message holds a
    /// lane slot until `release`, whether it reached the session or not.
    pub(crate) fn take_into(
        &mut self,
        session: &mut Session,
        room: impl Fn(&mut Session) -> bool,
        taken: &mut usize,
    ) -> zmtp_codec::Result<()> {
        let n = self.readers.len();
        let mut idle_lanes = 0;
        while idle_lanes < n && room(session) {
            let lane = self.next;
            let mut from_lane = 0;
            let mut refused = Ok(());
            while room(session) {
                let Some(message) = self.readers[lane].take() else {
                    break;
                };
                from_lane += 1;
                refused = session.send(message);
                if refused.is_err() {
                    break;
                }
            }
            if from_lane > 0 {
                match self.runs.back_mut() {
                    Some((l, count)) if *l == lane => *count += from_lane,
                    _ => self.runs.push_back((lane, from_lane)),
                }
                *taken += from_lane;
                idle_lanes = 0;
            } else {
                idle_lanes += 1;
            }
            refused?;
            if from_lane == 0 || !room(session) {
                self.next = (lane + 1) % n;
            }
        }
        Ok(())
    }

    /// The serving reactor found nothing to send: lowers the flag and says
    /// whether a message arrived meanwhile (then take again).
    pub(crate) fn unschedule_and_recheck(&self) -> bool {
        self.egress.unschedule();
        !self.is_empty()
    }

    /// Whether no lane holds an untaken message.
    pub(crate) fn is_empty(&self) -> bool {
        self.readers.iter().all(|r| r.is_empty())
    }

    /// `n` taken messages reached the kernel (or were lost with the
    /// connection): their slots free. Returns the reactors waiting for room.
    pub(crate) fn release(&mut self, mut n: usize) -> Vec<usize> {
        while n > 0 {
            let Some((lane, count)) = self.runs.front_mut() else {
                debug_assert!(false, "released more than was taken");
                break;
            };
            let now = n.min(*count);
            self.readers[*lane].release(now);
            *count -= now;
            n -= now;
            if *count == 0 {
                self.runs.pop_front();
            }
        }
        // Pairs with `Egress::want_space`: either the producer's retry sees
        // the room, or this sees its flag.
        fence(Ordering::SeqCst);
        self.egress.take_waiters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zmtp_codec::{SessionConfig, SocketType};

    fn ready_session() -> Session {
        // A session only needs to be ready to queue messages; pair it with
        // a peer and run the handshake.
        let mut ours = Session::new(SessionConfig::new(SocketType::XPub));
        let mut theirs = Session::new(SessionConfig::new(SocketType::XSub));
        for _ in 0..4 {
            let n = ours.outbox().remaining();
            let a = ours.outbox().copy_to_bytes(n);
            let n = theirs.outbox().remaining();
            let b = theirs.outbox().copy_to_bytes(n);
            theirs.feed(a);
            ours.feed(b);
            while let Ok(Some(_)) = ours.poll() {}
            while let Ok(Some(_)) = theirs.poll() {}
        }
        assert!(ours.is_ready());
        ours
    }

    use bytes::Buf;

    #[test]
    fn lanes_keep_per_lane_order_and_release_in_send_order() {
        let (mut lanes, mut producers) = lanes(1, 0, 7, 2, 4);
        let m = |s: &str| Message::from_frames(&[s.as_bytes()]);
        producers[0].push(m("a1")).unwrap();
        producers[1].push(m("b1")).unwrap();
        producers[0].push(m("a2")).unwrap();
        let mut session = ready_session();
        let mut taken = 0;
        lanes.take_into(&mut session, |_| true, &mut taken).unwrap();
        assert_eq!(taken, 3);
        assert!(lanes.is_empty());
        assert_eq!(lanes.runs, [(0, 2), (1, 1)]);
        // Lane 0 is full at 4 held (2 taken + 2 new); release frees it.
        producers[0].push(m("a3")).unwrap();
        producers[0].push(m("a4")).unwrap();
        assert!(producers[0].is_full());
        lanes.egress.want_space(0);
        assert_eq!(lanes.release(1), vec![0], "the waiting reactor is told");
        assert!(!producers[0].is_full());
        assert_eq!(lanes.release(2), Vec::<usize>::new(), "told once");
        assert!(lanes.runs.is_empty());
    }

    #[test]
    fn closing_tells_waiting_producers() {
        let (lanes, _producers) = lanes(1, 0, 7, 3, 1);
        lanes.egress.want_space(2);
        assert!(!lanes.egress.is_closed());
        assert_eq!(lanes.egress.close(), vec![2]);
        assert!(lanes.egress.is_closed());
    }
}
