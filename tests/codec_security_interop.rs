//! zmtp-codec's CURVE and PLAIN against real libzmq 4.3.5 (pyzmq's wheel,
//! built with libsodium): a blocking `TcpStream` driven by a `Session`, as
//! client and as server, with messages both ways, and every refusal the
//! way libzmq makes or expects it.

mod support;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use support::pyzmq::{
    PyzmqPeer, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, ZMQ_PLAIN_PASSWORD,
    ZMQ_PLAIN_SERVER, ZMQ_PLAIN_USERNAME,
};
use support::pyzmq_secure_peer;
use support::raw::{Conn, Outcome};
use support::{test_messages, LibzmqPeer};
use zmtp_codec::{
    AllowAll, Authorizer, Credentials, CurveClient, CurveServer, Error, Event, KeyPair, Mechanism,
    OsRandom, PlainClient, PlainServer, Refusal, Session, SessionConfig, SocketType,
    SubscriptionAction, SubscriptionForm,
};

const TIMEOUT: Duration = Duration::from_secs(5);

fn frames_of(m: &[Vec<u8>]) -> Vec<&[u8]> {
    m.iter().map(Vec::as_slice).collect()
}

fn keys() -> KeyPair {
    KeyPair::generate(&mut OsRandom).expect("OS randomness")
}

/// Connects our session to a bound libzmq peer.
fn connect_to(endpoint: &str, socket_type: SocketType, mechanism: Box<dyn Mechanism>) -> Conn {
    let addr = endpoint.strip_prefix("tcp://").expect("tcp endpoint");
    let stream = TcpStream::connect(addr).expect("connect to libzmq");
    Conn::over_session(
        stream,
        Session::with_mechanism(SessionConfig::new(socket_type), mechanism),
    )
}

/// Lets a libzmq peer connect to us and wraps the accepted stream.
fn accept_from(
    peer: &mut PyzmqPeer,
    socket_type: SocketType,
    mechanism: Box<dyn Mechanism>,
) -> Conn {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("tcp://{}", listener.local_addr().expect("addr"));
    peer.connect(&endpoint);
    let (stream, _) = listener.accept().expect("libzmq connects");
    Conn::over_session(
        stream,
        Session::with_mechanism(SessionConfig::new(socket_type), mechanism),
    )
}

fn exchange_both_ways(conn: &mut Conn, peer: &mut PyzmqPeer) {
    for m in test_messages() {
        conn.send(&frames_of(&m));
        assert_eq!(peer.recv(TIMEOUT).expect("libzmq receives"), m);
        peer.send(&frames_of(&m));
        assert_eq!(conn.recv_frames(), m);
    }
}

/// The codec's verdict, the ERROR it queued written out first.
fn refused(conn: &mut Conn) -> Error {
    let outcome = loop {
        match conn.next_event(TIMEOUT) {
            Ok(Some(Event::Ready(_))) => panic!("the handshake must not succeed"),
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no verdict within {TIMEOUT:?}"),
            Err(outcome) => break outcome,
        }
    };
    conn.flush();
    match outcome {
        Outcome::Codec(e) => e,
        Outcome::Closed => panic!("libzmq closed before the codec decided"),
    }
}

/// Reads until libzmq closes the connection, failing on any event.
fn expect_closed_by_libzmq(conn: &mut Conn) {
    match conn.next_event(TIMEOUT) {
        Err(Outcome::Closed) => {}
        other => panic!("expected libzmq to close the connection, got {other:?}"),
    }
}

// ----------------------------------------------------------------- CURVE

#[test]
fn curve_client_against_libzmq_server() {
    let server = keys();
    let client = keys();
    let mut peer = pyzmq_secure_peer("DEALER");
    assert_eq!(peer.version(), "4.3.5");
    peer.curve_server(server.secret.as_bytes());
    let endpoint = peer.bind("tcp://127.0.0.1:0");
    let mut conn = connect_to(
        &endpoint,
        SocketType::Dealer,
        Box::new(CurveClient::new(client, server.public)),
    );
    let info = conn.handshake();
    assert_eq!(info.socket_type, Some(SocketType::Dealer));
    peer.settle();
    exchange_both_ways(&mut conn, &mut peer);
}

