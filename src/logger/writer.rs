//! The writer thread: takes batches from the PULL socket's queue, formats
//! and stages them in their files, writes what is staged, and decides what
//! a failing file system and a stop cost.
//!
//! - Batches are staged per file and written together: when the queue is
//!   empty (before the writer waits), when [`FLUSH_AT`] bytes are staged,
//!   and at each tick, rotation and close. Real batches hold two or three
//!   records; a write call per batch was a third of the logger's CPU.
//! - What the file system refuses is, by default
//!   ([`WriteErrorPolicy::Block`]), kept and written again with backoff
//!   while the writer reads nothing more: the socket's queue fills, its
//!   NODROP reactor stops reading, and TCP pushes back on the nodes, as a
//!   slow disk does. With [`WriteErrorPolicy::Drop`] it is dropped and
//!   counted.
//! - A stop closes the listener, then reads on until the nodes have been
//!   quiet for the drain time (or the linger time is up), so that what
//!   they already sent is written.
//! - Once a second the open files' names are checked, and with
//!   `--fsync interval` their data flushed to the disk.
//! - The counters are the writer's own, published to [`Logger::stats`]
//!   when the queue runs empty and at least every [`PUBLISH`], not locked
//!   per batch.
//!
//! [`Logger::stats`]: super::Logger::stats

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use zmtp_codec::Message;

use super::batch::{self, HeaderCache};
use super::config::WriteErrorPolicy;
use super::files::{self, Fsync, LogFiles, WriteError};
use super::logfile::Flushed;
use super::outage::{Outages, Report};
use super::postprocess::Postprocessor;
use super::stats::LoggerStats;
use super::{lock, printable};
use crate::{Context, Error, Socket, Wait};

/// Distinct (node, reason) pairs whose first rejection was logged; later
/// ones are only counted.
const MAX_WARNED: usize = 4096;

/// How often the open files' names are checked (and, with `--fsync
/// interval`, their data flushed).
const TICK: Duration = Duration::from_secs(1);

/// The longest the writer waits without looking at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// At a stop, how long the postprocessors of the last rotations may run
/// before the logger exits without them.
const POSTPROCESS_WAIT: Duration = Duration::from_secs(30);

/// Staged bytes that are written at once, without waiting for the queue
/// to run empty: bounds the memory staged and the delay under a steady
/// stream.
const FLUSH_AT: u64 = 256 * 1024;

/// Batches taken from the queue in a row, before the loop looks at its
/// clocks, the stop flag and rotation again.
const BURST: usize = 64;

/// The longest the shared counters lag behind the writer's own.
const PUBLISH: Duration = Duration::from_millis(50);

/// Node ids whose printable names are kept; more empty the map.
const MAX_NODE_NAMES: usize = 4096;

/// The writer's settings, from [`super::LoggerConfig`].
pub(crate) struct WriterSettings {
    pub rotate_interval: Option<Duration>,
    pub on_write_error: WriteErrorPolicy,
    pub fsync: Fsync,
    pub rotate_on_shutdown: bool,
    pub drain: Duration,
    pub linger: Duration,
}

/// A stop in progress.
struct Stopping {
    /// When to stop reading, whatever still arrives.
    deadline: Instant,
    /// The last time a batch arrived (or the stop began).
    last_input: Instant,
}

