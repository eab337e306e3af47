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
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::batch::{Batch, BatchError};
use super::format::LogFormat;
pub use super::logfile::Health;
use super::logfile::{shadow_of, LogFile};
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

/// How a logger's files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOptions {
    /// Compress rotated files with gzip, off the write path.
    pub gzip: bool,
    /// Most paths open at once.
    pub max_paths: usize,
    /// When data is flushed to the disk.
    pub fsync: Fsync,
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
            counters: FileCounters::default(),
        }
    }

    /// Formats every record of `batch`, then appends them to the batch's
    /// file in one write. A batch that fails to decode anywhere writes
    /// nothing, and neither does one that the file system refuses: the
    /// file is left as it was before it.
    pub fn write(&mut self, batch: &Batch, now: SystemTime) -> Result<Written, WriteError> {
        let header = batch.header();
        self.out.clear();
        let mut values: Vec<Value<'_>> = Vec::with_capacity(header.fields.len());
        let mut records = batch.records();
        let mut writer = self.format.record_writer(header);
        let mut count = 0u64;
        while records.next_into(&mut values)? {
            writer.write(&values, &mut self.out);
            count += 1;
        }
        drop(writer);
        if count == 0 {
            return Ok(Written {
                records: 0,
                bytes: 0,
            });
        }
        let schema_changed = self
            .open
            .get(&header.path)
            .is_some_and(|log| log.fields != header.fields);
        if schema_changed {
            // Zeek's writer keeps one schema per file; a node with another
            // one (say, a different script version) starts a new file.
            self.rotate(&header.path.clone(), now)?;
        }
        if !self.open.contains_key(&header.path) {
            if self.open.len() >= self.options.max_paths {
                return Err(WriteError::TooManyPaths {
                    path: header.path.clone(),
                    open: self.open.len(),
                });
            }
            let log = self.create(header, now)?;
            self.open.insert(header.path.clone(), log);
        }
        let log = self.open.get_mut(&header.path).expect("opened above");
        log.append(&self.out).map_err(|source| WriteError::Io {
            what: "cannot write",
            file: log.name().to_owned(),
            source,
        })?;
        Ok(Written {
            records: count,
            bytes: self.out.len() as u64,
        })
    }

    fn file_name(&self, path: &str) -> PathBuf {
        self.dir.join(format!("{path}.{}", self.format.extension()))
    }

    fn create(&mut self, header: &Header, now: SystemTime) -> Result<LogFile, WriteError> {
        let name = self.file_name(&header.path);
        if std::fs::symlink_metadata(&name).is_ok() {
            self.set_aside(&header.path, &name, now)?;
        }
        let mut head = Vec::new();
        self.format.open(header, now, &mut head);
        let mut created = LogFile::create(name.clone(), &head, header.fields.clone(), now);
        if matches!(&created, Err(e) if e.kind() == io::ErrorKind::NotFound) {
            // The directory went away under us (`rm -rf`): make it again.
            std::fs::create_dir_all(&self.dir).map_err(WriteError::io(
                "cannot make the log directory again",
                &self.dir,
            ))?;
            self.counters.dirs_recreated += 1;
            tracing::warn!(dir = %self.dir.display(), "the log directory had gone; made it again");
            created = LogFile::create(name.clone(), &head, header.fields.clone(), now);
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

    /// Moves `name`, found where a path's new file is to go, aside under
    /// its rotated name: a file an earlier run closed cleanly without
    /// rotating it, or one it left open (a crash; logged as a warning).
    fn set_aside(&mut self, path: &str, name: &Path, now: SystemTime) -> Result<(), WriteError> {
        let shadow = shadow_of(name);
        let shadow_meta = std::fs::metadata(&shadow).ok();
        let closed = match self.format.closing_prefix() {
            Some(prefix) => last_line(name).is_some_and(|l| l.starts_with(prefix)),
            None => shadow_meta.is_none(),
        };
        // As Zeek takes a leftover's times: opened when its shadow was
        // made, closed when it was last written.
        let modified = std::fs::metadata(name)
            .and_then(|m| m.modified())
            .unwrap_or(now);
        let opened = shadow_meta
            .map(|m| UNIX_EPOCH + Duration::from_secs(m.ctime().max(0) as u64))
            .unwrap_or(modified);
        let aside = self.free_name(&super::naming::rotated_name(
            path,
            self.format.extension(),
            opened,
            modified,
        ));
        if closed {
            self.counters.leftovers_closed += 1;
            tracing::info!(
                file = %name.display(),
                moved_to = %aside.display(),
                "moving aside a log file an earlier run closed"
            );
        } else {
            self.counters.leftovers_unclosed += 1;
            tracing::warn!(
                file = %name.display(),
                moved_to = %aside.display(),
                "a log file from an earlier run was left open (the run did not stop cleanly); moving it aside"
            );
        }
        std::fs::rename(name, &aside).map_err(WriteError::io("cannot move aside", name))?;
        let _ = std::fs::remove_file(&shadow);
        Ok(())
    }

    /// Closes `path`'s file and moves it to its rotated name. If that
    /// fails, the file stays open under its name and is appended to.
    fn rotate(&mut self, path: &str, now: SystemTime) -> Result<(), WriteError> {
        let Some(log) = self.open.get(path) else {
            return Ok(());
        };
        let rotated = self.free_name(&super::naming::rotated_name(
            path,
            self.format.extension(),
            log.opened,
            now,
        ));
        let mut tail = Vec::new();
        self.format.close(now, &mut tail);
        let sync = self.options.fsync != Fsync::Never;
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
        if self.options.gzip {
            self.compress(rotated);
        }
        Ok(())
    }

    /// `name` in the log directory, or, if a file (or its `.gz`) already
    /// has it (two rotations of a path within one second), `name` with
    /// `-1`, `-2`, ... before the extension: a rotation never replaces a
    /// file.
    fn free_name(&self, name: &str) -> PathBuf {
        let ext = format!(".{}", self.format.extension());
        let stem = name.strip_suffix(&ext).unwrap_or(name);
        let taken = |p: &Path| {
            std::fs::symlink_metadata(p).is_ok()
                || std::fs::symlink_metadata(p.with_extension(format!("{}.gz", &ext[1..]))).is_ok()
        };
        let mut candidate = self.dir.join(name);
        let mut n = 0;
        while taken(&candidate) {
            n += 1;
            candidate = self.dir.join(format!("{stem}-{n}{ext}"));
        }
        candidate
    }

    /// Rotates every open file. A file that cannot be rotated stays open
    /// and is appended to; its error is returned with the others'.
    pub fn rotate_all(&mut self, now: SystemTime) -> Vec<WriteError> {
        let paths: Vec<String> = self.open.keys().cloned().collect();
        paths
            .iter()
            .filter_map(|p| self.rotate(p, now).err())
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

    /// Writes each file's closing lines and closes it, in place (Zeek
    /// also leaves the last files unrotated at shutdown).
    pub fn close_all(&mut self, now: SystemTime) -> Vec<WriteError> {
        let mut errors = Vec::new();
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
        errors
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

    /// Gzips a rotated file on a thread of its own, then removes it.
    fn compress(&mut self, file: PathBuf) {
        self.compressions.retain(|c| !c.is_finished());
        let spawned = std::thread::Builder::new()
            .name("zring-gzip".into())
            .spawn(move || {
                if let Err(e) = gzip_file(&file) {
                    tracing::error!(file = %file.display(), "cannot compress a rotated log: {e}");
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
fn gzip_file(file: &Path) -> io::Result<()> {
    let mut target = file.as_os_str().to_owned();
    target.push(".gz");
    let target = PathBuf::from(target);
    let mut input = File::open(file)?;
    let output = File::create(&target)?;
    let mut encoder = flate2::write::GzEncoder::new(output, flate2::Compression::default());
    io::copy(&mut input, &mut encoder)?;
    encoder.finish()?.sync_all()?;
    std::fs::remove_file(file)
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
