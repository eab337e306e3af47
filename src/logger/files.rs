//! The open log files: one per path, written a whole batch at a time,
//! rotated on an interval with Zeek's naming, optionally gzipped.
//!
//! What a fault costs here is decided in [`LogFile`]: a batch is in its
//! file whole or not at all, and a rotation that fails leaves the file open
//! to be appended to. This module adds what concerns the set of files:
//! which path is open, files left by an earlier run, and names that no
//! longer lead to the open file (`rm -rf` of the directory).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::batch::{Batch, BatchError};
use super::format::{LogFormat, RecordWriter};
pub use super::logfile::Health;
use super::logfile::{shadow_of, Flushed, LogFile, SHADOW_PREFIX};
use super::postprocess::{Job, PostprocessQueue};
use super::value::{Header, Value};

/// When written data is flushed to the disk (`fdatasync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Every open file once a second, and at rotation and close: a power
    /// loss costs at most about the last second.
    Interval,
    /// At rotation and close: rotated files are whole on disk; a power
    /// loss costs what the open files received since they were opened and
    /// the kernel has not yet written back (usually the last 30 s).
    #[default]
    Rotate,
    /// Never: the kernel writes back when it will.
    Never,
}

impl Fsync {
    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Fsync::Interval => "interval",
            Fsync::Rotate => "rotate",
            Fsync::Never => "never",
        }
    }
}

/// How rotated files are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RotationNames {
    /// `conn.<open>.log`: Zeek's default `Log::rotation_format_func`, as a
    /// logger under ZeekControl names them.
    #[default]
    Zeek,
    /// `conn__<open>__<close>__.log`: `archiver_rotation_format_func`, as
    /// a logger under Zeek's Supervisor names them for zeek-archiver.
    Archiver,
}

impl RotationNames {
    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            RotationNames::Zeek => "zeek",
            RotationNames::Archiver => "archiver",
        }
    }
}

/// Where and under which name rotated files go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RotationLayout {
    /// The directory rotated files are moved into (relative: to the log
    /// directory), made if missing; None: the log directory itself. Zeek's
    /// `Log::default_rotation_dir` (`log-queue` under the Supervisor).
    pub dir: Option<PathBuf>,
    /// How they are named.
    pub names: RotationNames,
    /// `archiver_log_metadata`, encoded ([`super::naming::archiver_metadata`]);
    /// empty for none. Only archiver names carry it.
    pub metadata: String,
}

/// How a logger's files are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOptions {
    /// Compress rotated files with gzip, off the write path.
    pub gzip: bool,
    /// Most paths open at once.
    pub max_paths: usize,
    /// When data is flushed to the disk.
    pub fsync: Fsync,
    /// Where rotated files go.
    pub rotation: RotationLayout,
}

/// Why a batch was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The batch does not decode; nothing of it was written.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// One path more than `max_paths`.
    #[error(
        "batch for path `{path}` refused: {open} paths are open, the most allowed (max-paths)"
    )]
    TooManyPaths {
        /// The path refused.
        path: String,
        /// How many are open.
        open: usize,
    },
    /// The process has no file descriptor left for one more path.
    #[error(
        "batch for path `{path}` refused: cannot open {file}: {source} (raise the file \
         descriptor limit or lower max-paths)"
    )]
    TooManyOpenFiles {
        /// The path refused.
        path: String,
        /// The file that could not be opened.
        file: PathBuf,
        /// EMFILE or ENFILE.
        source: io::Error,
    },
    /// The file system refused.
    #[error("{what} {file}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The file.
        file: PathBuf,
        /// The system's error.
        source: io::Error,
    },
}

impl WriteError {
    /// A short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            WriteError::Batch(e) => e.reason(),
            WriteError::TooManyPaths { .. } => "too_many_paths",
            WriteError::TooManyOpenFiles { .. } => "too_many_open_files",
            WriteError::Io { source, .. } => io_reason(source),
        }
    }

    /// Whether the file system failed (a condition that may pass), as
    /// opposed to a batch refused for what it is or asks for.
    pub fn is_io(&self) -> bool {
        matches!(self, WriteError::Io { .. })
    }

    fn io<'a>(what: &'static str, file: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
        move |source| WriteError::Io {
            what,
            file: file.to_owned(),
            source,
        }
    }
}