pub(crate) struct Writer {
    // Dropped before the context (field order): the reactors outlive it.
    pub pull: Socket,
    pub _ctx: Context,
    pub files: LogFiles,
    /// Shared with [`super::Logger`]: a copy of `counts`, published.
    pub stats: Arc<Mutex<LoggerStats>>,
    pub stop: Arc<AtomicBool>,
    /// Set by [`super::Logger::reopen_files`]: check the files' names now.
    pub reopen: Arc<AtomicBool>,
    pub settings: WriterSettings,
    pub postprocessor: Option<Postprocessor>,
    /// The writer's own counters.
    pub counts: LoggerStats,
    pub published: Instant,
    pub warned: HashSet<(String, &'static str)>,
    pub outages: Outages,
    /// A batch whose file could not be created, to be written again
    /// ([`WriteErrorPolicy::Block`]).
    pub held: Option<Message>,
    /// Staged batches could not be written ([`WriteErrorPolicy::Block`]):
    /// they are written again before anything else.
    pub unflushed: bool,
    /// The last rotation left files unrotated.
    pub rotation_failing: bool,
    /// The last flush to the disk (`--fsync interval`) failed.
    pub sync_failing: bool,
    /// Headers already parsed, by their bytes.
    pub headers: HeaderCache,
    /// Node ids as logs and labels show them, by their bytes.
    pub node_names: HashMap<Bytes, Arc<str>>,
}

impl Writer {
    /// Writes what arrives until the logger stops: batches into files,
    /// rotations when due, the outage policy while writes fail.
    pub(crate) fn run(&mut self) {
        let mut next_rotation = self
            .settings
            .rotate_interval
            .map(|i| files::next_rotation(SystemTime::now(), i));
        let mut next_tick = Instant::now() + TICK;
        let mut stopping: Option<Stopping> = None;
        let lingered = loop {
            let now = Instant::now();
            let wall = SystemTime::now();
            if stopping.is_none() && self.stop.load(Ordering::Relaxed) {
                self.pull.stop_accepting();
                tracing::info!(
                    drain_ms = self.settings.drain.as_millis() as u64,
                    linger_ms = self.settings.linger.as_millis() as u64,
                    "stopping: accepting no new connections, writing what the nodes already sent"
                );
                stopping = Some(Stopping {
                    deadline: now + self.settings.linger,
                    last_input: now,
                });
            }
            if let (Some(at), Some(interval)) = (next_rotation, self.settings.rotate_interval) {
                if wall >= at {
                    self.rotate_all(wall);
                    next_rotation = Some(files::next_rotation(wall, interval));
                }
            }
            if self.reopen.swap(false, Ordering::Relaxed) {
                // A reload (SIGHUP): a log shipper that renamed files wants
                // them closed now, not within the next check's second.
                tracing::info!("reopening log files whose names were moved or removed");
                next_tick = now;
            }
            if now >= next_tick {
                self.tick(wall);
                next_tick = now + TICK;
            }
            let blocked = self.held.is_some() || self.unflushed;
            let mut wake = next_tick.min(now + STOP_POLL);
            if let Some(at) = next_rotation {
                wake = wake.min(now + at.duration_since(wall).unwrap_or_default());
            }
            if let Some(s) = &stopping {
                let quiet = now.saturating_duration_since(s.last_input) >= self.settings.drain;
                if quiet && !blocked && self.pull.queued() == 0 {
                    break false;
                }
                if now >= s.deadline {
                    break true;
                }
                wake = wake.min(s.deadline).min(s.last_input + self.settings.drain);
            }
            if blocked {
                let retry = self.outages.retry_at().unwrap_or(now);
                if now >= retry {
                    self.retry(wall);
                    // The queue fills meanwhile: show it.
                    self.publish();
                } else {
                    std::thread::sleep(retry.min(wake).saturating_duration_since(now));
                }
                continue;
            }
            if self.pull.queued() == 0 {
                // About to wait: write what is staged, show the counters.
                self.flush();
                if self.unflushed {
                    continue;
                }
                self.publish();
            } else if now.saturating_duration_since(self.published) >= PUBLISH {
                self.publish();
            }
            match self
                .pull
                .recv(Wait::Timeout(wake.saturating_duration_since(now)))
            {
                Ok(message) => {
                    if let Some(s) = &mut stopping {
                        s.last_input = Instant::now();
                    }
                    self.handle(message, wall);
                    // What else is queued, without this loop's clocks and
                    // checks for each batch.
                    for _ in 1..BURST {
                        if self.held.is_some() || self.files.staged_bytes() >= FLUSH_AT {
                            break;
                        }
                        match self.pull.recv(Wait::DontWait) {
                            Ok(message) => self.handle(message, wall),
                            Err(_) => break,
                        }
                    }
                    if self.files.staged_bytes() >= FLUSH_AT {
                        self.flush();
                    }
                }
                Err(Error::WouldBlock | Error::TimedOut) => {}
                Err(e) => {
                    tracing::error!("receiving log batches failed: {e}");
                    std::thread::sleep(STOP_POLL);
                }
            }
        };
        if lingered {
            self.finish_after_linger();
        }
        // Zeek's logger rotates at shutdown when it rotates at all.
        let rotate = self.settings.rotate_on_shutdown && self.settings.rotate_interval.is_some();
        let (errors, dropped) = self.files.close_all(SystemTime::now(), rotate);
        self.account_written();
        for e in &errors {
            tracing::error!("closing a log file failed: {e}");
            self.count_write_error(e);
        }
        if dropped.batches > 0 {
            tracing::error!(
                batches = dropped.batches,
                records = dropped.records,
                "stopping: these batches were received and could not be written"
            );
            *self.counts.records_dropped.entry("shutdown").or_default() += dropped.records;
        }
        // Whatever could not be written was dropped above.
        self.unflushed = false;
        self.files.set_postprocess(None);
        if let Some(post) = self.postprocessor.take() {
            let counters = post.counters();
            let busy = post.finish(POSTPROCESS_WAIT);
            if busy > 0 {
                tracing::warn!(
                    busy,
                    "stopping while rotation postprocessors still run after {POSTPROCESS_WAIT:?}; \
                     they go on without the logger"
                );
            }
            self.counts.postprocessor_runs = counters.snapshot().into_iter().collect();
        }
        self.publish();
    }

