//! The kernel interface under the reactor: how a receive, a send, an
//! accept or a connect is started, and how its outcome comes back. Two
//! drivers give the same [`Completion`]s:
//!
//! - [`Uring`] (the default and the fast path): operations are io_uring
//!   submissions, multishot receives pick buffers from a registered ring,
//!   sends may be zero-copy;
//! - [`Epoll`] (where io_uring is refused: containers' seccomp profiles,
//!   `kernel.io_uring_disabled`, kernels before 6.0): the reactor makes
//!   the non-blocking calls itself when epoll says a socket is ready, into
//!   the same buffers, with the same ordering.
//!
//! What a driver promises the reactor, whichever it is:
//! - a started receive or accept stays armed (multishot) until it ends
//!   with `armed: false`: cancelled, at the peer's end, on an error, or
//!   for want of buffers;
//! - one completion per send, with the bytes written, then, for a
//!   zero-copy send, a notification;
//! - operations are handed to the kernel when the reactor waits, after it
//!   flushed its mesh: a send queued after a command to another reactor
//!   cannot reach the peer before that command reached its reactor;
//! - the memory an operation points at (a connection's `msghdr`, a
//!   connecter's address) stays put until its completion, which the
//!   reactor guarantees by boxing connections and connecters.

#[allow(unsafe_code)]
mod epoll;
#[allow(unsafe_code)]
mod uring;

use std::os::fd::RawFd;
use std::sync::Arc;

use bytes::Bytes;
use zmtp_codec::BufferPool;

pub(super) use self::epoll::Epoll;
pub(super) use self::uring::{probe_io_uring, Uring};
use super::bufring::BufRing;
use super::config::{ReactorConfig, ReactorError};
use super::slab::{Key, TAG_BITS};
use super::wait::Wait;
use crate::sys;
use crate::sys::waker::Waker;

/// An operation the reactor may cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Recv,
    Send,
    Accept,
    Connect,
}

/// What a receive brought.
#[derive(Debug)]
pub(super) enum Received {
    /// Bytes, as a slice of a receive buffer or a copy (`true`).
    Data(Bytes, bool),
    /// The peer closed its side.
    End,
    /// A negative errno: `-ECANCELED` when the reactor cancelled it,
    /// `-ENOBUFS` when no buffer was free.
    Failed(i32),
}

/// The outcome of an operation, for the connection, listener or connecter
/// at `index` whose generation's [`Key::tag`] is `generation`.
#[derive(Debug)]
pub(super) enum Completion {
    Recv {
        index: u32,
        generation: u32,
        received: Received,
        /// The receive goes on.
        armed: bool,
    },
    Sent {
        index: u32,
        generation: u32,
        /// Bytes written, or a negative errno.
        result: i32,
        /// A zero-copy notification follows.
        notif_follows: bool,
    },
    /// The kernel let go of a zero-copy send's buffers.
    SendNotif { index: u32, generation: u32 },
    Accepted {
        index: u32,
        generation: u32,
        /// The new descriptor, or a negative errno.
        result: i32,
        armed: bool,
    },
    Connected {
        index: u32,
        generation: u32,
        /// 0, or a negative errno.
        result: i32,
    },
}

/// A kernel interface for one reactor thread.
pub(super) trait Driver: Sized + 'static {
    /// Sets up the driver and its receive buffers for one reactor; `waker`
    /// is the reactor's, which the driver waits on with everything else.
    fn new(config: &ReactorConfig, waker: Arc<Waker>) -> Result<Self, ReactorError>;

    /// The receive buffers.
    fn buffers(&mut self) -> &mut BufRing;

    /// Receives from `fd` until cancelled or ended.
    fn recv(&mut self, key: Key, fd: RawFd);

    /// Sends what `msg` describes (zero-copy if asked and supported). `msg`
    /// and what it points at stay valid until the completion.
    fn send(&mut self, key: Key, fd: RawFd, msg: *const libc::msghdr, zero_copy: bool);

    /// Accepts connections on the listening `fd` until cancelled.
    fn accept(&mut self, key: Key, fd: RawFd);

    /// Connects `fd` to `addr`, which stays put until the completion.
    fn connect(&mut self, key: Key, fd: RawFd, addr: &sys::RawAddr);

    /// Cancels `op` of `key` on `fd`; its completion says so (or reports
    /// what it had already done). The caller knows the descriptor, so a
    /// driver that keeps state per descriptor need not search for the key.
    fn cancel(&mut self, op: Op, key: Key, fd: RawFd);

    /// `fd` is about to be closed: nothing of it may stay registered.
    fn forget(&mut self, fd: RawFd);

    /// Hands queued operations to the kernel, waits as `plan` says, and
    /// appends what completed to `out`. Small receives are copied into
    /// `copies`.
    fn wait(&mut self, plan: Wait, copies: &dyn BufferPool, out: &mut Vec<Completion>);

    /// The reactor stops: release what the kernel holds.
    fn finish(&mut self);
}

/// Which driver reactors run on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// io_uring when this kernel and process allow it, else epoll (with a
    /// warning that says why). `ZRING_BACKEND=io_uring|epoll` in the
    /// environment overrides it.
    #[default]
    Auto,
    /// io_uring, or fail to start with the reason.
    IoUring,
    /// epoll, everywhere Linux 4.18 runs.
    Epoll,
}

impl Backend {
    /// The name the command line and config files use.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::IoUring => "io_uring",
            Backend::Epoll => "epoll",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "auto" => Ok(Backend::Auto),
            "io_uring" | "io-uring" | "uring" => Ok(Backend::IoUring),
            "epoll" => Ok(Backend::Epoll),
            other => Err(format!(
                "unknown backend {other:?}: expected auto, io_uring or epoll"
            )),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Completion kinds, in the top byte of a user_data or epoll token.
const OP_WAKE: u64 = 1;
const OP_ACCEPT: u64 = 2;
const OP_RECV: u64 = 3;
const OP_SEND: u64 = 4;
const OP_CONNECT: u64 = 5;
const OP_CANCEL: u64 = 6;

/// A user_data or epoll token: the kind in the top byte, then the key's
/// [`Key::tag`] (all of the generation that fits), then its index.
fn token(kind: u64, key: Key) -> u64 {
    (kind << 56) | (u64::from(key.tag()) << 32) | u64::from(key.index)
}

/// (kind, index, the key's [`Key::tag`]).
fn split_token(token: u64) -> (u64, u32, u32) {
    (token >> 56, token as u32, (token >> 32) as u32 & TAG_BITS)
}

fn op_kind(op: Op) -> u64 {
    match op {
        Op::Recv => OP_RECV,
        Op::Send => OP_SEND,
        Op::Accept => OP_ACCEPT,
        Op::Connect => OP_CONNECT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_carries_the_kind_index_and_tag() {
        let key = Key {
            index: 7,
            generation: (3 << 24) + 9,
        };
        assert_eq!(split_token(token(OP_SEND, key)), (OP_SEND, 7, key.tag()));
        assert_eq!(key.tag(), 9);
    }
}