/// A short stable label for a file system error, for metrics.
pub fn io_reason(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => "no_space",
        Some(libc::EDQUOT) => "quota",
        Some(libc::EIO) => "io",
        Some(libc::EACCES | libc::EPERM) => "permission",
        Some(libc::EROFS) => "read_only",
        Some(libc::ENOENT) => "missing",
        Some(libc::EMFILE | libc::ENFILE) => "too_many_open_files",
        Some(libc::EFBIG) => "file_too_large",
        _ => "other",
    }
}

/// What one written batch amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Records written.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// A file that no longer had its name, closed so that the path's next
/// batch starts a new one.
#[derive(Debug)]
pub struct Reopened {
    /// The log path.
    pub path: String,
    /// The file's name.
    pub file: PathBuf,
    /// What had happened to it.
    pub health: Health,
}

/// What [`LogFiles`] counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileCounters {
    /// Files rotated.
    pub rotations: u64,
    /// Rotations that failed (the file stayed open).
    pub rotation_failures: u64,
    /// Files found at start of a path that an earlier run closed cleanly.
    pub leftovers_closed: u64,
    /// Files found that an earlier run left open (a crash).
    pub leftovers_unclosed: u64,
    /// Open files whose name was removed or replaced, by [`Health::reason`].
    pub reopened: std::collections::BTreeMap<&'static str, u64>,
    /// Shadow files whose log was gone, removed.
    pub stale_shadows: u64,
    /// Times the log directory was found missing and made again.
    pub dirs_recreated: u64,
}

/// The log files of one logger.
pub struct LogFiles {
    dir: PathBuf,
    format: Box<dyn LogFormat>,
    options: FileOptions,
    open: HashMap<String, LogFile>,
    /// One batch's formatted records, written with one call.
    out: Vec<u8>,
    compressions: Vec<JoinHandle<()>>,
    /// Where rotated files are handed to the postprocessor, if one runs.
    postprocess: Option<PostprocessQueue>,
    /// Bytes staged in the open files.
    staged_bytes: u64,
    /// Batches written since [`LogFiles::take_written`] last took them.
    written: Vec<(String, Flushed)>,
    /// The rotation directory could not be made at the last rotation.
    rotation_dir_failing: bool,
    counters: FileCounters,
}

impl LogFiles {
    /// Files in `dir`, in `format`.
    pub fn new(dir: &Path, format: Box<dyn LogFormat>, options: FileOptions) -> LogFiles {
        LogFiles {
            dir: dir.to_owned(),
            format,
            options,
            open: HashMap::new(),
            out: Vec::with_capacity(1 << 20),
            compressions: Vec::new(),
            postprocess: None,
            staged_bytes: 0,
            written: Vec::new(),
            rotation_dir_failing: false,
            counters: FileCounters::default(),
        }
    }

    /// Hands every rotated file (after compression, with `gzip`) to
    /// `queue`; None stops that.
    pub fn set_postprocess(&mut self, queue: Option<PostprocessQueue>) {
        self.postprocess = queue;
    }

