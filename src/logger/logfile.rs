//! One open log file, written a whole batch at a time or not at all.
//!
//! The file's length is tracked as the bytes known to hold whole lines
//! (`len`). Every write goes at that offset (`pwrite`), and a write that
//! fails part-way is cut back to it, so a disk that fills in the middle of
//! a batch leaves the file as it was before the batch, ending in a newline.
//! If even the cut fails, the file is marked torn and cut before anything
//! else is written to it.
//!
//! Beside each open file lies a shadow file, `.shadow.<name>`, as Zeek's
//! ASCII writer keeps one (`src/logging/writers/ascii/Ascii.cc`, with
//! `LogAscii::enable_leftover_log_rotation`): it exists from the file's
//! creation until the file is rotated or closed cleanly, so a file found
//! at start-up with its shadow was left open by a run that did not end
//! cleanly. Its content is Zeek's too: the extension and an (empty)
//! postprocessor name, a line each.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use std::sync::Arc;

use super::format::RecordWriter;
use super::value::Header;

/// The prefix Zeek gives shadow files.
pub const SHADOW_PREFIX: &str = ".shadow.";

/// `dir/.shadow.<file name>` for the log file `name`.
pub fn shadow_of(name: &Path) -> PathBuf {
    let file = name.file_name().map(|f| f.to_string_lossy().into_owned());
    name.with_file_name(format!("{SHADOW_PREFIX}{}", file.unwrap_or_default()))
}

/// What became of an open file's name since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The name still leads to the open file.
    Fine,
    /// The open file has no name any more (`rm`): what is written to it
    /// is lost when it closes.
    Unlinked,
    /// The name leads to another file, or the file was moved away (say,
    /// the directory was renamed and a new one made).
    Replaced,
    /// The name leads nowhere, though the file still has a name elsewhere
    /// (the directory was renamed or removed).
    Missing,
}

impl Health {
    /// A short label for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Health::Fine => "fine",
            Health::Unlinked => "unlinked",
            Health::Replaced => "replaced",
            Health::Missing => "missing",
        }
    }
}

/// Bytes of a file's staged batches kept allocated after a flush; beyond
/// that the buffer shrinks back. A busy path reuses its buffer rather than
/// growing it again (and faulting in its pages) after every flush; a quiet
/// path's never grows this large.
const PENDING_KEEP: usize = 64 * 1024;

/// What a flush wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Whole batches.
    pub batches: u64,
    /// Their records.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// An open log file.
pub struct LogFile {
    file: File,
    /// `DIR/PATH.EXT`, the name while it is written.
    name: PathBuf,
    shadow: PathBuf,
    /// The header it was opened for; a batch with another schema starts a
    /// new file.
    pub header: Arc<Header>,
    /// When it was opened (its `#open` time).
    pub opened: SystemTime,
    /// Bytes of whole lines at the start of the file: where the next
    /// write goes.
    len: u64,
    /// A failed write may have left bytes after `len` that could not be
    /// cut yet.
    torn: bool,
    /// Written since its data was last flushed to the disk.
    dirty: bool,
    /// Device and inode, to tell whether its name still leads to it.
    identity: (u64, u64),
    /// Formats records of `header`'s schema, prepared once for the file.
    pub writer: Box<dyn RecordWriter>,
    /// Batches formatted whole and staged, written together by the next
    /// [`LogFile::flush`]: a stream of small batches (real ones hold two or
    /// three records) costs one write call per flush, not one per batch.
    pending: Vec<u8>,
    staged: Flushed,
}

