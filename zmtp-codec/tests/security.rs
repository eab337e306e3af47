//! PLAIN and CURVE between two sessions over a simulated transport: the
//! deterministic CurveZMQ transcript of the semantics document (Appendix B)
//! byte for byte, and every way a handshake or the encrypted traffic must
//! fail.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use zmtp_codec::frame::encode_frame;
use zmtp_codec::{
    AllowAll, Credentials, CurveClient, CurveServer, Error, Event, FrameFlags, KeyPair, Mechanism,
    PlainClient, PlainServer, PublicKey, Randomness, Refusal, SecretKey, Session, SessionConfig,
    SocketType, SubscriptionAction,
};

// ---------------------------------------------------------------- helpers

fn unhex(text: &str) -> Vec<u8> {
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn key(text: &str) -> [u8; 32] {
    unhex(text).try_into().expect("32 bytes")
}

/// Hands out fixed byte strings in order; each draw must take exactly the
/// next one, so a change in what the mechanism draws fails loudly.
struct Script(VecDeque<Vec<u8>>);

impl Randomness for Script {
    fn fill(&mut self, dest: &mut [u8]) -> zmtp_codec::Result<()> {
        let next = self
            .0
            .pop_front()
            .expect("the script has no more random bytes");
        assert_eq!(next.len(), dest.len(), "draw of an unexpected size");
        dest.copy_from_slice(&next);
        Ok(())
    }
}

fn counting(from: u8, len: u8) -> Vec<u8> {
    (from..from + len).collect()
}

fn client_keys() -> KeyPair {
    KeyPair::from_z85(
        "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
        "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs",
    )
    .unwrap()
}

fn server_keys() -> KeyPair {
    KeyPair::from_z85(
        "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
        "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6",
    )
    .unwrap()
}

fn take_all(session: &mut Session) -> Bytes {
    let n = session.outbox().remaining();
    session.outbox().copy_to_bytes(n)
}

fn drain(session: &mut Session) -> Result<Vec<Event>, Error> {
    let mut events = Vec::new();
    while let Some(e) = session.poll()? {
        events.push(e);
    }
    Ok(events)
}

fn deliver(bytes: Bytes, to: &mut Session) -> Result<Vec<Event>, Error> {
    to.feed(bytes);
    drain(to)
}

fn shuttle(from: &mut Session, to: &mut Session) -> Result<Vec<Event>, Error> {
    let bytes = take_all(from);
    deliver(bytes, to)
}

fn framed_command(body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    encode_frame(FrameFlags::command(), body, &mut out);
    out.freeze()
}

/// Splits a stream of whole frames into (flags, body).
fn frames(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        let flags = wire[0];
        let (len, at) = if flags & 0x02 != 0 {
            (
                u64::from_be_bytes(wire[1..9].try_into().unwrap()) as usize,
                9,
            )
        } else {
            (usize::from(wire[1]), 2)
        };
        out.push((flags, wire[at..at + len].to_vec()));
        wire = &wire[at + len..];
    }
    out
}

// ------------------------------------------------------ Appendix B transcript

const HELLO: &str = "
0548454c4c4f0100000000000000000000000000000000000000000000000000
0000000000000000000000000000000000000000000000000000000000000000
0000000000000000000000000000000007a37cbc142093c8b755dc1b10e86cb4
26374ad16aa853ed0bdfc0b2b86d1c7c00000000000000016e3f26f72fe2f05d
b20de7881ee6a08fc432afe73b138226f5930879c93bdd4d8586425a3a8d6bc5
d83598a3017e0f1792ff0381360d168b6fe1c5e0bb752b0d365e13ea8e8a29ce
1c5052c8c63eced7";
const WELCOME: &str = "
0757454c434f4d45101112131415161718191a1b1c1d1e1fe4aabf2e79cb0848
e4c74327c416ceaa2e31d825276a1f61b1c986d36aed4e9e0920f80ce502246e
0b758e9a7c8c9b64fb065f61b50ee5b8c7633c15a07606c44f08005861581420
78d3591c46330c5ea6c2ecd94a1b9025539665d0f4255ae1a4548dd857a614f9
b9da022f9f424048472a92eb92b97ba8e281ec1d1b13928d07b2307819b99f0d
1c095e35b2e9979c";
const INITIATE: &str = "
08494e495449415445000102030405060708090a0b0c0d0e0ffc8ad584f42cdf
c4f48995a763d6b75a2afdd6ff28de6f99ad80994d5369c6598ee9d1c03909f3
80dee5be1ea14a9b2de1ae8137921bf629699ad2b3758760d65aba2a43d72797
69ede2a579b255fce30000000000000002a5193b2a7f63a5f64386ccb90cda1a
06f4b83c445dabfe76b764205b74eeced08560918c380fe1f6615aa96926bbfd
8b3d1047ad8339aa081696a78ce3b513dfa209177339ee2d0c448dac9b9d6c0f
8f0177d8baccd9c88c1a2f4c31b50f55561ee2b22e8b33a80e548fae660578d5
12b9ed7d7add41bd86d0e9ca04885e794e426bc659c1ffec0aced6e040f5e859
757523cdb6612d1dcd2e3c1025f1b86420657538";
const READY: &str = "
0552454144590000000000000001192fc450e7d5c63985c101ab7d703600e5b9
76c483ec0654f901c19a18bef5b8801a8340";
const MESSAGE_C2S: &str = "
074d45535341474500000000000000032b26b7ee60f7f1219eeaee30a8d5be70
2046079adbc143fe275d173c";
const MESSAGE_S2C: &str = "
074d455353414745000000000000000241a71458184bbe7d999f857165d6f82e
2060b5";

