//! `zring logger` rotating and archiving as a Zeek logger node does:
//! rotation at shutdown, the rotation postprocessor (Zeek's
//! `Log::default_rotation_postprocessor_cmd`, zeekctl's `archive-log`),
//! the Supervisor's `log-queue` layout for zeek-archiver, and files left by
//! an earlier run rotated under their `#open` times.
//!
//! The postprocessor in these tests is a shell script that records its
//! arguments and environment; the expected arguments follow Zeek's
//! `run_rotation_postprocessor_cmd` (the unit tests in
//! `src/logger/postprocess.rs` hold zeekctl's own example invocation).

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/logger_env.rs"]
mod logger_env;
#[path = "support/ports.rs"]
mod ports;
#[path = "support/zeek_batch.rs"]
mod zeek_batch;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use daemon::Daemon;
use logger_env::{
    assert_exactly_once, free_port, logger, logger_command, scratch, uids_written, wait_for,
    wait_lines, wait_listening, Node, RECORDS,
};
use zring::logger::files::RotationNames;

/// A postprocessor that appends a line per run to `calls`: its arguments,
/// then `|` and `$ZEEK_ARG_SITE`. It fails for path `fail`.
fn recording_postprocessor(dir: &Path) -> (String, PathBuf) {
    let calls = dir.join("calls");
    let script = dir.join("record.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*|$ZEEK_ARG_SITE\" >> {}\n[ \"$2\" != fail ]\n",
            calls.display()
        ),
    )
    .unwrap();
    (format!("sh {}", script.display()), calls)
}

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// `%Y-%m-%d-%H-%M-%S` as the postprocessor gets it: `%y-%m-%d_%H.%M.%S`.
fn short_date(date: &str) -> String {
    let p: Vec<&str> = date.split('-').collect();
    format!(
        "{}-{}-{}_{}.{}.{}",
        &p[0][2..],
        p[1],
        p[2],
        p[3],
        p[4],
        p[5]
    )
}

/// The `#open` date of a rotated ASCII log.
fn open_date(file: &Path) -> String {
    lines(file)
        .iter()
        .find_map(|l| l.strip_prefix("#open\t").map(str::to_owned))
        .unwrap_or_else(|| panic!("{} has no #open", file.display()))
}

fn is_date(s: &str) -> bool {
    s.len() == 19
        && s.chars().enumerate().all(|(i, c)| {
            if [4, 7, 10, 13, 16].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        })
}

#[test]
fn a_stop_rotates_every_path_and_postprocesses_it_as_zeek_does() {
    let dir = scratch("stop-rotation");
    let side = scratch("stop-rotation-side");
    let (command, calls) = recording_postprocessor(&side);
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let mut cmd = logger_command(&endpoint, &dir);
    cmd.args([
        "--postprocessor",
        &command,
        "--postprocessor-env",
        "site=lab 1",
    ]);
    let binary = Daemon::spawn(&mut cmd);
    wait_listening(&endpoint);
    let mut node = Node::connect(&endpoint, 1000, 0);
    for path in ["conn", "dns", "http"] {
        node.send(path);
        node.send(path);
    }
    wait_lines(&dir, node.sent);
    let (status, log) = binary.stop_plain();
    assert!(status.success(), "{status:?}\n{log}");

    // Every path rotated once, nothing left open, every record kept.
    let rotated = names(&dir);
    assert_eq!(rotated.len(), 3, "{rotated:?}");
    assert_exactly_once(&uids_written(&dir), &Node::uids(0, node.next));
    // One run each, with Zeek's arguments: the rotated file (relative to
    // the log directory), the path, open and close times, 1 (stopping),
    // the writer; and the environment from --postprocessor-env.
    let mut runs = lines(&calls);
    runs.sort();
    assert_eq!(runs.len(), 3, "{runs:?}\n{log}");
    for (run, (file, path)) in runs.iter().zip(rotated.iter().zip(["conn", "dns", "http"])) {
        let (args, env) = run.split_once('|').unwrap();
        assert_eq!(env, "lab 1");
        let args: Vec<&str> = args.split(' ').collect();
        let date = file
            .strip_prefix(&format!("{path}."))
            .and_then(|d| d.strip_suffix(".log"))
            .unwrap_or_else(|| panic!("{file} is not {path}.<date>.log"));
        assert!(is_date(date), "{file}");
        assert_eq!(date, open_date(&dir.join(file)), "named by its open time");
        assert_eq!(args.len(), 6, "{run}");
        assert_eq!(
            &args[..3],
            [file.as_str(), path, &short_date(date)],
            "{run}"
        );
        assert_eq!(&args[4..], ["1", "ascii"], "{run}");
    }
    assert!(log.contains("zring logger stopped"), "{log}");
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(side).unwrap();
}

