//! `logs_export_host`: postgres' log lines (as compute_ctl reads them from
//! postgres' stderr, passwords already redacted) forwarded as RFC 5424
//! syslog over TCP to the host the spec in effect names (`[IPv6]:port`
//! too, which the reference cannot parse). Removing the field stops the
//! export (the reference leaves its rsyslog rule in place). Lines wait in a
//! bounded queue while the host is away; beyond it they are dropped and
//! counted.

use crate::driver::Handle;
use crate::spec::edge::Endpoint;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Lines kept while the host is away.
const QUEUE: usize = 10_000;
/// syslog's local0.info (postgres' default facility).
const PRI: u8 = 16 * 8 + 6;

/// Where lines go while an export is on.
static SINK: Mutex<Option<mpsc::Sender<String>>> = Mutex::new(None);
/// Lines written to the host.
pub static SENT: AtomicU64 = AtomicU64::new(0);
/// Lines dropped (the queue was full).
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// One of postgres' log lines, for the export if one is on.
pub fn line(text: &str) {
    if let Some(tx) = SINK.lock().as_ref() {
        if tx.try_send(text.to_string()).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Follows the spec in effect: starts, moves or stops the export.
pub fn spawn(handle: Handle) {
    tokio::spawn(async move {
        let mut current: Option<(Endpoint, tokio::task::JoinHandle<()>)> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let wanted = handle
                .snapshot()
                .spec
                .and_then(|s| s.logs_export_host.clone())
                .map(|h| h.0);
            if current.as_ref().map(|(e, _)| e) == wanted.as_ref() {
                continue;
            }
            if let Some((old, task)) = current.take() {
                *SINK.lock() = None;
                task.abort();
                tracing::info!(host = %old.host, port = old.port, "postgres' log export stopped");
            }
            if let Some(endpoint) = wanted {
                let (tx, rx) = mpsc::channel(QUEUE);
                *SINK.lock() = Some(tx);
                tracing::info!(host = %endpoint.host, port = endpoint.port, "postgres' log export started");
                let task = tokio::spawn(send(endpoint.clone(), rx));
                current = Some((endpoint, task));
            }
        }
    });
}

/// Writes the lines of `rx` to `to`, reconnecting with a backoff; a line
/// is kept until it was written.
async fn send(to: Endpoint, mut rx: mpsc::Receiver<String>) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace))
        .unwrap_or_else(|| "-".into());
    let mut conn: Option<tokio::net::TcpStream> = None;
    let mut backoff = Duration::from_millis(100);
    while let Some(text) = rx.recv().await {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let framed = format!(
            "<{PRI}>1 {now} {host} postgres - - - {}\n",
            text.replace('\n', " ")
        );
        loop {
            if conn.is_none() {
                match tokio::net::TcpStream::connect((to.host.as_str(), to.port)).await {
                    Ok(c) => {
                        conn = Some(c);
                        backoff = Duration::from_millis(100);
                    }
                    Err(e) => {
                        tracing::debug!("logs_export_host {}:{}: {e}", to.host, to.port);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            if let Some(c) = conn.as_mut() {
                match c.write_all(framed.as_bytes()).await {
                    Ok(()) => {
                        SENT.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(_) => conn = None,
                }
            }
        }
    }
}
