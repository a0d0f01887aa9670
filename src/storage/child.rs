//! Running a helper program (`postgres --sync-safekeepers`, `pg_basebackup`)
//! to completion: its stderr lines go to the log as they come, the last few
//! are kept for the error message, and dropping the future kills the
//! program and everything it started.

use crate::process;
use anyhow::{Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

/// Stderr lines kept for the error message.
const STDERR_TAIL: usize = 10;

/// What a finished program left.
pub(crate) struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// Its last stderr lines.
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

/// Kills the child's process group when dropped before the child was reaped.
struct GroupKiller(Option<u32>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            // The child leads its own group (process_group(0)), so this also
            // reaches what it started, e.g. a shell script's `sleep`.
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            // tokio's kill_on_drop reaps it in the background.
            process::forget(Some(pid));
        }
    }
}

/// Runs `cmd` (stdin closed) to its end. Each stderr line is passed to `log`.
pub(crate) async fn run(cmd: &mut Command, log: fn(&str)) -> Result<Finished> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let mut child = process::spawn(cmd).with_context(|| format!("starting {program}"))?;
    let mut killer = GroupKiller(child.id());
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let read_stdout = async {
        let mut buf = Vec::new();
        if let Some(mut out) = stdout {
            // A read error only shortens the output; the exit status tells.
            let _ = out.read_to_end(&mut buf).await;
        }
        buf
    };
    let read_stderr = async {
        let mut tail = VecDeque::with_capacity(STDERR_TAIL);
        if let Some(err) = stderr {
            let mut err = BufReader::new(err);
            let mut line = Vec::new();
            loop {
                line.clear();
                match err.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                if text.is_empty() {
                    continue;
                }
                log(&text);
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(text);
            }
        }
        tail
    };
    let (status, stdout, tail) = tokio::join!(child.wait(), read_stdout, read_stderr);
    // Reaped (or waiting failed, and kill_on_drop cleans up): nothing to kill.
    let pid = killer.0.take();
    process::forget(pid);
    let status = status.with_context(|| format!("waiting for {program}"))?;
    Ok(Finished {
        status,
        stdout,
        stderr_tail: tail.into(),
    })
}
