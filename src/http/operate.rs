//! Handlers of the routes that operate a running compute (`/restart`), apart
//! from the lifecycle routes so each operation stays one small module.

use super::error::ApiError;
use super::routes::Handled;
use super::Api;
use crate::driver::Request;
use std::collections::HashMap;
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
        .request(|reply| Request::Restart {
            only_if_pending,
            reply,
        })
        .await
        .map_err(|e| warp::reject::custom(ApiError::from(e)))?;
    Ok(warp::reply::json(&snapshot).into_response())
}
