//! Sockets outside io_uring: listening, options, addresses in the kernel's
//! form, peers' names, and the addresses of network interfaces.

use std::io;
use std::mem::ManuallyDrop;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::cvt;

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

/// The address of a connected socket's peer, from one `getpeername`
/// (`None` for an ipc peer, or a socket already reset).
pub(crate) fn peer_addr(fd: &OwnedFd) -> Option<SocketAddr> {
    // SAFETY: the TcpStream borrows the fd only for this call and is never
    // dropped, so the fd is not closed here.
    let stream = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd.as_raw_fd()) });
    stream.peer_addr().ok()
}

/// A peer's name for log lines, from [`peer_addr`].
pub(crate) fn peer_name(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "ipc peer".to_owned(), |a| a.to_string())
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

/// Shuts both directions of a socket down, so that operations pending on
/// it complete promptly.
pub(crate) fn shutdown(fd: RawFd) {
    // SAFETY: shutdown on an fd the caller owns; no pointers.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// The first IPv4 address of the interface `name` (then IPv6), if it exists.
pub(crate) fn interface_address(name: &str) -> Option<IpAddr> {
    let mut found_v6 = None;
    let mut ifaddrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `ifaddrs` with a list we free below.
    if unsafe { libc::getifaddrs(&mut ifaddrs) } != 0 {
        return None;
    }
    let mut cursor = ifaddrs;
    let mut found = None;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let entry_name = unsafe { std::ffi::CStr::from_ptr(entry.ifa_name) };
        if entry_name.to_bytes() != name.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr whose family says its size.
        match unsafe { (*entry.ifa_addr).sa_family } as i32 {
            libc::AF_INET => {
                // SAFETY: the family is AF_INET, so this is a sockaddr_in.
                let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                found = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
                break;
            }
            libc::AF_INET6 if found_v6.is_none() => {
                // SAFETY: the family is AF_INET6, so this is a sockaddr_in6.
                let sin6 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
                found_v6 = Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
            _ => {}
        }
    }
    // SAFETY: the list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(ifaddrs) };
    found.or(found_v6)
}

/// Takes ownership of the descriptor a completed io_uring accept returned.
/// `fd` must be such a result (non-negative), owned by nobody else.
pub(crate) fn accepted_fd(fd: i32) -> OwnedFd {
    debug_assert!(fd >= 0);
    // SAFETY: a successful accept hands the caller a new descriptor that
    // nothing else refers to; the caller passes each result here once.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
