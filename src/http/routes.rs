//! Routes and handlers.

use super::auth::Authenticator;
use super::error::{recover, ApiError};
use super::{Api, BODY_LIMIT};
use crate::catalog::{self, Connector};
use crate::driver::{Request, RequestError};
use crate::process;
use crate::spec::ComputeConfig;
use bytes::Bytes;
use compute_states::{Status, TerminationMode};
use postgres_protocol::escape::{escape_identifier, escape_literal};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

type Handled = Result<Response, Rejection>;

fn reject(e: ApiError) -> Rejection {
    warp::reject::custom(e)
}

fn with_api(api: Api) -> impl Filter<Extract = (Api,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || api.clone())
}

/// Checks the bearer token (a no-op when no keys are configured, or when
/// not `required`: the internal port).
fn authenticated(api: Api, required: bool) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(with_api(api))
        .and_then(move |header: Option<String>, api: Api| async move {
            if !required {
                return Ok(());
            }
            let auth: Arc<Authenticator> = api.auth.read().clone();
            match auth.check(header.as_deref()) {
                Ok(_) => Ok(()),
                Err(e) => {
                    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::UNAUTHORIZED);
                    Err(reject(ApiError::new(status, e.message)))
                }
            }
        })
        .untuple_one()
}

/// A JSON body: `application/json`, at most [`BODY_LIMIT`] bytes.
fn json_body() -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
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
        .and(warp::body::bytes())
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Rejection> {
    serde_json::from_slice(body)
        .map_err(|e| reject(ApiError::bad_request(format!("malformed body: {e}"))))
}

/// Routes served on the external port.
pub fn external(api: Api) -> BoxedFilter<(Response,)> {
    finish(routes(api, true))
}

/// JSON errors for every rejection, and a log line per request.
fn finish(routes: BoxedFilter<(Response,)>) -> BoxedFilter<(Response,)> {
    routes
        .recover(recover)
        .unify()
        .with(warp::log::custom(log_request))
        .map(Reply::into_response)
        .boxed()
}

/// The control-plane routes, without error recovery.
fn routes(api: Api, require_auth: bool) -> BoxedFilter<(Response,)> {
    let auth = authenticated(api.clone(), require_auth);
    let a = || with_api(api.clone());
    let get = |name: &'static str| warp::path(name).and(warp::path::end()).and(warp::get());
    let post = |name: &'static str| warp::path(name).and(warp::path::end()).and(warp::post());

    let metrics = get("metrics").and(a()).map(|api: Api| {
        let text = crate::metrics::render(&api.handle.snapshot(), &api.build_tag);
        warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4").into_response()
    });
    let status = get("status").and(auth.clone()).and(a()).map(status);
    let metrics_json = warp::path("metrics.json")
        .and(warp::path::end())
        .and(warp::get())
        .and(auth.clone())
        .and(a())
        .map(|api: Api| warp::reply::json(&api.handle.snapshot().timings).into_response());
    let info = get("info").and(auth.clone()).and(a()).map(info);
    let diagram = get("diagram").and(auth.clone()).and(a()).map(|api: Api| {
        let text = compute_states::mermaid_highlighted(api.handle.status());
        warp::reply::with_header(text, "content-type", "text/plain; charset=utf-8").into_response()
    });
    let configure = post("configure")
        .and(auth.clone())
        .and(a())
        .and(json_body())
        .and_then(configure);
    let terminate = post("terminate")
        .and(auth.clone())
        .and(a())
        .and(warp::query::<HashMap<String, String>>())
        .and_then(terminate);
    let dbs_and_roles = get("dbs_and_roles")
        .and(auth.clone())
        .and(a())
        .and_then(dbs_and_roles);
    let database_schema = get("database_schema")
        .and(auth.clone())
        .and(a())
        .and(warp::query::<HashMap<String, String>>())
        .and_then(database_schema);
    let check_writability = post("check_writability")
        .and(auth)
        .and(a())
        .and_then(check_writability);

    super::probes::routes(api.clone())
        .or(metrics)
        .unify()
        .or(status)
        .unify()
        .or(metrics_json)
        .unify()
        .or(info)
        .unify()
        .or(diagram)
        .unify()
        .or(configure)
        .unify()
        .or(terminate)
        .unify()
        .or(dbs_and_roles)
        .unify()
        .or(database_schema)
        .unify()
        .or(check_writability)
        .unify()
        .boxed()
}

/// Routes served on the internal port: everything external (without
/// authentication: it listens on loopback) plus `/extensions` and `/grants`.
pub fn internal(api: Api) -> BoxedFilter<(Response,)> {
    let a = || with_api(api.clone());
    let post = |name: &'static str| warp::path(name).and(warp::path::end()).and(warp::post());
    let extensions = post("extensions")
        .and(a())
        .and(json_body())
        .and_then(extensions);
    let grants = post("grants").and(a()).and(json_body()).and_then(grants);
    finish(
        extensions
            .or(grants)
            .unify()
            .or(routes(api.clone(), false))
            .unify()
            .boxed(),
    )
}

fn log_request(info: warp::log::Info<'_>) {
    let (method, path, status) = (info.method(), info.path(), info.status().as_u16());
    let ms = info.elapsed().as_secs_f64() * 1000.0;
    if path == "/status" || path == "/metrics" || super::probes::PATHS.contains(&path) {
        tracing::debug!(target: "http", %method, path, status, ms, "request");
    } else {
        tracing::info!(target: "http", %method, path, status, ms, "request");
    }
}

fn status(api: Api) -> Response {
    warp::reply::json(&api.handle.snapshot()).into_response()
}

