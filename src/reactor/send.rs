//! The send path: one `sendmsg` in flight per connection, carrying as much
//! of what the service queued as one batch holds; zero-copy for batches
//! with a large frame.

use std::io;
use std::sync::atomic::Ordering;

use bytes::Buf;
use io_uring::{cqueue, opcode, types};

use super::close::CloseReason;
use super::driver::Reactor;
use super::service::Service;
use super::slab::Key;
use super::{user_data, OP_SEND};

impl<S: Service> Reactor<S> {
    /// Sends what is queued for the peer, if no send is in flight.
    pub(super) fn pump_send(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.send_in_flight || conn.zc_notif_pending || conn.is_closing() {
            return;
        }
        if let Err(e) = S::fill(conn) {
            self.close_conn(key, CloseReason::Encode(e));
            return;
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
        let fd = types::Fd(conn.raw_fd());
        let msg = &conn.msghdr as *const libc::msghdr;
        let entry = if zero_copy {
            opcode::SendMsgZc::new(fd, msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        } else {
            opcode::SendMsg::new(fd, msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        };
        conn.send_in_flight = true;
        self.push(entry.user_data(user_data(OP_SEND, key)));
    }

    pub(super) fn on_send(&mut self, index: u32, generation: u32, res: i32, flags: u32) {
        let Some((key, conn)) = self.conns.find_mut(index, generation) else {
            if cqueue::notif(flags) {
                // The kernel let go of a closed connection's buffers.
                self.zc_orphans.remove(&(index, generation));
            }
            return;
        };
        let sent = if cqueue::notif(flags) {
            // The kernel is done with a zero-copy send's buffers.
            conn.zc_notif_pending = false;
            std::mem::take(&mut conn.zc_sent)
        } else {
            conn.send_in_flight = false;
            if res < 0 {
                conn.zc_notif_pending = cqueue::more(flags);
                let error = io::Error::from_raw_os_error(-res);
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
            if cqueue::more(flags) {
                conn.zc_notif_pending = true;
                conn.zc_sent = res as usize;
                return;
            }
            res as usize
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
