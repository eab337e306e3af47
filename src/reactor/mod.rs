//! The io_uring reactor: one thread per configured core, each owning a
//! ring, its connections, its receive buffers and its timers.
//!
//! - Listeners use multishot accept; accepted connections are spread over
//!   all reactors (a reactor hands a connection to another through the mesh).
//! - Each connection has one multishot receive that picks buffers from the
//!   reactor's provided-buffer ring; received data is fed to the codec as
//!   `Bytes` slices of those buffers.
//! - Each connection has at most one `sendmsg` in flight, carrying as many
//!   queued messages as fit (iovecs over headers and the messages' own
//!   buffers); batches with a large frame use zero-copy send.
//! - Deadlines (handshake, heartbeats, reconnect, linger) are kept in a heap
//!   and bound the wait in `io_uring_enter`.
//! - Work from other threads arrives in the reactor's mailbox: one
//!   single-producer ring per other reactor (the mesh) and one queue for
//!   application threads, with an eventfd wake-up paid only when the
//!   reactor sleeps.

mod broker;
pub(crate) mod bufring;
mod close;
mod conn;
mod copy_pool;
mod slab;
mod wait;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Buf;
use crossbeam_queue::{ArrayQueue, SegQueue};
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use zmtp_codec::{BufferPool, Event, Message, SessionConfig, SubscriptionAction};

use self::bufring::{BufRing, SessionBuffers};
pub(crate) use self::close::CloseReason;
use self::conn::{Conn, Origin};
use self::copy_pool::CopyPool;
use self::slab::{Key, Slab};
use crate::broker::shard::Shard;
use crate::broker::{BrokerCommand, BrokerRole, BrokerShared};
use crate::onloop::Offer;
use crate::socket::options::{SocketKind, SocketOptions};
use crate::socket::pipe::{Pipe, NO_CONN};
use crate::socket::shared::{CoreEvent, SocketShared};
use crate::sys;
use crate::sys::waker::Waker;

/// How reactors are set up.
#[derive(Debug, Clone)]
pub struct ReactorConfig {
    /// Cores to pin reactor threads to, one thread per entry; `None` entries
    /// are not pinned.
    pub cores: Vec<Option<usize>>,
    /// Submission queue entries per ring.
    pub ring_entries: u32,
    /// Receive buffers per reactor (a power of two).
    pub buffer_count: u16,
    /// Size of one receive buffer.
    pub buffer_size: usize,
    /// Receives smaller than this are copied and their buffer returned at
    /// once, so slow consumers of small messages cannot pin the pool.
    pub copy_below: usize,
    /// Register the receive ring with `IOU_PBUF_RING_INC` (Linux 6.12;
    /// ignored before): a receive takes only the bytes it fills, so large
    /// buffers waste nothing, and a message that two receives brought lies
    /// in one piece of memory, which the session then takes without a copy.
    pub incremental_buffers: bool,
    /// Interrupt-style coalescing (None: off; at most [`MAX_COALESCE`]). A
    /// reactor that has just had completions sleeps until this much time
    /// has passed or a batch of completions waits, instead of waking for
    /// the first; each receive then takes all that arrived meanwhile. While
    /// traffic flows, every event may wait up to this long, commands from
    /// application threads (sends, closes, shutdown) included; when idle it
    /// costs nothing: the first event after a quiet spell is served at
    /// once. For throughput paths such as the logger's ingest, not for the
    /// broker. It relies on the kernel deferring poll-driven receives until
    /// the reactor wakes (deferred task work, lazy wake-ups: recent 6.x);
    /// where it does not, the wait is still bounded but saves less.
    pub coalesce: Option<Duration>,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        ReactorConfig {
            cores: vec![None],
            ring_entries: 1024,
            buffer_count: 256,
            buffer_size: 64 * 1024,
            copy_below: 2048,
            incremental_buffers: false,
            coalesce: None,
        }
    }
}

/// The longest coalescing window accepted ([`ReactorConfig::coalesce`]).
/// Beyond a few milliseconds nothing more is saved, commands wait as long,
/// and TCP's receive window fills while the reactor sleeps.
pub const MAX_COALESCE: Duration = Duration::from_millis(100);

/// Why reactors could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReactorError {
    /// io_uring is missing or forbidden here.
    #[error("io_uring is not available: {detail}")]
    Unavailable {
        /// The cause and what to do about it.
        detail: String,
    },
    /// Any other setup failure.
    #[error("cannot start a reactor: {0}")]
    Setup(#[from] io::Error),
}

/// Everything a connection needs from its socket.
#[derive(Debug)]
pub(crate) struct ConnSpec {
    pub(crate) socket: Arc<SocketShared>,
    pub(crate) opts: SocketOptions,
    pub(crate) session: SessionConfig,
    /// Set for the broker's connections, which are served by the reactor's
    /// broker part instead of an application's socket.
    pub(crate) broker: Option<BrokerRole>,
    /// The mechanism each connection runs, and for servers who may connect.
    pub(crate) security: crate::security::Security,
}

/// Where a connecter connects.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Tcp(SocketAddr),
    Ipc(PathBuf),
}

impl Target {
    fn raw(&self) -> io::Result<sys::RawAddr> {
        match self {
            Target::Tcp(a) => Ok(sys::RawAddr::from_socket_addr(a)),
            Target::Ipc(p) => sys::RawAddr::from_path(p),
        }
    }
}

/// Work for a reactor.
pub(crate) enum Command {
    /// Serve a bound listening socket.
    Listen {
        spec: Arc<ConnSpec>,
        fd: OwnedFd,
        name: String,
    },
    /// Serve a connection another reactor accepted.
    Adopt {
        spec: Arc<ConnSpec>,
        fd: OwnedFd,
        peer: String,
    },
    /// Connect (and keep reconnecting) to `targets`.
    Connect {
        spec: Arc<ConnSpec>,
        targets: Vec<Target>,
        pipe: Option<Arc<Pipe>>,
        name: String,
    },
    /// The application queued items on this pipe.
    PipeReady(Arc<Pipe>),
    /// The socket's onloop queue has room again.
    Resume(u64),
    /// The socket was closed: linger, then close its connections.
    CloseSocket(u64),
    /// Close the socket's listeners; its connections stay.
    StopAccepting(u64),
    /// Close everything and exit once lingering connections are done.
    Shutdown,
    /// This reactor serves (part of) a broker. The reactor answers on
    /// `done` once its part exists: the broker starts listening only then,
    /// because a connection adopted from another reactor, or a broker
    /// command, may otherwise reach a reactor before this command does (the
    /// mesh is drained before the external queue) and find no broker there.
    BrokerInit {
        shared: Arc<BrokerShared>,
        done: std::sync::mpsc::Sender<()>,
    },
    /// Work for the reactor's broker part.
    Broker(BrokerCommand),
    /// Tests: block this reactor for a while.
    #[cfg(test)]
    Stall(Duration),
    /// Tests: send `count` [`Command::Count`]s to reactor `target` at once.
    #[cfg(test)]
    Flood {
        target: usize,
        count: usize,
        seen: Arc<std::sync::atomic::AtomicU64>,
    },
    /// Tests: count one arrival.
    #[cfg(test)]
    Count(Arc<std::sync::atomic::AtomicU64>),
}

/// Capacity of each single-producer ring between two reactors.
const MESH_RING: usize = 1024;

/// How soon a reactor retries commands that found a mesh ring full.
const MESH_RETRY: Duration = Duration::from_micros(100);

