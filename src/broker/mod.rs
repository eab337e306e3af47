//! `zring broker`: the central XPUB/XSUB broker of a Zeek cluster, a
//! drop-in for the `zmq_proxy` Zeek runs (contract §3.6, B1–B10).
//!
//! Two bound endpoints, as Zeek's proxy binds them:
//!
//! - the **XPUB side** (`listen_xpub_endpoint`): nodes' XSUB sockets
//!   connect here, send subscriptions and receive published messages;
//! - the **XSUB side** (`listen_xsub_endpoint`): nodes' XPUB sockets
//!   connect here, publish messages and receive subscriptions.
//!
//! Everything runs on reactor threads. A published message goes from the
//! reactor that received it straight into the lanes of the matching
//! subscribers (`egress`), as one shared buffer: no proxy thread, no copy.
//! Subscription state lives in one `book::Book` on reactor 0 (the
//! coordinator), which keeps every reactor's routing copy (`shard`) in step.

mod book;
pub mod config;
mod coordinator;
mod egress;
mod match_cache;
pub mod metrics;
mod service;
mod shard;

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use zmtp_codec::SessionConfig;

pub use self::config::{BrokerConfig, ConfigError, SlowSubscriber};
use self::service::{BrokerService, BrokerSpec};
use crate::counters::{Counters, SocketStats};
use crate::endpoint::Endpoint;
use crate::reactor::{Command, ConnSpec, Reactors};
use crate::security::{AddressLists, LiveSecurity, Security};
use crate::socket::options::{SocketKind, SocketOptions};
use crate::sys;

/// Which of the broker's two endpoints a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The XPUB side: the peer is a node's XSUB, a subscriber.
    Subscribers,
    /// The XSUB side: the peer is a node's XPUB, a publisher.
    Publishers,
}

/// The reactor that owns the subscription book.
pub(crate) const COORDINATOR: usize = 0;

macro_rules! broker_counters {
    ($($(#[$doc:meta])* $field:ident => $name:ident),* $(,)?) => {
        /// The broker's own counters, one set per reactor.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Counter { $($name,)* }

        const COUNTERS: usize = [$(Counter::$name),*].len();

        /// A snapshot of the broker's counters, summed over reactors.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct BrokerCounters { $($(#[$doc])* pub $field: u64,)* }

        impl BrokerCounters {
            fn from_array(a: &[u64; COUNTERS]) -> BrokerCounters {
                BrokerCounters { $($field: a[Counter::$name as usize],)* }
            }
        }
    };
}

broker_counters! {
    /// Frames of data messages received from publishers (Zeek's
    /// `proxy_frontend_messages_received`).
    frontend_frames_in => FrontendFramesIn,
    /// Their body bytes.
    frontend_bytes_in => FrontendBytesIn,
    /// Frames of subscription messages forwarded to publishers, counted
    /// once per message however many publishers it reached
    /// (`proxy_frontend_messages_sent`).
    frontend_frames_out => FrontendFramesOut,
    /// Their body bytes.
    frontend_bytes_out => FrontendBytesOut,
    /// Frames of subscription messages received from subscribers, and of
    /// the cancels a departing subscriber implies (`proxy_backend_messages_received`).
    backend_frames_in => BackendFramesIn,
    /// Their body bytes.
    backend_bytes_in => BackendBytesIn,
    /// Frames of data messages forwarded to subscribers, once per message
    /// (`proxy_backend_messages_sent`).
    backend_frames_out => BackendFramesOut,
    /// Their body bytes.
    backend_bytes_out => BackendBytesOut,
    /// Data messages received from publishers.
    messages_in => MessagesIn,
    /// Data messages that matched no subscriber.
    unmatched => Unmatched,
    /// Messages queued for a subscriber (one per message and subscriber).
    deliveries => Deliveries,
    /// Dropped for a full subscriber under policy `drop`.
    dropped_slow => DroppedSlow,
    /// Dropped for a subscriber evicted under policy `disconnect`.
    dropped_evicted => DroppedEvicted,
    /// Not queued because the subscriber was closing.
    dropped_subscriber_gone => DroppedSubscriberGone,
    /// Queued for a subscriber (counted in `deliveries`) but never sent
    /// because it disconnected: `deliveries` = sent + this.
    lost_on_disconnect => LostOnDisconnect,
    /// Lost because their publisher disconnected while it waited for room.
    dropped_publisher_gone => DroppedPublisherGone,
    /// Times a publisher waited for a full subscriber (policy block and disconnect).
    stalls => Stalls,
    /// Microseconds publishers spent waiting for full subscribers.
    stall_micros => StallMicros,
    /// Subscribers closed under policy `disconnect`.
    evictions => Evictions,
    /// Subscribe messages received.
    subscriptions_in => SubscriptionsIn,
    /// Cancel messages received.
    cancels_in => CancelsIn,
    /// Data messages subscribers sent (ignored).
    ignored_from_subscribers => IgnoredFromSubscribers,
}

/// State every reactor serving the broker shares.
pub(crate) struct BrokerShared {
    pub(crate) config: BrokerConfig,
    pub(crate) reactors: usize,
    next_id: AtomicU64,
    /// Per reactor; each is written by its reactor only.
    counters: Box<[CachePadded<[AtomicU64; COUNTERS]>]>,
    /// Gauges the coordinator keeps up to date.
    pub(crate) upstream_prefixes: AtomicU64,
    pub(crate) subscribers: AtomicU64,
    pub(crate) publishers: AtomicU64,
    /// Connection-level counters of each side.
    xpub_side: Arc<Counters>,
    xsub_side: Arc<Counters>,
}

impl std::fmt::Debug for BrokerShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerShared")
            .field("reactors", &self.reactors)
            .finish()
    }
}

