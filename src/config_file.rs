//! Reading a daemon's TOML configuration file: unknown keys refused by the
//! caller's type, errors that name the file, line and key but never quote
//! it (it may hold a secret key), and a file that holds a secret refused
//! unless only its owner can read it.

use std::io::Read;
use std::path::Path;

use serde::de::DeserializeOwned;

/// Why a configuration file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {detail}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// The file is not valid TOML or has a bad key or value.
    #[error("{path}: {detail}")]
    Parse {
        /// The file.
        path: String,
        /// Line, column, key and what was wrong; never the file's text.
        detail: String,
    },
    /// The file holds a secret key but others may read it.
    #[error("{0}, or move the key to a curve_keyfile or to Zeek's environment variable")]
    NotPrivate(String),
}

/// The most a configuration or key file may hold: far above any real one,
/// and a wrong path (a log, a device) is refused instead of read whole.
pub(crate) const MAX_BYTES: u64 = 1 << 20;

/// A configuration or key file's text, wiped from memory when dropped (it
/// may hold a secret key); more than [`MAX_BYTES`] is an error.
pub(crate) fn read_text(file: &mut std::fs::File) -> std::io::Result<zeroize::Zeroizing<String>> {
    let mut text = zeroize::Zeroizing::new(String::new());
    file.take(MAX_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {} KiB: not a configuration file",
                MAX_BYTES / 1024
            ),
        ));
    }
    Ok(text)
}

/// Opens a configuration or key file and takes its metadata from the
/// descriptor, so the file checked is the file read. Anything but a
/// regular file is refused; the open does not wait, so a FIFO given by
/// mistake cannot stall a start or a reload.
pub(crate) fn open_regular(path: &Path) -> std::io::Result<(std::fs::File, std::fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        // A directory is the common mistake: say so as read(2) would.
        let what = if meta.is_dir() {
            format!("{}, ", std::io::Error::from_raw_os_error(libc::EISDIR))
        } else {
            String::new()
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{what}not a regular file"),
        ));
    }
    Ok((file, meta))
}

/// Parses TOML text (`path` only names the source in errors).
pub fn parse<T: DeserializeOwned>(path: &str, text: &str) -> Result<T, ConfigFileError> {
    toml::from_str(text).map_err(|e| ConfigFileError::Parse {
        path: path.to_owned(),
        detail: crate::keys::toml_error_text(&e, text),
    })
}

/// Reads and parses `path`; when `holds_secret` says the result holds a
/// secret key, the file must be private to its owner.
pub fn read<T: DeserializeOwned>(
    path: &Path,
    holds_secret: impl FnOnce(&T) -> bool,
) -> Result<T, ConfigFileError> {
    let shown = path.display().to_string();
    let cannot = |e: std::io::Error| ConfigFileError::Read {
        path: shown.clone(),
        detail: e.to_string(),
    };
    let (mut file, meta) = open_regular(path).map_err(cannot)?;
    let text = read_text(&mut file).map_err(cannot)?;
    let parsed = parse(&shown, &text)?;
    if holds_secret(&parsed) {
        crate::keys::check_private(path, &meta)
            .map_err(|e| ConfigFileError::NotPrivate(e.to_string()))?;
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[allow(dead_code)]
        name: Option<String>,
    }

    #[test]
    fn a_file_too_large_to_be_a_configuration_is_refused_unread() {
        let path = std::env::temp_dir().join(format!("zring-config-size-{}", std::process::id()));
        let comment = format!("# {}\n", "x".repeat(1000));
        let mut text = String::new();
        while (text.len() as u64) <= MAX_BYTES {
            text.push_str(&comment);
        }
        std::fs::write(&path, &text).unwrap();
        let e = read(&path, |_: &Sample| false).unwrap_err().to_string();
        assert!(e.contains("larger than 1024 KiB"), "{e}");
        std::fs::write(&path, "name = \"x\"\n").unwrap();
        assert!(read(&path, |_: &Sample| false).is_ok());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_fifo_or_a_directory_is_refused_without_waiting() {
        let path = std::env::temp_dir().join(format!("zring-config-fifo-{}", std::process::id()));
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.unwrap().success(), "mkfifo {}", path.display());
        let e = read(&path, |_: &Sample| false).unwrap_err().to_string();
        assert!(e.ends_with("not a regular file"), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = read(&std::env::temp_dir(), |_: &Sample| false)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("not a regular file"), "{e}");
    }
}
