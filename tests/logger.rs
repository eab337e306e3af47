//! `zring logger` end to end: libzmq 4.3.4 PUSH sockets (the `zmq` crate),
//! configured as Zeek's nodes configure their log sockets (contract §2.2:
//! SNDHWM 1000, LINGER 500, IMMEDIATE off), send log-write messages
//! (§3.3) whose batches the tests encode from the format description
//! (`support/zeek_batch.rs`). The files written are compared byte for byte
//! with expected text written out by hand from Zeek's rules
//! (docs/zeek-log-formats.md), apart from the `#open`/`#close` times.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/logger_env.rs"]
mod logger_env;
#[path = "support/ports.rs"]
mod ports;
#[path = "support/zeek_batch.rs"]
mod zeek_batch;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use logger_env::{logger, scratch, wait_for, zmq_ctx};
use zeek_batch::{BatchBuilder, TestValue};
use zring::logger::value::{Proto, TypeTag};
use zring::logger::{LogFormatKind, Logger, LoggerStats};

/// A Zeek node's log PUSH socket.
struct Node {
    push: zmq::Socket,
    id: &'static str,
}

impl Node {
    fn connect(logger: &Logger, id: &'static str) -> Node {
        let push = zmq_ctx().socket(zmq::PUSH).unwrap();
        push.set_sndhwm(1000).unwrap();
        push.set_linger(500).unwrap();
        push.set_immediate(false).unwrap();
        push.connect(logger.endpoint()).unwrap();
        Node { push, id }
    }

    /// One log-write message, as Zeek's `ZeroMQBackend::DoPublishLogWrites`.
    fn send_batch(&self, batch: &[u8]) {
        self.send_frames(&[
            b"log-write",
            self.id.as_bytes(),
            b"zeek-bin-serializer",
            batch,
        ]);
    }

    fn send_frames(&self, frames: &[&[u8]]) {
        self.push.send_multipart(frames, 0).unwrap();
    }
}

fn rejected(stats: &LoggerStats) -> u64 {
    stats.rejected.values().sum()
}