#[test]
fn curve_server_against_libzmq_client() {
    let server = keys();
    let client = keys();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let authorizer = move |c: &Credentials<'_>| {
        if let Credentials::Curve { public_key } = c {
            log.lock().unwrap().push(**public_key);
        }
        Ok(())
    };
    let mut peer = pyzmq_secure_peer("DEALER");
    peer.curve_client(
        client.public.as_bytes(),
        client.secret.as_bytes(),
        server.public.as_bytes(),
    );
    peer.monitor();
    let mut conn = accept_from(
        &mut peer,
        SocketType::Dealer,
        Box::new(CurveServer::new(server, Box::new(authorizer))),
    );
    let info = conn.handshake();
    assert_eq!(info.socket_type, Some(SocketType::Dealer));
    assert_eq!(
        *seen.lock().unwrap(),
        [*client.public.as_bytes()],
        "the authoriser saw libzmq's long-term key"
    );
    assert_eq!(
        peer.wait_event(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, TIMEOUT),
        Some(0)
    );
    exchange_both_ways(&mut conn, &mut peer);
}

/// Zeek's shape: a libzmq SUB (CURVE client) on our XPUB (CURVE server);
/// subscriptions arrive as MESSAGE boxes with the inner COMMAND flag.
#[test]
fn curve_xpub_server_gets_subscriptions_from_libzmq_sub() {
    let server = keys();
    let client = keys();
    let mut peer = pyzmq_secure_peer("SUB");
    peer.curve_client(
        client.public.as_bytes(),
        client.secret.as_bytes(),
        server.public.as_bytes(),
    );
    let mut conn = accept_from(
        &mut peer,
        SocketType::XPub,
        Box::new(CurveServer::new(server, Box::new(AllowAll))),
    );
    conn.handshake();
    peer.subscribe(b"zeek.cluster.");
    match conn.next_significant() {
        Event::Subscription(s) => assert_eq!(
            (s.action, &s.topic[..], s.form),
            (
                SubscriptionAction::Subscribe,
                &b"zeek.cluster."[..],
                SubscriptionForm::Command
            )
        ),
        other => panic!("expected a subscription, got {other:?}"),
    }
    conn.send(&[b"zeek.cluster.node", b"payload"]);
    assert_eq!(
        peer.recv(TIMEOUT).expect("delivered"),
        vec![b"zeek.cluster.node".to_vec(), b"payload".to_vec()]
    );
}

#[test]
fn curve_server_refuses_unknown_libzmq_client_with_error_400() {
    let server = keys();
    let client = keys();
    let allowed = keys().public;
    let authorizer = move |c: &Credentials<'_>| match c {
        Credentials::Curve { public_key } if **public_key == *allowed.as_bytes() => Ok(()),
        _ => Err(Refusal::denied("unknown client key")),
    };
    let mut peer = pyzmq_secure_peer("DEALER");
    peer.curve_client(
        client.public.as_bytes(),
        client.secret.as_bytes(),
        server.public.as_bytes(),
    );
    peer.monitor();
    let mut conn = accept_from(
        &mut peer,
        SocketType::Dealer,
        Box::new(CurveServer::new(server, Box::new(authorizer))),
    );
    peer.send(&[b"must not arrive"]);
    let err = refused(&mut conn);
    assert_eq!(
        err,
        Error::Refused {
            mechanism: "CURVE",
            reason: "400 unknown client key".into()
        }
    );
    // libzmq read our ERROR as a ZAP refusal with status 400, as Zeek's
    // nodes report it.
    assert_eq!(
        peer.wait_event(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, TIMEOUT),
        Some(400)
    );
}

#[test]
fn libzmq_server_with_zap_refuses_our_unknown_key_with_error_400() {
    let server = keys();
    let known = keys();
    let stranger = keys();
    for (client, admitted) in [(known.clone(), true), (stranger, false)] {
        let mut peer = pyzmq_secure_peer("DEALER");
        peer.zap(&[*known.public.as_bytes()], &[]);
        peer.curve_server(server.secret.as_bytes());
        let endpoint = peer.bind("tcp://127.0.0.1:0");
        let mut conn = connect_to(
            &endpoint,
            SocketType::Dealer,
            Box::new(CurveClient::new(client, server.public)),
        );
        if admitted {
            conn.handshake();
            peer.settle();
            conn.send(&[b"admitted"]);
            assert_eq!(peer.recv(TIMEOUT), Some(vec![b"admitted".to_vec()]));
        } else {
            assert_eq!(refused(&mut conn), Error::PeerError("400".into()));
        }
    }
}

#[test]
fn wrong_server_key_fails_both_ways() {
    let server = keys();
    let client = keys();
    let wrong = keys().public;

    // Our client, wrong key: libzmq cannot open HELLO and hangs up.
    let mut peer = pyzmq_secure_peer("DEALER");
    peer.curve_server(server.secret.as_bytes());
    let endpoint = peer.bind("tcp://127.0.0.1:0");
    let mut conn = connect_to(
        &endpoint,
        SocketType::Dealer,
        Box::new(CurveClient::new(client.clone(), wrong)),
    );
    expect_closed_by_libzmq(&mut conn);

    // libzmq's client, wrong key: we cannot open its HELLO.
    let mut peer = pyzmq_secure_peer("DEALER");
    peer.curve_client(
        client.public.as_bytes(),
        client.secret.as_bytes(),
        wrong.as_bytes(),
    );
    let mut conn = accept_from(
        &mut peer,
        SocketType::Dealer,
        Box::new(CurveServer::new(server, Box::new(AllowAll))),
    );
    assert_eq!(refused(&mut conn), Error::BadBox { what: "HELLO" });
}

