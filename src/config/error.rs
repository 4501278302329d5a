//! `ConfigError`: a message naming the dotted key path, and the file when one was read.

use std::fmt;
use std::path::{Path, PathBuf};

// Errors
// ---------------------------------------------------------------------------

/// A configuration problem. The message says what is wrong and where: the
/// file, the dotted key path, and the offending value (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    file: Option<PathBuf>,
    message: String,
}

impl ConfigError {
    /// The config file the error is about, when one was read.
    #[cfg(test)]
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The message without the file name.
    #[cfg(test)]
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(super) fn new(message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            message: message.into(),
        }
    }

    /// An error about the value at a dotted key path (`""` = the whole file).
    pub(super) fn at(key_path: &str, message: impl fmt::Display) -> Self {
        if key_path.is_empty() {
            Self::new(message.to_string())
        } else {
            Self::new(format!("{key_path}: {message}"))
        }
    }

    pub(super) fn in_file(mut self, file: &Path) -> Self {
        self.file = Some(file.to_owned());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}: {}", file.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

pub(super) type Result<T, E = ConfigError> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------
