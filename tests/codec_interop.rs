//! zmtp-codec against real libzmq: a plain blocking `TcpStream` driven by a
//! `Session`, facing libzmq 4.3.4 (the `zmq` crate) and 4.3.5 (pyzmq) sockets
//! of every kind the project uses, with either side binding.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::raw::{Conn, Outcome};
use support::{all_peers, test_messages, LibzmqPeer, Opt};
use zmtp_codec::{
    Error, Event, PeerInfo, SessionConfig, SocketType, SubscriptionAction, SubscriptionForm,
};

const TIMEOUT: Duration = Duration::from_secs(5);

fn local_endpoint() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("tcp://{}", listener.local_addr().expect("addr"));
    (listener, endpoint)
}

/// Sets up a connection between our session and a libzmq peer, with either
/// side binding, and completes the handshake.
fn connected(peer: &mut dyn LibzmqPeer, ours: SessionConfig, we_bind: bool) -> (Conn, PeerInfo) {
    let mut conn = if we_bind {
        let (listener, endpoint) = local_endpoint();
        peer.connect(&endpoint);
        Conn::accept(&listener, ours)
    } else {
        let endpoint = peer.bind("tcp://127.0.0.1:0");
        Conn::connect(&endpoint, ours)
    };
    let info = conn.handshake();
    if !we_bind {
        peer.settle();
    }
    (conn, info)
}

fn frames_of(m: &[Vec<u8>]) -> Vec<&[u8]> {
    m.iter().map(Vec::as_slice).collect()
}

#[test]
fn peers_are_libzmq_434_and_435() {
    let versions: Vec<String> = all_peers("PAIR").iter().map(|p| p.version()).collect();
    assert_eq!(versions, ["4.3.4", "4.3.5"]);
}

#[test]
fn push_to_libzmq_pull_and_pull_from_libzmq_push() {
    for we_bind in [false, true] {
        for mut peer in all_peers("PULL") {
            let (mut conn, info) =
                connected(peer.as_mut(), SessionConfig::new(SocketType::Push), we_bind);
            assert_eq!(info.socket_type, Some(SocketType::Pull));
            assert_eq!(
                info.version,
                (3, 1),
                "libzmq {} announces 3.1",
                peer.version()
            );
            for m in test_messages() {
                conn.send(&frames_of(&m));
                assert_eq!(
                    peer.recv(TIMEOUT).expect("libzmq receives"),
                    m,
                    "libzmq {}",
                    peer.version()
                );
            }
        }
        for mut peer in all_peers("PUSH") {
            let (mut conn, _) =
                connected(peer.as_mut(), SessionConfig::new(SocketType::Pull), we_bind);
            for m in test_messages() {
                peer.send(&frames_of(&m));
                assert_eq!(conn.recv_frames(), m, "libzmq {}", peer.version());
            }
        }
    }
}

#[test]
fn pub_and_xpub_receive_subscriptions_from_libzmq_sub_and_xsub_in_both_forms() {
    for we_bind in [false, true] {
        for (minor, ours) in [
            (1u8, SocketType::XPub),
            (0, SocketType::XPub),
            (1, SocketType::Pub),
        ] {
            for mut peer in all_peers("SUB") {
                let mut config = SessionConfig::new(ours);
                config.zmtp_minor = minor;
                let (mut conn, _) = connected(peer.as_mut(), config, we_bind);
                let form = if minor == 1 {
                    SubscriptionForm::Command
                } else {
                    SubscriptionForm::Legacy
                };
                peer.subscribe(b"zeek.cluster.");
                expect_subscription(
                    &mut conn,
                    SubscriptionAction::Subscribe,
                    b"zeek.cluster.",
                    form,
                );
                // Data flows to the subscriber once it subscribed.
                conn.send(&[b"zeek.cluster.node", b"payload"]);
                assert_eq!(
                    peer.recv(TIMEOUT).expect("delivered"),
                    vec![b"zeek.cluster.node".to_vec(), b"payload".to_vec()]
                );
                peer.unsubscribe(b"zeek.cluster.");
                expect_subscription(
                    &mut conn,
                    SubscriptionAction::Cancel,
                    b"zeek.cluster.",
                    form,
                );
            }
        }
        for mut peer in all_peers("XSUB") {
            let (mut conn, _) =
                connected(peer.as_mut(), SessionConfig::new(SocketType::XPub), we_bind);
            // What zmq_proxy and Zeek nodes do: subscriptions as data messages.
            peer.send(&[b"\x01topic"]);
            expect_subscription(
                &mut conn,
                SubscriptionAction::Subscribe,
                b"topic",
                SubscriptionForm::Legacy,
            );
            peer.send(&[b"\x00topic"]);
            expect_subscription(
                &mut conn,
                SubscriptionAction::Cancel,
                b"topic",
                SubscriptionForm::Legacy,
            );
            peer.send(&[b"user message"]);
            assert_eq!(conn.recv_frames(), vec![b"user message".to_vec()]);
        }
    }
}

