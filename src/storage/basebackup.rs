//! The basebackup from the pageserver: `basebackup <tenant> <timeline>
//! [<lsn>] --gzip [--replica]` over the Postgres protocol, whose COPY OUT
//! stream (a gzip'd tar of PGDATA) is unpacked into PGDATA as it arrives.
//!
//! A pipeline: the async side reads the stream and hands each chunk,
//! through a small bounded channel, to a gunzip thread, which hands the
//! gunzipped data, through another, to an unpacking thread (inflating and
//! writing files each take about a core; so they overlap; files are written
//! a MiB at a time, not in `io::copy`'s 8 KiB). Memory stays at
//! a few chunks whatever the archive's size, and a slow disk slows the
//! reading (backpressure) instead of filling memory. Dropping the future
//! drops the first channel's sender: each thread in turn sees the end of
//! its input and stops.

use super::{clear_after_failure, mask_connstring, prepare_empty_dir, Backoff};
use crate::process::RunAs;
use crate::safe_fs::{link_descends, within};
use crate::secret::Secret;
use anyhow::{bail, Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use compute_states::Lsn;
use futures_util::StreamExt;
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Chunks in flight between two stages of the pipeline.
const CHANNEL_CHUNKS: usize = 16;
/// Bytes of gunzipped data handed over at once.
const TAR_CHUNK: usize = 128 * 1024;
/// Connection timeout when the connection string sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Before its first byte the pageserver may wait for the WAL up to the LSN
/// asked for (its `wait_lsn_timeout`, 300 s by default, then an error):
/// that silence is no stall.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(330);

/// What to fetch from the pageserver. Its `Debug` masks the token and any
/// password in the connection string.
#[derive(Clone, Debug)]
pub struct BasebackupRequest<'a> {
    /// libpq connection string of the pageserver. A comma-separated list
    /// names the shards; shard 0 (the first) serves the basebackup.
    pub pageserver_connstring: Secret,
    /// Storage token, sent as the password. Never logged.
    pub auth_token: Option<Secret>,
    /// Tenant id (hex).
    pub tenant_id: &'a str,
    /// Timeline id (hex).
    pub timeline_id: &'a str,
    /// The LSN to start at: a primary's (from the safekeepers) or a static
    /// compute's; None for a replica, which starts at the latest LSN.
    pub lsn: Option<Lsn>,
    /// Asks for a replica's basebackup (`--replica`).
    pub replica: bool,
}

impl BasebackupRequest<'_> {
    /// The command sent to the pageserver.
    pub fn command(&self) -> Result<String> {
        for (what, id) in [("tenant", self.tenant_id), ("timeline", self.timeline_id)] {
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                bail!("invalid {what} id {id:?}: expected hexadecimal characters");
            }
        }
        let mut cmd = format!("basebackup {} {}", self.tenant_id, self.timeline_id);
        // A static compute has an LSN and is a replica; a plain replica has no LSN.
        if let Some(lsn) = self.lsn {
            cmd.push_str(&format!(" {lsn}"));
        }
        cmd.push_str(" --gzip");
        if self.replica {
            cmd.push_str(" --replica");
        }
        Ok(cmd)
    }

    /// The compute's mode as `neon.compute_mode` names it: a primary asks
    /// for no `--replica`; a static compute is a replica with an LSN.
    pub fn compute_mode(&self) -> &'static str {
        match (self.replica, self.lsn) {
            (false, _) => "primary",
            (true, Some(_)) => "static",
            (true, None) => "replica",
        }
    }

    /// Shard 0's connection string.
    fn shard0(&self) -> &str {
        self.pageserver_connstring
            .expose()
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
    }
}

/// How a basebackup went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasebackupStats {
    /// Compressed bytes received in the successful attempt (for
    /// [`super::pg_basebackup()`]: the size of the copied files).
    pub bytes: u64,
    /// Time from the call to the end, retries included.
    pub duration: Duration,
    /// Attempts made, the successful one included.
    pub attempts: u32,
    /// Time to connect to the pageserver in the successful attempt, in
    /// microseconds (0 for [`super::pg_basebackup()`]).
    pub connect_micros: u64,
}

