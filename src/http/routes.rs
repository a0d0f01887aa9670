//! The handlers of the route table ([`super::table`]): each reads the
//! snapshot or sends a request to the driver.

use super::error::ApiError;
use super::Api;
use crate::auth::Authenticator;
use crate::connect::Connector;
use crate::driver::{Keys, Request, RequestError};
use crate::dump::DumpError;
use crate::spec::ComputeConfig;
use bytes::Bytes;
use compute_states::{Status, TerminationMode};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Rejection;

/// What a handler returns: a response, or a rejection carrying an [`ApiError`].
pub type Handled = Result<Response, Rejection>;

/// The parts of a request a handler may use.
pub struct Input {
    /// The query string's pairs (routes without a body).
    pub query: HashMap<String, String>,
    /// The JSON body (routes with one; empty otherwise).
    pub body: Bytes,
    /// What follows the path of a route that ends in `/{*…}` (empty otherwise).
    pub tail: String,
}

fn reject(e: ApiError) -> Rejection {
    warp::reject::custom(e)
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Rejection> {
    serde_json::from_slice(body)
        .map_err(|e| reject(ApiError::bad_request(format!("malformed body: {e}"))))
}

pub(super) fn metrics(api: Api) -> Response {
    let text = crate::metrics::render(&api.handle.snapshot(), &api.build_tag);
    warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4").into_response()
}

pub(super) fn metrics_json(api: Api) -> Response {
    warp::reply::json(&api.handle.snapshot().timings).into_response()
}

/// `GET /diagram[?view=status|types]`: the status view (the default) or the
/// type view of the machine, the current status highlighted.
pub(super) fn diagram(api: Api, query: HashMap<String, String>) -> Handled {
    let view = match query.get("view").map(String::as_str) {
        None | Some("status") => compute_states::View::Status,
        Some("types") => compute_states::View::Types,
        Some(v) => {
            return Err(reject(ApiError::bad_request(format!(
                "view must be \"status\" or \"types\", not {v:?}"
            ))))
        }
    };
    let text = compute_states::mermaid_highlighted(view, api.handle.status());
    Ok(warp::reply::with_header(text, "content-type", "text/plain; charset=utf-8").into_response())
}

pub(super) fn status(api: Api) -> Response {
    warp::reply::json(&api.handle.snapshot()).into_response()
}

pub(super) fn info(api: Api) -> Response {
    let num_cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    warp::reply::json(&json!({
        "num_cpus": num_cpus,
        "postgres_version": api.pg_version,
        "compute_ctl_version": env!("CARGO_PKG_VERSION"),
        "build_tag": api.build_tag,
    }))
    .into_response()
}

pub(super) async fn configure(api: Api, body: Bytes) -> Handled {
    let text = std::str::from_utf8(&body)
        .map_err(|_| reject(ApiError::bad_request("the body is not UTF-8")))?;
    let config =
        ComputeConfig::from_json(text).map_err(|e| reject(ApiError::bad_request(e.to_string())))?;
    let spec = config.spec.ok_or_else(|| {
        reject(ApiError::bad_request(
            "invalid compute spec: spec: missing or null",
        ))
    })?;
    apply(&api, spec, config.compute_ctl_config.as_ref()).await
}

/// Applies a spec (and the keys of its `compute_ctl_config`, installed by
/// the driver when it accepts the spec) through the driver, as
/// `/configure` does; answers the status once running.
async fn apply(
    api: &Api,
    spec: crate::spec::ValidSpec,
    compute_ctl_config: Option<&serde_json::Value>,
) -> Handled {
    let new_auth = match compute_ctl_config {
        Some(c) => Some(
            Authenticator::from_config(Some(c), api.compute_id.as_deref())
                .map_err(|e| reject(ApiError::bad_request(format!("{e:#}"))))?,
        ),
        None => None,
    };
    let spec = Arc::new(spec);
    let keys = new_auth.map(|auth| Keys {
        gate: api.auth.clone(),
        auth,
    });
    let snapshot = api
        .handle
        .request(|reply| Request::Configure { spec, keys, reply })
        .await
        .map_err(|e| reject(e.into()))?;
    Ok(warp::reply::json(&snapshot).into_response())
}

/// `/refresh_configuration`: asks the driver to read the spec again from
/// where it came from (the control plane, or the `-S`/`-c` file) and apply
/// it if it changed. Answered at once, with an empty 200 as the reference
/// (the refresh itself shows in `/status`: `refresh_configuration_pending`,
/// `refresh_configuration`, then `running`); 412 where no postgres serves,
/// 409 without a spec source.
pub(super) async fn refresh_configuration(api: Api) -> Handled {
    api.handle
        .request(|reply| Request::Refresh { reply })
        .await
        .map_err(|e| reject(e.into()))?;
    Ok(warp::reply::with_status(warp::reply(), StatusCode::OK).into_response())
}

pub(super) async fn terminate(api: Api, query: HashMap<String, String>) -> Handled {
    let mode = match query.get("mode").map(String::as_str) {
        None => TerminationMode::Fast,
        Some(m) => m.parse().map_err(|_| {
            reject(ApiError::bad_request(format!(
                "mode must be \"fast\" or \"immediate\", not {m:?}"
            )))
        })?,
    };
    let already = |lsn| {
        let body = warp::reply::json(&json!({ "lsn": lsn }));
        Ok(warp::reply::with_status(body, StatusCode::CREATED).into_response())
    };
    match api
        .handle
        .request(|reply| Request::Terminate { mode, reply })
        .await
    {
        Ok(lsn) => Ok(warp::reply::json(&json!({ "lsn": lsn })).into_response()),
        Err(RequestError::AlreadyTerminated(lsn)) => already(lsn),
        // The driver has ended after the termination (the linger is over,
        // the process is exiting): the LSN it published.
        Err(RequestError::ShuttingDown) if api.handle.status() == Status::Terminated => {
            already(api.handle.snapshot().lsn)
        }
        Err(e) => Err(reject(e.into())),
    }
}

/// Asks the driver for a connector; granted only while postgres is up.
async fn connector(api: &Api) -> Result<Connector, Rejection> {
    api.handle
        .request(|reply| Request::Connect { reply })
        .await
        .map_err(|e| reject(e.into()))
}

/// Asks the driver for a connector for a change; granted only while Running.
async fn connector_running(api: &Api) -> Result<Connector, Rejection> {
    api.handle
        .request(|reply| Request::ConnectRunning { reply })
        .await
        .map_err(|e| reject(e.into()))
}

async fn client(connector: &Connector, db: &str) -> Result<tokio_postgres::Client, Rejection> {
    connector
        .connect(db)
        .await
        .map_err(|e| reject(ApiError::internal(&e)))
}

pub(super) async fn dbs_and_roles(api: Api) -> Handled {
    let connector = connector(&api).await?;
    let body = super::catalog::dbs_and_roles(&connector)
        .await
        .map_err(|e| reject(ApiError::internal(&e)))?;
    // Streamed as it is read: flat memory however many roles there are.
    let reply = warp::reply::stream(body);
    Ok(warp::reply::with_header(reply, "content-type", "application/json").into_response())
}

pub(super) async fn database_schema(api: Api, query: HashMap<String, String>) -> Handled {
    let database = query
        .get("database")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            reject(ApiError::bad_request(
                "the database query parameter is required",
            ))
        })?;
    let connector = connector(&api).await?;
    let stall = api.limits.idle_timeout;
    let stream = match crate::dump::schema(&api.pg_dump, &connector, database, stall).await {
        Ok(stream) => stream,
        // Beyond the cap: 429, and when to come back.
        Err(e @ DumpError::Busy) => {
            let answer = ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()).reply();
            return Ok(warp::reply::with_header(answer, "retry-after", "1").into_response());
        }
        Err(e @ DumpError::NoSuchDatabase(_)) => {
            return Err(reject(ApiError::new(StatusCode::NOT_FOUND, e.to_string())))
        }
        Err(DumpError::Failed(e)) => return Err(reject(ApiError::internal(&e))),
    };
    let reply = warp::reply::stream(stream);
    Ok(
        warp::reply::with_header(reply, "content-type", "text/plain; charset=utf-8")
            .into_response(),
    )
}

