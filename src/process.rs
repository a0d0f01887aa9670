//! Child processes: spawning as the unprivileged postgres user, and reaping
//! orphans when compute_ctl runs as PID 1.
//!
//! As PID 1 (a container entrypoint), every orphaned process of the container
//! is re-parented to us, and must be reaped or it stays a zombie. We cannot
//! simply `waitpid(-1)`: that would steal the exit status of our own children,
//! which tokio waits for. So every child is spawned through [`spawn`], which
//! records its pid; the reaper lists the exited children from `/proc` and
//! reaps every one it did not spawn.

use anyhow::{Context, Result};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{Pid, Uid, User};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::path::Path;
use std::sync::LazyLock;
use tokio::process::{Child, Command};

/// Pids of the children we spawned (and tokio waits for).
static OWN_CHILDREN: LazyLock<Mutex<HashSet<i32>>> = LazyLock::new(Default::default);

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

/// Spawns a helper (`cmd`) that dies with us: it gets SIGKILL when compute_ctl
/// dies, however it dies (a parent-death signal), and is recorded as ours,
/// so the reaper leaves it to tokio.
///
/// The kernel sends the parent-death signal when the *thread* that spawned
/// the child exits; helpers are spawned from the runtime's worker threads,
/// which live as long as the process.
pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            // We may have died between the fork and the prctl.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other("compute_ctl exited"));
            }
            Ok(())
        });
    }
    spawn_postmaster(cmd)
}

/// Spawns the postmaster: like [`spawn`] but without the parent-death
/// signal. compute_ctl stops postgres in order on every exit path it
/// controls; a postmaster left by a compute_ctl killed outright is found and
/// stopped by the next start through its `postmaster.pid` (see
/// [`crate::pgdata::stop_orphan`]), and inside a container the runtime kills
/// the whole container with its PID 1.
pub fn spawn_postmaster(cmd: &mut Command) -> std::io::Result<Child> {
    // Our settings (some read from secret files) are none of a child's business.
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

/// Runs `cmd` to completion and returns its output (spawned through [`spawn`]).
pub async fn output(cmd: &mut Command) -> std::io::Result<std::process::Output> {
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = spawn(cmd)?;
    let pid = child.id();
    let out = child.wait_with_output().await;
    forget(pid);
    out
}

/// Forgets a child once tokio has reaped it.
pub fn forget(pid: Option<u32>) {
    if let Some(pid) = pid {
        OWN_CHILDREN.lock().remove(&(pid as i32));
    }
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
fn zombie_children(parent: i32) -> Vec<i32> {
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
