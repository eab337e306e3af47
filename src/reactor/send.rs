//! The send path: one `sendmsg` in flight per connection, carrying as much
//! of what the service queued as one batch holds; zero-copy for batches
//! with a large frame.

use std::io;
use std::sync::atomic::Ordering;

use bytes::Buf;

use super::close::CloseReason;
use super::driver::Driver;
use super::event_loop::Reactor;
use super::service::Service;
use super::slab::Key;

impl<S: Service, D: Driver> Reactor<S, D> {
    /// Sends what is queued for the peer, if no send is in flight.
    pub(super) fn pump_send(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.send_in_flight || conn.zc_notif_pending || conn.is_closing() {
            return;
        }
        // Until the handshake is done, only the session's own greeting
        // and handshake go out.
        if conn.session.is_ready() {
            if let Err(e) = S::fill(conn) {
                self.close_conn(key, CloseReason::Encode(e));
                return;
            }
        }
        let Some(zero_copy) = conn.prepare_send() else {
            if conn.is_lingering() && conn.send_drained() {
                self.close_conn(key, CloseReason::SocketClosed);
            }
            return;
        };
        self.submit_send(key, zero_copy);
    }

    fn submit_send(&mut self, key: Key, zero_copy: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.send_in_flight = true;
        let (fd, msg) = (conn.raw_fd(), &conn.msghdr as *const libc::msghdr);
        self.driver.send(key, fd, msg, zero_copy);
    }

    /// The kernel let go of a zero-copy send's buffers.
    pub(super) fn on_send_notif(&mut self, index: u32, generation: u32) {
        let Some((_, conn)) = self.conns.find_mut(index, generation) else {
            // A closed connection's buffers, kept aside until now.
            self.zc_orphans.remove(&(index, generation));
            return;
        };
        conn.zc_notif_pending = false;
        let sent = std::mem::take(&mut conn.zc_sent);
        self.sent(index, generation, sent);
    }

    /// A send completed: `result` bytes went to the kernel (or a negative
    /// errno); `notif_follows`: a zero-copy send's buffers are still held.
    pub(super) fn on_sent(
        &mut self,
        index: u32,
        generation: u32,
        result: i32,
        notif_follows: bool,
    ) {
        let Some((key, conn)) = self.conns.find_mut(index, generation) else {
            return;
        };
        conn.send_in_flight = false;
        if result < 0 {
            conn.zc_notif_pending = notif_follows;
            let error = io::Error::from_raw_os_error(-result);
            self.close_conn(
                key,
                CloseReason::Io {
                    operation: "send",
                    error,
                },
            );
            self.try_finish(key);
            return;
        }
        if notif_follows {
            conn.zc_notif_pending = true;
            conn.zc_sent = result as usize;
            return;
        }
        self.sent(index, generation, result as usize);
    }

    fn sent(&mut self, index: u32, generation: u32, sent: usize) {
        let Some((key, conn)) = self.conns.find_mut(index, generation) else {
            return;
        };
        // Counted first, also on a closing connection: what the kernel took
        // was sent, not lost with the connection.
        conn.inflight.advance(sent);
        let counters = &conn.spec.counters;
        counters.bytes_out.fetch_add(sent as u64, Ordering::Relaxed);
        let done = conn.inflight.take_completed_messages() as usize;
        if done > 0 {
            conn.batch_messages -= done;
            counters
                .messages_out
                .fetch_add(done as u64, Ordering::Relaxed);
            self.with_service(|service, io| service.on_sent(io, key, done));
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.is_closing() {
            self.try_finish(key);
        } else if conn.inflight.remaining() > 0 {
            let zero_copy = conn.describe_inflight();
            self.submit_send(key, zero_copy);
        } else {
            self.pump_send(key);
        }
    }
}
