//! Socket options: the libzmq ones that matter to these socket types, with
//! libzmq's defaults, plus the two zring adds (the onloop policy and the
//! zero-copy send threshold).

use std::time::Duration;

use zmtp_codec::SocketType;

/// The socket kinds zring implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketKind {
    /// Sends to every subscriber whose subscription prefixes frame 0.
    Pub,
    /// Receives what matches its subscriptions.
    Sub,
    /// PUB that also hands subscriptions (and peers' messages) to the application.
    Xpub,
    /// SUB whose subscriptions are sent as `\x01topic` / `\x00topic` messages.
    Xsub,
    /// Sends each message to one peer, round-robin, skipping full ones.
    Push,
    /// Receives from all peers, fair-queued.
    Pull,
}

impl SocketKind {
    /// The ZMTP socket type announced in READY.
    pub fn zmtp_type(self) -> SocketType {
        match self {
            SocketKind::Pub => SocketType::Pub,
            SocketKind::Sub => SocketType::Sub,
            SocketKind::Xpub => SocketType::XPub,
            SocketKind::Xsub => SocketType::XSub,
            SocketKind::Push => SocketType::Push,
            SocketKind::Pull => SocketType::Pull,
        }
    }

    /// Whether the application may send on it.
    pub fn can_send(self) -> bool {
        !matches!(self, SocketKind::Sub | SocketKind::Pull)
    }

    /// Whether the application may receive on it.
    pub fn can_recv(self) -> bool {
        !matches!(self, SocketKind::Pub | SocketKind::Push)
    }

    /// Lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SocketKind::Pub => "pub",
            SocketKind::Sub => "sub",
            SocketKind::Xpub => "xpub",
            SocketKind::Xsub => "xsub",
            SocketKind::Push => "push",
            SocketKind::Pull => "pull",
        }
    }
}

/// One option to set with [`crate::Socket::set`]. Durations are libzmq's
/// milliseconds; `None` is libzmq's -1 (infinite or disabled, as noted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketOption {
    /// ZMQ_SNDHWM: whole messages queued per peer (0: unlimited). Exact.
    SndHwm(usize),
    /// ZMQ_RCVHWM: capacity of the onloop queue (0: unlimited). Exact.
    RcvHwm(usize),
    /// What a full onloop queue does: `true` (default, as libzmq) stops
    /// reading from peers; `false` drops and counts under `onloop_drops`.
    RcvNodrop(bool),
    /// ZMQ_XPUB_NODROP: refuse (EAGAIN / block) instead of dropping when any
    /// matching subscriber is at SNDHWM.
    XpubNodrop(bool),
    /// ZMQ_XPUB_VERBOSE: report every subscribe, not only new topics.
    XpubVerbose(bool),
    /// ZMQ_XPUB_VERBOSER: report every subscribe and every cancel.
    XpubVerboser(bool),
    /// ZMQ_LINGER: how long close waits to send queued messages (`None`: forever).
    Linger(Option<Duration>),
    /// ZMQ_IMMEDIATE: queue only to connected peers (no pipe before the handshake).
    Immediate(bool),
    /// ZMQ_MAXMSGSIZE: largest frame accepted (`None`: zring's default bound, 256 MiB).
    MaxMsgSize(Option<u64>),
    /// ZMQ_HEARTBEAT_IVL: PING interval (`None`: no heartbeats).
    HeartbeatIvl(Option<Duration>),
    /// ZMQ_HEARTBEAT_TTL: TTL announced in our PINGs.
    HeartbeatTtl(Duration),
    /// ZMQ_HEARTBEAT_TIMEOUT: close when a PING goes unanswered this long (`None`: the interval).
    HeartbeatTimeout(Option<Duration>),
    /// ZMQ_HANDSHAKE_IVL: the whole handshake must finish within it (`None`: no limit).
    HandshakeIvl(Option<Duration>),
    /// ZMQ_RECONNECT_IVL: wait before reconnecting (`None`: never reconnect).
    ReconnectIvl(Option<Duration>),
    /// ZMQ_RECONNECT_IVL_MAX: with a larger value the wait doubles up to it.
    ReconnectIvlMax(Duration),
    /// ZMQ_BACKLOG: listen backlog.
    Backlog(u32),
    /// Batches holding a frame at least this large are sent with zero-copy
    /// send (`None`: never).
    ZeroCopySendAbove(Option<usize>),
    /// ZMQ_SNDBUF: SO_SNDBUF of each connection (`None`: the OS default).
    SndBuf(Option<usize>),
    /// ZMQ_RCVBUF: SO_RCVBUF of each connection (`None`: the OS default).
    RcvBuf(Option<usize>),
    /// Not in libzmq: how long a thread waiting in `recv` (or polling
    /// [`crate::Socket::fd`]) may go on sleeping after a message arrives, so
    /// that it wakes once for many (`None`, the default: at once). A queue
    /// half full wakes it sooner. For receivers that value CPU over
    /// latency, such as `zring logger`: each wake-up costs a few
    /// microseconds of both threads' time.
    RcvWakeDelay(Option<Duration>),
}

