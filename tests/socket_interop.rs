//! zring sockets against real libzmq 4.3.4 (the `zmq` crate), with either
//! side binding, plus peers that misbehave on purpose.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::raw::{Conn, Outcome};
use zmtp_codec::{SessionConfig, SocketType, SubscriptionAction};
use zring::{Context, Error, Socket, SocketKind, SocketOption, Wait};

const T: Wait = Wait::Timeout(Duration::from_secs(10));

fn zmq_ctx() -> &'static zmq::Context {
    static CTX: std::sync::OnceLock<zmq::Context> = std::sync::OnceLock::new();
    CTX.get_or_init(zmq::Context::new)
}

fn zsock(kind: zmq::SocketType) -> zmq::Socket {
    let s = zmq_ctx().socket(kind).unwrap();
    s.set_linger(0).unwrap();
    s.set_rcvtimeo(10_000).unwrap();
    s.set_sndtimeo(10_000).unwrap();
    s
}

fn zbind(s: &zmq::Socket) -> String {
    s.bind("tcp://127.0.0.1:*").unwrap();
    s.get_last_endpoint().unwrap().unwrap()
}

fn frames_of(m: &zmtp_codec::Message) -> Vec<Vec<u8>> {
    m.frames().map(<[u8]>::to_vec).collect()
}

