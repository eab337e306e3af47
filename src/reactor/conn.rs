//! One peer connection on a reactor: its codec session, where it is in its
//! life, its receive and send state, its deadlines, and the service's own
//! state of it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Buf;
use zmtp_codec::{BufferPool, Outbox, Session};

use super::close::CloseReason;
use super::service::{ConnSpec, Origin, Service};
use super::slab::Key;

/// Most iovecs in one `sendmsg` (the kernel's UIO_MAXIOV).
pub(crate) const MAX_IOVECS: usize = 1024;
/// Bytes gathered into one send batch before it is submitted.
pub(crate) const BATCH_BYTES: usize = 4 << 20;

/// Whether a send batch has room for another message.
pub(crate) fn room(session: &mut Session) -> bool {
    session.outbox().chunk_count() < MAX_IOVECS && session.outbox().remaining() < BATCH_BYTES
}

/// Where a connection is in its life. Transitions happen in one place each
/// ([`Conn::linger`], [`Conn::start_closing`]); closing is for good.
#[derive(Debug)]
pub(crate) enum Lifecycle {
    /// Greeting, handshake, then messages: whether the handshake is done
    /// is the session's to say (`is_ready`), so it is not kept here too.
    Open,
    /// Its owner closed: it sends what is queued, then closes, or closes
    /// when `linger_deadline` passes.
    Lingering,
    /// Closing, for this reason; it is freed once the kernel holds nothing
    /// of it.
    Closing(CloseReason),
}

/// A connection on a reactor.
pub(crate) struct Conn<S: Service> {
    pub(crate) key: Key,
    pub(super) fd: OwnedFd,
    pub(crate) spec: Arc<ConnSpec<S>>,
    pub(crate) session: Session,
    /// The peer's address, for log lines.
    pub(crate) peer: String,
    pub(crate) origin: Origin,
    pub(crate) lifecycle: Lifecycle,
    /// It lingered before it began closing (a linger that a connecter
    /// takes over when the connection drops early).
    pub(super) lingered: bool,
    /// The service's state of it.
    pub(crate) svc: S::Conn,
    pub(super) recv_armed: bool,
    /// Not reading: the service cannot take more now (a full queue, a
    /// stalled publisher); it resumes the connection when it can.
    pub(crate) paused: bool,
    /// The peer closed its side; the connection closes once what it sent
    /// is delivered.
    pub(crate) eof: bool,
    /// Bytes received while paused: reading goes on (so the connection has
    /// messages ready when its turn comes) up to a bound.
    pub(super) read_ahead: usize,
    /// Messages and body bytes received since the counters were last
    /// updated: they are added once per batch, not per message.
    pub(crate) unflushed_in: (u64, u64),
    // Send state. `inflight` is taken from the session's outbox and left
    // untouched while the kernel reads from it, so its iovecs stay valid.
    pub(super) inflight: Outbox,
    pub(super) send_in_flight: bool,
    /// A zero-copy send's buffers are held until its notification.
    pub(super) zc_notif_pending: bool,
    /// Bytes a zero-copy send reported, applied when its notification arrives.
    pub(super) zc_sent: usize,
    /// Data messages taken from the service and not yet fully sent.
    pub(crate) batch_messages: usize,
    pub(super) iovecs: Vec<libc::iovec>,
    pub(super) msghdr: libc::msghdr,
    // Deadlines.
    pub(super) handshake_deadline: Option<Instant>,
    pub(super) next_ping: Option<Instant>,
    pub(super) ping_timeout: Option<Instant>,
    pub(super) peer_ttl: Option<Instant>,
    pub(super) linger_deadline: Option<Instant>,
    /// The earliest deadline a timer entry exists for.
    pub(super) timer_at: Option<Instant>,
}

// SAFETY: `msghdr` holds raw pointers into `iovecs` and `inflight`, which the
// Conn owns; a Conn only moves between threads inside a reactor command
// before any send was built.
unsafe impl<S: Service> Send for Conn<S> {}

impl<S: Service> Conn<S> {
    pub(super) fn new(
        key: Key,
        fd: OwnedFd,
        spec: Arc<ConnSpec<S>>,
        peer: String,
        origin: Origin,
        svc: S::Conn,
        buffers: &Arc<dyn BufferPool>,
    ) -> Conn<S> {
        let mut config = spec.session.clone();
        config.buffers = buffers.clone();
        let session = Session::with_mechanism(config, spec.security.mechanism());
        // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
        let msghdr: libc::msghdr = unsafe { std::mem::zeroed() };
        Conn {
            key,
            fd,
            handshake_deadline: spec.opts.handshake_ivl.map(|d| Instant::now() + d),
            spec,
            session,
            peer,
            origin,
            lifecycle: Lifecycle::Open,
            lingered: false,
            svc,
            recv_armed: false,
            paused: false,
            eof: false,
            read_ahead: 0,
            unflushed_in: (0, 0),
            inflight: Outbox::new(),
            send_in_flight: false,
            zc_notif_pending: false,
            zc_sent: 0,
            batch_messages: 0,
            iovecs: Vec::with_capacity(64),
            msghdr,
            next_ping: None,
            ping_timeout: None,
            peer_ttl: None,
            linger_deadline: None,
            timer_at: None,
        }
    }

