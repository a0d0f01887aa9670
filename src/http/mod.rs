//! The HTTP API (warp): the control-plane face of the compute.
//!
//! Handlers never change the compute's state: they read the published
//! snapshot, or send a request to the driver and wait for its answer. Each
//! port serves only its rows of the route table ([`table::ROUTES`]): the
//! external port the control plane's routes (JWT-authenticated except
//! `/metrics`), the internal port, on loopback by default, only what local
//! helpers need (`/extensions`, `/grants`, `/refresh_configuration`).

mod error;
mod operate;
pub mod probes;
mod router;
mod routes;
pub mod table;

pub use error::ApiError;

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
    /// Where `/refresh_configuration` reads the spec again (None: nowhere).
    pub spec_source: Option<Arc<crate::control_plane::SpecSource>>,
    /// Connections of its own for `/readyz` (never through the driver).
    pub connector: crate::catalog::Connector,
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

/// Binds both ports and starts serving. Binding errors are returned (a port
/// in use is a clear startup error, not a panic).
pub async fn serve(api: Api, external: SocketAddr, internal: SocketAddr) -> Result<Servers> {
    let ext_listener = tokio::net::TcpListener::bind(external)
        .await
        .with_context(|| format!("binding the external HTTP port {external}"))?;
    let int_listener = tokio::net::TcpListener::bind(internal)
        .await
        .with_context(|| format!("binding the internal HTTP port {internal}"))?;
    let external = ext_listener.local_addr()?;
    let internal = int_listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let ext = warp::serve(router::router(api.clone(), table::Ports::External))
        .incoming(ext_listener)
        .graceful(until_stopped(stopped.clone()))
        .run();
    let int = warp::serve(router::router(api, table::Ports::Internal))
        .incoming(int_listener)
        .graceful(until_stopped(stopped))
        .run();
    tracing::info!(%external, %internal, "HTTP API listening");
    Ok(Servers {
        stop,
        tasks: vec![tokio::spawn(ext), tokio::spawn(int)],
    })
}