/// `ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL` and its value for a mechanism
/// mismatch, `ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH` (what Zeek prints
/// as `event=0x2000 value=285212674`).
const HANDSHAKE_FAILED_PROTOCOL: u32 = 0x2000;
const MECHANISM_MISMATCH: u32 = 0x1100_0002;

#[test]
fn plaintext_peer_against_curve_and_the_reverse() {
    let server = keys();
    // libzmq NULL client against our CURVE server.
    let mut peer = pyzmq_secure_peer("DEALER");
    peer.monitor();
    let mut conn = accept_from(
        &mut peer,
        SocketType::Dealer,
        Box::new(CurveServer::new(server.clone(), Box::new(AllowAll))),
    );
    expect_mismatch_or_close(&mut conn, "CURVE", "NULL");
    assert_eq!(
        peer.wait_event(HANDSHAKE_FAILED_PROTOCOL, TIMEOUT),
        Some(MECHANISM_MISMATCH)
    );
    // Our NULL client against a libzmq CURVE server.
    let mut peer = pyzmq_secure_peer("DEALER");
    peer.monitor();
    peer.curve_server(server.secret.as_bytes());
    let endpoint = peer.bind("tcp://127.0.0.1:0");
    let addr = endpoint.strip_prefix("tcp://").unwrap();
    let mut conn = Conn::over(
        TcpStream::connect(addr).unwrap(),
        SessionConfig::new(SocketType::Dealer),
    );
    expect_mismatch_or_close(&mut conn, "NULL", "CURVE");
    assert_eq!(
        peer.wait_event(HANDSHAKE_FAILED_PROTOCOL, TIMEOUT),
        Some(MECHANISM_MISMATCH)
    );
}

/// A mechanism mismatch: libzmq reads our whole greeting at once and may
/// hang up before its own mechanism is out, so either side may be the one
/// to notice; the handshake never completes.
fn expect_mismatch_or_close(conn: &mut Conn, ours: &str, theirs: &str) {
    match conn.next_event(TIMEOUT) {
        Err(Outcome::Closed) => {}
        Err(Outcome::Codec(err)) => assert_eq!(
            err,
            Error::MechanismMismatch {
                ours: ours.into(),
                theirs: theirs.into()
            }
        ),
        other => panic!("expected the connection to fail, got {other:?}"),
    }
    assert!(!conn.session.is_ready());
}

/// Queues `frames` as one message and takes its wire bytes out of the
/// outbox instead of sending them.
fn sealed(conn: &mut Conn, frames: &[&[u8]]) -> Bytes {
    let frames: Vec<Bytes> = frames.iter().map(|f| Bytes::copy_from_slice(f)).collect();
    conn.session.send_frames(&frames).unwrap();
    let n = conn.session.outbox().remaining();
    conn.session.outbox().copy_to_bytes(n)
}

fn curve_push_to_libzmq_pull() -> (Conn, PyzmqPeer) {
    let server = keys();
    let mut peer = pyzmq_secure_peer("PULL");
    peer.curve_server(server.secret.as_bytes());
    let endpoint = peer.bind("tcp://127.0.0.1:0");
    let mut conn = connect_to(
        &endpoint,
        SocketType::Push,
        Box::new(CurveClient::new(keys(), server.public)),
    );
    conn.handshake();
    peer.settle();
    (conn, peer)
}

#[test]
fn libzmq_refuses_a_replayed_message_nonce() {
    let (mut conn, mut peer) = curve_push_to_libzmq_pull();
    let once = sealed(&mut conn, &[b"once"]);
    conn.stream.write_all(&once).unwrap();
    conn.stream.write_all(&once).unwrap();
    assert_eq!(peer.recv(TIMEOUT), Some(vec![b"once".to_vec()]));
    expect_closed_by_libzmq(&mut conn);
    assert_eq!(
        peer.recv(Duration::from_millis(300)),
        None,
        "delivered once"
    );
}

#[test]
fn libzmq_refuses_a_reordered_message_nonce() {
    let (mut conn, mut peer) = curve_push_to_libzmq_pull();
    let first = sealed(&mut conn, &[b"first"]);
    let second = sealed(&mut conn, &[b"second"]);
    conn.stream.write_all(&second).unwrap();
    conn.stream.write_all(&first).unwrap();
    assert_eq!(peer.recv(TIMEOUT), Some(vec![b"second".to_vec()]));
    expect_closed_by_libzmq(&mut conn);
    assert_eq!(peer.recv(Duration::from_millis(300)), None);
}

