//! The handlers of the route table ([`super::table`]): each reads the
//! snapshot or sends a request to the driver.

use super::auth::Authenticator;
use super::error::ApiError;
use super::Api;
use crate::catalog::{self, Connector};
use crate::driver::{Request, RequestError};
use crate::process;
use crate::spec::ComputeConfig;
use bytes::Bytes;
use compute_states::{Status, TerminationMode};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
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

pub(super) fn diagram(api: Api) -> Response {
    let text = compute_states::mermaid_highlighted(api.handle.status());
    warp::reply::with_header(text, "content-type", "text/plain; charset=utf-8").into_response()
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

/// Applies a spec (and the keys of its `compute_ctl_config`) through the
/// driver, as `/configure` does; answers the status once running.
async fn apply(
    api: &Api,
    spec: crate::spec::ComputeSpec,
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
    let snapshot = api
        .handle
        .request(|reply| Request::Configure { spec, reply })
        .await
        .map_err(|e| reject(e.into()))?;
    if let Some(auth) = new_auth {
        api.auth.install(auth);
    }
    Ok(warp::reply::json(&snapshot).into_response())
}

/// `/refresh_configuration`: re-reads the spec from where it came from (the
/// control plane, or the `-S`/`-c` file) and applies it as `/configure` would.
pub(super) async fn refresh_configuration(api: Api) -> Handled {
    // Not worth a pull where a new spec would be refused anyway.
    let status = api.handle.status();
    if !matches!(status, Status::Empty | Status::Running | Status::Failed) {
        return Err(reject(
            RequestError::InvalidState(api.handle.compute_status()).into(),
        ));
    }
    let Some(source) = api.spec_source.clone() else {
        return Err(reject(ApiError::new(
            StatusCode::CONFLICT,
            "no spec source to refresh from: compute_ctl was started without -p, -S or -c",
        )));
    };
    let fetched = source
        .fetch()
        .await
        .map_err(|e| reject(ApiError::new(StatusCode::BAD_GATEWAY, format!("{e:#}"))))?;
    let Some(spec) = fetched.spec else {
        return Err(reject(ApiError::new(
            StatusCode::CONFLICT,
            "the spec source has no spec for this compute",
        )));
    };
    apply(&api, spec, fetched.compute_ctl_config.as_ref()).await
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
    let snap = api.handle.snapshot();
    if snap.status == Status::Terminated {
        let body = warp::reply::json(&json!({ "lsn": snap.lsn }));
        return Ok(warp::reply::with_status(body, StatusCode::CREATED).into_response());
    }
    match api
        .handle
        .request(|reply| Request::Terminate { mode, reply })
        .await
    {
        Ok(lsn) => Ok(warp::reply::json(&json!({ "lsn": lsn })).into_response()),
        Err(RequestError::AlreadyTerminated(lsn)) => {
            let body = warp::reply::json(&json!({ "lsn": lsn }));
            Ok(warp::reply::with_status(body, StatusCode::CREATED).into_response())
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

async fn client(connector: &Connector, db: &str) -> Result<tokio_postgres::Client, Rejection> {
    connector
        .connect(db)
        .await
        .map_err(|e| reject(ApiError::internal(&e)))
}

pub(super) async fn dbs_and_roles(api: Api) -> Handled {
    let connector = connector(&api).await?;
    let body = catalog::api::dbs_and_roles(&connector)
        .await
        .map_err(|e| reject(ApiError::internal(&e)))?;
    Ok(warp::reply::json(&body).into_response())
}

pub(super) async fn database_schema(api: Api, query: HashMap<String, String>) -> Handled {
    let database = query
        .get("database")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            reject(ApiError::bad_request(
                "the database query parameter is required",
            ))
        })?
        .clone();
    let connector = connector(&api).await?;
    let c = client(&connector, connector.maintenance_db()).await?;
    let exists = c
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .map_err(|e| reject(ApiError::internal(&e.into())))?;
    if exists.is_none() {
        return Err(reject(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("database {database:?} does not exist"),
        )));
    }
    let mut cmd = tokio::process::Command::new(&api.pg_dump);
    // compute_ctl's own bookkeeping is not the user's schema.
    cmd.arg("--schema-only")
        .arg("--exclude-schema=neon_migration")
        .arg("--exclude-table=public.health_check")
        .arg("--no-password")
        .arg("--dbname")
        .arg(connector.libpq_connstring(&database))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // The password (if the connection string has one) in a 0600 file, not argv;
    // removed once pg_dump has ended.
    let passfile = match connector.password() {
        Some(p) => Some(
            crate::secret::PassFile::create(&p, None)
                .map_err(|e| reject(ApiError::internal(&e)))?,
        ),
        None => None,
    };
    if let Some(f) = &passfile {
        cmd.env("PGPASSFILE", f.path());
    }
    let mut child = process::spawn(&mut cmd).map_err(|e| {
        reject(ApiError::internal(&anyhow::anyhow!(
            "starting pg_dump: {e}"
        )))
    })?;
    let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(reject(ApiError::internal(&anyhow::anyhow!(
            "pg_dump has no pipes"
        ))));
    };
    // stderr is drained on its own, so pg_dump never blocks on either pipe.
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::BufReader::new(stderr)
            .read_to_string(&mut text)
            .await;
        text
    });
    // The first chunk decides the status: pg_dump failing at once (say, the
    // database was dropped meanwhile) is a 500, not an empty 200.
    let mut first = vec![0u8; 64 * 1024];
    let n = stdout.read(&mut first).await.unwrap_or(0);
    first.truncate(n);
    if n == 0 {
        let status = child.wait().await;
        process::forget(child.id());
        let err = stderr.await.unwrap_or_default();
        if !matches!(status, Ok(s) if s.success()) {
            let e = anyhow::anyhow!("pg_dump failed: {}", err.trim());
            return Err(reject(ApiError::internal(&e)));
        }
        return Ok(
            warp::reply::with_header("", "content-type", "text/plain; charset=utf-8")
                .into_response(),
        );
    }
    // Stream the rest as it comes; a failure later aborts the response, so a
    // client never takes a partial dump for a whole one.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let _passfile = passfile;
        let pid = child.id();
        let mut chunk = first;
        let delivered = loop {
            if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                break false; // the client went away
            }
            let mut buf = vec![0u8; 64 * 1024];
            match stdout.read(&mut buf).await {
                Ok(0) => break true,
                Ok(n) => {
                    buf.truncate(n);
                    chunk = buf;
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break false;
                }
            }
        };
        if !delivered {
            drop(stdout);
            let _ = child.start_kill();
        }
        let status = child.wait().await;
        process::forget(pid);
        let err = stderr.await.unwrap_or_default();
        if delivered && !matches!(status, Ok(s) if s.success()) {
            tracing::error!(?status, stderr = err.trim(), "pg_dump failed");
            let e = std::io::Error::other(format!("pg_dump failed: {}", err.trim()));
            let _ = tx.send(Err(e)).await;
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let reply = warp::reply::stream(stream);
    Ok(
        warp::reply::with_header(reply, "content-type", "text/plain; charset=utf-8")
            .into_response(),
    )
}

