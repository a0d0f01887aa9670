//! The route table: every HTTP route declared once (method, path, port,
//! authentication, allowed states, handler). Both routers are built from it
//! and the README's route table is rendered from it, so "what does each port
//! serve" is one readable list. Adding or changing a route is one row.

use super::routes::{self, Handled, Input};
use super::Api;
use crate::driver::Asked;
use futures_util::future::BoxFuture;
use warp::http::Method;

/// Which listener(s) serve a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// `--external-http-port` only (all interfaces; the control plane).
    External,
    /// `--internal-http-port` only (loopback; local helpers).
    Internal,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone (metrics, probes).
    Open,
    /// A JWT bearer token granted by `compute_ctl_config.jwks` (when no keys
    /// are configured: callers on loopback only, 401 to others; 503 while
    /// the control plane's keys are still being pulled).
    Jwt,
    /// No token: the internal port listens on loopback for local helpers.
    Loopback,
}

/// Whether a route takes a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body; the query string is parsed.
    None,
    /// `application/json`, at most [`super::BODY_LIMIT`] bytes.
    Json,
}

/// Where a route does its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum States {
    /// Answered from the snapshot, whatever the state.
    Any,
    /// Answered from the snapshot; in which states, and what it answers elsewhere.
    Snapshot(&'static str),
    /// Asks the driver this, which the driver's admission takes in some
    /// states (elsewhere: 412); with a note for the README.
    Asks(Asked, &'static str),
}

impl States {
    /// The states, as the README's table says them.
    pub fn describe(self) -> String {
        match self {
            States::Any => "any".into(),
            States::Snapshot(states) => states.into(),
            States::Asks(asked, note) => format!("{}{note}", crate::driver::described(asked)),
        }
    }
}

/// A handler: the request's parts in, a response (or a JSON error) out.
pub type Handler = fn(Api, Input) -> BoxFuture<'static, Handled>;

/// One route.
pub struct Route {
    /// GET or POST.
    pub method: Method,
    /// The path (one segment, without the leading `/`; or `name/{*rest}`,
    /// where the rest of the path is the handler's `tail`).
    pub path: &'static str,
    /// Where it is served.
    pub ports: Ports,
    /// Who may call it.
    pub auth: Auth,
    /// The states in which it does its work: rendered from the driver's
    /// admission for the routes that ask the driver.
    pub states: States,
    /// Whether it takes a JSON body.
    pub body: Body,
    /// What it answers, for the README.
    pub summary: &'static str,
    /// The handler.
    pub handler: Handler,
}

/// Every route, in the README's order.
pub static ROUTES: &[Route] = &[
    Route {
        method: Method::GET,
        path: "status",
        ports: Ports::External,
        auth: Auth::Jwt,
        states: States::Any,
        body: Body::None,
        summary: "the compute's state, start time, last activity and error",
        handler: |api, _| Box::pin(async move { Ok(routes::status(api)) }),
    },
    Route {
        method: Method::POST,
        path: "configure",
        ports: Ports::External,
        auth: Auth::Jwt,
        states: States::Asks(Asked::Configure, ""),
        body: Body::Json,
        summary: "`{\"spec\", \"compute_ctl_config\"?}`: start or reconfigure; answers once running",
        handler: |api, input| Box::pin(routes::configure(api, input.body)),
    },
    Route {
        method: Method::POST,
        path: "terminate",
        ports: Ports::External,
        auth: Auth::Jwt,
        states: States::Asks(
            Asked::Terminate,
            " (during a termination, or once terminated: 201 with its LSN)",
        ),
        body: Body::None,
        summary: "`?mode=fast|immediate`: stop postgres and exit; `{\"lsn\"}`",
        handler: |api, input| Box::pin(routes::terminate(api, input.query)),
    },
    Route {
        method: Method::POST,
        path: "restart",
        ports: Ports::External,
        auth: Auth::Jwt,
        states: States::Asks(Asked::Restart, ""),
        body: Body::None,
        summary: "`?only_if_pending=true`: stop postgres fast and start it again so pending settings go live; answers the status once running",
        handler: |api, input| Box::pin(super::operate::restart(api, input.query)),
    },
    Route {
        method: Method::POST,
        path: "promote",
        ports: Ports::External,
        auth: Auth::Jwt,
        states: States::Asks(
            Asked::Promote,
            " (a vanilla replica; a primary answers completed at once)",
        ),
        body: Body::Json,
        summary: "`{\"spec\", \"wal_flush_lsn\"}`: wait until the replica has the WAL up to the LSN, `pg_promote()`, apply the spec as a primary; `{\"status\": \"completed\", \"lsn_wait_time_ms\", \"pg_promote_time_ms\", \"reconfigure_time_ms\"}`; 408 when the WAL does not arrive in time",
        handler: |api, input| Box::pin(super::operate::promote(api, input.body)),
    },
    Route {
        method: Method::GET,
        path: "metrics",
        ports: Ports::External,
        auth: Auth::Open,
        states: States::Any,
        body: Body::None,
        summary: "Prometheus text",
        handler: |api, _| Box::pin(async move { Ok(routes::metrics(api)) }),
    },
    Route {
        method: Method::GET,
        path: "healthz",
        ports: Ports::External,
        auth: Auth::Open,
        states: States::Asks(Asked::Ping, ""),
        body: Body::None,
        summary: "liveness: the driver loop answers within 1 s (postgres is not touched); else 503",
        handler: |api, _| Box::pin(async move { Ok(super::probes::healthz(api).await) }),
    },
    Route {
        method: Method::GET,
        path: "readyz",
        ports: Ports::External,
        auth: Auth::Open,
        states: States::Snapshot("running (else 503)"),
        body: Body::None,
        summary: "readiness: postgres answers `SELECT 1` within 1 s; `?lag=BYTES`: a replica's replay within that; else 503",
        handler: |api, input| Box::pin(async move { Ok(super::probes::readyz(api, input.query).await) }),
    },
    Route {
        method: Method::GET,
        path: "startupz",
        ports: Ports::External,
        auth: Auth::Open,
        states: States::Any,
        body: Body::None,
        summary: "the compute has left init/configuration once; else 503",
        handler: |api, _| Box::pin(async move { Ok(super::probes::startupz(api)) }),
    },
    Route {
        method: Method::GET,
        path: "metrics.json",
        ports: Ports::External,
        auth: Auth::Jwt,
        states: States::Any,
        body: Body::None,
        summary: "startup timings (ms)",
        handler: |api, _| Box::pin(async move { Ok(routes::metrics_json(api)) }),
    },
    Route {
        method: Method::GET,
        path: "info",
        ports: Ports::External,
        auth: Auth::Jwt,
        states: States::Any,
        body: Body::None,
        summary: "CPUs, postgres and compute_ctl versions, build tag",
        handler: |api, _| Box::pin(async move { Ok(routes::info(api)) }),
    },
    Route {
        method: Method::GET,
        path: "diagram",
        ports: Ports::External,
        auth: Auth::Jwt,
        states: States::Any,
        body: Body::None,
        summary: "the state diagram (mermaid), current status highlighted: each state as the status it reports; `?view=types`: every state type and edge",
        handler: |api, input| Box::pin(async move { routes::diagram(api, input.query) }),
    },
    Route {
        method: Method::GET,
        path: "dbs_and_roles",
        ports: Ports::External,
        auth: Auth::Jwt,
        states: States::Asks(Asked::Connect, ""),
        body: Body::None,
        summary: "every role of `pg_authid` and database of `pg_database` (no password hashes)",
        handler: |api, _| Box::pin(routes::dbs_and_roles(api)),
    },
    Route {
        method: Method::GET,
        path: "database_schema",
        ports: Ports::External,
        auth: Auth::Jwt,
        states: States::Asks(Asked::Connect, ""),
        body: Body::None,
        summary: "`?database=`: `pg_dump --schema-only`, streamed; 404 for an unknown database",
        handler: |api, input| Box::pin(routes::database_schema(api, input.query)),
    },
    Route {
        method: Method::GET,
        path: "insights",
        ports: Ports::External,
        auth: Auth::Jwt,
        states: States::Asks(Asked::ConnectRunning, ""),
        body: Body::None,
        summary: "`{\"pg_stat_statements\": [rows]}`: the 100 statements of other users slowest on average; 404 when `pg_stat_statements` is not installed",
        handler: |api, _| Box::pin(super::insights::insights(api)),
    },
    Route {
        method: Method::POST,
        path: "check_writability",
        ports: Ports::External,
        auth: Auth::Jwt,
        states: States::Asks(Asked::ConnectRunning, ""),
        body: Body::None,
        summary: "`true` after an upsert into `public.health_check`",
        handler: |api, _| Box::pin(routes::check_writability(api)),
    },
    Route {
        method: Method::POST,
        path: "extensions",
        ports: Ports::Internal,
        auth: Auth::Loopback,
        states: States::Asks(Asked::ConnectRunning, ""),
        body: Body::Json,
        summary: "`{extension, database, version}`: `CREATE EXTENSION` in schema public, or `ALTER EXTENSION .. UPDATE TO` one at another version; 201",
        handler: |api, input| Box::pin(routes::extensions(api, input.body)),
    },
    Route {
        method: Method::POST,
        path: "grants",
        ports: Ports::Internal,
        auth: Auth::Loopback,
        states: States::Asks(Asked::Connect, ""),
        body: Body::Json,
        summary: "`{database, schema, privileges, role}`: grant on a schema what the role lacks; 201",
        handler: |api, input| Box::pin(routes::grants(api, input.body)),
    },
    Route {
        method: Method::POST,
        path: "extension_server/{*filename}",
        ports: Ports::Internal,
        auth: Auth::Loopback,
        states: States::Snapshot("any with a spec"),
        body: Body::None,
        summary: "`?is_library=true` (a library) or `false`: fetch the remote extension that provides the file from the store (`-r`) and install it; 412 without a store, 409 without `remote_extensions`, 404 not allowed, 500 failed download",
        handler: |api, input| Box::pin(super::extensions::extension_server(api, input)),
    },
    Route {
        method: Method::POST,
        path: "refresh_configuration",
        ports: Ports::Internal,
        auth: Auth::Loopback,
        states: States::Asks(Asked::Refresh, ""),
        body: Body::None,
        summary: "answered at once (empty 200): re-read the spec (control plane with `-p`, file with `-S`/`-c`) and apply it in place if it changed, through `refresh_configuration_pending` and `refresh_configuration`; retried every 5 s until it succeeds; a source with no spec (attached to no storage) stops postgres and exits 1; 409 without a source; during other work it runs once that is done",
        handler: |api, _| Box::pin(routes::refresh_configuration(api)),
    },
];

/// The routes served on `port`.
pub fn served_on(port: Ports) -> impl Iterator<Item = &'static Route> {
    ROUTES.iter().filter(move |r| r.ports == port)
}

/// The README's route table (markdown), generated from [`ROUTES`].
pub fn markdown() -> String {
    let mut out = String::from("| port | route | authentication | allowed in | answer |\n");
    out.push_str("|---|---|---|---|---|\n");
    for r in ROUTES {
        let port = match r.ports {
            Ports::External => "external",
            Ports::Internal => "internal",
        };
        let auth = match r.auth {
            Auth::Open => "none",
            Auth::Jwt => "JWT",
            Auth::Loopback => "none (loopback)",
        };
        let body = match r.body {
            Body::None => "",
            Body::Json => " (JSON body)",
        };
        out.push_str(&format!(
            "| {port} | `{} /{}`{body} | {auth} | {} | {} |\n",
            r.method,
            r.path,
            r.states.describe(),
            r.summary.replace('|', "\\|")
        ));
    }
    out
}
