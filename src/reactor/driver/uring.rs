//! The io_uring driver: each operation is a submission; receives and
//! accepts are multishot, receives pick their buffers from a registered
//! ring, large sends are zero-copy.

use std::os::fd::RawFd;
use std::sync::Arc;

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use zmtp_codec::BufferPool;

use super::{
    op_kind, split_token, token, Completion, Driver, Op, Received, OP_ACCEPT, OP_CANCEL,
    OP_CONNECT, OP_RECV, OP_SEND, OP_WAKE,
};
use crate::reactor::bufring::BufRing;
use crate::reactor::config::{build_ring, check_kernel, ReactorConfig, ReactorError};
use crate::reactor::slab::Key;
use crate::reactor::wait::Wait;
use crate::sys;
use crate::sys::waker::Waker;

pub(in crate::reactor) struct Uring {
    ring: IoUring,
    bufs: BufRing,
    waker: Arc<Waker>,
    /// Where the read of the waker's eventfd lands.
    wake_buf: Box<u64>,
    /// Completions copied out of the ring before they are interpreted.
    raw: Vec<(u64, i32, u32)>,
}

impl Uring {
    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: every entry points at memory owned by a Conn, Listener,
            // Connecter or this driver, which lives until the operation's
            // last completion arrives.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                tracing::error!("io_uring submit failed: {e}");
            }
        }
    }

    fn arm_wake(&mut self) {
        let fd = self.waker.raw_fd();
        let buf = (&mut *self.wake_buf as *mut u64).cast::<u8>();
        let entry = opcode::Read::new(types::Fd(fd), buf, 8)
            .build()
            .user_data(OP_WAKE << 56);
        self.push(entry);
    }

    fn interpret(
        &mut self,
        (ud, res, flags): (u64, i32, u32),
        copies: &dyn BufferPool,
        out: &mut Vec<Completion>,
    ) {
        let (kind, index, generation) = split_token(ud);
        let completion = match kind {
            OP_WAKE => {
                self.arm_wake();
                return;
            }
            OP_CANCEL => return,
            OP_RECV => {
                let received = if res > 0 {
                    let bid =
                        cqueue::buffer_select(flags).expect("a receive with data names its buffer");
                    let more = cqueue::buffer_more(flags);
                    let (bytes, copied) = self.bufs.take(bid, res as usize, more, copies);
                    Received::Data(bytes, copied)
                } else {
                    if let Some(bid) = cqueue::buffer_select(flags) {
                        self.bufs.put_back(bid);
                    }
                    if res == 0 {
                        Received::End
                    } else {
                        Received::Failed(res)
                    }
                };
                Completion::Recv {
                    index,
                    generation,
                    received,
                    armed: cqueue::more(flags),
                }
            }
            OP_SEND if cqueue::notif(flags) => Completion::SendNotif { index, generation },
            OP_SEND => Completion::Sent {
                index,
                generation,
                result: res,
                notif_follows: cqueue::more(flags),
            },
            OP_ACCEPT => Completion::Accepted {
                index,
                generation,
                result: res,
                armed: cqueue::more(flags),
            },
            OP_CONNECT => Completion::Connected {
                index,
                generation,
                result: res,
            },
            _ => {
                tracing::error!(ud, "completion of unknown kind");
                return;
            }
        };
        out.push(completion);
    }
}

