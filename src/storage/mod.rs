//! Getting the data: from Neon storage (safekeepers for the commit LSN, the
//! pageserver for a basebackup) or, for a vanilla replica, from a primary
//! with `pg_basebackup`.
//!
//! Every operation retries with a capped exponential [`Backoff`], and is
//! cancel-safe: dropping its future kills the child processes it started
//! (their whole process group) and stops the threads it started (they see
//! their input end). A cancelled basebackup may leave part of the archive in
//! PGDATA; the driver wipes PGDATA at every start anyway.
//!
//! Secrets: the storage token is sent as the password of the pageserver
//! connection and in `NEON_AUTH_TOKEN`, and is never logged. Connection
//! strings are logged through [`mask_connstring`] (in [`crate::secret`]).

mod basebackup;
pub mod lease;
mod pg_basebackup;
mod safekeepers;

pub use basebackup::{basebackup, BasebackupRequest, BasebackupStats};
pub use pg_basebackup::pg_basebackup;
pub use safekeepers::{sync_safekeepers, sync_safekeepers_bounded};

pub use crate::secret::mask_connstring;

use crate::process::RunAs;
use anyhow::{bail, Context, Result};
use std::future::Future;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

/// Capped exponential backoff for retries: attempt `n` (from 1) that fails
/// is followed by a pause of `initial * 2^(n-1)`, at most `max`, unless it
/// was the last of `attempts`.
///
/// The default — 100 ms doubling up to 5 s, 10 attempts — gives up after
/// about 21 s of pauses (0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 5 + 5 + 5),
/// long enough to ride out a storage node restart, short enough for the
/// control plane to see a failure while it still waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// Pause after the first failure.
    pub initial: Duration,
    /// Longest pause.
    pub max: Duration,
    /// Attempts in all (0 counts as 1).
    pub attempts: u32,
    /// An attempt whose peer sends nothing for this long in the middle of
    /// a stream fails (a pageserver that stalls), and is retried.
    pub stall_timeout: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            attempts: 10,
            stall_timeout: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The pause after failed attempt `attempt` (counted from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Runs `op(attempt)` until it succeeds or the attempts are used up.
    /// Returns its value and the number of attempts made. The final error
    /// names the operation, the number of attempts and the last cause
    /// (the whole chain, so `to_string()` alone tells what went wrong).
    pub(crate) async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<(T, u32)>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let attempts = self.attempts.max(1);
        let mut attempt = 1;
        loop {
            match op(attempt).await {
                Ok(v) => return Ok((v, attempt)),
                Err(e) if attempt < attempts => {
                    let pause = self.delay(attempt);
                    tracing::warn!(
                        attempt,
                        attempts,
                        retry_in_ms = pause.as_millis() as u64,
                        "{what} failed: {e:#}"
                    );
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(e) => {
                    let plural = if attempts == 1 { "" } else { "s" };
                    bail!("{what} failed after {attempts} attempt{plural}: {e:#}");
                }
            }
        }
    }
}

/// Replica or static compute: creates an empty `standby.signal` in `pgdata`
/// (mode 0600, owned by `owner`), so postgres starts in standby mode.
pub fn create_standby_signal(pgdata: &Path, owner: Option<&RunAs>) -> Result<()> {
    // PGDATA is postgres': replaced through a handle, never written through a name there.
    crate::safe_fs::Dir::open(pgdata)?
        .replace("standby.signal", b"", 0o600, owner.map(|u| (u.uid, u.gid)))
        .with_context(|| format!("creating {}", pgdata.join("standby.signal").display()))
}

/// Makes sure `dir` exists (mode 0700, owned by `owner`) and is empty: the
/// operations here fill an empty PGDATA and never overwrite a cluster.
fn prepare_empty_dir(dir: &Path, owner: Option<&RunAs>) -> Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating PGDATA {}", dir.display()))?;
        if let Some(u) = owner {
            u.chown(dir)?;
        }
    }
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("reading PGDATA {}", dir.display()))?;
    if let Some(entry) = entries.next() {
        let name = entry
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .unwrap_or_default();
        bail!(
            "PGDATA {} is not empty (it has {name:?}); refusing to write a cluster over it",
            dir.display()
        );
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", dir.display()))?;
    Ok(())
}

/// Removes everything inside `dir`, leaving `dir` itself.
fn clear_dir(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let removed = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// Clears `dir` after a failed attempt; a failure to clear is added to `err`.
fn clear_after_failure(dir: &Path, err: anyhow::Error) -> anyhow::Error {
    match clear_dir(dir) {
        Ok(()) => err,
        Err(clear) => err.context(format!(
            "and the partial content of {} could not be removed: {clear:#}",
            dir.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff::default();
        let ms: Vec<u128> = (1..=9).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(b.delay(200), Duration::from_secs(5));
        assert_eq!(b.delay(0), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn retry_counts_attempts_and_names_the_last_error() {
        let b = Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
            attempts: 3,
            ..Backoff::default()
        };
        let (v, n) = b
            .retry("thing", |a| async move {
                if a < 3 {
                    bail!("no {a}")
                }
                Ok(a * 10)
            })
            .await
            .unwrap();
        assert_eq!((v, n), (30, 3));
        let e = b
            .retry("thing", |a| async move {
                Err::<(), _>(anyhow::anyhow!("root cause {a}")).context("outer")
            })
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "thing failed after 3 attempts: outer: root cause 3"
        );
    }

    #[test]
    fn standby_signal_and_dir_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let pgdata = dir.path().join("pgdata");
        prepare_empty_dir(&pgdata, None).unwrap();
        create_standby_signal(&pgdata, None).unwrap();
        let meta = std::fs::metadata(pgdata.join("standby.signal")).unwrap();
        assert_eq!(meta.len(), 0);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let e = prepare_empty_dir(&pgdata, None).unwrap_err();
        assert!(e.to_string().contains("not empty"), "{e}");
        std::fs::create_dir_all(pgdata.join("a/b")).unwrap();
        clear_dir(&pgdata).unwrap();
        assert!(pgdata.is_dir());
        assert_eq!(std::fs::read_dir(&pgdata).unwrap().count(), 0);
    }
}
