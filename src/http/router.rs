//! Builds a port's warp filter from the route table: path and method, then
//! authentication, then the body or query, then the row's handler; every
//! rejection becomes a JSON error and every request a log line.

use super::error::{recover, ApiError};
use super::routes::Input;
use super::serve::Peer;
use super::table::{self, Auth, Body, Ports, Route};
use super::{Api, BODY_LIMIT};
use bytes::Bytes;
use std::collections::HashMap;
use std::time::Duration;
use warp::filters::BoxedFilter;
use warp::http::{Method, StatusCode};
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

fn reject(e: ApiError) -> Rejection {
    warp::reject::custom(e)
}

/// The filter serving `port`'s rows of the route table; anything else is
/// 404. A request body that sends nothing for `idle` is refused (408).
pub fn router(api: Api, port: Ports, idle: Duration) -> BoxedFilter<(Response,)> {
    let mut routes = warp::any()
        .and_then(|| async { Err::<Response, _>(warp::reject::not_found()) })
        .boxed();
    for route in table::served_on(port) {
        routes = routes.or(row(api.clone(), route, idle)).unify().boxed();
    }
    routes
        .recover(recover)
        .unify()
        .with(warp::log::custom(log_request))
        .map(Reply::into_response)
        .boxed()
}

/// One row: `METHOD /path`, its authentication, its input, its handler.
fn row(api: Api, route: &'static Route, idle: Duration) -> BoxedFilter<(Response,)> {
    let method = match route.method {
        Method::POST => warp::post().boxed(),
        _ => warp::get().boxed(),
    };
    let input = match route.body {
        Body::None => warp::query::<HashMap<String, String>>()
            .map(|query| Input {
                query,
                body: Bytes::new(),
                tail: String::new(),
            })
            .boxed(),
        Body::Json => json_body(idle)
            .map(|body| Input {
                query: HashMap::new(),
                body,
                tail: String::new(),
            })
            .boxed(),
    };
    // `name/{*rest}`: the rest of the path, one part at least, is the tail.
    let path = match route.path.split_once("/{*") {
        Some((head, _)) => warp::path(head)
            .and(warp::path::tail())
            .and_then(|tail: warp::path::Tail| async move {
                match tail.as_str() {
                    "" => Err(warp::reject::not_found()),
                    t => Ok(t.to_string()),
                }
            })
            .boxed(),
        None => warp::path(route.path)
            .and(warp::path::end())
            .map(String::new)
            .boxed(),
    };
    path.and(method)
        .and(authenticated(api.clone(), route.auth))
        .and(input)
        .and_then(move |tail: String, input: Input| {
            (route.handler)(api.clone(), Input { tail, ..input })
        })
        .boxed()
}

/// Checks the bearer token of [`Auth::Jwt`] routes (without keys: loopback
/// callers pass, others are 401; 503 while keys are awaited); other routes pass.
fn authenticated(api: Api, auth: Auth) -> BoxedFilter<()> {
    if auth != Auth::Jwt {
        return warp::any().boxed();
    }
    warp::ext::optional::<Peer>()
        .and(warp::header::optional::<String>("authorization"))
        .and_then(move |peer: Option<Peer>, header: Option<String>| {
            let checked = api.auth.check(peer.map(|p| p.0.ip()), header.as_deref());
            async move {
                match checked {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        let status =
                            StatusCode::from_u16(e.status).unwrap_or(StatusCode::UNAUTHORIZED);
                        Err(reject(ApiError::new(status, e.message)))
                    }
                }
            }
        })
        .untuple_one()
        .boxed()
}

/// A JSON body: `application/json`, at most [`BODY_LIMIT`] bytes, each part
/// of it within `idle` of the previous one (a body that trickles or stops
/// does not hold its connection).
fn json_body(idle: Duration) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and_then(|ct: Option<String>| async move {
            let is_json = ct.as_deref().is_some_and(|ct| {
                let essence = ct.split(';').next().unwrap_or("").trim();
                essence.eq_ignore_ascii_case("application/json")
            });
            if is_json {
                Ok(())
            } else {
                Err(reject(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "the body must be JSON (Content-Type: application/json)",
                )))
            }
        })
        .untuple_one()
        .and(warp::body::content_length_limit(BODY_LIMIT))
        .and(warp::body::stream())
        .and_then(move |body| read_body(body, idle))
}

/// Collects a request body, refusing one that sends nothing for `idle`.
async fn read_body<S, B>(body: S, idle: Duration) -> Result<Bytes, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    use futures_util::StreamExt;
    let mut body = std::pin::pin!(body);
    let mut all = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(Ok(mut part))) => {
                while part.has_remaining() {
                    let chunk = part.chunk();
                    all.extend_from_slice(chunk);
                    let n = chunk.len();
                    part.advance(n);
                }
            }
            Ok(Some(Err(e))) => {
                return Err(reject(ApiError::bad_request(format!(
                    "reading the body: {e}"
                ))))
            }
            Ok(None) => return Ok(all.freeze()),
            Err(_) => {
                return Err(reject(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the request body sent nothing for {idle:?}"),
                )))
            }
        }
    }
}

fn log_request(info: warp::log::Info<'_>) {
    let (method, path, status) = (info.method(), info.path(), info.status().as_u16());
    let ms = info.elapsed().as_secs_f64() * 1000.0;
    // Polled every few seconds: probes too.
    if path == "/status" || path == "/metrics" || super::probes::PATHS.contains(&path) {
        tracing::debug!(target: "http", %method, path, status, ms, "request");
    } else {
        tracing::info!(target: "http", %method, path, status, ms, "request");
    }
}
