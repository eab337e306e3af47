//! libzmq 4.3.5 through pyzmq, whose wheels bundle it (with libsodium, so
//! CURVE too), driven in a Python subprocess (`lzpeer.py`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use super::venv::venv_python;
use super::{LibzmqPeer, Opt};

pub struct PyzmqPeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl PyzmqPeer {
    pub fn new(kind: &str) -> PyzmqPeer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lzpeer.py");
        let mut child = Command::new(venv_python())
            .arg(script)
            .arg(kind)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the pyzmq peer");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        PyzmqPeer {
            child,
            stdin,
            stdout,
        }
    }

    /// One request, one reply line; `err` replies fail the test with their text.
    fn request(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").expect("write to the pyzmq peer");
        self.stdin.flush().expect("flush to the pyzmq peer");
        let mut reply = String::new();
        self.stdout
            .read_line(&mut reply)
            .expect("read from the pyzmq peer");
        let reply = reply.trim_end();
        match reply.split_once(' ').unwrap_or((reply, "")) {
            ("ok", rest) => rest.to_string(),
            ("none", _) => "\0none".to_string(),
            _ => panic!("pyzmq peer: {line:.60}: {reply}"),
        }
    }
}

/// libzmq's security options (`zmq.h`).
pub const ZMQ_PLAIN_SERVER: i32 = 44;
pub const ZMQ_PLAIN_USERNAME: i32 = 45;
pub const ZMQ_PLAIN_PASSWORD: i32 = 46;
pub const ZMQ_CURVE_SERVER: i32 = 47;
pub const ZMQ_CURVE_PUBLICKEY: i32 = 48;
pub const ZMQ_CURVE_SECRETKEY: i32 = 49;
pub const ZMQ_CURVE_SERVERKEY: i32 = 50;
/// `ZMQ_EVENT_HANDSHAKE_FAILED_AUTH`: the value is the ZAP status code.
pub const ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: u32 = 0x4000;
/// `ZMQ_EVENT_HANDSHAKE_SUCCEEDED`.
pub const ZMQ_EVENT_HANDSHAKE_SUCCEEDED: u32 = 0x1000;

/// What only pyzmq's libzmq (built with libsodium) can do: CURVE and PLAIN.
impl PyzmqPeer {
    /// Sets a byte-valued socket option (keys, credentials); before bind/connect.
    pub fn set_bytes(&mut self, option: i32, value: &[u8]) {
        self.request(&format!("setbytes {option} {}", hex(value)));
    }

    /// Makes this socket a CURVE server with `secret`.
    pub fn curve_server(&mut self, secret: &[u8; 32]) {
        self.set_int(ZMQ_CURVE_SERVER, 1);
        self.set_bytes(ZMQ_CURVE_SECRETKEY, secret);
    }

    /// Makes this socket a CURVE client with the pair `public`/`secret`,
    /// trusting the server key `server`.
    pub fn curve_client(&mut self, public: &[u8; 32], secret: &[u8; 32], server: &[u8; 32]) {
        self.set_bytes(ZMQ_CURVE_PUBLICKEY, public);
        self.set_bytes(ZMQ_CURVE_SECRETKEY, secret);
        self.set_bytes(ZMQ_CURVE_SERVERKEY, server);
    }

    /// Binds a ZAP handler in this peer's context that admits exactly the
    /// CURVE client keys and PLAIN (username, password) pairs given.
    pub fn zap(&mut self, curve_keys: &[[u8; 32]], plain: &[(&[u8], &[u8])]) {
        let mut allowed: Vec<String> = curve_keys
            .iter()
            .map(|k| format!("CURVE:{}", hex(k)))
            .collect();
        allowed.extend(
            plain
                .iter()
                .map(|(u, p)| format!("PLAIN:{}:{}", hex(u), hex(p))),
        );
        self.request(&format!("zap {}", allowed.join(" ")));
    }

    /// Sends without blocking; false if libzmq had no room (no peer ready).
    pub fn try_send(&mut self, frames: &[&[u8]]) -> bool {
        let frames: Vec<String> = frames.iter().map(|f| hex(f)).collect();
        self.request(&format!("trysend {}", frames.join(","))) != "\0none"
    }

    /// Starts recording the socket's events (call before bind/connect).
    pub fn monitor(&mut self) {
        self.request("monitor");
    }

    /// The next recorded event as (event, value), or `None` after `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> Option<(u32, u32)> {
        let reply = self.request(&format!("event {}", timeout.as_millis()));
        if reply == "\0none" {
            return None;
        }
        let (event, value) = reply.split_once(' ').expect("EVENT VALUE");
        Some((
            event.parse().expect("event number"),
            value.parse().expect("event value"),
        ))
    }

    /// Waits for `event`, skipping others (connects, accepts, ...).
    pub fn wait_event(&mut self, event: u32, timeout: Duration) -> Option<u32> {
        let deadline = std::time::Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.next_event(left) {
                Some((e, value)) if e == event => return Some(value),
                Some(_) => continue,
                None => return None,
            }
        }
        None
    }

    pub fn set_int(&mut self, option: i32, value: i64) {
        self.request(&format!("set {option} {value}"));
    }
}

impl Drop for PyzmqPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex from the pyzmq peer"))
        .collect()
}

impl LibzmqPeer for PyzmqPeer {
    fn version(&self) -> String {
        // Asked once at start-up would need &mut; the bundled version is fixed by the pin.
        let output = Command::new(venv_python())
            .args(["-c", "import zmq; print(zmq.zmq_version())"])
            .output()
            .expect("ask pyzmq for its libzmq version");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn bind(&mut self, endpoint: &str) -> String {
        self.request(&format!("bind {endpoint}"))
    }

    fn connect(&mut self, endpoint: &str) {
        self.request(&format!("connect {endpoint}"));
    }

    fn send(&mut self, frames: &[&[u8]]) {
        let frames: Vec<String> = frames.iter().map(|f| hex(f)).collect();
        self.request(&format!("send {}", frames.join(",")));
    }

    fn recv(&mut self, timeout: Duration) -> Option<Vec<Vec<u8>>> {
        let reply = self.request(&format!("recv {}", timeout.as_millis()));
        (reply != "\0none").then(|| reply.split(',').map(unhex).collect())
    }

    fn subscribe(&mut self, topic: &[u8]) {
        self.request(&format!("sub {}", hex(topic)));
    }

    fn unsubscribe(&mut self, topic: &[u8]) {
        self.request(&format!("unsub {}", hex(topic)));
    }

    fn set(&mut self, opt: Opt) {
        let (name, value) = opt.raw();
        let value = match value.len() {
            4 => i64::from(i32::from_ne_bytes(value.try_into().expect("4 bytes"))),
            _ => i64::from_ne_bytes(value.try_into().expect("8 bytes")),
        };
        self.request(&format!("set {name} {value}"));
    }
}
