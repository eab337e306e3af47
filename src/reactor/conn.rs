//! One peer connection on a reactor: its codec session, its receive and
//! send state, and its deadlines.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Buf;
use zmtp_codec::{BufferPool, Message, Outbox, Session};

use super::slab::Key;
use super::ConnSpec;
use crate::broker::egress::Lanes;
use crate::socket::pipe::{Outgoing, Pipe};

/// Most iovecs in one `sendmsg` (the kernel's UIO_MAXIOV).
pub(super) const MAX_IOVECS: usize = 1024;
/// Bytes gathered into one send batch before it is submitted.
pub(super) const BATCH_BYTES: usize = 4 << 20;

/// Whether a send batch has room for another message.
fn room(session: &mut Session) -> bool {
    session.outbox().chunk_count() < MAX_IOVECS && session.outbox().remaining() < BATCH_BYTES
}

/// Who opened the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// Accepted on a bound endpoint.
    Accepted,
    /// Made by the connecter with this key.
    Connected(Key),
}

pub(super) struct Conn {
    pub(super) key: Key,
    pub(super) fd: OwnedFd,
    pub(super) spec: Arc<ConnSpec>,
    pub(super) session: Session,
    pub(super) peer: String,
    pub(super) origin: Origin,
    /// The queue from the application; set at the handshake, or from the
    /// start for a connecter's pipe.
    pub(super) pipe: Option<Arc<Pipe>>,
    /// The pipe was announced to the socket (CoreEvent::Up).
    pub(super) announced: bool,
    /// A broker subscriber's lanes (instead of a pipe's messages).
    pub(super) lanes: Option<Lanes>,
    /// A broker connection's id once its handshake is done (0 before).
    pub(super) broker_id: u64,
    pub(super) recv_armed: bool,
    /// Not reading: the onloop queue is full (NODROP).
    pub(super) paused: bool,
    /// The message that did not fit the onloop queue.
    pub(super) held: Option<Message>,
    /// Messages and body bytes received since the socket's counters were
    /// last updated: they are added once per batch, not per message.
    pub(super) unflushed_in: (u64, u64),
    /// Bytes received while paused: reading goes on (so the connection has
    /// messages ready when its turn comes) up to a bound.
    pub(super) read_ahead: usize,
    /// The peer closed its side; close once what it sent is delivered.
    pub(super) eof: bool,
    /// Why the connection is closing, once it is.
    pub(super) closing: Option<super::CloseReason>,
    /// The socket closed; send what is queued, then close.
    pub(super) lingering: bool,
    // Send state. `inflight` is taken from the session's outbox and left
    // untouched while the kernel reads from it, so its iovecs stay valid.
    pub(super) inflight: Outbox,
    pub(super) send_in_flight: bool,
    /// A zero-copy send's buffers are held until its notification.
    pub(super) zc_notif_pending: bool,
    /// Bytes a zero-copy send reported, applied when its notification arrives.
    pub(super) zc_sent: usize,
    /// Data messages taken from the pipe and not yet fully sent.
    pub(super) batch_messages: usize,
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
unsafe impl Send for Conn {}

impl Conn {
    pub(super) fn new(
        key: Key,
        fd: OwnedFd,
        spec: Arc<ConnSpec>,
        peer: String,
        origin: Origin,
        pipe: Option<Arc<Pipe>>,
        buffers: &Arc<dyn BufferPool>,
    ) -> Conn {
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
            pipe,
            announced: false,
            lanes: None,
            broker_id: 0,
            recv_armed: false,
            paused: false,
            held: None,
            unflushed_in: (0, 0),
            read_ahead: 0,
            eof: false,
            closing: None,
            lingering: false,
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
        // borrow the outbox, which outlives the call. MSG_DONTWAIT: the
        // reactor must never block on a peer that does not read.
        let written = unsafe {
            libc::sendmsg(
                self.fd.as_raw_fd(),
                &msg,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if written > 0 {
            outbox.advance(written as usize);
        }
    }

    /// Adds the messages received since the last call to the socket's counters.
    pub(super) fn flush_received_counters(&mut self) {
        let (messages, bytes) = std::mem::take(&mut self.unflushed_in);
        if messages > 0 {
            let counters = &self.spec.socket.counters;
            counters.messages_in.fetch_add(messages, Ordering::Relaxed);
            counters.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Moves queued items from the pipe into the session, up to one batch.
    /// Errors are the session's (a mechanism failing to seal).
    ///
    /// While a send is coming, the pipe stays scheduled: the send's
    /// completion looks at the pipe again, so the socket need not wake this
    /// reactor for every message it queues meanwhile. Only a batch that
    /// finds nothing to send takes the flag down.
    pub(super) fn fill_from_pipe(&mut self) -> zmtp_codec::Result<()> {
        if !self.session.is_ready() {
            return Ok(());
        }
        if let Some(lanes) = &mut self.lanes {
            loop {
                lanes.take_into(&mut self.session, room, &mut self.batch_messages)?;
                if !self.session.outbox().is_empty() || !lanes.unschedule_and_recheck() {
                    return Ok(());
                }
            }
        }
        let Some(pipe) = self.pipe.clone() else {
            return Ok(());
        };
        loop {
            self.take_from_pipe(&pipe)?;
            if !self.session.outbox().is_empty() {
                return Ok(());
            }
            pipe.unschedule();
            // The socket queues, then checks the flag; we lowered the flag,
            // then check the queue (both sequentially consistent): either it
            // saw the flag down and will wake us, or we see its message here.
            if pipe.is_queue_empty() {
                return Ok(());
            }
        }
    }

    fn take_from_pipe(&mut self, pipe: &Pipe) -> zmtp_codec::Result<()> {
        while room(&mut self.session) {
            let Some((action, topic)) = pipe.pop_subscription() else {
                break;
            };
            self.session.send_subscription(action, topic)?;
        }
        let mut reader = pipe.reader();
        while room(&mut self.session) {
            let Some(item) = reader.take() else { break };
            // Counted before the session may refuse it: the slot stays
            // taken until released with the batch (or the connection).
            self.batch_messages += 1;
            match item {
                Outgoing::Wire(m) => self.session.send(m)?,
                Outgoing::Single(body) => self.session.send_frame(body, false)?,
                Outgoing::Frames(frames) => self.session.send_frames(&frames)?,
            }
        }
        Ok(())
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
            && self.pipe.as_ref().is_none_or(|p| p.is_queue_empty())
            && self.lanes.as_ref().is_none_or(|l| l.is_empty())
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