/// All options of one socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketOptions {
    /// See [`SocketOption::SndHwm`].
    pub sndhwm: usize,
    /// See [`SocketOption::RcvHwm`].
    pub rcvhwm: usize,
    /// See [`SocketOption::RcvNodrop`].
    pub rcv_nodrop: bool,
    /// See [`SocketOption::XpubNodrop`].
    pub xpub_nodrop: bool,
    /// See [`SocketOption::XpubVerbose`].
    pub xpub_verbose: bool,
    /// See [`SocketOption::XpubVerboser`].
    pub xpub_verboser: bool,
    /// See [`SocketOption::Linger`].
    pub linger: Option<Duration>,
    /// See [`SocketOption::Immediate`].
    pub immediate: bool,
    /// See [`SocketOption::MaxMsgSize`].
    pub max_msg_size: Option<u64>,
    /// See [`SocketOption::HeartbeatIvl`].
    pub heartbeat_ivl: Option<Duration>,
    /// See [`SocketOption::HeartbeatTtl`].
    pub heartbeat_ttl: Duration,
    /// See [`SocketOption::HeartbeatTimeout`].
    pub heartbeat_timeout: Option<Duration>,
    /// See [`SocketOption::HandshakeIvl`].
    pub handshake_ivl: Option<Duration>,
    /// See [`SocketOption::ReconnectIvl`].
    pub reconnect_ivl: Option<Duration>,
    /// See [`SocketOption::ReconnectIvlMax`].
    pub reconnect_ivl_max: Duration,
    /// See [`SocketOption::Backlog`].
    pub backlog: u32,
    /// See [`SocketOption::ZeroCopySendAbove`].
    pub zerocopy_send_above: Option<usize>,
    /// See [`SocketOption::SndBuf`].
    pub sndbuf: Option<usize>,
    /// See [`SocketOption::RcvBuf`].
    pub rcvbuf: Option<usize>,
    /// See [`SocketOption::RcvWakeDelay`].
    pub rcv_wake_delay: Option<Duration>,
}

impl SocketOptions {
    /// libzmq 4.3's defaults for `kind` (LINGER is 0 for SUB and XSUB, as
    /// libzmq sets it there).
    pub fn defaults(kind: SocketKind) -> SocketOptions {
        SocketOptions {
            sndhwm: 1000,
            rcvhwm: 1000,
            rcv_nodrop: true,
            xpub_nodrop: false,
            xpub_verbose: false,
            xpub_verboser: false,
            linger: match kind {
                SocketKind::Sub | SocketKind::Xsub => Some(Duration::ZERO),
                _ => None,
            },
            immediate: false,
            max_msg_size: None,
            heartbeat_ivl: None,
            heartbeat_ttl: Duration::ZERO,
            heartbeat_timeout: None,
            handshake_ivl: Some(Duration::from_secs(30)),
            reconnect_ivl: Some(Duration::from_millis(100)),
            reconnect_ivl_max: Duration::ZERO,
            backlog: 100,
            zerocopy_send_above: Some(256 * 1024),
            sndbuf: None,
            rcvbuf: None,
            rcv_wake_delay: None,
        }
    }

    /// Applies one option.
    pub fn apply(&mut self, option: SocketOption) {
        match option {
            SocketOption::SndHwm(v) => self.sndhwm = v,
            SocketOption::RcvHwm(v) => self.rcvhwm = v,
            SocketOption::RcvNodrop(v) => self.rcv_nodrop = v,
            SocketOption::XpubNodrop(v) => self.xpub_nodrop = v,
            SocketOption::XpubVerbose(v) => self.xpub_verbose = v,
            SocketOption::XpubVerboser(v) => self.xpub_verboser = v,
            SocketOption::Linger(v) => self.linger = v,
            SocketOption::Immediate(v) => self.immediate = v,
            SocketOption::MaxMsgSize(v) => self.max_msg_size = v,
            SocketOption::HeartbeatIvl(v) => self.heartbeat_ivl = v.filter(|d| !d.is_zero()),
            SocketOption::HeartbeatTtl(v) => self.heartbeat_ttl = v,
            SocketOption::HeartbeatTimeout(v) => self.heartbeat_timeout = v,
            SocketOption::HandshakeIvl(v) => self.handshake_ivl = v.filter(|d| !d.is_zero()),
            SocketOption::ReconnectIvl(v) => self.reconnect_ivl = v,
            SocketOption::ReconnectIvlMax(v) => self.reconnect_ivl_max = v,
            SocketOption::Backlog(v) => self.backlog = v,
            SocketOption::ZeroCopySendAbove(v) => self.zerocopy_send_above = v,
            SocketOption::SndBuf(v) => self.sndbuf = v,
            SocketOption::RcvBuf(v) => self.rcvbuf = v,
            SocketOption::RcvWakeDelay(v) => self.rcv_wake_delay = v.filter(|d| !d.is_zero()),
        }
    }

    /// The heartbeat timeout in effect: the option, else the interval.
    pub fn effective_heartbeat_timeout(&self) -> Option<Duration> {
        self.heartbeat_ivl?;
        self.heartbeat_timeout.or(self.heartbeat_ivl)
    }
}
