//! Where connections come from: listeners (multishot accept, connections
//! spread over the reactors) and connecters (connect, reconnect with
//! backoff, linger for what an owner queued before it closed).

use std::cmp::Reverse;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::driver::{Driver, Op};
use super::event_loop::Reactor;
use super::refusals;
use super::service::{ConnSpec, Origin, Service};
use super::slab::Key;
use super::{Command, Target, TimerKey};
use crate::sys;

/// A bound endpoint.
pub(super) struct Listener<S: Service> {
    fd: OwnedFd,
    spec: Arc<ConnSpec<S>>,
    name: String,
    armed: bool,
    closing: bool,
}

impl<S: Service> Drop for Listener<S> {
    /// An ipc endpoint's socket file goes with its listener, as libzmq
    /// removes its own: a clean stop leaves no file behind.
    fn drop(&mut self) {
        use std::os::unix::fs::FileTypeExt;

        let Some(path) = self.name.strip_prefix("ipc://") else {
            return;
        };
        let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
        if is_socket {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::debug!(endpoint = %self.name, "cannot remove the socket file: {e}");
            }
        }
    }
}

/// An endpoint connected to, kept connected.
pub(super) struct Connecter<S: Service> {
    pub(super) spec: Arc<ConnSpec<S>>,
    targets: Vec<Target>,
    next_target: usize,
    link: Option<S::Link>,
    name: String,
    /// The address of the connect in flight (its memory must stay put).
    addr: Box<Option<sys::RawAddr>>,
    fd: Option<OwnedFd>,
    connecting: bool,
    conn: Option<Key>,
    pub(super) ivl: Option<Duration>,
    retry_at: Option<Instant>,
    /// The owner was closed.
    pub(super) closing: bool,
    /// Closed with messages still queued and a non-zero LINGER: keep
    /// connecting until they are sent or `linger_deadline` passes.
    lingering: bool,
    linger_deadline: Option<Instant>,
    /// Connects that failed since the last that worked: the first of a
    /// run is a warning, the rest are quiet until one succeeds.
    failures: u64,
}

impl<S: Service> Connecter<S> {
    /// Whether it should still try to connect.
    fn active(&self) -> bool {
        !self.closing || self.lingering
    }

    fn queued(&self) -> bool {
        self.link.as_ref().is_some_and(S::link_queued)
    }
}

impl<S: Service, D: Driver> Reactor<S, D> {
    // ---- listeners ----

    pub(super) fn listen(&mut self, spec: Arc<ConnSpec<S>>, fd: OwnedFd, name: String) {
        let key = self.listeners.insert_with(|_| Listener {
            fd,
            spec,
            name,
            armed: false,
            closing: false,
        });
        self.arm_accept(key);
    }

    pub(super) fn arm_accept(&mut self, key: Key) {
        let Some(l) = self.listeners.get_mut(key) else {
            return;
        };
        if l.armed || l.closing {
            return;
        }
        l.armed = true;
        let fd = l.fd.as_raw_fd();
        self.driver.accept(key, fd);
    }

    pub(super) fn on_accept(&mut self, index: u32, generation: u32, res: i32, armed: bool) {
        let Some((key, l)) = self.listeners.find_mut(index, generation) else {
            if res >= 0 {
                // Its listener is gone: close it.
                drop(sys::accepted_fd(res));
            }
            return;
        };
        if !armed {
            l.armed = false;
        }
        if res >= 0 {
            let fd = sys::accepted_fd(res);
            if l.closing {
                return;
            }
            let spec = l.spec.clone();
            let counters = &spec.counters;
            counters
                .connections_accepted
                .fetch_add(1, Ordering::Relaxed);
            let addr = sys::peer_addr(&fd);
            let peer = sys::peer_name(addr);
            let refusal = spec.security.admits_address(addr.map(|a| a.ip())).err();
            if let Some(why) = refusal {
                // Before any byte is read: the peer sees the close only.
                counters.access_denied.fetch_add(1, Ordering::Relaxed);
                refusals::refused(&peer, Some(&l.name), refusals::Refusal::Address, &why);
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
            self.remove_listener(key);
        } else if !l.armed {
            self.arm_accept(key);
        }
    }

    /// Closes the listeners of `owner` (of every owner: None). An armed one
    /// goes once its cancelled accept completes.
    pub(super) fn close_listeners(&mut self, owner: Option<u64>) {
        for key in self.listeners.keys() {
            let l = self.listeners.get_mut(key).expect("listed");
            if owner.is_some_and(|o| l.spec.owner != o) || l.closing {
                continue;
            }
            l.closing = true;
            if l.armed {
                let fd = l.fd.as_raw_fd();
                self.driver.cancel(Op::Accept, key, fd);
            } else {
                self.remove_listener(key);
            }
        }
    }

    fn remove_listener(&mut self, key: Key) {
        if let Some(l) = self.listeners.remove(key) {
            self.driver.forget(l.fd.as_raw_fd());
        }
    }

    // ---- connecters ----

    pub(super) fn connect(
        &mut self,
        spec: Arc<ConnSpec<S>>,
        targets: Vec<Target>,
        link: Option<S::Link>,
        name: String,
    ) {
        let ivl = spec.opts.reconnect_ivl;
        if let Some(link) = &link {
            S::link_detached(link);
        }
        let key = self.connecters.insert_with(|_| Connecter {
            spec,
            targets,
            next_target: 0,
            link,
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
            failures: 0,
        });
        self.start_connect(key);
    }

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
        let raw_fd = fd.as_raw_fd();
        c.fd = Some(fd);
        c.connecting = true;
        let addr = c.addr.as_ref().as_ref().expect("just set");
        self.driver.connect(key, raw_fd, addr);
    }

