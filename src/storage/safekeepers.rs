//! The commit LSN from the safekeepers: `postgres --sync-safekeepers`.

use super::Backoff;
use crate::pgbin::PgBin;
use crate::process::{self, Child, LogAs, RunAs};
use anyhow::{bail, Context, Result};
use compute_states::Lsn;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::Command;

fn log_stderr(line: &str) {
    tracing::info!(target: "sync_safekeepers", "{line}");
}

/// Runs `<pgbin> --sync-safekeepers` with `PGDATA=<pgdata>` and
/// `NEON_AUTH_TOKEN=<token>` (when given) in its environment, as `owner`,
/// and returns the LSN it prints (`X/Y`, the last non-empty line of its
/// stdout). Its stderr lines are logged with target `sync_safekeepers`.
///
/// A failed run (exit status, no LSN) is retried per `backoff`; the error
/// after the last attempt names the exit status and the last stderr lines.
/// Dropping the future kills the program (and anything it started).
pub async fn sync_safekeepers(
    pgbin: &PgBin,
    pgdata: &Path,
    auth_token: Option<&str>,
    owner: Option<&RunAs>,
    backoff: &Backoff,
) -> Result<Lsn> {
    sync(pgbin, pgdata, auth_token, owner, backoff, None).await
}

/// [`sync_safekeepers`] with a time limit on each attempt: a run that has
/// not answered within `attempt_timeout` is killed and counts as failed.
pub async fn sync_safekeepers_bounded(
    pgbin: &PgBin,
    pgdata: &Path,
    auth_token: Option<&str>,
    owner: Option<&RunAs>,
    backoff: &Backoff,
    attempt_timeout: Duration,
) -> Result<Lsn> {
    sync(
        pgbin,
        pgdata,
        auth_token,
        owner,
        backoff,
        Some(attempt_timeout),
    )
    .await
}

async fn sync(
    pgbin: &PgBin,
    pgdata: &Path,
    auth_token: Option<&str>,
    owner: Option<&RunAs>,
    backoff: &Backoff,
    attempt_timeout: Option<Duration>,
) -> Result<Lsn> {
    let started = Instant::now();
    let (lsn, attempts) = backoff
        .retry("sync-safekeepers", |attempt| async move {
            tracing::info!(attempt, pgdata = %pgdata.display(), "running postgres --sync-safekeepers");
            let once = sync_once(pgbin, pgdata, auth_token, owner);
            match attempt_timeout {
                None => once.await,
                // Dropping the run kills it.
                Some(limit) => tokio::time::timeout(limit, once).await.unwrap_or_else(|_| {
                    bail!("postgres --sync-safekeepers did not answer within {limit:?}")
                }),
            }
        })
        .await?;
    tracing::info!(
        %lsn,
        attempts,
        ms = started.elapsed().as_millis() as u64,
        "safekeepers synced"
    );
    Ok(lsn)
}

async fn sync_once(
    pgbin: &PgBin,
    pgdata: &Path,
    auth_token: Option<&str>,
    owner: Option<&RunAs>,
) -> Result<Lsn> {
    let mut cmd = Command::new(pgbin.postgres());
    cmd.arg("--sync-safekeepers").env("PGDATA", pgdata);
    match auth_token {
        Some(token) => cmd.env("NEON_AUTH_TOKEN", token),
        None => cmd.env_remove("NEON_AUTH_TOKEN"),
    };
    process::run_as(&mut cmd, owner);
    let done = Child::run(&mut cmd, LogAs(log_stderr)).await?;
    if !done.status.success() {
        bail!(
            "postgres --sync-safekeepers exited with {} ({})",
            done.status,
            done.stderr_summary()
        );
    }
    let stdout = String::from_utf8_lossy(&done.stdout);
    let last = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .with_context(|| {
            format!(
                "postgres --sync-safekeepers succeeded but printed no LSN ({})",
                done.stderr_summary()
            )
        })?;
    last.parse()
        .with_context(|| format!("postgres --sync-safekeepers printed {last:?}, not an LSN"))
}
