//! Secrets: a [`Secret`] newtype whose `Debug` and `Display` never show the
//! value, and the lexers that redact secrets from text we did not write
//! ourselves (postgres' log lines, connection strings).
//!
//! Passwords never reach logs, API responses or a child's argv: values are
//! held as [`Secret`]s and exposed only where they are used.

mod redact;

pub use redact::{blank_password, mask_connstring, PasswordRedactor, REDACTED};

use serde::Deserialize;
use std::fmt;

/// A secret string (password hash, storage token, connection string with a
/// password): prints as `<redacted>`; [`Secret::expose`] gives the value.
/// Deserialized from a plain string; deliberately not `Serialize`, so that
/// no response or file can carry it by accident.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
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

/// A libpq password file (`PGPASSFILE`) holding one password for every
/// host, mode 0600 and owned by whoever runs the client; removed on drop.
/// Client tools get their password this way, never in argv.
pub struct PassFile {
    path: std::path::PathBuf,
}

impl PassFile {
    /// Writes `password` to a new password file in the temporary directory,
    /// readable only by `owner` (or us).
    pub fn create(
        password: &Secret,
        owner: Option<&crate::process::RunAs>,
    ) -> anyhow::Result<PassFile> {
        use anyhow::Context;
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "compute_ctl-{}-{}.pgpass",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // hostname:port:database:username:password, with `:` and `\` escaped.
        let escaped = password.expose().replace('\\', "\\\\").replace(':', "\\:");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating the password file {}", path.display()))?;
        let passfile = PassFile { path };
        writeln!(file, "*:*:*:*:{escaped}").context("writing the password file")?;
        if let Some(owner) = owner {
            owner.chown(&passfile.path)?;
        }
        Ok(passfile)
    }

    /// Where it is: the value for `PGPASSFILE`.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for PassFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