/// The sessions of Appendix B: a SUB client and an XPUB server with the
/// libzmq test keys and the fixed transient keys, cookie key and nonces.
fn transcript_pair() -> (Session, Session) {
    let client = CurveClient::new(client_keys(), server_keys().public).with_randomness(Box::new(
        Script(VecDeque::from([counting(0x01, 32), counting(0x20, 16)])),
    ));
    let server = CurveServer::new(server_keys(), Box::new(AllowAll)).with_randomness(Box::new(
        Script(VecDeque::from([
            counting(0x21, 32), // s'
            counting(0x41, 32), // cookie key
            counting(0x00, 16), // cookie nonce
            counting(0x10, 16), // WELCOME nonce
        ])),
    ));
    (
        Session::with_mechanism(SessionConfig::new(SocketType::Sub), Box::new(client)),
        Session::with_mechanism(SessionConfig::new(SocketType::XPub), Box::new(server)),
    )
}

/// One step of the transcript: the frames each command travels in.
struct Transcript {
    /// Wire bytes (header and body) of HELLO, WELCOME, INITIATE, READY and the two MESSAGEs.
    wire: Vec<Bytes>,
}

/// Runs Appendix B with the sessions as they are and returns each command's wire bytes.
fn run_transcript(client: &mut Session, server: &mut Session) -> Transcript {
    let mut wire = Vec::new();
    assert!(shuttle(client, server).unwrap().is_empty()); // greeting
    let server_greeting = take_all(server);
    assert_eq!(
        server_greeting.len(),
        64,
        "the server sends nothing but its greeting"
    );
    assert!(deliver(server_greeting, client).unwrap().is_empty());
    let hello = take_all(client);
    wire.push(hello.clone());
    assert!(deliver(hello, server).unwrap().is_empty());
    let welcome = take_all(server);
    wire.push(welcome.clone());
    assert!(deliver(welcome, client).unwrap().is_empty());
    let initiate = take_all(client);
    wire.push(initiate.clone());
    let events = deliver(initiate, server).unwrap();
    assert!(
        matches!(&events[..], [Event::Ready(p)] if p.socket_type == Some(SocketType::Sub)),
        "{events:?}"
    );
    let ready = take_all(server);
    wire.push(ready.clone());
    let events = deliver(ready, client).unwrap();
    assert!(
        matches!(&events[..], [Event::Ready(p)] if p.socket_type == Some(SocketType::XPub)),
        "{events:?}"
    );

    client
        .send_subscription(SubscriptionAction::Subscribe, Bytes::from_static(b"A"))
        .unwrap();
    let message = take_all(client);
    wire.push(message.clone());
    let events = deliver(message, server).unwrap();
    assert!(
        matches!(&events[..], [Event::Subscription(s)] if s.topic == "A" && s.action == SubscriptionAction::Subscribe),
        "{events:?}"
    );
    server.send_frames(&[Bytes::from_static(b"A1")]).unwrap();
    let message = take_all(server);
    wire.push(message.clone());
    let events = deliver(message, client).unwrap();
    assert!(
        matches!(&events[..], [Event::Message(m)] if m.to_frames() == ["A1"]),
        "{events:?}"
    );
    Transcript { wire }
}