/// A reactor's inbound work: one ring per other reactor, one queue for
/// everyone else.
pub(crate) struct Mailbox {
    mesh: Vec<ArrayQueue<Command>>,
    external: SegQueue<Command>,
    waker: Arc<Waker>,
}

impl Mailbox {
    /// Posts work from a thread that is not a reactor.
    pub(crate) fn post(&self, command: Command) {
        self.external.push(command);
        self.waker.wake();
    }

    fn has_work(&self) -> bool {
        !self.external.is_empty() || self.mesh.iter().any(|q| !q.is_empty())
    }
}

/// The running reactors of a context.
pub(crate) struct Reactors {
    mailboxes: Arc<[Arc<Mailbox>]>,
    threads: Vec<JoinHandle<()>>,
}

impl Reactors {
    /// Starts one reactor per entry of `config.cores`, each building its ring
    /// on its own thread (a single-issuer ring belongs to its creator).
    pub(crate) fn start(config: &ReactorConfig) -> Result<Reactors, ReactorError> {
        check_kernel()?;
        if let Some(window) = config.coalesce.filter(|&w| w > MAX_COALESCE) {
            return Err(ReactorError::Setup(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the coalescing window must be at most {MAX_COALESCE:?}, not {window:?}: \
                     every event waits up to that long"
                ),
            )));
        }
        let n = config.cores.len().max(1);
        let mailboxes: Vec<Arc<Mailbox>> = (0..n)
            .map(|_| {
                Ok(Arc::new(Mailbox {
                    mesh: (0..n).map(|_| ArrayQueue::new(MESH_RING)).collect(),
                    external: SegQueue::new(),
                    waker: Arc::new(Waker::new()?),
                }))
            })
            .collect::<io::Result<_>>()?;
        let mailboxes: Arc<[Arc<Mailbox>]> = mailboxes.into();
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for id in 0..n {
            let mailboxes = mailboxes.clone();
            let config = config.clone();
            let core = config.cores.get(id).copied().flatten();
            let ready_tx = ready_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("zring-reactor-{id}"))
                .spawn(move || {
                    if let Some(core) = core {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                            tracing::warn!(reactor = id, core, "could not pin reactor thread");
                        }
                    }
                    match Reactor::new(id, &config, mailboxes) {
                        Ok(mut reactor) => {
                            let _ = ready_tx.send(Ok(()));
                            reactor.run();
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })?;
            threads.push(thread);
        }
        drop(ready_tx);
        let mut failure = None;
        for _ in 0..n {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = Some(e),
                Err(_) => {
                    failure = Some(ReactorError::Setup(io::Error::other(
                        "a reactor thread died while starting",
                    )))
                }
            }
        }
        let reactors = Reactors { mailboxes, threads };
        match failure {
            None => Ok(reactors),
            Some(e) => Err(e), // Drop shuts down the ones that started.
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.mailboxes.len()
    }

    pub(crate) fn post(&self, reactor: usize, command: Command) {
        self.mailboxes[reactor].post(command);
    }
}

impl Drop for Reactors {
    fn drop(&mut self) {
        for mailbox in self.mailboxes.iter() {
            mailbox.post(Command::Shutdown);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn check_kernel() -> Result<(), ReactorError> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']);
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if major != 0 && (major, minor) < (6, 0) {
        return Err(ReactorError::Unavailable {
            detail: format!(
                "zring needs Linux 6.0 or later (multishot receive with provided \
                 buffer rings); this kernel is {}",
                release.trim()
            ),
        });
    }
    if let Ok(disabled) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        if disabled.trim() == "2" {
            return Err(ReactorError::Unavailable {
                detail: "the sysctl kernel.io_uring_disabled is 2; set it to 0 \
                         (or 1 and run zring in the group kernel.io_uring_group)"
                    .into(),
            });
        }
    }
    Ok(())
}

fn build_ring(entries: u32) -> Result<IoUring, ReactorError> {
    // A reactor is the only thread that touches its ring: single issuer and
    // deferred task work keep completions on this thread, batched.
    let tuned = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries);
    let result = match tuned {
        Ok(ring) => Ok(ring),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::new(entries),
        Err(e) => Err(e),
    };
    result.map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSYS) => ReactorError::Unavailable {
            detail: "io_uring_setup is not implemented by this kernel (built \
                     without CONFIG_IO_URING?); zring needs Linux 6.0 or later \
                     with io_uring"
                .into(),
        },
        Some(libc::EPERM) | Some(libc::EACCES) => ReactorError::Unavailable {
            detail: format!(
                "io_uring_setup was refused ({e}). A container's seccomp profile \
                 blocks it (Docker's default does: run with a profile allowing \
                 io_uring_setup, io_uring_enter and io_uring_register, e.g. \
                 --security-opt seccomp=unconfined), or the sysctl \
                 kernel.io_uring_disabled restricts it"
            ),
        },
        Some(libc::ENOMEM) => ReactorError::Unavailable {
            detail: format!(
                "io_uring_setup ran out of locked memory ({e}); raise `ulimit -l` \
                 or lower the ring size"
            ),
        },
        _ => ReactorError::Setup(e),
    })
}

/// Bytes a paused connection keeps reading before it stops.
const READ_AHEAD: usize = 64 * 1024;

// Completion kinds, in the top byte of user_data.
const OP_WAKE: u64 = 1;
const OP_ACCEPT: u64 = 2;
const OP_RECV: u64 = 3;
const OP_SEND: u64 = 4;
const OP_CONNECT: u64 = 5;
const OP_CANCEL: u64 = 6;

fn user_data(kind: u64, key: Key) -> u64 {
    (kind << 56) | ((u64::from(key.generation) & 0xff_ffff) << 32) | u64::from(key.index)
}

fn split_user_data(ud: u64) -> (u64, u32, u32) {
    (ud >> 56, ud as u32, ((ud >> 32) & 0xff_ffff) as u32)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Conn(Key),
    Connecter(Key),
    Listener(Key),
    /// A broker publisher waits for a full subscriber (policy disconnect).
    Stall(Key),
}

struct Listener {
    fd: OwnedFd,
    spec: Arc<ConnSpec>,
    name: String,
    armed: bool,
    closing: bool,
}

struct Connecter {
    spec: Arc<ConnSpec>,
    targets: Vec<Target>,
    next_target: usize,
    pipe: Option<Arc<Pipe>>,
    name: String,
    /// The address of the connect in flight (its memory must stay put).
    addr: Box<Option<sys::RawAddr>>,
    fd: Option<OwnedFd>,
    connecting: bool,
    conn: Option<Key>,
    ivl: Option<Duration>,
    retry_at: Option<Instant>,
    /// The socket was closed.
    closing: bool,
    /// Closed with messages still queued and a non-zero LINGER: keep
    /// connecting until they are sent or `linger_deadline` passes.
    lingering: bool,
    linger_deadline: Option<Instant>,
}

impl Connecter {
    /// Whether it should still try to connect.
    fn active(&self) -> bool {
        !self.closing || self.lingering
    }
}

/// What one step of a connection's session did.
/// How many messages `Reactor::step` may deliver.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Delivery {
    /// Everything the connection's input holds, while the queue has room.
    Batch,
    /// One: the connection takes turns with other paused ones.
    One,
}