    /// The linger time is up while nodes still send or writes still fail:
    /// write what is queued now if writes work, and count what is not
    /// written.
    fn finish_after_linger(&mut self) {
        let queued = self.pull.queued();
        tracing::warn!(
            queued,
            writes_failing = self.outages.is_on(),
            "stopping after {:?}: nodes were still sending, or writes still failing",
            self.settings.linger
        );
        let wall = SystemTime::now();
        // One last try.
        self.retry(wall);
        let mut dropped = Flushed::default();
        for _ in 0..queued {
            let Ok(message) = self.pull.recv(Wait::DontWait) else {
                break;
            };
            if self.held.is_none() && !self.unflushed {
                self.handle(message, wall);
            } else {
                dropped.batches += 1;
                dropped.records += records_in(&message);
            }
        }
        if let Some(message) = self.held.take() {
            dropped.batches += 1;
            dropped.records += records_in(&message);
        }
        if dropped.batches > 0 {
            tracing::error!(
                batches = dropped.batches,
                records = dropped.records,
                "stopping while writes fail: these batches were received and are not written"
            );
            *self.counts.records_dropped.entry("shutdown").or_default() += dropped.records;
        }
    }

    /// Blocked: writes what is staged again, then the held batch.
    fn retry(&mut self, wall: SystemTime) {
        if self.unflushed {
            self.flush();
            if self.unflushed {
                return;
            }
        }
        if let Some(message) = self.held.take() {
            self.handle(message, wall);
        }
    }

    /// Writes what is staged; a file that refuses is the write-error
    /// policy's.
    fn flush(&mut self) {
        let failed = self.files.flush();
        self.account_written();
        let Some((first, _)) = failed.first() else {
            self.unflushed = false;
            return;
        };
        for (e, _) in &failed {
            self.count_write_error(e);
        }
        let report = self.outages.failed(Instant::now());
        self.report_failure(report, first);
        match self.settings.on_write_error {
            WriteErrorPolicy::Block => self.unflushed = true,
            WriteErrorPolicy::Drop => {
                let dropped = self.files.discard_staged();
                *self
                    .counts
                    .records_dropped
                    .entry("write_error")
                    .or_default() += dropped.records;
            }
        }
    }