#[test]
fn appendix_b_transcript_byte_for_byte() {
    let (mut client, mut server) = transcript_pair();
    let t = run_transcript(&mut client, &mut server);
    let expected = [
        ("HELLO", &b"\x04\xc8"[..], HELLO),
        ("WELCOME", b"\x04\xa8", WELCOME),
        (
            "INITIATE",
            b"\x06\x00\x00\x00\x00\x00\x00\x01\x14",
            INITIATE,
        ),
        ("READY", b"\x04\x32", READY),
        ("MESSAGE client->server", b"\x00\x2c", MESSAGE_C2S),
        ("MESSAGE server->client", b"\x00\x23", MESSAGE_S2C),
    ];
    for ((name, header, body), wire) in expected.iter().zip(&t.wire) {
        let mut want = header.to_vec();
        want.extend(unhex(body));
        assert_eq!(
            hex(wire),
            hex(&want),
            "{name} differs from the semantics document's Appendix B"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Appendix B's derived transient public keys follow from its secrets.
#[test]
fn appendix_b_transient_keys() {
    let c = SecretKey::from_bytes(counting(0x01, 32).try_into().unwrap()).public_key();
    let s = SecretKey::from_bytes(counting(0x21, 32).try_into().unwrap()).public_key();
    assert_eq!(
        c,
        PublicKey::from_bytes(key(
            "07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c"
        ))
    );
    assert_eq!(
        s,
        PublicKey::from_bytes(key(
            "5869aff450549732cbaaed5e5df9b30a6da31cb0e5742bad5ad4a1a768f1a67b"
        ))
    );
}

/// The greeting of a CURVE server says CURVE and as-server, the client's not.
#[test]
fn curve_greetings() {
    let (mut client, mut server) = transcript_pair();
    let c = take_all(&mut client);
    let s = take_all(&mut server);
    assert_eq!(&c[12..17], b"CURVE");
    assert_eq!(&s[12..17], b"CURVE");
    assert_eq!((c[32], s[32]), (0, 1));
}

// --------------------------------------------------- working handshakes

fn curve_pair(client: CurveClient, server: CurveServer) -> (Session, Session) {
    (
        Session::with_mechanism(SessionConfig::new(SocketType::Push), Box::new(client)),
        Session::with_mechanism(SessionConfig::new(SocketType::Pull), Box::new(server)),
    )
}

/// Runs greetings and handshake; returns the first error, naming the side.
fn handshake(a: &mut Session, b: &mut Session) -> Result<(), (char, Error)> {
    for _ in 0..4 {
        shuttle(a, b).map_err(|e| ('b', e))?;
        shuttle(b, a).map_err(|e| ('a', e))?;
    }
    assert!(a.is_ready() && b.is_ready(), "handshake did not finish");
    Ok(())
}

fn exchange_both_ways(a: &mut Session, b: &mut Session) {
    let messages: Vec<Vec<Bytes>> = vec![
        vec![Bytes::from_static(b"hello")],
        vec![Bytes::new()],
        vec![
            Bytes::from_static(b"topic"),
            Bytes::new(),
            Bytes::from(vec![7u8; 255]),
            Bytes::from(vec![8u8; 256]),
            Bytes::from(vec![9u8; 70_000]),
        ],
    ];
    send_and_check(a, b, &messages);
    send_and_check(b, a, &messages);
}

fn send_and_check(from: &mut Session, to: &mut Session, messages: &[Vec<Bytes>]) {
    for m in messages {
        from.send_frames(m).unwrap();
    }
    let events = shuttle(from, to).unwrap();
    let got: Vec<Vec<Bytes>> = events
        .iter()
        .map(|e| match e {
            Event::Message(m) => m.to_frames(),
            other => panic!("expected a message, got {other:?}"),
        })
        .collect();
    assert_eq!(got, messages);
}

#[test]
fn curve_handshake_and_multipart_messages_both_ways() {
    let client = KeyPair::generate(&mut zmtp_codec::OsRandom).unwrap();
    let server = KeyPair::generate(&mut zmtp_codec::OsRandom).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let authorizer = move |c: &Credentials<'_>| {
        if let Credentials::Curve { public_key } = c {
            log.lock().unwrap().push(**public_key);
        }
        Ok(())
    };
    let (mut a, mut b) = curve_pair(
        CurveClient::new(client.clone(), server.public),
        CurveServer::new(server, Box::new(authorizer)),
    );
    handshake(&mut a, &mut b).unwrap();
    assert_eq!(*seen.lock().unwrap(), [*client.public.as_bytes()]);
    exchange_both_ways(&mut a, &mut b);

    // Heartbeats travel inside MESSAGE boxes too, and are answered.
    a.send_ping(5_000, Bytes::from_static(b"ctx")).unwrap();
    let wire = take_all(&mut a);
    assert_eq!(wire[0], 0x00, "outer flags of a MESSAGE are plain data");
    let events = deliver(wire, &mut b).unwrap();
    assert!(
        matches!(&events[..], [Event::Ping { ttl_deciseconds: 50, context }] if context == "ctx"),
        "{events:?}"
    );
    let events = shuttle(&mut b, &mut a).unwrap();
    assert!(
        matches!(&events[..], [Event::Pong { context }] if context == "ctx"),
        "{events:?}"
    );
}

#[test]
fn curve_messages_are_decrypted_into_one_buffer_per_lone_frame() {
    let (mut client, mut server) = transcript_pair();
    run_transcript(&mut client, &mut server);
    server.send_frames(&[Bytes::from(vec![1u8; 4096])]).unwrap();
    let wire = take_all(&mut server);
    assert_eq!(wire.len(), 9 + 33 + 4096);
    let events = deliver(wire, &mut client).unwrap();
    let [Event::Message(m)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(m.to_frames(), [vec![1u8; 4096]]);
    assert_eq!(
        client.copied_bytes(),
        0,
        "no copy beyond the decryption buffer"
    );
}

fn plain_pair(
    username: &str,
    password: &str,
    authorizer: impl zmtp_codec::Authorizer + 'static,
) -> (Session, Session) {
    (
        Session::with_mechanism(
            SessionConfig::new(SocketType::Dealer),
            Box::new(PlainClient::new(username.to_string(), password.to_string()).unwrap()),
        ),
        Session::with_mechanism(
            SessionConfig::new(SocketType::Router),
            Box::new(PlainServer::new(Box::new(authorizer))),
        ),
    )
}

#[test]
fn plain_handshake_bytes_and_messages_both_ways() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let authorizer = move |c: &Credentials<'_>| match c {
        Credentials::Plain { username, password } => {
            log.lock()
                .unwrap()
                .push((username.to_vec(), password.to_vec()));
            Ok(())
        }
        _ => Err(Refusal::denied("not PLAIN")),
    };
    let (mut a, mut b) = plain_pair("zeek", "secret", authorizer);
    let greeting = take_all(&mut a);
    assert_eq!((&greeting[12..17], greeting[32]), (&b"PLAIN"[..], 0));
    assert!(deliver(greeting, &mut b).unwrap().is_empty());
    let greeting = take_all(&mut b);
    assert_eq!(greeting[32], 1, "a PLAIN server says so in its greeting");
    assert!(deliver(greeting, &mut a).unwrap().is_empty());
    // libzmq's layouts (semantics document §3.2).
    let hello = take_all(&mut a);
    assert_eq!(
        frames(&hello),
        [(0x04, b"\x05HELLO\x04zeek\x06secret".to_vec())]
    );
    assert!(deliver(hello, &mut b).unwrap().is_empty());
    assert_eq!(
        *seen.lock().unwrap(),
        [(b"zeek".to_vec(), b"secret".to_vec())]
    );
    let welcome = take_all(&mut b);
    assert_eq!(frames(&welcome), [(0x04, b"\x07WELCOME".to_vec())]);
    assert!(deliver(welcome, &mut a).unwrap().is_empty());
    let initiate = take_all(&mut a);
    let f = frames(&initiate);
    assert_eq!(f.len(), 1);
    assert!(f[0]
        .1
        .starts_with(b"\x08INITIATE\x0bSocket-Type\x00\x00\x00\x06DEALER"));
    let events = deliver(initiate, &mut b).unwrap();
    assert!(
        matches!(&events[..], [Event::Ready(p)] if p.socket_type == Some(SocketType::Dealer)),
        "{events:?}"
    );
    let ready = take_all(&mut b);
    assert!(frames(&ready)[0]
        .1
        .starts_with(b"\x05READY\x0bSocket-Type\x00\x00\x00\x06ROUTER"));
    let events = deliver(ready, &mut a).unwrap();
    assert!(matches!(&events[..], [Event::Ready(_)]), "{events:?}");
    exchange_both_ways(&mut a, &mut b);
}

#[test]
fn plain_rejects_malformed_hello_and_welcome() {
    for (body, needle) in [
        (&b"\x05HELLO"[..], "no username length"),
        (b"\x05HELLO\x04zee", "overrun"),
        (b"\x05HELLO\x04zeek\x06secre", "need 12 bytes"),
        (b"\x05HELLO\x04zeek\x06secrets", "need 12 bytes"),
    ] {
        let (mut a, mut b) = plain_pair("zeek", "secret", AllowAll);
        shuttle(&mut a, &mut b).unwrap();
        shuttle(&mut b, &mut a).unwrap();
        let _ = take_all(&mut a);
        let err = deliver(framed_command(body), &mut b).unwrap_err();
        assert!(
            matches!(&err, Error::MalformedCommand { command, reason } if command == "HELLO" && reason.contains(needle)),
            "{body:?}: {err}"
        );
    }
    let (mut a, mut b) = plain_pair("zeek", "secret", AllowAll);
    shuttle(&mut a, &mut b).unwrap();
    shuttle(&mut b, &mut a).unwrap();
    let err = deliver(framed_command(b"\x07WELCOMEx"), &mut a).unwrap_err();
    assert!(err.to_string().contains("WELCOME"), "{err}");
    assert!(PlainClient::new(vec![b'u'; 256], "p").is_err());
}

// ------------------------------------------------------------ refusals

#[test]
fn plain_wrong_password_gets_error_400() {
    let authorizer = |c: &Credentials<'_>| match c {
        Credentials::Plain { password, .. } if *password == b"right" => Ok(()),
        _ => Err(Refusal::denied("wrong password for zeek")),
    };
    let mut a = Session::with_mechanism(
        SessionConfig::new(SocketType::Push),
        Box::new(PlainClient::new("zeek", "wrong").unwrap()),
    );
    let mut b = Session::with_mechanism(
        SessionConfig::new(SocketType::Pull),
        Box::new(PlainServer::new(Box::new(authorizer))),
    );
    shuttle(&mut a, &mut b).unwrap();
    shuttle(&mut b, &mut a).unwrap();
    let err = shuttle(&mut a, &mut b).unwrap_err();
    assert_eq!(
        err,
        Error::Refused {
            mechanism: "PLAIN",
            reason: "400 wrong password for zeek".into()
        }
    );
    // libzmq's PLAIN ERROR (see zmtp_codec::mechanism::plain): 0x5e 'RROR'.
    let reply = take_all(&mut b);
    assert_eq!(&reply[..], b"\x04\x09\x5eRROR\x03400");
    let err = deliver(reply, &mut a).unwrap_err();
    assert_eq!(err, Error::PeerError("400".into()));
    assert!(!a.is_ready() && !b.is_ready());
    // The RFC's form is understood by the client too.
    let (mut a, mut b) = plain_pair("zeek", "secret", AllowAll);
    shuttle(&mut a, &mut b).unwrap();
    shuttle(&mut b, &mut a).unwrap();
    let err = deliver(framed_command(b"\x05ERROR\x03500"), &mut a).unwrap_err();
    assert_eq!(err, Error::PeerError("500".into()));
    let (mut a, mut b) = plain_pair("zeek", "secret", AllowAll);
    shuttle(&mut a, &mut b).unwrap();
    shuttle(&mut b, &mut a).unwrap();
    let err = deliver(framed_command(b"\x5eRROR\x04400"), &mut a).unwrap_err();
    assert!(err.to_string().contains("ERROR"), "{err}");
}

