//! epoll, and the non-blocking socket calls a readiness-driven reactor
//! makes itself (with io_uring the kernel makes them).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::cvt;

/// An epoll instance.
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
}

/// One ready descriptor: the token it was registered with, and what it is
/// ready for (`EPOLLIN`, `EPOLLOUT`, `EPOLLERR`, `EPOLLHUP`).
pub(crate) type Ready = libc::epoll_event;

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: takes no pointers; a non-negative result is a new fd.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just created and nothing else owns it.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is a live epoll_event for the call's duration.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event) }).map(|_| ())
    }

    /// Watches `fd` for `events` (level-triggered), reporting `token`.
    pub(crate) fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    /// Changes what `fd` is watched for.
    pub(crate) fn modify(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// Stops watching `fd`.
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits up to `timeout_ms` (-1: forever) for ready descriptors;
    /// returns how many of `events` were filled. EINTR counts as none.
    pub(crate) fn wait(&self, events: &mut [Ready], timeout_ms: i32) -> io::Result<usize> {
        let max = events.len().min(i32::MAX as usize) as libc::c_int;
        // SAFETY: the kernel writes at most `max` entries into `events`.
        let n =
            unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        match cvt(n) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// An empty event, to size the buffer `Epoll::wait` fills.
pub(crate) fn no_event() -> Ready {
    libc::epoll_event { events: 0, u64: 0 }
}

/// The result of a system call as bytes or a negative errno, the form
/// io_uring completions take.
fn as_result(ret: isize) -> i32 {
    if ret < 0 {
        -io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        ret.min(i32::MAX as isize) as i32
    }
}

/// Receives into `buf` without blocking: bytes received (0 at the peer's
/// end) or a negative errno (`-EAGAIN`: nothing there).
pub(crate) fn recv(fd: RawFd, buf: &mut [u8]) -> i32 {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    as_result(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) })
}

/// Sends what `msg` describes without blocking: bytes sent or a negative
/// errno (`-EAGAIN`: the socket buffer is full).
///
/// # Safety
/// `msg` and the iovecs it points at must be valid for reads.
pub(crate) unsafe fn sendmsg(fd: RawFd, msg: *const libc::msghdr) -> i32 {
    // SAFETY: the caller vouches for `msg`.
    as_result(unsafe { libc::sendmsg(fd, msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) })
}

/// Accepts a connection without blocking (the listener must be
/// non-blocking): the new descriptor or a negative errno.
pub(crate) fn accept(fd: RawFd) -> i32 {
    // SAFETY: no address is asked for; a non-negative result is a new fd
    // the caller takes ownership of (`accepted_fd`).
    as_result(unsafe {
        libc::accept4(
            fd,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    } as isize)
}

/// Starts connecting `fd` (made non-blocking here) to `addr`: 0 when
/// connected at once, `-EINPROGRESS` while under way, or another errno.
pub(crate) fn connect(fd: RawFd, addr: &super::RawAddr) -> i32 {
    if let Err(e) = set_nonblocking(fd) {
        return -e.raw_os_error().unwrap_or(libc::EIO);
    }
    // SAFETY: `addr` points at `len` bytes of a live sockaddr.
    as_result(unsafe { libc::connect(fd, addr.as_ptr(), addr.len()) } as isize)
}

/// The outcome of a connect that was under way: 0 or a negative errno.
pub(crate) fn connect_result(fd: RawFd) -> i32 {
    let mut error: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: reads a c_int into a live c_int of the size given.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut error as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if ret < 0 {
        as_result(ret as isize)
    } else {
        -error
    }
}

/// Sets O_NONBLOCK on `fd`.
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, no pointers.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_pair_reports_readiness_and_moves_bytes() {
        let mut fds = [0; 2];
        // SAFETY: socketpair writes two fds into a live array.
        let ret =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
        assert_eq!(ret, 0);
        // SAFETY: both were just created and nothing else owns them.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let epoll = Epoll::new().unwrap();
        epoll.add(b.as_raw_fd(), libc::EPOLLIN as u32, 7).unwrap();
        let mut events = [no_event(); 4];
        assert_eq!(epoll.wait(&mut events, 0).unwrap(), 0, "nothing yet");
        let mut buf = [0u8; 16];
        assert_eq!(recv(b.as_raw_fd(), &mut buf), -libc::EAGAIN);
        let iov = libc::iovec {
            iov_base: b"hello".as_ptr() as *mut libc::c_void,
            iov_len: 5,
        };
        // SAFETY: msghdr is plain old data; all-zero is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &iov as *const libc::iovec as *mut libc::iovec;
        msg.msg_iovlen = 1;
        // SAFETY: `msg` and its one iovec are live.
        assert_eq!(unsafe { sendmsg(a.as_raw_fd(), &msg) }, 5);
        assert_eq!(epoll.wait(&mut events, 1000).unwrap(), 1);
        let token = events[0].u64;
        assert_eq!(token, 7);
        assert_eq!(recv(b.as_raw_fd(), &mut buf), 5);
        assert_eq!(&buf[..5], b"hello");
        drop(a);
        assert_eq!(recv(b.as_raw_fd(), &mut buf), 0, "the peer's end");
    }

    #[test]
    fn a_refused_connect_reports_its_error() {
        // A port nothing listens on: bind one, learn it, close it.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let fd = super::super::stream_socket(libc::AF_INET).unwrap();
        let raw = super::super::RawAddr::from_socket_addr(&addr);
        let started = connect(fd.as_raw_fd(), &raw);
        if started == -libc::EINPROGRESS {
            let epoll = Epoll::new().unwrap();
            epoll.add(fd.as_raw_fd(), libc::EPOLLOUT as u32, 1).unwrap();
            let mut events = [no_event(); 1];
            assert_eq!(epoll.wait(&mut events, 1000).unwrap(), 1);
            assert_eq!(connect_result(fd.as_raw_fd()), -libc::ECONNREFUSED);
        } else {
            assert_eq!(started, -libc::ECONNREFUSED);
        }
    }
}