enum Step {
    /// A message went to the application (or was dropped and counted).
    Delivered,
    /// The onloop queue is full; the connection paused.
    Paused,
    /// Nothing more to deliver until more bytes arrive.
    Idle,
}

struct Reactor {
    id: usize,
    ring: IoUring,
    bufs: BufRing,
    mailboxes: Arc<[Arc<Mailbox>]>,
    /// Commands for other reactors that did not fit their mesh ring yet.
    mesh_backlog: Vec<VecDeque<Command>>,
    mesh_wake: Vec<bool>,
    conns: Slab<Box<Conn>>,
    listeners: Slab<Listener>,
    connecters: Slab<Connecter>,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    /// Per socket: its connections paused on a full onloop queue.
    paused: HashMap<u64, Vec<Key>>,
    /// Connections whose receive ended because no buffer was free.
    starved: Vec<Key>,
    wake_buf: Box<u64>,
    next_adopter: usize,
    shutting_down: bool,
    /// The broker's part on this reactor, if it serves one.
    broker: Option<Shard>,
    /// Broker work this reactor sent itself, in order.
    broker_local: VecDeque<BrokerCommand>,
    /// Send buffers of closed connections that the kernel may still read
    /// (a zero-copy send's notification had not come), by the slot and
    /// generation the connection had. Dropped when the notification comes,
    /// so a closed connection never waits on a dead peer's TCP timeout.
    zc_orphans: HashMap<(u32, u32), zmtp_codec::Outbox>,
    /// Sockets with a wake delay whose application has not been woken for
    /// what this reactor queued, and when it must be.
    deferred_wakes: Vec<(Arc<SocketShared>, Instant)>,
    /// Buffers for received bytes that are copied: messages straddling
    /// receive buffers, fills copied out of a crowded ring.
    copies: Arc<dyn BufferPool>,
    /// See [`ReactorConfig::coalesce`].
    coalesce: Option<Duration>,
    ring_entries: u32,
    /// The last wait brought completions: a coalescing reactor waits out
    /// its window on the next one.
    busy: bool,
}

