//! What the logger's end-to-end tests share: a libzmq context for the
//! nodes, scratch directories, a logger started on one, and waiting for
//! its counters.
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zring::logger::{Logger, LoggerConfig, LoggerStats};

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
