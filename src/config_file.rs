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
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    // The descriptor's own metadata, so the file checked is the file read.
    let meta = file.metadata().map_err(cannot)?;
    // The text may hold a secret key: wiped when dropped.
    let mut text = zeroize::Zeroizing::new(String::new());
    file.read_to_string(&mut text).map_err(cannot)?;
    let parsed = parse(&shown, &text)?;
    if holds_secret(&parsed) {
        crate::keys::check_private(path, &meta)
            .map_err(|e| ConfigFileError::NotPrivate(e.to_string()))?;
    }
    Ok(parsed)
}
