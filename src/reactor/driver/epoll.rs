//! The epoll driver: where io_uring is refused, the reactor makes the
//! non-blocking calls itself when epoll reports a socket ready.
//!
//! It keeps the io_uring driver's shape so the reactor above cannot tell
//! them apart: a receive stays armed until it ends, a send completes once
//! with what it wrote, an accept stays armed, a connect completes once.
//! Receives go into the same buffers (taken from the ring in the kernel's
//! stead, appended to one buffer as an incremental ring does). Sends are
//! made when the reactor waits, as io_uring submits them then: a send
//! must not overtake the mesh commands queued before it (the broker's
//! route-before-echo rule). Watching is level-triggered, and a descriptor
//! with nothing to wait for is not watched at all, so a hung-up peer of a
//! paused connection does not wake the loop over and over.
//!
//! What differs: no zero-copy sends (every send copies into the socket
//! buffer), and coalescing sleeps out its window on the mailbox alone,
//! since epoll cannot wait for a number of events (commands from other
//! threads end the window early). Timers have millisecond precision.
//! Nothing here needs a kernel newer than 4.18.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::Arc;

use zmtp_codec::BufferPool;

use super::{Completion, Driver, Op, Received};
use crate::reactor::bufring::BufRing;
use crate::reactor::config::{ReactorConfig, ReactorError};
use crate::reactor::slab::Key;
use crate::reactor::wait::Wait;
use crate::sys;
use crate::sys::epoll::{self as ep, Ready};
use crate::sys::waker::Waker;

/// The token of the reactor's waker; descriptors use their own number.
const WAKE: u64 = u64::MAX;
/// Receives per connection and readiness report, so one busy peer does not
/// keep the others waiting.
const RECV_BUDGET: usize = 4;
/// Accepts per listener and readiness report.
const ACCEPT_BUDGET: usize = 64;
/// Ready descriptors taken per wait.
const EVENTS: usize = 256;

/// What the reactor waits for on one descriptor.
#[derive(Default)]
struct Watch {
    recv: Option<Key>,
    /// A send the socket buffer had no room for, waiting for EPOLLOUT.
    send: Option<(Key, *const libc::msghdr)>,
    accept: Option<Key>,
    connect: Option<Key>,
    /// The events epoll watches it for (0: not registered).
    mask: u32,
}

impl Watch {
    fn wanted(&self) -> u32 {
        let read = self.recv.is_some() || self.accept.is_some();
        let write = self.send.is_some() || self.connect.is_some();
        (if read { libc::EPOLLIN as u32 } else { 0 })
            | (if write { libc::EPOLLOUT as u32 } else { 0 })
    }
}

pub(in crate::reactor) struct Epoll {
    epoll: ep::Epoll,
    bufs: BufRing,
    waker: Arc<Waker>,
    events: Vec<Ready>,
    watched: HashMap<RawFd, Watch>,
    /// Sends to make when the reactor next waits.
    queued: Vec<(Key, RawFd, *const libc::msghdr)>,
    /// Completions known before the next wait (cancels, connects that
    /// finished at once).
    ready: Vec<Completion>,
}

impl Epoll {
    /// Makes epoll watch `fd` for what its `Watch` wants now.
    fn update(&mut self, fd: RawFd) {
        let Some(watch) = self.watched.get_mut(&fd) else {
            return;
        };
        let wanted = watch.wanted();
        if wanted == watch.mask {
            return;
        }
        let result = match (watch.mask, wanted) {
            (_, 0) => self.epoll.delete(fd),
            (0, _) => self.epoll.add(fd, wanted, fd as u64).or_else(|e| {
                // Left registered under a number reused since: take it over.
                if e.raw_os_error() == Some(libc::EEXIST) {
                    self.epoll.modify(fd, wanted, fd as u64)
                } else {
                    Err(e)
                }
            }),
            _ => self.epoll.modify(fd, wanted, fd as u64).or_else(|e| {
                // Closed and reopened under the same number meanwhile.
                if e.raw_os_error() == Some(libc::ENOENT) {
                    self.epoll.add(fd, wanted, fd as u64)
                } else {
                    Err(e)
                }
            }),
        };
        match result {
            Ok(()) => watch.mask = wanted,
            Err(e) if wanted == 0 => {
                // Already gone from the set (closed): nothing watches it.
                tracing::trace!(fd, "epoll_ctl delete: {e}");
                watch.mask = 0;
            }
            Err(e) => {
                // It cannot be watched: everything waiting on it fails.
                tracing::warn!(fd, "epoll_ctl failed: {e}");
                let errno = -e.raw_os_error().unwrap_or(libc::EIO);
                let watch = self.watched.remove(&fd).expect("present");
                self.fail_all(watch, errno);
            }
        }
    }

