//! `zring logger` under the faults an operator's sensor meets: a full
//! disk, a read-only directory at rotation, a removed directory, a stop
//! while nodes stream, a low file descriptor limit, a restart after a clean
//! stop or a crash. Every test counts records by their unique uids in the
//! files written: each must be there exactly once, on a whole line, or be
//! counted as dropped under a named reason.
//!
//! The faults are real: a small tmpfs mounted by the test, a directory
//! made read-only for a logger running as `nobody`, limits set with
//! `setrlimit` in a child. Those need root (as CI runs); elsewhere the
//! test says why it skips.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/logger_env.rs"]
mod logger_env;
#[path = "support/ports.rs"]
mod ports;
#[allow(dead_code)] // the PUSH side of it only
#[path = "support/raw.rs"]
mod raw;
#[path = "support/zeek_batch.rs"]
mod zeek_batch;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use daemon::{strip_ansi, Daemon};
use logger_env::{
    assert_exactly_once, free_port, logger, logger_command, scratch, uids_written, wait_for,
    wait_lines, wait_listening, Node, RECORDS,
};
use zeek_batch::conn_batch_at;
use zring::logger::{LoggerStats, WriteErrorPolicy};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skips the calling test, saying why, unless running as root.
macro_rules! need_root {
    ($what:expr) => {
        if !is_root() {
            eprintln!("skipped: {} needs root", $what);
            return;
        }
    };
}

/// A tmpfs of `size` mounted on a fresh directory; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Tmpfs {
        let dir = scratch(name);
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount tmpfs on {}", dir.display());
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fills the file system under `dir` with `dir/filler` until only about
/// `leave` bytes are free.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = f.write_all(&chunk) {
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
            break;
        }
    }
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(leave)).unwrap();
    filler
}

