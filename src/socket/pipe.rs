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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use crossbeam_queue::SegQueue;
use zmtp_codec::{Message, Session, SubscriptionAction};

use super::ring::{self, Consumer, Producer};

/// No connection serves the pipe right now.
pub(crate) const NO_CONN: u64 = u64::MAX;

/// One data message for a peer.
#[derive(Debug, Clone)]
pub(crate) enum Outgoing {
    /// A message in wire form (e.g. received from another peer).
    Wire(Message),
    /// A single-frame message: the application's buffer, sent without copying.
    Single(Bytes),
    /// A message as the application's frames, sent without copying.
    Frames(Arc<[Bytes]>),
}

/// The queue towards one peer: shared by the socket's owner, which writes
/// through its [`PipeWriter`], and the reactor serving the peer.
#[derive(Debug)]
pub(crate) struct Pipe {
    /// Unique within its socket.
    pub(crate) id: u64,
    /// The reactor that serves it.
    pub(crate) reactor: usize,
    /// The reading end, locked once per send batch by the serving reactor
    /// (or, after the reactor let go of the pipe, by whoever discards it).
    reader: Mutex<MessageReader>,
    subscriptions: SegQueue<(SubscriptionAction, Bytes)>,
    /// Set when the reactor has been told there is work, cleared when it looks.
    scheduled: AtomicBool,
    /// The reactor's key of the connection serving it, or `NO_CONN`.
    pub(crate) conn: AtomicU64,
}

/// The writing end of a pipe's messages, owned by the socket.
pub(crate) enum PipeWriter<T = Outgoing> {
    /// SNDHWM > 0: a message holds a slot until it is sent.
    Bounded(Producer<T>),
    /// SNDHWM 0: no limit.
    Unbounded(Arc<SegQueue<T>>),
}

/// The reading end of a pipe's messages.
pub(crate) enum MessageReader<T = Outgoing> {
    /// Taken messages keep their slots until `release`.
    Bounded(Consumer<T>),
    /// Nothing to release.
    Unbounded(Arc<SegQueue<T>>),
}

/// A queue holding at most `hwm` unsent items (0: unbounded): its writing
/// and reading ends.
pub(crate) fn queue<T>(hwm: usize) -> (PipeWriter<T>, MessageReader<T>) {
    if hwm == 0 {
        let queue = Arc::new(SegQueue::new());
        (
            PipeWriter::Unbounded(queue.clone()),
            MessageReader::Unbounded(queue),
        )
    } else {
        let (producer, consumer) = ring::ring(hwm);
        (
            PipeWriter::Bounded(producer),
            MessageReader::Bounded(consumer),
        )
    }
}

impl<T> std::fmt::Debug for PipeWriter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PipeWriter")
    }
}

impl<T> std::fmt::Debug for MessageReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageReader")
    }
}

impl Pipe {
    /// A pipe holding at most `hwm` unsent messages (0: unbounded), and the
    /// writer for the socket's owner.
    pub(crate) fn new(id: u64, reactor: usize, hwm: usize) -> (Arc<Pipe>, PipeWriter) {
        let (writer, reader) = queue(hwm);
        let pipe = Pipe {
            id,
            reactor,
            reader: Mutex::new(reader),
            subscriptions: SegQueue::new(),
            scheduled: AtomicBool::new(false),
            conn: AtomicU64::new(NO_CONN),
        };
        (Arc::new(pipe), writer)
    }

