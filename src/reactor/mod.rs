//! The io_uring reactor: one thread per configured core, each owning a
//! ring, its connections, its receive buffers and its timers, and driving
//! a [`Service`] (ZeroMQ sockets, the broker) that gives the connections'
//! sessions their meaning.
//!
//! - Listeners use multishot accept; accepted connections are spread over
//!   all reactors (a reactor hands a connection to another through the mesh).
//! - Each connection has one multishot receive that picks buffers from the
//!   reactor's provided-buffer ring; received data is fed to the codec as
//!   `Bytes` slices of those buffers, and the service drives the session.
//! - Each connection has at most one `sendmsg` in flight, carrying as many
//!   queued messages as fit (iovecs over headers and the messages' own
//!   buffers); batches with a large frame use zero-copy send.
//! - Deadlines (handshake, heartbeats, reconnect, linger, the service's
//!   own) are kept in a heap and bound the wait in `io_uring_enter`.
//! - Work from other threads arrives in the reactor's mailbox: one
//!   single-producer ring per other reactor (the mesh) and one queue for
//!   application threads, with an eventfd wake-up paid only when the
//!   reactor sleeps.
//!
//! The files: `event_loop.rs` the loop, the mailbox and timers;
//! `driver/` the kernel interface (io_uring, or epoll where io_uring is
//! refused); `lifecycle.rs` a connection from accept to free; `listen.rs`
//! listeners and connecters; `send.rs` the send path; `service.rs` the seam
//! to the services; `conn.rs` one connection's state; `close.rs` why it
//! closed.

#[allow(unsafe_code)]
pub(crate) mod bufring;
mod close;
mod config;
#[allow(unsafe_code)]
pub(crate) mod conn;
mod copy_pool;
mod driver;
mod event_loop;
mod lifecycle;
mod listen;
pub(crate) mod refusals;
mod send;
pub(crate) mod service;
pub(crate) mod slab;
mod wait;

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_queue::{ArrayQueue, SegQueue};

pub(crate) use self::close::CloseReason;
pub use self::config::{Backend, ReactorConfig, ReactorError, BACKEND_ENV, MAX_COALESCE};
use self::driver::{Driver, Epoll, Uring};
use self::event_loop::Reactor;
pub(crate) use self::service::{ConnOptions, ConnSpec, Io, Origin, Service};
pub(crate) use self::slab::Key;
use crate::sys;
use crate::sys::waker::Waker;

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

/// Work for a reactor, from application threads (the mailbox's queue) or
/// other reactors (the mesh).
pub(crate) enum Command<S: Service> {
    /// Serve a bound listening socket.
    Listen {
        spec: Arc<ConnSpec<S>>,
        fd: OwnedFd,
        name: String,
    },
    /// Serve a connection another reactor accepted.
    Adopt {
        spec: Arc<ConnSpec<S>>,
        fd: OwnedFd,
        peer: String,
    },
    /// Connect (and keep reconnecting) to `targets`.
    Connect {
        spec: Arc<ConnSpec<S>>,
        targets: Vec<Target>,
        link: Option<S::Link>,
        name: String,
    },
    /// The owner was closed: linger, then close its connections.
    CloseOwner(u64),
    /// Close the owner's listeners; its connections stay.
    StopAccepting(u64),
    /// Close everything and exit once lingering connections are done.
    Shutdown,
    /// Work for the service.
    Service(S::Command),
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

/// Capacity of each single-producer ring between two reactors, at most.
const MESH_RING: usize = 1024;

/// Ring slots of one reactor's mailbox over all its senders. Rings are
/// allocated whole, and n reactors have n(n-1) of them: a fixed size
/// would cost memory growing with the square of the reactor count. Mesh
/// commands are control traffic (adopted connections, subscription
/// updates, room notices), and a command that finds its ring full waits
/// in the sender's backlog, so smaller rings cost latency only in bursts.
const MESH_SLOTS: usize = 16 * 1024;

/// The least capacity of a ring between two reactors.
const MESH_RING_MIN: usize = 64;

/// Capacity of each ring between two of `reactors` reactors: the whole
/// [`MESH_RING`] up to 16 reactors, then less, so a reactor's mailbox
/// keeps about [`MESH_SLOTS`] slots.
fn mesh_ring(reactors: usize) -> usize {
    (MESH_SLOTS / reactors.max(1)).clamp(MESH_RING_MIN, MESH_RING)
}

/// How soon a reactor retries commands that found a mesh ring full.
const MESH_RETRY: Duration = Duration::from_micros(100);

/// A reactor's inbound work: one ring per other reactor, one queue for
/// everyone else.
pub(crate) struct Mailbox<S: Service> {
    /// By sender; none from the reactor itself, whose own work goes to
    /// its local queue.
    mesh: Vec<Option<ArrayQueue<Command<S>>>>,
    external: SegQueue<Command<S>>,
    waker: Arc<Waker>,
}

impl<S: Service> Mailbox<S> {
    /// Posts work from a thread that is not a reactor.
    pub(crate) fn post(&self, command: Command<S>) {
        self.external.push(command);
        self.waker.wake();
    }