pub(super) async fn check_writability(api: Api) -> Handled {
    if api.handle.status() != Status::Running {
        return Err(reject(ApiError::from(RequestError::InvalidState(
            api.handle.compute_status(),
        ))));
    }
    let connector = connector(&api).await?;
    let c = client(&connector, connector.maintenance_db()).await?;
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS public.health_check (id integer PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT pg_catalog.now());
         INSERT INTO public.health_check (id, updated_at) VALUES (1, pg_catalog.now())
         ON CONFLICT (id) DO UPDATE SET updated_at = pg_catalog.now();",
    )
    .await
    .map_err(|e| reject(ApiError::internal(&anyhow::Error::new(e).context("the compute is not writable"))))?;
    Ok(warp::reply::json(&true).into_response())
}

/// Maps a catalog request's failure to its status.
fn refused(e: catalog::api::RequestFailure) -> Rejection {
    match e {
        catalog::api::RequestFailure::BadRequest(m) => reject(ApiError::bad_request(m)),
        catalog::api::RequestFailure::Failed(e) => reject(ApiError::internal(&e)),
    }
}

pub(super) async fn extensions(api: Api, body: Bytes) -> Handled {
    let req: catalog::api::ExtensionRequest = parse_json(&body)?;
    if api.handle.status() != Status::Running {
        return Err(reject(ApiError::from(RequestError::InvalidState(
            api.handle.compute_status(),
        ))));
    }
    let connector = connector(&api).await?;
    catalog::api::install_extension(&connector, &req)
        .await
        .map_err(refused)?;
    let body = warp::reply::json(&json!({"extension": req.extension, "version": req.version}));
    Ok(warp::reply::with_status(body, StatusCode::CREATED).into_response())
}

pub(super) async fn grants(api: Api, body: Bytes) -> Handled {
    let req: catalog::api::GrantRequest = parse_json(&body)?;
    let connector = connector(&api).await?;
    catalog::api::grant(&connector, &req)
        .await
        .map_err(refused)?;
    let body = warp::reply::json(&req);
    Ok(warp::reply::with_status(body, StatusCode::CREATED).into_response())
}