pub(super) async fn check_writability(api: Api) -> Handled {
    let connector = connector_running(&api).await?;
    let c = client(&connector, connector.maintenance_db()).await?;
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS public.health_check (id integer PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT pg_catalog.now());
         INSERT INTO public.health_check (id, updated_at) VALUES (1, pg_catalog.now())
         ON CONFLICT (id) DO UPDATE SET updated_at = pg_catalog.now();",
    )
    .await
    .or_else(|e| {
        // As the reference: a compute at its size limit is not broken
        // (Neon's postgres answers disk_full when the project is full).
        if e.code() == Some(&tokio_postgres::error::SqlState::DISK_FULL) {
            tracing::warn!("tenant disk is full: the compute counts as writable");
            return Ok(());
        }
        Err(reject(ApiError::internal(
            &anyhow::Error::new(e).context("the compute is not writable"),
        )))
    })?;
    Ok(warp::reply::json(&true).into_response())
}

/// Maps a catalog request's failure to its status.
fn refused(e: super::catalog::RequestFailure) -> Rejection {
    match e {
        super::catalog::RequestFailure::BadRequest(m) => reject(ApiError::bad_request(m)),
        super::catalog::RequestFailure::Failed(e) => reject(ApiError::internal(&e)),
    }
}

pub(super) async fn extensions(api: Api, body: Bytes) -> Handled {
    let req: super::catalog::ExtensionRequest = parse_json(&body)?;
    let connector = connector_running(&api).await?;
    super::catalog::install_extension(&connector, &req)
        .await
        .map_err(refused)?;
    let body = warp::reply::json(&json!({"extension": req.extension, "version": req.version}));
    Ok(warp::reply::with_status(body, StatusCode::CREATED).into_response())
}

pub(super) async fn grants(api: Api, body: Bytes) -> Handled {
    let req: super::catalog::GrantRequest = parse_json(&body)?;
    let connector = connector(&api).await?;
    super::catalog::grant(&connector, &req)
        .await
        .map_err(refused)?;
    let body = warp::reply::json(&req);
    Ok(warp::reply::with_status(body, StatusCode::CREATED).into_response())
}