impl Driver for Uring {
    fn new(config: &ReactorConfig, waker: Arc<Waker>) -> Result<Uring, ReactorError> {
        let ring = build_ring(config.ring_entries)?;
        let bufs = BufRing::new(
            Some(&ring),
            0,
            config.buffer_count,
            config.buffer_size,
            config.copy_below,
            config.incremental_buffers,
            waker.clone(),
        )
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL) => ReactorError::Unavailable {
                detail: format!(
                    "registering a provided-buffer ring failed ({e}); zring's io_uring \
                     driver needs Linux 6.0 or later"
                ),
            },
            _ => ReactorError::Setup(e),
        })?;
        let mut driver = Uring {
            ring,
            bufs,
            waker,
            wake_buf: Box::new(0),
            raw: Vec::with_capacity(1024),
        };
        driver.arm_wake();
        Ok(driver)
    }

    fn buffers(&mut self) -> &mut BufRing {
        &mut self.bufs
    }

    fn recv(&mut self, key: Key, fd: RawFd) {
        let entry = opcode::RecvMulti::new(types::Fd(fd), self.bufs.group())
            .build()
            .user_data(token(OP_RECV, key));
        self.push(entry);
    }

    fn send(&mut self, key: Key, fd: RawFd, msg: *const libc::msghdr, zero_copy: bool) {
        let fd = types::Fd(fd);
        let flags = libc::MSG_NOSIGNAL as u32;
        let entry = if zero_copy {
            opcode::SendMsgZc::new(fd, msg).flags(flags).build()
        } else {
            opcode::SendMsg::new(fd, msg).flags(flags).build()
        };
        self.push(entry.user_data(token(OP_SEND, key)));
    }

    fn accept(&mut self, key: Key, fd: RawFd) {
        let entry = opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(token(OP_ACCEPT, key));
        self.push(entry);
    }

    fn connect(&mut self, key: Key, fd: RawFd, addr: &sys::RawAddr) {
        let entry = opcode::Connect::new(types::Fd(fd), addr.as_ptr(), addr.len())
            .build()
            .user_data(token(OP_CONNECT, key));
        self.push(entry);
    }

    fn cancel(&mut self, op: Op, key: Key, _fd: RawFd) {
        let entry = opcode::AsyncCancel::new(token(op_kind(op), key))
            .build()
            .user_data(OP_CANCEL << 56);
        self.push(entry);
    }

    fn forget(&mut self, _fd: RawFd) {}

    fn wait(&mut self, plan: Wait, copies: &dyn BufferPool, out: &mut Vec<Completion>) {
        let result = match plan {
            Wait::None => self.ring.submit(),
            Wait::For {
                want,
                timeout: Some(t),
            } => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(want as usize, &args)
            }
            Wait::For {
                want,
                timeout: None,
            } => self.ring.submit_and_wait(want as usize),
        };
        if let Err(e) = result {
            if !matches!(
                e.raw_os_error(),
                Some(libc::ETIME | libc::EINTR | libc::EBUSY)
            ) {
                tracing::error!("io_uring_enter failed: {e}");
            }
        }
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        raw.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &cqe in &raw {
            self.interpret(cqe, copies, out);
        }
        self.raw = raw;
    }

    fn finish(&mut self) {
        self.bufs.unregister(&self.ring);
    }
}

/// Tries what the io_uring driver needs: a kernel of 6.0 or later, a ring
/// (io_uring_setup), a provided-buffer ring (io_uring_register) and a
/// submission (io_uring_enter); seccomp may refuse any of them.
pub(in crate::reactor) fn probe_io_uring() -> Result<(), ReactorError> {
    check_kernel()?;
    let mut ring = build_ring(8)?;
    let waker = Arc::new(Waker::new()?);
    let mut bufs = BufRing::new(Some(&ring), 0, 1, 4096, 0, false, waker).map_err(|e| {
        ReactorError::Unavailable {
            detail: format!(
                "registering a provided-buffer ring failed ({e}): seccomp refuses \
                 io_uring_register, or the kernel lacks buffer rings (Linux 5.19)"
            ),
        }
    })?;
    let nop = io_uring::opcode::Nop::new().build().user_data(0);
    // SAFETY: a no-op points at no memory.
    let pushed = unsafe { ring.submission().push(&nop) }.is_ok();
    let entered = ring.submit_and_wait(usize::from(pushed));
    bufs.unregister(&ring);
    entered.map_err(|e| ReactorError::Unavailable {
        detail: format!("io_uring_enter was refused ({e}): a seccomp profile blocks it"),
    })?;
    Ok(())
}