    fn has_work(&self) -> bool {
        !self.external.is_empty() || self.mesh.iter().flatten().any(|q| !q.is_empty())
    }
}

/// The running reactors of a context or a broker, each driving its own
/// instance of a service.
pub(crate) struct Reactors<S: Service> {
    mailboxes: Arc<[Arc<Mailbox<S>>]>,
    threads: Vec<JoinHandle<()>>,
    /// The driver chosen: io_uring or epoll, never `Auto`.
    backend: Backend,
}

/// One reactor thread's life on driver `D`: set up, say so, run.
fn run<S: Service, D: Driver>(
    id: usize,
    config: &ReactorConfig,
    mailboxes: Arc<[Arc<Mailbox<S>>]>,
    service: S,
    ready: std::sync::mpsc::Sender<Result<(), ReactorError>>,
) {
    match Reactor::<S, D>::new(id, config, mailboxes, service) {
        Ok(mut reactor) => {
            let _ = ready.send(Ok(()));
            reactor.run();
        }
        Err(e) => {
            let _ = ready.send(Err(e));
        }
    }
}

impl<S: Service> Reactors<S> {
    /// Starts one reactor per entry of `config.cores`, each building its ring
    /// on its own thread (a single-issuer ring belongs to its creator) and
    /// its service with `service(reactor, reactors)`. Returns once every
    /// reactor is ready to take commands.
    pub(crate) fn start(
        config: &ReactorConfig,
        service: impl Fn(usize, usize) -> S + Send + Sync + 'static,
    ) -> Result<Reactors<S>, ReactorError>
    where
        S::Command: Send,
    {
        let backend = config::check(config)?;
        let n = config.cores.len().max(1);
        let ring = mesh_ring(n);
        let mailboxes: Vec<Arc<Mailbox<S>>> = (0..n)
            .map(|id| {
                Ok(Arc::new(Mailbox {
                    mesh: (0..n)
                        .map(|from| (from != id).then(|| ArrayQueue::new(ring)))
                        .collect(),
                    external: SegQueue::new(),
                    waker: Arc::new(Waker::new()?),
                }))
            })
            .collect::<io::Result<_>>()?;
        let mailboxes: Arc<[Arc<Mailbox<S>>]> = mailboxes.into();
        let service = Arc::new(service);
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for id in 0..n {
            let mailboxes = mailboxes.clone();
            let config = config.clone();
            let core = config.cores.get(id).copied().flatten();
            let ready_tx = ready_tx.clone();
            let service = service.clone();
            let thread = std::thread::Builder::new()
                .name(format!("zring-reactor-{id}"))
                .spawn(move || {
                    if let Some(core) = core {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                            tracing::warn!(reactor = id, core, "could not pin reactor thread");
                        }
                    }
                    let service = service(id, n);
                    if backend == Backend::IoUring {
                        run::<S, Uring>(id, &config, mailboxes, service, ready_tx);
                    } else {
                        run::<S, Epoll>(id, &config, mailboxes, service, ready_tx);
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
        let reactors = Reactors {
            mailboxes,
            threads,
            backend,
        };
        match failure {
            None => Ok(reactors),
            Some(e) => Err(e), // Drop shuts down the ones that started.
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.mailboxes.len()
    }

    /// The kernel interface the reactors run on: `io_uring` or `epoll`.
    pub(crate) fn backend(&self) -> &'static str {
        self.backend.name()
    }

    pub(crate) fn post(&self, reactor: usize, command: Command<S>) {
        self.mailboxes[reactor].post(command);
    }
}

impl<S: Service> Drop for Reactors<S> {
    fn drop(&mut self) {
        for mailbox in self.mailboxes.iter() {
            mailbox.post(Command::Shutdown);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// What a timer entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    Conn(Key),
    Connecter(Key),
    Listener(Key),
    /// The service's ([`Io::timer`]).
    Service(Key),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rings of all reactors together grow with the reactor count,
    /// not its square, and keep the full size where reactors are few.
    #[test]
    fn mesh_rings_shrink_as_reactors_multiply() {
        for n in [1, 2, 8, 16] {
            assert_eq!(mesh_ring(n), MESH_RING, "{n} reactors");
        }
        assert_eq!(mesh_ring(64), 256);
        assert_eq!(mesh_ring(256), MESH_RING_MIN);
        for n in 1..=256 {
            let per_mailbox = (n - 1) * mesh_ring(n);
            assert!(per_mailbox <= MESH_SLOTS, "{n} reactors: {per_mailbox}");
        }
    }
}
