//! eventfds and waiting for a file descriptor to turn readable.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::cvt;

/// A close-on-exec eventfd. A reactor reads its own through io_uring,
/// which must find it blocking (io_uring answers EAGAIN for non-blocking
/// files instead of waiting); application-side ones are non-blocking.
pub(crate) fn eventfd(nonblocking: bool) -> io::Result<OwnedFd> {
    let flags = libc::EFD_CLOEXEC | if nonblocking { libc::EFD_NONBLOCK } else { 0 };
    // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
    let fd = cvt(unsafe { libc::eventfd(0, flags) })?;
    // SAFETY: `fd` was just created and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd's counter, making it readable.
pub(crate) fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64. A full counter (EAGAIN) is
    // already readable, which is all a signal needs.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Resets an eventfd's counter to zero (not readable).
pub(crate) fn eventfd_drain(fd: RawFd) {
    let mut value: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64; EAGAIN means already zero.
    unsafe { libc::read(fd, (&mut value as *mut u64).cast(), 8) };
}

/// Waits until `fd` is readable or `timeout_ms` passes (-1: forever).
pub(crate) fn wait_readable(fd: RawFd, timeout_ms: i32) {
    let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
    poll_readable(fd, timeout);
}

/// Whether `fd` is readable now.
#[cfg(test)]
pub(crate) fn is_readable(fd: RawFd) -> bool {
    poll_readable(fd, Some(Duration::ZERO))
}

/// Waits until `fd` is readable or `timeout` passes, to the microsecond
/// (`wait_readable` counts in milliseconds).
pub(crate) fn wait_readable_for(fd: RawFd, timeout: Duration) {
    poll_readable(fd, Some(timeout));
}

/// The one body of the waits above: `ppoll`, which takes a timeout to
/// the nanosecond (None: forever); whether `fd` turned readable.
fn poll_readable(fd: RawFd, timeout: Option<Duration>) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts = ts
        .as_ref()
        .map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
    // SAFETY: one valid pollfd and a live timespec or none; no signal mask
    // is changed; EINTR simply returns early.
    unsafe { libc::ppoll(&mut pfd, 1, ts, std::ptr::null()) == 1 }
}
