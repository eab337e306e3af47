//! Stop signals for a daemon with many threads.

/// SIGINT and SIGTERM blocked in every thread started after
/// [`StopSignals::block`], so that only [`StopSignals::wait`] receives them:
/// a daemon's threads never see a signal handler run in their midst, and
/// the main thread stops everything in order.
pub struct StopSignals {
    set: libc::sigset_t,
}

impl std::fmt::Debug for StopSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopSignals(SIGINT, SIGTERM)")
    }
}

impl StopSignals {
    /// Blocks SIGINT and SIGTERM in the calling thread (and so in every
    /// thread it starts from now on). Call it before starting threads.
    pub fn block() -> StopSignals {
        // SAFETY: sigset_t is plain old data; the calls only write the set
        // they are given and the calling thread's mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            StopSignals { set }
        }
    }

    /// Waits for SIGINT or SIGTERM and says which came.
    pub fn wait(&self) -> &'static str {
        let mut signal: libc::c_int = 0;
        // SAFETY: `set` was initialised by `block`; sigwait writes the
        // signal number into a live c_int.
        while unsafe { libc::sigwait(&self.set, &mut signal) } != 0 {}
        match signal {
            libc::SIGINT => "SIGINT",
            _ => "SIGTERM",
        }
    }
}
