//! Wake-ups across threads through an eventfd, paid for only when the
//! other side is actually asleep.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

/// An eventfd plus an "asleep" flag. The sleeper sets the flag, re-checks
/// its queues, then blocks; a producer that finds the flag set clears it and
/// signals. Both sides use sequentially consistent operations, so either the
/// sleeper sees the new work or the producer sees the flag.
#[derive(Debug)]
pub(crate) struct Waker {
    fd: OwnedFd,
    asleep: AtomicBool,
}

impl Waker {
    /// A reactor's waker, whose eventfd io_uring reads (so it blocks).
    pub(crate) fn new() -> std::io::Result<Waker> {
        Self::with_fd(sys::eventfd(false)?)
    }

    /// A waker an application thread polls and drains itself.
    pub(crate) fn new_nonblocking() -> std::io::Result<Waker> {
        Self::with_fd(sys::eventfd(true)?)
    }

    fn with_fd(fd: OwnedFd) -> std::io::Result<Waker> {
        Ok(Waker {
            fd,
            asleep: AtomicBool::new(false),
        })
    }

    /// Wakes the sleeper if it is (about to be) asleep.
    pub(crate) fn wake(&self) {
        // A load first: while the owner is awake this stays a read of a
        // shared cache line, not a write to it.
        if self.asleep.load(Ordering::SeqCst) && self.asleep.swap(false, Ordering::SeqCst) {
            sys::eventfd_signal(self.fd.as_raw_fd());
        }
    }

    /// Announces that the owner is going to sleep; re-check work after this.
    pub(crate) fn prepare_sleep(&self) {
        self.asleep.store(true, Ordering::SeqCst);
    }

    /// Cancels a sleep announced by `prepare_sleep` (work was found).
    pub(crate) fn cancel_sleep(&self) {
        self.asleep.store(false, Ordering::SeqCst);
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
