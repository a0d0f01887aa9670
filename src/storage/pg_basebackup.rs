//! A vanilla replica (no Neon): copy the primary with `pg_basebackup`.

use super::{clear_after_failure, mask_connstring, prepare_empty_dir, Backoff};
use crate::pgbin::PgBin;
use crate::process::{self, Child, LogAs, RunAs};
use crate::secret::{blank_password, PassFile, Secret};
use crate::storage::BasebackupStats;
use anyhow::{bail, Result};
use std::path::Path;
use std::time::Instant;
use tokio::process::Command;

fn log_stderr(line: &str) {
    tracing::info!(target: "pg_basebackup", "{line}");
}

/// Copies a running primary into `pgdata` with
/// `pg_basebackup -D <pgdata> -d <primary_connstring> -X stream -R`, run as
/// `owner` (`-R` writes `primary_conninfo` and `standby.signal`, so the copy
/// starts as its standby). Also passes `--checkpoint=fast` (start copying
/// now rather than after a spread checkpoint), `-w` (never prompt for a
/// password) and `-v` (its progress lines are logged, target `pg_basebackup`).
///
/// `pgdata` must be empty or missing (it is created, mode 0700). A failed
/// attempt is cleared from `pgdata` and retried per `backoff`; the final
/// error carries pg_basebackup's exit status and last stderr lines.
/// In the returned stats, `bytes` is the size of the copied files.
///
/// A password in the connection string never reaches pg_basebackup's argv:
/// it is emptied there and handed over in a 0600 password file (`PGPASSFILE`).
pub async fn pg_basebackup(
    pgbin: &PgBin,
    primary_connstring: &str,
    pgdata: &Path,
    owner: Option<&RunAs>,
    backoff: &Backoff,
) -> Result<BasebackupStats> {
    prepare_empty_dir(pgdata, owner)?;
    let started = Instant::now();
    let masked = mask_connstring(primary_connstring);
    let password = primary_connstring
        .parse::<tokio_postgres::Config>()
        .ok()
        .and_then(|c| {
            c.get_password()
                .map(|p| Secret::new(String::from_utf8_lossy(p)))
        });
    let argv_connstring = blank_password(primary_connstring);
    let ((), attempts) = backoff
        .retry("pg_basebackup", |attempt| {
            let (masked, password, argv_connstring) = (&masked, &password, &argv_connstring);
            async move {
                tracing::info!(attempt, primary = %masked, pgdata = %pgdata.display(), "running pg_basebackup");
                let mut cmd = Command::new(pgbin.tool("pg_basebackup"));
                cmd.arg("-D")
                    .arg(pgdata)
                    .arg("-d")
                    .arg(argv_connstring)
                    .args(["-X", "stream", "-R", "--checkpoint=fast", "-w", "-v"]);
                process::run_as(&mut cmd, owner);
                let passfile = match password {
                    Some(p) => Some(PassFile::create(p, owner)?),
                    None => None,
                };
                if let Some(f) = &passfile {
                    cmd.env("PGPASSFILE", f.path());
                }
                let result = match Child::run(&mut cmd, LogAs(log_stderr)).await {
                    Ok(done) if done.status.success() => match &passfile {
                        Some(f) => keep_passfile(pgdata, f, owner),
                        None => Ok(()),
                    },
                    Ok(done) => Err(anyhow::anyhow!(
                        "pg_basebackup from {masked} exited with {} ({})",
                        done.status,
                        done.stderr_summary()
                    )),
                    Err(e) => Err(e),
                };
                result.map_err(|e| clear_after_failure(pgdata, e))
            }
        })
        .await?;
    let bytes = dir_size(pgdata);
    let duration = started.elapsed();
    if !pgdata.join("standby.signal").exists() {
        bail!("pg_basebackup -R finished but wrote no standby.signal");
    }
    tracing::info!(
        bytes,
        attempts,
        ms = duration.as_millis() as u64,
        "pg_basebackup done"
    );
    Ok(BasebackupStats {
        bytes,
        duration,
        attempts,
        connect_micros: 0,
    })
}

/// The standby's walreceiver needs the password too: `-R` wrote
/// `passfile='<temporary file>'` into `primary_conninfo`, and that file goes
/// away. A copy (0600, the owner's) inside PGDATA takes its place there.
/// PGDATA is postgres': both files are read and written through a handle
/// on it, never through a symlink, and replaced rather than written into.
fn keep_passfile(pgdata: &Path, passfile: &PassFile, owner: Option<&RunAs>) -> Result<()> {
    use anyhow::Context;
    const AUTO: &str = "postgresql.auto.conf";
    const KEPT: &str = "primary.pgpass";
    let temporary = passfile.path().display().to_string();
    // Absolute: postgres runs in PGDATA, whatever our working directory.
    let kept_text = std::path::absolute(pgdata)?
        .join(KEPT)
        .display()
        .to_string();
    let dir = crate::safe_fs::Dir::open(pgdata)?;
    let Some(text) = dir.read_string(AUTO)? else {
        return Ok(());
    };
    if !text.contains(&temporary) || kept_text.contains('\'') {
        return Ok(());
    }
    let ids = owner.map(|u| (u.uid, u.gid));
    dir.replace(KEPT, passfile.contents().expose().as_bytes(), 0o600, ids)
        .context("keeping the standby's password file")?;
    dir.replace(
        AUTO,
        text.replace(&temporary, &kept_text).as_bytes(),
        0o600,
        ids,
    )
    .context("writing postgresql.auto.conf")
}

/// The total size of the files under `dir` (symlinks not followed).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
