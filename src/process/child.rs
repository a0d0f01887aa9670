//! [`Child`]: the one owned handle on a process compute_ctl starts
//! (postgres, initdb, pg_dump, pg_basebackup, `--sync-safekeepers`, the
//! small tools), so each of them gets the same care: its own process group,
//! the group killed if the handle is dropped before the child was waited to
//! completion (a timeout, a cancelled request, a dropped future), recorded
//! as ours for the PID-1 reaper until it is reaped (never forgotten before,
//! or the reaper could steal its exit status), and its stderr read line by
//! line as it comes (logged, each line capped, the last few kept for the
//! error message), so a child never blocks on a full pipe.

use super::lines::{follow, Lines, Tail};
use super::reaper;
use anyhow::{Context, Result};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::process::{ExitStatus, Stdio};
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStdout, Command};
use tokio::task::JoinHandle;

/// How a child is started and how much of its output is kept.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// SIGKILL the child when compute_ctl dies, however it dies (a
    /// parent-death signal): for helpers. The postmaster is stopped in
    /// order instead (see [`crate::pgdata::stop_orphan`]).
    pub die_with_us: bool,
    /// How many of the last lines are kept for error messages.
    pub tail_lines: usize,
    /// The longest line kept or logged; the rest of a longer one is
    /// dropped and the line marked as cut.
    pub line_bytes: usize,
}

impl Options {
    /// A helper run to completion: dies with us, keeps its last 10 stderr
    /// lines of at most 4 KiB each.
    pub const HELPER: Options = Options {
        die_with_us: true,
        tail_lines: 10,
        line_bytes: 4096,
    };
}

/// What a child run to completion left.
#[derive(Debug)]
pub struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// Everything it wrote on stdout.
    pub stdout: Vec<u8>,
    /// Its last stderr lines (capped in number and length).
    pub stderr_tail: Vec<String>,
}

impl Finished {
    /// The last stderr lines, on one line, for an error message.
    pub fn stderr_summary(&self) -> String {
        if self.stderr_tail.is_empty() {
            "no output on stderr".to_string()
        } else {
            format!("stderr: {}", self.stderr_tail.join(" | "))
        }
    }
}

/// A process we started, leading its own process group. Dropped before it
/// was waited to completion, it kills its whole group (SIGKILL) and is
/// reaped in the background; it leaves the reaper's own-children set only
/// once reaped.
pub struct Child {
    child: Option<tokio::process::Child>,
    pid: Pid,
    program: String,
    status: Option<ExitStatus>,
    tail: Tail,
    options: Options,
    stderr: Option<JoinHandle<()>>,
    /// Dropped unreaped: kill the group (false once abandoned).
    kill_group_on_drop: bool,
}

