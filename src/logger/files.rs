//! The open log files: one per path, written a whole batch at a time,
//! rotated on an interval with Zeek's naming, optionally gzipped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::batch::{Batch, BatchError};
use super::format::LogFormat;
use super::value::{Field, Header, Value};

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
    /// The file system refused.
    #[error("{what} {file}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The file.
        file: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
}

impl WriteError {
    /// A short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            WriteError::Batch(e) => e.reason(),
            WriteError::TooManyPaths { .. } => "too_many_paths",
            WriteError::Io { .. } => "io_error",
        }
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

struct OpenLog {
    file: File,
    /// `DIR/PATH.EXT`, the name while it is written.
    name: PathBuf,
    /// The schema its header announced; a batch with another one starts
    /// a new file.
    fields: Vec<Field>,
    opened: SystemTime,
}

/// The log files of one logger.
pub struct LogFiles {
    dir: PathBuf,
    format: Box<dyn LogFormat>,
    gzip: bool,
    max_paths: usize,
    open: HashMap<String, OpenLog>,
    /// One batch's formatted records, written with one call.
    out: Vec<u8>,
    compressions: Vec<JoinHandle<()>>,
    rotations: u64,
}

impl LogFiles {
    /// Files in `dir` (which must exist), in `format`.
    pub fn new(dir: &Path, format: Box<dyn LogFormat>, gzip: bool, max_paths: usize) -> LogFiles {
        LogFiles {
            dir: dir.to_owned(),
            format,
            gzip,
            max_paths,
            open: HashMap::new(),
            out: Vec::with_capacity(1 << 20),
            compressions: Vec::new(),
            rotations: 0,
        }
    }

    /// Formats every record of `batch`, then appends them to the batch's
    /// file in one write. A batch that fails to decode anywhere writes
    /// nothing.
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
            if self.open.len() >= self.max_paths {
                return Err(WriteError::TooManyPaths {
                    path: header.path.clone(),
                    open: self.open.len(),
                });
            }
            let log = self.create(header, now)?;
            self.open.insert(header.path.clone(), log);
        }
        let log = self.open.get_mut(&header.path).expect("opened above");
        log.file
            .write_all(&self.out)
            .map_err(|source| WriteError::Io {
                what: "cannot write",
                file: log.name.clone(),
                source,
            })?;
        Ok(Written {
            records: count,
            bytes: self.out.len() as u64,
        })
    }

    fn create(&mut self, header: &Header, now: SystemTime) -> Result<OpenLog, WriteError> {
        let name = self
            .dir
            .join(format!("{}.{}", header.path, self.format.extension()));
        if let Ok(meta) = std::fs::metadata(&name) {
            // Left by a run that ended without closing it (a crash): keep
            // it, under the rotated name its last write gives it.
            let modified = meta.modified().unwrap_or(now);
            let aside = self.free_name(&super::naming::rotated_name(
                &header.path,
                self.format.extension(),
                modified,
                modified,
            ));
            tracing::warn!(
                file = %name.display(),
                moved_to = %aside.display(),
                "a log file from an earlier run was still open; moving it aside"
            );
            std::fs::rename(&name, &aside).map_err(|source| WriteError::Io {
                what: "cannot move aside",
                file: name.clone(),
                source,
            })?;
        }
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&name)
            .map_err(|source| WriteError::Io {
                what: "cannot open",
                file: name.clone(),
                source,
            })?;
        let mut log = OpenLog {
            file,
            name,
            fields: header.fields.clone(),
            opened: now,
        };
        let mut head = Vec::new();
        self.format.open(header, now, &mut head);
        log.file.write_all(&head).map_err(|source| WriteError::Io {
            what: "cannot write",
            file: log.name.clone(),
            source,
        })?;
        Ok(log)
    }

    /// Closes `path`'s file and moves it to its rotated name.
    fn rotate(&mut self, path: &str, now: SystemTime) -> Result<(), WriteError> {
        let Some(mut log) = self.open.remove(path) else {
            return Ok(());
        };
        let mut tail = Vec::new();
        self.format.close(now, &mut tail);
        let closed = log
            .file
            .write_all(&tail)
            .and_then(|()| log.file.sync_data());
        drop(log.file);
        closed.map_err(|source| WriteError::Io {
            what: "cannot close",
            file: log.name.clone(),
            source,
        })?;
        let rotated = self.free_name(&super::naming::rotated_name(
            path,
            self.format.extension(),
            log.opened,
            now,
        ));
        std::fs::rename(&log.name, &rotated).map_err(|source| WriteError::Io {
            what: "cannot rotate",
            file: log.name.clone(),
            source,
        })?;
        self.rotations += 1;
        if self.gzip {
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
        let taken = |p: &Path| p.exists() || p.with_extension(format!("{}.gz", &ext[1..])).exists();
        let mut candidate = self.dir.join(name);
        let mut n = 0;
        while taken(&candidate) {
            n += 1;
            candidate = self.dir.join(format!("{stem}-{n}{ext}"));
        }
        candidate
    }

    /// Rotates every open file; a failure is logged and the rest go on.
    pub fn rotate_all(&mut self, now: SystemTime) -> Vec<WriteError> {
        let paths: Vec<String> = self.open.keys().cloned().collect();
        paths
            .iter()
            .filter_map(|p| self.rotate(p, now).err())
            .collect()
    }

    /// Writes each file's closing lines and closes it, in place (Zeek
    /// also leaves the last files unrotated at shutdown).
    pub fn close_all(&mut self, now: SystemTime) -> Vec<WriteError> {
        let mut errors = Vec::new();
        for (_, mut log) in self.open.drain() {
            let mut tail = Vec::new();
            self.format.close(now, &mut tail);
            if let Err(source) = log
                .file
                .write_all(&tail)
                .and_then(|()| log.file.sync_data())
            {
                errors.push(WriteError::Io {
                    what: "cannot close",
                    file: log.name.clone(),
                    source,
                });
            }
        }
        for c in self.compressions.drain(..) {
            let _ = c.join();
        }
        errors
    }

    /// Files rotated so far.
    pub fn rotations(&self) -> u64 {
        self.rotations
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

/// `FILE` becomes `FILE.gz`; the original is removed once the copy is
/// complete and on disk.
fn gzip_file(file: &Path) -> std::io::Result<()> {
    let mut target = file.as_os_str().to_owned();
    target.push(".gz");
    let target = PathBuf::from(target);
    let mut input = File::open(file)?;
    let output = File::create(&target)?;
    let mut encoder = flate2::write::GzEncoder::new(output, flate2::Compression::default());
    std::io::copy(&mut input, &mut encoder)?;
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
}