#[test]
fn temporary_refusal_closes_without_error_like_zap_300() {
    let (mut a, mut b) = curve_pair(
        CurveClient::new(client_keys(), server_keys().public),
        CurveServer::new(
            server_keys(),
            Box::new(|_: &Credentials<'_>| Err(Refusal::temporary("busy"))),
        ),
    );
    let err = handshake(&mut a, &mut b).unwrap_err();
    assert!(
        matches!(&err, ('b', Error::Refused { mechanism: "CURVE", reason }) if reason == "300 busy"),
        "{err:?}"
    );
    assert_eq!(b.outbox().remaining(), 0, "nothing is sent for a 300");
}

#[test]
fn curve_unknown_client_key_is_refused_with_error_400() {
    let allowed = client_keys().public;
    let stranger = KeyPair::generate(&mut zmtp_codec::OsRandom).unwrap();
    let authorizer = move |c: &Credentials<'_>| match c {
        Credentials::Curve { public_key } if **public_key == *allowed.as_bytes() => Ok(()),
        _ => Err(Refusal::denied("unknown client key")),
    };
    let (mut a, mut b) = curve_pair(
        CurveClient::new(stranger, server_keys().public),
        CurveServer::new(server_keys(), Box::new(authorizer)),
    );
    shuttle(&mut a, &mut b).unwrap();
    shuttle(&mut b, &mut a).unwrap(); // greetings, HELLO
    shuttle(&mut a, &mut b).unwrap(); // WELCOME
    shuttle(&mut b, &mut a).unwrap(); // INITIATE
    let err = shuttle(&mut a, &mut b).unwrap_err();
    assert_eq!(
        err,
        Error::Refused {
            mechanism: "CURVE",
            reason: "400 unknown client key".into()
        }
    );
    let reply = take_all(&mut b);
    assert_eq!(
        &reply[..],
        b"\x04\x0a\x05ERROR\x03400",
        "ERROR in the clear, as libzmq"
    );
    assert_eq!(
        deliver(reply, &mut a).unwrap_err(),
        Error::PeerError("400".into())
    );
    assert_eq!(a.send_frame(Bytes::new(), false), Err(Error::Failed));
}

