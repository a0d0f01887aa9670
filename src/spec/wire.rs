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
    /// libpq connection string of the pageserver (shards comma-separated);
    /// the legacy form of [`Self::pageserver_connection_info`], which wins
    /// when both are given. A checked spec holds the resolved value here
    /// (see [`super::ValidSpec`]).
    #[serde(default)]
    pub pageserver_connstring: Option<Secret>,
    /// The pageservers of each shard: how the reference names them today.
    #[serde(default)]
    pub pageserver_connection_info: Option<PageserverConnectionInfo>,
    /// Stripe size (in pages) of a sharded tenant: the legacy companion of
    /// `pageserver_connstring`. A checked spec holds the resolved value.
    #[serde(default)]
    pub shard_stripe_size: Option<u32>,
    /// Safekeepers (`host:port`).
    #[serde(default)]
    pub safekeeper_connstrings: Vec<String>,
    /// Generation of the safekeeper set: written as the `g#<n>:` prefix of
    /// `neon.safekeepers`, where the walproposer reads it.
    #[serde(default)]
    pub safekeepers_generation: Option<u32>,
    /// Neon project, for `neon.project_id`.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Neon branch, for `neon.branch_id`.
    #[serde(default)]
    pub branch_id: Option<String>,
    /// Neon endpoint, for `neon.endpoint_id`.
    #[serde(default)]
    pub endpoint_id: Option<String>,
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
    /// Settings written into the `[pgbouncer]` section of pgbouncer's ini
    /// (then reloaded), in this order.
    #[serde(default)]
    pub pgbouncer_settings: Option<super::edge::PgbouncerSettings>,
    /// What pgaudit logs: `Disabled` (the default), `Log`, `Base`, `Hipaa`,
    /// `Extended`, `Full`.
    #[serde(default)]
    pub audit_log_level: super::edge::AuditLevel,
    /// Where postgres' log lines are forwarded (`host:port`, `[IPv6]:port`).
    #[serde(default)]
    pub logs_export_host: Option<super::edge::LogsExportHost>,
    /// Extensions this compute may fetch from the extension store
    /// (`-r/--remote-ext-base-url`) when it needs them.
    #[serde(default)]
    pub remote_extensions: Option<RemoteExtensions>,
}

/// The reference's `remote_extensions`: which extensions of the store a
/// compute may use, the libraries they provide, and their control files.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RemoteExtensions {
    /// Extensions anyone may use; null counts as none.
    #[serde(default)]
    pub public_extensions: Option<Vec<String>>,
    /// Extensions this project may use; null counts as none.
    #[serde(default)]
    pub custom_extensions: Option<Vec<String>>,
    /// A library's name (without `.so`) to the extension whose archive holds it.
    pub library_index: std::collections::BTreeMap<String, String>,
    /// Each extension's control files.
    pub extension_data: std::collections::BTreeMap<String, ExtensionData>,
}

/// One extension of [`RemoteExtensions::extension_data`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExtensionData {
    /// Control file name (`<name>.control`) to its content, written at start
    /// where the installation has no such file.
    pub control_data: std::collections::BTreeMap<String, String>,
    /// Required, as by the reference, and unused (as by the reference: the
    /// archive's place in the store follows from the extension's name).
    pub archive_path: String,
}

fn default_concurrency() -> usize {
    1
}

/// The pageservers of a tenant's shards (the reference's
/// `pageserver_connection_info`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PageserverConnectionInfo {
    /// Number of shards; 0 is an unsharded tenant (one shard, key `0000`).
    #[serde(default)]
    pub shard_count: u8,
    /// Stripe size in pages; null for an unsharded tenant.
    #[serde(default)]
    pub stripe_size: Option<u32>,
    /// Each shard's pageservers, keyed by the shard's number and the shard
    /// count, two lowercase hex digits each (`"0102"`: shard 1 of 2).
    #[serde(default)]
    pub shards: std::collections::BTreeMap<String, ShardPageservers>,
    /// The protocol to reach them by.
    #[serde(default)]
    pub prefer_protocol: PageserverProtocol,
}

/// The pageservers serving one shard; the first is the one used.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ShardPageservers {
    /// In order of preference.
    #[serde(default)]
    pub pageservers: Vec<PageserverAddress>,
}

/// How to reach one pageserver.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PageserverAddress {
    /// The pageserver's id, informational.
    #[serde(default)]
    pub id: Option<u64>,
    /// libpq URL. Secret: it may hold a password.
    #[serde(default)]
    pub libpq_url: Option<Secret>,
    /// gRPC URL (not supported: a spec that needs it is refused).
    #[serde(default)]
    pub grpc_url: Option<Secret>,
}

/// The protocol a compute prefers towards its pageservers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageserverProtocol {
    /// The Postgres protocol, the only one supported here.
    #[default]
    Libpq,
    /// gRPC: not supported; refused unless every shard also has a libpq URL.
    Grpc,
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
