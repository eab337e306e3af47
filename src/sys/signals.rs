//! Signals for a daemon with many threads: stop and reload.

/// The signals a daemon acts on: SIGINT and SIGTERM stop it, SIGHUP
/// reloads it. Blocked in every thread and taken synchronously by the
/// main thread with `sigwait`, so no handler runs on a reactor thread.
pub struct DaemonSignals {
    set: libc::sigset_t,
}

/// What a signal asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM (named): stop cleanly.
    Stop(&'static str),
    /// SIGHUP: re-read configuration, reopen files.
    Reload,
}

impl std::fmt::Debug for DaemonSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DaemonSignals(SIGINT, SIGTERM, SIGHUP)")
    }
}

impl DaemonSignals {
    /// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and so in
    /// every thread it starts from now on). Call it before starting
    /// threads. Until then a SIGHUP would end the process (its default),
    /// so a daemon calls this first thing.
    pub fn block() -> DaemonSignals {
        // SAFETY: sigset_t is plain old data; the calls only write the set
        // they are given and the calling thread's mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            DaemonSignals { set }
        }
    }

    /// Waits for the next signal.
    pub fn wait(&self) -> Signal {
        let mut signal: libc::c_int = 0;
        // SAFETY: `set` was initialised by `block`; sigwait writes the
        // signal number into a live c_int.
        while unsafe { libc::sigwait(&self.set, &mut signal) } != 0 {}
        match signal {
            libc::SIGINT => Signal::Stop("SIGINT"),
            libc::SIGHUP => Signal::Reload,
            _ => Signal::Stop("SIGTERM"),
        }
    }
}
