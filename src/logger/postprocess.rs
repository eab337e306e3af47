//! The rotation postprocessor: a command run on each rotated file, as
//! Zeek runs `Log::default_rotation_postprocessor_cmd` (zeekctl's
//! `archive-log`, which moves rotated logs into dated archive directories).
//!
//! Zeek's `run_rotation_postprocessor_cmd`
//! (`scripts/base/frameworks/logging/main.zeek`) builds the command line
//! `CMD "<rotated file>" "<path>" <open> <close> <terminating> <writer>`,
//! quoting the two names with `safe_shell_quote`, the times as
//! `%y-%m-%d_%H.%M.%S` in local time, `terminating` as 1 or 0, and the
//! writer as `ascii`; `system_env` runs it through `sh` in the background
//! with `ZEEK_ARG_<KEY>` set for each entry of
//! `Log::default_rotation_postprocessor_cmd_env`. The rotated file's name
//! is as the writer renamed it, relative to the process's working
//! directory, which for a logger node is its log directory. Here the same
//! line runs with the log directory as working directory, on a few worker
//! threads fed by a bounded queue, so a slow or hanging command never holds
//! up the writer; each run's result is counted and its output logged.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::naming::postprocessor_time;

/// Commands that may run at once (Zeek starts them all at once, each in
/// the background; a few at a time bounds the processes a rotation of many
/// paths starts).
pub const WORKERS: usize = 4;

/// Rotated files waiting for a worker; one more is not postprocessed, and
/// is counted and logged.
pub const QUEUE: usize = 1024;

/// Lines of a run's output logged; the rest are counted.
const MAX_LINES: usize = 20;

/// What to run, from `--postprocessor` and `--postprocessor-env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostprocessorConfig {
    /// The command, as Zeek's `Log::default_rotation_postprocessor_cmd`:
    /// run by `sh`, so it may carry arguments of its own.
    pub command: String,
    /// Set as `ZEEK_ARG_<KEY>` (the key upper-cased) for each run, as
    /// Zeek's `Log::default_rotation_postprocessor_cmd_env`.
    pub env: Vec<(String, String)>,
}

/// One rotated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The rotated file: relative to the log directory if it is inside it
    /// (as Zeek passes it), else absolute.
    pub file: PathBuf,
    /// The log path, e.g. `conn`.
    pub path: String,
    /// When the file was opened.
    pub opened: SystemTime,
    /// When it was rotated.
    pub closed: SystemTime,
    /// Rotated because the logger is stopping.
    pub terminating: bool,
}

/// How runs ended.
#[derive(Debug, Default)]
pub struct RunCounters {
    /// Exited 0.
    pub ok: AtomicU64,
    /// Exited otherwise, or were killed by a signal.
    pub failed: AtomicU64,
    /// Could not be started at all.
    pub not_started: AtomicU64,
    /// Not run: the queue was full, or the logger stopped first.
    pub dropped: AtomicU64,
}

impl RunCounters {
    /// The counts as `(result, count)`, for metrics.
    pub fn snapshot(&self) -> [(&'static str, u64); 4] {
        [
            ("ok", self.ok.load(Ordering::Relaxed)),
            ("failed", self.failed.load(Ordering::Relaxed)),
            ("not_started", self.not_started.load(Ordering::Relaxed)),
            ("dropped", self.dropped.load(Ordering::Relaxed)),
        ]
    }
}

/// Where rotated files are handed in; cheap to clone.
#[derive(Clone)]
pub struct PostprocessQueue {
    sender: SyncSender<Job>,
    counters: Arc<RunCounters>,
}

impl PostprocessQueue {
    /// Queues `job`; if the queue is full, the file is left as rotated,
    /// counted and logged.
    pub fn submit(&self, job: Job) {
        match self.sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    file = %job.file.display(),
                    "rotation postprocessor not run for this file: {QUEUE} files already wait for it"
                );
            }
        }
    }
}

/// The worker threads.
pub struct Postprocessor {
    queue: Option<PostprocessQueue>,
    workers: Vec<JoinHandle<()>>,
    counters: Arc<RunCounters>,
}

impl Postprocessor {
    /// Starts the workers, which run `config` in `dir`.
    pub fn start(config: PostprocessorConfig, dir: PathBuf) -> io::Result<Postprocessor> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let counters = Arc::new(RunCounters::default());
        let config = Arc::new(config);
        let dir = Arc::new(dir);
        let mut workers = Vec::new();
        for i in 0..WORKERS {
            let (receiver, counters, config, dir) = (
                receiver.clone(),
                counters.clone(),
                config.clone(),
                dir.clone(),
            );
            workers.push(
                std::thread::Builder::new()
                    .name(format!("zring-postproc-{i}"))
                    .spawn(move || work(&receiver, &config, &dir, &counters))?,
            );
        }
        Ok(Postprocessor {
            queue: Some(PostprocessQueue {
                sender,
                counters: counters.clone(),
            }),
            workers,
            counters,
        })
    }

    /// Where to hand in rotated files.
    pub fn queue(&self) -> Option<PostprocessQueue> {
        self.queue.clone()
    }

    /// How runs ended so far.
    pub fn counters(&self) -> Arc<RunCounters> {
        self.counters.clone()
    }

    /// Lets the workers run what is queued (every other queue handle must
    /// be dropped first) and waits for them up to `within`. Runs still
    /// going then are left to finish on their own; returns how many
    /// workers were still busy.
    pub fn finish(mut self, within: Duration) -> usize {
        self.queue = None;
        let deadline = Instant::now() + within;
        while self.workers.iter().any(|w| !w.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let busy = self.workers.iter().filter(|w| !w.is_finished()).count();
        for w in self.workers.drain(..).filter(|w| w.is_finished()) {
            let _ = w.join();
        }
        busy
    }
}