    /// Formats every record of `batch` and stages them, whole, for the
    /// batch's file; [`LogFiles::flush`] writes what is staged. A batch
    /// that fails to decode anywhere stages nothing. Creating the file (or
    /// rotating it for a new schema) is the only file system work here.
    pub fn write(&mut self, batch: &Batch, now: SystemTime) -> Result<Written, WriteError> {
        let header = batch.header();
        self.out.clear();
        let mut values: Vec<Value<'_>> = Vec::with_capacity(header.fields.len());
        let mut records = batch.records();
        let mut count = 0u64;
        {
            // The open file's writer, prepared for its header, when the
            // batch shares that header (batches parsed through one cache
            // do); else one for this batch.
            let mut own;
            let writer: &mut dyn RecordWriter = match self.open.get_mut(&header.path) {
                Some(log) if Arc::ptr_eq(&log.header, batch.shared_header()) => &mut *log.writer,
                _ => {
                    own = self.format.record_writer(header);
                    &mut *own
                }
            };
            while records.next_into(&mut values)? {
                writer.write(&values, &mut self.out);
                count += 1;
            }
        }
        if count == 0 {
            return Ok(Written {
                records: 0,
                bytes: 0,
            });
        }
        let schema_changed = self.open.get(&header.path).is_some_and(|log| {
            !Arc::ptr_eq(&log.header, batch.shared_header()) && log.header.fields != header.fields
        });
        if schema_changed {
            // Zeek's writer keeps one schema per file; a node with another
            // one (say, a different script version) starts a new file.
            self.rotate(&header.path.clone(), now, false)?;
        }
        if !self.open.contains_key(&header.path) {
            if self.open.len() >= self.options.max_paths {
                return Err(WriteError::TooManyPaths {
                    path: header.path.clone(),
                    open: self.open.len(),
                });
            }
            let log = self.create(batch.shared_header(), now)?;
            self.open.insert(header.path.clone(), log);
        }
        let log = self.open.get_mut(&header.path).expect("opened above");
        log.stage(&self.out, count);
        self.staged_bytes += self.out.len() as u64;
        Ok(Written {
            records: count,
            bytes: self.out.len() as u64,
        })
    }

    /// Bytes staged in all files and not yet written.
    pub fn staged_bytes(&self) -> u64 {
        self.staged_bytes
    }

    /// Writes every file's staged batches, each file's all or none. What
    /// a file could not take stays staged, and comes back as an error with
    /// what it held.
    pub fn flush(&mut self) -> Vec<(WriteError, Flushed)> {
        if self.staged_bytes == 0 {
            return Vec::new();
        }
        let mut failed = Vec::new();
        for (path, log) in &mut self.open {
            let staged = log.staged();
            match log.flush() {
                Ok(done) if done.batches > 0 => self.written.push((path.clone(), done)),
                Ok(_) => {}
                Err(source) => failed.push((
                    WriteError::Io {
                        what: "cannot write",
                        file: log.name().to_owned(),
                        source,
                    },
                    staged,
                )),
            }
        }
        self.staged_bytes = failed.iter().map(|(_, s)| s.bytes).sum();
        failed
    }

    /// Writes `path`'s staged batches, accounting for them.
    fn flush_one(&mut self, path: &str) -> Result<(), WriteError> {
        let Some(log) = self.open.get_mut(path) else {
            return Ok(());
        };
        match log.flush() {
            Ok(done) => {
                self.staged_bytes -= done.bytes;
                if done.batches > 0 {
                    self.written.push((path.to_owned(), done));
                }
                Ok(())
            }
            Err(source) => Err(WriteError::Io {
                what: "cannot write",
                file: log.name().to_owned(),
                source,
            }),
        }
    }

    /// Forgets everything staged (the batches are dropped) and says what
    /// it was.
    pub fn discard_staged(&mut self) -> Flushed {
        let mut dropped = Flushed::default();
        for log in self.open.values_mut() {
            let d = log.discard_staged();
            dropped.batches += d.batches;
            dropped.records += d.records;
            dropped.bytes += d.bytes;
        }
        self.staged_bytes = 0;
        dropped
    }

    /// What was written since the last call, by path: flushes, rotations
    /// and closes all write what was staged.
    pub fn take_written(&mut self) -> Vec<(String, Flushed)> {
        std::mem::take(&mut self.written)
    }

    fn file_name(&self, path: &str) -> PathBuf {
        self.dir.join(format!("{path}.{}", self.format.extension()))
    }