#[test]
fn a_full_disk_blocks_pushes_back_and_loses_nothing() {
    need_root!("mounting a small tmpfs");
    // Small queues and socket buffers on both sides, so that what is in
    // flight when the node is pushed back fits the disk once it has room.
    let fs = Tmpfs::mount("full-block", "8m");
    let dir = fs.0.join("logs");
    let logger = logger(&dir, |c| {
        c.on_write_error = WriteErrorPolicy::Block;
        c.rcvhwm = 16;
        c.rcvbuf = Some(64 * 1024);
    });
    let mut node = Node::connect_with(logger.endpoint(), 100, 0, |push| {
        push.set_sndbuf(64 * 1024).unwrap();
    });
    node.send("conn");
    wait_for(&logger, "the first batch", 10, |s| s.records == RECORDS);

    // About 40 KB free: a few batches fit, then one fails part-way.
    let filler = fill(&fs.0, 40 * 1024);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut refused_since: Option<Instant> = None;
    // Send until the node's own queue stays full: the logger stopped
    // reading.
    loop {
        assert!(
            Instant::now() < deadline,
            "never pushed back: {:?}",
            logger.stats()
        );
        if node.try_send("conn") {
            refused_since = None;
        } else {
            let since = *refused_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_millis(500) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Held and retried; batches read wait behind it (until the queue of
    // 16 is full, or the receive buffers they pin run out: either way the
    // logger reads no more, and the node's queue fills).
    wait_for(&logger, "a retry", 10, |s| {
        s.write_errors.get("no_space").is_some_and(|&n| n >= 2) && s.queue_depth > 0
    });
    let stats = logger.stats();
    assert!(stats.write_blocked, "{stats:?}");
    let held = node.sent - stats.records;
    assert!(held > 16 * RECORDS, "only {held} records held back");

    std::fs::remove_file(filler).unwrap();
    wait_for(&logger, "everything sent", 30, |s| s.records == node.sent);
    let stats = logger.shutdown();
    assert!(!stats.write_blocked);
    assert_eq!(stats.records_dropped_count(), 0, "{stats:?}");
    assert_exactly_once(&uids_written(&dir), &Node::uids(0, node.next));
}

#[test]
fn a_full_disk_with_policy_drop_counts_exactly_what_it_drops() {
    need_root!("mounting a small tmpfs");
    let fs = Tmpfs::mount("full-drop", "2m");
    let dir = fs.0.join("logs");
    let logger = logger(&dir, |c| c.on_write_error = WriteErrorPolicy::Drop);
    let mut node = Node::connect(logger.endpoint(), 1000, 0);
    let handled = |s: &LoggerStats| s.records + s.records_dropped_count();
    node.send("conn");
    wait_for(&logger, "the first batch", 10, |s| s.records == RECORDS);
    let filler = fill(&fs.0, 40 * 1024);
    for _ in 0..40 {
        node.send("conn");
    }
    wait_for(&logger, "the batches sent to the full disk", 20, |s| {
        handled(s) == node.sent
    });
    let full = logger.stats();
    assert!(full.records_dropped["write_error"] > 0, "{full:?}");
    assert!(!full.write_blocked);
    std::fs::remove_file(filler).unwrap();
    for _ in 0..20 {
        node.send("conn");
    }
    wait_for(&logger, "the batches after", 20, |s| {
        handled(s) == node.sent
    });
    let stats = logger.shutdown();
    let written = uids_written(&dir);
    assert_eq!(written.len() as u64, stats.records);
    assert_eq!(
        stats.records_dropped_count(),
        node.sent - written.len() as u64,
        "dropped = sent - written: {stats:?}"
    );
    assert!(written.values().all(|&n| n == 1));
    // What came after the disk had room again was all written.
    let after = Node::uids(node.next - 20 * RECORDS, node.next);
    assert!(after.iter().all(|u| written.contains_key(u)));
}

#[test]
fn a_rotation_into_a_read_only_directory_keeps_appending_and_loses_nothing() {
    need_root!("running the logger as nobody");
    let dir = scratch("readonly");
    let nobody = 65534;
    std::os::unix::fs::chown(&dir, Some(nobody), Some(nobody)).unwrap();
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let mut command = logger_command(&endpoint, &dir);
    command
        .args(["--rotate-interval", "1"])
        .uid(nobody)
        .gid(nobody);
    let binary = Daemon::spawn(&mut command);
    wait_listening(&endpoint);
    let mut node = Node::connect(&endpoint, 1000, 0);
    let set_mode = |mode| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // Read-only right after a rotation, once the path's new file is open
    // (so the next rotations, not a file's creation, meet it), for two
    // and a half seconds: two or three rotations fail.
    let rotated_and_reopened = || {
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.iter().any(|n| n.starts_with("conn.2")) && names.iter().any(|n| n == "conn.log")
    };
    let mut read_only_since: Option<Instant> = None;
    let mut writable_since: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while writable_since.is_none_or(|t| t.elapsed() < Duration::from_millis(1500)) {
        assert!(Instant::now() < deadline, "no rotation seen");
        node.send("conn");
        match read_only_since {
            None if rotated_and_reopened() => {
                set_mode(0o555);
                read_only_since = Some(Instant::now());
            }
            Some(t) if writable_since.is_none() && t.elapsed() > Duration::from_millis(2500) => {
                set_mode(0o755);
                writable_since = Some(Instant::now());
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = node.next;
    wait_lines(&dir, sent);
    drop(node);
    let (status, log) = binary.stop_plain();
    assert!(status.success(), "{status:?}\n{log}");
    assert_exactly_once(&uids_written(&dir), &Node::uids(0, sent));
    let failures = log
        .lines()
        .filter(|l| l.contains("rotation failed"))
        .count();
    assert!(
        (1..=4).contains(&failures),
        "{failures} rotation failure lines:\n{log}"
    );
    assert!(log.contains("rotation works again"), "{log}");
    assert!(!log.contains("left open"), "{log}");
}

#[test]
fn a_removed_log_directory_is_made_again_and_written_to() {
    let dir = scratch("removed");
    // Flushing every second too, so that flushes meet removed files.
    let logger = logger(&dir, |c| c.fsync = zring::logger::Fsync::Interval);
    let mut node = Node::connect(logger.endpoint(), 1000, 0);
    node.send("conn");
    wait_for(&logger, "the first batch", 10, |s| s.records == RECORDS);

    // Removed: the logger notices within a second and makes it again.
    std::fs::remove_dir_all(&dir).unwrap();
    wait_for(&logger, "the removal seen", 10, |s| {
        s.files.reopened.get("unlinked") == Some(&1)
    });
    let first_after = node.next;
    node.send("conn");
    wait_for(&logger, "the batch after", 10, |s| s.records == 2 * RECORDS);
    assert_exactly_once(&uids_written(&dir), &Node::uids(first_after, node.next));
    assert_eq!(logger.stats().files.dirs_recreated, 1);

    // Removed and made again by the operator: the new directory is used.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    wait_for(&logger, "the second removal seen", 10, |s| {
        s.files.reopened.get("unlinked") == Some(&2)
    });
    let second_after = node.next;
    node.send("conn");
    let stats = {
        wait_for(&logger, "the last batch", 10, |s| s.records == 3 * RECORDS);
        logger.shutdown()
    };
    assert_exactly_once(&uids_written(&dir), &Node::uids(second_after, node.next));
    assert_eq!(stats.files.dirs_recreated, 1);
    let text = std::fs::read_to_string(dir.join("conn.log")).unwrap();
    assert!(text.starts_with("#separator"), "a new file with its header");
    assert!(text.ends_with('\n') && text.contains("\n#close\t"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sigterm_writes_everything_three_paused_nodes_sent() {
    let dir = scratch("sigterm");
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let mut command = logger_command(&endpoint, &dir);
    // A short queue, so that most of what the nodes sent still waits in
    // socket buffers when the signal comes; a 50 ms coalescing window, so
    // that the writer finds the queue empty now and then while data waits
    // (a logger that stops at the first empty queue loses records here);
    // a linger long enough for a debug build to write it all.
    command.args([
        "--rcvhwm",
        "2",
        "--linger-ms",
        "60000",
        "--coalesce-us",
        "50000",
    ]);
    let binary = Daemon::spawn(&mut command);
    wait_listening(&endpoint);
    let per_node = 40u64;
    let batch_records = 1000u64;
    let senders: Vec<_> = (0..3u64)
        .map(|n| {
            let endpoint = endpoint.clone();
            std::thread::spawn(move || {
                let config = zmtp_codec::SessionConfig::new(zmtp_codec::SocketType::Push);
                let mut conn = raw::Conn::connect(&endpoint, config);
                conn.handshake();
                for b in 0..per_node {
                    let first = (n * per_node + b) * batch_records;
                    let batch = conn_batch_at("conn", first, batch_records);
                    // Blocking writes: when they return, the bytes are
                    // in the kernel, out of the node's hands.
                    conn.send(&[b"log-write", b"worker", b"zeek-bin-serializer", &batch]);
                }
                conn
            })
        })
        .collect();
    // The nodes pause (their connections stay open) and the signal comes.
    let conns: Vec<_> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    let (status, log) = binary.stop_plain();
    assert!(status.success(), "{status:?}\n{log}");
    drop(conns);
    assert_exactly_once(
        &uids_written(&dir),
        &Node::uids(0, 3 * per_node * batch_records),
    );
    assert!(
        !log.contains("stopping after"),
        "it drained, not lingered:\n{log}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The `zring` binary with its file descriptor limit (soft and hard) at
/// `limit`.
fn limited(mut command: Command, limit: u64) -> Command {
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing
    // else of the parent.
    unsafe {
        command.pre_exec(move || {
            let l = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

#[test]
fn a_low_file_descriptor_limit_refuses_impossible_settings_and_counts_what_it_turns_away() {
    need_root!("lowering the hard file descriptor limit of a child");
    let dir = scratch("fdlimit");
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let mut command = limited(logger_command(&endpoint, &dir), 128);
    command.args(["--max-paths", "300"]);
    let out = command.output().unwrap();
    assert!(!out.status.success());
    let stderr = strip_ansi(&String::from_utf8_lossy(&out.stderr));
    assert!(
        stderr.contains("max-paths 300 needs 364 file descriptors") && stderr.contains("is 128"),
        "{stderr}"
    );

    // By default it fits max-paths to the limit (64 here), and node
    // connections beyond the reserve use up descriptors too: paths that
    // cannot be opened are refused and counted, none lost silently.
    let binary = Daemon::spawn(&mut limited(logger_command(&endpoint, &dir), 128));
    wait_listening(&endpoint);
    let mut node = Node::connect(&endpoint, 1000, 0);
    node.send("path0");
    wait_lines(&dir, RECORDS);
    let addr = endpoint.strip_prefix("tcp://").unwrap();
    let idle: Vec<_> = (0..80)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for p in 1..300 {
        node.send(&format!("path{p}"));
    }
    std::thread::sleep(Duration::from_millis(1500));
    drop(idle);
    let sent = node.sent;
    drop(node);
    let (status, log) = binary.stop_plain();
    assert!(status.success(), "{status:?}\n{log}");
    let written = uids_written(&dir);
    assert!(written.values().all(|&n| n == 1));
    let stopped = log
        .lines()
        .find(|l| l.contains("zring logger stopped"))
        .unwrap_or_else(|| panic!("no closing line:\n{log}"));
    let dropped = |reason: &str| -> u64 {
        stopped
            .split(&format!("{reason}="))
            .nth(1)
            .and_then(|rest| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    let turned_away = dropped("too_many_open_files") + dropped("too_many_paths");
    assert!(dropped("too_many_open_files") > 0, "{stopped}\n{log}");
    assert_eq!(written.len() as u64 + turned_away, sent, "{stopped}");
    assert!(log.contains("too_many_open_files"), "logged:\n{log}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_cleanly_closed_file_is_not_taken_for_a_crash() {
    for format in ["ascii", "json"] {
        let dir = scratch(&format!("leftover-{format}"));
        let kind = if format == "json" {
            zring::logger::LogFormatKind::Json
        } else {
            zring::logger::LogFormatKind::Ascii
        };
        let run = |first: u64| {
            let logger = logger(&dir, |c| c.format = kind);
            let mut node = Node::connect(logger.endpoint(), 1000, first);
            node.send("conn");
            wait_for(&logger, "a batch", 10, |s| s.records == RECORDS);
            logger.shutdown()
        };
        run(0);
        assert!(!dir.join(".shadow.conn.log").exists());
        let second = run(RECORDS);
        assert_eq!(
            (
                second.files.leftovers_closed,
                second.files.leftovers_unclosed
            ),
            (1, 0),
            "{format}"
        );

        // A crash (SIGKILL) leaves the file open, with its shadow.
        let endpoint = format!("tcp://127.0.0.1:{}", free_port());
        let mut command = logger_command(&endpoint, &dir);
        command.args(["--format", format]);
        let mut binary = Daemon::spawn(&mut command);
        wait_listening(&endpoint);
        let mut node = Node::connect(&endpoint, 1000, 2 * RECORDS);
        node.send("conn");
        wait_lines(&dir, 3 * RECORDS);
        binary.child.kill().unwrap();
        binary.child.wait().unwrap();
        assert!(dir.join(".shadow.conn.log").exists());
        let third = run(3 * RECORDS);
        assert_eq!(
            (third.files.leftovers_closed, third.files.leftovers_unclosed),
            (0, 1),
            "{format}"
        );
        // Nothing was lost on the way: three runs' files, moved aside,
        // and the last one's.
        assert_exactly_once(&uids_written(&dir), &Node::uids(0, 4 * RECORDS));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
