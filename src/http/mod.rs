//! The HTTP API (warp): the control-plane face of the compute.
//!
//! Handlers never change the compute's state: they read the published
//! snapshot, or send a request to the driver and wait for its answer. Each
//! port serves only its rows of the route table ([`table::ROUTES`]): the
//! external port the control plane's routes (JWT-authenticated except
//! `/metrics`), the internal port, on loopback by default, only what local
//! helpers need (`/extensions`, `/grants`, `/refresh_configuration`,
//! `/extension_server/`).

pub mod catalog;
mod error;
mod extensions;
mod insights;
mod operate;
pub mod probes;
mod router;
mod routes;
mod serve;
pub mod table;

pub use error::ApiError;
pub use serve::{connection_cap, Limits};

use crate::auth::Gate;
use crate::driver::Handle;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Largest request body accepted (a spec with thousands of roles fits).
pub const BODY_LIMIT: u64 = 4 * 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct Api {
    /// The driver's snapshot and request channel.
    pub handle: Handle,
    /// The keys guarding the authenticated routes (replaced when a spec
    /// brings new keys; closed until the control plane's keys are known).
    pub auth: Arc<Gate>,
    /// `--compute-id`, for JWT checks.
    pub compute_id: Option<String>,
    /// Reported in `compute_ctl_up{build_tag}`.
    pub build_tag: String,
    /// `pg_dump`, for `/database_schema`.
    pub pg_dump: PathBuf,
    /// Postgres' version string, for `/info`.
    pub pg_version: String,
    /// Connections of its own for `/readyz` (never through the driver).
    pub connector: crate::connect::Connector,
    /// The extension store, for `/extension_server/`.
    pub remote_extensions: Arc<crate::extensions::Store>,
    /// The bounds on both ports' connections (and on a stalled dump).
    pub limits: Limits,
}

/// The running servers; [`Servers::shutdown`] stops them gracefully.
pub struct Servers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Servers {
    /// Stops accepting, lets in-flight requests finish (up to `grace`).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("HTTP connections still open after {grace:?}; closing them");
        }
    }
}

/// Binds both ports and starts serving, each within `api.limits`. Binding
/// errors are returned (a port in use is a clear startup error, not a panic).
pub async fn serve(api: Api, external: SocketAddr, internal: SocketAddr) -> Result<Servers> {
    let limits = api.limits;
    let ext_listener = tokio::net::TcpListener::bind(external)
        .await
        .with_context(|| format!("binding the external HTTP port {external}"))?;
    let int_listener = tokio::net::TcpListener::bind(internal)
        .await
        .with_context(|| format!("binding the internal HTTP port {internal}"))?;
    let external = ext_listener.local_addr()?;
    let internal = int_listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let ext = serve::run(
        ext_listener,
        router::router(api.clone(), table::Ports::External, limits.idle_timeout),
        limits,
        stopped.clone(),
    );
    let int = serve::run(
        int_listener,
        router::router(api, table::Ports::Internal, limits.idle_timeout),
        limits,
        stopped,
    );
    let cap = connection_cap(limits.max_connections);
    tracing::info!(%external, %internal, max_connections = cap, "HTTP API listening");
    Ok(Servers {
        stop,
        tasks: vec![tokio::spawn(ext), tokio::spawn(int)],
    })
}
