//! The part of a socket its reactors share with the application thread:
//! the onloop queue, the control queue, counters and wake-ups.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_queue::SegQueue;
use zmtp_codec::{Message, Subscription};

use super::options::SocketKind;
use super::pipe::{Pipe, PipeWriter};
use crate::counters::Counters;
pub use crate::counters::SocketStats;
use crate::onloop::Onloop;
use crate::sys;
use crate::sys::waker::Waker;

/// Something a reactor tells the socket's owner. These are never dropped
/// and hold no HWM slot.
#[derive(Debug)]
pub(crate) enum CoreEvent {
    /// A peer finished its handshake and `pipe` now reaches it. A new pipe
    /// comes with its writer; one that existed before (connect without
    /// IMMEDIATE) without.
    Up {
        pipe: Arc<Pipe>,
        writer: Option<PipeWriter>,
    },
    /// The connection behind pipe `pipe_id` is gone; `remove` when the pipe
    /// goes with it (else it waits for a reconnect).
    Down { pipe_id: u64, remove: bool },
    /// A peer (un)subscribed (PUB and XPUB).
    Subscription { pipe_id: u64, sub: Subscription },
}

/// State shared between a socket and the reactors serving its connections.
#[derive(Debug)]
pub(crate) struct SocketShared {
    pub(crate) id: u64,
    pub(crate) kind: SocketKind,
    /// Messages for the application.
    pub(crate) onloop: Onloop<Message>,
    /// Events for the application thread's socket logic.
    control: SegQueue<CoreEvent>,
    /// Written by reactors per batch, read rarely: on a cache line of its
    /// own (the reactors count through their connections' specs).
    pub(crate) counters: Arc<Counters>,
    /// Per reactor: it has connections paused because the onloop queue was full.
    paused: Box<[AtomicBool]>,
    /// Wakes a sender blocked on full pipes.
    writable: Waker,
    next_pipe_id: AtomicU64,
    /// See [`crate::SocketOption::RcvWakeDelay`]: reactors defer waking the
    /// application this long after a batch, unless the queue fills up.
    pub(crate) wake_delay: Option<Duration>,
}

impl SocketShared {
    pub(crate) fn new(
        id: u64,
        kind: SocketKind,
        rcvhwm: usize,
        rcv_nodrop: bool,
        reactors: usize,
    ) -> std::io::Result<SocketShared> {
        Ok(SocketShared {
            id,
            kind,
            onloop: Onloop::new(rcvhwm, rcv_nodrop)?,
            control: SegQueue::new(),
            counters: Arc::new(Counters::default()),
            paused: (0..reactors).map(|_| AtomicBool::new(false)).collect(),
            writable: Waker::new_nonblocking()?,
            next_pipe_id: AtomicU64::new(1),
            wake_delay: None,
        })
    }

    /// The same, with reactors deferring the application's wake-ups by `delay`.
    pub(crate) fn with_wake_delay(mut self, delay: Option<Duration>) -> SocketShared {
        self.wake_delay = delay;
        self
    }

    /// Whether the onloop queue holds enough that a deferred wake-up should
    /// happen now: half its capacity, or 512 messages when it is unbounded.
    pub(crate) fn wake_now(&self) -> bool {
        let threshold = match self.onloop.capacity() {
            0 => 512,
            capacity => capacity.div_ceil(2),
        };
        self.onloop.len() >= threshold
    }

    pub(crate) fn new_pipe_id(&self) -> u64 {
        self.next_pipe_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues a control event and wakes the application if it waits.
    pub(crate) fn post(&self, event: CoreEvent) {
        self.control.push(event);
        self.onloop.readiness().notify();
    }

    /// Whether control events wait.
    pub(crate) fn has_events(&self) -> bool {
        !self.control.is_empty()
    }

    /// Takes the next control event (application thread).
    pub(crate) fn next_event(&self) -> Option<CoreEvent> {
        self.control.pop()
    }

    pub(crate) fn set_paused(&self, reactor: usize) {
        self.paused[reactor].store(true, Ordering::SeqCst);
    }

    /// Whether any reactor paused connections (one load per reactor).
    pub(crate) fn any_paused(&self) -> bool {
        self.paused.iter().any(|p| p.load(Ordering::SeqCst))
    }

    /// Reactors that paused connections since the last call (application thread).
    pub(crate) fn take_paused(&self) -> impl Iterator<Item = usize> + '_ {
        self.paused
            .iter()
            .enumerate()
            .filter(|(_, p)| p.load(Ordering::SeqCst) && p.swap(false, Ordering::SeqCst))
            .map(|(i, _)| i)
    }

    /// A blocked sender is about to wait for pipe space.
    pub(crate) fn prepare_wait_writable(&self) {
        self.writable.prepare_sleep();
    }

    /// Waits for a slot to free or a peer to arrive (or `timeout_ms`).
    pub(crate) fn wait_writable(&self, timeout_ms: i32) {
        sys::wait_readable(self.writable.raw_fd(), timeout_ms);
        sys::eventfd_drain(self.writable.raw_fd());
        self.writable.cancel_sleep();
    }

    /// A slot freed or a pipe arrived (reactor).
    pub(crate) fn notify_writable(&self) {
        self.writable.wake();
    }
}
