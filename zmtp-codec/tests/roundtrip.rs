//! Property tests: whatever is encoded decodes to the same thing, however the
//! byte stream is cut into chunks, and no input makes the decoders panic.

use bytes::{Buf, Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use zmtp_codec::frame::encode_frame;
use zmtp_codec::{
    Command, Event, Frame, FrameDecoder, FrameFlags, Greeting, MechanismName, Metadata, Session,
    SessionConfig, SocketType,
};

mod support;

/// Cuts `wire` at the given points (taken modulo its length).
fn split(wire: &Bytes, cuts: &[usize]) -> Vec<Bytes> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(0);
    points.push(wire.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| wire.slice(w[0]..w[1])).collect()
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => vec(any::<u8>(), 0..8),
        4 => vec(any::<u8>(), 240..270),
        1 => vec(any::<u8>(), 0..3000),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    (any::<bool>(), any::<bool>(), body()).prop_map(|(more, command, body)| Frame {
        flags: FrameFlags::from_bits(
            u8::from(more) | if command { FrameFlags::COMMAND } else { 0 },
        ),
        body: Bytes::from(body),
    })
}

fn metadata() -> impl Strategy<Value = Metadata> {
    vec((vec(any::<u8>(), 1..20), vec(any::<u8>(), 0..40)), 0..5).prop_map(|props| {
        let mut md = Metadata::new();
        for (n, v) in props {
            md.push(n, v).unwrap();
        }
        md
    })
}

fn command() -> impl Strategy<Value = Command> {
    let bytes = |max| vec(any::<u8>(), 0..max).prop_map(Bytes::from);
    prop_oneof![
        metadata().prop_map(Command::Ready),
        bytes(256).prop_map(Command::Error),
        bytes(300).prop_map(Command::Subscribe),
        bytes(300).prop_map(Command::Cancel),
        (0u16..=655, bytes(17)).prop_map(|(t, c)| Command::Ping {
            ttl_deciseconds: t,
            context: c
        }),
        bytes(17).prop_map(Command::Pong),
    ]
}

/// Sends `messages` on `push` and returns all it wrote, handshake included.
fn send_all(push: &mut Session, messages: &[Vec<Vec<u8>>]) -> Bytes {
    for m in messages {
        let frames: Vec<Bytes> = m.iter().cloned().map(Bytes::from).collect();
        push.send_frames(&frames).unwrap();
    }
    let n = push.outbox().remaining();
    push.outbox().copy_to_bytes(n)
}

/// Feeds `chunk` and appends every received frame, with its MORE flag.
fn receive(pull: &mut Session, chunk: Bytes, received: &mut Vec<(Vec<u8>, bool)>) {
    pull.feed(chunk);
    while let Some(event) = pull.poll().unwrap() {
        if let Event::Message(m) = event {
            let n = m.frame_count();
            received.extend(m.frames().enumerate().map(|(i, f)| (f.to_vec(), i + 1 < n)));
        }
    }
}

/// The frames of `messages`, with their MORE flags.
fn expected_frames(messages: &[Vec<Vec<u8>>]) -> Vec<(Vec<u8>, bool)> {
    messages
        .iter()
        .flat_map(|m| {
            m.iter()
                .enumerate()
                .map(move |(i, b)| (b.clone(), i + 1 < m.len()))
        })
        .collect()
}

/// A PUSH session that has finished its handshake (fed a PULL's greeting and
/// READY), and the PULL that will receive everything PUSH sent, from its
/// greeting on.
fn ready_push_and_fresh_pull() -> (Session, Session) {
    ready_push_and_pull_with(SessionConfig::new(SocketType::Pull))
}