    fn fail_all(&mut self, watch: Watch, errno: i32) {
        if let Some(key) = watch.recv {
            self.ready.push(recv_done(key, Received::Failed(errno)));
        }
        if let Some((key, _)) = watch.send {
            self.ready.push(sent(key, errno));
        }
        if let Some(key) = watch.accept {
            self.ready.push(accepted(key, errno, false));
        }
        if let Some(key) = watch.connect {
            self.ready.push(connected(key, errno));
        }
    }

    fn watch(&mut self, fd: RawFd) -> &mut Watch {
        self.watched.entry(fd).or_default()
    }

    /// Receives what `fd` holds, up to the budget.
    fn receive(&mut self, fd: RawFd, key: Key, copies: &dyn BufferPool, out: &mut Vec<Completion>) {
        for _ in 0..RECV_BUDGET {
            let Some((bid, space)) = self.bufs.space() else {
                out.push(recv_done(key, Received::Failed(-libc::ENOBUFS)));
                self.watch(fd).recv = None;
                self.update(fd);
                return;
            };
            let room = space.len();
            let n = sys::epoll::recv(fd, space);
            if n > 0 {
                let (bytes, copied) = self.bufs.received(bid, n as usize, copies);
                out.push(Completion::Recv {
                    index: key.index,
                    generation: key.tag(),
                    received: Received::Data(bytes, copied),
                    armed: true,
                });
                if (n as usize) < room {
                    // The socket is drained.
                    return;
                }
                continue;
            }
            match n {
                n if n == -libc::EAGAIN || n == -libc::EWOULDBLOCK => return,
                n if n == -libc::EINTR => continue,
                0 => out.push(recv_done(key, Received::End)),
                errno => out.push(recv_done(key, Received::Failed(errno))),
            }
            self.watch(fd).recv = None;
            self.update(fd);
            return;
        }
    }

    fn accept_ready(&mut self, fd: RawFd, key: Key, out: &mut Vec<Completion>) {
        for _ in 0..ACCEPT_BUDGET {
            match sys::epoll::accept(fd) {
                n if n >= 0 => out.push(accepted(key, n, true)),
                n if n == -libc::EAGAIN || n == -libc::EWOULDBLOCK => return,
                n if n == -libc::ECONNABORTED || n == -libc::EINTR => continue,
                errno => {
                    // As io_uring's multishot accept: an error ends it, and
                    // the reactor retries later (EMFILE would spin here).
                    out.push(accepted(key, errno, false));
                    self.watch(fd).accept = None;
                    self.update(fd);
                    return;
                }
            }
        }
    }

    /// Makes a send; false when the socket buffer is full.
    fn try_send(
        &mut self,
        key: Key,
        fd: RawFd,
        msg: *const libc::msghdr,
        out: &mut Vec<Completion>,
    ) -> bool {
        // SAFETY: the reactor keeps `msg` and its iovecs valid until this
        // send's completion (the Driver contract).
        let n = unsafe { sys::epoll::sendmsg(fd, msg) };
        if n == -libc::EAGAIN || n == -libc::EWOULDBLOCK {
            return false;
        }
        out.push(sent(key, n));
        true
    }

    fn writable(&mut self, fd: RawFd, out: &mut Vec<Completion>) {
        let Some(watch) = self.watched.get_mut(&fd) else {
            return;
        };
        if let Some((key, msg)) = watch.send {
            if self.try_send(key, fd, msg, out) {
                self.watch(fd).send = None;
            }
        }
        let watch = self.watch(fd);
        if let Some(key) = watch.connect.take() {
            out.push(connected(key, sys::epoll::connect_result(fd)));
        }
        self.update(fd);
    }
}

fn recv_done(key: Key, received: Received) -> Completion {
    Completion::Recv {
        index: key.index,
        generation: key.tag(),
        received,
        armed: false,
    }
}

