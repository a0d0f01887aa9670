//! Child processes: one owned handle for every process compute_ctl starts
//! ([`Child`]: own process group, group kill on drop, stderr tail), spawning
//! as the unprivileged postgres user, and reaping orphans when compute_ctl
//! runs as PID 1 ([`reap_orphans`]).
//!
//! Kept in one place because the rules must hold for every child alike: a
//! child is recorded as ours until it is reaped (or the PID-1 reaper steals
//! its status), killed with everything it started when abandoned, and never
//! given a password in its argv (passwords go through the environment or a
//! 0600 file, see [`crate::secret::PassFile`]).

mod child;
pub(crate) mod lines;
mod reaper;
#[cfg(test)]
mod tests;

pub use child::{Child, Options};
pub use lines::{marked, Lines, LogAs};
pub use reaper::{alive, forget, reap_orphans, spawn, spawn_reaper};

use anyhow::{Context, Result};
use nix::unistd::{Uid, User};
use std::path::Path;
use tokio::process::Command;

/// The unprivileged user postgres runs as when compute_ctl runs as root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// User name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Its home directory (postgres' tools like it to exist).
    pub home: std::path::PathBuf,
}

impl RunAs {
    /// When running as root, looks up `user`; otherwise postgres runs as us.
    pub fn detect(user: &str) -> Result<Option<RunAs>> {
        if !Uid::effective().is_root() {
            return Ok(None);
        }
        let u = User::from_name(user)
            .with_context(|| format!("looking up user {user:?}"))?
            .with_context(|| {
                format!(
                    "running as root, postgres must run as an unprivileged user, and user {user:?} \
                     does not exist (create it, or pass --pg-user)"
                )
            })?;
        if u.uid.is_root() {
            anyhow::bail!("--pg-user {user:?} is root; postgres refuses to run as root");
        }
        Ok(Some(RunAs {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home: u.dir,
        }))
    }

    /// Makes `path` belong to this user.
    pub fn chown(&self, path: &Path) -> Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("chown {} to {}", path.display(), self.name))
    }
}

/// Makes `cmd` run as `run_as` (if any). std drops supplementary groups when
/// root sets a uid, so the child has exactly the user's uid and gid.
pub fn run_as(cmd: &mut Command, run_as: Option<&RunAs>) {
    if let Some(u) = run_as {
        cmd.uid(u.uid)
            .gid(u.gid)
            .env("USER", &u.name)
            .env("HOME", &u.home);
    }
}

/// Runs `cmd` to completion as a helper ([`Child::run`]) and returns its
/// output, stderr being its last lines (each logged at debug level).
pub async fn output(cmd: &mut Command) -> Result<std::process::Output> {
    fn log(line: &str) {
        tracing::debug!(target: "child", "{line}");
    }
    let done = Child::run(cmd, LogAs(log)).await?;
    Ok(std::process::Output {
        status: done.status,
        stdout: done.stdout,
        stderr: done.stderr_tail.join("\n").into_bytes(),
    })
}
