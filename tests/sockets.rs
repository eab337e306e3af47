//! zring sockets talking to each other over the reactor.

#[path = "support/ports.rs"]
mod ports;
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

#[test]
fn holding_messages_never_stops_reception() {
    // Eight 64 KiB buffers: holding received 4 KiB messages pins them (zero
    // copy). Once half are leased the reactor copies fills out instead, so
    // reception never stops, however many the application holds. (That
    // leases come back from other threads: bufring's unit test.)
    let config = zring::ReactorConfig {
        cores: vec![Some(0)],
        buffer_count: 8,
        buffer_size: 64 * 1024,
        ..Default::default()
    };
    let ctx = Context::with_config(&config).unwrap();
    let mut pull = ctx.socket(SocketKind::Pull);
    pull.set(SocketOption::RcvHwm(0)).unwrap(); // unbounded: buffers are the limit
    let bound = pull.bind("tcp://127.0.0.1:*").unwrap();
    let mut push = ctx.socket(SocketKind::Push);
    push.connect(&bound).unwrap();
    const TOTAL: usize = 2000; // 8 MiB: sixteen times the pool
    let sender = std::thread::spawn(move || {
        for i in 0..TOTAL as u32 {
            let mut body = vec![0u8; 4096];
            body[..4].copy_from_slice(&i.to_be_bytes());
            push.send_copy(&[&body], Wait::Block).unwrap();
        }
        push
    });
    let mut held = Vec::new();
    let mut next = 0u32;
    while (next as usize) < TOTAL {
        let m = pull
            .recv(Wait::Timeout(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("reception stalled holding {}: {e}", held.len()));
        assert_eq!(m.first_frame()[..4], next.to_be_bytes());
        next += 1;
        held.push(m);
        if held.len() >= 400 {
            let batch = std::mem::take(&mut held);
            std::thread::spawn(move || drop(batch)).join().unwrap();
        }
    }
    drop(sender.join().unwrap());
    let stats = pull.stats();
    assert!(
        stats.copied_small_bytes > 0,
        "holding 400 messages must lease half the pool"
    );
}

#[test]
fn a_few_large_receive_buffers_never_leave_a_connection_starved() {
    // Four 256 KiB buffers and a sender far ahead of the receiver: the
    // kernel often finds the ring empty. A buffer pushed back before that
    // failure is reaped must still lead to a new receive, or the
    // connection would wait forever with data in its socket.
    let config = zring::ReactorConfig {
        buffer_count: 4,
        buffer_size: 256 * 1024,
        ..Default::default()
    };
    let ctx = Context::with_config(&config).unwrap();
    let mut pull = ctx.socket(SocketKind::Pull);
    pull.set(SocketOption::RcvWakeDelay(Some(Duration::from_millis(1))))
        .unwrap();
    let bound = pull.bind("tcp://127.0.0.1:*").unwrap();
    let sender_ctx = Context::new().unwrap();
    let mut push = sender_ctx.socket(SocketKind::Push);
    push.connect(&bound).unwrap();
    const TOTAL: u32 = 3000;
    let sender = std::thread::spawn(move || {
        let mut body = vec![0x5a; 64 * 1024];
        for i in 0..TOTAL {
            body[..4].copy_from_slice(&i.to_be_bytes());
            push.send_copy(&[&b"log-write"[..], &body], Wait::Block)
                .unwrap();
        }
        push
    });
    for i in 0..TOTAL {
        let m = pull
            .recv(Wait::Timeout(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_eq!(m.frame(1).unwrap()[..4], i.to_be_bytes());
    }
    drop(sender.join().unwrap());
}

#[test]
fn ipv6_and_interface_endpoints() {
    let ctx = Context::new().unwrap();
    for endpoint in ["tcp://[::1]:*", "tcp://lo:*"] {
        let mut pull = ctx.socket(SocketKind::Pull);
        let bound = match pull.bind(endpoint) {
            Ok(b) => b,
            Err(e) if endpoint.contains("::1") => {
                eprintln!("skipping IPv6: {e}");
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        let mut push = ctx.socket(SocketKind::Push);
        push.connect(&bound).unwrap();
        push.send(&[b"over ".as_slice(), bound.as_bytes()]).unwrap();
        let m = pull.recv(T).unwrap();
        assert_eq!(m.frame(1).unwrap(), bound.as_bytes());
    }
}

#[test]
fn errors_name_what_is_wrong() {
    let ctx = Context::new().unwrap();
    let mut pull = ctx.socket(SocketKind::Pull);
    let err = pull.bind("tcp://127.0.0.1").unwrap_err().to_string();
    assert!(err.contains("no port"), "{err}");
    let err = pull.send(&[b"x"]).unwrap_err().to_string();
    assert_eq!(err, "a pull socket cannot send");
    let taken = pull.bind("tcp://127.0.0.1:*").unwrap();
    let mut other = ctx.socket(SocketKind::Pull);
    let err = other.bind(&taken).unwrap_err().to_string();
    assert!(err.starts_with(&format!("cannot bind {taken}")), "{err}");
    let err = pull.set(SocketOption::RcvHwm(5)).unwrap_err().to_string();
    assert!(err.contains("before the first bind"), "{err}");
    let err = other
        .set(SocketOption::SndHwm(1 << 40))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("SNDHWM = 1099511627776 is out of range"),
        "{err}"
    );
}

#[test]
fn connections_spread_over_two_reactors() {
    // The listener's reactor hands every other accepted connection to the
    // second reactor through the mesh.
    let config = zring::ReactorConfig {
        cores: vec![None, None],
        ..Default::default()
    };
    let ctx = Context::with_config(&config).unwrap();
    let mut pull = ctx.socket(SocketKind::Pull);
    let bound = pull.bind("tcp://127.0.0.1:*").unwrap();
    let mut pushes: Vec<_> = (0..4)
        .map(|_| {
            let mut p = ctx.socket(SocketKind::Push);
            p.connect(&bound).unwrap();
            p
        })
        .collect();
    for (i, p) in pushes.iter_mut().enumerate() {
        for n in 0..250u32 {
            p.send(&[[i as u8], n.to_be_bytes()[..1].try_into().unwrap()])
                .unwrap();
        }
    }
    let mut per_peer = [0u32; 4];
    for _ in 0..1000 {
        let m = pull.recv(T).unwrap();
        per_peer[m.first_frame()[0] as usize] += 1;
    }
    assert_eq!(per_peer, [250; 4]);
    assert_eq!(pull.stats().connections_accepted, 4);
}

#[test]
fn the_fd_polls_readable_when_a_message_waits() {
    let ctx = Context::new().unwrap();
    let mut pull = ctx.socket(SocketKind::Pull);
    let bound = pull.bind("tcp://127.0.0.1:*").unwrap();
    let fd = pull.fd().unwrap();
    let poll = |timeout_ms| {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, timeout_ms) == 1 }
    };
    assert!(!poll(50), "nothing sent yet");
    let mut push = ctx.socket(SocketKind::Push);
    push.connect(&bound).unwrap();
    push.send(&[b"one"]).unwrap();
    push.send(&[b"two"]).unwrap();
    assert!(poll(5000));
    // Drain until WouldBlock, as the contract says; then it is quiet again.
    let mut got = Vec::new();
    while got.len() < 2 {
        match pull.recv(Wait::DontWait) {
            Ok(m) => got.push(m.first_frame().to_vec()),
            Err(zring::Error::WouldBlock) => assert!(poll(5000)),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
    assert!(matches!(
        pull.recv(Wait::DontWait),
        Err(zring::Error::WouldBlock)
    ));
    assert!(!poll(50));
}

/// Each burst ends with the reactor finding the pipe empty and taking its
/// "scheduled" flag down; the next burst must wake it. A flag left up (or a
/// lost wake-up) leaves a message sitting in the pipe, and `recv` times out.
/// Bursts of varying length reach that edge with and without a send in
/// flight.
#[test]
fn no_message_waits_for_the_next_one() {
    let ctx = Context::new().unwrap();
    let mut pull = ctx.socket(SocketKind::Pull);
    let bound = pull.bind("tcp://127.0.0.1:*").unwrap();
    let mut push = ctx.socket(SocketKind::Push);
    push.set(SocketOption::SndHwm(4)).unwrap();
    push.connect(&bound).unwrap();
    let prompt = Wait::Timeout(Duration::from_secs(2));
    let mut sent = 0u32;
    for round in 0..3000u32 {
        let burst = 1 + round % 7;
        for _ in 0..burst {
            push.send(&[sent.to_be_bytes()]).unwrap();
            sent += 1;
        }
        for expected in sent - burst..sent {
            let m = pull
                .recv(prompt)
                .unwrap_or_else(|e| panic!("message {expected} (round {round}): {e}"));
            assert_eq!(m.first_frame(), expected.to_be_bytes());
        }
    }
}

#[test]
fn a_coalescing_reactor_serves_the_first_arrival_at_once_and_gathers_the_next() {
    // ReactorConfig::coalesce: an idle reactor wakes for its first
    // completion; one that has just had work sleeps out the window, so data
    // arriving then waits for the window's end and is read in one receive.
    const WINDOW: Duration = Duration::from_millis(100);
    let config = zring::ReactorConfig {
        coalesce: Some(WINDOW),
        ..Default::default()
    };
    let ctx = Context::with_config(&config).unwrap();
    let mut pull = ctx.socket(SocketKind::Pull);
    let bound = pull.bind("tcp://127.0.0.1:*").unwrap();
    let sender_ctx = Context::new().unwrap(); // not coalescing
    let mut push = sender_ctx.socket(SocketKind::Push);
    push.connect(&bound).unwrap();
    push.send(&[b"warm-up".as_slice()]).unwrap();
    assert_eq!(pull.recv(T).unwrap().first_frame(), b"warm-up");

    // Timing on a shared machine: a thread descheduled at the wrong moment
    // can spoil one attempt, not three in a row.
    let mut attempts = Vec::new();
    for _ in 0..3 {
        // Long enough for the window after the last message to pass
        // without completions, after which the reactor counts as idle.
        std::thread::sleep(3 * WINDOW);
        let sent = std::time::Instant::now();
        push.send(&[b"first".as_slice()]).unwrap();
        assert_eq!(pull.recv(T).unwrap().first_frame(), b"first");
        let first = sent.elapsed();
        let sent = std::time::Instant::now();
        push.send(&[b"second".as_slice()]).unwrap();
        assert_eq!(pull.recv(T).unwrap().first_frame(), b"second");
        let second = sent.elapsed();
        attempts.push((first, second));
        if first < WINDOW / 2 && second >= WINDOW / 4 {
            break;
        }
    }
    let &(first, second) = attempts.last().unwrap();
    assert!(
        first < WINDOW / 2 && second >= WINDOW / 4,
        "expected the first message after a quiet spell at once and the one \
         right after it held for the window; (first, second) took {attempts:?}"
    );
    assert!(second < WINDOW + Duration::from_secs(2), "{second:?}");

    // A stream through the window arrives whole and in order.
    for i in 0..20_000u32 {
        push.send_copy(&[&i.to_be_bytes()[..]], Wait::Block)
            .unwrap();
    }
    for i in 0..20_000u32 {
        assert_eq!(pull.recv(T).unwrap().first_frame(), i.to_be_bytes());
    }
}

#[test]
fn a_coalescing_window_beyond_the_limit_is_refused_by_name() {
    let config = zring::ReactorConfig {
        coalesce: Some(zring::MAX_COALESCE + Duration::from_millis(1)),
        ..Default::default()
    };
    let Err(err) = Context::with_config(&config) else {
        panic!("a window over MAX_COALESCE was accepted");
    };
    assert!(err.to_string().contains("coalescing window"), "{err}");
}

#[test]
fn stop_accepting_refuses_new_peers_and_keeps_connected_ones() {
    // Two reactors: the listener is on one, and the connection may be on
    // either; both are told.
    let config = zring::ReactorConfig {
        cores: vec![None, None],
        ..zring::ReactorConfig::default()
    };
    let ctx = Context::with_config(&config).unwrap();
    let mut pull = ctx.socket(SocketKind::Pull);
    let bound = pull.bind("tcp://127.0.0.1:*").unwrap();
    let addr = bound.strip_prefix("tcp://").unwrap().to_owned();
    let mut push = ctx.socket(SocketKind::Push);
    push.connect(&bound).unwrap();
    push.send(&[b"before".as_slice()]).unwrap();
    assert_eq!(
        pull.recv(T).unwrap().frame(0).unwrap(),
        b"before".as_slice()
    );

    pull.stop_accepting();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match std::net::TcpStream::connect(&addr) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            // Made while the listener closed: reset with its backlog.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("connect failed otherwise: {e}"),
            // The command may not have reached the listener yet.
            Ok(_) => assert!(std::time::Instant::now() < deadline, "still accepting"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The connection made before goes on delivering.
    for i in 0..100u32 {
        push.send(&[i.to_be_bytes()]).unwrap();
    }
    for i in 0..100u32 {
        assert_eq!(
            pull.recv(T).unwrap().frame(0).unwrap(),
            &i.to_be_bytes()[..]
        );
    }
}

#[test]
fn the_backend_is_the_one_the_environment_names() {
    let ctx = Context::new().unwrap();
    match std::env::var(zring::BACKEND_ENV) {
        Ok(backend) => assert_eq!(ctx.backend(), backend),
        Err(_) => assert!(
            ["io_uring", "epoll"].contains(&ctx.backend()),
            "{}",
            ctx.backend()
        ),
    }
}

#[test]
fn a_connect_refused_at_first_is_retried_until_the_peer_binds() {
    let ctx = Context::new().unwrap();
    let port = ports::unused_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let mut push = ctx.socket(SocketKind::Push);
    push.set(SocketOption::ReconnectIvl(Some(Duration::from_millis(20))))
        .unwrap();
    push.connect(&endpoint).unwrap();
    push.send(&[b"queued before the peer existed".as_slice()])
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while push.stats().connect_failures < 2 {
        assert!(std::time::Instant::now() < deadline, "no refused connect");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut pull = ctx.socket(SocketKind::Pull);
    pull.bind(&endpoint).unwrap();
    let m = pull.recv(T).unwrap();
    assert_eq!(m.first_frame(), b"queued before the peer existed");
    assert_eq!(push.stats().connections_established, 1);
}