#[test]
fn interval_rotation_under_load_postprocesses_each_file_once() {
    let dir = scratch("interval-post");
    let side = scratch("interval-post-side");
    let (command, calls) = recording_postprocessor(&side);
    let logger = logger(&dir, |c| {
        c.rotate_interval = Some(Duration::from_secs(1));
        c.postprocessor = Some(command);
    });
    let mut nodes: Vec<Node> = (0..3u64)
        .map(|n| Node::connect(logger.endpoint(), 1000, n * 1_000_000))
        .collect();
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(3500) {
        for (n, node) in nodes.iter_mut().enumerate() {
            // The third node's path makes the postprocessor fail.
            node.send(["conn", "dns", "fail"][n]);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let sent: u64 = nodes.iter().map(|n| n.sent).sum();
    wait_for(&logger, "every batch", 20, |s| s.records == sent);
    let stats = logger.shutdown();

    // Everything rotated (the stop rotated the last files), every record
    // in exactly one file.
    let expected: HashSet<String> = nodes
        .iter()
        .flat_map(|n| Node::uids(n.next - n.sent, n.next))
        .collect();
    assert_exactly_once(&uids_written(&dir), &expected);
    let rotated: Vec<String> = names(&dir);
    assert!(
        rotated.len() >= 9,
        "three paths, three rotations at least: {rotated:?}"
    );
    assert!(rotated
        .iter()
        .all(|n| !matches!(n.as_str(), "conn.log" | "dns.log" | "fail.log")));
    // Each rotated file was postprocessed exactly once.
    let mut per_file: BTreeMap<String, u32> = BTreeMap::new();
    for run in lines(&calls) {
        let file = run.split(' ').next().unwrap().to_owned();
        *per_file.entry(file).or_default() += 1;
    }
    assert_eq!(per_file.keys().cloned().collect::<Vec<_>>(), rotated);
    assert!(per_file.values().all(|&n| n == 1), "{per_file:?}");
    // The failing runs were counted and logging went on.
    let fails = rotated.iter().filter(|n| n.starts_with("fail.")).count() as u64;
    assert_eq!(stats.postprocessor_runs.get("failed"), Some(&fails));
    assert_eq!(
        stats.postprocessor_runs.get("ok"),
        Some(&(rotated.len() as u64 - fails))
    );
    assert_eq!(stats.files.rotations, rotated.len() as u64);
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(side).unwrap();
}

#[test]
fn the_supervisor_layout_rotates_into_log_queue_with_archiver_names() {
    let dir = scratch("log-queue");
    let logger = logger(&dir, |c| {
        c.rotate_interval = Some(Duration::from_secs(3600));
        c.rotation_dir = Some("log-queue".into());
        c.rotation_names = RotationNames::Archiver;
        c.archiver_metadata = vec![("log_suffix".into(), "logger-1".into())];
    });
    let mut node = Node::connect(logger.endpoint(), 1000, 0);
    node.send("conn");
    node.send("dns");
    wait_for(&logger, "both batches", 10, |s| s.records == 2 * RECORDS);
    logger.shutdown();
    assert_eq!(names(&dir), ["log-queue"], "nothing left beside it");
    let queue = dir.join("log-queue");
    let rotated = names(&queue);
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    for (name, path) in rotated.iter().zip(["conn", "dns"]) {
        // <path>__<open>__<close>__<metadata>__.log
        let parts: Vec<&str> = name.split("__").collect();
        assert_eq!(parts.len(), 5, "{name}");
        assert_eq!(parts[0], path);
        assert!(is_date(parts[1]) && is_date(parts[2]), "{name}");
        assert_eq!(parts[1], open_date(&queue.join(name)));
        assert!(parts[2] >= parts[1]);
        assert_eq!(&parts[3..], ["log_suffix=logger-1", ".log"]);
    }
    assert_exactly_once(&uids_written(&queue), &Node::uids(0, node.next));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn files_an_earlier_run_left_are_rotated_under_their_open_times() {
    let dir = scratch("leftovers");
    let side = scratch("leftovers-side");
    let (command, calls) = recording_postprocessor(&side);

    // A run that closes its files in place: conn.log, closed.
    let first = logger(&dir, |c| c.rotate_interval = None);
    let mut node = Node::connect(first.endpoint(), 1000, 0);
    node.send("conn");
    wait_for(&first, "a batch", 10, |s| s.records == RECORDS);
    first.shutdown();
    let closed_open = open_date(&dir.join("conn.log"));
    // Out of the way of the next run, which would rotate it at its start.
    std::fs::rename(dir.join("conn.log"), side.join("conn.log")).unwrap();

    // A run that crashes: dns.log, left open with its shadow.
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let mut crashing = Daemon::spawn(&mut logger_command(&endpoint, &dir));
    wait_listening(&endpoint);
    let mut node2 = Node::connect(&endpoint, 1000, RECORDS);
    node2.send("dns");
    wait_lines(&dir, RECORDS);
    crashing.child.kill().unwrap();
    crashing.child.wait().unwrap();
    let unclosed_open = open_date(&dir.join("dns.log"));
    assert!(dir.join(".shadow.dns.log").exists());
    std::fs::rename(side.join("conn.log"), dir.join("conn.log")).unwrap();

    // The next start rotates both before it writes anything, and
    // postprocesses them as rotations that are not a stop.
    std::thread::sleep(Duration::from_millis(1100)); // a later close time
    let next = logger(&dir, |c| {
        c.rotate_interval = Some(Duration::from_secs(3600));
        c.postprocessor = Some(command);
    });
    let stats = next.shutdown();
    assert_eq!(
        (stats.files.leftovers_closed, stats.files.leftovers_unclosed),
        (1, 1)
    );
    assert_eq!(
        names(&dir),
        [
            format!("conn.{closed_open}.log"),
            format!("dns.{unclosed_open}.log")
        ]
    );
    assert_exactly_once(&uids_written(&dir), &Node::uids(0, 2 * RECORDS));
    let mut runs = lines(&calls);
    runs.sort();
    assert_eq!(runs.len(), 2, "{runs:?}");
    for (run, (path, open)) in runs
        .iter()
        .zip([("conn", &closed_open), ("dns", &unclosed_open)])
    {
        let args: Vec<&str> = run.split('|').next().unwrap().split(' ').collect();
        assert_eq!(args[0], format!("{path}.{open}.log"));
        assert_eq!(args[1], path);
        assert_eq!(args[2], short_date(open));
        assert_eq!(&args[4..], ["0", "ascii"], "not a stop: {run}");
    }
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(side).unwrap();
}