    /// Counts what the files wrote (flushes, rotations, closes); a write
    /// that worked ends an outage.
    fn account_written(&mut self) {
        let written = self.files.take_written();
        if written.is_empty() {
            return;
        }
        if self.outages.is_on() {
            if let Some(ended) = self.outages.succeeded(Instant::now()) {
                tracing::info!(
                    failed_attempts = ended.failures,
                    lasted_ms = ended.lasted.as_millis() as u64,
                    "writing logs works again after {:.1} s",
                    ended.lasted.as_secs_f64()
                );
            }
        }
        let c = &mut self.counts;
        for (path, done) in written {
            c.batches += done.batches;
            c.records += done.records;
            c.bytes_written += done.bytes;
            let t = LoggerStats::tally(&mut c.paths, &path);
            t.batches += done.batches;
            t.records += done.records;
            t.bytes += done.bytes;
        }
    }

    fn rotate_all(&mut self, now: SystemTime) {
        // A name that leads elsewhere now must not be renamed.
        self.check_names(now);
        let open = self.files.open_paths();
        let errors = self.files.rotate_all(now);
        self.account_written();
        for e in &errors {
            self.count_write_error(e);
        }
        match errors.first() {
            Some(first) => {
                tracing::error!(
                    failed = errors.len(),
                    open,
                    "rotation failed: {first}; the files that were not rotated stay open and \
                     are appended to, and are rotated at the next interval"
                );
                self.rotation_failing = true;
            }
            None if self.rotation_failing => {
                tracing::info!("rotation works again");
                self.rotation_failing = false;
            }
            None => {}
        }
    }

    /// Once a second: staged batches written, names still leading to the
    /// open files, flushes to the disk (`--fsync interval`), counters.
    fn tick(&mut self, now: SystemTime) {
        if !self.unflushed {
            self.flush();
        }
        self.check_names(now);
        if self.settings.fsync == Fsync::Interval {
            let errors = self.files.sync_all();
            for e in &errors {
                self.count_write_error(e);
            }
            match errors.first() {
                Some(first) if !self.sync_failing => {
                    tracing::error!(failed = errors.len(), "flushing log files failed: {first}");
                    self.sync_failing = true;
                }
                None if self.sync_failing => {
                    tracing::info!("flushing log files works again");
                    self.sync_failing = false;
                }
                _ => {}
            }
        }
        self.publish();
    }

    /// Closes the open files whose names no longer lead to them, saying
    /// which.
    fn check_names(&mut self, now: SystemTime) {
        for r in self.files.check_names(now) {
            let what = match r.health {
                files::Health::Unlinked => {
                    "was removed while open; what was written to it since is lost"
                }
                files::Health::Replaced => "was replaced by another file while open",
                files::Health::Missing => {
                    "was moved away while open (its directory moved or removed); it was closed where it is"
                }
                files::Health::Fine => continue,
            };
            tracing::warn!(
                file = %r.file.display(),
                path = %r.path,
                "log file {what}; the path's next batch starts a new file"
            );
        }
        self.account_written();
    }

    /// Copies the writer's counters, with the gauges, where
    /// [`super::Logger::stats`] reads them.
    fn publish(&mut self) {
        let c = &mut self.counts;
        c.write_blocked = self.held.is_some() || self.unflushed;
        c.socket = self.pull.stats();
        c.queue_depth = self.pull.queued() as u64;
        c.open_files = self.files.open_paths() as u64;
        if c.files != *self.files.counters() {
            c.files = self.files.counters().clone();
        }
        if let Some(post) = &self.postprocessor {
            c.postprocessor_runs = post.counters().snapshot().into_iter().collect();
        }
        lock(&self.stats).clone_from(c);
        self.published = Instant::now();
    }

    fn count_write_error(&mut self, e: &WriteError) {
        *self.counts.write_errors.entry(e.reason()).or_default() += 1;
    }

    fn report_failure(&self, report: Report, e: &WriteError) {
        let block = self.settings.on_write_error == WriteErrorPolicy::Block;
        match report {
            Report::Started if block => tracing::error!(
                reason = e.reason(),
                "writing logs failed: {e}; keeping what is not written and reading nothing more \
                 from the nodes (they are pushed back) until it is; retrying \
                 (on-write-error=block)"
            ),
            Report::Started => tracing::error!(
                reason = e.reason(),
                "writing logs failed: {e}; dropping batches while writes fail (on-write-error=drop)"
            ),
            Report::Reminder { failures, lasted } => tracing::warn!(
                reason = e.reason(),
                failures,
                "writing logs still fails after {:.0} s: {e}",
                lasted.as_secs_f64()
            ),
            Report::Quiet => tracing::debug!("writing logs failed again: {e}"),
        }
    }

