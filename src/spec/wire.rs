//! The compute specification as it comes over the wire: serde types
//! compatible with the contract, unchecked. Nothing outside `spec` uses one
//! before [`super::ValidSpec`] has checked it; the types are public so that
//! a checked spec can be read field by field.

use crate::options::GenericOption;
use crate::secret::Secret;
use compute_states::Lsn;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// A ComputeSpec, as sent by the control plane or read with `-S`, not yet
/// checked: see [`super::ValidSpec`].
///
/// Unknown fields are ignored, as the contract requires.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ComputeSpec {
    /// Version of the format; 1.0.
    pub format_version: f32,
    /// Id of the operation that produced this spec, for the logs.
    #[serde(default)]
    pub operation_uuid: Option<String>,
    /// Feature flags; unknown ones are tolerated.
    #[serde(default)]
    pub features: Vec<String>,
    /// Roles, databases and settings.
    pub cluster: Cluster,
    /// Renames and drops, applied before the create/alter pass.
    #[serde(default)]
    pub delta_operations: Option<Vec<DeltaOp>>,
    /// Write the configuration and reload, but run no catalog SQL.
    #[serde(default)]
    pub skip_pg_catalog_updates: bool,
    /// At start, drop every subscription (once per timeline) before the
    /// catalog step: the data is a copy of another compute's.
    #[serde(default)]
    pub drop_subscriptions_before_start: bool,
    /// Parallel per-database connections during a reconfiguration.
    #[serde(default = "default_concurrency")]
    pub reconfigure_concurrency: usize,
    /// Primary, replica or static (read-only at an LSN).
    #[serde(default)]
    pub mode: ComputeMode,
    /// Neon tenant (32 hex characters).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Neon timeline (32 hex characters).
    #[serde(default)]
    pub timeline_id: Option<String>,
    /// libpq connection string of the pageserver; none means local storage.
    #[serde(default)]
    pub pageserver_connstring: Option<Secret>,
    /// Safekeepers (`host:port`).
    #[serde(default)]
    pub safekeeper_connstrings: Vec<String>,
    /// Beyond the reference: a vanilla replica (`mode: "Replica"`, no
    /// pageserver) takes its data from this primary with `pg_basebackup` and
    /// streams from it. A libpq connection string.
    #[serde(default)]
    pub primary_connstring: Option<Secret>,
    /// Token for the pageserver and safekeepers. Secret: never logged.
    #[serde(default)]
    pub storage_auth_token: Option<Secret>,
    /// Idle time after which the control plane may suspend the compute.
    #[serde(default)]
    pub suspend_timeout_seconds: Option<i64>,
}

fn default_concurrency() -> usize {
    1
}

/// What kind of compute this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ComputeMode {
    /// Read-write.
    #[default]
    Primary,
    /// Read-only, following the primary.
    Replica,
    /// Read-only at a fixed LSN.
    Static(Lsn),
}

/// Roles, databases and settings of the cluster.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Cluster {
    /// Control-plane id of the cluster.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// Human name of the cluster.
    #[serde(default)]
    pub name: Option<String>,
    /// Control-plane state, informational.
    #[serde(default)]
    pub state: Option<String>,
    /// Roles that must exist.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Databases that must exist.
    #[serde(default)]
    pub databases: Vec<Database>,
    /// Settings written to postgresql.conf.
    #[serde(default)]
    pub settings: Option<Vec<GenericOption>>,
    /// Raw text placed first in postgresql.conf.
    #[serde(default)]
    pub postgresql_conf: Option<String>,
}

/// A role of the spec.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Role {
    /// Role name.
    pub name: String,
    /// `SCRAM-SHA-256$...` verbatim, or an md5 hash without its `md5` prefix;
    /// null means no password. Secret: never logged or served.
    #[serde(default)]
    pub encrypted_password: Option<Secret>,
    /// Role options (LOGIN, CREATEDB, ...).
    #[serde(default)]
    pub options: Option<Vec<GenericOption>>,
}

/// A database of the spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Database {
    /// Database name.
    pub name: String,
    /// Owning role.
    pub owner: String,
    /// Database options (LC_COLLATE, TEMPLATE, ...).
    #[serde(default)]
    pub options: Option<Vec<GenericOption>>,
}

/// A rename or drop, applied before the create/alter pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltaOp {
    /// What to do.
    pub action: DeltaAction,
    /// The object it is done to.
    pub name: String,
    /// The new name, for renames.
    #[serde(default)]
    pub new_name: Option<String>,
}

/// The kinds of delta operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DeltaAction {
    /// Rename a role if the old name exists.
    RenameRole,
    /// Drop a role after reassigning what it owns.
    DeleteRole,
    /// Rename a database if the old name exists.
    RenameDb,
    /// Drop a database.
    DeleteDb,
}

impl ComputeSpec {
    /// Like the reference: the storage fields fall back to the settings
    /// `neon.pageserver_connstring`, `neon.safekeepers` (comma-separated),
    /// `neon.tenant_id` and `neon.timeline_id` when absent.
    pub(super) fn apply_setting_fallbacks(&mut self) {
        let setting = |name: &str| {
            self.settings()
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.value.clone())
                .filter(|v| !v.is_empty())
        };
        let pageserver = setting("neon.pageserver_connstring");
        let tenant = setting("neon.tenant_id");
        let timeline = setting("neon.timeline_id");
        let safekeepers = setting("neon.safekeepers");
        self.pageserver_connstring = self
            .pageserver_connstring
            .take()
            .or(pageserver.map(Secret::new));
        self.tenant_id = self.tenant_id.take().or(tenant);
        self.timeline_id = self.timeline_id.take().or(timeline);
        if self.safekeeper_connstrings.is_empty() {
            if let Some(list) = safekeepers {
                self.safekeeper_connstrings = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
            }
        }
    }

    /// The settings of `cluster.settings` (an empty slice when null).
    pub fn settings(&self) -> &[GenericOption] {
        self.cluster.settings.as_deref().unwrap_or_default()
    }

    /// Settings with a plain (undotted) name that `known` does not contain.
    /// Dotted names are custom settings (extensions) and always allowed.
    pub fn unknown_settings<'a>(
        &'a self,
        known: &'a HashSet<String>,
    ) -> impl Iterator<Item = (usize, &'a GenericOption)> + 'a {
        self.settings().iter().enumerate().filter(move |(_, s)| {
            !s.name.contains('.') && !known.contains(&s.name.to_ascii_lowercase())
        })
    }
}