    fn create(&mut self, header: &Arc<Header>, now: SystemTime) -> Result<LogFile, WriteError> {
        let name = self.file_name(&header.path);
        if std::fs::symlink_metadata(&name).is_ok() {
            // Start-up rotated what it found; this one came since.
            self.rotate_leftover(&header.path, &name, now)?;
        }
        let mut head = Vec::new();
        self.format.open(header, now, &mut head);
        let create = |name: &PathBuf| {
            let writer = self.format.record_writer(header);
            LogFile::create(name.clone(), &head, header.clone(), writer, now)
        };
        let mut created = create(&name);
        if matches!(&created, Err(e) if e.kind() == io::ErrorKind::NotFound) {
            // The directory went away under us (`rm -rf`): make it again.
            std::fs::create_dir_all(&self.dir).map_err(WriteError::io(
                "cannot make the log directory again",
                &self.dir,
            ))?;
            self.counters.dirs_recreated += 1;
            tracing::warn!(dir = %self.dir.display(), "the log directory had gone; made it again");
            created = create(&name);
        }
        created.map_err(|source| match source.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE) => WriteError::TooManyOpenFiles {
                path: header.path.clone(),
                file: name.clone(),
                source,
            },
            _ => WriteError::Io {
                what: "cannot open",
                file: name.clone(),
                source,
            },
        })
    }

    /// Rotates the files an earlier run left in the log directory, as
    /// Zeek's leftover-log rotation does, before anything is written: each
    /// file with a shadow (left open by a crash, or closed but not
    /// rotated), and each Zeek ASCII log of its own path that ends with
    /// `#close` (closed in place). Shadows whose file is gone are removed.
    /// Returns the files that could not be moved.
    pub fn rotate_leftovers(&mut self, now: SystemTime) -> Vec<WriteError> {
        let ext = format!(".{}", self.format.extension());
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if let Some(log) = file_name.strip_prefix(SHADOW_PREFIX) {
                let name = self.dir.join(log);
                match log.strip_suffix(&ext) {
                    Some(path) if name.exists() => found.push((path.to_owned(), name)),
                    _ => {
                        let _ = std::fs::remove_file(entry.path());
                        self.counters.stale_shadows += 1;
                    }
                }
            } else if let Some(path) = file_name.strip_suffix(&ext) {
                let name = entry.path();
                let head = read_head(&name);
                if !shadow_of(&name).exists() && head.path.as_deref() == Some(path) && head.closed {
                    found.push((path.to_owned(), name));
                }
            }
        }
        found.sort();
        found.dedup();
        found
            .into_iter()
            .filter_map(|(path, name)| self.rotate_leftover(&path, &name, now).err())
            .collect()
    }

    /// Rotates `name`, a file of `path` from an earlier run, under the
    /// name it would have had: opened at its `#open` time (or, as Zeek
    /// takes it, when its shadow was made), closed when last written; then
    /// postprocesses it as a rotation that is not a stop. A file the run
    /// closed is noted; one it left open (a crash) is warned about.
    fn rotate_leftover(
        &mut self,
        path: &str,
        name: &Path,
        now: SystemTime,
    ) -> Result<(), WriteError> {
        let shadow = shadow_of(name);
        let shadow_meta = std::fs::metadata(&shadow).ok();
        let head = read_head(name);
        let closed = match self.format.closing_prefix() {
            Some(_) if head.path.is_some() => head.closed,
            Some(prefix) => last_line(name).is_some_and(|l| l.starts_with(prefix)),
            None => shadow_meta.is_none() || head.closed,
        };
        let modified = std::fs::metadata(name)
            .and_then(|m| m.modified())
            .unwrap_or(now);
        let opened = head
            .opened
            .or_else(|| {
                shadow_meta.map(|m| UNIX_EPOCH + Duration::from_secs(m.ctime().max(0) as u64))
            })
            .unwrap_or(modified);
        let rotated = self.rotation_target(path, opened, modified);
        if closed {
            self.counters.leftovers_closed += 1;
            tracing::info!(
                file = %name.display(),
                rotated_to = %rotated.display(),
                "rotating a log file an earlier run closed"
            );
        } else {
            self.counters.leftovers_unclosed += 1;
            tracing::warn!(
                file = %name.display(),
                rotated_to = %rotated.display(),
                "a log file from an earlier run was left open (the run did not stop cleanly); rotating it"
            );
        }
        std::fs::rename(name, &rotated).map_err(WriteError::io("cannot rotate", name))?;
        let _ = std::fs::remove_file(&shadow);
        self.counters.rotations += 1;
        self.after_rotation(rotated, path, opened, modified, false);
        Ok(())
    }

    /// Closes `path`'s file and moves it to its rotated name, then
    /// compresses and postprocesses it. If that fails, the file stays
    /// open under its name and is appended to.
    fn rotate(&mut self, path: &str, now: SystemTime, terminating: bool) -> Result<(), WriteError> {
        let Some(log) = self.open.get(path) else {
            return Ok(());
        };
        let opened = log.opened;
        let rotated = self.rotation_target(path, opened, now);
        let mut tail = Vec::new();
        self.format.close(now, &mut tail);
        let sync = self.options.fsync != Fsync::Never;
        self.flush_one(path)?;
        let log = self.open.get_mut(path).expect("looked up above");
        if let Err(source) = log.rotate(&tail, &rotated, sync) {
            self.counters.rotation_failures += 1;
            return Err(WriteError::Io {
                what: "cannot rotate",
                file: log.name().to_owned(),
                source,
            });
        }
        self.open.remove(path);
        self.counters.rotations += 1;
        self.after_rotation(rotated, path, opened, now, terminating);
        Ok(())
    }

    /// Where `path`'s file opened at `opened` goes when rotated at
    /// `closed`: its rotated name in the rotation directory, made if
    /// missing (if it cannot be made, in the log directory, as Zeek falls
    /// back to its working directory), never over an existing file.
    fn rotation_target(&mut self, path: &str, opened: SystemTime, closed: SystemTime) -> PathBuf {
        let ext = self.format.extension();
        let layout = &self.options.rotation;
        let name = match layout.names {
            RotationNames::Zeek => super::naming::rotated_name(path, ext, opened, closed),
            RotationNames::Archiver => {
                super::naming::archiver_rotated_name(path, ext, opened, closed, &layout.metadata)
            }
        };
        let dir = match &layout.dir {
            None => self.dir.clone(),
            Some(sub) => {
                let dir = self.dir.join(sub);
                match std::fs::create_dir_all(&dir) {
                    Ok(()) => {
                        self.rotation_dir_failing = false;
                        dir
                    }
                    Err(e) => {
                        if !self.rotation_dir_failing {
                            tracing::error!(
                                dir = %dir.display(),
                                "cannot make the rotation directory: {e}; rotating into the log directory"
                            );
                            self.rotation_dir_failing = true;
                        }
                        self.dir.clone()
                    }
                }
            }
        };
        free_name(&dir, &name, ext)
    }

    /// Compresses (with `gzip`) and postprocesses a rotated file, off the
    /// write path: the postprocessor gets the compressed file.
    fn after_rotation(
        &mut self,
        rotated: PathBuf,
        path: &str,
        opened: SystemTime,
        closed: SystemTime,
        terminating: bool,
    ) {
        let queue = self.postprocess.clone();
        let dir = self.dir.clone();
        let path = path.to_owned();
        let job = move |file: PathBuf| Job {
            file: file.strip_prefix(&dir).map(Path::to_owned).unwrap_or(file),
            path,
            opened,
            closed,
            terminating,
        };
        if self.options.gzip {
            self.compress(rotated, move |gz| {
                if let Some(queue) = queue {
                    queue.submit(job(gz));
                }
            });
        } else if let Some(queue) = queue {
            queue.submit(job(rotated));
        }
    }

    /// Rotates every open file. A file that cannot be rotated stays open
    /// and is appended to; its error is returned with the others'.
    pub fn rotate_all(&mut self, now: SystemTime) -> Vec<WriteError> {
        let paths: Vec<String> = self.open.keys().cloned().collect();
        paths
            .iter()
            .filter_map(|p| self.rotate(p, now, false).err())
            .collect()
    }

    /// Closes every open file whose name no longer leads to it (removed,
    /// replaced, its directory moved or removed), so that its path's next
    /// batch starts a new file where the name now points. What was
    /// written to a removed file since it was removed is gone with it.
    pub fn check_names(&mut self, now: SystemTime) -> Vec<Reopened> {
        let mut lost = Vec::new();
        for (path, log) in &self.open {
            match log.health() {
                Ok(Health::Fine) => {}
                Ok(health) => lost.push((path.clone(), health)),
                Err(e) => {
                    tracing::debug!(file = %log.name().display(), "cannot check a log file: {e}")
                }
            }
        }
        let mut reopened = Vec::new();
        for (path, health) in lost {
            // What is staged goes where the file is; for a removed file,
            // that is the loss the check's second allows. If it cannot be
            // written, the file stays until the writer's own flush has
            // dealt with that.
            if self.flush_one(&path).is_err() {
                continue;
            }
            let log = self.open.remove(&path).expect("listed above");
            let file = log.name().to_owned();
            *self.counters.reopened.entry(health.reason()).or_default() += 1;
            if health != Health::Unlinked {
                // It still has a name somewhere: close it properly.
                let mut tail = Vec::new();
                self.format.close(now, &mut tail);
                let _ = log.close(&tail, self.options.fsync != Fsync::Never);
            }
            reopened.push(Reopened { path, file, health });
        }
        reopened
    }

    /// Flushes every open file's new data to the disk.
    pub fn sync_all(&mut self) -> Vec<WriteError> {
        let mut errors = Vec::new();
        for log in self.open.values_mut() {
            if let Err(source) = log.sync() {
                errors.push(WriteError::Io {
                    what: "cannot flush",
                    file: log.name().to_owned(),
                    source,
                });
            }
        }
        errors
    }

    /// Closes every file: with `rotate`, rotated (and postprocessed as a
    /// stop), as Zeek's logger rotates at shutdown; else, or where the
    /// rotation fails, with its closing lines in place. Waits for the
    /// compressions under way.
    /// What was staged and could not be written is dropped, and comes
    /// back with the errors.
    pub fn close_all(&mut self, now: SystemTime, rotate: bool) -> (Vec<WriteError>, Flushed) {
        let mut errors = Vec::new();
        let paths: Vec<String> = self.open.keys().cloned().collect();
        for path in &paths {
            let written = if rotate {
                self.rotate(path, now, true)
            } else {
                self.flush_one(path)
            };
            if let Err(e) = written {
                errors.push(e);
            }
        }
        let dropped = self.discard_staged();
        let mut tail = Vec::new();
        self.format.close(now, &mut tail);
        let sync = self.options.fsync != Fsync::Never;
        for (_, log) in self.open.drain() {
            let file = log.name().to_owned();
            if let Err(source) = log.close(&tail, sync) {
                errors.push(WriteError::Io {
                    what: "cannot close",
                    file,
                    source,
                });
            }
        }
        for c in self.compressions.drain(..) {
            let _ = c.join();
        }
        (errors, dropped)
    }

    /// What happened to the files so far.
    pub fn counters(&self) -> &FileCounters {
        &self.counters
    }

    /// Files rotated so far.
    pub fn rotations(&self) -> u64 {
        self.counters.rotations
    }

    /// Paths with an open file.
    pub fn open_paths(&self) -> usize {
        self.open.len()
    }

    /// Gzips a rotated file on a thread of its own, removes it, and hands
    /// `then` the compressed file's name (or, if compressing failed, the
    /// file's own).
    fn compress(&mut self, file: PathBuf, then: impl FnOnce(PathBuf) + Send + 'static) {
        self.compressions.retain(|c| !c.is_finished());
        let spawned = std::thread::Builder::new()
            .name("zring-gzip".into())
            .spawn(move || match gzip_file(&file) {
                Ok(gz) => then(gz),
                Err(e) => {
                    tracing::error!(file = %file.display(), "cannot compress a rotated log: {e}");
                    then(file);
                }
            });
        match spawned {
            Ok(handle) => self.compressions.push(handle),
            Err(e) => tracing::error!("cannot start a compression thread: {e}"),
        }
    }
}