/// Messages every data test sends: empty, short, both sides of the
/// short/long frame boundary, and multipart up to 4 MiB.
fn sample_messages() -> Vec<Vec<Vec<u8>>> {
    vec![
        vec![vec![]],
        vec![b"x".to_vec()],
        vec![vec![7; 255]],
        vec![vec![8; 256], vec![], b"tail".to_vec()],
        vec![b"big".to_vec(), vec![9; 4 << 20]],
        vec![vec![1; 1 << 20], vec![2; 1 << 20], vec![3; 17]],
    ]
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn send_all(zring: &mut Socket, messages: &[Vec<Vec<u8>>]) {
    for m in messages {
        let frames = m.iter().map(|f| Bytes::copy_from_slice(f)).collect();
        zring.send_frames(frames, T).unwrap();
    }
}

#[test]
fn push_pull_both_directions_and_both_binding() {
    let ctx = Context::new().unwrap();
    let messages = sample_messages();
    for zring_binds in [true, false] {
        // zring PUSH -> libzmq PULL
        let mut push = ctx.socket(SocketKind::Push);
        let pull = zsock(zmq::PULL);
        if zring_binds {
            pull.connect(&push.bind("tcp://127.0.0.1:*").unwrap())
                .unwrap();
        } else {
            push.connect(&zbind(&pull)).unwrap();
        }
        send_all(&mut push, &messages);
        for m in &messages {
            assert_eq!(&pull.recv_multipart(0).unwrap(), m);
        }

        // libzmq PUSH -> zring PULL
        let mut pull = ctx.socket(SocketKind::Pull);
        let push = zsock(zmq::PUSH);
        if zring_binds {
            push.connect(&pull.bind("tcp://127.0.0.1:*").unwrap())
                .unwrap();
        } else {
            pull.connect(&zbind(&push)).unwrap();
        }
        for m in &messages {
            push.send_multipart(m, 0).unwrap();
        }
        for m in &messages {
            assert_eq!(&frames_of(&pull.recv(T).unwrap()), m);
        }
    }
}

#[test]
fn pub_sub_both_directions_filter_by_prefix() {
    let ctx = Context::new().unwrap();
    for zring_binds in [true, false] {
        // zring PUB -> libzmq SUB
        let mut publisher = ctx.socket(SocketKind::Pub);
        let sub = zsock(zmq::SUB);
        sub.set_subscribe(b"A").unwrap();
        if zring_binds {
            sub.connect(&publisher.bind("tcp://127.0.0.1:*").unwrap())
                .unwrap();
        } else {
            publisher.connect(&zbind(&sub)).unwrap();
            let _ = sub.poll(zmq::POLLIN, 100); // lets libzmq attach the pipe
        }
        wait_until("the SUB's subscription", || publisher.topic_count() == 1);
        publisher.send(&[b"B-no".as_slice()]).unwrap();
        publisher.send(&[b"A-yes".as_slice(), b"more"]).unwrap();
        assert_eq!(
            sub.recv_multipart(0).unwrap(),
            [b"A-yes".to_vec(), b"more".to_vec()]
        );

        // libzmq PUB -> zring SUB
        let mut sub = ctx.socket(SocketKind::Sub);
        sub.subscribe(b"A").unwrap();
        let publisher = zsock(zmq::PUB);
        if zring_binds {
            publisher
                .connect(&sub.bind("tcp://127.0.0.1:*").unwrap())
                .unwrap();
        } else {
            sub.connect(&zbind(&publisher)).unwrap();
        }
        // libzmq sends only what matches subscriptions it has seen: retry
        // until the subscription has arrived.
        let got = loop {
            let _ = publisher.poll(zmq::POLLIN, 0);
            publisher.send("B-no", 0).unwrap();
            publisher.send("A-yes", 0).unwrap();
            if let Ok(m) = sub.recv(Wait::Timeout(Duration::from_millis(50))) {
                break m;
            }
        };
        assert_eq!(frames_of(&got), [b"A-yes".to_vec()]);
        assert!(
            sub.stats().filtered_messages == 0,
            "libzmq PUB filters already"
        );
    }
}

#[test]
fn xpub_reports_libzmq_subscriptions_and_cancels_on_disconnect() {
    let ctx = Context::new().unwrap();
    let mut xpub = ctx.socket(SocketKind::Xpub);
    let endpoint = xpub.bind("tcp://127.0.0.1:*").unwrap();
    let sub1 = zsock(zmq::SUB);
    sub1.connect(&endpoint).unwrap();
    sub1.set_subscribe(b"A").unwrap();
    assert_eq!(frames_of(&xpub.recv(T).unwrap()), [b"\x01A".to_vec()]);

    let sub2 = zsock(zmq::SUB);
    sub2.connect(&endpoint).unwrap();
    sub2.set_subscribe(b"A").unwrap();
    sub2.set_subscribe(b"B").unwrap();
    // "A" is already held: not reported without VERBOSE.
    assert_eq!(frames_of(&xpub.recv(T).unwrap()), [b"\x01B".to_vec()]);

    xpub.send(&[b"A1".as_slice()]).unwrap();
    assert_eq!(sub1.recv_bytes(0).unwrap(), b"A1");
    assert_eq!(sub2.recv_bytes(0).unwrap(), b"A1");

    sub1.set_unsubscribe(b"A").unwrap(); // sub2 still holds A: silent
    drop(sub2); // A and B now held by nobody
    let mut reports: Vec<Vec<u8>> = (0..2)
        .map(|_| frames_of(&xpub.recv(T).unwrap()).remove(0))
        .collect();
    reports.sort();
    assert_eq!(reports, [b"\x00A".to_vec(), b"\x00B".to_vec()]);
    assert!(matches!(
        xpub.recv(Wait::Timeout(Duration::from_millis(200))),
        Err(Error::TimedOut)
    ));
}

#[test]
fn xpub_verbose_and_verboser_report_more() {
    let ctx = Context::new().unwrap();
    let mut xpub = ctx.socket(SocketKind::Xpub);
    xpub.set(SocketOption::XpubVerboser(true)).unwrap();
    let endpoint = xpub.bind("tcp://127.0.0.1:*").unwrap();
    let (a, b) = (zsock(zmq::SUB), zsock(zmq::SUB));
    for s in [&a, &b] {
        s.connect(&endpoint).unwrap();
        s.set_subscribe(b"T").unwrap();
        assert_eq!(frames_of(&xpub.recv(T).unwrap()), [b"\x01T".to_vec()]);
    }
    a.set_unsubscribe(b"T").unwrap();
    assert_eq!(frames_of(&xpub.recv(T).unwrap()), [b"\x00T".to_vec()]);
    b.set_unsubscribe(b"T").unwrap();
    assert_eq!(frames_of(&xpub.recv(T).unwrap()), [b"\x00T".to_vec()]);
}

#[test]
fn xsub_sends_subscriptions_to_libzmq_xpub_and_receives() {
    let ctx = Context::new().unwrap();
    let xpub = zsock(zmq::XPUB);
    xpub.set_xpub_verbose(true).unwrap();
    let endpoint = zbind(&xpub);
    let mut xsub = ctx.socket(SocketKind::Xsub);
    xsub.connect(&endpoint).unwrap();
    xsub.send(&[b"\x01topic".as_slice()]).unwrap();
    assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01topic");
    xsub.send(&[b"\x01topic".as_slice()]).unwrap(); // XSUB forwards every subscribe
    assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01topic");
    xpub.send_multipart([b"topic/1".as_slice(), b"x"], 0)
        .unwrap();
    assert_eq!(
        frames_of(&xsub.recv(T).unwrap()),
        [b"topic/1".to_vec(), b"x".to_vec()]
    );
    xsub.send(&[b"\x00topic".as_slice()]).unwrap(); // count 2 -> 1: silent
    xsub.send(&[b"\x00topic".as_slice()]).unwrap(); // 1 -> 0: forwarded
    assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x00topic");
    xsub.send(&[b"\x00never".as_slice()]).unwrap(); // unknown: swallowed
    xsub.send(&[b"user message".as_slice()]).unwrap(); // XSUB forwards user messages
    assert_eq!(xpub.recv_bytes(0).unwrap(), b"user message");
}

#[test]
fn push_round_robins_over_two_libzmq_pulls() {
    let ctx = Context::new().unwrap();
    let mut push = ctx.socket(SocketKind::Push);
    let endpoint = push.bind("tcp://127.0.0.1:*").unwrap();
    let pulls = [zsock(zmq::PULL), zsock(zmq::PULL)];
    for p in &pulls {
        p.connect(&endpoint).unwrap();
    }
    wait_until("two peers", || push.peer_count() == 2);
    for i in 0..100u32 {
        push.send(&[i.to_be_bytes()]).unwrap();
    }
    let mut got: Vec<Vec<u32>> = Vec::new();
    for p in &pulls {
        got.push(
            (0..50)
                .map(|_| u32::from_be_bytes(p.recv_bytes(0).unwrap().try_into().unwrap()))
                .collect(),
        );
    }
    // Strict alternation: each peer gets every other message.
    assert_eq!(
        got[0].iter().map(|i| i % 2).collect::<Vec<_>>(),
        vec![got[0][0] % 2; 50]
    );
    assert_eq!(
        got[1].iter().map(|i| i % 2).collect::<Vec<_>>(),
        vec![got[1][0] % 2; 50]
    );
    assert_ne!(got[0][0] % 2, got[1][0] % 2);
}

#[test]
fn pull_fair_queues_two_libzmq_pushes() {
    let ctx = Context::new().unwrap();
    let mut pull = ctx.socket(SocketKind::Pull);
    pull.set(SocketOption::RcvHwm(8)).unwrap();
    let endpoint = pull.bind("tcp://127.0.0.1:*").unwrap();
    let pushes = [zsock(zmq::PUSH), zsock(zmq::PUSH)];
    for (tag, p) in [b"a", b"b"].iter().zip(&pushes) {
        p.connect(&endpoint).unwrap();
        for _ in 0..2000 {
            p.send(&tag[..], 0).unwrap();
        }
    }
    // Both peers are now backed up behind the full queue; reading must
    // take from them in turn.
    std::thread::sleep(Duration::from_millis(300));
    let order: Vec<u8> = (0..4000)
        .map(|_| pull.recv(T).unwrap().first_frame()[0])
        .collect();
    // Messages alternate between the peers; the longest run from one peer
    // is the queue's worth it got before the other peer's data arrived
    // (RCVHWM, plus the one held back when the queue filled).
    let longest = order
        .chunk_by(|a, b| a == b)
        .map(<[u8]>::len)
        .max()
        .unwrap();
    assert!(longest <= 9, "a run of {longest} messages from one peer");
    let alternations = order.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(alternations > 3900, "only {alternations} alternations");
    assert_eq!(pull.stats().onloop_drops, 0);
}

#[test]
fn reconnects_when_the_libzmq_peer_returns() {
    let ctx = Context::new().unwrap();
    let pull = zsock(zmq::PULL);
    let endpoint = zbind(&pull);
    let mut push = ctx.socket(SocketKind::Push);
    push.connect(&endpoint).unwrap();
    let mut sub = ctx.socket(SocketKind::Sub);
    sub.subscribe(b"S").unwrap();
    let publisher = zsock(zmq::PUB);
    let pub_endpoint = zbind(&publisher);
    sub.connect(&pub_endpoint).unwrap();

    push.send(&[b"one".as_slice()]).unwrap();
    assert_eq!(pull.recv_bytes(0).unwrap(), b"one");
    drop(pull);
    drop(publisher);
    std::thread::sleep(Duration::from_millis(200));
    // Queued while the peer is away (no IMMEDIATE), delivered on return.
    push.send(&[b"two".as_slice()]).unwrap();
    let pull = zsock(zmq::PULL);
    pull.bind(&endpoint).unwrap();
    assert_eq!(pull.recv_bytes(0).unwrap(), b"two");

    // The SUB replays its subscription to the returning publisher.
    let publisher = zsock(zmq::PUB);
    publisher.bind(&pub_endpoint).unwrap();
    let got = loop {
        let _ = publisher.poll(zmq::POLLIN, 0);
        publisher.send("S-back", 0).unwrap();
        if let Ok(m) = sub.recv(Wait::Timeout(Duration::from_millis(50))) {
            break m;
        }
    };
    assert_eq!(frames_of(&got), [b"S-back".to_vec()]);
    assert!(push.stats().connections_established >= 2);
}

#[test]
fn heartbeats_keep_libzmq_peers_and_time_out_silent_ones() {
    let ctx = Context::new().unwrap();
    let mut pull = ctx.socket(SocketKind::Pull);
    pull.set(SocketOption::HeartbeatIvl(Some(Duration::from_millis(100))))
        .unwrap();
    pull.set(SocketOption::HeartbeatTimeout(Some(Duration::from_millis(
        300,
    ))))
    .unwrap();
    let endpoint = pull.bind("tcp://127.0.0.1:*").unwrap();

    // libzmq answers our PINGs and pings us: the connection lives.
    let push = zsock(zmq::PUSH);
    push.set_heartbeat_ivl(100).unwrap();
    push.set_heartbeat_timeout(300).unwrap();
    push.connect(&endpoint).unwrap();
    push.send("before", 0).unwrap();
    assert_eq!(frames_of(&pull.recv(T).unwrap()), [b"before".to_vec()]);
    std::thread::sleep(Duration::from_millis(1000));
    push.send("after", 0).unwrap();
    assert_eq!(frames_of(&pull.recv(T).unwrap()), [b"after".to_vec()]);
    assert_eq!(pull.stats().timeouts, 0);

    // A peer that completes the handshake and then says nothing is closed.
    let addr = endpoint.strip_prefix("tcp://").unwrap();
    let mut silent = Conn::over(
        TcpStream::connect(addr).unwrap(),
        SessionConfig::new(SocketType::Push),
    );
    silent.handshake();
    let started = Instant::now();
    assert!(matches!(
        silent.next_event_passive(Duration::from_secs(5)),
        Err(Outcome::Closed)
    ));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    assert_eq!(pull.stats().timeouts, 1);
}

#[test]
fn sndhwm_is_exact_for_an_unreachable_peer() {
    // No IMMEDIATE: the pipe exists from connect and holds exactly SNDHWM.
    let ctx = Context::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap(); // accepts, never speaks
    let mut push = ctx.socket(SocketKind::Push);
    push.set(SocketOption::SndHwm(7)).unwrap();
    // The peer never takes them: do not linger on close.
    push.set(SocketOption::Linger(Some(Duration::ZERO)))
        .unwrap();
    push.connect(&format!("tcp://{}", listener.local_addr().unwrap()))
        .unwrap();
    for i in 0..7 {
        push.send_frames(vec![Bytes::from(vec![i])], Wait::DontWait)
            .unwrap();
    }
    assert!(matches!(
        push.send_frames(vec![Bytes::from_static(b"8th")], Wait::DontWait),
        Err(Error::WouldBlock)
    ));
    // IMMEDIATE: no pipe until a handshake, so nothing is accepted.
    let mut immediate = ctx.socket(SocketKind::Push);
    immediate.set(SocketOption::Immediate(true)).unwrap();
    immediate
        .connect(&format!("tcp://{}", listener.local_addr().unwrap()))
        .unwrap();
    assert!(matches!(
        immediate.send_frames(vec![Bytes::from_static(b"x")], Wait::DontWait),
        Err(Error::WouldBlock)
    ));
}

/// A subscriber that completes the handshake, subscribes to everything and
/// never reads again.
fn stalled_subscriber(endpoint: &str) -> Conn {
    let addr = endpoint.strip_prefix("tcp://").unwrap();
    let stream = TcpStream::connect(addr).unwrap();
    let mut conn = Conn::over(stream, SessionConfig::new(SocketType::Sub));
    conn.handshake();
    conn.session
        .send_subscription(SubscriptionAction::Subscribe, Bytes::new())
        .unwrap();
    conn.flush();
    conn
}

#[test]
fn sndhwm_is_exact_with_a_subscriber_that_stops_reading() {
    let ctx = Context::new().unwrap();
    let payload = Bytes::from(vec![0u8; 64 * 1024]);
    for nodrop in [false, true] {
        let mut xpub = ctx.socket(SocketKind::Xpub);
        xpub.set(SocketOption::SndHwm(10)).unwrap();
        xpub.set(SocketOption::XpubNodrop(nodrop)).unwrap();
        let endpoint = xpub.bind("tcp://127.0.0.1:*").unwrap();
        let _stalled = stalled_subscriber(&endpoint);
        assert_eq!(frames_of(&xpub.recv(T).unwrap()), [b"\x01".to_vec()]);
        let mut accepted = 0u64;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "the kernel never filled up");
            match xpub.send_frames(vec![payload.clone()], Wait::DontWait) {
                Ok(()) if xpub.stats().hwm_drops == 0 => accepted += 1,
                Ok(()) => break, // dropped (lossy)
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("{e}"),
            }
            // Give the reactor a chance to hand batches to the kernel, so
            // the kernel's buffers fill rather than the pipe alone.
            if accepted.is_multiple_of(8) {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        // Let the reactor settle: whatever it can hand over, it has.
        std::thread::sleep(Duration::from_millis(300));
        let stats = xpub.stats();
        let held = accepted - stats.messages_out;
        if held < 10 {
            continue_until_full(&mut xpub, &payload, &mut accepted, nodrop);
        }
        let stats = xpub.stats();
        assert_eq!(
            accepted - stats.messages_out,
            10,
            "nodrop={nodrop}: the pipe holds exactly SNDHWM messages \
             (accepted {accepted}, handed to the kernel {})",
            stats.messages_out
        );
        // And the next one is refused or dropped, never queued.
        let before = xpub.stats().hwm_drops;
        let r = xpub.send_frames(vec![payload.clone()], Wait::DontWait);
        if nodrop {
            assert!(matches!(r, Err(Error::WouldBlock)));
        } else {
            r.unwrap();
            assert_eq!(xpub.stats().hwm_drops, before + 1);
        }
    }
}

/// Sends until the pipe is at its mark again (the reactor drained some
/// into the kernel while we slept).
fn continue_until_full(xpub: &mut Socket, payload: &Bytes, accepted: &mut u64, nodrop: bool) {
    loop {
        let drops = xpub.stats().hwm_drops;
        match xpub.send_frames(vec![payload.clone()], Wait::DontWait) {
            Ok(()) if xpub.stats().hwm_drops == drops => *accepted += 1,
            Ok(()) => return,
            Err(Error::WouldBlock) if nodrop => return,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn onloop_overload_accounts_for_every_message() {
    let ctx = Context::new().unwrap();
    let mut pull = ctx.socket(SocketKind::Pull);
    pull.set(SocketOption::RcvHwm(16)).unwrap();
    pull.set(SocketOption::RcvNodrop(false)).unwrap();
    let endpoint = pull.bind("tcp://127.0.0.1:*").unwrap();
    let push = zsock(zmq::PUSH);
    push.connect(&endpoint).unwrap();
    const SENT: u64 = 20_000;
    for i in 0..SENT {
        push.send(&i.to_be_bytes()[..], 0).unwrap();
    }
    let mut delivered = 0u64;
    let mut last = None;
    while pull.stats().messages_in < SENT || delivered + pull.stats().onloop_drops < SENT {
        match pull.recv(Wait::Timeout(Duration::from_millis(20))) {
            Ok(m) => {
                let i = u64::from_be_bytes(m.first_frame().try_into().unwrap());
                assert!(last.is_none_or(|l| i > l), "order kept");
                last = Some(i);
                delivered += 1;
                if delivered.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_millis(1)); // a slow application
                }
            }
            Err(Error::TimedOut) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let drops = pull.stats().onloop_drops;
    assert!(drops > 0, "the test must overload the queue");
    assert_eq!(delivered + drops, SENT);
}

#[test]
fn onloop_nodrop_pushes_back_and_loses_nothing() {
    let ctx = Context::new().unwrap();
    let mut pull = ctx.socket(SocketKind::Pull);
    pull.set(SocketOption::RcvHwm(16)).unwrap();
    let endpoint = pull.bind("tcp://127.0.0.1:*").unwrap();
    let push = zsock(zmq::PUSH);
    push.connect(&endpoint).unwrap();
    const SENT: u64 = 20_000;
    let sender = std::thread::spawn(move || {
        for i in 0..SENT {
            push.send(&i.to_be_bytes()[..], 0).unwrap();
        }
        push
    });
    for expected in 0..SENT {
        let m = pull.recv(T).unwrap();
        assert_eq!(
            u64::from_be_bytes(m.first_frame().try_into().unwrap()),
            expected
        );
        if expected.is_multiple_of(1000) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    drop(sender.join().unwrap());
    assert_eq!(pull.stats().onloop_drops, 0);
}

/// Reads until the peer closes; panics if it stays open for `within`.
fn assert_closed_by_peer(stream: &mut TcpStream, within: Duration) {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("connection still open ({e})"),
        }
        assert!(Instant::now() < deadline, "connection still open");
    }
}

#[test]
fn bad_peers_cost_only_their_own_connection() {
    let ctx = Context::new().unwrap();
    let mut pull = ctx.socket(SocketKind::Pull);
    pull.set(SocketOption::MaxMsgSize(Some(1 << 20))).unwrap();
    let endpoint = pull.bind("tcp://127.0.0.1:*").unwrap();
    let addr = endpoint.strip_prefix("tcp://").unwrap().to_owned();

    let good = zsock(zmq::PUSH);
    good.connect(&endpoint).unwrap();
    let sender = std::thread::spawn(move || {
        for i in 0..3000u32 {
            good.send(&i.to_be_bytes()[..], 0).unwrap();
            if i.is_multiple_of(500) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        good
    });

    let handshaken = || {
        let mut c = Conn::over(
            TcpStream::connect(&addr).unwrap(),
            SessionConfig::new(SocketType::Push),
        );
        c.handshake();
        c
    };
    // Not ZMTP at all.
    let mut http = TcpStream::connect(&addr).unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // A frame larger than MAXMSGSIZE.
    let mut oversized = handshaken();
    oversized
        .stream
        .write_all(&[0x02, 0, 0, 0, 0, 0x40, 0, 0, 0])
        .unwrap();
    // A command whose name length runs past its body.
    let mut malformed = handshaken();
    malformed
        .stream
        .write_all(&[0x04, 0x03, 0x09, b'P', b'I'])
        .unwrap();
    // Half a greeting, then gone.
    let mut truncated = TcpStream::connect(&addr).unwrap();
    truncated.write_all(&[0xff, 0, 0, 0]).unwrap();
    drop(truncated);

    for stream in [&mut http, &mut oversized.stream, &mut malformed.stream] {
        assert_closed_by_peer(stream, Duration::from_secs(5));
    }
    for expected in 0..3000u32 {
        let m = pull.recv(T).unwrap();
        assert_eq!(m.first_frame(), expected.to_be_bytes());
    }
    drop(sender.join().unwrap());
    let stats = pull.stats();
    assert!(stats.protocol_errors >= 3, "{stats:?}");
    assert_eq!(stats.onloop_drops, 0);
}

#[test]
fn a_peer_that_closes_while_paused_still_delivers_everything() {
    // The sender hands everything to the kernel and closes while the
    // receiving connection is paused on a full onloop queue; what it sent
    // before closing must still arrive.
    let ctx = Context::new().unwrap();
    let mut pull = ctx.socket(SocketKind::Pull);
    pull.set(SocketOption::RcvHwm(4)).unwrap();
    let endpoint = pull.bind("tcp://127.0.0.1:*").unwrap();
    let push = zsock(zmq::PUSH);
    push.set_linger(-1).unwrap();
    push.connect(&endpoint).unwrap();
    const SENT: u32 = 10_000;
    for i in 0..SENT {
        push.send(&i.to_be_bytes()[..], 0).unwrap();
    }
    drop(push); // libzmq keeps sending in the background, then closes
    std::thread::sleep(Duration::from_millis(300));
    for expected in 0..SENT {
        let m = pull.recv(T).unwrap();
        assert_eq!(m.first_frame(), expected.to_be_bytes());
    }
    wait_until("the close", || pull.stats().disconnects == 1);
}

#[test]
fn a_zero_copy_send_stuck_at_a_silent_peer_does_not_hold_up_the_reconnect() {
    // The peer handshakes, then never reads: its window closes with our
    // zero-copy frames unacknowledged, so the kernel keeps their pages (and
    // the send's notification) until TCP gives up, many minutes away. The
    // heartbeat closes the connection; the connecter must reconnect now.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ctx = Context::new().unwrap();
    let mut push = ctx.socket(SocketKind::Push);
    push.set(SocketOption::ZeroCopySendAbove(Some(64 * 1024)))
        .unwrap();
    push.set(SocketOption::HeartbeatIvl(Some(Duration::from_millis(100))))
        .unwrap();
    push.set(SocketOption::HeartbeatTimeout(Some(Duration::from_millis(
        300,
    ))))
    .unwrap();
    push.set(SocketOption::ReconnectIvl(Some(Duration::from_millis(50))))
        .unwrap();
    push.set(SocketOption::Linger(Some(Duration::ZERO)))
        .unwrap();
    push.connect(&format!("tcp://{}", listener.local_addr().unwrap()))
        .unwrap();
    let mut stuck = Conn::accept(&listener, SessionConfig::new(SocketType::Pull));
    stuck.handshake();
    let frame = Bytes::from(vec![7u8; 1 << 20]);
    for _ in 0..16 {
        push.send_frames(vec![frame.clone()], Wait::DontWait)
            .unwrap();
    }

    let second = accept_within(
        &listener,
        Duration::from_secs(5),
        "no reconnect within 5 s of a heartbeat timeout at 300 ms",
    );
    assert_eq!(push.stats().timeouts, 1);
    // The new connection is served.
    let mut fresh = Conn::over(second, SessionConfig::new(SocketType::Pull));
    fresh.handshake();
    drop(stuck);
}

#[test]
fn a_closed_socket_whose_lingering_connection_drops_reconnects_to_deliver_the_rest() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ctx = Context::new().unwrap();
    let mut push = ctx.socket(SocketKind::Push);
    push.set(SocketOption::SndHwm(0)).unwrap();
    push.set(SocketOption::ReconnectIvl(Some(Duration::from_millis(50))))
        .unwrap();
    push.set(SocketOption::Linger(Some(Duration::from_secs(10))))
        .unwrap();
    push.connect(&format!("tcp://{}", listener.local_addr().unwrap()))
        .unwrap();
    let mut first = Conn::accept(&listener, SessionConfig::new(SocketType::Pull));
    first.handshake();
    const N: u32 = 300;
    for i in 0..N {
        let mut body = vec![0u8; 64 * 1024];
        body[..4].copy_from_slice(&i.to_be_bytes());
        push.send_frames(vec![Bytes::from(body)], Wait::DontWait)
            .unwrap();
    }
    // Closed with far more queued than the silent peer's window takes; the
    // connection lingers, then the peer drops it.
    drop(push);
    std::thread::sleep(Duration::from_millis(100));
    drop(first);

    // The rest of the linger belongs to the connecter: it reconnects and
    // delivers what was still queued, in order, through the last message.
    let stream = accept_within(
        &listener,
        Duration::from_secs(5),
        "the closed socket did not reconnect to deliver its queue",
    );
    let mut second = Conn::over(stream, SessionConfig::new(SocketType::Pull));
    second.handshake();
    let mut seen = Vec::new();
    while let Ok(Some(event)) = second.next_event(Duration::from_secs(5)) {
        if let zmtp_codec::Event::Message(m) = event {
            let body = m.first_frame();
            seen.push(u32::from_be_bytes(body[..4].try_into().unwrap()));
            if seen.last() == Some(&(N - 1)) {
                break;
            }
        }
    }
    assert!(!seen.is_empty(), "nothing arrived on the new connection");
    assert_eq!(seen.last(), Some(&(N - 1)), "the queue's tail arrived");
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, no gaps: {seen:?}"
    );
}

/// The next connection to `listener`, failing with `why` after `limit`.
fn accept_within(listener: &TcpListener, limit: Duration, why: &str) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let started = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                listener.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(started.elapsed() < limit, "{why}");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}
