//! CURVE on arbitrary bytes, in three modes chosen by the first input byte:
//!
//! 0. a CURVE server fed a greeting and then the input (HELLO, INITIATE, ...);
//! 1. a CURVE client fed a greeting and then the input (WELCOME, READY, ...);
//! 2. a finished handshake (fixed keys and randomness, so every run is the
//!    same), then MESSAGE decoding (through `poll` alone, or through the
//!    data fast path `drain_messages` and `poll` as the reactor does): the input is cut into frames the peer
//!    seals properly, one byte of the sealed stream is optionally flipped,
//!    and the receiver must give back exactly the frames (no flip) or fail
//!    cleanly (flip). Any input byte may also be fed raw after the sealed ones.
//!
//! Nothing may panic, in any mode.
#![no_main]

use bytes::{Buf, Bytes};
use libfuzzer_sys::fuzz_target;
use zmtp_codec::{
    AllowAll, CurveClient, CurveServer, Event, Greeting, KeyPair, MechanismName, Randomness,
    SecretKey, Session, SessionConfig, SocketType,
};

/// A fixed-seed generator: fuzzing must be reproducible.
struct Fixed(u64);

impl Randomness for Fixed {
    fn fill(&mut self, dest: &mut [u8]) -> zmtp_codec::Result<()> {
        for b in dest {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
        Ok(())
    }
}

fn keys(seed: u8) -> KeyPair {
    KeyPair::from_secret(SecretKey::from_bytes([seed; 32]))
}

fn client() -> Session {
    let mechanism = CurveClient::new(keys(1), keys(2).public).with_randomness(Box::new(Fixed(3)));
    Session::with_mechanism(SessionConfig::new(SocketType::Dealer), Box::new(mechanism))
}

fn server() -> Session {
    let mechanism = CurveServer::new(keys(2), Box::new(AllowAll)).with_randomness(Box::new(Fixed(4)));
    Session::with_mechanism(SessionConfig::new(SocketType::Dealer), Box::new(mechanism))
}

fn take_all(s: &mut Session) -> Bytes {
    let n = s.outbox().remaining();
    s.outbox().copy_to_bytes(n)
}

/// Feeds `bytes` and collects events until the input is used up or fails.
fn feed(s: &mut Session, bytes: Bytes) -> (Vec<Event>, bool) {
    feed_draining(s, bytes, false)
}

/// As `feed`; with `drain`, the data fast path (`drain_messages`) takes
/// what it can before each `poll`, as the reactor does.
fn feed_draining(s: &mut Session, bytes: Bytes, drain: bool) -> (Vec<Event>, bool) {
    s.feed(bytes);
    let mut events = Vec::new();
    loop {
        if drain {
            s.drain_messages(|m| {
                events.push(Event::Message(m));
                None
            });
        }
        match s.poll() {
            Ok(Some(e)) => events.push(e),
            Ok(None) => return (events, false),
            Err(_) => return (events, true),
        }
    }
}

fn connected() -> (Session, Session) {
    let (mut c, mut s) = (client(), server());
    for _ in 0..4 {
        let out = take_all(&mut c);
        assert!(!feed(&mut s, out).1, "the fixed handshake succeeds");
        let out = take_all(&mut s);
        assert!(!feed(&mut c, out).1, "the fixed handshake succeeds");
    }
    assert!(c.is_ready() && s.is_ready());
    (c, s)
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    match control % 3 {
        0 | 1 => {
            let (mut session, as_server) = if control % 3 == 0 { (server(), false) } else { (client(), true) };
            let mut stream = Greeting::new(1, MechanismName::CURVE, as_server).encode().to_vec();
            stream.extend_from_slice(rest);
            // Chunked feeding reaches the straddling paths too.
            let step = usize::from(control >> 2).max(1);
            for chunk in stream.chunks(step) {
                if feed(&mut session, Bytes::copy_from_slice(chunk)).1 {
                    break;
                }
            }
        }
        _ => {
            let (mut sender, mut receiver) = connected();
            if control & 0x80 != 0 {
                std::mem::swap(&mut sender, &mut receiver);
            }
            // Frames: each input byte below 0x10 ends a frame; bit 0x08 of
            // it says whether the message goes on.
            let mut frames: Vec<(Vec<u8>, bool)> = Vec::new();
            let mut current = Vec::new();
            for &b in rest {
                if b < 0x10 {
                    frames.push((std::mem::take(&mut current), b & 0x08 != 0));
                } else {
                    current.push(b);
                }
            }
            frames.push((current, false));
            for (body, more) in &frames {
                sender.send_frame(Bytes::copy_from_slice(body), *more).expect("ready");
            }
            let mut wire = take_all(&mut sender).to_vec();
            let flip = control & 0x40 != 0 && !wire.is_empty();
            if flip {
                let at = usize::from(rest.first().copied().unwrap_or(0)) * 7 % wire.len();
                wire[at] ^= 1 << (control & 7);
            }
            let (events, failed) = feed_draining(&mut receiver, Bytes::from(wire), control & 0x20 != 0);
            if !flip {
                assert!(!failed, "properly sealed frames are accepted");
                let got: Vec<(Vec<u8>, bool)> = events
                    .iter()
                    .flat_map(|e| match e {
                        Event::Message(m) => {
                            let n = m.frame_count();
                            m.frames().enumerate().map(|(i, f)| (f.to_vec(), i + 1 < n)).collect::<Vec<_>>()
                        }
                        other => panic!("unexpected event {other:?}"),
                    })
                    .collect();
                // Every frame arrives; only complete messages are reported.
                let complete = frames.iter().rposition(|(_, more)| !more).map_or(0, |i| i + 1);
                assert_eq!(got, frames[..complete].to_vec(), "round trip through CURVE");
            }
        }
    }
});
