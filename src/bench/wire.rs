//! ZMTP for a load generator: the handshake through the codec, then raw
//! bytes. Messages are encoded once into a block and written many at a
//! time; received bytes are walked frame header by frame header, reading
//! only the few bytes of each message the benchmark needs. Nothing here
//! allocates per message.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use zmtp_codec::{Event, Session, SessionConfig, SocketType};

use crate::endpoint::{Endpoint, EndpointError};

/// ZMTP frame flags (RFC 23).
const MORE: u8 = 0x01;
const LONG: u8 = 0x02;
const COMMAND: u8 = 0x04;

/// A connection that finished its handshake, its session kept for the
/// events that come before the raw phase (subscriptions).
pub(crate) struct Handshaken {
    pub(crate) stream: TcpStream,
    pub(crate) session: Session,
    /// What [`Handshaken::next_event`] reads into: kept, because a
    /// publisher asks for thousands of events (one per subscription), and
    /// empty until a read is needed, because most are already queued.
    read_buf: Vec<u8>,
}

/// Why a benchmark connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The endpoint is not `tcp://HOST:PORT`.
    #[error("endpoint {0:?}: the benchmark speaks tcp://HOST:PORT")]
    Endpoint(String),
    /// Nothing accepted the connection before the deadline.
    #[error("cannot connect to {endpoint} within {waited:?}: {error}")]
    Connect {
        /// Where.
        endpoint: String,
        /// How long it tried.
        waited: Duration,
        /// The last error.
        error: std::io::Error,
    },
    /// The peer broke off or broke the protocol during the handshake.
    #[error("{endpoint}: handshake failed: {detail}")]
    Handshake {
        /// Where.
        endpoint: String,
        /// What happened.
        detail: String,
    },
    /// A tcp endpoint with a bad host or port, or one that resolves to no
    /// address.
    #[error(transparent)]
    Address(#[from] EndpointError),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// `endpoint` parsed by the crate's endpoint parser, if it is
/// `tcp://HOST:PORT`; another transport (ipc too) is refused saying what
/// the benchmark speaks, a malformed tcp endpoint saying what is wrong.
fn tcp_endpoint(endpoint: &str) -> Result<Endpoint, WireError> {
    match Endpoint::parse(endpoint) {
        Ok(parsed @ Endpoint::Tcp { .. }) => Ok(parsed),
        Ok(Endpoint::Ipc(_))
        | Err(EndpointError::NoTransport(_) | EndpointError::UnsupportedTransport { .. }) => {
            Err(WireError::Endpoint(endpoint.to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Binds a listener on `endpoint` (`tcp://127.0.0.1:*` or `:0` takes an
/// ephemeral port), on the first of its addresses that binds.
pub(crate) fn bind(endpoint: &str) -> Result<TcpListener, WireError> {
    let mut last = None;
    for addr in tcp_endpoint(endpoint)?.bind_addrs()? {
        match TcpListener::bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| std::io::Error::new(ErrorKind::NotFound, "no address"))
        .into())
}

/// Connects to `endpoint`, retrying until `deadline` (a broker may still be
/// starting), and runs the handshake as `socket_type`.
pub(crate) fn connect(
    endpoint: &str,
    socket_type: SocketType,
    deadline: Instant,
) -> Result<Handshaken, WireError> {
    let parsed = tcp_endpoint(endpoint)?;
    let started = Instant::now();
    let stream = loop {
        // Resolved at each attempt, as a name may not resolve until its
        // host is up; a wildcard never will do.
        let attempt = match parsed.connect_addrs() {
            Ok(addrs) => connect_any(&addrs, deadline),
            Err(e @ EndpointError::WildcardConnect(_)) => return Err(e.into()),
            Err(e) => Err(std::io::Error::new(ErrorKind::NotFound, e.to_string())),
        };
        match attempt {
            Ok(stream) => break stream,
            Err(error) if Instant::now() >= deadline => {
                return Err(WireError::Connect {
                    endpoint: endpoint.to_owned(),
                    waited: started.elapsed(),
                    error,
                })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    handshake(stream, endpoint, socket_type, deadline)
}

/// One attempt at each address in resolver order; the last error if none
/// accepted.
fn connect_any(addrs: &[SocketAddr], deadline: Instant) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(ErrorKind::NotFound, "no address");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        match TcpStream::connect_timeout(addr, left.max(Duration::from_millis(10))) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Accepts one connection on `listener` and runs the handshake.
pub(crate) fn accept(
    listener: &TcpListener,
    socket_type: SocketType,
    deadline: Instant,
) -> Result<Handshaken, WireError> {
    listener.set_nonblocking(true)?;
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    };
    stream.set_nonblocking(false)?;
    let name = format!("tcp://{}", listener.local_addr()?);
    handshake(stream, &name, socket_type, deadline)
}

fn handshake(
    stream: TcpStream,
    endpoint: &str,
    socket_type: SocketType,
    deadline: Instant,
) -> Result<Handshaken, WireError> {
    stream.set_nodelay(true)?;
    let mut conn = Handshaken {
        stream,
        session: Session::new(SessionConfig::new(socket_type)),
        read_buf: Vec::new(),
    };
    let failed = |detail: String| WireError::Handshake {
        endpoint: endpoint.to_owned(),
        detail,
    };
    loop {
        match conn.next_event(deadline) {
            Ok(Some(Event::Ready(_))) => return Ok(conn),
            Ok(Some(_)) => {}
            Ok(None) => return Err(failed("no READY before the deadline".into())),
            Err(e) => return Err(failed(e.to_string())),
        }
    }
}

impl Handshaken {
    /// The connection for a reader that walks frames itself, and the bytes
    /// already read behind the handshake, which it must walk first: a
    /// sender may write its first messages right behind its READY, and
    /// the handshake's reads take them in with it.
    pub(crate) fn into_reader(mut self) -> Result<(TcpStream, Vec<u8>), WireError> {
        let unread = self.session.take_unread().ok_or_else(|| {
            WireError::Io(std::io::Error::other(
                "the peer sent part of a message before the benchmark took over its connection",
            ))
        })?;
        Ok((self.stream, unread.concat()))
    }

    /// Writes what the session queued.
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        let outbox = self.session.outbox();
        while outbox.has_remaining() {
            let mut iov = [std::io::IoSlice::new(&[]); 16];
            let n = outbox.chunks_vectored(&mut iov);
            let written = self.stream.write_vectored(&iov[..n])?;
            outbox.advance(written);
        }
        Ok(())
    }

    /// The next event, reading as needed; `Ok(None)` at the deadline.
    pub(crate) fn next_event(&mut self, deadline: Instant) -> Result<Option<Event>, WireError> {
        loop {
            let event = self
                .session
                .poll()
                .map_err(|e| WireError::Io(std::io::Error::other(e.to_string())))?;
            self.flush()?;
            if let Some(event) = event {
                return Ok(Some(event));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(100))))?;
            if self.read_buf.is_empty() {
                self.read_buf = vec![0u8; 64 * 1024];
            }
            match self.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    return Err(WireError::Io(std::io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "the peer closed the connection",
                    )))
                }
                Ok(n) => self
                    .session
                    .feed(Bytes::copy_from_slice(&self.read_buf[..n])),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// How a [`receive`] loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// `stop` was set.
    Stopped,
    /// The peer closed the connection.
    Closed,
}

/// Hands `on_read` the bytes read with the handshake (`unread`), then each
/// read of `stream`, until `stop` is set or the peer closes. A read waits
/// at most 20 ms, so that `stop` is seen soon after it is set.
pub(crate) fn receive(
    stream: &mut TcpStream,
    unread: &[u8],
    stop: &AtomicBool,
    mut on_read: impl FnMut(&[u8]),
) -> std::io::Result<Ended> {
    on_read(unread);
    let mut buf = vec![0u8; 256 * 1024];
    stream.set_read_timeout(Some(Duration::from_millis(20)))?;
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(Ended::Closed),
            Ok(n) => on_read(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Ended::Stopped)
}

/// Appends one frame to `out`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, body: &[u8], more: bool) {
    let more = if more { MORE } else { 0 };
    if body.len() > 255 {
        out.push(more | LONG);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    } else {
        out.push(more);
        out.push(body.len() as u8);
    }
    out.extend_from_slice(body);
}

/// A subscription message as an XSUB sends it: one frame, `0x01` and the
/// prefix.
pub(crate) fn subscribe_frame(prefix: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(prefix.len() + 1);
    body.push(1);
    body.extend_from_slice(prefix);
    let mut out = Vec::new();
    encode_frame(&mut out, &body, false);
    out
}

/// What the walker found in a message: the first bytes of its frame
/// `probe` (the benchmark's header), and how many bytes of it there were.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Probe {
    pub(crate) bytes: [u8; PROBE],
    pub(crate) len: usize,
}

/// How many bytes of the probed frame are kept.
pub(crate) const PROBE: usize = 24;

/// Walks a ZMTP byte stream (after the handshake) one frame header at a
/// time, across reads of any size: the cost per message is a few
/// branches, whatever its size.
#[derive(Debug)]
pub(crate) struct FrameWalker {
    /// Which frame of a message to keep the start of.
    probe_frame: usize,
    state: State,
    /// The frame's position within the current message.
    frame: usize,
    /// The size bytes of a header being read.
    size: [u8; 8],
    size_have: usize,
    size_want: usize,
    flags: u8,
    /// Body bytes still to skip of the current frame.
    body_left: u64,
    probe: Probe,
    /// Command frames (PING and the like) skipped so far: they belong to
    /// no message. Only the tests read it, to see them skipped, not
    /// counted as messages.
    commands: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Flags,
    Size,
    Body,
}

impl FrameWalker {
    pub(crate) fn new(probe_frame: usize) -> FrameWalker {
        FrameWalker {
            probe_frame,
            state: State::Flags,
            frame: 0,
            size: [0; 8],
            size_have: 0,
            size_want: 0,
            flags: 0,
            body_left: 0,
            probe: Probe::default(),
            commands: 0,
        }
    }

    /// Walks `data`, calling `on_message` with each whole message's probe.
    pub(crate) fn walk(&mut self, mut data: &[u8], mut on_message: impl FnMut(&Probe)) {
        while !data.is_empty() {
            match self.state {
                State::Flags => {
                    self.flags = data[0];
                    data = &data[1..];
                    self.size_have = 0;
                    self.size_want = if self.flags & LONG != 0 { 8 } else { 1 };
                    self.state = State::Size;
                }
                State::Size => {
                    let take = (self.size_want - self.size_have).min(data.len());
                    self.size[self.size_have..self.size_have + take].copy_from_slice(&data[..take]);
                    self.size_have += take;
                    data = &data[take..];
                    if self.size_have == self.size_want {
                        self.body_left = if self.size_want == 8 {
                            u64::from_be_bytes(self.size)
                        } else {
                            u64::from(self.size[0])
                        };
                        if self.flags & COMMAND == 0 && self.frame == self.probe_frame {
                            self.probe.len = 0;
                        }
                        self.state = State::Body;
                        if self.body_left == 0 {
                            self.end_frame(&mut on_message);
                        }
                    }
                }
                State::Body => {
                    let take = (self.body_left.min(data.len() as u64)) as usize;
                    if self.flags & COMMAND == 0 && self.frame == self.probe_frame {
                        let room = PROBE - self.probe.len;
                        let keep = room.min(take);
                        self.probe.bytes[self.probe.len..self.probe.len + keep]
                            .copy_from_slice(&data[..keep]);
                        self.probe.len += keep;
                    }
                    data = &data[take..];
                    self.body_left -= take as u64;
                    if self.body_left == 0 {
                        self.end_frame(&mut on_message);
                    }
                }
            }
        }
    }

    fn end_frame(&mut self, on_message: &mut impl FnMut(&Probe)) {
        self.state = State::Flags;
        if self.flags & COMMAND != 0 {
            // PING and the like: not part of any message.
            self.commands += 1;
            return;
        }
        if self.flags & MORE != 0 {
            self.frame += 1;
        } else {
            if self.frame < self.probe_frame {
                self.probe.len = 0;
            }
            on_message(&self.probe);
            self.frame = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            encode_frame(&mut out, f, i + 1 < frames.len());
        }
        out
    }

    #[test]
    fn the_walker_finds_every_message_and_its_probe_however_the_bytes_are_cut() {
        let long = vec![7u8; 300];
        let mut stream = Vec::new();
        let mut wanted = Vec::new();
        for i in 0..50u64 {
            let header: Vec<u8> = (0..PROBE as u8).map(|b| b ^ i as u8).collect();
            let filler: &[u8] = if i % 3 == 0 { &long } else { b"x" };
            stream.extend(message(&[b"zeek/topic", &header, filler, b""]));
            wanted.push(header);
            if i % 7 == 0 {
                // A PING command between messages.
                stream.extend_from_slice(&[COMMAND, 5, 4, b'P', b'I', b'N', b'G']);
            }
        }
        for chunk in [1, 2, 3, 7, 24, 25, 301, 4096] {
            let mut walker = FrameWalker::new(1);
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                walker.walk(piece, |p| got.push(p.bytes[..p.len].to_vec()));
            }
            assert_eq!(got, wanted, "chunks of {chunk}");
            assert_eq!(walker.commands, 8);
        }
    }

    #[test]
    fn endpoints_bind_as_libzmq_writes_them_and_other_transports_are_refused() {
        for endpoint in ["tcp://127.0.0.1:*", "tcp://127.0.0.1:0"] {
            let listener = bind(endpoint).unwrap();
            let local = listener.local_addr().unwrap();
            assert_eq!(local.ip(), std::net::Ipv4Addr::LOCALHOST, "{endpoint}");
            assert_ne!(local.port(), 0, "{endpoint}");
        }
        for endpoint in ["ipc:///tmp/x", "udp://1.2.3.4:5", "127.0.0.1:5"] {
            let err = bind(endpoint).unwrap_err().to_string();
            assert!(err.contains("speaks tcp://HOST:PORT"), "{endpoint}: {err}");
        }
        let err = bind("tcp://127.0.0.1:x").unwrap_err().to_string();
        assert!(err.contains("port \"x\""), "{err}");
        let err = connect(
            "tcp://*:5",
            SocketType::Push,
            Instant::now() + Duration::from_secs(5),
        )
        .err()
        .expect("a wildcard is refused at once")
        .to_string();
        assert!(err.contains("wildcard"), "{err}");
    }

    #[test]
    fn a_message_without_the_probed_frame_has_an_empty_probe() {
        let mut walker = FrameWalker::new(1);
        let mut lens = Vec::new();
        walker.walk(&message(&[b"only"]), |p| lens.push(p.len));
        walker.walk(&message(&[b"t", b"abc"]), |p| lens.push(p.len));
        assert_eq!(lens, [0, 3]);
    }
}