impl Child {
    /// Spawns `cmd` (stdin closed, stdout piped for [`Child::take_stdout`],
    /// stderr followed into `lines` and the tail) as the leader of its own
    /// process group, so a terminal's Ctrl-C reaches compute_ctl only and
    /// the group can be killed as one.
    pub fn spawn(cmd: &mut Command, options: Options, lines: impl Lines) -> Result<Child> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            // Killing is ours to do (the whole group, on drop).
            .kill_on_drop(false);
        if options.die_with_us {
            die_with_us(cmd);
        }
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        let mut child = reaper::spawn(cmd).with_context(|| format!("starting {program}"))?;
        let Some(raw) = child.id() else {
            // Already reaped (cannot happen before the first wait).
            anyhow::bail!("{program} exited at once");
        };
        let tail = Tail::new(options.tail_lines);
        let stderr = child
            .stderr
            .take()
            .map(|err| tokio::spawn(follow(err, options.line_bytes, lines, tail.clone())));
        Ok(Child {
            child: Some(child),
            pid: Pid::from_raw(raw as i32),
            program,
            status: None,
            tail,
            options,
            stderr,
            kill_group_on_drop: true,
        })
    }

    /// Runs `cmd` to completion as a helper ([`Options::HELPER`]), its
    /// stderr lines passed to `lines`.
    pub async fn run(cmd: &mut Command, lines: impl Lines) -> Result<Finished> {
        Child::spawn(cmd, Options::HELPER, lines)?.output().await
    }

    /// The child's pid (also its process group's id).
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// The last lines kept (stderr, and stdout if followed too).
    pub fn tail(&self) -> &Tail {
        &self.tail
    }

    /// The child's stdout, to read it as it comes (once).
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.as_mut()?.stdout.take()
    }

    /// Follows stdout like stderr: into `lines`, and the same tail.
    pub fn follow_stdout(&mut self, lines: impl Lines) {
        if let Some(out) = self.take_stdout() {
            tokio::spawn(follow(
                out,
                self.options.line_bytes,
                lines,
                self.tail.clone(),
            ));
        }
    }

    /// How it exited, once waited for.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Sends `signal` to the child itself (not its group), unless it has
    /// been reaped (its pid could be another process' by now).
    pub fn signal(&self, signal: Signal) {
        if self.status.is_none() {
            let _ = kill(self.pid, signal);
        }
    }

    /// SIGKILLs the child's whole process group, unless it has been reaped.
    pub fn kill_group(&self) {
        if self.status.is_none() {
            // The unreaped leader keeps the group's id from being reused.
            let _ = killpg(self.pid, Signal::SIGKILL);
        }
    }

    /// Waits until the child exits; cancel-safe. Once it is reaped it is
    /// forgotten by the reaper, and its status kept.
    pub async fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let child = self
            .child
            .as_mut()
            .with_context(|| format!("{} was abandoned", self.program))?;
        let status = child
            .wait()
            .await
            .with_context(|| format!("waiting for {}", self.program))?;
        self.status = Some(status);
        reaper::forget(Some(self.pid.as_raw() as u32));
        Ok(status)
    }

    /// Waits for the child to exit while reading its stdout to the end, and
    /// for its stderr to end: what it left.
    pub async fn output(mut self) -> Result<Finished> {
        let stdout = self.take_stdout();
        let read_stdout = async {
            let mut buf = Vec::new();
            if let Some(mut out) = stdout {
                // A read error only shortens the output; the exit status tells.
                let _ = out.read_to_end(&mut buf).await;
            }
            buf
        };
        let (status, stdout) = tokio::join!(self.wait(), read_stdout);
        let status = status?;
        if let Some(stderr) = self.stderr.take() {
            let _ = stderr.await;
        }
        Ok(Finished {
            status,
            stdout,
            stderr_tail: self.tail.lines(),
        })
    }

    /// Gives the child up without killing its group when dropped: `signal`
    /// goes to the child alone now (postgres' immediate shutdown stops its
    /// own children), and once dropped it is reaped in the background.
    /// Returns its pid.
    pub fn abandon(&mut self, signal: Signal) -> Pid {
        self.signal(signal);
        self.kill_group_on_drop = false;
        self.pid
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        if self.kill_group_on_drop {
            // Not waited to completion: the group goes, grandchildren
            // included (e.g. a shell script's `sleep`). The leader, even
            // exited, is unreaped, so the group id is still ours.
            let _ = killpg(self.pid, Signal::SIGKILL);
        }
        let pid = self.pid.as_raw() as u32;
        let Some(mut child) = self.child.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            // Forgotten only once reaped.
            Ok(rt) => {
                rt.spawn(async move {
                    let _ = child.wait().await;
                    reaper::forget(Some(pid));
                });
            }
            // No runtime left (the process is ending): tokio's orphan queue
            // or the reaper reaps it; nobody waits for its status.
            Err(_) => {
                drop(child);
                reaper::forget(Some(pid));
            }
        }
    }
}

/// Makes the child of `cmd` get SIGKILL when compute_ctl dies.
///
/// The kernel sends the parent-death signal when the *thread* that spawned
/// the child exits; children are spawned from the runtime's worker threads,
/// which live as long as the process.
fn die_with_us(cmd: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are sound (another thread may have held the
    // allocator's lock at the fork). It makes two system calls (prctl,
    // getppid) and allocates nothing, on its error paths too: an error is a
    // raw errno (`nix`'s `Errno` converts to `io::Error` by
    // `from_raw_os_error`, which holds the number inline), which std sends
    // to the parent as it is.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // We may have died between the fork and the prctl: then there
            // is nobody left to kill us with, and the child must not run.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}
