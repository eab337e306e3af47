//! Thin wrappers over the system calls zring makes outside io_uring:
//! eventfds and wake-ups, sockets and their options, resource limits,
//! local time and stop signals. With the reactor's driver, the receive
//! buffer ring, the single-producer ring and the onloop queue, this is
//! where `unsafe` code lives; each block says why it is sound.

pub(crate) mod epoll;
mod event;
mod limits;
mod net;
mod signals;
mod time;
pub(crate) mod waker;

#[cfg(test)]
pub(crate) use self::event::is_readable;
pub(crate) use self::event::{
    eventfd, eventfd_drain, eventfd_signal, wait_readable, wait_readable_for,
};
pub(crate) use self::limits::{
    clock_ticks_per_second, nofile_limit, raise_nofile_limit, set_timer_slack_ns,
};
pub(crate) use self::net::{
    accepted_fd, interface_address, ipc_listen, peer_addr, peer_name, set_backlog, set_buffer_size,
    set_nodelay, shutdown, stream_socket, tcp_listen, RawAddr,
};
pub use self::signals::{DaemonSignals, Signal};
#[cfg(test)]
pub(crate) use self::time::c_printf_f6;
pub(crate) use self::time::{local_time, mktime, BrokenDown};

/// A C return value as a `Result`, with `errno` for negative ones.
fn cvt(ret: libc::c_int) -> std::io::Result<libc::c_int> {
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
