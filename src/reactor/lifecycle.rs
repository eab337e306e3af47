//! A connection from its arrival to its end: receiving, handing input to
//! the service, deadlines, closing, and freeing it once the kernel holds
//! nothing of it.

use std::cmp::Reverse;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::close::CloseReason;
use super::conn::Conn;
use super::driver::{Driver, Op, Received};
use super::event_loop::Reactor;
use super::service::{ConnSpec, Origin, Service};
use super::slab::Key;
use super::TimerKey;
use crate::sys;

/// Bytes a paused connection keeps reading before it stops.
const READ_AHEAD: usize = 64 * 1024;

impl<S: Service, D: Driver> Reactor<S, D> {
    pub(super) fn add_conn(
        &mut self,
        fd: OwnedFd,
        spec: Arc<ConnSpec<S>>,
        peer: String,
        origin: Origin,
        link: Option<&S::Link>,
    ) -> Key {
        sys::set_nodelay(fd.as_raw_fd());
        if let Some(bytes) = spec.opts.sndbuf {
            sys::set_buffer_size(fd.as_raw_fd(), true, bytes);
        }
        if let Some(bytes) = spec.opts.rcvbuf {
            sys::set_buffer_size(fd.as_raw_fd(), false, bytes);
        }
        let svc = self.service.new_conn(&spec, link);
        let buffers = &self.copies;
        let key = self
            .conns
            .insert_with(|key| Box::new(Conn::new(key, fd, spec, peer, origin, svc, buffers)));
        if self.shutting_down && origin == Origin::Accepted {
            self.close_conn(key, CloseReason::Shutdown);
            return key;
        }
        self.schedule_timer(key);
        self.arm_recv(key);
        self.pump_send(key); // the greeting
        key
    }

    pub(super) fn arm_recv(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.recv_armed || conn.paused || conn.eof || conn.is_closing() {
            return;
        }
        conn.recv_armed = true;
        let fd = conn.raw_fd();
        self.driver.recv(key, fd);
    }

    /// The service resumed a connection: read again, or, at its end, close.
    pub(super) fn receive_again(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.eof && !conn.paused {
            self.close_conn(key, CloseReason::PeerClosed);
        } else {
            self.arm_recv(key);
        }
    }

    pub(super) fn on_recv(&mut self, index: u32, generation: u32, received: Received, armed: bool) {
        // Bytes for a connection that is gone or closing are dropped here,
        // which gives their buffer back.
        let Some((key, conn)) = self.conns.find_mut(index, generation) else {
            return;
        };
        if !armed {
            conn.recv_armed = false;
        }
        match received {
            Received::Data(_, _) if conn.is_closing() => {}
            Received::Data(bytes, copied) => {
                let len = bytes.len();
                if copied {
                    conn.spec
                        .counters
                        .copied_small_bytes
                        .fetch_add(len as u64, Ordering::Relaxed);
                }
                conn.heard_from_peer();
                conn.session.feed(bytes);
                if !conn.paused {
                    self.process(key);
                } else {
                    // A paused connection delivers in its turn, when the
                    // service resumes it; it reads ahead up to a bound,
                    // then stops, so TCP pushes back on the peer.
                    conn.read_ahead += len;
                    if conn.read_ahead > READ_AHEAD && conn.recv_armed {
                        let fd = conn.raw_fd();
                        self.driver.cancel(Op::Recv, key, fd);
                    }
                }
            }
            Received::End if !conn.session.is_ready() && !conn.spec.security.is_null() => {
                // libzmq closes without a word when our greeting names
                // another mechanism, or when it refuses our CURVE key.
                let mechanism = conn.spec.security.name();
                let counters = &conn.spec.counters;
                counters.security_failures.fetch_add(1, Ordering::Relaxed);
                self.close_conn(key, CloseReason::PeerClosedDuringHandshake { mechanism });
            }
            Received::End => {
                // Deliver what the peer sent before it closed: a paused
                // connection still holds decoded messages.
                conn.eof = true;
                if !conn.paused {
                    self.close_conn(key, CloseReason::PeerClosed);
                }
            }
            Received::Failed(errno) if errno == -libc::ENOBUFS => {
                tracing::debug!(reactor = self.id, "receive buffers exhausted");
                let bufs = self.driver.buffers();
                bufs.set_starved(true);
                self.starved.push(key);
                // Buffers may have come back between the failure and now,
                // or have been pushed before this completion was reaped (at
                // the top of the loop, when nothing was starved yet): if
                // none came back after that, nothing would wake this
                // connection again.
                if bufs.recycle() > 0 || bufs.may_have_free() {
                    bufs.set_starved(false);
                    for key in std::mem::take(&mut self.starved) {
                        self.arm_recv(key);
                    }
                }
                return;
            }
            Received::Failed(errno) if errno == -libc::ECANCELED => {}
            Received::Failed(errno) => {
                let error = io::Error::from_raw_os_error(-errno);
                let reason = CloseReason::Io {
                    operation: "receive",
                    error,
                };
                self.close_conn(key, reason);
            }
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.is_closing() {
            self.try_finish(key);
        } else if !conn.recv_armed && !conn.paused && !conn.eof {
            self.arm_recv(key);
        }
    }

    /// The connection's session has input: the service delivers it; then
    /// what was received is counted, the deadlines set, and what the
    /// service queued (or the session answered) is sent.
    pub(super) fn process(&mut self, key: Key) {
        if self.conns.get_mut(key).is_none_or(|c| c.is_closing()) {
            return;
        }
        self.with_service(|service, io| service.on_input(io, key));
        if let Some(conn) = self.conns.get_mut(key) {
            conn.flush_received_counters();
        }
        self.schedule_timer(key);
        self.pump_send(key);
    }

    /// The service saw the handshake finish.
    pub(super) fn handshake_done(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.handshake_done(Instant::now());
        conn.spec
            .counters
            .handshakes
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            peer = %conn.peer,
            version = conn.session.peer().map(|p| p.version_text()),
            "handshake done"
        );
        if let Origin::Connected(ck) = conn.origin {
            if let Some(c) = self.connecters.get_mut(ck) {
                c.ivl = c.spec.opts.reconnect_ivl;
            }
        }
        self.schedule_timer(key);
    }

