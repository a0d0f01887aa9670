//! The audit files shipped off the box: instead of the reference's rsyslog
//! configuration (and a `pkill rsyslogd`), compute_ctl reads pgauditlogtofile's
//! files (`PGDATA/log/audit*.log`) itself and forwards each record as an
//! RFC 5424 syslog message over TCP (newline-framed, as rsyslog's `omfwd`)
//! to `AUDIT_LOGGING_TLS_ENDPOINT` over TLS (the peer's certificate checked
//! against `AUDIT_LOGGING_TLS_CA_FILE`, by default the system's bundle as
//! the reference's rsyslog, for the endpoint's host name, unexpired, for
//! server authentication) or else to `AUDIT_LOGGING_ENDPOINT` in the clear,
//! the reference's message shape: facility
//! local5, severity info, and as the message the JSON object
//! `{"endpoint_id", "project_id", "msg"}`.
//!
//! Records wait in a bounded queue ([`QUEUE`]); while the collector is down
//! they are kept (a record is taken off the queue only once written) and
//! the connection is tried again with a backoff; beyond the bound, new
//! records are dropped and counted. Files untouched for 15 minutes whose
//! records were all read are removed (the reference's `find -mmin +15
//! -delete`, which removed files rsyslog may not have read yet), and the
//! directory's size is exported as `compute_audit_log_dir_size`.

use super::Edge;
use crate::driver::Handle;
use crate::safe_fs::Dir;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Seek};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;

/// Records kept while the collector is away.
pub const QUEUE: usize = 100_000;
/// How often the files are read.
const POLL: Duration = Duration::from_millis(250);
/// Files untouched this long (and read to their end) are removed.
const KEEP: Duration = Duration::from_secs(15 * 60);
/// syslog's local5.info.
const PRI: u8 = 21 * 8 + 6;

pub use crate::spec::edge::Endpoint;

/// The CA bundle a TLS collector's certificate is checked against, unless
/// `AUDIT_LOGGING_TLS_CA_FILE` names another (the reference's rsyslog:
/// `DefaultNetstreamDriverCAFile`).
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where audit records go: the collector, and TLS to it when the TLS
/// endpoint is the one given.
#[derive(Clone)]
pub struct AuditTarget {
    /// The collector.
    pub endpoint: Endpoint,
    /// The TLS client, for `AUDIT_LOGGING_TLS_ENDPOINT`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for AuditTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTarget")
            .field("endpoint", &self.endpoint)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// The audit endpoint the environment names.
pub struct AuditEnv;

impl AuditEnv {
    /// The reference's variables: the TLS endpoint wins, then the plain
    /// one; none when both are empty or unset. A value that is not
    /// `host:port`, or a CA file that holds no certificate, is an error
    /// naming it.
    pub fn from_env() -> Result<Option<AuditTarget>> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let Some(value) = var("AUDIT_LOGGING_TLS_ENDPOINT") {
            let endpoint = Endpoint::parse("AUDIT_LOGGING_TLS_ENDPOINT", value.trim())?;
            let ca = var("AUDIT_LOGGING_TLS_CA_FILE").unwrap_or_else(|| SYSTEM_CA_FILE.into());
            let tls = client_config(std::path::Path::new(ca.trim()))
                .with_context(|| format!("AUDIT_LOGGING_TLS_CA_FILE={ca:?}"))?;
            return Ok(Some(AuditTarget {
                endpoint,
                tls: Some(Arc::new(tls)),
            }));
        }
        var("AUDIT_LOGGING_ENDPOINT")
            .map(|v| Endpoint::parse("AUDIT_LOGGING_ENDPOINT", v.trim()))
            .transpose()
            .map(|e| {
                e.map(|endpoint| AuditTarget {
                    endpoint,
                    tls: None,
                })
            })
    }
}