/// A file's text with the times of `#open` and `#close` replaced by `T`,
/// after checking they have Zeek's shape (`%Y-%m-%d-%H-%M-%S`).
fn normalized(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        match line.split_once('\t') {
            Some((key @ ("#open" | "#close"), time)) => {
                let time = time.trim_end_matches('\n');
                let shape: String = time
                    .chars()
                    .map(|c| if c.is_ascii_digit() { 'd' } else { c })
                    .collect();
                assert_eq!(shape, "dddd-dd-dd-dd-dd-dd", "{key} time {time:?}");
                out.push_str(&format!("{key}\tT\n"));
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// The conn-like schema of these tests.
fn conn_builder() -> BatchBuilder {
    BatchBuilder::new("Conn::LOG", "Log::WRITER_ASCII", "default", "conn")
        .field("ts", TypeTag::Time, TypeTag::Void, false)
        .field("uid", TypeTag::String, TypeTag::Void, false)
        .field("id.orig_h", TypeTag::Addr, TypeTag::Void, false)
        .field("id.orig_p", TypeTag::Port, TypeTag::Void, false)
        .field("proto", TypeTag::Enum, TypeTag::Void, false)
        .field("duration", TypeTag::Interval, TypeTag::Void, true)
        .field("orig_bytes", TypeTag::Count, TypeTag::Void, true)
        .field("local_orig", TypeTag::Bool, TypeTag::Void, false)
        .field("tags", TypeTag::Table, TypeTag::String, true)
}

fn conn_batch_a() -> Vec<u8> {
    use TestValue::*;
    conn_builder()
        .record(vec![
            Time(1700000000.123456),
            TestValue::str("CAbc12"),
            TestValue::addr("192.168.1.10"),
            Port(49152, Proto::Tcp),
            TestValue::enum_("tcp"),
            Interval(1.5),
            Count(1234),
            Bool(true),
            Set(vec![TestValue::str("a"), TestValue::str("b")]),
        ])
        .record(vec![
            Time(1700000001.0),
            TestValue::str("-"),
            TestValue::addr("2001:db8::1"),
            Port(53, Proto::Udp),
            TestValue::enum_("udp"),
            Unset(TypeTag::Interval),
            Unset(TypeTag::Count),
            Bool(false),
            Set(vec![]),
        ])
        .finish()
}

fn conn_batch_b() -> Vec<u8> {
    use TestValue::*;
    conn_builder()
        .record(vec![
            Time(1700000002.5),
            TestValue::str("tab\there"),
            TestValue::addr("10.0.0.1"),
            Port(80, Proto::Tcp),
            TestValue::enum_("tcp"),
            Interval(0.25),
            Count(0),
            Bool(true),
            Set(vec![TestValue::str("x,y")]),
        ])
        .finish()
}

/// A second path, with a vector (and a hole), a subnet and a double.
fn dns_batch() -> Vec<u8> {
    use TestValue::*;
    BatchBuilder::new("DNS::LOG", "Log::WRITER_ASCII", "default", "dns")
        .field("ts", TypeTag::Time, TypeTag::Void, false)
        .field("query", TypeTag::String, TypeTag::Void, true)
        .field("answers", TypeTag::Vector, TypeTag::String, true)
        .field("TTLs", TypeTag::Vector, TypeTag::Interval, true)
        .field("net", TypeTag::Subnet, TypeTag::Void, true)
        .field("score", TypeTag::Double, TypeTag::Void, true)
        .record(vec![
            Time(1700000003.25),
            TestValue::str("example.com"),
            Vector(vec![
                TestValue::str("93.184.216.34"),
                Unset(TypeTag::String),
            ]),
            Vector(vec![Interval(60.0)]),
            Subnet("10.0.0.0".parse().unwrap(), 8),
            Double(0.1),
        ])
        .record(vec![
            Time(1700000004.0),
            TestValue::str(""),
            Vector(vec![]),
            Unset(TypeTag::Vector),
            Unset(TypeTag::Subnet),
            Double(2.0),
        ])
        .finish()
}

const ASCII_CONN: &str = "\
#separator \\x09
#set_separator\t,
#empty_field\t(empty)
#unset_field\t-
#path\tconn
#open\tT
#fields\tts\tuid\tid.orig_h\tid.orig_p\tproto\tduration\torig_bytes\tlocal_orig\ttags
#types\ttime\tstring\taddr\tport\tenum\tinterval\tcount\tbool\tset[string]
1700000000.123456\tCAbc12\t192.168.1.10\t49152\ttcp\t1.500000\t1234\tT\ta,b
1700000001.000000\t\\x2d\t2001:db8::1\t53\tudp\t-\t-\tF\t(empty)
1700000002.500000\ttab\\x09here\t10.0.0.1\t80\ttcp\t0.250000\t0\tT\tx\\x2cy
#close\tT
";

const ASCII_DNS: &str = "\
#separator \\x09
#set_separator\t,
#empty_field\t(empty)
#unset_field\t-
#path\tdns
#open\tT
#fields\tts\tquery\tanswers\tTTLs\tnet\tscore
#types\ttime\tstring\tvector[string]\tvector[interval]\tsubnet\tdouble
1700000003.250000\texample.com\t93.184.216.34,-\t60.000000\t10.0.0.0/8\t0.1
1700000004.000000\t(empty)\t(empty)\t-\t-\t2.0
#close\tT
";

const JSON_CONN: &str = r#"{"ts":1700000000.123456,"uid":"CAbc12","id.orig_h":"192.168.1.10","id.orig_p":49152,"proto":"tcp","duration":1.5,"orig_bytes":1234,"local_orig":true,"tags":["a","b"]}
{"ts":1700000001.0,"uid":"-","id.orig_h":"2001:db8::1","id.orig_p":53,"proto":"udp","local_orig":false,"tags":[]}
{"ts":1700000002.5,"uid":"tab\there","id.orig_h":"10.0.0.1","id.orig_p":80,"proto":"tcp","duration":0.25,"orig_bytes":0,"local_orig":true,"tags":["x,y"]}
"#;

const JSON_DNS: &str = r#"{"ts":1700000003.25,"query":"example.com","answers":["93.184.216.34",null],"TTLs":[60.0],"net":"10.0.0.0/8","score":0.1}
{"ts":1700000004.0,"query":"","answers":[],"score":2.0}
"#;

/// Two nodes, two paths, and a rejected batch between two good ones.
fn two_nodes_two_paths(format: LogFormatKind) -> (PathBuf, LoggerStats) {
    let dir = scratch(format.name());
    let logger = logger(&dir, |c| c.format = format);
    let a = Node::connect(&logger, "zeromq_worker-1_box_4242_NwrZBf1q3FkxySjt2a");
    let b = Node::connect(&logger, "zeromq_worker-2_box_4243_QmTrWbT2xKmzd9y1PK");
    // One at a time, so the order in the files is known.
    a.send_batch(&conn_batch_a());
    wait_for(&logger, "node a's batch", 10, |s| s.batches == 1);
    let mut bad = conn_batch_b();
    bad.truncate(bad.len() - 3);
    b.send_batch(&bad);
    wait_for(&logger, "the bad batch", 10, |s| rejected(s) == 1);
    b.send_batch(&conn_batch_b());
    a.send_batch(&dns_batch());
    wait_for(&logger, "all good batches", 10, |s| s.batches == 3);
    let stats = logger.shutdown();
    (dir, stats)
}

#[test]
fn ascii_files_equal_zeeks_byte_for_byte() {
    let (dir, stats) = two_nodes_two_paths(LogFormatKind::Ascii);
    assert_eq!(normalized(&dir.join("conn.log")), ASCII_CONN);
    assert_eq!(normalized(&dir.join("dns.log")), ASCII_DNS);
    assert_eq!(stats.records, 5);
    assert_eq!(stats.rejected.get("truncated"), Some(&1), "{stats:?}");
    assert_eq!(
        stats.nodes["zeromq_worker-2_box_4243_QmTrWbT2xKmzd9y1PK"].rejected,
        1
    );
    assert_eq!(stats.paths["conn"].records, 3);
    assert_eq!(stats.paths["dns"].records, 2);
    let written: u64 = [ASCII_CONN, ASCII_DNS]
        .iter()
        .map(|t| {
            t.lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.len() as u64 + 1)
                .sum::<u64>()
        })
        .sum();
    assert_eq!(
        stats.bytes_written, written,
        "bytes_written counts record lines"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn json_files_equal_zeeks_byte_for_byte() {
    let (dir, stats) = two_nodes_two_paths(LogFormatKind::Json);
    assert_eq!(
        std::fs::read_to_string(dir.join("conn.log")).unwrap(),
        JSON_CONN
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("dns.log")).unwrap(),
        JSON_DNS
    );
    assert_eq!(stats.records, 5);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_messages_cost_only_themselves() {
    let dir = scratch("bad");
    let logger = logger(&dir, |_| {});
    let node = Node::connect(&logger, "worker-1");
    node.send_batch(&conn_batch_a());
    node.send_frames(&[b"log-write", b"worker-1", b"zeek-bin-serializer"]);
    node.send_frames(&[b"log-write", b"worker-1", b"broker-bin-v1", &conn_batch_b()]);
    let mut unknown_type = conn_batch_b();
    // The first value's type tag (time, 5) becomes 255.
    let at = unknown_type.len() - conn_batch_b_record_len();
    unknown_type[at..at + 4].copy_from_slice(&255i32.to_be_bytes());
    node.send_batch(&unknown_type);
    let mut bad_path = BatchBuilder::new("X::LOG", "Log::WRITER_ASCII", "default", "../etc/passwd")
        .field("ts", TypeTag::Time, TypeTag::Void, false);
    bad_path.push_record(&[TestValue::Time(1.0)]);
    node.send_batch(&bad_path.finish());
    // A count where the schema says time: refused, not written as `1`.
    let mut mismatch = conn_builder();
    mismatch.push_record(&[
        TestValue::Count(1),
        TestValue::str("CMis01"),
        TestValue::addr("10.0.0.9"),
        TestValue::Port(1, Proto::Tcp),
        TestValue::enum_("tcp"),
        TestValue::Unset(TypeTag::Interval),
        TestValue::Unset(TypeTag::Count),
        TestValue::Bool(false),
        TestValue::Unset(TypeTag::Table),
    ]);
    node.send_batch(&mismatch.finish());
    node.send_batch(&conn_batch_b());
    wait_for(&logger, "both good batches", 10, |s| s.batches == 2);
    let stats = logger.shutdown();
    for reason in [
        "frame_count",
        "unknown_serializer",
        "unknown_type",
        "bad_path",
        "type_mismatch",
    ] {
        assert_eq!(stats.rejected.get(reason), Some(&1), "{reason}: {stats:?}");
    }
    assert_eq!(stats.nodes["worker-1"].rejected, 5);
    assert_eq!(normalized(&dir.join("conn.log")), ASCII_CONN);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["conn.log"], "nothing else was created");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Bytes of the one record of `conn_batch_b`.
fn conn_batch_b_record_len() -> usize {
    conn_batch_b().len() - conn_builder().finish().len()
}

#[test]
fn rotation_closes_renames_and_compresses() {
    let dir = scratch("rotation");
    let logger = logger(&dir, |c| {
        c.rotate_interval = Some(Duration::from_secs(1));
        c.gzip = true;
    });
    let node = Node::connect(&logger, "worker-1");
    node.send_batch(&conn_batch_a());
    wait_for(&logger, "the first batch", 10, |s| s.batches == 1);
    wait_for(&logger, "a rotation", 10, |s| s.files.rotations >= 1);
    node.send_batch(&conn_batch_b());
    wait_for(&logger, "the second batch", 10, |s| s.batches == 2);
    let stats = logger.shutdown();
    assert_eq!(stats.write_error_count(), 0);

    // Rotated files are conn.%Y-%m-%d-%H-%M-%S.log.gz; the first holds
    // the first batch and its #close. (The second batch may have been
    // rotated too, if a boundary passed before shutdown.)
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort(); // by time; the live conn.log sorts last
    assert!(names.len() >= 2, "{names:?}");
    let mut texts = Vec::new();
    for name in &names {
        let file = dir.join(name);
        if name == "conn.log" {
            texts.push(normalized(&file));
            continue;
        }
        let shape: String = name
            .chars()
            .map(|c| if c.is_ascii_digit() { 'd' } else { c })
            .collect();
        assert_eq!(shape, "conn.dddd-dd-dd-dd-dd-dd.log.gz");
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(&file).unwrap()),
            &mut text,
        )
        .unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, text).unwrap();
        texts.push(normalized(&plain));
        std::fs::remove_file(plain).unwrap();
    }
    let first: String = ASCII_CONN
        .lines()
        .filter(|l| !l.starts_with("1700000002"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(texts[0], first);
    let second: String = ASCII_CONN
        .lines()
        .filter(|l| l.starts_with('#') || l.starts_with("1700000002"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(texts[1], second);
    assert_eq!(texts.len(), 2, "{names:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn shutdown_mid_stream_writes_whole_records_only() {
    let dir = scratch("shutdown");
    let logger = logger(&dir, |_| {});
    let node = Node::connect(&logger, "worker-1");
    let batch = zeek_batch::conn_batch(200);
    for _ in 0..300 {
        node.send_batch(&batch);
    }
    wait_for(&logger, "some batches", 10, |s| s.batches >= 5);
    let stats = logger.shutdown();
    let text = std::fs::read_to_string(dir.join("conn.log")).unwrap();
    let records: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(records.len() as u64, stats.records);
    assert_eq!(stats.records, stats.batches * 200, "whole batches");
    assert!(
        records
            .iter()
            .all(|r| r.split('\t').count() == zeek_batch::CONN_FIELDS.len()),
        "every record line is whole"
    );
    assert!(text.ends_with('\n'));
    assert!(text.lines().last().unwrap().starts_with("#close\t"));
    // Everything the socket received was written: nothing left behind.
    assert_eq!(stats.socket.messages_in, stats.batches);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_binary_writes_logs_and_closes_them_on_sigterm() {
    let exe = env!("CARGO_BIN_EXE_zring");
    let dir = scratch("binary");
    let out = std::process::Command::new(exe)
        .args([
            "logger",
            "--listen",
            "tcp://127.0.0.1:1",
            "--dir",
            "/proc/nope",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("log directory /proc/nope"), "{stderr}");

    let port = ports::unused_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let mut child = std::process::Command::new(exe)
        .args(["logger", "--listen", &endpoint, "--format", "json"])
        .arg("--dir")
        .arg(&dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let push = zmq_ctx().socket(zmq::PUSH).unwrap();
    push.connect(&endpoint).unwrap();
    push.send_multipart(
        [
            &b"log-write"[..],
            b"worker-1",
            b"zeek-bin-serializer",
            &conn_batch_a(),
        ],
        0,
    )
    .unwrap();
    let file = dir.join("conn.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&file).map_or(true, |m| m.len() == 0) {
        assert!(Instant::now() < deadline, "no conn.log");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signals a child we started and still own.
    unsafe { libc_kill(child.id() as i32, 15) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let expected: String = JSON_CONN
        .lines()
        .take(2)
        .map(|l| format!("{l}\n"))
        .collect();
    // Rotating hourly (the default), it rotated the file as it stopped,
    // as a Zeek logger node does: conn.<open time>.log.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].starts_with("conn.2") && names[0].ends_with(".log"),
        "{names:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(&names[0])).unwrap(),
        expected
    );
    std::fs::remove_dir_all(dir).unwrap();
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn a_new_schema_starts_a_new_file_and_never_overwrites_one() {
    let dir = scratch("schema");
    let logger = logger(&dir, |_| {});
    let node = Node::connect(&logger, "worker-1");
    let mut other = BatchBuilder::new("Conn::LOG", "Log::WRITER_ASCII", "default", "conn").field(
        "ts",
        TypeTag::Time,
        TypeTag::Void,
        false,
    );
    other.push_record(&[TestValue::Time(1.0)]);
    let other = other.finish();
    // Three schema changes within a second: three rotated files.
    for batch in [conn_batch_a(), other.clone(), conn_batch_b(), other] {
        node.send_batch(&batch);
    }
    wait_for(&logger, "four batches", 10, |s| s.batches == 4);
    let stats = logger.shutdown();
    assert_eq!(stats.files.rotations, 3);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    let records: usize = names
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(n)).unwrap();
            assert!(text.starts_with("#separator"), "{n} has its own header");
            assert!(text.contains("\n#close\t"), "{n} was closed");
            text.lines().filter(|l| !l.starts_with('#')).count()
        })
        .sum();
    assert_eq!(records, 5, "every record is in exactly one file");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn denied_addresses_never_reach_the_writer() {
    let dir = scratch("denied");
    let logger = logger(&dir, |c| {
        c.addresses = zring::AddressLists::parse(&["10.0.0.0/8"], &[] as &[&str]).unwrap();
    });
    let node = Node::connect(&logger, "worker-1");
    node.send_batch(&conn_batch_a());
    wait_for(&logger, "the refusal", 10, |s| s.socket.access_denied >= 1);
    std::thread::sleep(Duration::from_millis(200));
    let stats = logger.stats();
    assert_eq!(
        (stats.batches, stats.socket.handshakes),
        (0, 0),
        "{stats:?}"
    );
    assert!(!dir.join("conn.log").exists());
}
