//! `POST /extension_server/{*filename}` (internal port): Neon's postgres
//! asks for a file it lacks, and the remote extension that provides it is
//! fetched from the store and installed, with the reference's answers. In
//! `empty` (no spec yet) it answers 412, where the reference drops the
//! connection.

use super::error::ApiError;
use super::routes::{Handled, Input};
use super::Api;
use crate::driver::RequestError;
use crate::extensions::Refused;
use warp::http::StatusCode;
use warp::reply::Reply;

fn reject(e: ApiError) -> warp::Rejection {
    warp::reject::custom(e)
}

/// Fetches what `input.tail` names (a library with `?is_library=true`).
pub(super) async fn extension_server(api: Api, input: Input) -> Handled {
    let is_library = match input.query.get("is_library").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(reject(ApiError::bad_request(format!(
                "invalid query string: is_library must be true or false, not {other:?}"
            ))))
        }
    };
    let store = &api.remote_extensions;
    if !store.configured() {
        return Err(reject(refused(Refused::NotConfigured)));
    }
    let snapshot = api.handle.snapshot();
    let Some(spec) = snapshot.spec else {
        return Err(reject(
            RequestError::InvalidState(snapshot.compute_status).into(),
        ));
    };
    let filename = input.tail;
    match store
        .request(spec.remote_extensions.as_ref(), &filename, is_library)
        .await
    {
        Ok(_) => Ok(warp::reply().into_response()),
        Err(e) => {
            let e = refused(e);
            tracing::error!(file = %filename, status = %e.status, "{}", e.message);
            Err(reject(e))
        }
    }
}

/// The reference's answer to each refusal.
fn refused(e: Refused) -> ApiError {
    let status = match &e {
        Refused::NotConfigured => StatusCode::PRECONDITION_FAILED,
        Refused::NoRemoteExtensions => StatusCode::CONFLICT,
        Refused::NotFound(_) => StatusCode::NOT_FOUND,
        Refused::Failed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = match &e {
        Refused::Failed { .. } => format!("Failed to download a remote file: {e}"),
        _ => e.to_string(),
    };
    ApiError::new(status, message)
}