fn info(api: Api) -> Response {
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

async fn configure(api: Api, body: Bytes) -> Handled {
    let text = std::str::from_utf8(&body)
        .map_err(|_| reject(ApiError::bad_request("the body is not UTF-8")))?;
    let config =
        ComputeConfig::from_json(text).map_err(|e| reject(ApiError::bad_request(e.to_string())))?;
    let spec = config.spec.ok_or_else(|| {
        reject(ApiError::bad_request(
            "invalid compute spec: spec: missing or null",
        ))
    })?;
    let new_auth = match &config.compute_ctl_config {
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
        let mut current = api.auth.write();
        if auth.is_open() && !current.is_open() {
            // Authentication is never turned off by omission.
            tracing::warn!(
                "the new compute_ctl_config has no JWKS; the configured keys stay in force"
            );
        } else {
            *current = Arc::new(auth);
        }
    }
    Ok(warp::reply::json(&snapshot).into_response())
}

async fn terminate(api: Api, query: HashMap<String, String>) -> Handled {
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

#[derive(Serialize)]
struct RoleOut {
    name: String,
}

#[derive(Serialize)]
struct DatabaseOut {
    name: String,
    owner: String,
}

async fn dbs_and_roles(api: Api) -> Handled {
    let connector = connector(&api).await?;
    let c = client(&connector, connector.maintenance_db()).await?;
    let catalog = catalog::read_catalog(&c)
        .await
        .map_err(|e| reject(ApiError::internal(&e)))?;
    // Shaped like the spec, without password hashes; system roles and the
    // superuser are not the spec's business.
    let roles: Vec<RoleOut> = catalog
        .roles
        .into_iter()
        .filter(|r| !r.name.starts_with("pg_") && r.name != connector.superuser())
        .map(|r| RoleOut { name: r.name })
        .collect();
    let databases: Vec<DatabaseOut> = catalog
        .databases
        .into_iter()
        .filter(|d| !d.is_template)
        .map(|d| DatabaseOut {
            name: d.name,
            owner: d.owner,
        })
        .collect();
    Ok(warp::reply::json(&json!({ "roles": roles, "databases": databases })).into_response())
}

async fn database_schema(api: Api, query: HashMap<String, String>) -> Handled {
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
    cmd.arg("--schema-only")
        .arg("--no-password")
        .arg("--dbname")
        .arg(connector.libpq_connstring(&database))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
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

async fn check_writability(api: Api) -> Handled {
    if api.handle.status() != Status::Running {
        return Err(reject(ApiError::from(RequestError::InvalidState(
            api.handle.status(),
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

#[derive(Debug, Serialize, Deserialize)]
struct ExtensionRequest {
    extension: String,
    database: String,
    version: String,
}

async fn extensions(api: Api, body: Bytes) -> Handled {
    let req: ExtensionRequest = parse_json(&body)?;
    if req.extension.is_empty() || req.database.is_empty() || req.version.is_empty() {
        return Err(reject(ApiError::bad_request(
            "extension, database and version must not be empty",
        )));
    }
    let connector = connector(&api).await?;
    let c = client(&connector, &req.database).await?;
    let ext = escape_identifier(&req.extension);
    let version = escape_literal(&req.version);
    let installed: Option<String> = c
        .query_opt(
            "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = $1",
            &[&req.extension],
        )
        .await
        .map_err(|e| reject(ApiError::internal(&e.into())))?
        .map(|r| r.get(0));
    let sql = match installed {
        // Maintenance connections run with an empty search_path; the
        // extension goes where a user's objects would.
        None => format!(
            "SET search_path TO \"$user\", public; CREATE EXTENSION {ext} WITH VERSION {version}"
        ),
        Some(v) if v == req.version => String::new(),
        Some(_) => format!("ALTER EXTENSION {ext} UPDATE TO {version}"),
    };
    if !sql.is_empty() {
        c.batch_execute(&sql).await.map_err(|e| {
            reject(ApiError::internal(
                &anyhow::Error::new(e).context(format!("installing extension {:?}", req.extension)),
            ))
        })?;
    }
    let body = warp::reply::json(&json!({"extension": req.extension, "version": req.version}));
    Ok(warp::reply::with_status(body, StatusCode::CREATED).into_response())
}

#[derive(Debug, Serialize, Deserialize)]
struct GrantRequest {
    database: String,
    schema: String,
    privileges: Vec<String>,
    role: String,
}

/// Privileges that can be granted on a schema.
const SCHEMA_PRIVILEGES: &[&str] = &["USAGE", "CREATE"];

async fn grants(api: Api, body: Bytes) -> Handled {
    let req: GrantRequest = parse_json(&body)?;
    if req.privileges.is_empty() {
        return Err(reject(ApiError::bad_request(
            "privileges must not be empty",
        )));
    }
    let mut privileges = Vec::new();
    for p in &req.privileges {
        let upper = p.to_ascii_uppercase();
        match SCHEMA_PRIVILEGES.iter().find(|k| **k == upper) {
            Some(k) => privileges.push(*k),
            None => {
                return Err(reject(ApiError::bad_request(format!(
                    "unknown schema privilege {p:?}; allowed: {}",
                    SCHEMA_PRIVILEGES.join(", ")
                ))))
            }
        }
    }
    let connector = connector(&api).await?;
    let c = client(&connector, &req.database).await?;
    let sql = format!(
        "GRANT {} ON SCHEMA {} TO {}",
        privileges.join(", "),
        escape_identifier(&req.schema),
        escape_identifier(&req.role)
    );
    c.batch_execute(&sql).await.map_err(|e| {
        reject(ApiError::internal(
            &anyhow::Error::new(e).context("granting"),
        ))
    })?;
    let body = warp::reply::json(&req);
    Ok(warp::reply::with_status(body, StatusCode::CREATED).into_response())
}