#[test]
fn curve_wrong_server_key_fails_at_hello() {
    let wrong = KeyPair::generate(&mut zmtp_codec::OsRandom).unwrap().public;
    let (mut a, mut b) = curve_pair(
        CurveClient::new(client_keys(), wrong),
        CurveServer::new(server_keys(), Box::new(AllowAll)),
    );
    let err = handshake(&mut a, &mut b).unwrap_err();
    assert_eq!(err, ('b', Error::BadBox { what: "HELLO" }));
    assert_eq!(
        b.outbox().remaining(),
        0,
        "libzmq answers a bad HELLO with nothing"
    );
}

#[test]
fn mechanism_mismatch_fails_cleanly_both_ways() {
    for curve_is_client in [true, false] {
        let curve: Box<dyn Mechanism> = if curve_is_client {
            Box::new(CurveClient::new(client_keys(), server_keys().public))
        } else {
            Box::new(CurveServer::new(server_keys(), Box::new(AllowAll)))
        };
        let mut a = Session::with_mechanism(SessionConfig::new(SocketType::Push), curve);
        let mut b = Session::new(SessionConfig::new(SocketType::Pull));
        let err_b = shuttle(&mut a, &mut b).unwrap_err();
        let err_a = shuttle(&mut b, &mut a).unwrap_err();
        assert_eq!(
            err_b,
            Error::MechanismMismatch {
                ours: "NULL".into(),
                theirs: "CURVE".into()
            }
        );
        assert_eq!(
            err_a,
            Error::MechanismMismatch {
                ours: "CURVE".into(),
                theirs: "NULL".into()
            }
        );
        assert_eq!(a.outbox().remaining(), 0, "only the greeting was sent");
    }
}

