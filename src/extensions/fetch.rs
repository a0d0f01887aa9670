//! One archive fetched from the extension store: a `GET`, retried with
//! backoff when the store is unavailable (503) or unreachable (a transport
//! error), the whole within a deadline, the body within a size bound. Each
//! attempt is counted in `compute_ctl_remote_ext_requests_total`, labelled
//! as the reference labels it.

use anyhow::{anyhow, bail, Result};
use parking_lot::Mutex;
use prometheus::{IntCounterVec, Opts, Registry};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The bounds of a download.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The whole download, every attempt and pause included.
    pub timeout: Duration,
    /// Largest archive accepted, compressed, in bytes.
    pub max_bytes: u64,
    /// Attempts at most.
    pub attempts: u32,
    /// The first pause between attempts; it doubles, up to [`MAX_PAUSE`].
    pub first_pause: Duration,
}

/// The longest pause between two attempts.
pub const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Requests to the store so far: (`http_status`, `filename`) to a count.
static REQUESTS: Mutex<BTreeMap<(String, String), u64>> = Mutex::new(BTreeMap::new());

/// Counts one request for `filename` that `status` answered (`unknown`: none).
pub fn count(status: &str, filename: &str) {
    *REQUESTS
        .lock()
        .entry((status.to_string(), filename.to_string()))
        .or_default() += 1;
}

/// Adds `compute_ctl_remote_ext_requests_total` to `registry`.
pub fn register(registry: &Registry) -> prometheus::Result<()> {
    let requests = IntCounterVec::new(
        Opts::new(
            "compute_ctl_remote_ext_requests_total",
            "Requests to the remote extension store, by answer and archive",
        ),
        &["http_status", "filename"],
    )?;
    for ((status, filename), n) in REQUESTS.lock().iter() {
        requests.with_label_values(&[status, filename]).inc_by(*n);
    }
    registry.register(Box::new(requests))
}

/// Why one attempt failed.
enum Failure {
    /// Worth another attempt: 503, or the store could not be reached.
    Transient(anyhow::Error),
    /// Not: another answer, a body too large.
    Final(anyhow::Error),
}

/// The archive at `url`, whose last path part is `filename` (the metric's
/// label), within `limits`.
pub async fn get(
    client: &reqwest::Client,
    url: &reqwest::Url,
    filename: &str,
    limits: &Limits,
) -> Result<Vec<u8>> {
    let deadline = Instant::now() + limits.timeout;
    let mut pause = limits.first_pause;
    let mut attempt = 1;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let outcome = match tokio::time::timeout(left, once(client, url, filename, limits)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                count("unknown", filename);
                Err(Failure::Final(anyhow!(
                    "no answer from the remote extensions server within {:?} (attempt {attempt})",
                    limits.timeout
                )))
            }
        };
        let e = match outcome {
            Ok(body) => return Ok(body),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Transient(e)) => e,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if attempt >= limits.attempts || left <= pause {
            return Err(e.context(format!("after {attempt} attempts")));
        }
        tracing::warn!(url = %url, attempt, "{e:#}; trying again in {pause:?}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
        attempt += 1;
    }
}

async fn once(
    client: &reqwest::Client,
    url: &reqwest::Url,
    filename: &str,
    limits: &Limits,
) -> Result<Vec<u8>, Failure> {
    let mut resp = match client.get(url.clone()).send().await {
        Ok(resp) => resp,
        Err(e) => {
            count("unknown", filename);
            return Err(Failure::Transient(
                anyhow!(e).context("could not perform remote extensions server request"),
            ));
        }
    };
    let status = resp.status();
    count(&status.to_string(), filename);
    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
        return Err(Failure::Transient(anyhow!(
            "remote extensions server is temporarily unavailable"
        )));
    }
    if status != reqwest::StatusCode::OK {
        return Err(Failure::Final(anyhow!(
            "unexpected remote extensions server response status code: {status}"
        )));
    }
    let too_large = || {
        Failure::Final(anyhow!(
            "the archive is larger than the limit of {} bytes",
            limits.max_bytes
        ))
    };
    if resp.content_length().is_some_and(|n| n > limits.max_bytes) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > limits.max_bytes {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(Failure::Transient(
                    anyhow!(e).context("could not read remote extensions server response"),
                ))
            }
        }
    }
}

/// The store's URL from `-r`: trailing slashes trimmed and one added (so
/// that the archive's path is joined below it), no query.
pub fn parse_base_url(text: &str) -> Result<reqwest::Url> {
    let with_slash = format!("{}/", text.trim_end_matches('/'));
    let url = reqwest::Url::parse(&with_slash)
        .map_err(|e| anyhow!("--remote-ext-base-url {text:?} is not a URL: {e}"))?;
    if url.query().is_some() {
        bail!("parameters detected in remote extensions base URL");
    }
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--remote-ext-base-url {text:?} is not an http:// or https:// URL");
    }
    Ok(url)
}
