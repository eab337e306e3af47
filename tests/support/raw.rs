//! A ZMTP peer made of the codec and a blocking `TcpStream`: for talking to
//! libzmq byte by byte, and for playing a misbehaving or silent peer.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use zmtp_codec::{Error, Event, PeerInfo, Session, SessionConfig};

const TIMEOUT: Duration = Duration::from_secs(5);

/// One codec session over a blocking TCP stream.
pub struct Conn {
    pub stream: TcpStream,
    pub session: Session,
}

impl Conn {
    pub fn connect(endpoint: &str, config: SessionConfig) -> Conn {
        let addr = endpoint.strip_prefix("tcp://").expect("tcp endpoint");
        let stream = TcpStream::connect(addr).expect("connect to libzmq");
        Conn::over(stream, config)
    }

    pub fn accept(listener: &TcpListener, config: SessionConfig) -> Conn {
        let (stream, _) = listener.accept().expect("libzmq connects");
        Conn::over(stream, config)
    }

    pub fn over(stream: TcpStream, config: SessionConfig) -> Conn {
        Conn::over_session(stream, Session::new(config))
    }

    /// A connection whose session is already made (e.g. with a CURVE or PLAIN mechanism).
    pub fn over_session(stream: TcpStream, session: Session) -> Conn {
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let mut conn = Conn { stream, session };
        conn.flush();
        conn
    }

    pub fn flush(&mut self) {
        let outbox = self.session.outbox();
        while outbox.has_remaining() {
            let mut iov = [std::io::IoSlice::new(&[]); 64];
            let n = outbox.chunks_vectored(&mut iov);
            match self.stream.write_vectored(&iov[..n]) {
                Ok(written) => outbox.advance(written),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("write to libzmq failed: {e}"),
            }
        }
    }

    /// The next event, reading as needed. `Ok(None)` on timeout; `Err` carries
    /// the codec's verdict, or `Closed` when libzmq hung up.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, Outcome> {
        let deadline = Instant::now() + timeout;
        loop {
            let event = self.session.poll().map_err(Outcome::Codec)?;
            self.flush();
            if let Some(event) = event {
                return Ok(Some(event));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            let mut buf = vec![0u8; 256 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(Outcome::Closed),
                Ok(n) => {
                    buf.truncate(n);
                    self.session.feed(Bytes::from(buf));
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Err(Outcome::Closed),
                Err(e) => panic!("read from libzmq failed: {e}"),
            }
        }
    }

    /// Reads and discards without answering (not even PINGs), until the
    /// peer closes (`Err(Closed)`) or `timeout` passes (`Ok(None)`).
    pub fn next_event_passive(&mut self, timeout: Duration) -> Result<Option<Event>, Outcome> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(Outcome::Closed),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Err(Outcome::Closed),
                Err(e) => panic!("read failed: {e}"),
            }
        }
        Ok(None)
    }

    pub fn handshake(&mut self) -> PeerInfo {
        match self.next_event(TIMEOUT) {
            Ok(Some(Event::Ready(peer))) => peer,
            other => panic!("expected READY, got {other:?}"),
        }
    }

    /// Skips heartbeats; returns the next message or subscription.
    pub fn next_significant(&mut self) -> Event {
        loop {
            match self.next_event(TIMEOUT) {
                Ok(Some(Event::Ping { .. } | Event::Pong { .. })) => continue,
                Ok(Some(event)) => return event,
                other => panic!("expected an event, got {other:?}"),
            }
        }
    }

    pub fn recv_frames(&mut self) -> Vec<Vec<u8>> {
        match self.next_significant() {
            Event::Message(m) => m.frames().map(<[u8]>::to_vec).collect(),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    pub fn send(&mut self, frames: &[&[u8]]) {
        let frames: Vec<Bytes> = frames.iter().map(|f| Bytes::copy_from_slice(f)).collect();
        self.session.send_frames(&frames).expect("session ready");
        self.flush();
    }
}

#[derive(Debug)]
pub enum Outcome {
    Codec(Error),
    Closed,
}
