//! The compute specification: JSON types compatible with the contract, and
//! their validation. Every error names the field it is about.

use crate::secret::Secret;
use compute_states::Lsn;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Postgres truncates identifiers longer than this many bytes (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// A ComputeSpec, as sent by the control plane or read with `-S`.
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

/// A ComputeConfig (`-c` file, or the body of `POST /configure`).
#[derive(Debug, Clone, Deserialize)]
pub struct ComputeConfig {
    /// The spec; null when the compute is to wait for one.
    #[serde(default)]
    pub spec: Option<ComputeSpec>,
    /// Settings of compute_ctl itself (JWKS, ...), kept as JSON.
    #[serde(default)]
    pub compute_ctl_config: Option<serde_json::Value>,
}

impl ComputeConfig {
    /// Parses a ComputeConfig and validates its spec.
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        let mut config: ComputeConfig = parse_json(text)?;
        if let Some(spec) = &mut config.spec {
            spec.apply_setting_fallbacks();
            spec.validate()
                .map_err(|e| SpecError::new(format!("spec.{}", e.field), e.reason))?;
        }
        Ok(config)
    }
}

/// Deserializes with the path of the offending field in the error.
fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, SpecError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(document)".to_string()
        } else {
            path
        };
        SpecError::new(field, e.into_inner().to_string())
    })
}

/// Where the data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage<'a> {
    /// A local cluster from the initdb template.
    Local,
    /// Neon: safekeepers and a pageserver.
    Neon {
        /// The pageserver's libpq connection string (shards comma-separated).
        pageserver: &'a str,
        /// Tenant id.
        tenant: &'a str,
        /// Timeline id.
        timeline: &'a str,
    },
    /// A vanilla replica of this primary.
    Primary(&'a str),
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

/// A named value with a type, used for settings and options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenericOption {
    /// Option or setting name.
    pub name: String,
    /// Its value; null is only meaningful for flag-like options.
    pub value: Option<String>,
    /// How the value is written.
    pub vartype: VarType,
}

/// The type of a [`GenericOption`] value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum VarType {
    /// Quoted in postgresql.conf.
    String,
    /// `on`/`off`/`true`/`false`...
    Bool,
    /// A number, possibly with a unit.
    Integer,
    /// A floating point number.
    Real,
    /// One of a fixed set of words.
    Enum,
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