fn ready_push_and_pull_with(pull_config: SessionConfig) -> (Session, Session) {
    let mut push = Session::new(SessionConfig::new(SocketType::Push));
    let mut pull = Session::new(pull_config);
    let mut pull_out = pull.outbox().copy_to_bytes(64);
    push.feed(pull_out.split_to(64));
    assert_eq!(push.poll().unwrap(), None);
    let mut ready = BytesMut::new();
    encode_frame(
        FrameFlags::command(),
        b"\x05READY\x0bSocket-Type\x00\x00\x00\x04PULL",
        &mut ready,
    );
    push.feed(ready.freeze());
    assert!(matches!(push.poll().unwrap(), Some(Event::Ready(_))));
    (push, pull)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn frames_round_trip_through_any_chunking(frames in vec(frame(), 1..12), cuts in vec(any::<usize>(), 0..8)) {
        let mut wire = BytesMut::new();
        for f in &frames {
            encode_frame(f.flags, &f.body, &mut wire);
        }
        let wire = wire.freeze();
        let mut decoder = FrameDecoder::new(u64::MAX);
        let mut decoded = Vec::new();
        for mut chunk in split(&wire, &cuts) {
            while let Some(f) = decoder.decode(&mut chunk).unwrap() {
                decoded.push(f);
            }
        }
        prop_assert!(!decoder.has_partial());
        prop_assert_eq!(decoded.len(), frames.len());
        for (got, want) in decoded.iter().zip(&frames) {
            prop_assert_eq!(got.flags.bits() & !FrameFlags::LONG, want.flags.bits());
            prop_assert_eq!(&got.body, &want.body);
        }
        if cuts.is_empty() {
            prop_assert_eq!(decoder.copied_bytes(), 0);
        }
    }

    #[test]
    fn commands_round_trip(cmd in command()) {
        let decoded = Command::decode(cmd.encode()).unwrap();
        let expected = match cmd {
            Command::Error(r) => Command::Error(r.slice(..r.len().min(255))),
            Command::Ping { ttl_deciseconds, context } =>
                Command::Ping { ttl_deciseconds, context: context.slice(..context.len().min(16)) },
            Command::Pong(c) => Command::Pong(c.slice(..c.len().min(16))),
            other => other,
        };
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn messages_cross_a_session_pair_intact(
        messages in vec(vec(body(), 1..5), 1..6),
        cuts in vec(any::<usize>(), 0..10),
    ) {
        // The whole conversation from push, handshake included, in one stream.
        let (mut push, mut pull) = ready_push_and_fresh_pull();
        let wire = send_all(&mut push, &messages);
        let mut received = Vec::new();
        for chunk in split(&wire, &cuts) {
            receive(&mut pull, chunk, &mut received);
        }
        prop_assert_eq!(received, expected_frames(&messages));
    }

    /// The same through a pool that joins adjacent slices of the received
    /// buffer (a reactor's incremental ring), with some chunks copies that
    /// cannot be joined: every message arrives intact and in order, and
    /// none that two slices brought is gathered.
    #[test]
    fn messages_cross_intact_when_chunks_are_joined(
        messages in vec(vec(body(), 1..5), 1..6),
        cuts in vec(any::<usize>(), 0..10),
        copied in vec(any::<bool>(), 0..11),
    ) {
        let pool = std::sync::Arc::new(support::OneBuffer::default());
        let mut config = SessionConfig::new(SocketType::Pull);
        config.buffers = pool.clone();
        let (mut push, mut pull) = ready_push_and_pull_with(config);
        let wire = send_all(&mut push, &messages);
        pool.0.set(wire.clone()).unwrap();
        let mut received = Vec::new();
        for (i, chunk) in split(&wire, &cuts).into_iter().enumerate() {
            let chunk = if copied.get(i).copied().unwrap_or(false) {
                Bytes::copy_from_slice(&chunk)
            } else {
                chunk
            };
            receive(&mut pull, chunk, &mut received);
        }
        prop_assert_eq!(received, expected_frames(&messages));
        if copied.iter().all(|c| !c) {
            prop_assert_eq!(pull.stats().messages_copied, 0);
        }
    }

    /// libzmq may send a PING between two frames of one message (its
    /// heartbeat takes the encoder's next turn): however the stream is cut,
    /// the message and the PINGs arrive whole and in order.
    #[test]
    fn pings_between_frames_leave_messages_intact(
        messages in vec(vec((body(), any::<bool>()), 1..5), 1..6),
        cuts in vec(any::<usize>(), 0..10),
    ) {
        // The whole conversation from push, handshake included, in one stream.
        let (mut push, mut pull) = ready_push_and_fresh_pull();
        let mut expected = Vec::new();
        let mut pings = 0u32;
        for m in &messages {
            for (i, (frame, ping_after)) in m.iter().enumerate() {
                let more = i + 1 < m.len();
                push.send_frame(Bytes::from(frame.clone()), more).unwrap();
                if *ping_after && more {
                    push.send_ping(0, Bytes::copy_from_slice(&pings.to_be_bytes())).unwrap();
                    expected.push(format!("ping {pings}"));
                    pings += 1;
                }
            }
            expected.push(format!("message {:?}", m.iter().map(|(b, _)| b.clone()).collect::<Vec<_>>()));
        }
        let n = push.outbox().remaining();
        let wire = push.outbox().copy_to_bytes(n);
        // PINGs come out as soon as they are decoded, before the message
        // they interrupt: order them as sent by their position in it.
        let mut received = Vec::new();
        let mut held_pings = Vec::new();
        for chunk in split(&wire, &cuts) {
            pull.feed(chunk);
            while let Some(event) = pull.poll().unwrap() {
                match event {
                    Event::Ping { context, .. } => {
                        let n = u32::from_be_bytes(context[..].try_into().unwrap());
                        held_pings.push(format!("ping {n}"));
                    }
                    Event::Message(m) => {
                        received.append(&mut held_pings);
                        received.push(format!("message {:?}", m.frames().map(|f| f.to_vec()).collect::<Vec<_>>()));
                    }
                    Event::Ready(_) => {}
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
        prop_assert!(held_pings.is_empty());
        prop_assert_eq!(received, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_session(
        socket in 0usize..SocketType::ALL.len(),
        tail in vec(any::<u8>(), 0..600),
        cuts in vec(any::<usize>(), 0..6),
        with_ready in any::<bool>(),
    ) {
        let local = SocketType::ALL[socket];
        let mut session = Session::new(SessionConfig::new(local));
        let mut wire = Greeting::new(1, MechanismName::NULL, false).encode().to_vec();
        if with_ready {
            let peer = SocketType::ALL.into_iter().find(|p| local.accepts(*p)).unwrap();
            let mut md = BytesMut::new();
            encode_frame(FrameFlags::command(), &Command::Ready({
                let mut m = Metadata::new();
                m.push("Socket-Type", peer.as_str()).unwrap();
                m
            }).encode(), &mut md);
            wire.extend_from_slice(&md);
        }
        wire.extend_from_slice(&tail);
        for chunk in split(&Bytes::from(wire), &cuts) {
            session.feed(chunk);
            while let Ok(Some(_)) = session.poll() {}
        }
    }

    #[test]
    fn arbitrary_frames_and_greetings_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        let _ = Greeting::decode_partial(&bytes);
        let _ = Command::decode(Bytes::from(bytes.clone()));
        let _ = Metadata::decode(Bytes::from(bytes.clone()));
        let mut decoder = FrameDecoder::new(1 << 16);
        decoder.set_repair_long_commands(true);
        let mut input = Bytes::from(bytes);
        while let Ok(Some(_)) = decoder.decode(&mut input) {}
    }
}
