//! What the driver is given and what its work shares: [`Params`], fixed
//! for the life of the process, and `Env`, the parameters with what is
//! learnt once and kept (postgres' settings, whether a start's copied
//! subscriptions were dropped), which the work futures of a start or a
//! reconfiguration hold beside the loop.

use super::RefreshSource;
use crate::config::ConfigParams;
use crate::connect::Connector;
use crate::pgbin::PgBin;
use crate::process::RunAs;
use crate::spec::{SpecError, ValidSpec};
use crate::storage;
use anyhow::Result;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Everything fixed for the life of the process.
pub struct Params {
    /// The data directory.
    pub pgdata: PathBuf,
    /// How compute_ctl connects to its postgres (the superuser).
    pub connstr: tokio_postgres::Config,
    /// The superuser: the connstr's user.
    pub superuser: String,
    /// The port postgres listens on: the connstr's port.
    pub port: u16,
    /// The postgres installation.
    pub pgbin: PgBin,
    /// Who postgres runs as when we are root.
    pub run_as: Option<RunAs>,
    /// Where initdb templates are cached.
    pub template_cache: PathBuf,
    /// Keep a spare copy of the template ready beside it, so that a local
    /// start renames it into place instead of copying (`--no-spare-pgdata`).
    pub spare_pgdata: bool,
    /// Where postgres puts its Unix socket (unless the spec says otherwise).
    pub socket_dir: PathBuf,
    /// How long a failed compute without postgres keeps answering `/status`
    /// (and accepting a new spec) before it exits.
    pub failure_exit_delay: Duration,
    /// The role spec roles are members of (`--privileged-role-name`).
    pub privileged_role: String,
    /// How often installed extensions are counted for the metrics.
    pub installed_extensions_interval: Duration,
    /// Retries of the storage steps.
    pub storage_backoff: storage::Backoff,
    /// The extension store (`-r`) and what was fetched from it.
    pub remote_extensions: Arc<crate::extensions::Store>,
    /// How long postgres may take to accept connections (recovery included).
    pub start_timeout: Duration,
    /// How long the API keeps answering after a termination asked for over
    /// HTTP; None: the reference's (30 s after fast, 300 ms after immediate).
    pub terminate_linger: Option<Duration>,
    /// Shutdown budget: a stop still running at this deadline becomes immediate.
    pub stop_timeout: Duration,
    /// How long `/promote` waits for the replica to replay up to the LSN.
    pub promote_timeout: Duration,
    /// TLS for clients (and what it last did, shown in the snapshot).
    pub edge: Arc<crate::edge::Edge>,
    /// The internal HTTP port (`neon.extension_server_port`).
    pub internal_http_port: u16,
    /// Where `/refresh_configuration` reads the spec again (None: nowhere,
    /// and a refresh is refused).
    pub refresh: Option<RefreshSource>,
}

/// What a start or reconfiguration needs, shared with the work futures.
pub(super) struct Env {
    pub(super) params: Params,
    pub(super) known_settings: OnceCell<HashSet<String>>,
    /// Set once a start with `drop_subscriptions_before_start` has dropped
    /// the copied subscriptions: from then on every configuration written
    /// lets logical replication's subscribers run.
    pub(super) subscribers_released: std::sync::atomic::AtomicBool,
    /// The idle session that confirmed the last reconfiguration's reload,
    /// when its catalog step sent no DDL: the next reconfiguration confirms
    /// its reload on it instead of forking a backend (see
    /// [`crate::config::ReloadSession`]). Taken by each reconfiguration, so
    /// it is never used by two at once.
    pub(super) reload_session: parking_lot::Mutex<Option<crate::config::ReloadSession>>,
}

impl Env {
    /// Checks a spec against what this postgres accepts, before anything is
    /// written: plain setting names postgres does not know are refused, and
    /// so are the settings of the socket, which is the superuser's door
    /// (`--socket-dir`, `--socket-group`).
    pub(super) async fn check_spec(&self, spec: &ValidSpec) -> Result<(), SpecError> {
        let known = self
            .known_settings
            .get_or_try_init(|| async {
                let params = &self.params;
                let mut known = params
                    .pgbin
                    .known_settings_cached(&params.template_cache)
                    .await?;
                known.extend(params.pgbin.undescribed_settings().map(String::from));
                anyhow::Ok(known)
            })
            .await
            .map_err(|e| SpecError {
                field: "cluster.settings".into(),
                reason: format!("cannot list postgres' settings: {e:#}"),
            })?;
        if let Some((i, s)) = spec.unknown_settings(known).next() {
            return Err(SpecError {
                field: format!("cluster.settings[{i}].name"),
                reason: format!("postgres has no setting named {:?}", s.name),
            });
        }
        let socket = [
            "unix_socket_directories",
            "unix_socket_group",
            "unix_socket_permissions",
        ];
        let ours = |name: &str| socket.iter().any(|s| s.eq_ignore_ascii_case(name));
        if let Some((i, s)) = spec
            .settings()
            .iter()
            .enumerate()
            .find(|(_, s)| ours(&s.name))
        {
            return Err(SpecError {
                field: format!("cluster.settings[{i}].name"),
                reason: format!(
                    "{} is compute_ctl's: the superuser is trusted on the socket, whose \
                     directory is --socket-dir (and --socket-group)",
                    s.name
                ),
            });
        }
        Ok(())
    }

    pub(super) fn connector(&self) -> Connector {
        Connector::new(self.params.connstr.clone())
            .with_privileged_role(&self.params.privileged_role)
    }

    pub(super) fn base_config_params(&self) -> ConfigParams<'_> {
        ConfigParams {
            port: self.params.port,
            superuser: &self.params.superuser,
            socket_dir: &self.params.socket_dir,
            privileged_role: Some(&self.params.privileged_role),
            edge: Some(&self.params.edge),
            extension_server_port: Some(self.params.internal_http_port),
            hold_subscribers: false,
        }
    }

    /// What the configuration of `spec` takes besides the spec: logical
    /// replication's subscribers held back while a start's copied
    /// subscriptions are still to be dropped.
    pub(super) fn config_params(&self, spec: &ValidSpec) -> ConfigParams<'_> {
        use std::sync::atomic::Ordering;
        ConfigParams {
            hold_subscribers: spec.drop_subscriptions_before_start
                && spec.mode == crate::spec::ComputeMode::Primary
                && !self.subscribers_released.load(Ordering::Relaxed),
            ..self.base_config_params()
        }
    }
}