impl BrokerShared {
    /// Shared state for `reactors` reactors and the default configuration,
    /// for unit tests of the broker's parts.
    #[cfg(test)]
    pub(crate) fn for_tests(reactors: usize) -> Arc<BrokerShared> {
        BrokerShared::new(BrokerConfig::default(), reactors)
    }

    fn new(config: BrokerConfig, reactors: usize) -> Arc<BrokerShared> {
        Arc::new(BrokerShared {
            reactors,
            next_id: AtomicU64::new(1),
            counters: (0..reactors)
                .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            upstream_prefixes: AtomicU64::new(0),
            subscribers: AtomicU64::new(0),
            publishers: AtomicU64::new(0),
            xpub_side: Arc::default(),
            xsub_side: Arc::default(),
            config,
        })
    }

    /// A new connection id (subscribers and publishers share the space).
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds to a counter of `reactor`, from that reactor's thread (its
    /// only writer: no read-modify-write needed).
    pub(crate) fn count(&self, reactor: usize, counter: Counter, n: u64) {
        if n > 0 {
            let c = &self.counters[reactor][counter as usize];
            c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> BrokerCounters {
        let mut sum = [0u64; COUNTERS];
        for reactor in self.counters.iter() {
            for (s, c) in sum.iter_mut().zip(reactor.iter()) {
                *s += c.load(Ordering::Relaxed);
            }
        }
        BrokerCounters::from_array(&sum)
    }
}

/// Everything the broker counts, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// The broker's own counters.
    pub broker: BrokerCounters,
    /// Connection counters of the XPUB side (subscribers).
    pub xpub_side: SocketStats,
    /// Connection counters of the XSUB side (publishers).
    pub xsub_side: SocketStats,
    /// Prefixes subscribed by at least one subscriber.
    pub upstream_prefixes: u64,
    /// Subscriber connections (handshake done).
    pub subscribers: u64,
    /// Publisher connections (handshake done).
    pub publishers: u64,
    /// The kernel interface the reactors run on: `io_uring` or `epoll`.
    pub backend: &'static str,
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The configuration is inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An endpoint is malformed, unresolvable or cannot be bound.
    #[error("{what}: {detail}")]
    Endpoint {
        /// Which option and value.
        what: String,
        /// What went wrong.
        detail: String,
    },
    /// The reactors could not start.
    #[error(transparent)]
    Reactor(#[from] crate::reactor::ReactorError),
    /// Anything else the operating system refused.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

/// A running broker. Dropping it shuts it down (lingering up to `linger`).
pub struct Broker {
    shared: Arc<BrokerShared>,
    xpub_endpoint: String,
    xsub_endpoint: String,
    reactors: Option<Reactors<BrokerService>>,
    /// Both sides' security, which [`Broker::reload_security`] replaces.
    security: Arc<LiveSecurity>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("xpub", &self.xpub_endpoint)
            .field("xsub", &self.xsub_endpoint)
            .finish()
    }
}

impl Broker {
    /// Checks `config`, starts the reactors and binds both endpoints.
    pub fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        Broker::start_with_security(config, Security::Null)
    }

    /// As [`Broker::start`], with both sides' connections run with
    /// `security` (Zeek 8.2's encrypted clusters: a CURVE server admitting
    /// the cluster's client key).
    pub fn start_with_security(
        config: BrokerConfig,
        security: Security,
    ) -> Result<Broker, BrokerError> {
        config.validate()?;
        let security = Arc::new(LiveSecurity::new(
            security.with_address_lists(&config.addresses),
        ));
        let reactor_config = config.reactor_config();
        let n = reactor_config.cores.len().max(1);
        let shared = BrokerShared::new(config, n);
        // Bind before starting threads: a taken port fails fast.
        let (xpub_fd, xpub_endpoint) = bind(
            "listen_xpub_endpoint",
            &shared.config.listen_xpub_endpoint,
            shared.config.ipv6,
        )?;
        let (xsub_fd, xsub_endpoint) = bind(
            "listen_xsub_endpoint",
            &shared.config.listen_xsub_endpoint,
            shared.config.ipv6,
        )?;
        let service_shared = shared.clone();
        let reactors = Reactors::start(&reactor_config, move |reactor, _| {
            BrokerService::new(reactor, service_shared.clone())
        })?;
        let spec = |side: Side| {
            let config = &shared.config;
            let (kind, counters, owner) = match side {
                Side::Subscribers => (SocketKind::Xpub, shared.xpub_side.clone(), 1),
                Side::Publishers => (SocketKind::Xsub, shared.xsub_side.clone(), 2),
            };
            let mut opts = SocketOptions::defaults(kind);
            opts.linger = Some(config.linger);
            opts.sndhwm = config.xpub_sndhwm;
            opts.rcvhwm = config.xsub_rcvhwm;
            opts.handshake_ivl = Some(Duration::from_secs(30));
            match side {
                Side::Subscribers => opts.sndbuf = config.xpub_sndbuf,
                Side::Publishers => opts.rcvbuf = config.xsub_rcvbuf,
            }
            let mut session = SessionConfig::new(kind.zmtp_type());
            session.max_frame_size = config.max_message_size;
            session.max_message_size = config.max_message_size;
            Arc::new(ConnSpec {
                owner,
                opts: crate::socket::service::conn_options(&opts),
                session,
                security: security.clone(),
                counters,
                service: BrokerSpec {
                    shared: shared.clone(),
                    side,
                },
            })
        };
        // Listeners on different reactors, so accepting spreads.
        reactors.post(
            0,
            Command::Listen {
                spec: spec(Side::Subscribers),
                fd: xpub_fd,
                name: xpub_endpoint.clone(),
            },
        );
        reactors.post(
            1 % n,
            Command::Listen {
                spec: spec(Side::Publishers),
                fd: xsub_fd,
                name: xsub_endpoint.clone(),
            },
        );
        Ok(Broker {
            shared,
            xpub_endpoint,
            xsub_endpoint,
            reactors: Some(reactors),
            security,
        })
    }

    /// Replaces both sides' security and address lists for connections
    /// accepted from now on (a reload: new allow and deny lists, client
    /// keys, the server's keys); established connections keep theirs.
    /// Refused, changing nothing, when the mechanism would change.
    pub fn reload_security(&self, security: Security, lists: &AddressLists) -> Result<(), String> {
        self.security.replace(security.with_address_lists(lists))
    }

    /// The XPUB side's endpoint as bound (with the port chosen for `:*`).
    pub fn xpub_endpoint(&self) -> &str {
        &self.xpub_endpoint
    }

    /// The XSUB side's endpoint as bound.
    pub fn xsub_endpoint(&self) -> &str {
        &self.xsub_endpoint
    }

    /// The configuration in effect.
    pub fn config(&self) -> &BrokerConfig {
        &self.shared.config
    }

    /// A snapshot of every counter.
    pub fn stats(&self) -> BrokerStats {
        stats(&self.shared, self.backend())
    }

    /// The kernel interface the reactors run on: `"io_uring"` or `"epoll"`.
    pub fn backend(&self) -> &'static str {
        self.reactors.as_ref().map_or("none", |r| r.backend())
    }