impl LogFile {
    /// Creates `name` (which must not exist) with its shadow and writes
    /// `head`, its header lines. On failure nothing is left behind (what
    /// was created is removed again, as far as the file system lets).
    pub fn create(
        name: PathBuf,
        head: &[u8],
        header: Arc<Header>,
        writer: Box<dyn RecordWriter>,
        opened: SystemTime,
    ) -> io::Result<LogFile> {
        let shadow = shadow_of(&name);
        let ext = name
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A shadow without its log (left when a log was removed by hand)
        // is stale and replaced.
        write_file(&shadow, format!(".{ext}\n\n").as_bytes()).inspect_err(|_| {
            let _ = std::fs::remove_file(&shadow);
        })?;
        let created = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&name)
            .and_then(|file| {
                let meta = file.metadata()?;
                file.write_all_at(head, 0)?;
                Ok((file, meta))
            });
        let (file, meta) = match created {
            Ok(done) => done,
            Err(e) => {
                // Remove only what this call made: the open may have
                // failed because the name exists.
                if e.kind() != io::ErrorKind::AlreadyExists {
                    let _ = std::fs::remove_file(&name);
                }
                let _ = std::fs::remove_file(&shadow);
                return Err(e);
            }
        };
        Ok(LogFile {
            file,
            name,
            shadow,
            header,
            opened,
            len: head.len() as u64,
            torn: false,
            dirty: true,
            identity: (meta.dev(), meta.ino()),
            writer,
            pending: Vec::new(),
            staged: Flushed::default(),
        })
    }

    /// The file's name while it is written.
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// Bytes of whole lines in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing, not even a header, is in the file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stages a whole batch's lines, `records` of them, for the next flush.
    pub fn stage(&mut self, bytes: &[u8], records: u64) {
        self.pending.extend_from_slice(bytes);
        self.staged.batches += 1;
        self.staged.records += records;
        self.staged.bytes += bytes.len() as u64;
    }

    /// What is staged and not yet written.
    pub fn staged(&self) -> Flushed {
        self.staged
    }

    /// Writes the staged batches, all or none: on failure they stay
    /// staged, and the file as it was.
    pub fn flush(&mut self) -> io::Result<Flushed> {
        if self.pending.is_empty() {
            return Ok(Flushed::default());
        }
        let pending = std::mem::take(&mut self.pending);
        let written = self.append(&pending);
        self.pending = pending;
        written?;
        self.pending.clear();
        self.pending.shrink_to(PENDING_KEEP);
        Ok(std::mem::take(&mut self.staged))
    }

    /// Forgets the staged batches (they are dropped) and says what they were.
    pub fn discard_staged(&mut self) -> Flushed {
        self.pending.clear();
        self.pending.shrink_to(PENDING_KEEP);
        std::mem::take(&mut self.staged)
    }

    /// Appends `bytes` (whole lines) whole, or leaves the file as it was.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_at_end(bytes)?;
        self.len += bytes.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Writes `bytes` after the whole lines without counting them in:
    /// the caller commits them or cuts them off again.
    fn write_at_end(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.mend()?;
        if let Err(e) = self.file.write_all_at(bytes, self.len) {
            self.torn = true;
            let _ = self.mend();
            return Err(e);
        }
        Ok(())
    }

    /// Cuts off what a failed write left after the whole lines.
    fn mend(&mut self) -> io::Result<()> {
        if self.torn {
            self.file.set_len(self.len)?;
            self.torn = false;
        }
        Ok(())
    }

    /// Flushes what was written to the disk (`fdatasync`), if anything was.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Writes the closing lines `tail` and gives the file the name `to`,
    /// flushing it to the disk first if `sync`. If either step fails the
    /// closing lines are cut off again and the file stays open under its
    /// name, to be appended to: a failed rotation loses nothing. Flush
    /// what is staged first: this writes only the tail.
    pub fn rotate(&mut self, tail: &[u8], to: &Path, sync: bool) -> io::Result<()> {
        debug_assert!(self.pending.is_empty(), "flush before rotating");
        self.write_at_end(tail)?;
        let moved = (if sync { self.file.sync_data() } else { Ok(()) })
            .and_then(|()| std::fs::rename(&self.name, to));
        if let Err(e) = moved {
            self.torn = true;
            let _ = self.mend();
            return Err(e);
        }
        self.len += tail.len() as u64;
        self.dirty = false;
        if sync {
            if let Some(dir) = to.parent() {
                // The rename itself survives a power loss once the
                // directory is on disk; failing that, a crash would leave
                // the old name, which start-up moves aside again.
                let _ = File::open(dir).and_then(|d| d.sync_all());
            }
        }
        self.remove_shadow();
        Ok(())
    }

    /// Writes the closing lines `tail`, flushes the file if `sync`, and
    /// marks it closed (its shadow goes). The file keeps its name. What is
    /// still staged is not written: flush first.
    pub fn close(mut self, tail: &[u8], sync: bool) -> io::Result<()> {
        self.append(tail)?;
        if sync {
            self.sync()?;
        }
        self.remove_shadow();
        Ok(())
    }

    fn remove_shadow(&self) {
        if let Err(e) = std::fs::remove_file(&self.shadow) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(
                    shadow = %self.shadow.display(),
                    "cannot remove a closed log's shadow file: {e}; the next start will take the log for one left open"
                );
            }
        }
    }

    /// Whether the file's name still leads to it.
    pub fn health(&self) -> io::Result<Health> {
        let open = self.file.metadata()?;
        if open.nlink() == 0 {
            return Ok(Health::Unlinked);
        }
        match std::fs::metadata(&self.name) {
            Ok(named) if (named.dev(), named.ino()) == self.identity => Ok(Health::Fine),
            Ok(_) => Ok(Health::Replaced),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Health::Missing),
            Err(e) => Err(e),
        }
    }
}