#[test]
fn curve_server_refuses_plain_text_traffic_after_the_handshake() {
    let (mut client, mut server) = transcript_pair();
    run_transcript(&mut client, &mut server);
    let mut wire = BytesMut::new();
    encode_frame(FrameFlags::data(false), b"not encrypted", &mut wire);
    let err = deliver(wire.freeze(), &mut server).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MalformedCommand { .. } | Error::UnexpectedCommand { .. }
        ),
        "{err}"
    );
    let err = deliver(framed_command(b"\x05ERROR\x03400"), &mut client).unwrap_err();
    assert_eq!(err, Error::PeerError("400".into()));
}

// ------------------------------------------------------ replay and reorder

#[test]
fn replayed_message_nonce_is_refused() {
    let (mut client, mut server) = transcript_pair();
    run_transcript(&mut client, &mut server);
    server.send_frames(&[Bytes::from_static(b"once")]).unwrap();
    let m = take_all(&mut server);
    assert_eq!(deliver(m.clone(), &mut client).unwrap().len(), 1);
    let err = deliver(m, &mut client).unwrap_err();
    assert_eq!(
        err,
        Error::NonceOutOfOrder {
            command: "MESSAGE",
            nonce: 3,
            last: 3
        }
    );
    // The transcript's own MESSAGE replayed is refused the same way.
    let (mut client, mut server) = transcript_pair();
    let t = run_transcript(&mut client, &mut server);
    let err = deliver(t.wire[4].clone(), &mut server).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NonceOutOfOrder {
                nonce: 3,
                last: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("replayed or reordered"), "{err}");
}

#[test]
fn reordered_message_nonce_is_refused() {
    let (mut client, mut server) = transcript_pair();
    run_transcript(&mut client, &mut server);
    client.send_frames(&[Bytes::from_static(b"first")]).unwrap();
    let first = take_all(&mut client);
    client
        .send_frames(&[Bytes::from_static(b"second")])
        .unwrap();
    let second = take_all(&mut client);
    let events = deliver(second, &mut server).unwrap();
    assert!(matches!(&events[..], [Event::Message(m)] if m.to_frames() == ["second"]));
    let err = deliver(first, &mut server).unwrap_err();
    assert_eq!(
        err,
        Error::NonceOutOfOrder {
            command: "MESSAGE",
            nonce: 4,
            last: 5
        }
    );
}

#[test]
fn gaps_in_nonces_are_allowed_as_in_libzmq() {
    let (mut client, mut server) = transcript_pair();
    run_transcript(&mut client, &mut server);
    client.send_frames(&[Bytes::from_static(b"lost")]).unwrap();
    let _lost = take_all(&mut client);
    client.send_frames(&[Bytes::from_static(b"kept")]).unwrap();
    let events = shuttle(&mut client, &mut server).unwrap();
    assert!(matches!(&events[..], [Event::Message(m)] if m.to_frames() == ["kept"]));
}

// ------------------------------------------------ tampering and truncation

/// Replays the transcript up to command `index` and hands the receiver
/// `tamper(command body)` instead of the real one.
fn receive_altered(index: usize, tamper: impl FnOnce(&mut Vec<u8>)) -> Error {
    let recorded = recorded();
    let (mut client, mut server) = transcript_pair();
    shuttle(&mut client, &mut server).unwrap();
    shuttle(&mut server, &mut client).unwrap();
    let _ = take_all(&mut client);
    // Bring both sides to just before command `index`, from the recording.
    let receivers = [false, true, false, true, false, true]; // true: client receives
    for (i, wire) in recorded.iter().enumerate().take(index) {
        let to = if receivers[i] {
            &mut client
        } else {
            &mut server
        };
        deliver(wire.clone(), to).unwrap();
    }
    let _ = take_all(&mut client);
    let _ = take_all(&mut server);
    let (flags, mut body) = frames(&recorded[index]).remove(0);
    tamper(&mut body);
    let mut wire = BytesMut::new();
    encode_frame(FrameFlags::from_bits(flags), &body, &mut wire);
    let to = if receivers[index] {
        &mut client
    } else {
        &mut server
    };
    deliver(wire.freeze(), to).expect_err("the altered command must be refused")
}

