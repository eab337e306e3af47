//! zring sockets with CURVE and PLAIN against real libzmq 4.3.5 (pyzmq's
//! wheel, built with libsodium): both roles for PUSH/PULL, PUB/SUB and
//! XPUB/XSUB, and each refusal counted on zring's side and reported on
//! libzmq's, with nothing delivered.

mod support;

use std::time::{Duration, Instant};

use support::pyzmq::{
    PyzmqPeer, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, ZMQ_PLAIN_PASSWORD,
    ZMQ_PLAIN_USERNAME,
};
use support::{pyzmq_secure_peer, LibzmqPeer};
use zring::codec::{KeyPair, OsRandom};
use zring::{Access, Context, Security, Socket, SocketKind, SocketOption, SocketStats, Wait};

const TIMEOUT: Duration = Duration::from_secs(5);

fn keys() -> KeyPair {
    KeyPair::generate(&mut OsRandom).expect("OS randomness")
}

fn zring_socket(ctx: &Context, kind: SocketKind, security: Security) -> Socket {
    let mut s = ctx.socket(kind);
    s.set_security(security).unwrap();
    s
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends from `send` until `recv` gets one (a PUB drops what it sends
/// before the subscription arrives), then checks a numbered run arrives.
fn zring_to_libzmq(sender: &mut Socket, receiver: &mut PyzmqPeer) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        sender
            .send_copy(&[&b"topic"[..], b"hello"], Wait::Block)
            .unwrap();
        if let Some(m) = receiver.recv(Duration::from_millis(50)) {
            assert_eq!(m, [b"topic".to_vec(), b"hello".to_vec()]);
            break;
        }
        assert!(Instant::now() < deadline, "nothing arrived at libzmq");
    }
    while receiver.recv(Duration::from_millis(50)).is_some() {}
    for i in 0..100u32 {
        let body = vec![i as u8; 4096];
        sender
            .send_copy(&[&b"topic"[..], &body], Wait::Block)
            .unwrap();
    }
    for i in 0..100u32 {
        let m = receiver.recv(TIMEOUT).expect("every message arrives");
        assert_eq!(m[1], vec![i as u8; 4096], "message {i}");
    }
}

fn libzmq_to_zring(sender: &mut PyzmqPeer, receiver: &mut Socket) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        sender.send(&[b"topic", b"hello"]);
        if let Ok(m) = receiver.recv(Wait::Timeout(Duration::from_millis(50))) {
            assert_eq!(m.to_frames(), [&b"topic"[..], b"hello"]);
            break;
        }
        assert!(Instant::now() < deadline, "nothing arrived at zring");
    }
    while receiver
        .recv(Wait::Timeout(Duration::from_millis(50)))
        .is_ok()
    {}
    for i in 0..100u32 {
        sender.send(&[b"topic", &vec![i as u8; 4096]]);
    }
    for i in 0..100u32 {
        let m = receiver
            .recv(Wait::Timeout(TIMEOUT))
            .expect("every message arrives");
        assert_eq!(m.frame(1).unwrap(), vec![i as u8; 4096], "message {i}");
    }
}

#[test]
fn zring_curve_servers_serve_libzmq_clients() {
    let ctx = Context::new().unwrap();
    for (ours, theirs) in [
        (SocketKind::Pull, "PUSH"),
        (SocketKind::Pub, "SUB"),
        (SocketKind::Xpub, "XSUB"),
    ] {
        let (server, client) = (keys(), keys());
        let access = Access::default().allow_curve_client(client.public);
        let mut zs = zring_socket(&ctx, ours, Security::curve_server(server.clone(), access));
        let endpoint = zs.bind("tcp://127.0.0.1:*").unwrap();
        let mut peer = pyzmq_secure_peer(theirs);
        peer.curve_client(
            client.public.as_bytes(),
            client.secret.as_bytes(),
            server.public.as_bytes(),
        );
        peer.monitor();
        peer.connect(&endpoint);
        assert!(
            peer.wait_event(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, TIMEOUT)
                .is_some(),
            "{theirs}: libzmq's CURVE handshake with zring succeeds"
        );
        match theirs {
            "PUSH" => libzmq_to_zring(&mut peer, &mut zs),
            "SUB" => {
                peer.subscribe(b"topic");
                zring_to_libzmq(&mut zs, &mut peer);
            }
            _ => {
                // XSUB subscribes with a message; zring's XPUB reports it.
                peer.send(&[b"\x01topic"]);
                let report = zs
                    .recv(Wait::Timeout(TIMEOUT))
                    .expect("subscription report");
                assert_eq!(report.first_frame(), b"\x01topic");
                zring_to_libzmq(&mut zs, &mut peer);
            }
        }
        assert_eq!(zs.stats().security_failures, 0);
    }
}