/// `path` created or emptied, holding `bytes`.
fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    file.write_all_at(bytes, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> Box<dyn RecordWriter> {
        use crate::logger::format::LogFormat;
        crate::logger::ascii::Ascii.record_writer(&test_header())
    }

    fn test_header() -> Arc<Header> {
        Arc::new(Header {
            stream: String::new(),
            writer: String::new(),
            filter: String::new(),
            path: "x".into(),
            fields: Vec::new(),
        })
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("zring-logfile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn shadow_names() {
        assert_eq!(
            shadow_of(Path::new("/a/b/conn.log")),
            Path::new("/a/b/.shadow.conn.log")
        );
        assert_eq!(
            shadow_of(Path::new("conn.log")),
            Path::new(".shadow.conn.log")
        );
    }

    #[test]
    fn a_shadow_lives_while_the_file_is_open() {
        let dir = scratch("shadow");
        let name = dir.join("conn.log");
        let log = LogFile::create(
            name.clone(),
            b"#head\n",
            test_header(),
            writer(),
            SystemTime::now(),
        )
        .unwrap();
        let shadow = dir.join(".shadow.conn.log");
        // Zeek's layout: the extension, then the postprocessor's name.
        assert_eq!(std::fs::read(&shadow).unwrap(), b".log\n\n");
        assert_eq!(log.len(), 6);
        log.close(b"#close\n", true).unwrap();
        assert!(!shadow.exists());
        assert_eq!(std::fs::read(&name).unwrap(), b"#head\n#close\n");
        // An existing name is never replaced, and the failed create
        // leaves the existing file alone.
        let err = LogFile::create(
            name.clone(),
            b"",
            test_header(),
            writer(),
            SystemTime::now(),
        )
        .err()
        .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&name).unwrap(), b"#head\n#close\n");
        assert!(!shadow.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_file_is_cut_before_the_next_write() {
        let dir = scratch("torn");
        let name = dir.join("x.log");
        let mut log = LogFile::create(
            name.clone(),
            b"h\n",
            test_header(),
            writer(),
            SystemTime::now(),
        )
        .unwrap();
        log.append(b"one\n").unwrap();
        // As if a write had failed part-way and the cut had failed too.
        log.file.write_all_at(b"tw", log.len).unwrap();
        log.torn = true;
        log.append(b"two\n").unwrap();
        assert_eq!(std::fs::read(&name).unwrap(), b"h\none\ntwo\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_rotation_that_cannot_rename_keeps_the_file_open_without_its_tail() {
        let dir = scratch("rename");
        let name = dir.join("x.log");
        let mut log = LogFile::create(
            name.clone(),
            b"h\n",
            test_header(),
            writer(),
            SystemTime::now(),
        )
        .unwrap();
        log.append(b"one\n").unwrap();
        let nowhere = dir.join("no-such-dir").join("x.1.log");
        let err = log.rotate(b"#close\n", &nowhere, true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        log.append(b"two\n").unwrap();
        assert_eq!(std::fs::read(&name).unwrap(), b"h\none\ntwo\n");
        let to = dir.join("x.1.log");
        log.rotate(b"#close\n", &to, false).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"h\none\ntwo\n#close\n");
        assert!(!name.exists() && !shadow_of(&name).exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn health_sees_removal_replacement_and_a_moved_directory() {
        let dir = scratch("health");
        let name = dir.join("x.log");
        let log = LogFile::create(
            name.clone(),
            b"h\n",
            test_header(),
            writer(),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(log.health().unwrap(), Health::Fine);
        std::fs::remove_file(&name).unwrap();
        assert_eq!(log.health().unwrap(), Health::Unlinked);
        std::fs::write(&name, b"other").unwrap();
        assert_eq!(log.health().unwrap(), Health::Unlinked);
        drop(log);

        let log = LogFile::create(
            dir.join("y.log"),
            b"h\n",
            test_header(),
            writer(),
            SystemTime::now(),
        )
        .unwrap();
        std::fs::rename(dir.join("y.log"), dir.join("y.old")).unwrap();
        assert_eq!(log.health().unwrap(), Health::Missing);
        std::fs::write(dir.join("y.log"), b"new").unwrap();
        assert_eq!(log.health().unwrap(), Health::Replaced);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
