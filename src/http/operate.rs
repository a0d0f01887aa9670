//! Handlers of the routes that operate a running compute (`/restart`,
//! `/promote`), apart from the lifecycle routes so each operation stays one
//! small module. Each sends the driver a request and turns its answer into a
//! response; the driver decides what the request means in its state.

use super::error::ApiError;
use super::routes::Handled;
use super::Api;
use crate::driver::{Operation, Request, RequestError, Restarted};
use crate::spec::ComputeConfig;
use bytes::Bytes;
use compute_states::Lsn;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use warp::reply::Reply;

/// `POST /restart[?only_if_pending=true]`: restarts postgres in place so the
/// settings pending a restart go live; answers the status once Running.
pub(super) async fn restart(api: Api, query: HashMap<String, String>) -> Handled {
    let only_if_pending = match query.get("only_if_pending").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(warp::reject::custom(ApiError::bad_request(format!(
                "only_if_pending must be \"true\" or \"false\", not {v:?}"
            ))))
        }
    };
    let snapshot = api
        .handle
        .request(|reply| {
            Request::Operate(Operation::Restart {
                only_if_pending,
                reply,
            })
        })
        .await
        .map_err(|e| warp::reject::custom(ApiError::from(e)))?;
    let snapshot = match snapshot {
        Restarted::Done(snapshot) => *snapshot,
        Restarted::NothingPending => api.handle.snapshot(),
    };
    Ok(warp::reply::json(&snapshot).into_response())
}

/// `POST /promote {"spec": ComputeSpec, "wal_flush_lsn": "X/Y"}`: promotes a
/// replica once it has replayed up to `wal_flush_lsn` and applies `spec` as
/// a primary. Answers the reference's `PromoteState`: 200
/// `{"status": "completed", "lsn_wait_time_ms", "pg_promote_time_ms",
/// "reconfigure_time_ms"}`, or `{"status": "failed", "error"}` with 408 (the
/// WAL did not arrive in time) or 500.
pub(super) async fn promote(api: Api, body: Bytes) -> Handled {
    let bad = |m: String| warp::reject::custom(ApiError::bad_request(m));
    let text = std::str::from_utf8(&body).map_err(|_| bad("the body is not UTF-8".into()))?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("malformed body: {e}")))?;
    let wal_flush_lsn: Lsn = match value.get("wal_flush_lsn") {
        Some(serde_json::Value::String(s)) => {
            s.parse().map_err(|e| bad(format!("wal_flush_lsn: {e}")))?
        }
        _ => {
            return Err(bad(
                "wal_flush_lsn: missing, or not an \"X/Y\" string".into()
            ))
        }
    };
    // The spec is parsed and validated as `/configure`'s is.
    let config = ComputeConfig::from_json(text).map_err(|e| bad(e.to_string()))?;
    let spec = config
        .spec
        .ok_or_else(|| bad("invalid compute spec: spec: missing or null".into()))?;
    let spec = Arc::new(spec);
    let answer = api
        .handle
        .request(|reply| {
            Request::Operate(Operation::Promote {
                spec,
                wal_flush_lsn,
                reply,
            })
        })
        .await;
    match answer {
        Ok(timings) => Ok(warp::reply::json(&timings).into_response()),
        Err(e @ (RequestError::PromoteTimeout(_) | RequestError::PromoteFailed(_))) => {
            let status = ApiError::from(e.clone()).status;
            let body = json!({"status": "failed", "error": e.to_string()});
            Ok(warp::reply::with_status(warp::reply::json(&body), status).into_response())
        }
        Err(e) => Err(warp::reject::custom(ApiError::from(e))),
    }
}