/// The last line of `file` (up to 256 bytes of it), without its newline.
fn last_line(file: &Path) -> Option<Vec<u8>> {
    let mut f = File::open(file).ok()?;
    let len = f.metadata().ok()?.len();
    let from = len.saturating_sub(256);
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    let body = tail.strip_suffix(b"\n")?;
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    Some(body[start..].to_vec())
}

/// `FILE` becomes `FILE.gz`; the original is removed once the copy is
/// complete and on disk.
fn gzip_file(file: &Path) -> io::Result<PathBuf> {
    let mut target = file.as_os_str().to_owned();
    target.push(".gz");
    let target = PathBuf::from(target);
    let mut input = File::open(file)?;
    let output = File::create(&target)?;
    let mut encoder = flate2::write::GzEncoder::new(output, flate2::Compression::default());
    io::copy(&mut input, &mut encoder)?;
    encoder.finish()?.sync_all()?;
    std::fs::remove_file(file)?;
    Ok(target)
}

/// `name` in `dir`, or, if a file (or its `.gz`) already has it (two
/// rotations of a path within one second), `name` with `-1`, `-2`, ...
/// before the extension `ext`: a rotation never replaces a file.
fn free_name(dir: &Path, name: &str, ext: &str) -> PathBuf {
    let dot_ext = format!(".{ext}");
    let stem = name.strip_suffix(&dot_ext).unwrap_or(name);
    let taken = |p: &Path| {
        std::fs::symlink_metadata(p).is_ok()
            || std::fs::symlink_metadata(p.with_extension(format!("{ext}.gz"))).is_ok()
    };
    let mut candidate = dir.join(name);
    let mut n = 0;
    while taken(&candidate) {
        n += 1;
        candidate = dir.join(format!("{stem}-{n}{dot_ext}"));
    }
    candidate
}