    /// A node id as logs and labels show it, made once per node.
    fn node_name(&mut self, id: Option<Bytes>) -> Arc<str> {
        let Some(id) = id else {
            return Arc::from("(none)");
        };
        if let Some(name) = self.node_names.get(&id) {
            return name.clone();
        }
        if self.node_names.len() >= MAX_NODE_NAMES {
            self.node_names.clear();
        }
        let name: Arc<str> = Arc::from(printable(&id));
        self.node_names.insert(id, name.clone());
        name
    }

    /// One `log-write` message: frames `log-write`, node id, serializer
    /// name, batch (contract §3.3). Frame 0 is not checked, as in Zeek.
    fn handle(&mut self, message: Message, now: SystemTime) {
        let node = self.node_name(message.frame(1));
        if message.frame_count() != 4 {
            let why = format!(
                "a log-write message has 4 frames, this one has {}",
                message.frame_count()
            );
            return self.reject("frame_count", &node, &why, 0);
        }
        let serializer = message.frame(2).expect("4 frames");
        if serializer != batch::SERIALIZER_NAME {
            let why = format!(
                "log serializer `{}` is not `zeek-bin-serializer`",
                printable(&serializer)
            );
            return self.reject("unknown_serializer", &node, &why, 0);
        }
        let frame = message.frame(3).expect("4 frames");
        let parsed = match batch::Batch::parse_cached(frame, &mut self.headers) {
            Ok(b) => b,
            Err(e) => return self.reject(e.reason(), &node, &e.to_string(), 0),
        };
        match self.files.write(&parsed, now) {
            Ok(staged) => {
                // Taken from the node: written, or staged to be.
                let from = LoggerStats::tally(&mut self.counts.nodes, &node);
                from.batches += 1;
                from.records += staged.records;
            }
            Err(e) if e.is_io() => {
                // The file could not be made (or rotated for a new schema).
                self.count_write_error(&e);
                let records = u64::from(parsed.num_records());
                drop(parsed);
                let report = self.outages.failed(Instant::now());
                self.report_failure(report, &e);
                match self.settings.on_write_error {
                    WriteErrorPolicy::Block => self.held = Some(message),
                    WriteErrorPolicy::Drop => {
                        *self
                            .counts
                            .records_dropped
                            .entry("write_error")
                            .or_default() += records;
                    }
                }
            }
            Err(e) => {
                let records = match e {
                    // The batch is sound; the logger cannot take it.
                    WriteError::TooManyPaths { .. } | WriteError::TooManyOpenFiles { .. } => {
                        u64::from(parsed.num_records())
                    }
                    _ => 0,
                };
                self.reject(e.reason(), &node, &e.to_string(), records)
            }
        }
    }

    /// Counts a refused message (and its `records`, if it was a sound
    /// batch the logger could not take), and logs the first of each node
    /// and reason.
    fn reject(&mut self, reason: &'static str, node: &str, why: &str, records: u64) {
        self.counts.reject(reason, node);
        if records > 0 {
            *self.counts.records_dropped.entry(reason).or_default() += records;
        }
        let key = (node.to_owned(), reason);
        if self.warned.len() < MAX_WARNED && self.warned.insert(key) {
            tracing::warn!(
                node,
                reason,
                "log batch rejected: {why} (further `{reason}` rejections from this node are only counted)"
            );
        } else {
            tracing::debug!(node, reason, "log batch rejected: {why}");
        }
    }
}

/// Records in a log-write message's batch, as its header announces them
/// (0 if it has none that decodes).
fn records_in(message: &Message) -> u64 {
    message
        .frame(3)
        .and_then(|b| batch::Batch::parse(b).ok())
        .map_or(0, |b| u64::from(b.num_records()))
}