fn work(
    receiver: &Mutex<Receiver<Job>>,
    config: &PostprocessorConfig,
    dir: &Path,
    counters: &RunCounters,
) {
    loop {
        let job = {
            let receiver = receiver.lock().unwrap_or_else(|e| e.into_inner());
            receiver.recv()
        };
        let Ok(job) = job else {
            return; // every sender is gone and the queue is empty
        };
        run(&job, config, dir, counters);
    }
}

fn run(job: &Job, config: &PostprocessorConfig, dir: &Path, counters: &RunCounters) {
    let line = command_line(&config.command, job);
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&line)
        .current_dir(dir)
        .stdin(Stdio::null());
    for (key, value) in &config.env {
        command.env(format!("ZEEK_ARG_{}", key.to_uppercase()), value);
    }
    let file = job.file.display().to_string();
    let output = match command.output() {
        Ok(output) => output,
        Err(e) => {
            counters.not_started.fetch_add(1, Ordering::Relaxed);
            tracing::error!(file, command = %line, "cannot run the rotation postprocessor: {e}");
            return;
        }
    };
    for (text, is_err) in [(&output.stdout, false), (&output.stderr, true)] {
        let text = String::from_utf8_lossy(text);
        let lines: Vec<&str> = text.lines().collect();
        for l in lines.iter().take(MAX_LINES) {
            if is_err {
                tracing::warn!(file, "postprocessor: {l}");
            } else {
                tracing::debug!(file, "postprocessor: {l}");
            }
        }
        if lines.len() > MAX_LINES {
            tracing::debug!(
                file,
                "postprocessor: {} more lines",
                lines.len() - MAX_LINES
            );
        }
    }
    if output.status.success() {
        counters.ok.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(file, "rotation postprocessor done");
    } else {
        counters.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(file, command = %line, "rotation postprocessor failed: {}", output.status);
    }
}

/// The shell command line Zeek's `run_rotation_postprocessor_cmd` builds.
pub fn command_line(command: &str, job: &Job) -> String {
    format!(
        "{command} {} {} {} {} {} ascii",
        shell_quote(&job.file.to_string_lossy()),
        shell_quote(&job.path),
        postprocessor_time(job.opened),
        postprocessor_time(job.closed),
        u8::from(job.terminating),
    )
}

/// Zeek's `safe_shell_quote`: in double quotes, with `` ` ``, `"`, `\` and
/// `$` escaped by a backslash.
pub fn shell_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '`' | '"' | '\\' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logger::naming::{from_local_time, parse_date};

    fn at(date: &str) -> SystemTime {
        from_local_time(&parse_date(date).unwrap()).unwrap()
    }

    /// zeekctl's `archive-log` documents the arguments Zeek passes:
    /// `archive-log conn.2015-01-20-15-23-42.log conn 15-01-20_15.23.42
    /// 15-01-20_16.00.00 0 ascii`; Zeek's script quotes the two names.
    #[test]
    fn the_command_line_is_zeeks() {
        let job = Job {
            file: "conn.2015-01-20-15-23-42.log".into(),
            path: "conn".into(),
            opened: at("2015-01-20-15-23-42"),
            closed: at("2015-01-20-16-00-00"),
            terminating: false,
        };
        assert_eq!(
            command_line("archive-log", &job),
            "archive-log \"conn.2015-01-20-15-23-42.log\" \"conn\" 15-01-20_15.23.42 15-01-20_16.00.00 0 ascii"
        );
        let job = Job {
            terminating: true,
            ..job
        };
        assert!(command_line("/opt/zeek/bin/archive-log -v", &job)
            .starts_with("/opt/zeek/bin/archive-log -v \"conn."));
        assert!(command_line("x", &job).ends_with(" 1 ascii"));
        assert_eq!(shell_quote(r#"a"b$c`d\e f"#), r#""a\"b\$c\`d\\e f""#);
    }

    #[test]
    fn runs_are_counted_and_see_their_arguments_and_environment() {
        let dir = std::env::temp_dir().join(format!("zring-postproc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = PostprocessorConfig {
            // Records its arguments and one variable; fails for `dns`.
            command: "record() { echo \"$@|$ZEEK_ARG_SITE\" >> calls; [ \"$2\" != dns ]; }; record"
                .into(),
            env: vec![("site".into(), "lab 1".into())],
        };
        let post = Postprocessor::start(config, dir.clone()).unwrap();
        let queue = post.queue().unwrap();
        for path in ["conn", "dns", "http"] {
            queue.submit(Job {
                file: format!("{path}.x.log").into(),
                path: path.into(),
                opened: at("2026-11-22-10-00-00"),
                closed: at("2026-11-22-11-00-00"),
                terminating: true,
            });
        }
        drop(queue);
        let counters = post.counters();
        assert_eq!(post.finish(Duration::from_secs(10)), 0);
        let [ok, failed, not_started, dropped] = counters.snapshot().map(|(_, n)| n);
        assert_eq!((ok, failed, not_started, dropped), (2, 1, 0, 0));
        let calls = std::fs::read_to_string(dir.join("calls")).unwrap();
        let mut lines: Vec<&str> = calls.lines().collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "conn.x.log conn 26-11-22_10.00.00 26-11-22_11.00.00 1 ascii|lab 1",
                "dns.x.log dns 26-11-22_10.00.00 26-11-22_11.00.00 1 ascii|lab 1",
                "http.x.log http 26-11-22_10.00.00 26-11-22_11.00.00 1 ascii|lab 1",
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
