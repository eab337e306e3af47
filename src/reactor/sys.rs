//! Thin wrappers over the few system calls the reactor makes outside
//! io_uring: eventfds, listening sockets, unconnected sockets and their
//! addresses.

use std::io;
use std::mem::ManuallyDrop;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

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
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; EINTR simply returns early.
    unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
}

/// Sets the listen backlog of a listening socket.
pub(crate) fn set_backlog(fd: RawFd, backlog: u32) {
    // SAFETY: listen on a socket we own; calling it again only resizes the queue.
    unsafe { libc::listen(fd, backlog.min(i32::MAX as u32) as libc::c_int) };
}

/// A socket address in the form the kernel takes.
pub(crate) struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    pub(crate) fn from_socket_addr(addr: &SocketAddr) -> RawAddr {
        // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*a.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        RawAddr {
            storage,
            len: len as libc::socklen_t,
        }
    }

    pub(crate) fn from_path(path: &Path) -> io::Result<RawAddr> {
        // SAFETY: as above.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_un.
        let sun = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_un) };
        let bytes = path.as_os_str().as_bytes();
        if bytes.len() >= sun.sun_path.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ipc path too long",
            ));
        }
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, src) in sun.sun_path.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
        Ok(RawAddr {
            storage,
            len: len as libc::socklen_t,
        })
    }

    pub(crate) fn family(&self) -> libc::c_int {
        self.storage.ss_family as libc::c_int
    }

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }

    pub(crate) fn len(&self) -> libc::socklen_t {
        self.len
    }
}

/// A new stream socket of `family`, not yet connected. It stays in blocking
/// mode: only io_uring does I/O on it, and io_uring waits on blocking
/// sockets by polling, where it would hand EAGAIN back for some operations
/// on non-blocking ones.
pub(crate) fn stream_socket(family: libc::c_int) -> io::Result<OwnedFd> {
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    // SAFETY: socket takes no pointers; a non-negative result is a new fd.
    let fd = cvt(unsafe { libc::socket(family, kind, 0) })?;
    // SAFETY: `fd` was just created and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Turns off Nagle's algorithm, as libzmq does on every TCP connection.
/// Sets SO_SNDBUF or SO_RCVBUF (ZMQ_SNDBUF/RCVBUF); a refusal is logged,
/// not fatal, as in libzmq.
pub(crate) fn set_buffer_size(fd: RawFd, send: bool, bytes: usize) {
    let value = bytes.min(libc::c_int::MAX as usize) as libc::c_int;
    let option = if send {
        libc::SO_SNDBUF
    } else {
        libc::SO_RCVBUF
    };
    // SAFETY: passes a live c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let which = if send { "SO_SNDBUF" } else { "SO_RCVBUF" };
        tracing::warn!(
            "cannot set {which} to {bytes}: {}",
            io::Error::last_os_error()
        );
    }
}

pub(crate) fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: passes a live c_int of the size given. Fails harmlessly on
    // Unix sockets.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// The peer of a connected socket, for log lines.
pub(crate) fn peer_name(fd: &OwnedFd) -> String {
    // SAFETY: the TcpStream borrows the fd only for this call and is never
    // dropped, so the fd is not closed here.
    let stream = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd.as_raw_fd()) });
    match stream.peer_addr() {
        Ok(addr) => addr.to_string(),
        Err(_) => "ipc peer".to_owned(),
    }
}

/// The IP address of a connection's peer (`None` for ipc).
pub(crate) fn peer_ip(fd: &OwnedFd) -> Option<std::net::IpAddr> {
    // SAFETY: as in `peer_name`.
    let stream = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd.as_raw_fd()) });
    stream.peer_addr().ok().map(|a| a.ip())
}

/// A listening TCP socket and the address it got.
pub(crate) fn tcp_listen(addr: SocketAddr) -> io::Result<(OwnedFd, SocketAddr)> {
    let listener = std::net::TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    Ok((OwnedFd::from(listener), local))
}

/// A listening Unix socket at `path`. A stale socket file from an earlier
/// run is replaced, as libzmq does; anything else at the path is an error.
pub(crate) fn ipc_listen(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        }
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    Ok(OwnedFd::from(listener))
}

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