#[test]
fn zring_curve_clients_reach_libzmq_servers() {
    let ctx = Context::new().unwrap();
    for (ours, theirs) in [
        (SocketKind::Push, "PULL"),
        (SocketKind::Sub, "PUB"),
        (SocketKind::Xsub, "XPUB"),
    ] {
        let (server, client) = (keys(), keys());
        let mut peer = pyzmq_secure_peer(theirs);
        peer.curve_server(server.secret.as_bytes());
        peer.zap(&[*client.public.as_bytes()], &[]);
        let endpoint = peer.bind("tcp://127.0.0.1:0");
        let security = Security::curve_client(client, server.public);
        let mut zs = zring_socket(&ctx, ours, security);
        match ours {
            SocketKind::Push => {
                zs.connect(&endpoint).unwrap();
                zring_to_libzmq(&mut zs, &mut peer);
            }
            SocketKind::Sub => {
                zs.subscribe(b"topic").unwrap();
                zs.connect(&endpoint).unwrap();
                libzmq_to_zring(&mut peer, &mut zs);
            }
            _ => {
                zs.subscribe(b"topic").unwrap();
                zs.connect(&endpoint).unwrap();
                // libzmq's XPUB reports the subscription that came over CURVE.
                let report = peer.recv(TIMEOUT).expect("subscription at libzmq's XPUB");
                assert_eq!(report, [b"\x01topic".to_vec()]);
                libzmq_to_zring(&mut peer, &mut zs);
            }
        }
        assert_eq!(zs.stats().security_failures, 0);
    }
}

/// Connects `peer` to a zring CURVE PULL admitting only `admitted`, sends,
/// and returns what zring counted; asserts nothing was delivered.
fn refused_by_zring(peer: &mut PyzmqPeer, security: Security) -> SocketStats {
    let ctx = Context::new().unwrap();
    let mut pull = zring_socket(&ctx, SocketKind::Pull, security);
    let endpoint = pull.bind("tcp://127.0.0.1:*").unwrap();
    peer.monitor();
    peer.connect(&endpoint);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let s = pull.stats();
        if s.security_failures + s.access_denied > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "zring did not refuse the peer: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // libzmq queues it if it still has a pipe for us; it must not arrive.
    let _ = peer.try_send(&[b"must not arrive"]);
    assert!(
        pull.recv(Wait::Timeout(Duration::from_millis(300)))
            .is_err(),
        "nothing is delivered from a refused peer"
    );
    pull.stats()
}

#[test]
fn an_unknown_client_key_gets_libzmqs_error_400() {
    let (server, client, stranger) = (keys(), keys(), keys());
    let access = Access::default().allow_curve_client(client.public);
    let mut peer = pyzmq_secure_peer("PUSH");
    peer.curve_client(
        stranger.public.as_bytes(),
        stranger.secret.as_bytes(),
        server.public.as_bytes(),
    );
    let stats = refused_by_zring(&mut peer, Security::curve_server(server, access));
    assert!(stats.security_failures >= 1);
    assert_eq!(
        peer.wait_event(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, TIMEOUT),
        Some(400),
        "libzmq reports the refusal as ZAP status 400"
    );
}

#[test]
fn a_client_with_the_wrong_server_key_is_refused() {
    let (server, client, other) = (keys(), keys(), keys());
    let mut peer = pyzmq_secure_peer("PUSH");
    peer.curve_client(
        client.public.as_bytes(),
        client.secret.as_bytes(),
        other.public.as_bytes(),
    );
    let stats = refused_by_zring(&mut peer, Security::curve_server(server, Access::default()));
    assert!(stats.security_failures >= 1, "{stats:?}");
}

#[test]
fn a_plaintext_peer_is_refused_by_a_curve_server_and_the_reverse() {
    let server = keys();
    let mut plaintext = pyzmq_secure_peer("PUSH");
    let stats = refused_by_zring(
        &mut plaintext,
        Security::curve_server(server.clone(), Access::default()),
    );
    assert!(stats.security_failures >= 1, "{stats:?}");

    // Our CURVE client against libzmq's plaintext PULL.
    let ctx = Context::new().unwrap();
    let mut peer = pyzmq_secure_peer("PULL");
    let endpoint = peer.bind("tcp://127.0.0.1:0");
    let mut push = zring_socket(
        &ctx,
        SocketKind::Push,
        Security::curve_client(keys(), server.public),
    );
    // The message below can never be sent: do not linger on it.
    push.set(SocketOption::Linger(Some(Duration::ZERO)))
        .unwrap();
    push.connect(&endpoint).unwrap();
    wait_for("our client to give up the handshake", || {
        push.stats().security_failures > 0
    });
    let _ = push.send_copy(&[b"must not arrive"], Wait::DontWait);
    assert_eq!(peer.recv(Duration::from_millis(300)), None);
}

