//! `pg_dump --schema-only` of one database, streamed as it is produced: what
//! `/database_schema` serves.
//!
//! A module of its own (not the catalog's, which reconciles; not the HTTP
//! handler's), because running a child process
//! well is most of it: the password goes through a 0600 password file (never
//! argv), stderr is drained on its own so pg_dump never blocks on a pipe, the
//! first chunk decides between success and failure (a pg_dump failing at once
//! is an error, not an empty dump), a failure later ends the stream with an
//! error (a client never takes a partial dump for a whole one), and a client
//! that goes away kills pg_dump. One dump runs at a time (as the reference):
//! another asked meanwhile is refused at once ([`DumpError::Busy`]), and a
//! dump whose reader takes nothing for the stall bound is stopped, its
//! pg_dump killed, so a client that never reads cannot hold postgres
//! connections or pg_dump processes. compute_ctl's own bookkeeping (the
//! `neon_migration` schema, `public.health_check`) is not the user's schema
//! and is left out.

use crate::connect::Connector;
use crate::process::{Child, LogAs, Options};
use crate::secret::PassFile;
use anyhow::anyhow;
use bytes::Bytes;
use futures_util::StreamExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Semaphore;
use tokio_stream::wrappers::ReceiverStream;

/// How much of pg_dump's output is read at a time.
const CHUNK: usize = 64 * 1024;

/// Dumps at once, at most (the reference runs one at a time).
pub const CONCURRENT_DUMPS: usize = 1;

/// How long a dump waits for another to end before it is refused.
const PERMIT_WAIT: Duration = Duration::from_millis(500);

/// The permits of the dumps running.
static DUMPS: Semaphore = Semaphore::const_new(CONCURRENT_DUMPS);

/// The dump, chunk by chunk; an `Err` item ends it (pg_dump failed midway,
/// or the dump was stopped because its reader stalled).
pub type SchemaStream = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync>,
>;

/// Why there is no dump to stream.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The database named does not exist.
    #[error("database {0:?} does not exist")]
    NoSuchDatabase(String),
    /// [`CONCURRENT_DUMPS`] dumps are running already.
    #[error("a schema dump is already running; retry when it is done")]
    Busy,
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
/// stream, once the first chunk shows that it works. A reader that takes
/// nothing for `stall` stops the dump (pg_dump is killed, the stream ends
/// with an error).
pub async fn schema(
    pg_dump: &Path,
    connector: &Connector,
    database: &str,
    stall: Duration,
) -> Result<SchemaStream, DumpError> {
    // Held until the dump's task ends, after pg_dump has. A dump ending
    // right now is waited for a moment (its client may ask again at once).
    let permit = match tokio::time::timeout(PERMIT_WAIT, DUMPS.acquire()).await {
        Ok(Ok(permit)) => permit,
        _ => return Err(DumpError::Busy),
    };
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
            Ok(Box::pin(futures_util::stream::empty()))
        } else {
            Err(anyhow!("pg_dump failed: {err}").into())
        };
    }
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    // Set once the whole dump is sent: a stream that ends without it was cut.
    let complete = Arc::new(AtomicBool::new(false));
    let completed = complete.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let _passfile = passfile;
        let mut chunk = first;
        let delivered = loop {
            if !chunk.is_empty() {
                match tokio::time::timeout(stall, tx.send(Ok(Bytes::from(chunk)))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break false, // the client went away
                    Err(_) => {
                        tracing::warn!(
                            "the reader of a schema dump took nothing for {stall:?}; pg_dump stopped"
                        );
                        break false;
                    }
                }
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
        } else if delivered {
            completed.store(true, Ordering::SeqCst);
        }
    });
    let cut = futures_util::stream::once(async move {
        (!complete.load(Ordering::SeqCst))
            .then(|| Err(std::io::Error::other("the schema dump was stopped")))
    })
    .filter_map(std::future::ready);
    Ok(Box::pin(ReceiverStream::new(rx).chain(cut)))
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