    pub(super) fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Whether it is closing.
    pub(crate) fn is_closing(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Closing(_))
    }

    /// Why it is closing, once it is.
    pub(crate) fn close_reason(&self) -> Option<&CloseReason> {
        match &self.lifecycle {
            Lifecycle::Closing(reason) => Some(reason),
            _ => None,
        }
    }

    /// Whether its owner closed and it only sends what is left.
    pub(super) fn is_lingering(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Lingering)
    }

    /// The handshake is done: its deadline goes, heartbeats start.
    pub(super) fn handshake_done(&mut self, now: Instant) {
        self.handshake_deadline = None;
        self.next_ping = self.spec.opts.heartbeat_ivl.map(|d| now + d);
    }

    /// Its owner closed: send what is left until `deadline`.
    pub(super) fn linger(&mut self, deadline: Option<Instant>) {
        if !self.is_closing() {
            self.lifecycle = Lifecycle::Lingering;
            self.lingered = true;
            self.linger_deadline = deadline;
        }
    }

    /// Starts closing, unless it already is (the first reason stays).
    pub(super) fn start_closing(&mut self, reason: CloseReason) {
        if !self.is_closing() {
            self.lifecycle = Lifecycle::Closing(reason);
        }
    }

    /// Stops reading for the service (after a bounded read-ahead).
    pub(crate) fn pause(&mut self) {
        if !self.paused {
            self.paused = true;
            self.read_ahead = 0;
        }
    }

    /// Notes the TTL of the peer's PING: it must be heard from within it.
    pub(crate) fn note_ping_ttl(&mut self, ttl_deciseconds: u16) {
        if ttl_deciseconds > 0 {
            let ttl = std::time::Duration::from_millis(u64::from(ttl_deciseconds) * 100);
            self.peer_ttl = Some(Instant::now() + ttl);
        }
    }

    /// Writes what the session's outbox holds now, without waiting, if no
    /// send is in flight: a failing session's last words (an ERROR for a
    /// refused peer) reach the peer before the close. Best effort: a few
    /// bytes into a socket buffer that is normally empty by then.
    pub(super) fn write_outbox_now(&mut self) {
        if self.send_in_flight || self.zc_notif_pending {
            return;
        }
        let outbox = self.session.outbox();
        let mut slices = [std::io::IoSlice::new(&[]); 8];
        let n = outbox.chunks_vectored(&mut slices);
        if n == 0 {
            return;
        }
        // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = slices.as_mut_ptr().cast::<libc::iovec>();
        msg.msg_iovlen = n as _;
        // SAFETY: IoSlice is ABI-compatible with iovec, and the slices
        // borrow the outbox, which outlives the call. The send does not
        // wait: the reactor must never block on a peer that does not read.
        let written = unsafe { crate::sys::epoll::sendmsg(self.fd.as_raw_fd(), &msg) };
        if written > 0 {
            outbox.advance(written as usize);
        }
    }

    /// Adds the messages received since the last call to the counters.
    pub(crate) fn flush_received_counters(&mut self) {
        let (messages, bytes) = std::mem::take(&mut self.unflushed_in);
        if messages > 0 {
            let counters = &self.spec.counters;
            counters.messages_in.fetch_add(messages, Ordering::Relaxed);
            counters.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Takes the session's outbox as the next send and describes it in
    /// `msghdr`. Returns whether any frame reaches the zero-copy threshold;
    /// `None` when there is nothing to send.
    pub(super) fn prepare_send(&mut self) -> Option<bool> {
        if self.session.outbox().is_empty() {
            return None;
        }
        self.inflight = std::mem::take(self.session.outbox());
        Some(self.describe_inflight())
    }

    /// Points `msghdr` at what is left of `inflight`.
    pub(super) fn describe_inflight(&mut self) -> bool {
        // Straight from the outbox's chunks: an IoSlice array of
        // MAX_IOVECS to fill first cost 16 KiB of zeroing per send, which
        // showed in profiles of one small message at a time.
        self.iovecs.clear();
        let mut largest = 0;
        for slice in self.inflight.chunks().take(MAX_IOVECS) {
            largest = largest.max(slice.len());
            // Messages encoded back to back in one arena are contiguous:
            // send a run of them as one iovec.
            if let Some(last) = self.iovecs.last_mut() {
                if (last.iov_base as *const u8).wrapping_add(last.iov_len) == slice.as_ptr() {
                    last.iov_len += slice.len();
                    continue;
                }
            }
            self.iovecs.push(libc::iovec {
                iov_base: slice.as_ptr() as *mut libc::c_void,
                iov_len: slice.len(),
            });
        }
        self.msghdr.msg_iov = self.iovecs.as_mut_ptr();
        self.msghdr.msg_iovlen = self.iovecs.len();
        self.spec
            .opts
            .zerocopy_send_above
            .is_some_and(|threshold| largest >= threshold)
    }

    /// Whether everything queued for the peer has gone to the kernel.
    pub(super) fn send_drained(&mut self) -> bool {
        !self.send_in_flight
            && !self.zc_notif_pending
            && self.session.outbox().is_empty()
            && S::drained(self)
    }

    /// The earliest deadline, if any.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        [
            self.handshake_deadline,
            self.next_ping,
            self.ping_timeout,
            self.peer_ttl,
            self.linger_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Traffic arrived: the peer is alive.
    pub(super) fn heard_from_peer(&mut self) {
        self.ping_timeout = None;
        self.peer_ttl = None;
    }

    /// Whether no operation of this connection is still in the kernel's
    /// hands. A zero-copy notification still to come does not count: the
    /// reactor keeps those buffers after the connection is gone.
    pub(super) fn idle_in_kernel(&self) -> bool {
        !self.recv_armed && !self.send_in_flight
    }
}