/// Fetches a basebackup from the pageserver into `pgdata` (which must be
/// empty or missing; it is created mode 0700). Connects with tokio-postgres
/// (password = token, `application_name=compute_ctl`), runs
/// [`BasebackupRequest::command`] and unpacks the COPY OUT stream as it
/// arrives: never the whole archive in memory. After the tar's end marker
/// it reads on to the stream's end, so that an error the server sends after
/// the archive fails the basebackup.
///
/// Entries are owned by `owner`, directories mode 0700 and files 0600.
/// A failed attempt leaves `pgdata` empty and is retried per `backoff`; the
/// final error names the cause (connection refused, the server's message,
/// truncated archive, corrupt gzip...).
pub async fn basebackup(
    req: &BasebackupRequest<'_>,
    pgdata: &Path,
    owner: Option<&RunAs>,
    backoff: &Backoff,
) -> Result<BasebackupStats> {
    let command = req.command()?;
    let masked = mask_connstring(req.shard0());
    prepare_empty_dir(pgdata, owner)?;
    let started = Instant::now();
    let ((bytes, phases), attempts) = backoff
        .retry("basebackup", |attempt| {
            let (command, masked) = (&command, &masked);
            async move {
                tracing::info!(attempt, pageserver = %masked, %command, "requesting basebackup");
                basebackup_once(req, command, masked, pgdata, owner, backoff.stall_timeout)
                    .await
                    .map_err(|e| clear_after_failure(pgdata, e))
            }
        })
        .await?;
    let duration = started.elapsed();
    let us = |d: Duration| d.as_micros() as u64;
    tracing::info!(
        bytes,
        attempts,
        connect_us = us(phases.connect),
        first_byte_us = us(phases.first_byte),
        stream_us = us(phases.stream),
        unpack_us = us(phases.unpack),
        fsync_us = us(phases.fsync),
        ms = duration.as_millis() as u64,
        mb_per_s = format!(
            "{:.1}",
            bytes as f64 / 1e6 / duration.as_secs_f64().max(1e-9)
        ),
        "basebackup done"
    );
    Ok(BasebackupStats {
        bytes,
        duration,
        attempts,
        connect_micros: phases.connect.as_micros() as u64,
    })
}

/// Where one successful attempt's time went, each phase after the one
/// before: the connection (TCP and authentication), the wait for the first
/// byte (the command sent, the pageserver's COPY OUT response), the stream
/// (to its last byte, unpacked as it arrives), the unpacking left after
/// the stream ended, and the files' sync (none: postgres' own start syncs
/// what it needs).
#[derive(Debug, Clone, Copy, Default)]
struct Phases {
    connect: Duration,
    first_byte: Duration,
    stream: Duration,
    unpack: Duration,
    fsync: Duration,
}

