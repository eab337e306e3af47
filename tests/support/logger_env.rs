//! What the logger's end-to-end tests share: a libzmq context for the
//! nodes, scratch directories, a logger started on one, and waiting for
//! its counters.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::zeek_batch::{conn_batch_at, conn_uid, CONN_FIELDS};
use zring::logger::{Logger, LoggerConfig, LoggerStats};

/// Records in each batch a [`Node`] sends.
pub const RECORDS: u64 = 50;

/// One libzmq context for every node of a test binary.
pub fn zmq_ctx() -> &'static zmq::Context {
    static CTX: std::sync::OnceLock<zmq::Context> = std::sync::OnceLock::new();
    CTX.get_or_init(zmq::Context::new)
}

/// A fresh, empty directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zring-logger-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A logger writing into `dir`, on a port of its own, not rotating
/// unless `edit` says so.
pub fn logger(dir: &Path, edit: impl FnOnce(&mut LoggerConfig)) -> Logger {
    let mut config = LoggerConfig::new("tcp://127.0.0.1:*");
    config.dir = dir.to_owned();
    config.rotate_interval = None;
    edit(&mut config);
    Logger::start(config).expect("logger starts")
}

/// Waits up to `secs` for the logger's counters to satisfy `done`.
pub fn wait_for(logger: &Logger, what: &str, secs: u64, done: impl Fn(&LoggerStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let stats = logger.stats();
        if done(&stats) {
            return;
        }
        assert!(Instant::now() < deadline, "waited for {what}: {stats:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A Zeek node's log PUSH socket (libzmq 4.3.4), sending `conn`-like
/// batches of [`RECORDS`] records with uids never sent before.
pub struct Node {
    pub push: zmq::Socket,
    /// The next record's number.
    pub next: u64,
    /// Records sent.
    pub sent: u64,
}

impl Node {
    pub fn connect(endpoint: &str, sndhwm: i32, first: u64) -> Node {
        Node::connect_with(endpoint, sndhwm, first, |_| {})
    }

    pub fn connect_with(
        endpoint: &str,
        sndhwm: i32,
        first: u64,
        edit: impl FnOnce(&zmq::Socket),
    ) -> Node {
        let push = zmq_ctx().socket(zmq::PUSH).unwrap();
        push.set_sndhwm(sndhwm).unwrap();
        edit(&push);
        push.set_linger(0).unwrap();
        push.connect(endpoint).unwrap();
        Node {
            push,
            next: first,
            sent: 0,
        }
    }

    fn frames(&self, path: &str) -> Vec<Vec<u8>> {
        vec![
            b"log-write".to_vec(),
            b"worker-1".to_vec(),
            b"zeek-bin-serializer".to_vec(),
            conn_batch_at(path, self.next, RECORDS),
        ]
    }

    /// Sends one batch; false if the PUSH socket is full (pushed back).
    pub fn try_send(&mut self, path: &str) -> bool {
        match self.push.send_multipart(self.frames(path), zmq::DONTWAIT) {
            Ok(()) => {
                self.next += RECORDS;
                self.sent += RECORDS;
                true
            }
            Err(zmq::Error::EAGAIN) => false,
            Err(e) => panic!("send: {e}"),
        }
    }

    pub fn send(&mut self, path: &str) {
        self.push.send_multipart(self.frames(path), 0).unwrap();
        self.next += RECORDS;
        self.sent += RECORDS;
    }

    /// The uids of everything sent so far, from `first`.
    pub fn uids(first: u64, last: u64) -> HashSet<String> {
        (first..last).map(conn_uid).collect()
    }
}

/// Every record line in the `.log` files under `dir`: checks that each is
/// whole (all of the conn schema's fields) and each file ends with a
/// newline, and returns the uids with how often each was seen.
pub fn uids_written(dir: &Path) -> BTreeMap<String, u32> {
    let mut seen = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".log") || name.starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{name} ends inside a line"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let uid = if line.starts_with('{') {
                // JSON: one whole object a line, starting with ts and uid.
                assert!(line.ends_with('}'), "torn line in {name}: {line:?}");
                assert!(
                    line.contains(",\"resp_ip_bytes\":"),
                    "torn line in {name}: {line:?}"
                );
                let rest = line.split_once(",\"uid\":\"").expect("a uid").1;
                rest.split_once('"').expect("a whole uid").0
            } else {
                let fields: Vec<&str> = line.split('\t').collect();
                assert_eq!(
                    fields.len(),
                    CONN_FIELDS.len(),
                    "torn line in {name}: {line:?}"
                );
                fields[1]
            };
            *seen.entry(uid.to_owned()).or_insert(0) += 1;
        }
    }
    seen
}

/// Waits until the `.log` files under `dir` hold `records` record lines
/// (counted loosely: files may be renamed or written meanwhile).
pub fn wait_lines(dir: &Path, records: u64) {
    let count = || -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .filter_map(|e| e.ok())
            // Not the shadow files.
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|t| t.lines().filter(|l| !l.starts_with('#')).count() as u64)
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while count() < records {
        assert!(
            Instant::now() < deadline,
            "{} of {records} records written",
            count()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that `written` holds exactly the uids `expected`, once each.
pub fn assert_exactly_once(written: &BTreeMap<String, u32>, expected: &HashSet<String>) {
    let twice: Vec<_> = written.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "written more than once: {twice:?}");
    let missing = expected
        .iter()
        .filter(|u| !written.contains_key(*u))
        .count();
    let extra = written.keys().filter(|u| !expected.contains(*u)).count();
    assert_eq!(
        (missing, extra),
        (0, 0),
        "{} written, {} expected",
        written.len(),
        expected.len()
    );
}

pub fn free_port() -> u16 {
    crate::ports::unused_port()
}

pub fn logger_command(endpoint: &str, dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zring"));
    c.args(["logger", "--listen", endpoint])
        .arg("--dir")
        .arg(dir);
    c
}

/// Waits until `endpoint` accepts connections.
pub fn wait_listening(endpoint: &str) {
    let addr = endpoint.strip_prefix("tcp://").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{endpoint} never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
}
