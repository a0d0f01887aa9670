//! Container probes, on the external port without authentication (the
//! kubelet and `HEALTHCHECK` carry no token), and the `compute_ctl probe`
//! client that lets an image's `HEALTHCHECK` do without curl.
//!
//! - `GET /healthz` (liveness): the driver loop answers a ping within
//!   [`DEADLINE`]. It never touches postgres, so a slow catalog apply or a
//!   long crash recovery does not get the container killed.
//! - `GET /readyz` (readiness): Running, and postgres accepts a connection
//!   and answers `SELECT 1` within [`DEADLINE`]; `?lag=BYTES` also fails a
//!   replica whose replay is further behind than that (behind the primary's
//!   end of WAL as its walsender last reported it, or what it received),
//!   and a replica that is not streaming.
//! - `GET /startupz`: the compute has left Init/Configuration at least once.
//!
//! Status checks read the published snapshot; the postgres check opens its
//! own connection. None waits behind the driver's work: the ping is
//! answered between steps, whatever the state.

use super::Api;
use crate::driver::Request;
use crate::replication::{Replication, StandbyStatus};
use compute_states::Status;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

/// How long each probe may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(1);

/// The probe paths (logged at debug level: they come every few seconds).
pub const PATHS: [&str; 3] = ["/healthz", "/readyz", "/startupz"];

fn answer(ok: Result<String, String>, status: Status) -> Response {
    match ok {
        Ok(what) => warp::reply::json(&json!({"status": what, "compute": status})).into_response(),
        Err(why) => warp::reply::with_status(
            warp::reply::json(&json!({"error": why, "compute": status})),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .into_response(),
    }
}

/// `GET /healthz`.
pub(super) async fn healthz(api: Api) -> Response {
    let ping = api.handle.request(|reply| Request::Ping { reply });
    let outcome = match tokio::time::timeout(DEADLINE, ping).await {
        Ok(Ok(())) => Ok("alive".to_string()),
        Ok(Err(e)) => Err(format!("the driver is gone: {e}")),
        Err(_) => Err(format!("the driver did not answer within {DEADLINE:?}")),
    };
    answer(outcome, api.handle.status())
}

/// `GET /readyz[?lag=BYTES]`.
pub(super) async fn readyz(api: Api, query: HashMap<String, String>) -> Response {
    let status = api.handle.status();
    let max_lag = match query.get("lag").map(|v| v.parse::<u64>()) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return super::ApiError::bad_request("lag: expected a number of bytes").reply();
        }
    };
    if status != Status::Running {
        return answer(Err(format!("the compute is {status}, not running")), status);
    }
    let check = postgres_ready(&api, max_lag);
    let outcome = match tokio::time::timeout(DEADLINE, check).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("postgres did not answer within {DEADLINE:?}")),
    };
    answer(outcome, status)
}

/// `SELECT 1` on a fresh connection, and with `max_lag` the replay lag of a
/// standby in bytes (see [`crate::replication::StandbyStatus::lag_bytes`]).
async fn postgres_ready(api: &Api, max_lag: Option<u64>) -> Result<String, String> {
    let connector = &api.connector;
    let client = connector
        .connect(connector.maintenance_db())
        .await
        .map_err(|e| format!("postgres does not accept connections: {e:#}"))?;
    let Some(max_lag) = max_lag else {
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| format!("postgres does not answer: {e}"))?;
        return Ok("ready".into());
    };
    let replication = crate::replication::read(&client)
        .await
        .map_err(|e| format!("postgres does not answer: {e}"))?;
    match replication {
        Replication::Primary { .. } => Ok("ready".into()),
        Replication::Standby(StandbyStatus {
            streaming: false, ..
        }) => Err("the replica's WAL receiver is not streaming: its lag is unknown".into()),
        Replication::Standby(StandbyStatus {
            lag_bytes: None, ..
        }) => Err("the replica has received nothing yet: its lag is unknown".into()),
        Replication::Standby(StandbyStatus {
            lag_bytes: Some(lag),
            ..
        }) if lag > max_lag => Err(format!(
            "the replica is {lag} bytes behind, more than {max_lag}"
        )),
        Replication::Standby(StandbyStatus {
            lag_bytes: Some(lag),
            ..
        }) => Ok(format!("ready ({lag} bytes behind)")),
    }
}

/// `GET /startupz`.
pub(super) fn startupz(api: Api) -> Response {
    let snap = api.handle.snapshot();
    let left = snap
        .transitions
        .iter()
        .any(|((from, _), _)| matches!(from, Status::Init | Status::Configuration));
    let outcome = if left {
        Ok("started".to_string())
    } else {
        Err(format!("the compute has not started yet ({})", snap.status))
    };
    answer(outcome, snap.status)
}

/// `compute_ctl probe`: GETs `url` (a path on `127.0.0.1:port`, or a full
/// `http://` URL) and succeeds on a 2xx answer within `timeout`.
pub async fn probe(url: &str, port: u16, timeout: Duration) -> anyhow::Result<String> {
    use anyhow::Context;
    let url = if url.starts_with('/') {
        format!("http://127.0.0.1:{port}{url}")
    } else {
        url.to_string()
    };
    // reqwest is built without a default TLS provider; ring is in the tree.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .context("building the HTTP client")?;
    let resp = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("GET {url}: {status}: {}", body.trim());
    }
    Ok(body)
}