/// Aborts a spawned task when dropped (the connection's driver task).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One attempt; returns the compressed bytes received and where the time
/// went. A pageserver that sends nothing for
/// `stall` in the middle of the stream (or for [`FIRST_BYTE_TIMEOUT`],
/// if longer, before it) fails the attempt.
async fn basebackup_once(
    req: &BasebackupRequest<'_>,
    command: &str,
    masked: &str,
    pgdata: &Path,
    owner: Option<&RunAs>,
    stall: Duration,
) -> Result<(u64, Phases)> {
    let mut phases = Phases::default();
    let mut config: tokio_postgres::Config = req
        .shard0()
        .parse()
        .with_context(|| format!("invalid pageserver connection string {masked}"))?;
    if let Some(token) = &req.auth_token {
        config.password(token.expose());
    }
    config.application_name("compute_ctl");
    // As the reference: the pageserver learns the compute's mode.
    config.options(format!("-c neon.compute_mode={}", req.compute_mode()));
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let connecting = Instant::now();
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to the pageserver {masked}"))?;
    phases.connect = connecting.elapsed();
    let requested = Instant::now();
    // Errors of the connection surface through the client's calls.
    let _connection = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let stalled = |received: u64, limit: Duration| {
        anyhow::anyhow!(
            "the pageserver sent nothing for {} s after {received} bytes of the basebackup: stalled",
            limit.as_secs_f64()
        )
    };
    let stream = tokio::time::timeout(stall.max(FIRST_BYTE_TIMEOUT), client.copy_out(command))
        .await
        .map_err(|_| stalled(0, stall.max(FIRST_BYTE_TIMEOUT)))?
        .with_context(|| format!("the pageserver refused `{command}`"))?;
    phases.first_byte = requested.elapsed();
    let streaming = Instant::now();

    // network -> [rx] gunzip thread -> [tar_rx] unpack thread -> files
    let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let (tar_tx, tar_rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let gunzipper = tokio::task::spawn_blocking(move || gunzip(ChannelReader::new(rx), tar_tx));
    let (dir, owner_ids) = (pgdata.to_path_buf(), owner.map(|u| (u.uid, u.gid)));
    let unpacker =
        tokio::task::spawn_blocking(move || unpack(ChannelReader::new(tar_rx), &dir, owner_ids));

    let mut received = 0u64;
    let mut stream = std::pin::pin!(stream);
    let pumped: Result<()> = async {
        while let Some(chunk) = tokio::time::timeout(stall, stream.next())
            .await
            .map_err(|_| stalled(received, stall))?
        {
            let chunk = chunk
                .with_context(|| format!("the basebackup stream failed after {received} bytes"))?;
            received += chunk.len() as u64;
            if tx.send(chunk).await.is_err() {
                // A thread stopped on an error; it tells which.
                break;
            }
        }
        Ok(())
    }
    .await;
    phases.stream = streaming.elapsed();
    let unpacking = Instant::now();
    drop(tx);
    let gunzipped = gunzipper.await.context("the gunzip thread panicked")?;
    let unpacked = unpacker.await.context("the unpacking thread panicked")?;
    // The first failure in the pipeline is the cause: the stream's (the
    // server's message, a broken connection), then gunzip's; the stages
    // after it only saw their input end early.
    pumped?;
    let context = || format!("unpacking the basebackup ({received} compressed bytes received)");
    gunzipped.with_context(context)?;
    let stats = unpacked.with_context(context)?;
    phases.unpack = unpacking.elapsed();
    tracing::debug!(
        entries = stats.entries,
        unpacked_bytes = stats.bytes,
        "basebackup unpacked"
    );
    Ok((received, phases))
}

/// A blocking reader over the chunks from the channel; EOF when the sender
/// is dropped.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        ChannelReader {
            rx,
            chunk: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

struct Unpacked {
    entries: u64,
    bytes: u64,
}

/// Gunzips `input` into `output` in chunks of [`TAR_CHUNK`], then reads
/// `input` to its end. Stops early (without error) if the unpacker stopped.
fn gunzip(input: ChannelReader, output: mpsc::Sender<Bytes>) -> Result<()> {
    let mut gz = flate2::read::GzDecoder::new(input);
    loop {
        let mut chunk = BytesMut::zeroed(TAR_CHUNK);
        let mut filled = 0;
        while filled < chunk.len() {
            match gz.read(&mut chunk[filled..]).map_err(archive_error)? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        chunk.truncate(filled);
        if output.blocking_send(chunk.freeze()).is_err() {
            // The unpacker failed; its error is the cause.
            return Ok(());
        }
    }
    // Past the gzip stream (whose trailer checked the data): whatever else
    // the server sends, until the end.
    let trailing = io::copy(&mut gz.into_inner(), &mut io::sink())?;
    if trailing > 0 {
        tracing::warn!(
            trailing,
            "ignored bytes after the gzip stream of the basebackup"
        );
    }
    Ok(())
}

/// Unpacks the tar archive from `input` into `pgdata`, then reads `input`
/// to its end.
///
/// A regular file whose parent is a directory this unpacking made (or
/// PGDATA itself) is written here, created 0600 and given to `owner`
/// through its descriptor, in writes of [`WRITE_BUFFER`]: everything else
/// (directories, symlinks, files elsewhere) goes through `tar`'s
/// `unpack_in`, which checks the path stays inside PGDATA on disk. A
/// symlink entry forgets the directories made so far, so no later file is
/// written through a link.
fn unpack(input: ChannelReader, pgdata: &Path, owner: Option<(u32, u32)>) -> Result<Unpacked> {
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let mut stats = Unpacked {
        entries: 0,
        bytes: 0,
    };
    // Real directories (never symlinks) that this unpacking made.
    let mut made: HashSet<PathBuf> = HashSet::from([pgdata.to_path_buf()]);
    let mut buf = vec![0u8; WRITE_BUFFER];
    for entry in archive.entries().map_err(archive_error)? {
        let mut entry = entry.map_err(archive_error)?;
        let kind = entry.header().entry_type();
        let name = entry.path().map_err(archive_error)?.into_owned();
        let mode = match kind {
            tar::EntryType::Directory => Some(0o700),
            tar::EntryType::Regular | tar::EntryType::Continuous => Some(0o600),
            tar::EntryType::Symlink => None,
            other => bail!(
                "unexpected {other:?} entry {} in the archive",
                name.display()
            ),
        };
        let dest = within(pgdata, &name)
            .with_context(|| format!("archive entry {} is outside PGDATA", name.display()))?;
        stats.entries += 1;
        stats.bytes += entry.size();
        let in_made_dir = dest.parent().is_some_and(|p| made.contains(p));
        if mode == Some(0o600) && in_made_dir {
            write_file(&mut entry, &dest, owner, &mut buf)?;
            continue;
        }
        if kind == tar::EntryType::Symlink {
            let target = entry
                .link_name()
                .map_err(archive_error)?
                .unwrap_or_default();
            if !link_descends(&target) {
                bail!(
                    "archive entry {} is a symlink to {}, which may point outside PGDATA",
                    name.display(),
                    target.display()
                );
            }
        }
        if kind == tar::EntryType::Directory
            && std::fs::symlink_metadata(&dest).is_ok_and(|m| m.file_type().is_symlink())
        {
            // tar would take the link's target for the directory (and chmod it).
            bail!(
                "archive entry {} is a directory over a symlink",
                name.display()
            );
        }
        let inside = entry.unpack_in(pgdata).map_err(archive_error)?;
        if !inside {
            bail!("archive entry {} is outside PGDATA", name.display());
        }
        if let Some(mode) = mode {
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("chmod {mode:o} {}", dest.display()))?;
        }
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(&dest, Some(uid), Some(gid))
                .with_context(|| format!("chown {}", dest.display()))?;
        }
        match kind {
            tar::EntryType::Symlink => made.clear(),
            tar::EntryType::Directory
                if std::fs::symlink_metadata(&dest).is_ok_and(|m| m.file_type().is_dir()) =>
            {
                made.insert(dest);
            }
            _ => {}
        }
    }
    // Past the tar's end marker, to the end of the gunzipped data (so that
    // the gunzip thread reaches the end of the stream too).
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    if stats.entries == 0 {
        bail!("empty archive");
    }
    Ok(stats)
}

