//! The onloop queue: how messages cross from reactor threads to the
//! application thread.
//!
//! A bounded lock-free ring whose capacity is exactly the configured
//! high-water mark (0 = unbounded). Reactors offer; when the ring is full an
//! offer is either dropped and counted, or (NODROP) refused, and the reactor
//! stops reading from that peer until the application makes room, so TCP
//! pushes back. An eventfd is readable while anything is queued, so an
//! application's own event loop can wait on it.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_queue::{ArrayQueue, SegQueue};

use crate::sys;

/// An eventfd the consumer sleeps on, signalled only when it is waiting.
///
/// The consumer arms it when it finds nothing to take, then looks once
/// more before sleeping; a producer that makes work available afterwards
/// sees the arm and signals. The fd therefore becomes readable when work
/// arrives for a consumer that ran dry, and stays readable until the
/// consumer runs dry again: poll it, then take until nothing is left (the
/// contract of libzmq's ZMQ_FD). Producers pay one load per notification
/// while the consumer is busy, and no system call.
#[derive(Debug)]
pub(crate) struct Readiness {
    fd: OwnedFd,
    waiting: AtomicBool,
}

impl Readiness {
    /// A new readiness fd, armed (the consumer starts out with nothing),
    /// not readable.
    pub(crate) fn new() -> std::io::Result<Readiness> {
        Ok(Readiness {
            fd: sys::eventfd(true)?,
            waiting: AtomicBool::new(true),
        })
    }

    /// Producer: work was made available.
    pub(crate) fn notify(&self) {
        // Orders the producer's publication before the load (Dekker with
        // `arm`): either the consumer's re-check sees the work, or this sees
        // the consumer waiting.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) && self.waiting.swap(false, Ordering::AcqRel) {
            sys::eventfd_signal(self.fd.as_raw_fd());
        }
    }

    /// Consumer: found nothing. Clears a stale signal and announces the
    /// wait; the caller must look for work once more before sleeping.
    pub(crate) fn arm(&self) {
        if !self.waiting.load(Ordering::Relaxed) {
            sys::eventfd_drain(self.fd.as_raw_fd());
            self.waiting.store(true, Ordering::Relaxed);
        }
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// The fd to poll for readability.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Blocks until signalled or `timeout_ms` passes (-1: forever).
    pub(crate) fn wait(&self, timeout_ms: i32) {
        sys::wait_readable(self.raw_fd(), timeout_ms);
    }
}

#[derive(Debug)]
enum Ring<T> {
    Bounded(ArrayQueue<T>),
    Unbounded(SegQueue<T>),
}

/// What happened to an offered item.
#[derive(Debug)]
pub(crate) enum Offer<T> {
    /// It is in the queue.
    Queued,
    /// The queue was full; the item was dropped and counted.
    Dropped,
    /// The queue was full and the queue does not drop: the item comes back.
    Full(T),
}

/// The queue itself. Any number of producers, one consumer.
#[derive(Debug)]
pub(crate) struct Onloop<T> {
    ring: Ring<T>,
    nodrop: bool,
    readiness: Readiness,
    drops: AtomicU64,
}

impl<T> Onloop<T> {
    /// A queue holding at most `capacity` items (0: unbounded). With
    /// `nodrop`, offers to a full queue are refused rather than dropped.
    pub(crate) fn new(capacity: usize, nodrop: bool) -> std::io::Result<Onloop<T>> {
        let ring = if capacity == 0 {
            Ring::Unbounded(SegQueue::new())
        } else {
            Ring::Bounded(ArrayQueue::new(capacity))
        };
        Ok(Onloop {
            ring,
            nodrop,
            readiness: Readiness::new()?,
            drops: AtomicU64::new(0),
        })
    }

    /// Offers an item (producer side) and wakes a waiting consumer.
    #[cfg(test)]
    pub(crate) fn offer(&self, item: T) -> Offer<T> {
        let offer = self.offer_quiet(item);
        if matches!(offer, Offer::Queued) {
            self.readiness.notify();
        }
        offer
    }

    /// Offers an item without waking the consumer: for a producer that
    /// offers a batch and then calls `readiness().notify()` once.
    pub(crate) fn offer_quiet(&self, item: T) -> Offer<T> {
        let pushed = match &self.ring {
            Ring::Bounded(q) => q.push(item),
            Ring::Unbounded(q) => {
                q.push(item);
                Ok(())
            }
        };
        match pushed {
            Ok(()) => Offer::Queued,
            Err(item) if self.nodrop => Offer::Full(item),
            Err(_) => {
                self.drops.fetch_add(1, Ordering::Relaxed);
                Offer::Dropped
            }
        }
    }

    /// Takes the oldest item (consumer side).
    pub(crate) fn pop(&self) -> Option<T> {
        match &self.ring {
            Ring::Bounded(q) => q.pop(),
            Ring::Unbounded(q) => q.pop(),
        }
    }

    /// Items queued now.
    pub(crate) fn len(&self) -> usize {
        match &self.ring {
            Ring::Bounded(q) => q.len(),
            Ring::Unbounded(q) => q.len(),
        }
    }

    /// Whether nothing is queued.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity (0: unbounded).
    pub(crate) fn capacity(&self) -> usize {
        match &self.ring {
            Ring::Bounded(q) => q.capacity(),
            Ring::Unbounded(_) => 0,
        }
    }

    /// Items dropped because the queue was full.
    #[cfg(test)]
    pub(crate) fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }

    /// The consumer's wake-up, shared with anything else it should wake for.
    pub(crate) fn readiness(&self) -> &Readiness {
        &self.readiness
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn holds_exactly_its_capacity_then_drops_and_counts() {
        let q = Onloop::new(3, false).unwrap();
        for i in 0..3 {
            assert!(matches!(q.offer(i), Offer::Queued));
        }
        assert!(matches!(q.offer(3), Offer::Dropped));
        assert_eq!((q.len(), q.drops()), (3, 1));
        assert_eq!(q.pop(), Some(0));
        assert!(matches!(q.offer(4), Offer::Queued));
    }

    #[test]
    fn nodrop_hands_the_item_back() {
        let q = Onloop::new(1, true).unwrap();
        assert!(matches!(q.offer("a"), Offer::Queued));
        assert!(matches!(q.offer("b"), Offer::Full("b")));
        assert_eq!(q.drops(), 0);
    }

    #[test]
    fn fd_turns_readable_when_work_reaches_an_armed_consumer() {
        let q = Onloop::new(0, false).unwrap();
        let readable = |q: &Onloop<u32>| sys::is_readable(q.readiness().raw_fd());
        assert!(!readable(&q));
        q.offer(1);
        q.offer(2);
        assert!(readable(&q));
        q.pop();
        assert!(readable(&q), "stays readable until the consumer runs dry");
        q.pop();
        assert!(q.pop().is_none());
        q.readiness().arm();
        assert!(!readable(&q));
    }

    #[test]
    fn concurrent_producers_lose_nothing_uncounted() {
        let q = Arc::new(Onloop::new(64, false).unwrap());
        let producers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..100_000u32 {
                        q.offer(i);
                    }
                })
            })
            .collect();
        let mut got = 0u64;
        let done = || producers.iter().all(|p| p.is_finished());
        loop {
            if q.pop().is_some() {
                got += 1;
            } else if done() && q.is_empty() {
                break;
            }
        }
        assert_eq!(got + q.drops(), 200_000);
    }
}