#[test]
fn a_flipped_bit_in_any_box_fails() {
    // (command, first byte covered by the box or by what keys it)
    let regions = [
        ("HELLO", 80usize),  // C', nonce, box
        ("WELCOME", 8),      // nonce, box
        ("INITIATE", 9),     // cookie, nonce, box
        ("READY", 6),        // nonce, box
        ("MESSAGE c->s", 8), // nonce, box
        ("MESSAGE s->c", 8),
    ];
    for (index, (name, start)) in regions.into_iter().enumerate() {
        let len = frames(&transcript_wire(index)).remove(0).1.len();
        // The region's ends, and every 11th byte between (each one costs a
        // handshake; all of them would make the test slow in debug builds).
        let mut positions: Vec<usize> = (start..len).step_by(11).collect();
        positions.extend([start + 1, len - 1, len - 17]);
        for at in positions {
            let err = receive_altered(index, |b| b[at] ^= 0x10);
            assert!(
                matches!(
                    err,
                    Error::BadBox { .. }
                        | Error::NonceOutOfOrder { .. }
                        | Error::CurveMismatch { .. }
                ),
                "{name}: flipping byte {at} gave {err}"
            );
        }
    }
    // A flipped bit in the MESSAGE box is reported as such.
    assert_eq!(
        receive_altered(5, |b| b[30] ^= 1),
        Error::BadBox { what: "MESSAGE" }
    );
    assert_eq!(
        receive_altered(2, |b| b[20] ^= 1),
        Error::BadBox { what: "cookie" }
    );
    assert_eq!(
        receive_altered(1, |b| b[100] ^= 1),
        Error::BadBox { what: "WELCOME" }
    );
}

/// The transcript's commands, recorded once.
fn recorded() -> &'static [Bytes] {
    static RECORDED: std::sync::OnceLock<Vec<Bytes>> = std::sync::OnceLock::new();
    RECORDED.get_or_init(|| {
        let (mut client, mut server) = transcript_pair();
        run_transcript(&mut client, &mut server).wire
    })
}

fn transcript_wire(index: usize) -> Bytes {
    recorded()[index].clone()
}

#[test]
fn truncated_commands_fail_naming_the_command() {
    for (index, name) in [
        "HELLO", "WELCOME", "INITIATE", "READY", "MESSAGE", "MESSAGE",
    ]
    .into_iter()
    .enumerate()
    {
        let len = frames(&transcript_wire(index)).remove(0).1.len();
        let minimum = match name {
            "INITIATE" => 257,
            "READY" => 30,
            "MESSAGE" => 33,
            _ => len,
        };
        for cut in [minimum - 1, 12, 1 + name.len()] {
            let err = receive_altered(index, |b| b.truncate(cut));
            let text = err.to_string();
            assert!(
                text.contains(name) && matches!(err, Error::MalformedCommand { .. }),
                "{name} cut to {cut} bytes: {text}"
            );
        }
    }
    // Cut inside the metadata: the box no longer opens.
    let err = receive_altered(2, |b| b.truncate(b.len() - 1));
    assert_eq!(err, Error::BadBox { what: "INITIATE" });
}

#[test]
fn wrong_commands_in_the_handshake_are_named() {
    let err = receive_altered(0, |b| b[1..6].copy_from_slice(b"HOLLA"));
    assert_eq!(
        err,
        Error::UnexpectedCommand {
            command: "HOLLA".into(),
            phase: "CURVE handshake (awaiting HELLO)"
        }
    );
    let err = receive_altered(0, |b| b[6] = 2);
    assert!(err.to_string().contains("version 2.0"), "{err}");
    let err = receive_altered(3, |b| *b = b"\x05ERROR\x03500".to_vec());
    assert_eq!(err, Error::PeerError("500".into()));
}

#[test]
fn socket_types_are_checked_through_curve() {
    let (mut a, mut b) = (
        Session::with_mechanism(
            SessionConfig::new(SocketType::Push),
            Box::new(CurveClient::new(client_keys(), server_keys().public)),
        ),
        Session::with_mechanism(
            SessionConfig::new(SocketType::XPub),
            Box::new(CurveServer::new(server_keys(), Box::new(AllowAll))),
        ),
    );
    let err = handshake(&mut a, &mut b).unwrap_err();
    assert_eq!(
        err,
        (
            'b',
            Error::IncompatibleSocketType {
                local: SocketType::XPub,
                peer: SocketType::Push
            }
        )
    );
}

// ------------------------------------------------ the encrypted fast path

