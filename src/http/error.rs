//! JSON errors: every failure is `{"error": "message"}` with a fitting status.

use crate::driver::RequestError;
use serde_json::json;
use std::convert::Infallible;
use warp::http::StatusCode;
use warp::reply::Reply;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The message under `"error"`.
    pub message: String,
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 500 with the error chain.
    pub fn internal(e: &anyhow::Error) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
    /// The JSON reply.
    pub fn reply(&self) -> warp::reply::Response {
        warp::reply::with_status(
            warp::reply::json(&json!({"error": self.message})),
            self.status,
        )
        .into_response()
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        let status = match e {
            RequestError::InvalidState(_) => StatusCode::PRECONDITION_FAILED,
            RequestError::BadSpec(_) => StatusCode::BAD_REQUEST,
            RequestError::ConfigurationFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            RequestError::AlreadyTerminated(_) => StatusCode::CREATED,
            RequestError::CannotPromote(_) => StatusCode::PRECONDITION_FAILED,
            RequestError::PromoteTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            RequestError::PromoteFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            RequestError::NoSpecSource => StatusCode::CONFLICT,
            RequestError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self::new(status, e.to_string())
    }
}

/// Turns every rejection into a JSON error.
pub async fn recover(rejection: warp::Rejection) -> Result<warp::reply::Response, Infallible> {
    let error = if let Some(e) = rejection.find::<ApiError>() {
        e.clone()
    } else if rejection.is_not_found() {
        ApiError::new(StatusCode::NOT_FOUND, "not found")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {} bytes", super::BODY_LIMIT),
        )
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "a Content-Length header is required",
        )
    } else if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/json",
        )
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::bad_request(format!("invalid query string: {e}"))
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::bad_request(e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::MissingHeader>() {
        ApiError::bad_request(e.to_string())
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    };
    Ok(error.reply())
}
