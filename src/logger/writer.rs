//! The writer thread: takes batches from the PULL socket's queue, writes
//! them, and decides what a failing file system and a stop cost.
//!
//! - A batch the file system refuses is, by default
//!   ([`WriteErrorPolicy::Block`]), held and written again with backoff
//!   while the writer reads nothing more: the socket's queue fills, its
//!   NODROP reactor stops reading, and TCP pushes back on the nodes, as a
//!   slow disk does. With [`WriteErrorPolicy::Drop`] it is dropped and
//!   counted.
//! - A stop closes the listener, then reads on until the nodes have been
//!   quiet for the drain time (or the linger time is up), so that what
//!   they already sent is written.
//! - Once a second the open files' names are checked, and with
//!   `--fsync interval` their data flushed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use zmtp_codec::Message;

use super::batch;
use super::config::WriteErrorPolicy;
use super::files::{self, Fsync, LogFiles, WriteError};
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
    pub stats: Arc<Mutex<LoggerStats>>,
    pub stop: Arc<AtomicBool>,
    pub settings: WriterSettings,
    pub warned: HashSet<(String, &'static str)>,
    pub outages: Outages,
    /// A batch the file system refused, to be written again
    /// ([`WriteErrorPolicy::Block`]); nothing is read while it waits.
    pub held: Option<Message>,
    /// The last rotation left files unrotated.
    pub rotation_failing: bool,
    /// The last flush (`--fsync interval`) failed.
    pub sync_failing: bool,
    /// Runs the rotation postprocessor, if one is set.
    pub postprocessor: Option<Postprocessor>,
}

