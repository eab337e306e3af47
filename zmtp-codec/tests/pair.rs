//! Two sessions talking through a simulated transport: every behaviour of the
//! session that does not need a real libzmq peer.

mod support;
use support::OneBuffer;

use bytes::{Buf, Bytes, BytesMut};
use zmtp_codec::frame::encode_frame;
use zmtp_codec::{
    Error, Event, FrameFlags, Metadata, Session, SessionConfig, SocketType, SubscriptionAction,
    SubscriptionForm,
};

/// Moves everything `from` wants to send into `to` and returns `to`'s events.
fn shuttle(from: &mut Session, to: &mut Session) -> Result<Vec<Event>, Error> {
    let n = from.outbox().remaining();
    to.feed(from.outbox().copy_to_bytes(n));
    drain(to)
}

fn drain(session: &mut Session) -> Result<Vec<Event>, Error> {
    let mut events = Vec::new();
    while let Some(e) = session.poll()? {
        events.push(e);
    }
    Ok(events)
}

/// Runs the handshake; returns the Ready event each side saw.
fn connect(a: &mut Session, b: &mut Session) -> (Vec<Event>, Vec<Event>) {
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for _ in 0..3 {
        seen_b.extend(shuttle(a, b).expect("b accepts a"));
        seen_a.extend(shuttle(b, a).expect("a accepts b"));
    }
    assert!(a.is_ready() && b.is_ready());
    (seen_a, seen_b)
}

fn pair(a: SocketType, b: SocketType) -> (Session, Session) {
    let mut a = Session::new(SessionConfig::new(a));
    let mut b = Session::new(SessionConfig::new(b));
    connect(&mut a, &mut b);
    (a, b)
}

#[test]
fn every_compatible_pair_completes_the_handshake() {
    for a in SocketType::ALL {
        for b in SocketType::ALL.into_iter().filter(|&b| a.accepts(b)) {
            let mut sa = Session::new(SessionConfig::new(a));
            let mut sb = Session::new(SessionConfig::new(b));
            let (ea, eb) = connect(&mut sa, &mut sb);
            assert!(
                matches!(&ea[..], [Event::Ready(p)] if p.socket_type == Some(b)),
                "{a}-{b}: {ea:?}"
            );
            assert!(
                matches!(&eb[..], [Event::Ready(p)] if p.socket_type == Some(a)),
                "{a}-{b}: {eb:?}"
            );
            assert_eq!(sa.peer().unwrap().version, (3, 1));
        }
    }
}

#[test]
fn incompatible_socket_types_are_refused() {
    let mut push = Session::new(SessionConfig::new(SocketType::Push));
    let mut xpub = Session::new(SessionConfig::new(SocketType::XPub));
    shuttle(&mut push, &mut xpub).unwrap();
    shuttle(&mut xpub, &mut push).unwrap_err();
    let err = shuttle(&mut push, &mut xpub).unwrap_err();
    assert_eq!(
        err,
        Error::IncompatibleSocketType {
            local: SocketType::XPub,
            peer: SocketType::Push
        }
    );
    // A failed session stays failed.
    assert_eq!(xpub.poll(), Err(Error::Failed));
    assert_eq!(xpub.send_frame(Bytes::new(), false), Err(Error::Failed));
}

#[test]
fn identity_is_sent_only_by_routing_types() {
    let mut config = SessionConfig::new(SocketType::Dealer);
    config.routing_id = Bytes::from_static(b"node-1");
    let mut dealer = Session::new(config);
    let mut router = Session::new(SessionConfig::new(SocketType::Router));
    let (_, eb) = connect(&mut dealer, &mut router);
    let Event::Ready(peer) = &eb[0] else {
        panic!("{eb:?}")
    };
    assert_eq!(peer.identity().map(|v| &v[..]), Some(&b"node-1"[..]));

    let mut config = SessionConfig::new(SocketType::Pub);
    config.routing_id = Bytes::from_static(b"ignored");
    let mut pubs = Session::new(config);
    let mut sub = Session::new(SessionConfig::new(SocketType::Sub));
    let (_, eb) = connect(&mut pubs, &mut sub);
    let Event::Ready(peer) = &eb[0] else {
        panic!("{eb:?}")
    };
    assert_eq!(peer.identity(), None);
}