/// What the first lines of a Zeek ASCII log say, and whether its last
/// line closes it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Head {
    /// `#path`, if the file starts as a Zeek ASCII log does.
    path: Option<String>,
    /// `#open`, read back.
    opened: Option<SystemTime>,
    /// The last line is `#close`.
    closed: bool,
}

fn read_head(file: &Path) -> Head {
    let mut head = Head::default();
    let Ok(f) = File::open(file) else {
        return head;
    };
    let mut first = Vec::with_capacity(4096);
    if f.take(4096).read_to_end(&mut first).is_err() || !first.starts_with(b"#separator ") {
        return head;
    }
    for line in first.split(|&b| b == b'\n').take(8) {
        let line = String::from_utf8_lossy(line);
        if let Some(path) = line.strip_prefix("#path\t") {
            head.path = Some(path.to_owned());
        } else if let Some(date) = line.strip_prefix("#open\t") {
            head.opened = super::naming::parse_date(date)
                .as_ref()
                .and_then(super::naming::from_local_time);
        }
    }
    head.closed = last_line(file).is_some_and(|l| l.starts_with(b"#close\t"));
    head
}

/// The next multiple of `interval` since the epoch after `now`: Zeek
/// aligns rotation to the interval the same way (on the hour, for an
/// hour).
pub fn next_rotation(now: SystemTime, interval: Duration) -> SystemTime {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let step = interval.as_nanos().max(1);
    let next = (since.as_nanos() / step + 1) * step;
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_is_aligned_to_the_interval() {
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        let hour = Duration::from_secs(3600);
        assert_eq!(next_rotation(at(7200), hour), at(10800));
        assert_eq!(next_rotation(at(7201), hour), at(10800));
        assert_eq!(next_rotation(at(10799), hour), at(10800));
    }

    #[test]
    fn io_errors_have_stable_reasons() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert_eq!(io_reason(&e(libc::ENOSPC)), "no_space");
        assert_eq!(io_reason(&e(libc::EACCES)), "permission");
        assert_eq!(io_reason(&e(libc::EMFILE)), "too_many_open_files");
        assert_eq!(io_reason(&io::Error::other("x")), "other");
    }

    #[test]
    fn last_lines() {
        let dir = std::env::temp_dir().join(format!("zring-lastline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("f");
        std::fs::write(&f, b"a\nb\n#close\tx\n").unwrap();
        assert_eq!(last_line(&f).unwrap(), b"#close\tx");
        std::fs::write(&f, b"only\n").unwrap();
        assert_eq!(last_line(&f).unwrap(), b"only");
        std::fs::write(&f, b"torn").unwrap();
        assert_eq!(last_line(&f), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