/// A TLS client that trusts the certificates of `ca_file` (PEM) and checks
/// the collector's name, validity and purpose (rustls' webpki verifier).
fn client_config(ca_file: &std::path::Path) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).context("reading the CA file")? {
        let cert = cert.context("a certificate of the CA file")?;
        roots.add(cert).context("a certificate of the CA file")?;
    }
    if roots.is_empty() {
        bail!("the CA file holds no certificate");
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A connection to the collector, in the clear or over TLS.
enum Conn {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

impl Conn {
    /// Connects (and, for TLS, shakes hands, checking the collector's certificate).
    async fn open(target: &AuditTarget) -> Result<Conn> {
        let Endpoint { host, port } = &target.endpoint;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
        let Some(tls) = &target.tls else {
            return Ok(Conn::Plain(tcp));
        };
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .with_context(|| format!("{host:?} is not a name a certificate can be for"))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        Ok(Conn::Tls(Box::new(stream)))
    }

    /// Writes `line` whole (and through TLS' buffer).
    async fn send(&mut self, line: &str) -> std::io::Result<()> {
        match self {
            Conn::Plain(c) => c.write_all(line.as_bytes()).await,
            Conn::Tls(c) => {
                c.write_all(line.as_bytes()).await?;
                c.flush().await
            }
        }
    }
}

/// What `/status` shows of the shipping.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShipStatus {
    /// `host:port`.
    pub endpoint: String,
    /// Records written to the collector.
    pub sent: u64,
    /// Records dropped (the queue was full).
    pub dropped: u64,
    /// Records waiting.
    pub queued: u64,
    /// Bytes of the audit directory's log files.
    pub dir_size: u64,
    /// Whether a connection to the collector is open.
    pub connected: bool,
    /// Whether the collector is reached over TLS.
    pub tls: bool,
    /// Connections to the collector that failed (refused, or a TLS
    /// handshake that did not verify).
    pub failures: u64,
}

/// Ships the audit files of `pgdata` while the spec in effect asks for them.
pub fn spawn(edge: Arc<Edge>, pgdata: PathBuf, handle: Handle) {
    let Some(target) = edge.audit_endpoint.clone() else {
        return;
    };
    let endpoint = target.endpoint.clone();
    edge.status.write().audit = Some(ShipStatus {
        endpoint: format!("{}:{}", target.endpoint.host, target.endpoint.port),
        tls: target.tls.is_some(),
        ..Default::default()
    });
    tokio::spawn(async move {
        let mut files: HashMap<String, (u64, u64, String)> = HashMap::new();
        let mut queue: VecDeque<String> = VecDeque::new();
        let mut conn: Option<Conn> = None;
        let mut backoff = Duration::from_millis(100);
        let mut retry_at = tokio::time::Instant::now();
        let mut gc_at = tokio::time::Instant::now();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace))
            .unwrap_or_else(|| "-".into());
        loop {
            tokio::time::sleep(POLL).await;
            let Some(spec) = handle.snapshot().spec else {
                continue;
            };
            if !spec.audit_log_level.to_files() {
                continue;
            }
            let ids = (
                spec.endpoint_id.clone().unwrap_or_default(),
                spec.project_id.clone().unwrap_or_default(),
            );
            let dir = pgdata.clone();
            let read = tokio::task::spawn_blocking(move || {
                let mut records = Vec::new();
                let r = read_new(&dir, &mut files, &mut records);
                (files, records, r)
            })
            .await;
            let Ok((back, records, r)) = read else { break };
            files = back;
            if let Err(e) = r {
                tracing::debug!("audit files: {e:#}");
            }
            let mut dropped = 0;
            for msg in records {
                if queue.len() >= QUEUE {
                    dropped += 1;
                } else {
                    queue.push_back(frame(&msg, &ids, &host));
                }
            }
            if dropped > 0 {
                tracing::warn!(dropped, "audit records dropped: the queue is full");
            }
            let mut sent = 0;
            if !queue.is_empty() && conn.is_none() && tokio::time::Instant::now() >= retry_at {
                match Conn::open(&target).await {
                    Ok(c) => {
                        conn = Some(c);
                        backoff = Duration::from_millis(100);
                    }
                    Err(e) => {
                        tracing::warn!(
                            "audit collector {}:{}: {e:#}",
                            endpoint.host,
                            endpoint.port
                        );
                        edge.status
                            .write()
                            .audit
                            .get_or_insert_with(Default::default)
                            .failures += 1;
                        retry_at = tokio::time::Instant::now() + backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            if let Some(c) = conn.as_mut() {
                while let Some(line) = queue.front() {
                    if let Err(e) = c.send(line).await {
                        tracing::warn!("audit collector: {e}; reconnecting");
                        conn = None;
                        break;
                    }
                    queue.pop_front();
                    sent += 1;
                }
            }
            let size = if tokio::time::Instant::now() >= gc_at {
                gc_at = tokio::time::Instant::now() + Duration::from_secs(60);
                let dir = pgdata.clone();
                let read_to_end: Vec<String> = files
                    .iter()
                    .filter(|(_, (_, off, _))| *off > 0)
                    .map(|(n, _)| n.clone())
                    .collect();
                tokio::task::spawn_blocking(move || gc(&dir, &read_to_end))
                    .await
                    .ok()
            } else {
                None
            };
            let mut status = edge.status.write();
            let s = status.audit.get_or_insert_with(Default::default);
            s.sent += sent;
            s.dropped += dropped;
            s.queued = queue.len() as u64;
            s.connected = conn.is_some();
            if let Some(size) = size {
                s.dir_size = size;
            }
        }
    });
}

/// One record as the collector gets it: RFC 5424, the JSON as its message.
fn frame(msg: &str, (endpoint_id, project_id): &(String, String), host: &str) -> String {
    let json =
        serde_json::json!({"endpoint_id": endpoint_id, "project_id": project_id, "msg": msg});
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    format!("<{PRI}>1 {now} {host} - - - - {json}\n")
}

/// Whether `line` starts a record (`YYYY-MM-DD HH:MM:SS.mmm GMT,`).
fn starts_record(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 24
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[10] == b' '
        && line[19..].starts_with('.')
        && line[23..].starts_with(" GMT,")
}

/// Reads what was added to each audit file since the last call: whole
/// records (see [`split_records`]). `files`: name to (inode, offset,
/// pending text).
fn read_new(
    pgdata: &std::path::Path,
    files: &mut HashMap<String, (u64, u64, String)>,
    out: &mut Vec<String>,
) -> Result<()> {
    let Some(dir) = Dir::open(pgdata)?.open_dir("log")? else {
        return Ok(());
    };
    let mut names: Vec<String> = dir
        .names()?
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter(|n| n.starts_with("audit") && n.ends_with(".log"))
        .collect();
    names.sort();
    // Files removed since (by the clean-up, or a new PGDATA) are forgotten.
    files.retain(|name, _| names.contains(name));
    for name in names {
        let flags = nix::fcntl::OFlag::O_RDONLY
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_CLOEXEC
            | nix::fcntl::OFlag::O_NONBLOCK;
        let Ok(fd) = nix::fcntl::openat(
            dir.fd(),
            name.as_str(),
            flags,
            nix::sys::stat::Mode::empty(),
        ) else {
            continue;
        };
        let mut file = std::fs::File::from(fd);
        let meta = file.metadata()?;
        if !meta.is_file() {
            continue;
        }
        let entry = files
            .entry(name.clone())
            .or_insert((meta.ino(), 0, String::new()));
        if entry.0 != meta.ino() || meta.len() < entry.1 {
            *entry = (meta.ino(), 0, String::new());
        }
        let grew = meta.len() > entry.1;
        if grew {
            file.seek(std::io::SeekFrom::Start(entry.1))?;
            let mut buf = Vec::new();
            (&mut file)
                .take(meta.len() - entry.1)
                .read_to_end(&mut buf)?;
            entry.1 += buf.len() as u64;
            entry.2.push_str(&String::from_utf8_lossy(&buf));
        }
        entry.2 = split_records(std::mem::take(&mut entry.2), !grew, out);
    }
    Ok(())
}

/// Moves the whole records of `text` (from one record's start to the
/// next's, of the lines ended so far) to `out`; returns what waits for the
/// next read: a line not ended yet, and the last record, which more lines
/// may still continue (a statement over several lines can reach us in
/// several writes), unless the file is `idle` (it did not grow since the
/// last read: the record is whole).
fn split_records(text: String, idle: bool, out: &mut Vec<String>) -> String {
    let mut record = String::new();
    let mut rest = "";
    for line in text.split_inclusive('\n') {
        // A record's start, even one whose line is not ended yet, ends the
        // record before it.
        if starts_record(line) && !record.is_empty() {
            out.push(record.trim_end().to_string());
            record.clear();
        }
        if !line.ends_with('\n') {
            rest = line;
            break;
        }
        record.push_str(line);
    }
    if record.is_empty() {
        return rest.to_string();
    }
    if idle && rest.is_empty() {
        out.push(record.trim_end().to_string());
        return String::new();
    }
    record.push_str(rest);
    record
}

/// Removes audit files untouched for [`KEEP`] that were read; returns the
/// size of the directory's log files (the reference's gauge).
fn gc(pgdata: &std::path::Path, read: &[String]) -> u64 {
    let Ok(Some(dir)) = Dir::open(pgdata).and_then(|d| d.open_dir("log")) else {
        return 0;
    };
    let mut size = 0;
    let path = dir.path().to_path_buf();
    for name in dir.names().unwrap_or_default() {
        let Some(name) = name.to_str() else { continue };
        let Ok(meta) = std::fs::symlink_metadata(path.join(name)) else {
            continue;
        };
        if !meta.is_file() || !name.ends_with("log") {
            continue;
        }
        let old = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > KEEP);
        if old && name.starts_with("audit") && read.iter().any(|r| r == name) {
            let _ = nix::unistd::unlinkat(dir.fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir);
            continue;
        }
        size += meta.len();
    }
    size
}

#[cfg(test)]
mod tests;