#[test]
fn a_denied_address_is_closed_before_its_handshake() {
    let (server, client) = (keys(), keys());
    let access = Access::default()
        .allow_curve_client(client.public)
        .deny_addresses("127.0.0.0/8".parse().unwrap());
    let mut peer = pyzmq_secure_peer("PUSH");
    peer.curve_client(
        client.public.as_bytes(),
        client.secret.as_bytes(),
        server.public.as_bytes(),
    );
    let stats = refused_by_zring(&mut peer, Security::curve_server(server, access));
    assert!(stats.access_denied >= 1, "{stats:?}");
    assert_eq!(stats.handshakes, 0);
}

#[test]
fn plain_users_with_their_password_get_in_and_others_get_400() {
    let access = || Access::default().allow_plain_user("zeek", "s3cret");
    // The right password: messages flow.
    let ctx = Context::new().unwrap();
    let mut pull = zring_socket(&ctx, SocketKind::Pull, Security::plain_server(access()));
    let endpoint = pull.bind("tcp://127.0.0.1:*").unwrap();
    let mut peer = pyzmq_secure_peer("PUSH");
    peer.set_bytes(ZMQ_PLAIN_USERNAME, b"zeek");
    peer.set_bytes(ZMQ_PLAIN_PASSWORD, b"s3cret");
    peer.connect(&endpoint);
    libzmq_to_zring(&mut peer, &mut pull);

    // A wrong password: libzmq's PLAIN client sees status 400.
    let mut wrong = pyzmq_secure_peer("PUSH");
    wrong.set_bytes(ZMQ_PLAIN_USERNAME, b"zeek");
    wrong.set_bytes(ZMQ_PLAIN_PASSWORD, b"guess");
    let stats = refused_by_zring(&mut wrong, Security::plain_server(access()));
    assert!(stats.security_failures >= 1, "{stats:?}");
    assert_eq!(
        wrong.wait_event(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, TIMEOUT),
        Some(400)
    );

    // Our PLAIN client against libzmq's PLAIN server with a ZAP handler.
    let mut server = pyzmq_secure_peer("PULL");
    server.set_int(support::pyzmq::ZMQ_PLAIN_SERVER, 1);
    server.zap(&[], &[(b"zeek", b"s3cret")]);
    let endpoint = server.bind("tcp://127.0.0.1:0");
    let mut push = zring_socket(
        &ctx,
        SocketKind::Push,
        Security::plain_client("zeek", "s3cret").unwrap(),
    );
    push.connect(&endpoint).unwrap();
    zring_to_libzmq(&mut push, &mut server);
}

#[test]
fn an_encrypted_zeek_cluster_runs_through_zring_broker() {
    // Zeek 8.2's encrypted cluster: one server and one client key pair,
    // given to zring as Zeek's environment variables; nodes are libzmq
    // CURVE clients, the broker's two sides CURVE servers admitting the
    // cluster's client key only.
    let (server, client, stranger) = (keys(), keys(), keys());
    let env = |name: &str| match name {
        zring::keys::ENV_SERVER_SECRETKEY => Some(server.secret.to_z85()),
        zring::keys::ENV_CLIENT_PUBLICKEY => Some(client.public.to_z85()),
        _ => None,
    };
    let settings = zring::keys::CurveOptions::default()
        .resolve(env)
        .unwrap()
        .expect("CURVE is configured");
    let config = zring::broker::BrokerConfig {
        listen_xpub_endpoint: "tcp://127.0.0.1:*".into(),
        listen_xsub_endpoint: "tcp://127.0.0.1:*".into(),
        linger: Duration::ZERO,
        ..Default::default()
    };
    let broker =
        zring::broker::Broker::start_with_security(config, settings.server_security()).unwrap();
    let node = |kind: &str, keys: &KeyPair, endpoint: &str| {
        let mut peer = pyzmq_secure_peer(kind);
        peer.curve_client(
            keys.public.as_bytes(),
            keys.secret.as_bytes(),
            server.public.as_bytes(),
        );
        peer.monitor();
        peer.connect(endpoint);
        peer
    };
    let mut subscriber = node("XSUB", &client, broker.xpub_endpoint());
    let mut publisher = node("XPUB", &client, broker.xsub_endpoint());
    subscriber.send(&[b"\x01zeek/event/"]);
    // The publisher sees the subscription forwarded over CURVE (B2).
    assert_eq!(
        publisher.recv(TIMEOUT),
        Some(vec![b"\x01zeek/event/".to_vec()])
    );
    publisher.send(&[b"zeek/event/x", b"node", b"broker-bin-v1", b"payload"]);
    assert_eq!(
        subscriber.recv(TIMEOUT),
        Some(vec![
            b"zeek/event/x".to_vec(),
            b"node".to_vec(),
            b"broker-bin-v1".to_vec(),
            b"payload".to_vec()
        ])
    );
    // A node with another client key is refused, with status 400.
    let mut intruder = node("XSUB", &stranger, broker.xpub_endpoint());
    assert_eq!(
        intruder.wait_event(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, TIMEOUT),
        Some(400)
    );
    wait_for("the broker to count the refusal", || {
        broker.stats().xpub_side.security_failures > 0
    });
}