    /// Queues a subscription change (any thread). These hold no slot, are
    /// never refused, and go out before queued messages.
    pub(crate) fn push_subscription(&self, action: SubscriptionAction, topic: Bytes) {
        self.subscriptions.push((action, topic));
        // Ordered before the caller's `schedule`, as after a message push.
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Takes the next subscription change.
    pub(crate) fn pop_subscription(&self) -> Option<(SubscriptionAction, Bytes)> {
        self.subscriptions.pop()
    }

    /// The reading end, for one send batch.
    pub(crate) fn reader(&self) -> MutexGuard<'_, MessageReader> {
        // A panic while holding the lock leaves the indices consistent.
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `n` taken messages left for the kernel (or were dropped): their slots free.
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            self.reader().release(n);
        }
    }

    /// Drops every queued message and subscription change; returns how
    /// many messages were lost. For a pipe no connection serves: nothing
    /// taken may be in flight.
    pub(crate) fn discard_queued(&self) -> usize {
        while self.subscriptions.pop().is_some() {}
        let mut reader = self.reader();
        let mut lost = 0;
        while reader.take().is_some() {
            lost += 1;
        }
        reader.release(lost);
        lost
    }

    /// After queueing: marks the pipe as having work; true if the reactor
    /// must be told. The flag stays up while the reactor has a send coming
    /// for the pipe, so streaming costs one load here per message.
    pub(crate) fn schedule(&self) -> bool {
        // SeqCst, with the queue's SeqCst publication before it and the
        // reactor's `unschedule` then `is_queue_empty`: a wake-up is never
        // lost between the two threads.
        !self.scheduled.load(Ordering::SeqCst) && !self.scheduled.swap(true, Ordering::SeqCst)
    }

    /// The reactor found nothing to send: the next message needs a wake-up.
    /// It must check `is_queue_empty` after this.
    pub(crate) fn unschedule(&self) {
        self.scheduled.store(false, Ordering::SeqCst);
    }

    /// Whether nothing waits in the queues.
    pub(crate) fn is_queue_empty(&self) -> bool {
        std::sync::atomic::fence(Ordering::SeqCst);
        self.subscriptions.is_empty() && self.reader().is_empty()
    }

    /// Moves queued subscriptions, then messages, into `session` while
    /// `room` says a send batch has room, counting the data messages taken
    /// in `taken` (their slots stay held until released with the batch).
    /// Errors are the session's (a mechanism failing to seal).
    ///
    /// While a send is coming, the pipe stays scheduled: the send's
    /// completion looks at the pipe again, so the socket need not wake the
    /// reactor for every message it queues meanwhile. Only a batch that
    /// finds nothing to send takes the flag down.
    pub(crate) fn fill(
        &self,
        session: &mut Session,
        room: impl Fn(&mut Session) -> bool,
        taken: &mut usize,
    ) -> zmtp_codec::Result<()> {
        loop {
            while room(session) {
                let Some((action, topic)) = self.pop_subscription() else {
                    break;
                };
                session.send_subscription(action, topic)?;
            }
            let mut reader = self.reader();
            while room(session) {
                let Some(item) = reader.take() else { break };
                // Counted before the session may refuse it: the slot stays
                // taken until released with the batch (or the connection).
                *taken += 1;
                match item {
                    Outgoing::Wire(m) => session.send(m)?,
                    Outgoing::Single(body) => session.send_frame(body, false)?,
                    Outgoing::Frames(frames) => session.send_frames(&frames)?,
                }
            }
            drop(reader);
            if !session.outbox().is_empty() {
                return Ok(());
            }
            self.unschedule();
            // The socket queues, then checks the flag; we lowered the flag,
            // then check the queue (both sequentially consistent): either it
            // saw the flag down and will wake us, or we see its message here.
            if self.is_queue_empty() {
                return Ok(());
            }
        }
    }
}

impl<T> PipeWriter<T> {
    /// Once the reading end is gone: how many queued items it never took.
    /// `None` while it lives.
    pub(crate) fn abandoned(&self) -> Option<usize> {
        match self {
            PipeWriter::Bounded(p) => p.abandoned(),
            PipeWriter::Unbounded(q) => (Arc::strong_count(q) == 1).then(|| q.len()),
        }
    }

    /// Whether a message would be refused.
    pub(crate) fn is_full(&mut self) -> bool {
        match self {
            PipeWriter::Bounded(p) => p.is_full(),
            PipeWriter::Unbounded(_) => false,
        }
    }

    /// Queues a message, or gives it back at HWM.
    pub(crate) fn push(&mut self, item: T) -> Result<(), T> {
        match self {
            PipeWriter::Bounded(p) => p.push(item),
            PipeWriter::Unbounded(q) => {
                q.push(item);
                // The wake-up protocol (`schedule` after a push, `is_empty`
                // after `unschedule`) needs the push ordered before the
                // flag's load. The bounded ring publishes with SeqCst; the
                // unbounded queue promises only release, so fence here.
                std::sync::atomic::fence(Ordering::SeqCst);
                Ok(())
            }
        }
    }
}

impl<T> MessageReader<T> {
    /// Takes the next message; it keeps its slot until `release`.
    pub(crate) fn take(&mut self) -> Option<T> {
        match self {
            MessageReader::Bounded(c) => c.take(),
            MessageReader::Unbounded(q) => q.pop(),
        }
    }

    /// Frees the slots of the oldest `n` taken messages.
    pub(crate) fn release(&mut self, n: usize) {
        if let MessageReader::Bounded(c) = self {
            c.release(n);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self {
            MessageReader::Bounded(c) => c.is_empty(),
            MessageReader::Unbounded(q) => {
                // Pairs with the fence after an unbounded push.
                std::sync::atomic::fence(Ordering::SeqCst);
                q.is_empty()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_exactly_hwm_messages_until_released() {
        let (pipe, mut writer) = Pipe::new(1, 0, 2);
        let msg = || Outgoing::Wire(Message::from_frames(&[b"x"]));
        assert!(writer.push(msg()).is_ok());
        assert!(writer.push(msg()).is_ok());
        assert!(writer.push(msg()).is_err(), "third message exceeds HWM 2");
        pipe.push_subscription(SubscriptionAction::Subscribe, Bytes::new());
        assert!(
            pipe.pop_subscription().is_some(),
            "subscriptions take no slot"
        );
        assert!(matches!(pipe.reader().take(), Some(Outgoing::Wire(_))));
        assert!(
            writer.push(msg()).is_err(),
            "taken but not yet sent: still held"
        );
        pipe.release(1);
        assert!(writer.push(msg()).is_ok());
        assert_eq!(pipe.discard_queued(), 2);
        assert!(pipe.is_queue_empty());
    }

    #[test]
    fn hwm_zero_is_unbounded() {
        let (pipe, mut writer) = Pipe::new(1, 0, 0);
        for _ in 0..10_000 {
            assert!(writer
                .push(Outgoing::Single(Bytes::from_static(b"x")))
                .is_ok());
        }
        assert!(!writer.is_full());
        assert_eq!(pipe.discard_queued(), 10_000);
    }
}
