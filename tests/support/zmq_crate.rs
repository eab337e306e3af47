//! libzmq 4.3.4, built from source by the `zmq` crate, in this process.

use std::sync::OnceLock;
use std::time::Duration;

use super::{LibzmqPeer, Opt};

fn context() -> &'static zmq::Context {
    static CONTEXT: OnceLock<zmq::Context> = OnceLock::new();
    CONTEXT.get_or_init(zmq::Context::new)
}

pub struct ZmqCratePeer {
    socket: zmq::Socket,
}

impl ZmqCratePeer {
    pub fn new(kind: &str) -> ZmqCratePeer {
        let kind = match kind {
            "PUB" => zmq::PUB,
            "SUB" => zmq::SUB,
            "XPUB" => zmq::XPUB,
            "XSUB" => zmq::XSUB,
            "PUSH" => zmq::PUSH,
            "PULL" => zmq::PULL,
            "DEALER" => zmq::DEALER,
            "ROUTER" => zmq::ROUTER,
            "PAIR" => zmq::PAIR,
            other => panic!("no such socket type: {other}"),
        };
        let socket = context().socket(kind).expect("zmq_socket");
        socket.set_linger(0).expect("ZMQ_LINGER");
        ZmqCratePeer { socket }
    }
}

impl LibzmqPeer for ZmqCratePeer {
    fn version(&self) -> String {
        let (major, minor, patch) = zmq::version();
        format!("{major}.{minor}.{patch}")
    }

    fn bind(&mut self, endpoint: &str) -> String {
        self.socket.bind(endpoint).expect("zmq_bind");
        self.socket
            .get_last_endpoint()
            .expect("ZMQ_LAST_ENDPOINT")
            .expect("endpoint is UTF-8")
    }

    fn connect(&mut self, endpoint: &str) {
        self.socket.connect(endpoint).expect("zmq_connect");
    }

    fn send(&mut self, frames: &[&[u8]]) {
        self.socket.send_multipart(frames, 0).expect("zmq_send");
    }

    fn recv(&mut self, timeout: Duration) -> Option<Vec<Vec<u8>>> {
        let ready = self
            .socket
            .poll(zmq::POLLIN, timeout.as_millis() as i64)
            .expect("zmq_poll");
        (ready > 0).then(|| self.socket.recv_multipart(0).expect("zmq_recv"))
    }

    fn subscribe(&mut self, topic: &[u8]) {
        self.socket.set_subscribe(topic).expect("ZMQ_SUBSCRIBE");
    }

    fn unsubscribe(&mut self, topic: &[u8]) {
        self.socket.set_unsubscribe(topic).expect("ZMQ_UNSUBSCRIBE");
    }

    fn set(&mut self, opt: Opt) {
        let (name, value) = opt.raw();
        set_raw(&mut self.socket, name, &value);
    }
}

/// Sets a socket option through the C API, because the crate has no
/// setter for some options (ZMQ_XPUB_VERBOSER, ZMQ_XPUB_NODROP).
pub fn set_raw(socket: &mut zmq::Socket, name: i32, value: &[u8]) {
    // SAFETY: the socket pointer is valid for the life of `socket`, and
    // `value` is a live buffer of the length passed.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            socket.as_mut_ptr(),
            name,
            value.as_ptr().cast(),
            value.len(),
        )
    };
    assert_eq!(rc, 0, "zmq_setsockopt({name}) failed");
}

/// Sets an int socket option (`zmq_sys::ZMQ_*`) through the C API.
pub fn set_int(socket: &mut zmq::Socket, option: u32, value: i32) {
    set_raw(socket, option as i32, &value.to_ne_bytes());
}
