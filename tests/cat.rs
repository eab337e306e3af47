//! `zring cat` end to end, as a process, against libzmq 4.3.4 peers.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn zmq_socket(kind: zmq::SocketType) -> zmq::Socket {
    let ctx = zmq::Context::new();
    let s = ctx.socket(kind).unwrap();
    s.set_linger(0).unwrap();
    s.set_rcvtimeo(10_000).unwrap();
    s
}

fn zring() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zring"));
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

#[test]
fn cat_pull_binds_and_prints_libzmq_messages() {
    let mut child = zring()
        .args(["cat", "pull", "--bind", "tcp://127.0.0.1:*", "-n", "3"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let endpoint = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(endpoint.starts_with("tcp://127.0.0.1:"), "{line}");

    let push = zmq_socket(zmq::PUSH);
    push.connect(&endpoint).unwrap();
    push.send_multipart([&b"log-write"[..], b"conn"], 0)
        .unwrap();
    push.send(&b"\x00\x01binary"[..], 0).unwrap();
    push.send_multipart([&b""[..], b"a|b"], 0).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "log-write|conn\n0x000162696e617279\n|0x617c62\n"
    );
}

#[test]
fn cat_push_sends_stdin_lines_to_a_libzmq_pull() {
    let pull = zmq_socket(zmq::PULL);
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = pull.get_last_endpoint().unwrap().unwrap();
    let mut child = zring()
        .args(["cat", "push", &endpoint, "--separator", ","])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"first,frame\n0xff00\n")
        .unwrap();
    assert_eq!(
        pull.recv_multipart(0).unwrap(),
        [b"first".to_vec(), b"frame".to_vec()]
    );
    assert_eq!(pull.recv_multipart(0).unwrap(), [vec![0xff, 0x00]]);
    assert!(
        child.wait().unwrap().success(),
        "exits once stdin ends and all is sent"
    );
}

#[test]
fn cat_sub_filters_by_topic_from_a_libzmq_pub() {
    let publisher = zmq_socket(zmq::PUB);
    publisher.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = publisher.get_last_endpoint().unwrap().unwrap();
    let child = zring()
        .args([
            "cat",
            "sub",
            &endpoint,
            "--topic",
            "zeek/",
            "-n",
            "1",
            "--timeout",
            "10",
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // Publish until the subscription has reached libzmq.
    let pid = child.id();
    for _ in 0..500 {
        let _ = publisher.poll(zmq::POLLIN, 0);
        publisher.send("other/x", 0).unwrap();
        publisher.send_multipart(["zeek/x", "payload"], 0).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        if std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")) {
            break;
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "zeek/x|payload\n");
}

#[test]
fn cat_refuses_bad_endpoints_with_a_clear_error() {
    let out = zring()
        .args(["cat", "sub", "tcp://127.0.0.1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("has no port"), "{err}");
}
