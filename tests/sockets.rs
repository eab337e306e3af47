//! zring sockets talking to each other over the reactor.

use std::time::Duration;

use zring::{Context, SocketKind, SocketOption, Wait};

const T: Wait = Wait::Timeout(Duration::from_secs(5));

#[test]
fn push_to_pull_over_tcp_and_ipc() {
    let ctx = Context::new().unwrap();
    for endpoint in ["tcp://127.0.0.1:*", "ipc:///tmp/zring-test-push-pull.sock"] {
        let mut pull = ctx.socket(SocketKind::Pull);
        let bound = pull.bind(endpoint).unwrap();
        let mut push = ctx.socket(SocketKind::Push);
        push.connect(&bound).unwrap();
        for i in 0..1000u32 {
            push.send(&[b"frame-a".as_slice(), &i.to_be_bytes()])
                .unwrap();
        }
        for i in 0..1000u32 {
            let m = pull.recv(T).unwrap();
            let frames: Vec<&[u8]> = m.frames().collect();
            assert_eq!(frames, [b"frame-a".as_slice(), &i.to_be_bytes()]);
        }
        assert_eq!(pull.stats().messages_in, 1000);
        assert_eq!(push.stats().messages_out, 1000);
    }
}

#[test]
fn pub_sub_prefix_matching() {
    let ctx = Context::new().unwrap();
    let mut publisher = ctx.socket(SocketKind::Pub);
    let bound = publisher.bind("tcp://127.0.0.1:*").unwrap();
    let mut sub = ctx.socket(SocketKind::Sub);
    sub.subscribe(b"zeek/").unwrap();
    sub.connect(&bound).unwrap();
    // Wait for the subscription to reach the publisher.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while publisher.topic_count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "subscription never arrived"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    publisher.send(&[b"other/x".as_slice()]).unwrap();
    publisher.send(&[b"zeek/a".as_slice(), b"body"]).unwrap();
    let m = sub.recv(T).unwrap();
    assert_eq!(
        m.frames().collect::<Vec<_>>(),
        [b"zeek/a".as_slice(), b"body"]
    );
    assert!(matches!(
        sub.recv(Wait::DontWait),
        Err(zring::Error::WouldBlock)
    ));
    let _ = SocketOption::SndHwm(1);
}