#[test]
fn we_refuse_a_replayed_nonce_from_a_libzmq_peer_stream() {
    // libzmq never replays, so replay its own bytes: record what it sends
    // to us and feed the same MESSAGE twice.
    let server = keys();
    let client = keys();
    let mut peer = pyzmq_secure_peer("PUSH");
    peer.curve_client(
        client.public.as_bytes(),
        client.secret.as_bytes(),
        server.public.as_bytes(),
    );
    let mut conn = accept_from(
        &mut peer,
        SocketType::Pull,
        Box::new(CurveServer::new(server, Box::new(AllowAll))),
    );
    conn.handshake();
    peer.send(&[b"m"]);
    // Read the raw MESSAGE off the socket ourselves.
    let mut raw = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while raw.len() < 2 + 34 && std::time::Instant::now() < deadline {
        let mut buf = [0u8; 256];
        if let Ok(n) = std::io::Read::read(&mut conn.stream, &mut buf) {
            raw.extend_from_slice(&buf[..n]);
        }
    }
    assert_eq!(raw.len(), 2 + 34, "one MESSAGE of a 1-byte frame");
    let raw = Bytes::from(raw);
    conn.session.feed(raw.clone());
    assert!(matches!(conn.session.poll(), Ok(Some(Event::Message(m))) if m.to_frames() == ["m"]));
    conn.session.feed(raw);
    assert!(matches!(
        conn.session.poll(),
        Err(Error::NonceOutOfOrder {
            command: "MESSAGE",
            ..
        })
    ));
}

// ----------------------------------------------------------------- PLAIN

#[test]
fn plain_client_against_libzmq_server() {
    for (password, admitted) in [(&b"secret"[..], true), (b"wrong", false)] {
        let mut peer = pyzmq_secure_peer("DEALER");
        peer.zap(&[], &[(b"zeek", b"secret")]);
        peer.set_int(ZMQ_PLAIN_SERVER, 1);
        let endpoint = peer.bind("tcp://127.0.0.1:0");
        let mut conn = connect_to(
            &endpoint,
            SocketType::Dealer,
            Box::new(PlainClient::new("zeek", Bytes::copy_from_slice(password)).unwrap()),
        );
        if admitted {
            conn.handshake();
            peer.settle();
            exchange_both_ways(&mut conn, &mut peer);
        } else {
            // libzmq's PLAIN ERROR is `5e 'RROR' 03 '400'` (see
            // LIBZMQ_PLAIN_ERROR_PREFIX); the client reads it as a refusal.
            assert_eq!(refused(&mut conn), Error::PeerError("400".into()));
        }
    }
}

#[test]
fn plain_server_against_libzmq_client() {
    for (password, admitted) in [(&b"secret"[..], true), (b"wrong", false)] {
        let authorizer = |c: &Credentials<'_>| match c {
            Credentials::Plain { username, password }
                if *username == b"zeek" && *password == b"secret" =>
            {
                Ok(())
            }
            _ => Err(Refusal::denied("wrong password")),
        };
        let mut peer = pyzmq_secure_peer("DEALER");
        peer.set_bytes(ZMQ_PLAIN_USERNAME, b"zeek");
        peer.set_bytes(ZMQ_PLAIN_PASSWORD, password);
        peer.monitor();
        let mut conn = accept_from(
            &mut peer,
            SocketType::Dealer,
            Box::new(PlainServer::new(Box::new(authorizer) as Box<dyn Authorizer>)),
        );
        if admitted {
            conn.handshake();
            exchange_both_ways(&mut conn, &mut peer);
        } else {
            assert_eq!(
                refused(&mut conn),
                Error::Refused {
                    mechanism: "PLAIN",
                    reason: "400 wrong password".into()
                }
            );
            assert_eq!(
                peer.wait_event(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, TIMEOUT),
                Some(400)
            );
        }
    }
}

/// `.ci/run` runs this file once per kernel: the one forced is the one in
/// use, so each run tests what it says.
#[test]
fn the_cipher_kernel_is_the_one_forced() {
    use zmtp_codec::mechanism::{curve_kernel, curve_kernel_note, KERNEL_ENV};
    let kernel = curve_kernel().name();
    match std::env::var(KERNEL_ENV) {
        Ok(forced) => assert_eq!(kernel, forced, "{:?}", curve_kernel_note()),
        Err(_) => assert!(["portable", "sse2", "avx2"].contains(&kernel), "{kernel}"),
    }
    eprintln!("CURVE cipher kernel: {kernel}");
}
