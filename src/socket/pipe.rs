//! A pipe: what the application queued for one peer connection, with an
//! exact high-water mark.
//!
//! One producer (the thread that owns the socket), one consumer (the reactor
//! that owns the connection). A data message holds a slot from the moment it
//! is queued until the last byte of its last frame is handed to the kernel,
//! so a pipe never holds more than HWM whole messages and a slot frees the
//! moment its message leaves. Subscription changes travel in a queue of
//! their own, hold no slot and go out before queued messages: subscription
//! traffic is never dropped (libzmq drops it at SNDHWM).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use crossbeam_queue::{ArrayQueue, SegQueue};
use zmtp_codec::{Message, SubscriptionAction};

/// No connection serves the pipe right now.
pub(crate) const NO_CONN: u64 = u64::MAX;

/// One item for a peer.
#[derive(Debug, Clone)]
pub(crate) enum Outgoing {
    /// A message in wire form (e.g. received from another peer).
    Wire(Message),
    /// A single-frame message: the application's buffer, sent without copying.
    Single(Bytes),
    /// A message as the application's frames, sent without copying.
    Frames(std::sync::Arc<[Bytes]>),
    /// A subscription change for the peer (SUB and XSUB).
    Subscription(SubscriptionAction, Bytes),
}

impl Outgoing {
    pub(crate) fn is_message(&self) -> bool {
        !matches!(self, Outgoing::Subscription(..))
    }
}

#[derive(Debug)]
enum Queue {
    Bounded(ArrayQueue<Outgoing>),
    Unbounded(SegQueue<Outgoing>),
}

/// The queue towards one peer.
#[derive(Debug)]
pub(crate) struct Pipe {
    /// Unique within its socket.
    pub(crate) id: u64,
    /// The reactor that serves it.
    pub(crate) reactor: usize,
    messages: Queue,
    subscriptions: SegQueue<Outgoing>,
    /// Data messages queued or in a send batch not yet handed to the kernel.
    held: AtomicUsize,
    hwm: usize,
    /// Set when the reactor has been told there is work, cleared when it looks.
    scheduled: AtomicBool,
    /// The reactor's key of the connection serving it, or `NO_CONN`.
    pub(crate) conn: AtomicU64,
}

impl Pipe {
    pub(crate) fn new(id: u64, reactor: usize, hwm: usize) -> Pipe {
        Pipe {
            id,
            reactor,
            // `held` bounds the queue to `hwm`, so a ring of that size never
            // refuses a push.
            messages: if hwm == 0 {
                Queue::Unbounded(SegQueue::new())
            } else {
                Queue::Bounded(ArrayQueue::new(hwm))
            },
            subscriptions: SegQueue::new(),
            held: AtomicUsize::new(0),
            hwm,
            scheduled: AtomicBool::new(false),
            conn: AtomicU64::new(NO_CONN),
        }
    }

    /// Whether a data message would be refused.
    pub(crate) fn is_full(&self) -> bool {
        self.hwm != 0 && self.held.load(Ordering::Acquire) >= self.hwm
    }

    /// Queues an item (producer). A data message is refused at HWM.
    pub(crate) fn push(&self, item: Outgoing) -> Result<(), Outgoing> {
        if !item.is_message() {
            self.subscriptions.push(item);
            return Ok(());
        }
        if self.is_full() {
            return Err(item);
        }
        // Only this thread adds, so the check above cannot be overtaken.
        self.held.fetch_add(1, Ordering::AcqRel);
        match &self.messages {
            Queue::Bounded(q) => {
                if let Err(item) = q.push(item) {
                    self.held.fetch_sub(1, Ordering::AcqRel);
                    return Err(item);
                }
            }
            Queue::Unbounded(q) => q.push(item),
        }
        Ok(())
    }

    /// Marks the pipe as having work; true if the reactor must be told.
    pub(crate) fn schedule(&self) -> bool {
        // A plain load first: while the reactor has not looked yet the flag
        // stays set and the cache line stays shared.
        !self.scheduled.load(Ordering::Acquire) && !self.scheduled.swap(true, Ordering::AcqRel)
    }

    /// The reactor is looking at the queue now (consumer).
    pub(crate) fn unschedule(&self) {
        self.scheduled.store(false, Ordering::Release);
    }

    /// Takes the next item (consumer), subscriptions first. Messages keep
    /// their slot until `release`.
    pub(crate) fn pop(&self) -> Option<Outgoing> {
        if let Some(item) = self.subscriptions.pop() {
            return Some(item);
        }
        match &self.messages {
            Queue::Bounded(q) => q.pop(),
            Queue::Unbounded(q) => q.pop(),
        }
    }

    /// `n` messages left for the kernel (or were dropped): their slots free.
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            self.held.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Whether nothing waits in the queues.
    pub(crate) fn is_queue_empty(&self) -> bool {
        self.subscriptions.is_empty()
            && match &self.messages {
                Queue::Bounded(q) => q.is_empty(),
                Queue::Unbounded(q) => q.is_empty(),
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_exactly_hwm_messages_until_released() {
        let pipe = Pipe::new(1, 0, 2);
        let msg = || Outgoing::Wire(Message::from_frames(&[b"x"]));
        assert!(pipe.push(msg()).is_ok());
        assert!(pipe.push(msg()).is_ok());
        assert!(pipe.push(msg()).is_err(), "third message exceeds HWM 2");
        assert!(
            pipe.push(Outgoing::Subscription(
                SubscriptionAction::Subscribe,
                Bytes::new()
            ))
            .is_ok(),
            "subscriptions take no slot"
        );
        assert!(
            matches!(pipe.pop(), Some(Outgoing::Subscription(..))),
            "subscriptions go first"
        );
        assert!(matches!(pipe.pop(), Some(Outgoing::Wire(_))));
        assert!(
            pipe.push(msg()).is_err(),
            "popped but not yet sent: still held"
        );
        pipe.release(1);
        assert!(pipe.push(msg()).is_ok());
    }
}