/// Bytes written to a file at once.
const WRITE_BUFFER: usize = 1024 * 1024;

/// Writes the regular file `entry` at `dest` through `buf`, a new file (one already there
/// is removed first, as `tar` does: never written through), mode 0600,
/// owned by `owner`.
fn write_file(
    entry: &mut tar::Entry<'_, ChannelReader>,
    dest: &Path,
    owner: Option<(u32, u32)>,
    buf: &mut [u8],
) -> Result<()> {
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)
    };
    let file = match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => std::fs::remove_file(dest)
            .and_then(|()| create())
            .with_context(|| format!("replacing {}", dest.display()))?,
        other => other.with_context(|| format!("creating {}", dest.display()))?,
    };
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
            .with_context(|| format!("chown {}", dest.display()))?;
    }
    let expected = entry.size();
    let mut file = file;
    let mut written = 0u64;
    loop {
        // Fill the buffer, then one write.
        let mut filled = 0;
        while filled < buf.len() {
            match entry.read(&mut buf[filled..]).map_err(archive_error)? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        file.write_all(&buf[..filled])
            .with_context(|| format!("writing {}", dest.display()))?;
        written += filled as u64;
    }
    if written != expected {
        bail!(
            "truncated archive: {} has {written} of {expected} bytes",
            dest.display()
        );
    }
    Ok(())
}

/// Names the cause of a failure to read the archive.
fn archive_error(e: io::Error) -> anyhow::Error {
    let what = match e.kind() {
        io::ErrorKind::UnexpectedEof => "truncated archive",
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => "corrupt archive (gzip or tar)",
        _ => "unpacking the archive",
    };
    anyhow::Error::new(e).context(what)
}

#[cfg(test)]
mod tests;
