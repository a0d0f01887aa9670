//! Secrets: a [`Secret`] newtype whose `Debug` and `Display` never show the
//! value, and the lexers that redact secrets from text we did not write
//! ourselves (postgres' log lines, connection strings).
//!
//! Passwords never reach logs, API responses or a child's argv: values are
//! held as [`Secret`]s and exposed only where they are used.

/// What a secret prints as.
pub const REDACTED: &str = "<redacted>";

use serde::{Deserialize, Serialize};
use std::fmt;

/// A secret string (password hash, storage token, connection string with a
/// password): prints as `<redacted>`; [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for where it is used (a connection, a file, an env var).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}