    /// A session failed: counts it (a refused or broken PLAIN/CURVE
    /// handshake apart from other protocol errors), sends what the session
    /// queued last (a refused peer's ERROR), and closes.
    pub(super) fn session_failed(&mut self, key: Key, error: zmtp_codec::Error) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let reason = failure_reason(conn, error);
        conn.write_outbox_now();
        self.close_conn(key, reason);
    }

    /// Starts closing a connection; it is freed once the kernel holds
    /// nothing of it.
    pub(super) fn close_conn(&mut self, key: Key, reason: CloseReason) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.is_closing() {
            return;
        }
        conn.flush_received_counters();
        if !S::LOG_CLOSES {
            // The service logs each disconnect once, when it is complete.
        } else if reason.is_quiet() {
            tracing::debug!(peer = %conn.peer, "closing: {reason}");
        } else if reason.is_refusal() {
            super::refusals::refused(
                &conn.peer,
                None,
                super::refusals::Refusal::Security,
                &reason,
            );
        } else {
            tracing::warn!(peer = %conn.peer, "connection closed: {reason}");
        }
        conn.start_closing(reason);
        self.with_service(|service, io| service.on_closing(io, key));
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        // Pending operations complete promptly.
        let fd = conn.raw_fd();
        sys::shutdown(fd);
        if conn.recv_armed {
            self.driver.cancel(Op::Recv, key, fd);
        }
        if conn.send_in_flight {
            self.driver.cancel(Op::Send, key, fd);
        }
        self.try_finish(key);
    }

    /// Frees a closing connection once the kernel holds nothing of it.
    pub(super) fn try_finish(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.is_closing() || !conn.idle_in_kernel() {
            return;
        }
        if conn.zc_notif_pending {
            // The kernel accepted these bytes; only its hold on the pages
            // is outstanding, which can last until TCP gives up on a dead
            // peer. Count them sent and keep the buffers aside instead of
            // keeping the connection (and its reconnect) waiting.
            let sent = std::mem::take(&mut conn.zc_sent);
            let done = conn.inflight.messages_completed_by(sent) as usize;
            conn.batch_messages -= done;
            let counters = &conn.spec.counters;
            counters.bytes_out.fetch_add(sent as u64, Ordering::Relaxed);
            counters
                .messages_out
                .fetch_add(done as u64, Ordering::Relaxed);
            let buffers = std::mem::take(&mut conn.inflight);
            // Under the tag: the notification carries no more of the key.
            self.zc_orphans.insert((key.index, key.tag()), buffers);
            if done > 0 {
                self.with_service(|service, io| service.on_sent(io, key, done));
            }
        }
        let mut conn = self.conns.remove(key).expect("present");
        self.driver.forget(conn.raw_fd());
        conn.spec
            .counters
            .disconnects
            .fetch_add(1, Ordering::Relaxed);
        let connecter = match conn.origin {
            Origin::Connected(ck) => Some(ck),
            Origin::Accepted => None,
        };
        let reconnects = connecter
            .and_then(|ck| self.connecters.get_mut(ck))
            .is_some_and(|c| !c.closing);
        self.with_service(|service, io| service.on_gone(io, &mut conn, reconnects));
        // A connection lingering for a closed owner that drops before its
        // deadline hands the rest of the linger to its connecter.
        let linger_left = conn
            .lingered
            .then_some(conn.linger_deadline)
            .filter(|d| d.is_none_or(|d| d > Instant::now()));
        drop(conn);
        if let Some(ck) = connecter {
            self.connection_gone(ck, linger_left);
        }
    }

    /// The owner `owner` (every owner: None) was closed: its listeners
    /// close, its connecters stop (lingering where messages wait), and its
    /// connections close, or linger while they have messages to send.
    pub(super) fn close_owner(&mut self, owner: Option<u64>) {
        self.close_listeners(owner);
        self.close_connecters(owner);
        let now = Instant::now();
        for key in self.conns.keys() {
            let conn = self.conns.get_mut(key).expect("listed");
            if owner.is_some_and(|o| conn.spec.owner != o) || conn.is_lingering() {
                continue;
            }
            let linger = conn.spec.opts.linger;
            if linger == Some(Duration::ZERO) || !conn.session.is_ready() && S::drained(conn) {
                self.close_conn(key, CloseReason::SocketClosed);
                continue;
            }
            conn.linger(linger.map(|d| now + d));
            if conn.send_drained() {
                self.close_conn(key, CloseReason::SocketClosed);
            } else {
                self.schedule_timer(key);
                self.pump_send(key);
            }
        }
    }

    // ---- deadlines ----

    pub(super) fn schedule_timer(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(next) = conn.next_deadline() else {
            return;
        };
        if conn
            .timer_at
            .is_some_and(|at| at <= next && at > Instant::now())
        {
            return;
        }
        conn.timer_at = Some(next);
        self.timers.push(Reverse((next, TimerKey::Conn(key))));
    }

    pub(super) fn conn_timer(&mut self, key: Key, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.timer_at.is_some_and(|at| at <= now) {
            conn.timer_at = None;
        }
        if conn.is_closing() {
            return;
        }
        let due = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        let reason = if due(conn.handshake_deadline) {
            Some(CloseReason::HandshakeTimeout)
        } else if due(conn.ping_timeout) && !conn.paused {
            Some(CloseReason::HeartbeatTimeout)
        } else if due(conn.peer_ttl) && !conn.paused {
            Some(CloseReason::PeerTtlExpired)
        } else if due(conn.linger_deadline) {
            Some(CloseReason::LingerExpired)
        } else {
            None
        };
        if let Some(reason) = reason {
            if reason.is_timeout() {
                // Counted before the close, so the peer seeing its socket
                // shut means the counter already moved.
                let counters = &conn.spec.counters;
                counters.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            self.close_conn(key, reason);
            return;
        }
        if due(conn.next_ping) {
            let opts = &conn.spec.opts;
            conn.next_ping = opts.heartbeat_ivl.map(|d| now + d);
            if conn.ping_timeout.is_none() {
                conn.ping_timeout = opts.heartbeat_timeout.map(|d| now + d);
            }
            let ttl = opts.heartbeat_ttl.as_millis() as u64;
            if conn.session.send_ping(ttl, bytes::Bytes::new()).is_ok() {
                self.pump_send(key);
            }
        }
        self.schedule_timer(key);
    }
}

/// Why a failed session closes, counted: a refused or broken PLAIN/CURVE
/// handshake apart from other protocol errors.
fn failure_reason<S: Service>(conn: &Conn<S>, error: zmtp_codec::Error) -> CloseReason {
    let counters = &conn.spec.counters;
    if crate::security::is_security_failure(&error) {
        counters.security_failures.fetch_add(1, Ordering::Relaxed);
        CloseReason::Security {
            mechanism: conn.spec.security.name(),
            error,
        }
    } else {
        counters.protocol_errors.fetch_add(1, Ordering::Relaxed);
        CloseReason::Protocol {
            error,
            during_handshake: !conn.session.is_ready(),
        }
    }
}
