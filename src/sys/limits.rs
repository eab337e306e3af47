//! Process resource limits.

use std::io;

use super::cvt;

/// The soft and the hard limit on open file descriptors (RLIMIT_NOFILE).
pub(crate) fn nofile_limits() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into a live local.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// The soft limit on open file descriptors: what `open` runs into.
pub(crate) fn nofile_limit() -> io::Result<u64> {
    nofile_limits().map(|(soft, _)| soft)
}

/// Raises the soft limit on open file descriptors to the hard one (which
/// any process may do) and returns the soft limit now in force.
pub(crate) fn raise_nofile_limit() -> io::Result<u64> {
    let (soft, hard) = nofile_limits()?;
    if soft >= hard {
        return Ok(soft);
    }
    let limit = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one rlimit from a live local.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) })?;
    Ok(hard)
}

/// Clock ticks per second, the unit of `/proc/PID/stat`'s CPU times.
pub(crate) fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100)
}

/// Makes the calling thread's timed sleeps end within about a microsecond
/// of their deadline instead of the default 50 µs timer slack (a
/// fixed-rate sender's schedule).
pub(crate) fn set_timer_slack_ns(ns: u64) -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and touches no memory of
    // ours; it applies to the calling thread only.
    cvt(unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) }).map(drop)
}