#[test]
fn application_properties_reach_the_peer() {
    let mut props = Metadata::new();
    props.push("X-Zeek-Node", "worker-1").unwrap();
    let mut config = SessionConfig::new(SocketType::XSub);
    config.properties = props;
    let mut xsub = Session::new(config);
    let mut xpub = Session::new(SessionConfig::new(SocketType::XPub));
    let (_, eb) = connect(&mut xsub, &mut xpub);
    let Event::Ready(peer) = &eb[0] else { panic!() };
    assert_eq!(
        peer.metadata.get("X-Zeek-Node").map(|v| &v[..]),
        Some(&b"worker-1"[..])
    );
}

#[test]
fn multipart_messages_arrive_whole_and_uncopied() {
    let (mut push, mut pull) = pair(SocketType::Push, SocketType::Pull);
    let frames = [
        Bytes::new(),
        Bytes::from(vec![1u8; 255]),
        Bytes::from(vec![2u8; 256]),
        Bytes::from(vec![3u8; 1 << 20]),
    ];
    push.send_frames(&frames).unwrap();
    let events = shuttle(&mut push, &mut pull).unwrap();
    let [Event::Message(m)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(m.to_frames(), frames);
    assert_eq!(m.body_len(), 255 + 256 + (1 << 20));
    assert_eq!(pull.copied_bytes(), 0, "one chunk in, no copies");
    assert_eq!(push.outbox().take_completed_messages(), 1);
}

#[test]
fn subscriptions_use_commands_for_31_and_data_frames_for_30() {
    for minor in [0u8, 1] {
        let mut config = SessionConfig::new(SocketType::XPub);
        config.zmtp_minor = minor;
        let mut xpub = Session::new(config);
        let mut sub = Session::new(SessionConfig::new(SocketType::Sub));
        connect(&mut xpub, &mut sub);
        sub.send_subscription(SubscriptionAction::Subscribe, Bytes::from_static(b"zeek."))
            .unwrap();
        let n = sub.outbox().remaining();
        let wire = sub.outbox().copy_to_bytes(n);
        assert_eq!(
            sub.outbox().take_completed_messages(),
            0,
            "a subscription is not an application message, whatever its form"
        );
        if minor == 1 {
            assert_eq!(&wire[..], b"\x04\x0f\x09SUBSCRIBEzeek.");
        } else {
            assert_eq!(&wire[..], b"\x00\x06\x01zeek.");
        }
        xpub.feed(wire);
        let events = drain(&mut xpub).unwrap();
        let [Event::Subscription(s)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(s.action, SubscriptionAction::Subscribe);
        assert_eq!(&s.topic[..], b"zeek.");
        let form = if minor == 1 {
            SubscriptionForm::Command
        } else {
            SubscriptionForm::Legacy
        };
        assert_eq!(s.form, form);
    }
}

#[test]
fn only_publishers_read_0x01_frames_as_subscriptions() {
    let (mut push, mut pull) = pair(SocketType::Push, SocketType::Pull);
    push.send_frames(&[Bytes::from_static(b"\x01not a subscription")])
        .unwrap();
    let events = shuttle(&mut push, &mut pull).unwrap();
    assert!(matches!(&events[..], [Event::Message(_)]), "{events:?}");

    // Every frame of a multipart message is examined, as libzmq does.
    let (mut xpub, mut xsub) = pair(SocketType::XPub, SocketType::XSub);
    xsub.send_frames(&[
        Bytes::from_static(b"\x01M1"),
        Bytes::from_static(b"\x01M2"),
        Bytes::from_static(b"user"),
    ])
    .unwrap();
    let events = shuttle(&mut xsub, &mut xpub).unwrap();
    assert_eq!(events.len(), 3);
    assert!(matches!(&events[1], Event::Subscription(s) if s.topic == "M2"));
    assert!(matches!(&events[2], Event::Message(m) if m.to_frames() == ["user"]));
}

#[test]
fn ping_is_answered_with_pong_echoing_sixteen_bytes_of_context() {
    let (mut sub, mut publ) = pair(SocketType::Sub, SocketType::Pub);
    sub.send_ping(70_000, Bytes::from(vec![9u8; 20])).unwrap();
    let events = shuttle(&mut sub, &mut publ).unwrap();
    let [Event::Ping {
        ttl_deciseconds,
        context,
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(
        *ttl_deciseconds, 655,
        "TTL capped for libzmq's 16-bit arithmetic"
    );
    assert_eq!(context.len(), 16);
    let events = shuttle(&mut publ, &mut sub).unwrap();
    assert_eq!(
        events,
        vec![Event::Pong {
            context: Bytes::from(vec![9u8; 16])
        }]
    );
}

#[test]
fn peer_error_ends_the_session_with_its_reason() {
    let (mut a, mut b) = pair(SocketType::Pub, SocketType::Sub);
    a.send_error("400").unwrap();
    assert_eq!(shuttle(&mut a, &mut b), Err(Error::PeerError("400".into())));
}

#[test]
fn error_during_handshake_is_reported() {
    let mut a = Session::new(SessionConfig::new(SocketType::Pub));
    let mut b = Session::new(SessionConfig::new(SocketType::Sub));
    shuttle(&mut a, &mut b).unwrap();
    let mut raw = BytesMut::new();
    encode_frame(FrameFlags::command(), b"\x05ERROR\x03500", &mut raw);
    let n = b.outbox().remaining();
    b.outbox().advance(n);
    let mut greeting = zmtp_codec::Greeting::new(1, zmtp_codec::MechanismName::NULL, false)
        .encode()
        .to_vec();
    greeting.extend_from_slice(&raw);
    a.feed(Bytes::from(greeting));
    assert_eq!(drain(&mut a), Err(Error::PeerError("500".into())));
}

#[test]
fn mechanism_mismatch_is_refused() {
    let mut a = Session::new(SessionConfig::new(SocketType::Pub));
    let curve = zmtp_codec::Greeting::new(1, zmtp_codec::MechanismName::CURVE, true).encode();
    a.feed(Bytes::copy_from_slice(&curve));
    let err = drain(&mut a).unwrap_err();
    assert_eq!(
        err.to_string(),
        "security mechanism mismatch: we use NULL, peer uses CURVE"
    );
}

#[test]
fn eof_after_ten_bytes_leaves_a_waiting_session() {
    // libzmq closes after its 10-byte signature on mismatch: we must simply wait.
    let mut a = Session::new(SessionConfig::new(SocketType::Pub));
    a.feed(Bytes::from_static(
        b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f",
    ));
    assert_eq!(a.poll(), Ok(None));
    assert!(!a.is_ready());
}

#[test]
fn non_zmtp_and_old_zmtp_are_refused_early() {
    let mut a = Session::new(SessionConfig::new(SocketType::Pull));
    a.feed(Bytes::from_static(b"GET / HTTP/1.1\r\n"));
    assert_eq!(a.poll(), Err(Error::NotZmtp(b'G')));
    let mut a = Session::new(SessionConfig::new(SocketType::Pull));
    a.feed(Bytes::from_static(
        b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x01\x05",
    ));
    assert_eq!(a.poll(), Err(Error::UnsupportedVersion(1)));
}

#[test]
fn data_before_the_handshake_is_refused_and_sends_need_ready() {
    let mut a = Session::new(SessionConfig::new(SocketType::Pull));
    assert_eq!(a.send_frame(Bytes::new(), false), Err(Error::NotReady));
    let mut bytes = zmtp_codec::Greeting::new(1, zmtp_codec::MechanismName::NULL, false)
        .encode()
        .to_vec();
    bytes.extend_from_slice(b"\x00\x05hello");
    a.feed(Bytes::from(bytes));
    let err = a.poll().unwrap_err();
    assert!(
        matches!(
            err,
            Error::MalformedCommand { .. } | Error::UnexpectedCommand { .. }
        ),
        "{err}"
    );
}

#[test]
fn limits_refuse_oversized_frames_and_messages() {
    let mut config = SessionConfig::new(SocketType::Pull);
    config.max_frame_size = 1000;
    config.max_message_size = 1500;
    let mut pull = Session::new(config);
    let mut push = Session::new(SessionConfig::new(SocketType::Push));
    connect(&mut push, &mut pull);
    push.send_frames(&[Bytes::from(vec![0u8; 1000]), Bytes::from(vec![0u8; 600])])
        .unwrap();
    let err = shuttle(&mut push, &mut pull).unwrap_err();
    assert_eq!(
        err,
        Error::MessageTooLarge {
            size: 1600,
            limit: 1500
        }
    );

    let mut config = SessionConfig::new(SocketType::Pull);
    config.max_frame_size = 1000;
    let mut pull = Session::new(config);
    let mut push = Session::new(SessionConfig::new(SocketType::Push));
    connect(&mut push, &mut pull);
    push.send_frames(&[Bytes::from(vec![0u8; 1001])]).unwrap();
    assert_eq!(
        shuttle(&mut push, &mut pull),
        Err(Error::FrameTooLarge {
            size: 1001,
            limit: 1000
        })
    );
}

#[test]
fn libzmq_bytes_are_understood() {
    // A libzmq XSUB's greeting, READY, a legacy subscription, a 3.1 command
    // and a user message, all in one segment (semantics document §2.3, §4.1).
    let mut wire = zmtp_codec::Greeting::new(1, zmtp_codec::MechanismName::NULL, false)
        .encode()
        .to_vec();
    wire.extend_from_slice(b"\x04\x1a\x05READY\x0bSocket-Type\x00\x00\x00\x04XSUB");
    wire.extend_from_slice(
        b"\x00\x02\x01A\x04\x08\x06CANCELA\x00\x04ALOL\x04\x00\x04\x0a\x05HELLOthere",
    );
    let mut xpub = Session::new(SessionConfig::new(SocketType::XPub));
    xpub.feed(Bytes::from(wire));
    let events = drain(&mut xpub).unwrap();
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(
        matches!(&events[1], Event::Subscription(s) if s.action == SubscriptionAction::Subscribe && s.topic == "A")
    );
    assert!(
        matches!(&events[2], Event::Subscription(s) if s.action == SubscriptionAction::Cancel && s.form == SubscriptionForm::Command)
    );
    assert!(matches!(&events[3], Event::Message(m) if m.first_frame() == b"ALOL"));
    assert_eq!(
        xpub.stats().ignored_commands,
        2,
        "empty and unknown commands are ignored"
    );
    // Our own greeting and READY XPUB, exactly as libzmq's test suite expects.
    let n = xpub.outbox().remaining();
    let out = xpub.outbox().copy_to_bytes(n);
    assert_eq!(
        &out[64..],
        b"\x04\x1a\x05READY\x0bSocket-Type\x00\x00\x00\x04XPUB"
    );
}

#[test]
fn straddling_messages_are_copied_once_and_counted() {
    let (mut push, mut pull) = pair(SocketType::Push, SocketType::Pull);
    let big = Bytes::from(vec![5u8; 100_000]);
    push.send_frames(&[Bytes::from_static(b"head"), big.clone()])
        .unwrap();
    push.send_frames(std::slice::from_ref(&big)).unwrap();
    let n = push.outbox().remaining();
    let wire = push.outbox().copy_to_bytes(n);
    let mut events = Vec::new();
    for chunk in wire.chunks(65536) {
        pull.feed(Bytes::copy_from_slice(chunk));
        events.extend(drain(&mut pull).unwrap());
    }
    assert_eq!(events.len(), 2);
    let Event::Message(first) = &events[0] else {
        panic!()
    };
    assert_eq!(
        first.to_frames(),
        vec![Bytes::from_static(b"head"), big.clone()]
    );
    let Event::Message(second) = &events[1] else {
        panic!()
    };
    assert_eq!(second.to_frames(), vec![big]);
    assert_eq!(
        pull.stats().messages_copied,
        2,
        "each straddling message is gathered into a buffer of its own"
    );
    // Each message's wire bytes are copied exactly once: 2+4 and 9+100,000
    // for the first, 9+100,000 for the second.
    assert_eq!(pull.copied_bytes(), 6 + 2 * 100_009);
}

#[test]
fn a_message_continued_in_the_same_buffer_is_joined_not_copied() {
    let big = Bytes::from(vec![7u8; 100_000]);
    // The data a PUSH sends after its handshake: the receive buffer.
    let buffer = {
        let (mut push, _) = pair(SocketType::Push, SocketType::Pull);
        push.send_frames(&[Bytes::from_static(b"head"), big.clone()])
            .unwrap();
        push.send_frames(std::slice::from_ref(&big)).unwrap();
        let n = push.outbox().remaining();
        push.outbox().copy_to_bytes(n)
    };
    // A PULL whose pool knows that buffer, after a handshake of its own,
    // then receives of 30,000 bytes that lie one after another in it.
    let mut config = SessionConfig::new(SocketType::Pull);
    config.buffers = std::sync::Arc::new(OneBuffer::of(buffer.clone()));
    let mut pull = Session::new(config);
    let mut peer = Session::new(SessionConfig::new(SocketType::Push));
    connect(&mut peer, &mut pull);
    let mut events = Vec::new();
    let mut at = 0;
    while at < buffer.len() {
        let end = (at + 30_000).min(buffer.len());
        pull.feed(buffer.slice(at..end));
        events.extend(drain(&mut pull).unwrap());
        at = end;
    }
    let frames: Vec<Vec<Bytes>> = events
        .iter()
        .map(|e| match e {
            Event::Message(m) => m.to_frames(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        frames,
        vec![vec![Bytes::from_static(b"head"), big.clone()], vec![big]]
    );
    assert_eq!(pull.stats().messages_copied, 0, "nothing gathered");
    assert_eq!(pull.copied_bytes(), 0);
    assert!(pull.stats().chunks_joined >= 6, "{:?}", pull.stats());
    // The messages are slices of the receive buffer itself.
    let Event::Message(first) = &events[0] else {
        panic!()
    };
    let first_body = &first.to_frames()[1];
    let base = buffer.as_ptr() as usize;
    assert!((base..base + buffer.len()).contains(&(first_body.as_ptr() as usize)));
}

#[test]
fn received_messages_are_forwarded_as_their_wire_bytes() {
    // The broker's path: a message from one session sent on another is one
    // segment, byte-identical, with no re-encoding.
    let (mut xsub_side, mut publisher) = pair(SocketType::XSub, SocketType::Pub);
    let (mut xpub_side, mut subscriber) = pair(SocketType::XPub, SocketType::Sub);
    publisher
        .send_frames(&[
            Bytes::from_static(b"zeek.logs"),
            Bytes::from(vec![1u8; 300]),
        ])
        .unwrap();
    let n = publisher.outbox().remaining();
    let published = publisher.outbox().copy_to_bytes(n);
    xsub_side.feed(published.clone());
    let events = drain(&mut xsub_side).unwrap();
    let [Event::Message(m)] = &events[..] else {
        panic!("{events:?}")
    };
    xpub_side.send(m.clone()).unwrap();
    assert_eq!(xpub_side.outbox().chunk_count(), 1);
    let n = xpub_side.outbox().remaining();
    assert_eq!(xpub_side.outbox().copy_to_bytes(n), published);
    assert_eq!(xpub_side.outbox().take_completed_messages(), 1);
    let _ = &mut subscriber;
}

#[test]
fn unlimited_sizes_still_refuse_frames_beyond_memory() {
    let mut config = SessionConfig::new(SocketType::Pull);
    config.max_frame_size = u64::MAX;
    config.max_message_size = u64::MAX;
    let mut pull = Session::new(config);
    let mut push = Session::new(SessionConfig::new(SocketType::Push));
    connect(&mut push, &mut pull);
    // A one-byte frame with MORE, then a frame announcing 2^64-1 bytes.
    pull.feed(Bytes::from_static(
        b"\x01\x01a\x02\xff\xff\xff\xff\xff\xff\xff\xff",
    ));
    let err = drain(&mut pull).unwrap_err();
    assert!(
        matches!(err, Error::FrameTooLarge { size: u64::MAX, .. }),
        "{err}"
    );
}

/// Events and verdict of a PULL session (limits as given) fed `stream`
/// after a peer's greeting and READY, in chunks of `step` bytes.
fn fed_in_chunks(stream: &[u8], step: usize, limits: (u64, u64)) -> (Vec<Event>, bool) {
    fed_in_chunks_to(SocketType::Pull, SocketType::Push, stream, step, limits)
}

/// As `fed_in_chunks`, for a `local` session whose peer is `peer`.
fn fed_in_chunks_to(
    local: SocketType,
    peer: SocketType,
    stream: &[u8],
    step: usize,
    limits: (u64, u64),
) -> (Vec<Event>, bool) {
    let mut config = SessionConfig::new(local);
    (config.max_frame_size, config.max_message_size) = limits;
    let mut session = Session::new(config);
    let mut other = Session::new(SessionConfig::new(peer));
    connect(&mut other, &mut session);
    feed_in_chunks(&mut session, stream, step)
}

/// Feeds `stream` in chunks of `step` bytes; the events up to the first
/// error, and whether there was one.
fn feed_in_chunks(session: &mut Session, stream: &[u8], step: usize) -> (Vec<Event>, bool) {
    let mut events = Vec::new();
    for chunk in stream.chunks(step) {
        session.feed(Bytes::copy_from_slice(chunk));
        loop {
            match session.poll() {
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(_) => return (events, true),
            }
        }
    }
    (events, false)
}

/// Whatever chunks the stream arrives in, the events and the verdict are
/// the ones it gets whole.
fn assert_chunking_agrees(stream: &[u8], limits: (u64, u64)) -> (Vec<Event>, bool) {
    let whole = fed_in_chunks(stream, stream.len().max(1), limits);
    for step in 1..=stream.len() {
        assert_eq!(
            fed_in_chunks(stream, step, limits),
            whole,
            "chunks of {step} bytes"
        );
    }
    whole
}

/// The fuzzing finding (`fuzz/corpus/session/seed-chunking-verdict-overflow`):
/// an empty frame with MORE (and reserved bits), then a LONG frame of
/// 2^64 - 10 bytes, limits lifted. Whole, the frame-by-frame path checked
/// the second frame's header and body alone and waited for the body;
/// gathered across chunks, the message's bytes before it were counted too,
/// the sum passed the address space, and the session failed.
#[test]
fn a_frame_past_the_address_space_fails_however_the_stream_is_chunked() {
    let stream = b"\x31\x00\x3b\xff\xff\xff\xff\xff\xff\xff\xf6\xff";
    let (events, failed) = assert_chunking_agrees(stream, (u64::MAX, u64::MAX));
    assert!(events.is_empty() && failed, "{events:?}");
}

/// Two frames within the frame limit whose sum is over the message limit,
/// the second one's body cut short: refused at its header on every path,
/// not only once the body has arrived.
#[test]
fn a_message_over_its_limit_fails_at_the_header_on_every_path() {
    let mut stream = BytesMut::new();
    encode_frame(FrameFlags::data(true), &[7; 40], &mut stream);
    encode_frame(FrameFlags::data(false), &[8; 40], &mut stream);
    stream.truncate(stream.len() - 30);
    let (events, failed) = assert_chunking_agrees(&stream, (64, 64));
    assert!(events.is_empty() && failed, "{events:?}");
    // A PING between the frames takes the frame-by-frame path: the same.
    let mut stream = BytesMut::new();
    encode_frame(FrameFlags::data(true), &[7; 40], &mut stream);
    encode_frame(
        FrameFlags::command(),
        &zmtp_codec::Command::Ping {
            ttl_deciseconds: 0,
            context: Bytes::new(),
        }
        .encode(),
        &mut stream,
    );
    encode_frame(FrameFlags::data(false), &[8; 40], &mut stream);
    stream.truncate(stream.len() - 30);
    let (events, failed) = assert_chunking_agrees(&stream, (64, 64));
    assert!(
        matches!(&events[..], [Event::Ping { .. }]) && failed,
        "{events:?}"
    );
}

/// A PUB or XPUB session repairs libzmq 4.3.4's unflagged long commands,
/// which needs nine bytes after a `04 00` header. When a chunk ended
/// before those, the look-ahead bytes (the start of the next frame, after
/// an empty command) were dropped once the header was complete.
#[test]
fn the_long_command_repair_drops_no_byte_at_a_chunk_end() {
    // An empty command, a data frame "abc", a data frame "x".
    let stream = b"\x04\x00\x00\x03abc\x00\x01x";
    let whole = fed_in_chunks_to(
        SocketType::XPub,
        SocketType::XSub,
        stream,
        stream.len(),
        (1 << 20, 1 << 20),
    );
    for step in 1..stream.len() {
        let chunked = fed_in_chunks_to(
            SocketType::XPub,
            SocketType::XSub,
            stream,
            step,
            (1 << 20, 1 << 20),
        );
        assert_eq!(chunked, whole, "chunks of {step} bytes");
    }
    let messages: Vec<Vec<Bytes>> = whole
        .0
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.to_frames()),
            _ => None,
        })
        .collect();
    assert_eq!(messages, [vec![Bytes::from("abc")], vec![Bytes::from("x")]]);
}

/// A NULL peer may send its READY as a data frame (libzmq accepts that, and
/// so do we), even with MORE set; that frame is no part of the first
/// message, whichever path the message takes.
#[test]
fn a_handshake_frame_is_not_counted_in_the_first_message() {
    let mut stream = BytesMut::new();
    stream.extend_from_slice(
        &zmtp_codec::Greeting::new(1, zmtp_codec::MechanismName::NULL, false).encode(),
    );
    let mut md = Metadata::new();
    md.push("Socket-Type", "PUSH").unwrap();
    encode_frame(
        FrameFlags::data(true),
        &zmtp_codec::Command::Ready(md).encode(),
        &mut stream,
    );
    // 50 + 30 bytes, a PING between them: within a limit of 100, which the
    // READY's 28 bytes added would pass.
    encode_frame(FrameFlags::data(true), &[5; 50], &mut stream);
    encode_frame(
        FrameFlags::command(),
        &zmtp_codec::Command::Ping {
            ttl_deciseconds: 0,
            context: Bytes::new(),
        }
        .encode(),
        &mut stream,
    );
    encode_frame(FrameFlags::data(false), &[6; 30], &mut stream);
    let run = |step: usize| {
        let mut config = SessionConfig::new(SocketType::Pull);
        config.max_message_size = 100;
        feed_in_chunks(&mut Session::new(config), &stream, step)
    };
    let whole = run(stream.len());
    assert!(!whole.1, "{whole:?}");
    assert!(
        whole
            .0
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.body_len() == 80)),
        "{whole:?}"
    );
    for step in 1..stream.len() {
        assert_eq!(run(step), whole, "chunks of {step} bytes");
    }
}

#[test]
fn bytes_behind_ready_are_handed_back_whole() {
    // The PUSH side is ready first (it has the PULL's READY) and sends at
    // once; the PULL side then reads the PUSH's READY and two messages in
    // one chunk.
    let mut push = Session::new(SessionConfig::new(SocketType::Push));
    let mut pull = Session::new(SessionConfig::new(SocketType::Pull));
    shuttle(&mut push, &mut pull).unwrap();
    let events = shuttle(&mut pull, &mut push).unwrap();
    assert!(matches!(&events[..], [Event::Ready(_)]), "{events:?}");
    assert!(pull.take_unread().is_none(), "not ready yet");
    push.send_frames(&[Bytes::from_static(b"one")]).unwrap();
    push.send_frames(&[Bytes::from_static(b"tw"), Bytes::from_static(b"o")])
        .unwrap();
    let n = push.outbox().remaining();
    pull.feed(push.outbox().copy_to_bytes(n));
    assert!(matches!(pull.poll().unwrap(), Some(Event::Ready(_))));
    let unread: Vec<u8> = pull.take_unread().unwrap().concat();
    assert_eq!(unread, b"\x00\x03one\x01\x02tw\x00\x01o");
    assert!(pull.poll().unwrap().is_none(), "nothing left behind");
    assert_eq!(pull.take_unread().unwrap(), Vec::<Bytes>::new());
}

#[test]
fn nothing_is_handed_back_from_the_middle_of_a_message() {
    let (_push, mut pull) = pair(SocketType::Push, SocketType::Pull);
    // The first frame of a two-frame message, then half of the second's
    // header: the session holds part of a message and must keep it.
    let mut wire = BytesMut::new();
    encode_frame(FrameFlags::data(true), b"first", &mut wire);
    pull.feed(wire.freeze());
    assert!(pull.poll().unwrap().is_none());
    pull.feed(Bytes::from_static(&[0x00]));
    assert!(pull.poll().unwrap().is_none());
    assert!(pull.take_unread().is_none());
    pull.feed(Bytes::from_static(b"\x04last"));
    assert!(matches!(pull.poll().unwrap(), Some(Event::Message(m)) if m.frames().count() == 2));
    assert_eq!(pull.take_unread().unwrap(), Vec::<Bytes>::new());
}
