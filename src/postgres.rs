//! The postgres process: start it as a child, forward its log lines into
//! ours, wait until it accepts connections, stop it.

use crate::pgbin::PgBin;
use crate::process::{self, Child, Lines, Options, RunAs};
use crate::secret::Secret;
use anyhow::{bail, Context, Result};
use compute_states::{Lsn, TerminationMode};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;
use tokio::process::Command;

/// Where Neon's postgres (and `--sync-safekeepers`) reads the storage token.
pub const STORAGE_TOKEN_VAR: &str = "NEON_AUTH_TOKEN";

/// How many of postgres' last log lines are kept for error messages.
const LOG_TAIL: usize = 20;

/// A running postmaster, started by us (a [`Child`] leading its own process
/// group). Dropping it without [`Postgres::stop`] asks postgres for an
/// immediate shutdown, so no postgres outlives an abandoned start.
pub struct Postgres {
    child: Child,
    pid: Pid,
    pgdata: PathBuf,
    stop_timeout: Duration,
    /// The storage token in its environment: postgres reads it only at start.
    storage_token: Option<Secret>,
}

/// Proof that a postgres stopped: only [`Postgres::stop`] makes one (the
/// driver's move to Terminated takes it).
#[derive(Debug)]
#[must_use = "the proof that postgres stopped is what Terminated needs"]
pub struct Stopped {
    checkpoint: Option<Lsn>,
}

impl Stopped {
    /// The shutdown checkpoint's location, after a fast stop that finished in time.
    pub fn checkpoint(&self) -> Option<Lsn> {
        self.checkpoint
    }
}

/// How long an immediate shutdown may take before the postmaster's whole
/// process group is killed (postgres itself SIGKILLs its children after 5 s).
const IMMEDIATE_GRACE: Duration = Duration::from_secs(8);

/// The default shutdown budget (`--stop-timeout`).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(25);

impl Postgres {
    /// Starts `postgres -D pgdata` (as `owner`, if set) and waits until it
    /// accepts connections, or fails with its last log lines if it exits first.
    ///
    /// `storage_token` (the spec's `storage_auth_token`) is given to postgres
    /// as `NEON_AUTH_TOKEN` in its environment, where Neon's postgres reads
    /// it to authenticate to the pageserver and the safekeepers; never in
    /// its argv. Without one, the variable is removed, so a token in our own
    /// environment never reaches a compute whose spec has none.
    pub async fn start(
        pgbin: &PgBin,
        pgdata: &Path,
        owner: Option<&RunAs>,
        timeout: Duration,
        storage_token: Option<&Secret>,
    ) -> Result<Postgres> {
        Postgres::spawn(pgbin, pgdata, owner, timeout, &[], storage_token).await
    }

    /// [`Postgres::start`] with `settings` given on the command line
    /// (`-c name=value`), over those of the configuration files, and no
    /// storage token.
    pub async fn start_with(
        pgbin: &PgBin,
        pgdata: &Path,
        owner: Option<&RunAs>,
        timeout: Duration,
        settings: &[(&str, &str)],
    ) -> Result<Postgres> {
        Postgres::spawn(pgbin, pgdata, owner, timeout, settings, None).await
    }

    async fn spawn(
        pgbin: &PgBin,
        pgdata: &Path,
        owner: Option<&RunAs>,
        timeout: Duration,
        settings: &[(&str, &str)],
        storage_token: Option<&Secret>,
    ) -> Result<Postgres> {
        let mut cmd = Command::new(pgbin.postgres());
        cmd.arg("-D")
            .arg(pgdata)
            .current_dir(pgdata)
            // Postgres' messages in English whatever the container's locale.
            .env("LC_MESSAGES", "C");
        match storage_token {
            Some(token) => cmd.env(STORAGE_TOKEN_VAR, token.expose()),
            None => cmd.env_remove(STORAGE_TOKEN_VAR),
        };
        for (name, value) in settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        if crate::logging::format() == crate::logging::LogFormat::Json {
            // Lines the JSON log can take apart (see logging::parse_pg_line).
            cmd.arg("-c").arg(format!(
                "log_line_prefix={}",
                crate::logging::PG_LINE_PREFIX
            ));
        }
        process::run_as(&mut cmd, owner);
        // Its own process group (every Child's): a Ctrl-C on compute_ctl's
        // terminal reaches compute_ctl only, which then stops postgres in
        // order. No parent-death signal: see `Options::die_with_us`.
        let options = Options {
            die_with_us: false,
            tail_lines: LOG_TAIL,
            line_bytes: MAX_LOG_LINE,
        };
        let mut child = Child::spawn(&mut cmd, options, PgLines::default())?;
        child.follow_stdout(PgLines::default());
        let pid = Pid::from_raw(child.pid());
        let mut pg = Postgres {
            child,
            pid,
            pgdata: pgdata.to_path_buf(),
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            storage_token: storage_token.cloned(),
        };
        if let Err(e) = pg.wait_ready(timeout).await {
            if pg.child.exit_status().is_none() {
                // Not ready in time: stop it before reporting.
                pg.child.signal(Signal::SIGQUIT);
                let _ = pg.wait().await;
            }
            return Err(e);
        }
        tracing::info!(pid = pid.as_raw(), "postgres is ready");
        Ok(pg)
    }