    pub(super) fn on_connect(&mut self, index: u32, generation: u32, res: i32) {
        let Some((key, c)) = self.connecters.find_mut(index, generation) else {
            return;
        };
        c.connecting = false;
        let fd = c.fd.take();
        if let Some(fd) = &fd {
            // Watched for the connect; a connection watches it anew.
            self.driver.forget(fd.as_raw_fd());
        }
        let Some(c) = self.connecters.get_mut(key) else {
            return;
        };
        if !c.active() {
            self.remove_connecter(key);
            return;
        }
        match (res, fd) {
            (0, Some(fd)) => {
                sys::set_nodelay(fd.as_raw_fd());
                let spec = c.spec.clone();
                let peer = c.name.clone();
                if c.failures > 0 {
                    tracing::info!(
                        endpoint = %c.name,
                        failed_attempts = c.failures,
                        "connected after failed attempts"
                    );
                    c.failures = 0;
                }
                spec.counters
                    .connections_established
                    .fetch_add(1, Ordering::Relaxed);
                let (lingering, deadline) = (c.lingering, c.linger_deadline);
                // The link stays with the connecter; the connection gets a
                // hold of it.
                let link = c.link.take();
                let conn = self.add_conn(fd, spec, peer, Origin::Connected(key), link.as_ref());
                if let Some(c) = self.connecters.get_mut(key) {
                    c.link = link;
                    c.conn = Some(conn);
                }
                if lingering {
                    if let Some(conn) = self.conns.get_mut(conn) {
                        conn.linger(deadline);
                    }
                    self.schedule_timer(conn);
                }
            }
            _ => {
                let err = io::Error::from_raw_os_error(-res);
                c.spec
                    .counters
                    .connect_failures
                    .fetch_add(1, Ordering::Relaxed);
                c.failures += 1;
                if c.failures == 1 {
                    // An operator's first question: is the peer up? Once
                    // per outage, not once per retry.
                    tracing::warn!(
                        endpoint = %c.name,
                        errno = -res,
                        "cannot connect: {err}; retrying until it works"
                    );
                } else {
                    tracing::debug!(endpoint = %c.name, "connect failed: {err}");
                }
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

    pub(super) fn connecter_timer(&mut self, key: Key, now: Instant) {
        let Some(c) = self.connecters.get_mut(key) else {
            return;
        };
        if c.lingering && c.linger_deadline.is_some_and(|d| d <= now) {
            c.lingering = false;
            self.abandon_connecter(key);
            return;
        }
        if c.retry_at.is_some_and(|r| r <= now) {
            c.retry_at = None;
            self.start_connect(key);
        }
    }

    /// Gives up on a closed owner's connecter whose linger ran out.
    fn abandon_connecter(&mut self, key: Key) {
        let Some(c) = self.connecters.get_mut(key) else {
            return;
        };
        if c.conn.is_some() {
            // Its connection has the same deadline and closes itself.
            return;
        }
        if c.connecting {
            self.cancel_connect(key);
            return;
        }
        let c = self.remove_connecter(key).expect("present");
        tracing::info!(endpoint = %c.name, "linger expired before a connection was made");
    }

    /// Cancels a connecter's connect in flight; its completion removes it.
    fn cancel_connect(&mut self, key: Key) {
        let Some(c) = self.connecters.get_mut(key) else {
            return;
        };
        let fd = c.fd.as_ref().expect("a connect in flight has its socket");
        let fd = fd.as_raw_fd();
        self.driver.cancel(Op::Connect, key, fd);
    }

    /// Removes a connecter for good. What its owner queued, no connection
    /// will carry: it is counted in `disconnect_drops`.
    fn remove_connecter(&mut self, key: Key) -> Option<Connecter<S>> {
        let c = self.connecters.remove(key)?;
        if let Some(link) = &c.link {
            S::link_discard(link, &c.spec.counters);
        }
        Some(c)
    }

    /// The owner `owner` (every owner: None) was closed: its connecters
    /// stop, or linger while messages wait for a connection.
    pub(super) fn close_connecters(&mut self, owner: Option<u64>) {
        for key in self.connecters.keys() {
            let c = self.connecters.get_mut(key).expect("listed");
            if owner.is_some_and(|o| c.spec.owner != o) || c.closing {
                continue;
            }
            c.closing = true;
            let linger = c.spec.opts.linger;
            if c.queued() && linger != Some(Duration::ZERO) && c.conn.is_none() {
                // Keep trying to deliver what the owner queued.
                c.lingering = true;
                c.linger_deadline = linger.map(|d| Instant::now() + d);
                if let Some(at) = c.linger_deadline {
                    self.timers.push(Reverse((at, TimerKey::Connecter(key))));
                }
            } else if c.connecting {
                self.cancel_connect(key);
            } else if c.conn.is_none() {
                self.remove_connecter(key);
            }
        }
    }

    /// A connecter's connection is gone (`linger_left`: it was lingering,
    /// with this much of its deadline left): reconnect, take over the
    /// linger, or go.
    pub(super) fn connection_gone(&mut self, key: Key, linger_left: Option<Option<Instant>>) {
        let Some(c) = self.connecters.get_mut(key) else {
            return;
        };
        c.conn = None;
        let queued = c.queued();
        if let (true, false, true, Some(deadline)) = (c.closing, c.lingering, queued, linger_left) {
            c.lingering = true;
            c.linger_deadline = deadline;
            if let Some(at) = deadline {
                self.timers.push(Reverse((at, TimerKey::Connecter(key))));
            }
        }
        if c.closing && !(c.lingering && queued) {
            self.remove_connecter(key);
        } else {
            self.schedule_reconnect(key);
        }
    }
}