fn expect_subscription(
    conn: &mut Conn,
    action: SubscriptionAction,
    topic: &[u8],
    form: SubscriptionForm,
) {
    match conn.next_significant() {
        Event::Subscription(s) => {
            assert_eq!((s.action, &s.topic[..], s.form), (action, topic, form));
        }
        other => panic!("expected a subscription, got {other:?}"),
    }
}

#[test]
fn long_topics_survive_in_both_directions() {
    // 246-255 bytes: where libzmq 4.3.4 forgets the LONG flag on commands it
    // sends to ZMTP 3.1 peers. The session repairs those frames, so both
    // versions must pass.
    for mut peer in all_peers("SUB") {
        let (mut conn, _) = connected(peer.as_mut(), SessionConfig::new(SocketType::XPub), true);
        for len in 246..=255 {
            let topic = vec![b'a' + (len % 26) as u8; len];
            peer.subscribe(&topic);
            expect_subscription(
                &mut conn,
                SubscriptionAction::Subscribe,
                &topic,
                SubscriptionForm::Command,
            );
            peer.unsubscribe(&topic);
            expect_subscription(
                &mut conn,
                SubscriptionAction::Cancel,
                &topic,
                SubscriptionForm::Command,
            );
        }
        // The stream is still in sync afterwards.
        peer.subscribe(b"x");
        expect_subscription(
            &mut conn,
            SubscriptionAction::Subscribe,
            b"x",
            SubscriptionForm::Command,
        );
    }
    for mut peer in all_peers("XPUB") {
        peer.set(Opt::XpubVerbose(true));
        let (mut conn, _) = connected(peer.as_mut(), SessionConfig::new(SocketType::Sub), false);
        for len in [1usize, 246, 250, 255, 256, 300] {
            let topic = vec![b'q'; len];
            conn.session
                .send_subscription(SubscriptionAction::Subscribe, Bytes::from(topic.clone()))
                .unwrap();
            conn.flush();
            let mut expected = vec![1u8];
            expected.extend_from_slice(&topic);
            assert_eq!(
                peer.recv(TIMEOUT).expect("XPUB reports"),
                vec![expected],
                "libzmq {} len {len}",
                peer.version()
            );
        }
    }
}

#[test]
fn sub_and_xsub_receive_from_libzmq_pub_and_xpub() {
    for we_bind in [false, true] {
        for kind in ["PUB", "XPUB"] {
            for mut peer in all_peers(kind) {
                let ours = if kind == "PUB" {
                    SocketType::Sub
                } else {
                    SocketType::XSub
                };
                let (mut conn, _) = connected(peer.as_mut(), SessionConfig::new(ours), we_bind);
                conn.session
                    .send_subscription(SubscriptionAction::Subscribe, Bytes::from_static(b"t"))
                    .unwrap();
                conn.flush();
                if kind == "XPUB" {
                    assert_eq!(
                        peer.recv(TIMEOUT).expect("subscription reported"),
                        vec![b"\x01t".to_vec()]
                    );
                } else {
                    // A PUB shows nothing; publish until the subscription has arrived.
                    await_delivery(peer.as_mut(), &mut conn);
                }
                for m in test_messages() {
                    let mut m = m.clone();
                    m[0].insert(0, b't');
                    peer.send(&frames_of(&m));
                    assert_eq!(conn.recv_frames(), m, "{kind} libzmq {}", peer.version());
                }
                // A message that does not match is filtered by libzmq.
                peer.send(&[b"other"]);
                peer.send(&[b"t-last"]);
                assert_eq!(conn.recv_frames(), vec![b"t-last".to_vec()]);
            }
        }
    }
}

/// Publishes probes until one arrives, so later messages are not lost to the
/// libzmq PUB applying our subscription late (the "slow joiner").
fn await_delivery(peer: &mut dyn LibzmqPeer, conn: &mut Conn) {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        peer.send(&[b"t-probe"]);
        if let Ok(Some(Event::Message(m))) = conn.next_event(Duration::from_millis(100)) {
            assert_eq!(m.first_frame(), b"t-probe");
            // Drain further probes.
            while let Ok(Some(_)) = conn.next_event(Duration::from_millis(100)) {}
            return;
        }
    }
    panic!("libzmq PUB never delivered after our subscription");
}

