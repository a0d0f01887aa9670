//! `pg_dump --schema-only` of one database, streamed as it is produced: what
//! `/database_schema` serves.
//!
//! It lives here, not in the HTTP handler, because running a child process
//! well is most of it: the password goes through a 0600 password file (never
//! argv), stderr is drained on its own so pg_dump never blocks on a pipe, the
//! first chunk decides between success and failure (a pg_dump failing at once
//! is an error, not an empty dump), a failure later ends the stream with an
//! error (a client never takes a partial dump for a whole one), and a client
//! that goes away kills pg_dump. compute_ctl's own bookkeeping (the
//! `neon_migration` schema, `public.health_check`) is not the user's schema
//! and is left out.

use super::Connector;
use crate::process::{Child, LogAs, Options};
use crate::secret::PassFile;
use anyhow::anyhow;
use bytes::Bytes;
use std::path::Path;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_stream::wrappers::ReceiverStream;

/// How much of pg_dump's output is read at a time.
const CHUNK: usize = 64 * 1024;

/// The dump, chunk by chunk; an `Err` item ends it (pg_dump failed midway).
pub type SchemaStream = ReceiverStream<Result<Bytes, std::io::Error>>;

/// Why there is no dump to stream.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The database named does not exist.
    #[error("database {0:?} does not exist")]
    NoSuchDatabase(String),
    /// Connecting, starting pg_dump, or pg_dump failing before its first byte.
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for DumpError {
    fn from(e: anyhow::Error) -> Self {
        DumpError::Failed(e)
    }
}

/// Starts `pg_dump --schema-only` of `database` and returns its output as a
/// stream, once the first chunk shows that it works.
pub async fn schema(
    pg_dump: &Path,
    connector: &Connector,
    database: &str,
) -> Result<SchemaStream, DumpError> {
    let client = connector.connect(connector.maintenance_db()).await?;
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) $1",
            &[&database],
        )
        .await
        .map_err(|e| anyhow!(e).context("looking the database up"))?;
    if exists.is_none() {
        return Err(DumpError::NoSuchDatabase(database.to_string()));
    }
    drop(client);

    let mut cmd = tokio::process::Command::new(pg_dump);
    cmd.arg("--schema-only")
        .arg("--exclude-schema=neon_migration")
        .arg("--exclude-table=public.health_check")
        .arg("--no-password")
        .arg("--dbname")
        .arg(connector.libpq_connstring(database));
    // Removed when the stream's task ends, after pg_dump has.
    let passfile = connector
        .password()
        .map(|p| PassFile::create(&p, None))
        .transpose()?;
    if let Some(f) = &passfile {
        cmd.env("PGPASSFILE", f.path());
    }
    // Its stderr is followed on its own task, so pg_dump never blocks on it.
    let mut child = Child::spawn(&mut cmd, Options::HELPER, LogAs(log_stderr))?;
    let Some(mut stdout) = child.take_stdout() else {
        return Err(anyhow!("pg_dump has no stdout").into());
    };

    let first = read_chunk(&mut stdout).await.unwrap_or_default();
    if first.is_empty() {
        let (ok, err) = finish(child).await;
        return if ok {
            let (_, rx) = tokio::sync::mpsc::channel(1);
            Ok(ReceiverStream::new(rx))
        } else {
            Err(anyhow!("pg_dump failed: {err}").into())
        };
    }
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let _passfile = passfile;
        let mut chunk = first;
        let delivered = loop {
            if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                break false; // the client went away
            }
            match read_chunk(&mut stdout).await {
                Ok(next) if next.is_empty() => break true,
                Ok(next) => chunk = next,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break false;
                }
            }
        };
        if !delivered {
            drop(stdout);
            child.kill_group();
        }
        let (ok, err) = finish(child).await;
        if delivered && !ok {
            tracing::error!(stderr = err, "pg_dump failed");
            let e = std::io::Error::other(format!("pg_dump failed: {err}"));
            let _ = tx.send(Err(e)).await;
        }
    });
    Ok(ReceiverStream::new(rx))
}

/// Reads up to one chunk; empty at the end of the output.
async fn read_chunk(out: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; CHUNK];
    let n = out.read(&mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

fn log_stderr(line: &str) {
    tracing::info!(target: "pg_dump", "{line}");
}

/// Waits for pg_dump to end: whether it succeeded, and its last stderr lines.
async fn finish(child: Child) -> (bool, String) {
    match child.output().await {
        Ok(done) => (done.status.success(), done.stderr_tail.join("\n")),
        Err(e) => (false, format!("{e:#}")),
    }
}
