//! The reactor loop: the driver, the mailbox and the mesh, timers, and the
//! actions a service asks for.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zmtp_codec::BufferPool;

use super::bufring::SessionBuffers;
use super::config::{ReactorConfig, ReactorError};
use super::conn::Conn;
use super::copy_pool::CopyPool;
use super::driver::{Completion, Driver};
use super::listen::{Connecter, Listener};
use super::service::{Action, Io, Service};
use super::slab::{Key, Slab};
use super::{wait, Command, Mailbox, TimerKey, MESH_RETRY};

pub(super) struct Reactor<S: Service, D: Driver> {
    pub(super) id: usize,
    /// The kernel interface: io_uring or epoll.
    pub(super) driver: D,
    pub(super) mailboxes: Arc<[Arc<Mailbox<S>>]>,
    /// Commands for other reactors that did not fit their mesh ring yet.
    mesh_backlog: Vec<VecDeque<Command<S>>>,
    mesh_wake: Vec<bool>,
    pub(super) conns: Slab<Box<Conn<S>>>,
    pub(super) listeners: Slab<Listener<S>>,
    pub(super) connecters: Slab<Connecter<S>>,
    pub(super) timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    /// Connections whose receive ended because no buffer was free.
    pub(super) starved: Vec<Key>,
    pub(super) next_adopter: usize,
    pub(super) shutting_down: bool,
    /// What this reactor serves.
    pub(super) service: S,
    /// What the service asked for, carried out in order after each hook.
    pub(super) actions: VecDeque<Action<S>>,
    /// Commands the service sent to itself on this reactor, in order.
    local: VecDeque<S::Command>,
    /// Send buffers of closed connections that the kernel may still read
    /// (a zero-copy send's notification had not come), by the slot and
    /// [`Key::tag`] the connection had, as the notification carries them.
    /// Dropped when the notification comes, so a closed connection never
    /// waits on a dead peer's TCP timeout.
    pub(super) zc_orphans: HashMap<(u32, u32), zmtp_codec::Outbox>,
    /// Buffers for received bytes that are copied: messages straddling
    /// receive buffers, fills copied out of a crowded ring.
    pub(super) copies: Arc<dyn BufferPool>,
    /// See [`ReactorConfig::coalesce`].
    coalesce: Option<Duration>,
    ring_entries: u32,
    /// The last wait brought completions: a coalescing reactor waits out
    /// its window on the next one.
    busy: bool,
}

impl<S: Service, D: Driver> Reactor<S, D> {
    pub(super) fn new(
        id: usize,
        config: &ReactorConfig,
        mailboxes: Arc<[Arc<Mailbox<S>>]>,
        service: S,
    ) -> Result<Reactor<S, D>, ReactorError> {
        let waker = mailboxes[id].waker.clone();
        let mut driver = D::new(config, waker)?;
        let n = mailboxes.len();
        // Unused, the copy pool keeps at most as much again as the ring.
        let retain = usize::from(config.buffer_count) * config.buffer_size;
        let copies: Arc<dyn BufferPool> =
            Arc::new(SessionBuffers::new(CopyPool::new(retain), driver.buffers()));
        Ok(Reactor {
            id,
            driver,
            mailboxes,
            mesh_backlog: (0..n).map(|_| VecDeque::new()).collect(),
            mesh_wake: vec![false; n],
            conns: Slab::default(),
            listeners: Slab::default(),
            connecters: Slab::default(),
            timers: BinaryHeap::new(),
            copies,
            starved: Vec::new(),
            next_adopter: id,
            shutting_down: false,
            service,
            actions: VecDeque::new(),
            local: VecDeque::new(),
            zc_orphans: HashMap::new(),
            coalesce: config.coalesce,
            ring_entries: config.ring_entries,
            busy: false,
        })
    }

    /// Buffers came back: connections that starved read again.
    fn rearm_starved(&mut self) {
        let bufs = self.driver.buffers();
        if bufs.recycle() > 0 && !self.starved.is_empty() {
            bufs.set_starved(false);
            for key in std::mem::take(&mut self.starved) {
                self.arm_recv(key);
            }
        }
    }