    /// A function that renders the metrics, for a metrics server thread.
    pub fn metrics_source(&self) -> metrics::Source {
        let shared = self.shared.clone();
        let backend = self.backend();
        Arc::new(move || metrics::render(&stats(&shared, backend)))
    }

    /// Closes both endpoints and every connection, sending what is queued
    /// for up to `linger`, and waits for the reactors to finish.
    pub fn shutdown(mut self) {
        drop(self.reactors.take());
    }
}

fn stats(shared: &BrokerShared, backend: &'static str) -> BrokerStats {
    BrokerStats {
        backend,
        broker: shared.snapshot(),
        xpub_side: shared.xpub_side.snapshot(),
        xsub_side: shared.xsub_side.snapshot(),
        upstream_prefixes: shared.upstream_prefixes.load(Ordering::Relaxed),
        subscribers: shared.subscribers.load(Ordering::Relaxed),
        publishers: shared.publishers.load(Ordering::Relaxed),
    }
}

/// Binds one of the broker's endpoints; errors name the option and value.
fn bind(
    option: &str,
    endpoint: &str,
    ipv6: bool,
) -> Result<(std::os::fd::OwnedFd, String), BrokerError> {
    let what = || format!("{option} = {endpoint:?}");
    let parsed = Endpoint::parse(endpoint).map_err(|e| BrokerError::Endpoint {
        what: what(),
        detail: e.to_string(),
    })?;
    match &parsed {
        Endpoint::Tcp { host, .. } => {
            let mut addr = *parsed
                .bind_addrs()
                .map_err(|e| BrokerError::Endpoint {
                    what: what(),
                    detail: e.to_string(),
                })?
                .first()
                .ok_or_else(|| BrokerError::Endpoint {
                    what: what(),
                    detail: "resolves to no address".into(),
                })?;
            if addr.is_ipv6() && !ipv6 {
                return Err(BrokerError::Endpoint {
                    what: what(),
                    detail: "is an IPv6 address but ipv6 is off (set ipv6 = true, as \
                             Zeek's Cluster::Backend::ZeroMQ::ipv6)"
                        .into(),
                });
            }
            if ipv6 && *host == crate::endpoint::Host::Any {
                // With ipv6 on, `*` is every address of both families.
                addr =
                    std::net::SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), addr.port());
            }
            let (fd, local) = sys::tcp_listen(addr).map_err(|e| BrokerError::Endpoint {
                what: what(),
                detail: match e.raw_os_error() {
                    Some(libc::EADDRINUSE) => {
                        format!("the address is already in use ({e}); is another broker running?")
                    }
                    Some(libc::EADDRNOTAVAIL) => {
                        format!("no local interface has this address ({e})")
                    }
                    _ => format!("cannot bind: {e}"),
                },
            })?;
            sys::set_backlog(fd.as_raw_fd(), 1024);
            let shown = match local {
                std::net::SocketAddr::V6(a) => format!("tcp://[{}]:{}", a.ip(), a.port()),
                std::net::SocketAddr::V4(a) => format!("tcp://{a}"),
            };
            Ok((fd, shown))
        }
        Endpoint::Ipc(path) => {
            let fd = sys::ipc_listen(path).map_err(|e| BrokerError::Endpoint {
                what: what(),
                detail: format!("cannot bind: {e}"),
            })?;
            sys::set_backlog(fd.as_raw_fd(), 1024);
            Ok((fd, parsed.to_string()))
        }
    }
}
