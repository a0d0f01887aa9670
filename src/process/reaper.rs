//! The set of our own children, and the PID-1 reaper that reaps everyone
//! else's.
//!
//! As PID 1 (a container entrypoint), every orphaned process of the container
//! is re-parented to us, and must be reaped or it stays a zombie. We cannot
//! simply `waitpid(-1)`: that would steal the exit status of our own children,
//! which tokio waits for. So every child is spawned through [`spawn`], which
//! records its pid (under the same lock as the spawn, so the reaper never
//! sees it unrecorded); it is forgotten only once it has been reaped
//! ([`crate::process::Child`] does both), and the reaper reaps every exited
//! child not recorded.

use anyhow::{Context, Result};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::LazyLock;
use tokio::process::Command;

/// Pids of the children we spawned and wait for ourselves.
static OWN_CHILDREN: LazyLock<Mutex<HashSet<i32>>> = LazyLock::new(Default::default);

/// Spawns `cmd` and records the child as ours, so the reaper leaves it to
/// whoever waits for it; [`forget`] it once reaped. Our settings (some read
/// from secret files) are none of a child's business: they are removed from
/// its environment. Use `Child`, which does the rest.
pub fn spawn(cmd: &mut Command) -> std::io::Result<tokio::process::Child> {
    for (name, _) in std::env::vars_os() {
        let name_str = name.to_string_lossy();
        if name_str.starts_with("COMPUTE_CTL_") || name_str.starts_with("NEON_CONTROL_PLANE_TOKEN")
        {
            cmd.env_remove(&name);
        }
    }
    let mut own = OWN_CHILDREN.lock();
    let child = cmd.spawn()?;
    if let Some(pid) = child.id() {
        own.insert(pid as i32);
    }
    Ok(child)
}

/// Forgets a child once it has been reaped (never before: the reaper would
/// take its exit status).
pub fn forget(pid: Option<u32>) {
    if let Some(pid) = pid {
        OWN_CHILDREN.lock().remove(&(pid as i32));
    }
}

/// Whether `pid` is recorded as one of our own children.
#[cfg(test)]
pub(crate) fn is_own(pid: i32) -> bool {
    OWN_CHILDREN.lock().contains(&pid)
}

/// Reaps every exited child that is not ours: orphans re-parented to PID 1.
/// Returns how many were reaped.
///
/// `waitid(P_ALL, WNOWAIT)` shows one exited child at a time, and when that
/// one is ours (left for tokio) the orphans behind it would wait for a later
/// SIGCHLD that may never come. So the zombies among our children are listed
/// from `/proc` and each one not ours is reaped by its pid.
pub fn reap_orphans() -> usize {
    let own = OWN_CHILDREN.lock();
    zombie_children(std::process::id() as i32)
        .into_iter()
        .filter(|pid| !own.contains(pid))
        .filter(|&pid| {
            matches!(
                waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..))
            )
        })
        .count()
}

/// The pids of `parent`'s children that have exited and wait to be reaped.
pub(crate) fn zombie_children(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| state_and_parent(&stat))
                == Some(('Z', parent))
        })
        .collect()
}

/// A `/proc/PID/stat` line's state and parent pid (the fields after the
/// command name, which ends with the line's last `)`).
fn state_and_parent(stat: &str) -> Option<(char, i32)> {
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// As PID 1, reaps orphans at every SIGCHLD until the process exits.
pub fn spawn_reaper() -> Result<()> {
    if std::process::id() != 1 {
        return Ok(());
    }
    let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
        .context("installing the SIGCHLD handler")?;
    tokio::spawn(async move {
        while sigchld.recv().await.is_some() {
            let n = reap_orphans();
            if n > 0 {
                tracing::debug!(reaped = n, "reaped orphaned processes");
            }
        }
    });
    Ok(())
}

/// Whether `pid` is alive (a zombie counts as dead).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which ends with the last ')'.
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}