#[test]
fn heartbeats_are_answered_both_ways() {
    for mut peer in all_peers("SUB") {
        // libzmq pings every 100 ms and drops us after 300 ms of silence.
        peer.set(Opt::HeartbeatIvl(100));
        peer.set(Opt::HeartbeatTimeout(300));
        peer.set(Opt::HeartbeatTtl(2000));
        let (mut conn, _) = connected(peer.as_mut(), SessionConfig::new(SocketType::Pub), true);
        peer.subscribe(b"");
        let mut pings = 0;
        let until = Instant::now() + Duration::from_millis(1200);
        while Instant::now() < until {
            match conn.next_event(Duration::from_millis(50)) {
                Ok(Some(Event::Ping {
                    ttl_deciseconds, ..
                })) => {
                    assert_eq!(ttl_deciseconds, 20);
                    pings += 1;
                }
                Ok(_) => {}
                Err(e) => panic!(
                    "libzmq {} dropped us although we answered its PINGs: {e:?}",
                    peer.version()
                ),
            }
        }
        assert!(
            pings >= 5,
            "libzmq {} sent only {pings} PINGs",
            peer.version()
        );
        // Still connected: data flows.
        conn.send(&[b"alive"]);
        assert_eq!(
            peer.recv(TIMEOUT).expect("delivered"),
            vec![b"alive".to_vec()]
        );

        // Our PING is answered with a PONG echoing the context.
        conn.session
            .send_ping(5_000, Bytes::from_static(b"ctx-123"))
            .unwrap();
        conn.flush();
        let until = Instant::now() + TIMEOUT;
        loop {
            assert!(
                Instant::now() < until,
                "no PONG from libzmq {}",
                peer.version()
            );
            if let Ok(Some(Event::Pong { context })) = conn.next_event(Duration::from_millis(50)) {
                assert_eq!(&context[..], b"ctx-123");
                break;
            }
        }
    }
}

#[test]
fn incompatible_socket_types_are_refused_on_both_sides() {
    // Our PUSH against a libzmq XPUB: libzmq closes without ERROR, and our
    // session refuses libzmq's READY.
    for mut peer in all_peers("XPUB") {
        let endpoint = peer.bind("tcp://127.0.0.1:0");
        let mut conn = Conn::connect(&endpoint, SessionConfig::new(SocketType::Push));
        match conn.next_event(TIMEOUT) {
            Err(Outcome::Codec(Error::IncompatibleSocketType {
                local: SocketType::Push,
                peer: SocketType::XPub,
            })) => {}
            Err(Outcome::Closed) => {}
            other => panic!("libzmq {}: expected refusal, got {other:?}", peer.version()),
        }
    }
    // A libzmq PUSH connecting to our XPUB.
    for mut peer in all_peers("PUSH") {
        let (listener, endpoint) = local_endpoint();
        peer.connect(&endpoint);
        let mut conn = Conn::accept(&listener, SessionConfig::new(SocketType::XPub));
        match conn.next_event(TIMEOUT) {
            Err(Outcome::Codec(Error::IncompatibleSocketType {
                local: SocketType::XPub,
                peer: SocketType::Push,
            })) => {}
            other => panic!(
                "libzmq {}: expected our refusal, got {other:?}",
                peer.version()
            ),
        }
    }
}

#[test]
fn frame_size_limits_hold_in_both_directions() {
    // libzmq with MAXMSGSIZE closes on our oversized frame.
    for mut peer in all_peers("PULL") {
        peer.set(Opt::MaxMsgSize(100));
        let (mut conn, _) = connected(peer.as_mut(), SessionConfig::new(SocketType::Push), false);
        conn.send(&[&[0u8; 100]]);
        assert_eq!(peer.recv(TIMEOUT).expect("100 bytes fit").len(), 1);
        conn.send(&[&[0u8; 101]]);
        assert!(
            matches!(conn.next_event(TIMEOUT), Err(Outcome::Closed)),
            "libzmq {} kept the connection",
            peer.version()
        );
        assert!(peer.recv(Duration::from_millis(200)).is_none());
    }
    // Our limit refuses libzmq's oversized frame without buffering it.
    for mut peer in all_peers("PUSH") {
        let mut config = SessionConfig::new(SocketType::Pull);
        config.max_frame_size = 1000;
        let (mut conn, _) = connected(peer.as_mut(), config, true);
        peer.send(&[&[1u8; 1000]]);
        assert_eq!(conn.recv_frames(), vec![vec![1u8; 1000]]);
        peer.send(&[&[1u8; 1 << 20]]);
        match conn.next_event(TIMEOUT) {
            Err(Outcome::Codec(Error::FrameTooLarge { size, limit: 1000 })) => {
                assert_eq!(size, 1 << 20)
            }
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
    }
}

#[test]
fn mechanism_mismatch_ends_with_libzmq_signature_and_eof() {
    // libzmq closes after at most its 10-byte signature when the mechanisms
    // differ (no ERROR); our greeting parser must take those bytes calmly.
    for mut peer in all_peers("PULL") {
        let endpoint = peer.bind("tcp://127.0.0.1:0");
        let mut stream =
            TcpStream::connect(endpoint.trim_start_matches("tcp://")).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let plain = zmtp_codec::Greeting::new(1, zmtp_codec::MechanismName::PLAIN, false).encode();
        stream.write_all(&plain).unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 128];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!(
                    "libzmq {} did not close on a mechanism mismatch: {e}",
                    peer.version()
                ),
            }
        }
        // All 10 bytes, or none when our greeting arrived before libzmq flushed.
        assert!(
            received.len() <= 10,
            "libzmq {} sent {received:02x?}",
            peer.version()
        );
        assert_eq!(zmtp_codec::Greeting::decode_partial(&received), Ok(None));
    }
}