impl Reactor {
    fn new(
        id: usize,
        config: &ReactorConfig,
        mailboxes: Arc<[Arc<Mailbox>]>,
    ) -> Result<Reactor, ReactorError> {
        let ring = build_ring(config.ring_entries)?;
        let waker = mailboxes[id].waker.clone();
        let bufs = BufRing::new(
            &ring,
            0,
            config.buffer_count,
            config.buffer_size,
            config.copy_below,
            config.incremental_buffers,
            waker,
        )
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL) => ReactorError::Unavailable {
                detail: format!(
                    "registering a provided-buffer ring failed ({e}); zring needs \
                     Linux 6.0 or later"
                ),
            },
            _ => ReactorError::Setup(e),
        })?;
        let n = mailboxes.len();
        // Unused, the copy pool keeps at most as much again as the ring.
        let retain = usize::from(config.buffer_count) * config.buffer_size;
        let copies: Arc<dyn BufferPool> =
            Arc::new(SessionBuffers::new(CopyPool::new(retain), &bufs));
        let mut reactor = Reactor {
            id,
            ring,
            bufs,
            mailboxes,
            mesh_backlog: (0..n).map(|_| VecDeque::new()).collect(),
            mesh_wake: vec![false; n],
            conns: Slab::default(),
            listeners: Slab::default(),
            connecters: Slab::default(),
            timers: BinaryHeap::new(),
            deferred_wakes: Vec::new(),
            copies,
            paused: HashMap::new(),
            starved: Vec::new(),
            wake_buf: Box::new(0),
            next_adopter: id,
            shutting_down: false,
            broker: None,
            broker_local: VecDeque::new(),
            zc_orphans: HashMap::new(),
            coalesce: config.coalesce,
            ring_entries: config.ring_entries,
            busy: false,
        };
        reactor.arm_wake();
        Ok(reactor)
    }

    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: every entry points at memory owned by a Conn, Listener,
            // Connecter or the Reactor, which lives until the operation's
            // last completion arrives.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                tracing::error!(reactor = self.id, "io_uring submit failed: {e}");
            }
        }
    }

    fn arm_wake(&mut self) {
        let fd = self.mailboxes[self.id].waker.raw_fd();
        let buf = (&mut *self.wake_buf as *mut u64).cast::<u8>();
        let entry = opcode::Read::new(types::Fd(fd), buf, 8)
            .build()
            .user_data(OP_WAKE << 56);
        self.push(entry);
    }

    fn run(&mut self) {
        let mut completions = Vec::with_capacity(1024);
        loop {
            if self.bufs.recycle() > 0 && !self.starved.is_empty() {
                self.bufs.set_starved(false);
                for key in std::mem::take(&mut self.starved) {
                    self.arm_recv(key);
                }
            }
            self.drain_mailbox();
            self.fire_timers();
            self.fire_deferred_wakes();
            self.flush_mesh();
            if self.shutting_down
                && self.conns.len() == 0
                && self.listeners.len() == 0
                && self.connecters.len() == 0
            {
                break;
            }
            // Commands that found another reactor's ring full are retried
            // soon: that reactor does not tell us when it has made room.
            let mesh_retry = self
                .mesh_backlog
                .iter()
                .any(|backlog| !backlog.is_empty())
                .then(|| Instant::now() + MESH_RETRY);
            let next_deadline = self
                .timers
                .peek()
                .map(|Reverse((at, _))| *at)
                .into_iter()
                .chain(self.deferred_wakes.iter().map(|&(_, at)| at))
                .chain(mesh_retry)
                .min();
            let deadline = next_deadline.map(|at| at.saturating_duration_since(Instant::now()));
            let waker = self.mailboxes[self.id].waker.clone();
            waker.prepare_sleep();
            let queued = self.mailboxes[self.id].has_work() || !self.broker_local.is_empty();
            let plan = wait::plan(
                queued,
                deadline,
                self.coalesce,
                self.busy,
                self.ring_entries,
            );
            let result = match plan {
                wait::Wait::None => {
                    waker.cancel_sleep();
                    self.ring.submit()
                }
                wait::Wait::For {
                    want,
                    timeout: Some(t),
                } => {
                    let ts = types::Timespec::from(t);
                    let args = types::SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(want as usize, &args)
                }
                wait::Wait::For {
                    want,
                    timeout: None,
                } => self.ring.submit_and_wait(want as usize),
            };
            waker.cancel_sleep();
            if let Err(e) = result {
                if !matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) {
                    tracing::error!(reactor = self.id, "io_uring_enter failed: {e}");
                }
            }
            // Commands posted before these completions happened go first:
            // a broker route added before a subscription's echo left must be
            // in place when a message answering that echo arrives.
            self.drain_mailbox();
            completions.clear();
            completions.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            // A turn that did not wait says little about the traffic:
            // busy stays as it was unless completions came.
            self.busy = !completions.is_empty() || (plan == wait::Wait::None && self.busy);
            for &(ud, res, flags) in &completions {
                self.complete(ud, res, flags);
            }
        }
        self.bufs.unregister(&self.ring);
        if !self.zc_orphans.is_empty() {
            // The kernel may still retransmit from these pages after the
            // ring is gone; never hand them back to the allocator.
            tracing::debug!(
                reactor = self.id,
                count = self.zc_orphans.len(),
                "leaving zero-copy send buffers to the kernel at shutdown"
            );
            std::mem::forget(std::mem::take(&mut self.zc_orphans));
        }
    }

    fn complete(&mut self, ud: u64, res: i32, flags: u32) {
        let (kind, index, generation) = split_user_data(ud);
        match kind {
            OP_WAKE => self.arm_wake(),
            OP_ACCEPT => self.on_accept(index, generation, res, flags),
            OP_RECV => self.on_recv(index, generation, res, flags),
            OP_SEND => self.on_send(index, generation, res, flags),
            OP_CONNECT => self.on_connect(index, generation, res),
            OP_CANCEL => {}
            _ => tracing::error!(reactor = self.id, ud, "completion of unknown kind"),
        }
    }

    // ---- mailbox and mesh ----

    fn drain_mailbox(&mut self) {
        let mailbox = self.mailboxes[self.id].clone();
        for ring in &mailbox.mesh {
            while let Some(cmd) = ring.pop() {
                self.handle(cmd);
            }
        }
        while let Some(cmd) = mailbox.external.pop() {
            self.handle(cmd);
        }
        while let Some(cmd) = self.broker_local.pop_front() {
            self.broker_command(cmd);
        }
    }

    /// Sends work to another reactor over the mesh; wake-ups are batched.
    fn send_to(&mut self, reactor: usize, command: Command) {
        self.mesh_backlog[reactor].push_back(command);
        self.mesh_wake[reactor] = true;
    }

    fn flush_mesh(&mut self) {
        for target in 0..self.mailboxes.len() {
            let ring = &self.mailboxes[target].mesh[self.id];
            while let Some(cmd) = self.mesh_backlog[target].pop_front() {
                if let Err(cmd) = ring.push(cmd) {
                    self.mesh_backlog[target].push_front(cmd);
                    break;
                }
            }
            if std::mem::take(&mut self.mesh_wake[target]) {
                self.mailboxes[target].waker.wake();
                // Retry the rest next turn, waking again.
                self.mesh_wake[target] = !self.mesh_backlog[target].is_empty();
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Listen { spec, fd, name } => {
                let key = self.listeners.insert_with(|_| Listener {
                    fd,
                    spec,
                    name,
                    armed: false,
                    closing: false,
                });
                self.arm_accept(key);
            }
            Command::Adopt { spec, fd, peer } => {
                self.add_conn(fd, spec, peer, Origin::Accepted, None);
            }
            Command::Connect {
                spec,
                targets,
                pipe,
                name,
            } => {
                let ivl = spec.opts.reconnect_ivl;
                let key = self.connecters.insert_with(|_| Connecter {
                    spec,
                    targets,
                    next_target: 0,
                    pipe,
                    name,
                    addr: Box::new(None),
                    fd: None,
                    connecting: false,
                    conn: None,
                    ivl,
                    retry_at: None,
                    closing: false,
                    lingering: false,
                    linger_deadline: None,
                });
                if let Some(pipe) = self.connecters.get_mut(key).and_then(|c| c.pipe.clone()) {
                    pipe.conn.store(NO_CONN, Ordering::Release);
                }
                self.start_connect(key);
            }
            Command::PipeReady(pipe) => {
                let conn = pipe.conn.load(Ordering::Acquire);
                if conn != NO_CONN {
                    self.pump_send(Key::from_u64(conn));
                }
            }
            Command::Resume(socket) => self.resume(socket),
            Command::CloseSocket(socket) => self.close_socket(Some(socket)),
            Command::StopAccepting(socket) => self.close_listeners(Some(socket)),
            Command::Shutdown => {
                self.shutting_down = true;
                self.close_socket(None);
            }
            Command::BrokerInit { shared, done } => {
                self.broker = Some(Shard::new(self.id, shared));
                let _ = done.send(());
            }
            Command::Broker(cmd) => self.broker_command(cmd),
            #[cfg(test)]
            Command::Stall(time) => std::thread::sleep(time),
            #[cfg(test)]
            Command::Flood {
                target,
                count,
                seen,
            } => {
                for _ in 0..count {
                    self.send_to(target, Command::Count(seen.clone()));
                }
            }
            #[cfg(test)]
            Command::Count(seen) => {
                seen.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    // ---- listeners ----

    fn arm_accept(&mut self, key: Key) {
        let Some(l) = self.listeners.get_mut(key) else {
            return;
        };
        if l.armed || l.closing {
            return;
        }
        l.armed = true;
        let entry = opcode::AcceptMulti::new(types::Fd(l.fd.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(OP_ACCEPT, key));
        self.push(entry);
    }

    fn on_accept(&mut self, index: u32, generation: u32, res: i32, flags: u32) {
        let Some((key, l)) = self.listeners.find_mut(index, generation) else {
            if res >= 0 {
                // SAFETY: the kernel gave us this fd; nobody else owns it.
                drop(unsafe { OwnedFd::from_raw_fd(res) });
            }
            return;
        };
        if !cqueue::more(flags) {
            l.armed = false;
        }
        if res >= 0 {
            // SAFETY: a successful accept returns a new fd we own.
            let fd = unsafe { OwnedFd::from_raw_fd(res) };
            if l.closing {
                return;
            }
            let spec = l.spec.clone();
            spec.socket
                .counters
                .connections_accepted
                .fetch_add(1, Ordering::Relaxed);
            let peer = sys::peer_name(&fd);
            let refusal = spec
                .security
                .access()
                .and_then(|access| access.admits_address(sys::peer_ip(&fd)).err());
            if let Some(why) = refusal {
                // Before any byte is read: the peer sees the close only.
                spec.socket
                    .counters
                    .access_denied
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer = %peer, endpoint = %l.name, "connection refused: {why}");
                drop(fd);
            } else {
                let target = self.next_adopter % self.mailboxes.len();
                self.next_adopter = self.next_adopter.wrapping_add(1);
                if target == self.id {
                    self.add_conn(fd, spec, peer, Origin::Accepted, None);
                } else {
                    self.send_to(target, Command::Adopt { spec, fd, peer });
                }
            }
        } else if res != -libc::ECANCELED {
            let err = io::Error::from_raw_os_error(-res);
            tracing::warn!(endpoint = %l.name, "accept failed: {err}; retrying in 100 ms");
            if !l.armed && !l.closing {
                let at = Instant::now() + Duration::from_millis(100);
                self.timers.push(Reverse((at, TimerKey::Listener(key))));
            }
            return;
        }
        let l = self.listeners.get_mut(key).expect("still present");
        if l.closing && !l.armed {
            self.listeners.remove(key);
        } else if !l.armed {
            self.arm_accept(key);
        }
    }

    // ---- connecters ----

    fn start_connect(&mut self, key: Key) {
        let Some(c) = self.connecters.get_mut(key) else {
            return;
        };
        if !c.active() || c.connecting || c.conn.is_some() || c.targets.is_empty() {
            return;
        }
        let target = c.targets[c.next_target % c.targets.len()].clone();
        c.next_target = c.next_target.wrapping_add(1);
        let prepared = target.raw().and_then(|addr| {
            let fd = sys::stream_socket(addr.family())?;
            Ok((addr, fd))
        });
        let (addr, fd) = match prepared {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(endpoint = %c.name, "cannot create a socket: {e}");
                self.schedule_reconnect(key);
                return;
            }
        };
        *c.addr = Some(addr);
        let raw = c.addr.as_ref().as_ref().expect("just set");
        let entry = opcode::Connect::new(types::Fd(fd.as_raw_fd()), raw.as_ptr(), raw.len())
            .build()
            .user_data(user_data(OP_CONNECT, key));
        c.fd = Some(fd);
        c.connecting = true;
        self.push(entry);
    }

    fn on_connect(&mut self, index: u32, generation: u32, res: i32) {
        let Some((key, c)) = self.connecters.find_mut(index, generation) else {
            return;
        };
        c.connecting = false;
        let fd = c.fd.take();
        if !c.active() {
            self.remove_connecter(key);
            return;
        }
        match (res, fd) {
            (0, Some(fd)) => {
                sys::set_nodelay(fd.as_raw_fd());
                let spec = c.spec.clone();
                let pipe = c.pipe.clone();
                let peer = c.name.clone();
                spec.socket
                    .counters
                    .connections_established
                    .fetch_add(1, Ordering::Relaxed);
                let (lingering, deadline) = (c.lingering, c.linger_deadline);
                let conn = self.add_conn(fd, spec, peer, Origin::Connected(key), pipe);
                if let Some(c) = self.connecters.get_mut(key) {
                    c.conn = Some(conn);
                }
                if lingering {
                    if let Some(conn) = self.conns.get_mut(conn) {
                        conn.lingering = true;
                        conn.linger_deadline = deadline;
                    }
                    self.schedule_timer(conn);
                }
            }
            _ => {
                let err = io::Error::from_raw_os_error(-res);
                c.spec
                    .socket
                    .counters
                    .connect_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(endpoint = %c.name, "connect failed: {err}");
                self.schedule_reconnect(key);
            }
        }
    }

    fn schedule_reconnect(&mut self, key: Key) {
        let Some(c) = self.connecters.get_mut(key) else {
            return;
        };
        if !c.active() {
            return;
        }
        let Some(ivl) = c.ivl else {
            tracing::info!(endpoint = %c.name, "not reconnecting: RECONNECT_IVL is -1");
            return;
        };
        let at = Instant::now() + ivl;
        c.retry_at = Some(at);
        // libzmq 4.3.5: the wait doubles up to RECONNECT_IVL_MAX when set.
        let max = c.spec.opts.reconnect_ivl_max;
        if max > ivl {
            c.ivl = Some((ivl * 2).min(max));
        }
        self.timers.push(Reverse((at, TimerKey::Connecter(key))));
    }

    /// Gives up on a closed socket's connecter whose linger ran out.
    fn abandon_connecter(&mut self, key: Key) {
        let Some(c) = self.connecters.get_mut(key) else {
            return;
        };
        if c.conn.is_some() {
            // Its connection has the same deadline and closes itself.
            return;
        }
        if c.connecting {
            self.cancel(user_data(OP_CONNECT, key));
            return;
        }
        let c = self.remove_connecter(key).expect("present");
        tracing::info!(endpoint = %c.name, "linger expired before a connection was made");
    }

    /// Removes a connecter for good. What its application queued, no
    /// connection will carry: it is counted in `disconnect_drops`.
    fn remove_connecter(&mut self, key: Key) -> Option<Connecter> {
        let c = self.connecters.remove(key)?;
        if let Some(pipe) = &c.pipe {
            let lost = pipe.discard_queued();
            let counters = &c.spec.socket.counters;
            counters
                .disconnect_drops
                .fetch_add(lost as u64, Ordering::Relaxed);
        }
        Some(c)
    }

    // ---- connections ----

    fn add_conn(
        &mut self,
        fd: OwnedFd,
        spec: Arc<ConnSpec>,
        peer: String,
        origin: Origin,
        pipe: Option<Arc<Pipe>>,
    ) -> Key {
        sys::set_nodelay(fd.as_raw_fd());
        if let Some(bytes) = spec.opts.sndbuf {
            sys::set_buffer_size(fd.as_raw_fd(), true, bytes);
        }
        if let Some(bytes) = spec.opts.rcvbuf {
            sys::set_buffer_size(fd.as_raw_fd(), false, bytes);
        }
        let buffers = &self.copies;
        let key = self
            .conns
            .insert_with(|key| Box::new(Conn::new(key, fd, spec, peer, origin, pipe, buffers)));
        if self.shutting_down && origin == Origin::Accepted {
            self.close_conn(key, CloseReason::Shutdown);
            return key;
        }
        self.schedule_timer(key);
        self.arm_recv(key);
        self.pump_send(key); // the greeting
        key
    }

    fn arm_recv(&mut self, key: Key) {
        let group = self.bufs.group();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.recv_armed || conn.paused || conn.eof || conn.closing.is_some() {
            return;
        }
        conn.recv_armed = true;
        let entry = opcode::RecvMulti::new(types::Fd(conn.raw_fd()), group)
            .build()
            .user_data(user_data(OP_RECV, key));
        self.push(entry);
    }

    fn cancel(&mut self, target_ud: u64) {
        let entry = opcode::AsyncCancel::new(target_ud)
            .build()
            .user_data(OP_CANCEL << 56);
        self.push(entry);
    }

    fn on_recv(&mut self, index: u32, generation: u32, res: i32, flags: u32) {
        let more_in_buffer = cqueue::buffer_more(flags);
        let Some((key, conn)) = self.conns.find_mut(index, generation) else {
            if let Some(bid) = cqueue::buffer_select(flags) {
                if res > 0 {
                    self.bufs.discard(bid, res as usize, more_in_buffer);
                } else {
                    self.bufs.put_back(bid);
                }
            }
            return;
        };
        if !cqueue::more(flags) {
            conn.recv_armed = false;
        }
        if res > 0 {
            let bid = cqueue::buffer_select(flags).expect("a receive with data names its buffer");
            if conn.closing.is_some() {
                self.bufs.discard(bid, res as usize, more_in_buffer);
            } else {
                let (bytes, copied) =
                    self.bufs
                        .take(bid, res as usize, more_in_buffer, &*self.copies);
                if copied {
                    conn.spec
                        .socket
                        .counters
                        .copied_small_bytes
                        .fetch_add(res as u64, Ordering::Relaxed);
                }
                conn.heard_from_peer();
                conn.session.feed(bytes);
                if !conn.paused {
                    self.process(key);
                } else {
                    // A paused connection delivers in its turn, from
                    // `resume`; it reads ahead up to a bound, then stops,
                    // so TCP pushes back on the peer.
                    conn.read_ahead += res as usize;
                    if conn.read_ahead > READ_AHEAD && conn.recv_armed {
                        self.cancel(user_data(OP_RECV, key));
                    }
                }
            }
        } else {
            if let Some(bid) = cqueue::buffer_select(flags) {
                self.bufs.put_back(bid);
            }
            match -res {
                0 if !conn.session.is_ready() && !conn.spec.security.is_null() => {
                    // libzmq closes without a word when our greeting names
                    // another mechanism, or when it refuses our CURVE key.
                    let mechanism = conn.spec.security.name();
                    let counters = &conn.spec.socket.counters;
                    counters.security_failures.fetch_add(1, Ordering::Relaxed);
                    self.close_conn(key, CloseReason::PeerClosedDuringHandshake { mechanism });
                }
                0 => {
                    // Deliver what the peer sent before it closed: a paused
                    // connection still holds decoded messages.
                    conn.eof = true;
                    if !conn.paused {
                        self.close_conn(key, CloseReason::PeerClosed);
                    }
                }
                libc::ENOBUFS => {
                    tracing::debug!(reactor = self.id, "receive buffers exhausted");
                    self.bufs.set_starved(true);
                    self.starved.push(key);
                    // Buffers may have come back between the failure and
                    // now, or have been pushed before this completion was
                    // reaped (at the top of the loop, when nothing was
                    // starved yet): if none came back after that, nothing
                    // would wake this connection again.
                    if self.bufs.recycle() > 0 || self.bufs.may_have_free() {
                        self.bufs.set_starved(false);
                        for key in std::mem::take(&mut self.starved) {
                            self.arm_recv(key);
                        }
                    }
                    return;
                }
                libc::ECANCELED => {}
                errno => {
                    let error = io::Error::from_raw_os_error(errno);
                    let reason = CloseReason::Io {
                        operation: "receive",
                        error,
                    };
                    self.close_conn(key, reason);
                }
            }
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.closing.is_some() {
            self.try_finish(key);
        } else if !conn.recv_armed && !conn.paused && !conn.eof {
            self.arm_recv(key);
        }
    }

    /// Delivers everything the session has decoded, until it runs dry or
    /// the onloop queue is full.
    fn process(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.spec.broker.is_some() {
            self.broker_process(key);
            return;
        }
        let socket = conn.spec.socket.clone();
        while let Step::Delivered = self.step(key, Delivery::Batch) {}
        if let Some(conn) = self.conns.get_mut(key) {
            conn.flush_received_counters();
        }
        // One wake-up for everything this batch delivered.
        self.wake_application(&socket);
        self.schedule_timer(key);
        self.pump_send(key);
    }

    /// Advances one connection's session to its next delivered message, or
    /// with `Delivery::Batch` past every data message its input holds.
    fn step(&mut self, key: Key, delivery: Delivery) -> Step {
        let reactor = self.id;
        let Some(conn) = self.conns.get_mut(key) else {
            return Step::Idle;
        };
        if conn.closing.is_some() {
            return Step::Idle;
        }
        if let Some(held) = conn.held.take() {
            return self.offer(key, held);
        }
        let socket = &conn.spec.socket;
        if delivery == Delivery::Batch
            && socket.kind.can_recv()
            && (self.paused.is_empty() || !self.paused.contains_key(&socket.id))
        {
            // The data plane: no event per message, one counter update per
            // batch. Anything else (a full queue, a command, a message across
            // chunks) takes the general path below.
            let (mut messages, mut bytes, mut drops) = (0u64, 0u64, 0u64);
            let back = conn.session.drain_messages(|message| {
                messages += 1;
                bytes += message.body_len();
                match socket.onloop.offer_quiet(message) {
                    Offer::Queued => None,
                    Offer::Dropped => {
                        drops += 1;
                        None
                    }
                    Offer::Full(message) => Some(message),
                }
            });
            conn.unflushed_in.0 += messages;
            conn.unflushed_in.1 += bytes;
            if drops > 0 {
                socket
                    .counters
                    .onloop_drops
                    .fetch_add(drops, Ordering::Relaxed);
            }
            if let Some(message) = back {
                return self.offer(key, message);
            }
            if messages > 0 {
                return Step::Delivered;
            }
        }
        loop {
            let event = match conn.session.poll() {
                Ok(Some(event)) => event,
                Ok(None) => return Step::Idle,
                Err(e) => {
                    self.session_failed(key, e);
                    return Step::Idle;
                }
            };
            match event {
                Event::Ready(peer) => {
                    let socket = conn.spec.socket.clone();
                    conn.handshake_deadline = None;
                    let now = Instant::now();
                    conn.next_ping = conn.spec.opts.heartbeat_ivl.map(|d| now + d);
                    socket.counters.handshakes.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = %conn.peer, version = ?peer.version, "handshake done");
                    let (pipe, writer) = match &conn.pipe {
                        Some(p) => (p.clone(), None),
                        None => {
                            let (pipe, writer) =
                                Pipe::new(socket.new_pipe_id(), reactor, conn.spec.opts.sndhwm);
                            conn.pipe = Some(pipe.clone());
                            (pipe, Some(writer))
                        }
                    };
                    pipe.conn.store(conn.key.to_u64(), Ordering::Release);
                    conn.announced = true;
                    socket.post(CoreEvent::Up { pipe, writer });
                    // A sender blocked for want of peers may go on.
                    socket.notify_writable();
                    if let Origin::Connected(ck) = conn.origin {
                        if let Some(c) = self.connecters.get_mut(ck) {
                            c.ivl = c.spec.opts.reconnect_ivl;
                        }
                    }
                    return Step::Delivered;
                }
                Event::Message(message) => {
                    conn.unflushed_in.0 += 1;
                    conn.unflushed_in.1 += message.body_len();
                    let socket = &conn.spec.socket;
                    match socket.kind {
                        SocketKind::Pub | SocketKind::Push => {
                            let counters = &socket.counters;
                            counters.ignored_messages.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => return self.offer(key, message),
                    }
                }
                Event::Subscription(sub) => {
                    let socket = &conn.spec.socket;
                    let counter = match sub.action {
                        SubscriptionAction::Subscribe => &socket.counters.subscriptions_in,
                        SubscriptionAction::Cancel => &socket.counters.cancels_in,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if let Some(pipe) = &conn.pipe {
                        socket.post(CoreEvent::Subscription {
                            pipe_id: pipe.id,
                            sub,
                        });
                    }
                }
                Event::Ping {
                    ttl_deciseconds, ..
                } => {
                    if ttl_deciseconds > 0 {
                        let ttl = Duration::from_millis(u64::from(ttl_deciseconds) * 100);
                        conn.peer_ttl = Some(Instant::now() + ttl);
                    }
                }
                Event::Pong { .. } => {}
            }
        }
    }

    /// Offers a received message to the application. The caller wakes the
    /// application once its batch is done.
    fn offer(&mut self, key: Key, message: Message) -> Step {
        let Some(conn) = self.conns.get_mut(key) else {
            return Step::Idle;
        };
        let socket = &conn.spec.socket;
        // Peers already waiting for room go first: take a place in line
        // rather than the room they wait for (fair queuing). They also
        // guarantee a Resume is coming.
        let others_wait =
            !self.paused.is_empty() && self.paused.get(&socket.id).is_some_and(|l| !l.is_empty());
        let mut message = message;
        if !others_wait {
            message = match socket.onloop.offer_quiet(message) {
                Offer::Queued => return Step::Delivered,
                Offer::Dropped => {
                    socket.counters.onloop_drops.fetch_add(1, Ordering::Relaxed);
                    return Step::Delivered;
                }
                Offer::Full(message) => message,
            };
            // Announce the pause before retrying once: either the
            // application sees the flag after making room, or the retry
            // sees the room. What is queued must wake it, or nothing will.
            socket.set_paused(self.id);
            socket.onloop.readiness().notify();
            message = match socket.onloop.offer_quiet(message) {
                Offer::Queued => return Step::Delivered,
                Offer::Dropped => unreachable!("a NODROP queue never drops"),
                Offer::Full(message) => message,
            };
        }
        let socket_id = socket.id;
        conn.held = Some(message);
        tracing::trace!(peer = %conn.peer, "onloop queue full: pausing");
        if !conn.paused {
            conn.paused = true;
            conn.read_ahead = 0;
            self.paused.entry(socket_id).or_default().push(key);
        }
        Step::Paused
    }

    /// The application made room: deliver from paused connections one
    /// message each in turn (fair queuing), until they run dry or the
    /// queue fills again.
    fn resume(&mut self, socket: u64) {
        let Some(keys) = self.paused.remove(&socket) else {
            tracing::trace!(socket, "resume: nothing paused");
            return;
        };
        tracing::trace!(socket, paused = keys.len(), "resume");
        let shared = keys
            .iter()
            .find_map(|&k| self.conns.get_mut(k).map(|c| c.spec.socket.clone()));
        let mut turn: VecDeque<Key> = keys.into();
        for key in &turn {
            if let Some(conn) = self.conns.get_mut(*key) {
                conn.paused = false;
            }
        }
        while let Some(key) = turn.pop_front() {
            // Alone in line, a connection needs no turns: it delivers its batch.
            let delivery = if turn.is_empty() {
                Delivery::Batch
            } else {
                Delivery::One
            };
            let mut step = self.step(key, delivery);
            while turn.is_empty() && matches!(step, Step::Delivered) {
                step = self.step(key, Delivery::Batch);
            }
            if let Some(conn) = self.conns.get_mut(key) {
                conn.flush_received_counters();
            }
            match step {
                Step::Delivered => turn.push_back(key),
                Step::Idle => {
                    if self.conns.get_mut(key).is_some_and(|c| c.eof) {
                        self.close_conn(key, CloseReason::PeerClosed);
                        continue;
                    }
                    self.schedule_timer(key);
                    self.arm_recv(key);
                    self.pump_send(key);
                }
                Step::Paused => {
                    // Full again: everyone still waiting stays paused.
                    for key in turn.drain(..) {
                        if let Some(conn) = self.conns.get_mut(key) {
                            conn.paused = true;
                            self.paused.entry(socket).or_default().push(key);
                        }
                    }
                }
            }
        }
        if let Some(shared) = shared {
            self.wake_application(&shared);
        }
    }

    /// Wakes `socket`'s application for what this reactor queued: at once,
    /// or, with a wake delay, when the delay has passed since the first
    /// batch it was not woken for, or sooner if the queue is half full.
    /// Only the wake-up waits; the messages are already in the queue.
    fn wake_application(&mut self, socket: &Arc<SocketShared>) {
        let Some(delay) = socket.wake_delay else {
            socket.onloop.readiness().notify();
            return;
        };
        let deferred = self
            .deferred_wakes
            .iter()
            .position(|(s, _)| Arc::ptr_eq(s, socket));
        if socket.wake_now() {
            socket.onloop.readiness().notify();
            if let Some(i) = deferred {
                self.deferred_wakes.swap_remove(i);
            }
        } else if deferred.is_none() {
            self.deferred_wakes
                .push((socket.clone(), Instant::now() + delay));
        }
    }

    /// Performs the deferred wake-ups that are due.
    fn fire_deferred_wakes(&mut self) {
        if self.deferred_wakes.is_empty() {
            return;
        }
        let now = Instant::now();
        self.deferred_wakes.retain(|(socket, at)| {
            let due = *at <= now;
            if due {
                socket.onloop.readiness().notify();
            }
            !due
        });
    }

    /// Sends what is queued for the peer, if no send is in flight.
    fn pump_send(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.send_in_flight || conn.zc_notif_pending || conn.closing.is_some() {
            return;
        }
        if let Err(e) = conn.fill_from_pipe() {
            self.close_conn(key, CloseReason::Encode(e));
            return;
        }
        let Some(zero_copy) = conn.prepare_send() else {
            if conn.lingering && conn.send_drained() {
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

    fn on_send(&mut self, index: u32, generation: u32, res: i32, flags: u32) {
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
        let socket = &conn.spec.socket;
        socket
            .counters
            .bytes_out
            .fetch_add(sent as u64, Ordering::Relaxed);
        let done = conn.inflight.take_completed_messages() as usize;
        let closing = conn.closing.is_some();
        if done > 0 {
            conn.batch_messages -= done;
            socket
                .counters
                .messages_out
                .fetch_add(done as u64, Ordering::Relaxed);
            if let Some(pipe) = &conn.pipe {
                pipe.release(done);
            }
        }
        if closing {
            // A closing connection's lanes already told their producers.
            self.try_finish(key);
            return;
        }
        if done > 0 {
            if let Some(lanes) = &mut conn.lanes {
                let sub = lanes.egress.sub;
                let waiting = lanes.release(done);
                let remaining = conn.inflight.remaining();
                for reactor in waiting {
                    self.broker_send(reactor, BrokerCommand::Space { sub });
                }
                if remaining > 0 {
                    let zero_copy = self
                        .conns
                        .get_mut(key)
                        .expect("present")
                        .describe_inflight();
                    self.submit_send(key, zero_copy);
                } else {
                    self.pump_send(key);
                }
                return;
            }
            socket.notify_writable();
        }
        if conn.inflight.remaining() > 0 {
            let zero_copy = conn.describe_inflight();
            self.submit_send(key, zero_copy);
        } else {
            self.pump_send(key);
        }
    }

    /// Starts closing a connection; it is freed once the kernel holds
    /// nothing of it.
    /// A session failed: counts it (a refused or broken PLAIN/CURVE
    /// handshake apart from other protocol errors), sends what the session
    /// queued last (a refused peer's ERROR), and closes.
    fn session_failed(&mut self, key: Key, e: zmtp_codec::Error) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let counters = &conn.spec.socket.counters;
        let reason = if crate::security::is_security_failure(&e) {
            counters.security_failures.fetch_add(1, Ordering::Relaxed);
            CloseReason::Security {
                mechanism: conn.spec.security.name(),
                error: e,
            }
        } else {
            counters.protocol_errors.fetch_add(1, Ordering::Relaxed);
            CloseReason::Protocol {
                error: e,
                during_handshake: !conn.session.is_ready(),
            }
        };
        conn.write_outbox_now();
        self.close_conn(key, reason);
    }

    fn close_conn(&mut self, key: Key, reason: CloseReason) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.closing.is_some() {
            return;
        }
        conn.flush_received_counters();
        if conn.spec.broker.is_some() {
            // The broker logs each disconnect once, when it is complete.
        } else if reason.is_quiet() {
            tracing::debug!(peer = %conn.peer, "closing: {reason}");
        } else {
            tracing::warn!(peer = %conn.peer, "connection closed: {reason}");
        }
        conn.closing = Some(reason);
        if let Some(lanes) = &conn.lanes {
            // Publishers stop routing to it now, and those waiting for its
            // room go on.
            let sub = lanes.egress.sub;
            for reactor in lanes.egress.close() {
                self.broker_send(reactor, BrokerCommand::Space { sub });
            }
        }
        let conn = self.conns.get_mut(key).expect("present");
        // Pending operations complete promptly.
        sys::shutdown(conn.raw_fd());
        let (recv, send) = (conn.recv_armed, conn.send_in_flight);
        if recv {
            self.cancel(user_data(OP_RECV, key));
        }
        if send {
            self.cancel(user_data(OP_SEND, key));
        }
        self.try_finish(key);
    }

    fn try_finish(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.closing.is_none() || !conn.idle_in_kernel() {
            return;
        }
        let mut conn = self.conns.remove(key).expect("present");
        if conn.zc_notif_pending {
            // The kernel accepted these bytes; only its hold on the pages
            // is outstanding, which can last until TCP gives up on a dead
            // peer. Count them sent and keep the buffers aside instead of
            // keeping the connection (and its reconnect) waiting.
            let sent = std::mem::take(&mut conn.zc_sent);
            let done = conn.inflight.messages_completed_by(sent);
            conn.batch_messages -= done as usize;
            let counters = &conn.spec.socket.counters;
            counters.bytes_out.fetch_add(sent as u64, Ordering::Relaxed);
            counters.messages_out.fetch_add(done, Ordering::Relaxed);
            if let Some(pipe) = &conn.pipe {
                pipe.release(done as usize);
            }
            let buffers = std::mem::take(&mut conn.inflight);
            self.zc_orphans.insert((key.index, key.generation), buffers);
        }
        if conn.spec.broker.is_some() {
            self.broker_conn_gone(&mut conn);
        }
        let socket = conn.spec.socket.clone();
        let counters = &socket.counters;
        counters.disconnects.fetch_add(1, Ordering::Relaxed);
        let mut lost = conn.batch_messages as u64;
        if conn.held.is_some() {
            lost += 1;
        }
        let connecter = match conn.origin {
            Origin::Connected(ck) => Some(ck),
            Origin::Accepted => None,
        };
        let connecter_alive = connecter
            .and_then(|ck| self.connecters.get_mut(ck))
            .is_some_and(|c| !c.closing);
        if let Some(pipe) = &conn.pipe {
            pipe.conn.store(NO_CONN, Ordering::Release);
            pipe.release(conn.batch_messages);
            // A connecter's pipe (no IMMEDIATE) outlives its connections.
            let remove = !connecter_alive || conn.spec.opts.immediate;
            if conn.announced {
                socket.post(CoreEvent::Down {
                    pipe_id: pipe.id,
                    remove,
                });
            }
            socket.notify_writable();
        }
        counters.disconnect_drops.fetch_add(lost, Ordering::Relaxed);
        // A connection lingering for a closed socket that drops before its
        // deadline hands the rest of the linger to its connecter.
        let linger_left = conn
            .lingering
            .then_some(conn.linger_deadline)
            .filter(|d| d.is_none_or(|d| d > Instant::now()));
        drop(conn);
        if let Some(ck) = connecter {
            if let Some(c) = self.connecters.get_mut(ck) {
                c.conn = None;
                let queued = c.pipe.as_ref().is_some_and(|p| !p.is_queue_empty());
                if let (true, false, true, Some(deadline)) =
                    (c.closing, c.lingering, queued, linger_left)
                {
                    c.lingering = true;
                    c.linger_deadline = deadline;
                    if let Some(at) = deadline {
                        self.timers.push(Reverse((at, TimerKey::Connecter(ck))));
                    }
                }
                if c.closing && !(c.lingering && queued) {
                    self.remove_connecter(ck);
                } else {
                    self.schedule_reconnect(ck);
                }
            }
        }
    }

    /// Closes the listeners of `socket` (of every socket: None). An armed
    /// one goes once its cancelled accept completes.
    fn close_listeners(&mut self, socket: Option<u64>) {
        for key in self.listeners.keys() {
            let l = self.listeners.get_mut(key).expect("listed");
            if socket.is_some_and(|id| l.spec.socket.id != id) || l.closing {
                continue;
            }
            l.closing = true;
            if l.armed {
                self.cancel(user_data(OP_ACCEPT, key));
            } else {
                self.listeners.remove(key);
            }
        }
    }

    fn close_socket(&mut self, socket: Option<u64>) {
        let matches = |s: &Arc<ConnSpec>| socket.is_none_or(|id| s.socket.id == id);
        self.close_listeners(socket);
        for key in self.connecters.keys() {
            let c = self.connecters.get_mut(key).expect("listed");
            if !matches(&c.spec) || c.closing {
                continue;
            }
            c.closing = true;
            let linger = c.spec.opts.linger;
            let queued = c.pipe.as_ref().is_some_and(|p| !p.is_queue_empty());
            if queued && linger != Some(Duration::ZERO) && c.conn.is_none() {
                // Keep trying to deliver what the application queued.
                c.lingering = true;
                c.linger_deadline = linger.map(|d| Instant::now() + d);
                if let Some(at) = c.linger_deadline {
                    self.timers.push(Reverse((at, TimerKey::Connecter(key))));
                }
            } else if c.connecting {
                self.cancel(user_data(OP_CONNECT, key));
            } else if c.conn.is_none() {
                self.remove_connecter(key);
            }
        }
        let now = Instant::now();
        for key in self.conns.keys() {
            let conn = self.conns.get_mut(key).expect("listed");
            if !matches(&conn.spec) || conn.lingering {
                continue;
            }
            let linger = conn.spec.opts.linger;
            if linger == Some(Duration::ZERO) || !conn.session.is_ready() && conn.pipe.is_none() {
                self.close_conn(key, CloseReason::SocketClosed);
                continue;
            }
            conn.lingering = true;
            conn.linger_deadline = linger.map(|d| now + d);
            if conn.send_drained() {
                self.close_conn(key, CloseReason::SocketClosed);
            } else {
                self.schedule_timer(key);
                self.pump_send(key);
            }
        }
    }

    // ---- timers ----

    fn schedule_timer(&mut self, key: Key) {
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

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, timer)) = self.timers.pop().expect("peeked");
            match timer {
                TimerKey::Conn(key) => self.conn_timer(key, now),
                TimerKey::Connecter(key) => {
                    if let Some(c) = self.connecters.get_mut(key) {
                        if c.lingering && c.linger_deadline.is_some_and(|d| d <= now) {
                            c.lingering = false;
                            self.abandon_connecter(key);
                            continue;
                        }
                        if c.retry_at.is_some_and(|r| r <= now) {
                            c.retry_at = None;
                            self.start_connect(key);
                        }
                    }
                }
                TimerKey::Listener(key) => self.arm_accept(key),
                TimerKey::Stall(key) => self.broker_stall_timer(key, now),
            }
        }
    }

    fn conn_timer(&mut self, key: Key, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.timer_at.is_some_and(|at| at <= now) {
            conn.timer_at = None;
        }
        if conn.closing.is_some() {
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
                let counters = &conn.spec.socket.counters;
                counters.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            self.close_conn(key, reason);
            return;
        }
        if due(conn.next_ping) {
            let opts = &conn.spec.opts;
            conn.next_ping = opts.heartbeat_ivl.map(|d| now + d);
            if conn.ping_timeout.is_none() {
                conn.ping_timeout = opts.effective_heartbeat_timeout().map(|d| now + d);
            }
            let ttl = opts.heartbeat_ttl.as_millis() as u64;
            if conn.session.send_ping(ttl, bytes::Bytes::new()).is_ok() {
                self.pump_send(key);
            }
        }
        self.schedule_timer(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More commands than a mesh ring holds, sent while their target is
    /// busy: the sender keeps the rest in its backlog and, with nothing
    /// else to do, must still retry until all are through.
    #[test]
    fn a_full_mesh_ring_is_retried_without_other_traffic() {
        let config = ReactorConfig {
            cores: vec![None, None],
            buffer_count: 4,
            ..ReactorConfig::default()
        };
        let reactors = Reactors::start(&config).expect("reactors start");
        let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = 3 * MESH_RING;
        reactors.post(1, Command::Stall(Duration::from_millis(100)));
        reactors.post(
            0,
            Command::Flood {
                target: 1,
                count,
                seen: seen.clone(),
            },
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.load(Ordering::Relaxed) < count as u64 {
            assert!(
                Instant::now() < deadline,
                "only {} of {count} commands arrived",
                seen.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
