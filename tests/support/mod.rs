//! Real libzmq peers for interop tests, in the two versions that differ on
//! the wire: 4.3.4 in-process through the `zmq` crate, and 4.3.5 through
//! pyzmq in a subprocess (a venv the tests make on first use).
#![allow(dead_code)] // each test binary uses a different part

use std::time::Duration;

pub mod ports;
pub mod pyzmq;
pub mod raw;
pub mod venv;
pub mod zmq_crate;

/// The messages every data test sends: 0 B, 1 B, 255 B, 256 B and 1 MiB
/// frames, single and multipart.
pub fn test_messages() -> Vec<Vec<Vec<u8>>> {
    let sizes = [0usize, 1, 255, 256, 1 << 20];
    let mut messages: Vec<Vec<Vec<u8>>> = sizes.iter().map(|&n| vec![vec![b'x'; n]]).collect();
    messages.push(
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| vec![i as u8; n])
            .collect(),
    );
    messages
}

/// A libzmq socket the test drives. Dropping it closes the socket at once.
pub trait LibzmqPeer: Send {
    /// The library's own version string, "4.3.4" or "4.3.5".
    fn version(&self) -> String;
    /// Binds; `tcp://127.0.0.1:0` picks a port. Returns the bound endpoint.
    fn bind(&mut self, endpoint: &str) -> String;
    /// Connects (libzmq connects in the background and retries).
    fn connect(&mut self, endpoint: &str);
    /// Sends one multipart message, blocking.
    fn send(&mut self, frames: &[&[u8]]);
    /// Receives one whole multipart message, or `None` after `timeout`.
    fn recv(&mut self, timeout: Duration) -> Option<Vec<Vec<u8>>>;
    /// `ZMQ_SUBSCRIBE` (SUB).
    fn subscribe(&mut self, topic: &[u8]);
    /// `ZMQ_UNSUBSCRIBE` (SUB).
    fn unsubscribe(&mut self, topic: &[u8]);
    /// Sets a socket option; call before bind/connect.
    fn set(&mut self, opt: Opt);

    /// Lets libzmq attach a newly accepted connection. A bound libzmq
    /// socket adopts an accepted connection (and replays its subscriptions
    /// to it) only when the application next calls into the library, and
    /// `setsockopt` does not count; a short poll does.
    fn settle(&mut self) {
        let unexpected = self.recv(Duration::from_millis(100));
        assert!(
            unexpected.is_none(),
            "nothing was sent yet, got {unexpected:?}"
        );
    }
}

/// The socket options the tests use, with libzmq's option numbers.
#[derive(Debug, Clone)]
pub enum Opt {
    /// ZMQ_SNDHWM (23).
    SndHwm(i32),
    /// ZMQ_RCVHWM (24).
    RcvHwm(i32),
    /// ZMQ_XPUB_VERBOSE (40).
    XpubVerbose(bool),
    /// ZMQ_XPUB_VERBOSER (78).
    XpubVerboser(bool),
    /// ZMQ_XPUB_NODROP (69).
    XpubNodrop(bool),
    /// ZMQ_HEARTBEAT_IVL (75), ms.
    HeartbeatIvl(i32),
    /// ZMQ_HEARTBEAT_TTL (76), ms.
    HeartbeatTtl(i32),
    /// ZMQ_HEARTBEAT_TIMEOUT (77), ms.
    HeartbeatTimeout(i32),
    /// ZMQ_MAXMSGSIZE (22), bytes.
    MaxMsgSize(i64),
}

impl Opt {
    /// libzmq's option number and the value as the bytes `zmq_setsockopt` takes.
    pub fn raw(&self) -> (i32, Vec<u8>) {
        let int = |v: i32| v.to_ne_bytes().to_vec();
        match *self {
            Opt::SndHwm(v) => (23, int(v)),
            Opt::RcvHwm(v) => (24, int(v)),
            Opt::XpubVerbose(v) => (40, int(v.into())),
            Opt::XpubVerboser(v) => (78, int(v.into())),
            Opt::XpubNodrop(v) => (69, int(v.into())),
            Opt::HeartbeatIvl(v) => (75, int(v)),
            Opt::HeartbeatTtl(v) => (76, int(v)),
            Opt::HeartbeatTimeout(v) => (77, int(v)),
            Opt::MaxMsgSize(v) => (22, v.to_ne_bytes().to_vec()),
        }
    }
}

/// A libzmq 4.3.4 socket of `kind` ("PUB", "XSUB", ...), in this process.
pub fn zmq_crate_peer(kind: &str) -> Box<dyn LibzmqPeer> {
    Box::new(zmq_crate::ZmqCratePeer::new(kind))
}

/// A libzmq 4.3.5 socket of `kind`, in a pyzmq subprocess.
pub fn pyzmq_peer(kind: &str) -> Box<dyn LibzmqPeer> {
    Box::new(pyzmq::PyzmqPeer::new(kind))
}

/// A libzmq 4.3.5 socket of `kind` with its CURVE and PLAIN controls.
pub fn pyzmq_secure_peer(kind: &str) -> pyzmq::PyzmqPeer {
    pyzmq::PyzmqPeer::new(kind)
}

/// One peer of each version, for tests that must pass against both.
pub fn all_peers(kind: &str) -> Vec<Box<dyn LibzmqPeer>> {
    vec![zmq_crate_peer(kind), pyzmq_peer(kind)]
}