    pub(super) fn run(&mut self) {
        let mut completions = Vec::with_capacity(1024);
        loop {
            self.rearm_starved();
            self.drain_mailbox();
            self.fire_timers();
            self.with_service(|service, io| service.on_tick(io));
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
                .chain(self.service.next_deadline())
                .chain(mesh_retry)
                .min();
            let deadline = next_deadline.map(|at| at.saturating_duration_since(Instant::now()));
            let waker = self.mailboxes[self.id].waker.clone();
            waker.prepare_sleep();
            let queued = self.mailboxes[self.id].has_work() || !self.local.is_empty();
            let plan = wait::plan(
                queued,
                deadline,
                self.coalesce,
                self.busy,
                self.ring_entries,
            );
            if plan == wait::Wait::None {
                waker.cancel_sleep();
            }
            completions.clear();
            self.driver.wait(plan, &*self.copies, &mut completions);
            waker.cancel_sleep();
            // Commands posted before these completions happened go first:
            // a broker route added before a subscription's echo left must be
            // in place when a message answering that echo arrives.
            self.drain_mailbox();
            // A turn that did not wait says little about the traffic:
            // busy stays as it was unless completions came.
            self.busy = !completions.is_empty() || (plan == wait::Wait::None && self.busy);
            for completion in completions.drain(..) {
                self.complete(completion);
            }
        }
        self.driver.finish();
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

    fn complete(&mut self, completion: Completion) {
        match completion {
            Completion::Recv {
                index,
                generation,
                received,
                armed,
            } => self.on_recv(index, generation, received, armed),
            Completion::Sent {
                index,
                generation,
                result,
                notif_follows,
            } => self.on_sent(index, generation, result, notif_follows),
            Completion::SendNotif { index, generation } => self.on_send_notif(index, generation),
            Completion::Accepted {
                index,
                generation,
                result,
                armed,
            } => self.on_accept(index, generation, result, armed),
            Completion::Connected {
                index,
                generation,
                result,
            } => self.on_connect(index, generation, result),
        }
    }

    // ---- the service ----

    /// Runs a service hook with the reactor's [`Io`], then what it asked for.
    pub(super) fn with_service<T>(&mut self, hook: impl FnOnce(&mut S, &mut Io<'_, S>) -> T) -> T {
        let mut io = Io {
            reactor: self.id,
            reactors: self.mailboxes.len(),
            conns: &mut self.conns,
            actions: &mut self.actions,
            timers: &mut self.timers,
        };
        let out = hook(&mut self.service, &mut io);
        self.apply_actions();
        out
    }

    /// Carries out the service's actions, in order (and those they lead to).
    fn apply_actions(&mut self) {
        while let Some(action) = self.actions.pop_front() {
            match action {
                Action::Close(key, reason) => self.close_conn(key, reason),
                Action::Failed(key, error) => self.session_failed(key, error),
                Action::Send(key) => self.pump_send(key),
                Action::Receive(key) => self.receive_again(key),
                Action::Input(key) => self.process(key),
                Action::Deadlines(key) => self.schedule_timer(key),
                Action::HandshakeDone(key) => self.handshake_done(key),
                Action::Command(reactor, command) => {
                    if reactor == self.id {
                        self.local.push_back(command);
                    } else {
                        self.send_to(reactor, Command::Service(command));
                    }
                }
            }
        }
    }

    // ---- mailbox and mesh ----

    fn drain_mailbox(&mut self) {
        let mailbox = self.mailboxes[self.id].clone();
        for ring in mailbox.mesh.iter().flatten() {
            while let Some(cmd) = ring.pop() {
                self.handle(cmd);
            }
        }
        while let Some(cmd) = mailbox.external.pop() {
            self.handle(cmd);
        }
        while let Some(cmd) = self.local.pop_front() {
            self.with_service(|service, io| service.on_command(io, cmd));
        }
    }

    /// Sends work to another reactor over the mesh; wake-ups are batched.
    pub(super) fn send_to(&mut self, reactor: usize, command: Command<S>) {
        debug_assert_ne!(reactor, self.id, "no mesh ring leads to oneself");
        self.mesh_backlog[reactor].push_back(command);
        self.mesh_wake[reactor] = true;
    }

    fn flush_mesh(&mut self) {
        for target in 0..self.mailboxes.len() {
            let Some(ring) = &self.mailboxes[target].mesh[self.id] else {
                continue; // This reactor: nothing is sent to it.
            };
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

    fn handle(&mut self, command: Command<S>) {
        match command {
            Command::Listen { spec, fd, name } => self.listen(spec, fd, name),
            Command::Adopt { spec, fd, peer } => {
                self.add_conn(fd, spec, peer, super::Origin::Accepted, None);
            }
            Command::Connect {
                spec,
                targets,
                link,
                name,
            } => self.connect(spec, targets, link, name),
            Command::CloseOwner(owner) => self.close_owner(Some(owner)),
            Command::StopAccepting(owner) => self.close_listeners(Some(owner)),
            Command::Shutdown => {
                self.shutting_down = true;
                self.close_owner(None);
            }
            Command::Service(command) => {
                self.with_service(|service, io| service.on_command(io, command));
            }
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
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    // ---- timers ----

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, timer)) = self.timers.pop().expect("peeked");
            match timer {
                TimerKey::Conn(key) => self.conn_timer(key, now),
                TimerKey::Connecter(key) => self.connecter_timer(key, now),
                TimerKey::Listener(key) => self.arm_accept(key),
                TimerKey::Service(key) => {
                    self.with_service(|service, io| service.on_timer(io, key, now));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::super::{Reactors, MESH_RING};
    use super::*;

    /// A service that serves nothing, for tests of the reactor alone.
    struct Idle;

    impl Service for Idle {
        type Spec = ();
        type Conn = ();
        type Link = ();
        type Command = ();
        fn new_conn(&mut self, _: &Arc<super::super::ConnSpec<Self>>, _: Option<&()>) {}
        fn on_input(&mut self, _: &mut Io<'_, Self>, _: Key) {}
        fn fill(_: &mut Conn<Self>) -> zmtp_codec::Result<()> {
            Ok(())
        }
        fn drained(_: &Conn<Self>) -> bool {
            true
        }
        fn on_sent(&mut self, _: &mut Io<'_, Self>, _: Key, _: usize) {}
        fn on_gone(&mut self, _: &mut Io<'_, Self>, _: &mut Conn<Self>, _: bool) {}
        fn on_command(&mut self, _: &mut Io<'_, Self>, _: ()) {}
    }

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
        let reactors = Reactors::start(&config, |_, _| Idle).expect("reactors start");
        let seen = Arc::new(AtomicU64::new(0));
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

    /// A service that only sets timers and notes when each fired.
    struct Clock {
        fired: Arc<std::sync::Mutex<Vec<(u32, Instant, Instant)>>>,
        due: HashMap<u32, Instant>,
    }

    impl Service for Clock {
        type Spec = ();
        type Conn = ();
        type Link = ();
        /// Timers to set: (id, when).
        type Command = Vec<(u32, Instant)>;
        fn new_conn(&mut self, _: &Arc<super::super::ConnSpec<Self>>, _: Option<&()>) {}
        fn on_input(&mut self, _: &mut Io<'_, Self>, _: Key) {}
        fn fill(_: &mut Conn<Self>) -> zmtp_codec::Result<()> {
            Ok(())
        }
        fn drained(_: &Conn<Self>) -> bool {
            true
        }
        fn on_sent(&mut self, _: &mut Io<'_, Self>, _: Key, _: usize) {}
        fn on_gone(&mut self, _: &mut Io<'_, Self>, _: &mut Conn<Self>, _: bool) {}
        fn on_command(&mut self, io: &mut Io<'_, Self>, timers: Vec<(u32, Instant)>) {
            for (id, at) in timers {
                self.due.insert(id, at);
                let key = Key {
                    index: id,
                    generation: 0,
                };
                io.timer(at, key);
            }
        }
        fn on_timer(&mut self, _: &mut Io<'_, Self>, key: Key, now: Instant) {
            let due = self.due.remove(&key.index).expect("a timer that was set");
            self.fired.lock().unwrap().push((key.index, due, now));
        }
    }

    /// Thousands of timers over 300 ms, on each driver: every one fires
    /// once, never before it is due, and not long after.
    #[test]
    fn thousands_of_timers_fire_once_each_and_on_time_on_both_drivers() {
        for backend in [super::super::Backend::IoUring, super::super::Backend::Epoll] {
            let config = ReactorConfig {
                buffer_count: 4,
                backend,
                ..ReactorConfig::default()
            };
            let fired = Arc::new(std::sync::Mutex::new(Vec::new()));
            let for_service = fired.clone();
            let reactors = Reactors::start(&config, move |_, _| Clock {
                fired: for_service.clone(),
                due: HashMap::new(),
            })
            .expect("reactors start");
            let start = Instant::now() + Duration::from_millis(20);
            const N: u32 = 5000;
            // Set out of order, some sharing a deadline.
            let timers: Vec<(u32, Instant)> = (0..N)
                .map(|i| {
                    (
                        i,
                        start + Duration::from_micros(u64::from((i * 7919) % N) * 60),
                    )
                })
                .collect();
            reactors.post(0, Command::Service(timers));
            let deadline = Instant::now() + Duration::from_secs(5);
            while fired.lock().unwrap().len() < N as usize {
                assert!(
                    Instant::now() < deadline,
                    "{backend:?}: not all timers fired"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            drop(reactors);
            let fired = fired.lock().unwrap();
            let mut ids: Vec<u32> = fired.iter().map(|&(id, _, _)| id).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), N as usize, "{backend:?}: each once");
            for &(id, due, at) in fired.iter() {
                assert!(at >= due, "{backend:?}: timer {id} fired early");
            }
            // Fired in the order they were due.
            assert!(
                fired.windows(2).all(|w| w[0].1 <= w[1].1),
                "{backend:?}: out of order"
            );
            let late = fired.iter().map(|&(_, due, at)| at - due).max().unwrap();
            assert!(
                late < Duration::from_millis(250),
                "{backend:?}: {late:?} late"
            );
        }
    }
}