/// `drain_messages` on a CURVE session delivers lone frames itself and
/// leaves the rest to `poll`: a multipart message, a PING inside a box,
/// and, at the end, a replayed box that must fail in `poll` with its
/// reason. Together they give exactly what `poll` alone gives.
#[test]
fn drained_curve_messages_equal_polled_ones() {
    let (mut client, mut server) = curve_pair(
        CurveClient::new(client_keys(), server_keys().public),
        CurveServer::new(server_keys(), Box::new(zmtp_codec::AllowAll)),
    );
    handshake(&mut client, &mut server).unwrap();
    let messages: Vec<Vec<Bytes>> = vec![
        vec![Bytes::from_static(b"one")],
        vec![Bytes::from(vec![2u8; 300])],
        vec![Bytes::from_static(b"multi"), Bytes::from_static(b"part")],
        vec![Bytes::from_static(b"after")],
    ];
    for (i, m) in messages.iter().enumerate() {
        client.send_frames(m).unwrap();
        if i == 1 {
            client.send_ping(0, Bytes::from_static(b"ctx")).unwrap();
        }
    }
    let wire = take_all(&mut client);
    // The last box again: a replay.
    let last_box = {
        let frames = frames(&wire);
        let (flags, body) = frames.last().unwrap().clone();
        let mut framed = vec![flags, body.len() as u8];
        framed.extend_from_slice(&body);
        Bytes::from(framed)
    };
    server.feed(wire);
    server.feed(last_box);
    let mut got: Vec<String> = Vec::new();
    let error = loop {
        server.drain_messages(|m| {
            got.push(format!("drained {:?}", m.to_frames()));
            None
        });
        match server.poll() {
            Ok(Some(Event::Message(m))) => got.push(format!("polled {:?}", m.to_frames())),
            Ok(Some(Event::Ping { context, .. })) => got.push(format!("ping {context:?}")),
            Ok(Some(other)) => panic!("{other:?}"),
            Ok(None) => panic!("the replay was not refused"),
            Err(e) => break e,
        }
    };
    let show = |how: &str, m: &Vec<Bytes>| format!("{how} {m:?}");
    assert_eq!(
        got,
        vec![
            show("drained", &messages[0]),
            show("drained", &messages[1]),
            format!("ping {:?}", Bytes::from_static(b"ctx")),
            show("polled", &messages[2]),
            show("drained", &messages[3]),
        ]
    );
    assert!(
        error.to_string().contains("replayed or reordered"),
        "{error}"
    );
    assert_eq!(server.stats().messages_received, 4);
}

/// A sealed frame's size counts against the frame limit; its plaintext,
/// once opened, against the message limit: the same on the fast path
/// (`drain_messages`), frame by frame (`poll`), and however the box is
/// chunked. The decoder once also added the boxes' sealed sizes up against
/// the message limit, so a message just under it failed through `poll`.
#[test]
fn a_sealed_message_is_held_to_its_plaintext_size_on_every_path() {
    let plaintext = vec![3u8; 990];
    // Whole through poll, whole through drain_messages, then in pieces.
    for split in [None, Some(0), Some(7), Some(500), Some(1000)] {
        for drain in [false, true] {
            let mut config = SessionConfig::new(SocketType::Pull);
            config.max_message_size = 1000;
            let client = KeyPair::generate(&mut zmtp_codec::OsRandom).unwrap();
            let server = KeyPair::generate(&mut zmtp_codec::OsRandom).unwrap();
            let mut a = Session::with_mechanism(
                SessionConfig::new(SocketType::Push),
                Box::new(CurveClient::new(client, server.public)),
            );
            let mut b = Session::with_mechanism(
                config,
                Box::new(CurveServer::new(server, Box::new(AllowAll))),
            );
            handshake(&mut a, &mut b).unwrap();
            a.send_frames(&[Bytes::from(plaintext.clone())]).unwrap();
            let wire = take_all(&mut a);
            let pieces = match split {
                None => vec![wire],
                Some(at) => vec![wire.slice(..at), wire.slice(at..)],
            };
            let mut got = Vec::new();
            for piece in pieces {
                b.feed(piece);
                if drain {
                    b.drain_messages(|m| {
                        got.push(m.to_frames());
                        None
                    });
                }
                for e in drain_events(&mut b, split, drain) {
                    got.push(e);
                }
            }
            assert_eq!(
                got,
                [vec![Bytes::from(plaintext.clone())]],
                "{split:?} {drain}"
            );
        }
    }
}

/// The messages `poll` gives, as frames; panics on an error.
fn drain_events(session: &mut Session, split: Option<usize>, drain: bool) -> Vec<Vec<Bytes>> {
    drain_all(session)
        .unwrap_or_else(|e| panic!("split {split:?}, drain {drain}: {e}"))
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.to_frames()),
            _ => None,
        })
        .collect()
}

fn drain_all(session: &mut Session) -> Result<Vec<Event>, Error> {
    let mut events = Vec::new();
    while let Some(e) = session.poll()? {
        events.push(e);
    }
    Ok(events)
}