/// A spec that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid compute spec: {field}: {reason}")]
pub struct SpecError {
    /// JSON path of the offending field, e.g. `cluster.roles[2].name`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl SpecError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl ComputeSpec {
    /// Parses and validates a spec from JSON text.
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        let mut spec: ComputeSpec = parse_json(text)?;
        spec.apply_setting_fallbacks();
        spec.validate()?;
        Ok(spec)
    }

    /// Checks what serde cannot: names, duplicates, values, storage fields.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.format_version != 1.0 {
            return Err(SpecError::new(
                "format_version",
                format!("unsupported version {}, expected 1.0", self.format_version),
            ));
        }
        if self.reconfigure_concurrency == 0 {
            return Err(SpecError::new(
                "reconfigure_concurrency",
                "must be at least 1",
            ));
        }
        let mut roles = HashSet::new();
        for (i, role) in self.cluster.roles.iter().enumerate() {
            let field = format!("cluster.roles[{i}]");
            check_identifier(&format!("{field}.name"), &role.name)?;
            if !roles.insert(role.name.as_str()) {
                return Err(SpecError::new(
                    format!("{field}.name"),
                    format!("duplicate role {:?}", role.name),
                ));
            }
            if let Some(pw) = &role.encrypted_password {
                check_password(
                    &format!("{field}.encrypted_password"),
                    &role.name,
                    pw.expose(),
                )?;
            }
            for (j, opt) in role.options.iter().flatten().enumerate() {
                crate::catalog::check_role_option(opt)
                    .map_err(|r| SpecError::new(format!("{field}.options[{j}]"), r))?;
            }
        }
        let mut dbs = HashSet::new();
        for (i, db) in self.cluster.databases.iter().enumerate() {
            let field = format!("cluster.databases[{i}]");
            check_identifier(&format!("{field}.name"), &db.name)?;
            check_identifier(&format!("{field}.owner"), &db.owner)?;
            if !dbs.insert(db.name.as_str()) {
                return Err(SpecError::new(
                    format!("{field}.name"),
                    format!("duplicate database {:?}", db.name),
                ));
            }
            for (j, opt) in db.options.iter().flatten().enumerate() {
                crate::catalog::check_database_option(opt)
                    .map_err(|r| SpecError::new(format!("{field}.options[{j}]"), r))?;
            }
        }
        for (i, op) in self.delta_operations.iter().flatten().enumerate() {
            let field = format!("delta_operations[{i}]");
            check_identifier(&format!("{field}.name"), &op.name)?;
            match (op.action, &op.new_name) {
                (DeltaAction::RenameRole | DeltaAction::RenameDb, None) => {
                    return Err(SpecError::new(
                        format!("{field}.new_name"),
                        format!("{} needs a new_name", op.action),
                    ))
                }
                (DeltaAction::RenameRole | DeltaAction::RenameDb, Some(n)) => {
                    check_identifier(&format!("{field}.new_name"), n)?
                }
                _ => {}
            }
        }
        for (i, s) in self.cluster.settings.iter().flatten().enumerate() {
            check_setting(&format!("cluster.settings[{i}]"), s)?;
        }
        self.validate_storage()
    }

    /// Like the reference: the storage fields fall back to the settings
    /// `neon.pageserver_connstring`, `neon.safekeepers` (comma-separated),
    /// `neon.tenant_id` and `neon.timeline_id` when absent.
    pub fn apply_setting_fallbacks(&mut self) {
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

    /// Where this compute's data comes from.
    pub fn storage(&self) -> Storage<'_> {
        match (&self.pageserver_connstring, &self.primary_connstring) {
            (Some(pageserver), _) => Storage::Neon {
                pageserver: pageserver.expose(),
                // Validation guarantees both with a pageserver.
                tenant: self.tenant_id.as_deref().unwrap_or_default(),
                timeline: self.timeline_id.as_deref().unwrap_or_default(),
            },
            (None, Some(primary)) => Storage::Primary(primary.expose()),
            (None, None) => Storage::Local,
        }
    }

    fn validate_storage(&self) -> Result<(), SpecError> {
        if self.pageserver_connstring.is_some() {
            for (field, value) in [
                ("tenant_id", &self.tenant_id),
                ("timeline_id", &self.timeline_id),
            ] {
                if value.is_none() {
                    return Err(SpecError::new(
                        field,
                        "required with a pageserver_connstring",
                    ));
                }
            }
            if self.mode == ComputeMode::Primary && self.safekeeper_connstrings.is_empty() {
                return Err(SpecError::new(
                    "safekeeper_connstrings",
                    "a primary on Neon storage needs its safekeepers (for the commit LSN)",
                ));
            }
            if self.primary_connstring.is_some() {
                return Err(SpecError::new(
                    "primary_connstring",
                    "a compute takes its data from a pageserver or from a primary, not both",
                ));
            }
        }
        if self.mode != ComputeMode::Primary
            && self.pageserver_connstring.is_none()
            && self.primary_connstring.is_none()
        {
            return Err(SpecError::new(
                "mode",
                "a read-only compute needs a pageserver_connstring or a primary_connstring \
                 to take its data from",
            ));
        }
        if self.primary_connstring.is_some() && self.mode != ComputeMode::Replica {
            return Err(SpecError::new(
                "primary_connstring",
                "only a compute in mode \"Replica\" follows a primary",
            ));
        }
        for (field, value) in [
            ("tenant_id", &self.tenant_id),
            ("timeline_id", &self.timeline_id),
        ] {
            if let Some(v) = value {
                if v.len() != 32 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(SpecError::new(field, "must be 32 hexadecimal characters"));
                }
            }
        }
        let mut seen = HashSet::new();
        for (i, sk) in self.safekeeper_connstrings.iter().enumerate() {
            if !seen.insert(sk.as_str()) {
                return Err(SpecError::new(
                    format!("safekeeper_connstrings[{i}]"),
                    format!("duplicate entry in safekeeper_connstrings: {sk}"),
                ));
            }
        }
        Ok(())
    }

    /// Checks that `self`, a new spec for a compute running `current`,
    /// changes nothing a running compute cannot change: its tenant, its
    /// timeline and its mode. (The pageserver and the safekeepers may change.)
    pub fn check_change_from(&self, current: &ComputeSpec) -> Result<(), SpecError> {
        let unchanged = |field: &str, old: &Option<String>, new: &Option<String>| {
            if old == new {
                Ok(())
            } else {
                Err(SpecError::new(
                    field,
                    format!(
                        "cannot change on a running compute (from {} to {})",
                        old.as_deref().unwrap_or("none"),
                        new.as_deref().unwrap_or("none")
                    ),
                ))
            }
        };
        unchanged("tenant_id", &current.tenant_id, &self.tenant_id)?;
        unchanged("timeline_id", &current.timeline_id, &self.timeline_id)?;
        if current.mode != self.mode {
            return Err(SpecError::new(
                "mode",
                format!(
                    "cannot change on a running compute (from {:?} to {:?})",
                    current.mode, self.mode
                ),
            ));
        }
        Ok(())
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

fn check_identifier(field: &str, name: &str) -> Result<(), SpecError> {
    if name.is_empty() {
        return Err(SpecError::new(field, "must not be empty"));
    }
    if name.contains('\0') {
        return Err(SpecError::new(field, "must not contain a NUL character"));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(SpecError::new(
            field,
            format!(
                "{} bytes long; postgres identifiers are at most {MAX_IDENTIFIER_BYTES} bytes",
                name.len()
            ),
        ));
    }
    Ok(())
}

/// A role's `encrypted_password` must be a hash postgres stores as is: a
/// SCRAM-SHA-256 verifier, or an md5 hash (`md5` + 32 hex digits, or the 32
/// hex digits alone). Anything else would be hashed by postgres as a
/// plaintext password, silently giving the role another password than meant.
fn check_password(field: &str, role: &str, pw: &str) -> Result<(), SpecError> {
    // Never echo the value: it is a secret.
    if pw.is_empty() {
        return Err(SpecError::new(field, "empty; use null for no password"));
    }
    if pw.contains('\0') || pw.chars().any(char::is_control) {
        return Err(SpecError::new(field, "contains control characters"));
    }
    let hex32 = |h: &str| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit());
    let scram = pw
        .strip_prefix("SCRAM-SHA-256$")
        .is_some_and(|rest| rest.contains(':') && rest.matches('$').count() == 1);
    if scram || hex32(pw) || pw.strip_prefix("md5").is_some_and(hex32) {
        return Ok(());
    }
    Err(SpecError::new(
        field,
        format!(
            "the password of role {role:?} is neither a SCRAM-SHA-256 verifier nor an md5 hash (md5 followed by 32 hex digits, or 32 hex digits); plaintext passwords are refused"
        ),
    ))
}

fn check_setting(field: &str, s: &GenericOption) -> Result<(), SpecError> {
    let name_ok = s
        .name
        .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !s.name.ends_with('.')
        && !s.name.contains("..");
    if !name_ok {
        return Err(SpecError::new(
            format!("{field}.name"),
            format!("{:?} is not a valid setting name", s.name),
        ));
    }
    let Some(value) = &s.value else {
        return Err(SpecError::new(
            format!("{field}.value"),
            format!("setting {} has a null value", s.name),
        ));
    };
    if value.chars().any(char::is_control) {
        return Err(SpecError::new(
            format!("{field}.value"),
            format!("the value of {} contains a control character", s.name),
        ));
    }
    if s.vartype != VarType::String {
        // Bare values go into postgresql.conf unquoted: allow only what a
        // number, a boolean or an enum word can contain.
        let bare_ok = !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
        if !bare_ok {
            return Err(SpecError::new(
                format!("{field}.value"),
                format!(
                    "{value:?} is not a valid {} value for {}; use vartype \"string\" for quoted text",
                    s.vartype, s.name
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