    /// Sets the shutdown budget of [`Postgres::stop`] (default
    /// [`DEFAULT_STOP_TIMEOUT`]).
    pub fn with_stop_timeout(mut self, budget: Duration) -> Postgres {
        self.stop_timeout = budget;
        self
    }

    /// The postmaster's pid.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// The storage token postgres was started with (it reads it only then).
    pub fn storage_token(&self) -> Option<&Secret> {
        self.storage_token.as_ref()
    }

    /// The last lines postgres logged.
    pub fn log_tail(&self) -> String {
        self.child.tail().text()
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let pidfile = self.pgdata.join("postmaster.pid");
        let ready = async {
            loop {
                if postmaster_ready(&pidfile, self.pid.as_raw()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        tokio::select! {
            () = ready => Ok(()),
            () = tokio::time::sleep(timeout) => {
                bail!(
                    "postgres did not accept connections within {timeout:?}; its last log lines:\n{}",
                    self.log_tail()
                )
            }
            status = self.child.wait() => {
                let status = status.context("waiting for postgres")?;
                // Give the log forwarders a moment to read the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                bail!("postgres exited during startup ({status}); its last log lines:\n{}", self.log_tail())
            }
        }
    }

    /// Waits until postgres exits on its own; cancel-safe.
    pub async fn wait(&mut self) -> Result<ExitStatus> {
        self.child.wait().await
    }

    /// Stops postgres: fast (SIGINT: shutdown checkpoint) or immediate
    /// (SIGQUIT), and waits for it to exit. A fast shutdown still running
    /// after the stop budget becomes immediate; an immediate one still
    /// running after [`IMMEDIATE_GRACE`] gets its process group killed, so
    /// this never returns while the postmaster runs. After a fast shutdown
    /// that finished in time, the proof carries the shutdown checkpoint.
    pub async fn stop(self, mode: TerminationMode, pgbin: &PgBin) -> Result<Stopped> {
        let checkpoint = self.stop_inner(mode, pgbin).await?;
        Ok(Stopped { checkpoint })
    }

    async fn stop_inner(mut self, mode: TerminationMode, pgbin: &PgBin) -> Result<Option<Lsn>> {
        let signal = match mode {
            TerminationMode::Fast => Signal::SIGINT,
            TerminationMode::Immediate => Signal::SIGQUIT,
        };
        if self.child.exit_status().is_none() {
            tracing::info!(pid = self.pid.as_raw(), %mode, "stopping postgres");
            self.child.signal(signal);
        }
        let mut clean = mode == TerminationMode::Fast;
        let budget = self.stop_timeout;
        if clean && tokio::time::timeout(budget, self.wait()).await.is_err() {
            tracing::warn!(
                pid = self.pid.as_raw(),
                "postgres did not stop within the stop timeout ({budget:?}): immediate shutdown"
            );
            self.child.signal(Signal::SIGQUIT);
            clean = false;
        }
        if tokio::time::timeout(IMMEDIATE_GRACE, self.wait())
            .await
            .is_err()
        {
            tracing::error!(
                pid = self.pid.as_raw(),
                "postgres ignored the immediate shutdown for {IMMEDIATE_GRACE:?}: killing its process group"
            );
            self.child.kill_group();
        }
        let status = self.wait().await?;
        tracing::info!(%status, "postgres stopped");
        if !clean {
            return Ok(None);
        }
        match checkpoint_lsn(pgbin, &self.pgdata).await {
            Ok(lsn) => Ok(Some(lsn)),
            Err(e) => {
                tracing::warn!("cannot read the shutdown checkpoint LSN: {e:#}");
                Ok(None)
            }
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.child.exit_status().is_none() {
            // Abandoned (e.g. a start interrupted by a signal): immediate
            // shutdown rather than the Child's group kill, so postgres stops
            // its own backends. The child is reaped in the background;
            // whoever ends the process waits for it with [`wait_abandoned`].
            let pid = self.child.abandon(Signal::SIGQUIT);
            ABANDONED.lock().push(pid);
        }
    }
}

/// Postmasters dropped without a stop; see [`wait_abandoned`].
static ABANDONED: Mutex<Vec<Pid>> = Mutex::new(Vec::new());

/// Waits (up to `limit`) until every abandoned postmaster has exited, so
/// none outlives compute_ctl.
pub async fn wait_abandoned(limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        ABANDONED.lock().retain(|pid| process::alive(pid.as_raw()));
        if ABANDONED.lock().is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            // Never leave one behind: kill what is left, groups included.
            for pid in ABANDONED.lock().iter() {
                tracing::warn!(
                    pid = pid.as_raw(),
                    "an abandoned postgres is still shutting down: killing its process group"
                );
                let _ = nix::sys::signal::killpg(*pid, Signal::SIGKILL);
            }
            let killed = tokio::time::Instant::now() + Duration::from_secs(2);
            while ABANDONED
                .lock()
                .iter()
                .any(|pid| process::alive(pid.as_raw()))
                && tokio::time::Instant::now() < killed
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            ABANDONED.lock().clear();
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether postmaster.pid names `pid` and says it accepts connections (its 8th line).
fn postmaster_ready(pidfile: &Path, pid: i32) -> bool {
    let Ok(text) = std::fs::read_to_string(pidfile) else {
        return false;
    };
    let mut lines = text.lines();
    let same_pid = lines.next().and_then(|l| l.trim().parse::<i32>().ok()) == Some(pid);
    // "ready" for a primary, "standby" for a hot standby accepting reads.
    same_pid
        && matches!(
            text.lines().nth(7).map(str::trim),
            Some("ready" | "standby")
        )
}

/// Longest postgres log line forwarded; the rest of a longer one is dropped
/// and the line marked as cut.
pub const MAX_LOG_LINE: usize = 64 * 1024;

/// Postgres' output lines (stdout and stderr each have their own):
/// redacted, forwarded into our log, and kept for the tail.
#[derive(Default)]
struct PgLines {
    // `PASSWORD '...'` in statements (also over several lines), `password=...`
    // in connection strings (e.g. a changed primary_conninfo).
    redactor: crate::secret::PasswordRedactor,
}

impl Lines for PgLines {
    fn line(&mut self, text: &str, cut: usize) -> Option<String> {
        let line = self.redactor.line(text);
        if cut > 0 {
            // What followed is unseen: a password it opened cannot leak, and
            // one it closed must not redact the next line.
            self.redactor.reset();
        }
        let line = process::marked(line, cut);
        crate::logging::forward_pg_line(&line);
        crate::edge::export::line(&line);
        Some(line)
    }
}

/// "Latest checkpoint location" from `pg_controldata`.
async fn checkpoint_lsn(pgbin: &PgBin, pgdata: &Path) -> Result<Lsn> {
    let mut cmd = Command::new(pgbin.tool("pg_controldata"));
    cmd.arg("-D").arg(pgdata).env("LC_ALL", "C");
    let out = process::output(&mut cmd)
        .await
        .context("running pg_controldata")?;
    if !out.status.success() {
        bail!(
            "pg_controldata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Latest checkpoint location:"))
        .context("pg_controldata printed no checkpoint location")?;
    Ok(line.trim().parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_our_pid_and_the_ready_status() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("postmaster.pid");
        assert!(!postmaster_ready(&f, 42));
        std::fs::write(&f, "42\n/d\n1\n5432\n/tmp\nlocalhost\n  1 2\nstarting\n").unwrap();
        assert!(!postmaster_ready(&f, 42));
        std::fs::write(&f, "42\n/d\n1\n5432\n/tmp\nlocalhost\n  1 2\nready   \n").unwrap();
        assert!(postmaster_ready(&f, 42));
        assert!(!postmaster_ready(&f, 43));
    }

    #[tokio::test]
    async fn long_lines_are_capped_and_marked() {
        let long = "x".repeat(MAX_LOG_LINE + 10);
        let input = format!("short\r\n{long}\nlast");
        let mut reader = tokio::io::BufReader::with_capacity(1000, input.as_bytes());
        let mut lines = Vec::new();
        while let Some(l) = crate::process::lines::read_capped_line(&mut reader, MAX_LOG_LINE)
            .await
            .unwrap()
        {
            lines.push((l.0.len(), l.1));
        }
        assert_eq!(lines, [(5, 0), (MAX_LOG_LINE, 10), (4, 0)]);
    }
}