impl Writer {
    pub fn run(&mut self) {
        let mut next_rotation = self
            .settings
            .rotate_interval
            .map(|i| files::next_rotation(SystemTime::now(), i));
        let mut next_tick = Instant::now() + TICK;
        let mut stopping: Option<Stopping> = None;
        let finished_early = loop {
            let now = Instant::now();
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
                let wall = SystemTime::now();
                if wall >= at {
                    self.rotate_all(wall);
                    next_rotation = Some(files::next_rotation(wall, interval));
                }
            }
            if now >= next_tick {
                self.tick();
                next_tick = now + TICK;
            }
            let mut wake = next_tick.min(now + STOP_POLL);
            if let Some(at) = next_rotation {
                let until = at.duration_since(SystemTime::now()).unwrap_or_default();
                wake = wake.min(now + until);
            }
            if let Some(s) = &stopping {
                let quiet = now.saturating_duration_since(s.last_input) >= self.settings.drain;
                if quiet && self.held.is_none() && self.pull.queued() == 0 {
                    break false;
                }
                if now >= s.deadline {
                    break true;
                }
                wake = wake.min(s.deadline).min(s.last_input + self.settings.drain);
            }
            if self.held.is_some() {
                let retry = self.outages.retry_at().unwrap_or(now);
                if now >= retry {
                    let message = self.held.take().expect("checked");
                    self.handle(message);
                    // The queue fills while it is held: show it.
                    self.refresh_gauges();
                } else {
                    std::thread::sleep(retry.min(wake).saturating_duration_since(now));
                }
                continue;
            }
            match self
                .pull
                .recv(Wait::Timeout(wake.saturating_duration_since(now)))
            {
                Ok(message) => {
                    if let Some(s) = &mut stopping {
                        s.last_input = Instant::now();
                    }
                    self.handle(message);
                }
                Err(Error::WouldBlock | Error::TimedOut) => {}
                Err(e) => {
                    tracing::error!("receiving log batches failed: {e}");
                    std::thread::sleep(STOP_POLL);
                }
            }
        };
        if finished_early {
            self.finish_after_linger();
        }
        // Zeek's logger rotates at shutdown when it rotates at all.
        let rotate = self.settings.rotate_on_shutdown && self.settings.rotate_interval.is_some();
        let errors = self.files.close_all(SystemTime::now(), rotate);
        for e in &errors {
            tracing::error!("closing a log file failed: {e}");
            self.count_write_error(e);
        }
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
            lock(&self.stats).postprocessor_runs = counters.snapshot().into_iter().collect();
        }
        self.refresh_gauges();
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
        if let Some(message) = self.held.take() {
            // One last try.
            self.handle(message);
        }
        let mut dropped = (0u64, 0u64);
        for _ in 0..queued {
            let Ok(message) = self.pull.recv(Wait::DontWait) else {
                break;
            };
            if self.held.is_none() {
                self.handle(message);
            } else {
                dropped.0 += 1;
                dropped.1 += records_in(&message);
            }
        }
        if let Some(message) = self.held.take() {
            dropped.0 += 1;
            dropped.1 += records_in(&message);
        }
        if dropped.0 > 0 {
            tracing::error!(
                batches = dropped.0,
                records = dropped.1,
                "stopping while writes fail: these batches were received and are not written"
            );
            let mut stats = lock(&self.stats);
            *stats.records_dropped.entry("shutdown").or_default() += dropped.1;
            stats.write_blocked = false;
        }
    }

    fn rotate_all(&mut self, now: SystemTime) {
        // A name that leads elsewhere now must not be renamed.
        self.check_names();
        let open = self.files.open_paths();
        let errors = self.files.rotate_all(now);
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

    /// Once a second: names still leading to the open files, flushes
    /// (`--fsync interval`), gauges.
    fn tick(&mut self) {
        self.check_names();
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
        self.refresh_gauges();
    }

    /// Closes the open files whose names no longer lead to them, saying
    /// which.
    fn check_names(&mut self) {
        for r in self.files.check_names(SystemTime::now()) {
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
    }

    fn refresh_gauges(&self) {
        let mut stats = lock(&self.stats);
        stats.socket = self.pull.stats();
        stats.queue_depth = self.pull.queued() as u64;
        stats.open_files = self.files.open_paths() as u64;
        if let Some(post) = &self.postprocessor {
            stats.postprocessor_runs = post.counters().snapshot().into_iter().collect();
        }
        stats.files = self.files.counters().clone();
    }

    fn count_write_error(&self, e: &WriteError) {
        *lock(&self.stats)
            .write_errors
            .entry(e.reason())
            .or_default() += 1;
    }

    /// One `log-write` message: frames `log-write`, node id, serializer
    /// name, batch (contract §3.3). Frame 0 is not checked, as in Zeek.
    fn handle(&mut self, message: Message) {
        let node = message
            .frame(1)
            .map(|id| printable(&id))
            .unwrap_or_else(|| "(none)".to_owned());
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
        let parsed = match batch::Batch::parse(message.frame(3).expect("4 frames")) {
            Ok(b) => b,
            Err(e) => return self.reject(e.reason(), &node, &e.to_string(), 0),
        };
        match self.files.write(&parsed, SystemTime::now()) {
            Ok(written) => {
                if let Some(ended) = self.outages.succeeded(Instant::now()) {
                    tracing::info!(
                        failed_attempts = ended.failures,
                        lasted_ms = ended.lasted.as_millis() as u64,
                        "writing logs works again after {:.1} s",
                        ended.lasted.as_secs_f64()
                    );
                }
                let mut stats = lock(&self.stats);
                if stats.files != *self.files.counters() {
                    // A file was created, moved aside or made again.
                    stats.files = self.files.counters().clone();
                }
                stats.write_blocked = false;
                stats.batches += 1;
                stats.records += written.records;
                stats.bytes_written += written.bytes;
                let path = LoggerStats::tally(&mut stats.paths, &parsed.header().path);
                path.batches += 1;
                path.records += written.records;
                path.bytes += written.bytes;
                let from = LoggerStats::tally(&mut stats.nodes, &node);
                from.batches += 1;
                from.records += written.records;
            }
            Err(e) if e.is_io() => {
                self.count_write_error(&e);
                let records = u64::from(parsed.num_records());
                drop(parsed);
                self.write_failed(&e, message, records);
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

    /// The file system refused `message`'s batch.
    fn write_failed(&mut self, e: &WriteError, message: Message, records: u64) {
        let report = self.outages.failed(Instant::now());
        let block = self.settings.on_write_error == WriteErrorPolicy::Block;
        match report {
            Report::Started if block => tracing::error!(
                reason = e.reason(),
                "writing logs failed: {e}; holding the batch and reading nothing more from the \
                 nodes (they are pushed back) until it is written; retrying \
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
        if block {
            self.held = Some(message);
            lock(&self.stats).write_blocked = true;
        } else {
            *lock(&self.stats)
                .records_dropped
                .entry("write_error")
                .or_default() += records;
        }
    }

    /// Counts a refused message (and its `records`, if it was a sound
    /// batch the logger could not take), and logs the first of each node
    /// and reason.
    fn reject(&mut self, reason: &'static str, node: &str, why: &str, records: u64) {
        {
            let mut stats = lock(&self.stats);
            stats.reject(reason, node);
            if records > 0 {
                *stats.records_dropped.entry(reason).or_default() += records;
            }
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