fn sent(key: Key, result: i32) -> Completion {
    Completion::Sent {
        index: key.index,
        generation: key.tag(),
        result,
        notif_follows: false,
    }
}

fn accepted(key: Key, result: i32, armed: bool) -> Completion {
    Completion::Accepted {
        index: key.index,
        generation: key.tag(),
        result,
        armed,
    }
}

fn connected(key: Key, result: i32) -> Completion {
    Completion::Connected {
        index: key.index,
        generation: key.tag(),
        result,
    }
}

/// How long epoll may sleep for `plan`, in whole milliseconds rounded up
/// (a timer must not find itself a little early and spin).
fn timeout_ms(plan: Wait) -> i32 {
    match plan {
        Wait::None => 0,
        Wait::For { timeout: None, .. } => -1,
        Wait::For {
            timeout: Some(t), ..
        } => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
    }
}

impl Driver for Epoll {
    fn new(config: &ReactorConfig, waker: Arc<Waker>) -> Result<Epoll, ReactorError> {
        let epoll = ep::Epoll::new()?;
        // Drained after each wake-up, so it must not block.
        sys::epoll::set_nonblocking(waker.raw_fd())?;
        epoll.add(waker.raw_fd(), libc::EPOLLIN as u32, WAKE)?;
        let bufs = BufRing::new(
            None,
            0,
            config.buffer_count,
            config.buffer_size,
            config.copy_below,
            // Appending receives to one buffer costs nothing here and
            // wastes no buffer on a small receive.
            true,
            waker.clone(),
        )?;
        Ok(Epoll {
            epoll,
            bufs,
            waker,
            events: vec![ep::no_event(); EVENTS],
            watched: HashMap::new(),
            queued: Vec::new(),
            ready: Vec::new(),
        })
    }

    fn buffers(&mut self) -> &mut BufRing {
        &mut self.bufs
    }

    fn recv(&mut self, key: Key, fd: RawFd) {
        self.watch(fd).recv = Some(key);
        self.update(fd);
    }

    fn send(&mut self, key: Key, fd: RawFd, msg: *const libc::msghdr, _zero_copy: bool) {
        self.queued.push((key, fd, msg));
    }

    fn accept(&mut self, key: Key, fd: RawFd) {
        if let Err(e) = sys::epoll::set_nonblocking(fd) {
            let errno = -e.raw_os_error().unwrap_or(libc::EIO);
            self.ready.push(accepted(key, errno, false));
            return;
        }
        self.watch(fd).accept = Some(key);
        self.update(fd);
    }

    fn connect(&mut self, key: Key, fd: RawFd, addr: &sys::RawAddr) {
        match sys::epoll::connect(fd, addr) {
            n if n == -libc::EINPROGRESS => {
                self.watch(fd).connect = Some(key);
                self.update(fd);
            }
            n => self.ready.push(connected(key, n)),
        }
    }

    fn cancel(&mut self, op: Op, key: Key, fd: RawFd) {
        if op == Op::Send {
            if let Some(i) = self.queued.iter().position(|&(k, _, _)| k == key) {
                self.queued.remove(i);
                self.ready.push(sent(key, -libc::ECANCELED));
                return;
            }
        }
        let Some(watch) = self.watched.get_mut(&fd) else {
            // Done already; its completion is on its way.
            tracing::trace!(?op, ?key, fd, "cancel: nothing watched");
            return;
        };
        let completion = match op {
            Op::Recv if watch.recv == Some(key) => {
                watch.recv = None;
                recv_done(key, Received::Failed(-libc::ECANCELED))
            }
            Op::Send if watch.send.is_some_and(|(k, _)| k == key) => {
                watch.send = None;
                sent(key, -libc::ECANCELED)
            }
            Op::Accept if watch.accept == Some(key) => {
                watch.accept = None;
                accepted(key, -libc::ECANCELED, false)
            }
            Op::Connect if watch.connect == Some(key) => {
                watch.connect = None;
                connected(key, -libc::ECANCELED)
            }
            _ => {
                tracing::trace!(?op, ?key, fd, "cancel: nothing pending");
                return;
            }
        };
        self.ready.push(completion);
        self.update(fd);
    }

    fn forget(&mut self, fd: RawFd) {
        if let Some(watch) = self.watched.remove(&fd) {
            if watch.mask != 0 {
                let _ = self.epoll.delete(fd);
            }
            debug_assert!(
                watch.recv.is_none() && watch.send.is_none(),
                "a descriptor was closed with a receive or send pending"
            );
        }
    }

