//! Where io_uring is refused, as Docker's default seccomp profile refuses
//! it: asked for io_uring, zring fails with a message that names the cause
//! and the fix; left to choose (`auto`, the default), it runs on epoll,
//! says so once, and works.
//!
//! The refusal is real: a seccomp filter makes `io_uring_setup` fail with
//! EPERM, on a fresh thread for the library (the reactor threads the
//! context starts from there inherit it) and in the child for the binary.

#[path = "support/ports.rs"]
mod ports;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zring::{Backend, Context, ReactorConfig, SocketKind, Wait};

#[path = "support/seccomp.rs"]
mod seccomp;
use seccomp::refuse_io_uring_setup;

/// Runs `f` on a thread under the filter.
fn refused<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(|| {
        refuse_io_uring_setup();
        f()
    })
    .join()
    .expect("the filtered thread panicked")
}

#[test]
fn a_refused_io_uring_is_a_clear_error_when_io_uring_is_asked_for() {
    let outcome = refused(|| {
        let config = ReactorConfig {
            backend: Backend::IoUring,
            ..ReactorConfig::default()
        };
        Context::with_config(&config).map(|_| ())
    });
    let err = outcome.expect_err("io_uring_setup is refused, so no context can start");
    let text = err.to_string();
    assert!(text.contains("io_uring is not available"), "{text}");
    assert!(text.contains("io_uring_setup was refused"), "{text}");
    assert!(text.contains("seccomp"), "names the likely cause: {text}");
}

#[test]
fn left_to_choose_zring_runs_on_epoll_where_io_uring_is_refused() {
    let backend = refused(|| {
        let config = ReactorConfig {
            backend: Backend::Auto,
            ..ReactorConfig::default()
        };
        let ctx = Context::with_config(&config).expect("epoll needs no io_uring");
        let mut pull = ctx.socket(SocketKind::Pull);
        let bound = pull.bind("tcp://127.0.0.1:*").unwrap();
        let mut push = ctx.socket(SocketKind::Push);
        push.connect(&bound).unwrap();
        for i in 0..1000u32 {
            push.send(&[i.to_be_bytes()]).unwrap();
        }
        for i in 0..1000u32 {
            let m = pull.recv(Wait::Timeout(Duration::from_secs(5))).unwrap();
            assert_eq!(m.first_frame(), i.to_be_bytes());
        }
        ctx.backend()
    });
    assert_eq!(backend, "epoll");
}

/// `zring` with `args`, under the filter, its stderr piped.
fn spawn_refused(args: &[&str]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zring"));
    command
        .args(args)
        .env_remove("ZRING_BACKEND")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes two prctl calls (async-signal-safe); the filter survives exec.
    unsafe {
        command.pre_exec(|| {
            refuse_io_uring_setup();
            Ok(())
        });
    }
    command.spawn().expect("zring starts")
}

/// Reads stderr lines until one contains `marker`; returns all read.
fn lines_until(child: &mut Child, marker: &str) -> Vec<String> {
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end, so the child never writes into a closed pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let done = line.contains(marker);
        lines.push(line);
        if done {
            return lines;
        }
    }
    panic!("no line with {marker:?} came; got {lines:#?}");
}

/// The value of `key=` in a tracing line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[start..];
    Some(
        rest.split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .trim_matches('"'),
    )
}

fn metrics(addr: &str) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body
}

fn free_port() -> u16 {
    ports::unused_port()
}

#[test]
fn the_broker_asked_for_io_uring_exits_non_zero_with_the_reason() {
    let mut child = spawn_refused(&[
        "broker",
        "--backend",
        "io_uring",
        "--listen-xpub-endpoint",
        "tcp://127.0.0.1:*",
        "--listen-xsub-endpoint",
        "tcp://127.0.0.1:*",
    ]);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{status:?}");
    assert!(stderr.contains("io_uring is not available"), "{stderr}");
    assert!(stderr.contains("seccomp"), "{stderr}");
}

#[test]
fn the_broker_left_to_choose_runs_on_epoll_says_why_once_and_routes() {
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut child = spawn_refused(&[
        "broker",
        "--listen-xpub-endpoint",
        "tcp://127.0.0.1:*",
        "--listen-xsub-endpoint",
        "tcp://127.0.0.1:*",
        "--metrics-listen",
        &metrics_addr,
    ]);
    let lines = lines_until(&mut child, "zring broker running");
    let warnings: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("running on epoll instead"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning: {lines:#?}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(
        warnings[0].contains("io_uring_setup was refused"),
        "the cause: {}",
        warnings[0]
    );
    assert!(
        warnings[0].contains("docs/operations.md"),
        "the fix: {}",
        warnings[0]
    );
    let running = lines
        .iter()
        .find(|l| l.contains("zring broker running"))
        .expect("a start-up line");
    assert_eq!(field(running, "backend"), Some("epoll"), "{running}");
    let xpub = field(running, "xpub").unwrap().to_owned();
    let xsub = field(running, "xsub").unwrap().to_owned();
    assert!(metrics(&metrics_addr).contains("zring_backend_info{backend=\"epoll\"} 1"));

    // A libzmq node through it: its subscription is echoed, and what it
    // publishes on that topic comes back.
    let ctx = zmq::Context::new();
    let publisher = ctx.socket(zmq::XPUB).unwrap();
    publisher.set_xpub_verbose(true).unwrap();
    publisher.connect(&xsub).unwrap();
    let subscriber = ctx.socket(zmq::XSUB).unwrap();
    subscriber.connect(&xpub).unwrap();
    subscriber.send(&b"\x01zeek.topic"[..], 0).unwrap();
    publisher.set_rcvtimeo(5000).unwrap();
    let echo = publisher.recv_bytes(0).expect("the subscription is echoed");
    assert_eq!(echo, b"\x01zeek.topic");
    publisher
        .send_multipart([&b"zeek.topic.x"[..], b"event"], 0)
        .unwrap();
    subscriber.set_rcvtimeo(5000).unwrap();
    let got = subscriber.recv_multipart(0).expect("delivered");
    assert_eq!(got, [b"zeek.topic.x".to_vec(), b"event".to_vec()]);

    // SAFETY: signals a child we started and still own.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_logger_left_to_choose_runs_on_epoll() {
    let dir = std::env::temp_dir().join(format!("zring-refused-logger-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut child = spawn_refused(&[
        "logger",
        "--listen",
        "tcp://127.0.0.1:*",
        "--dir",
        dir.to_str().unwrap(),
        "--metrics-listen",
        &metrics_addr,
    ]);
    let lines = lines_until(&mut child, "zring logger running");
    let running = lines
        .iter()
        .find(|l| l.contains("zring logger running"))
        .expect("a start-up line");
    assert_eq!(field(running, "backend"), Some("epoll"), "{running}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("running on epoll instead"))
            .count(),
        1,
        "{lines:#?}"
    );
    assert!(metrics(&metrics_addr).contains("zring_backend_info{backend=\"epoll\"} 1"));
    // SAFETY: signals a child we started and still own.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}
