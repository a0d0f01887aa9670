//! Postmasters nobody supervises any more: one that a compute_ctl killed
//! outright (SIGKILL, the OOM killer) left running on a PGDATA, or on a
//! template being built, is stopped before that directory is wiped.

use crate::process;
use anyhow::{bail, Result};
use std::path::Path;

/// How long an orphaned postmaster gets for its immediate shutdown before
/// its process group is killed.
pub(super) const ORPHAN_STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Stops a postmaster that still runs on `pgdata` though no compute_ctl
/// supervises it: one left behind by a compute_ctl killed outright (SIGKILL,
/// OOM killer), outside a container. It is found through `postmaster.pid`,
/// and recognised by its working directory (postgres works in its data
/// directory), so a recycled pid is never touched. It gets an immediate
/// shutdown (the data is about to be wiped), then, after `limit`, SIGKILL
/// for its whole process group. Fails if it survives that.
pub fn stop_orphan(pgdata: &Path, limit: std::time::Duration) -> Result<()> {
    use nix::sys::signal::{kill, killpg, Signal};
    use nix::unistd::Pid;
    let Ok(text) = std::fs::read_to_string(pgdata.join("postmaster.pid")) else {
        return Ok(());
    };
    let Some(pid) = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
        .filter(|pid| *pid > 0)
    else {
        return Ok(());
    };
    let Ok(dir) = pgdata.canonicalize() else {
        return Ok(());
    };
    let works_here = std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir);
    if !works_here || !process::alive(pid) {
        return Ok(());
    }
    tracing::warn!(
        pid,
        pgdata = %pgdata.display(),
        "a postmaster left by an earlier compute_ctl still runs on PGDATA: stopping it before the wipe"
    );
    let pid = Pid::from_raw(pid);
    let _ = kill(pid, Signal::SIGQUIT);
    let gone = |within: std::time::Duration| {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if !process::alive(pid.as_raw()) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        !process::alive(pid.as_raw())
    };
    if gone(limit) {
        tracing::info!(pid = pid.as_raw(), "the orphaned postmaster has stopped");
        return Ok(());
    }
    let _ = killpg(pid, Signal::SIGKILL);
    let _ = kill(pid, Signal::SIGKILL);
    if gone(std::time::Duration::from_secs(2)) {
        tracing::warn!(pid = pid.as_raw(), "killed the orphaned postmaster");
        return Ok(());
    }
    bail!(
        "postmaster {pid} still runs on PGDATA {} and does not die; not wiping it",
        pgdata.display()
    )
}