    fn wait(&mut self, plan: Wait, copies: &dyn BufferPool, out: &mut Vec<Completion>) {
        out.append(&mut self.ready);
        let mut queued = std::mem::take(&mut self.queued);
        for (key, fd, msg) in queued.drain(..) {
            if !self.try_send(key, fd, msg, out) {
                self.watch(fd).send = Some((key, msg));
                self.update(fd);
            }
        }
        self.queued = queued;
        out.append(&mut self.ready);
        let timeout = match plan {
            _ if !out.is_empty() => 0,
            Wait::For {
                want,
                timeout: Some(window),
            } if want > 1 => {
                // Coalescing (see `wait`): epoll cannot wait for a number
                // of events, so sleep out the window, waking early only
                // for the mailbox, and take whatever is ready then.
                sys::wait_readable_for(self.waker.raw_fd(), window);
                0
            }
            plan => timeout_ms(plan),
        };
        let mut events = std::mem::take(&mut self.events);
        let n = match self.epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!("epoll_wait failed: {e}");
                0
            }
        };
        for event in &events[..n] {
            let (token, flags) = (event.u64, event.events);
            if token == WAKE {
                sys::eventfd_drain(self.waker.raw_fd());
                continue;
            }
            let fd = token as RawFd;
            let Some(watch) = self.watched.get(&fd) else {
                continue;
            };
            let (recv, accept) = (watch.recv, watch.accept);
            let readable = libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR;
            let writable = libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR;
            if flags & readable as u32 != 0 {
                if let Some(key) = recv {
                    self.receive(fd, key, copies, out);
                }
                if let Some(key) = accept {
                    self.accept_ready(fd, key, out);
                }
            }
            if flags & writable as u32 != 0 {
                self.writable(fd, out);
            }
        }
        self.events = events;
        out.append(&mut self.ready);
    }

    fn finish(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    use zmtp_codec::HeapPool;

    fn driver() -> Epoll {
        let config = ReactorConfig {
            buffer_count: 8,
            buffer_size: 64 * 1024,
            ..ReactorConfig::default()
        };
        Epoll::new(&config, Arc::new(Waker::new().unwrap())).unwrap()
    }

    fn pair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: socketpair writes two fds into a live array.
        let ret =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
        assert_eq!(ret, 0);
        // SAFETY: both were just created and nothing else owns them.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn key(index: u32) -> Key {
        Key {
            index,
            generation: 1,
        }
    }

    /// Waits (up to a second) until `done` says the completions so far are
    /// enough.
    fn run(driver: &mut Epoll, done: impl Fn(&[Completion]) -> bool) -> Vec<Completion> {
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(1);
        while !done(&out) {
            assert!(Instant::now() < deadline, "no completion came: {out:?}");
            let plan = Wait::For {
                want: 1,
                timeout: Some(Duration::from_millis(50)),
            };
            driver.wait(plan, &HeapPool, &mut out);
        }
        out
    }

    struct Message {
        _data: Vec<u8>,
        iov: Box<libc::iovec>,
        msg: Box<libc::msghdr>,
    }

    fn message(len: usize) -> Message {
        let mut data = vec![7u8; len];
        let mut iov = Box::new(libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: len,
        });
        // SAFETY: msghdr is plain old data; all-zero is valid.
        let mut msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msg.msg_iov = &mut *iov;
        msg.msg_iovlen = 1;
        Message {
            _data: data,
            iov,
            msg,
        }
    }

    fn set_sndbuf(fd: RawFd, bytes: i32) {
        // SAFETY: sets a c_int option from a live c_int.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&bytes as *const i32).cast(),
                4,
            )
        };
    }

    #[test]
    fn a_send_the_socket_has_no_room_for_completes_once_the_peer_reads() {
        let mut d = driver();
        let (a, b) = pair();
        set_sndbuf(a.as_raw_fd(), 4096);
        let big = message(1 << 20);
        d.send(key(1), a.as_raw_fd(), &*big.msg, false);
        // The first attempt writes what fits.
        let out = run(&mut d, |out| !out.is_empty());
        let Completion::Sent { result, .. } = out[0] else {
            panic!("{out:?}")
        };
        assert!(
            result > 0 && (result as usize) < big.iov.iov_len,
            "partial: {result}"
        );
        // The rest waits for room (EAGAIN), and completes once the peer reads.
        let rest = message(1 << 20);
        d.send(key(1), a.as_raw_fd(), &*rest.msg, false);
        let mut out = Vec::new();
        let plan = Wait::For {
            want: 1,
            timeout: Some(Duration::from_millis(20)),
        };
        d.wait(plan, &HeapPool, &mut out);
        assert!(out.is_empty(), "no room yet: {out:?}");
        assert!(
            d.watched[&a.as_raw_fd()].send.is_some(),
            "waits for EPOLLOUT"
        );
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0;
            loop {
                // SAFETY: reads into a live buffer of the length given.
                let n = unsafe { libc::read(b.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    return total;
                }
                total += n as usize;
            }
        });
        let out = run(&mut d, |out| !out.is_empty());
        let Completion::Sent { result: second, .. } = out[0] else {
            panic!("{out:?}")
        };
        assert!(second > 0, "{out:?}");
        d.forget(a.as_raw_fd());
        drop(a);
        let total = reader.join().unwrap();
        assert_eq!(total, (result + second) as usize, "every byte sent arrived");
    }

    #[test]
    fn a_peer_that_closes_during_a_partial_write_fails_the_send() {
        let mut d = driver();
        let (a, b) = pair();
        set_sndbuf(a.as_raw_fd(), 4096);
        let big = message(1 << 20);
        d.send(key(1), a.as_raw_fd(), &*big.msg, false);
        let _partial = run(&mut d, |out| !out.is_empty());
        let rest = message(1 << 20);
        d.send(key(1), a.as_raw_fd(), &*rest.msg, false);
        let mut out = Vec::new();
        d.wait(Wait::None, &HeapPool, &mut out);
        assert!(out.is_empty(), "waits for room: {out:?}");
        drop(b);
        let out = run(&mut d, |out| !out.is_empty());
        assert!(
            matches!(out[0], Completion::Sent { result, .. } if result == -libc::EPIPE || result == -libc::ECONNRESET),
            "{out:?}"
        );
        assert!(d.watched[&a.as_raw_fd()].send.is_none());
        d.forget(a.as_raw_fd());
    }

    #[test]
    fn a_receive_stays_armed_until_the_peer_ends_and_a_cancel_says_so() {
        let mut d = driver();
        let (a, b) = pair();
        d.recv(key(2), b.as_raw_fd());
        let hello = message(5);
        d.send(key(1), a.as_raw_fd(), &*hello.msg, false);
        let out = run(&mut d, |out| {
            out.iter().any(|c| matches!(c, Completion::Recv { .. }))
        });
        let data: Vec<_> = out
            .iter()
            .filter_map(|c| match c {
                Completion::Recv {
                    received: Received::Data(bytes, _),
                    armed: true,
                    ..
                } => Some(bytes.len()),
                _ => None,
            })
            .collect();
        assert_eq!(data, [5]);
        // Cancelled: one completion that says so, and nothing is watched.
        d.cancel(Op::Recv, key(2), b.as_raw_fd());
        let out = run(&mut d, |out| !out.is_empty());
        assert!(matches!(
            out[0],
            Completion::Recv {
                received: Received::Failed(e),
                armed: false,
                ..
            } if e == -libc::ECANCELED
        ));
        assert_eq!(d.watched[&b.as_raw_fd()].mask, 0);
        // Armed again, the peer's end ends it.
        d.recv(key(2), b.as_raw_fd());
        drop(a);
        let out = run(&mut d, |out| !out.is_empty());
        assert!(matches!(
            out[0],
            Completion::Recv {
                received: Received::End,
                armed: false,
                ..
            }
        ));
        d.forget(b.as_raw_fd());
    }

    #[test]
    fn a_refused_connect_completes_with_its_error() {
        let mut d = driver();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let fd = sys::stream_socket(libc::AF_INET).unwrap();
        let raw = Box::new(sys::RawAddr::from_socket_addr(&addr));
        d.connect(key(3), fd.as_raw_fd(), &raw);
        let out = run(&mut d, |out| !out.is_empty());
        assert!(
            matches!(out[0], Completion::Connected { result, .. } if result == -libc::ECONNREFUSED),
            "{out:?}"
        );
        d.forget(fd.as_raw_fd());
    }
}
