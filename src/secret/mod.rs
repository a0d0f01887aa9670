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
/// host, mode 0600 and owned by whoever runs the client, alone in a private
/// directory of ours with an unpredictable name (nobody else can plant or
/// replace a file there); removed on drop. Client tools get their password
/// this way, never in argv.
pub struct PassFile {
    /// Removed (with the file) on drop.
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    /// The file's one line.
    line: Secret,
}

impl PassFile {
    /// The file's name in its directory.
    const NAME: &'static str = "pgpass";

    /// Writes `password` to a new password file in a new private directory
    /// under the temporary directory, readable only by `owner` (or us).
    pub fn create(
        password: &Secret,
        owner: Option<&crate::process::RunAs>,
    ) -> anyhow::Result<PassFile> {
        use anyhow::Context;
        let dir = crate::safe_fs::private_temp_dir("compute_ctl-pass-", owner)?;
        // hostname:port:database:username:password, with `:` and `\` escaped.
        let escaped = password.expose().replace('\\', "\\\\").replace(':', "\\:");
        let line = Secret::new(format!("*:*:*:*:{escaped}\n"));
        crate::safe_fs::Dir::open(dir.path())?
            .replace(
                Self::NAME,
                line.expose().as_bytes(),
                0o600,
                owner.map(|u| (u.uid, u.gid)),
            )
            .context("writing the password file")?;
        let path = dir.path().join(Self::NAME);
        Ok(PassFile {
            _dir: dir,
            path,
            line,
        })
    }

    /// Where it is: the value for `PGPASSFILE`.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// What it holds, for a copy of it.
    pub fn contents(&self) -> &Secret {
        &self.line
    }
}
