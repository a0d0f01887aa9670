//! The compute specification: what the control plane asks of this compute.
//!
//! Two forms: [`ComputeSpec`] is the JSON as received (`wire.rs`: serde
//! types compatible with the contract, unchecked); [`ValidSpec`] is one that
//! passed every check of `validate.rs` and is the only form the driver, the
//! configuration and the catalog take. Every error names the field it is
//! about. The option grammar the checks use lives below, in
//! [`crate::options`]: `spec` imports nothing that uses it.

pub mod edge;
mod remote_ext;
mod storage;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_storage;
mod valid;
mod validate;
mod wire;

pub use valid::{Storage, ValidSpec};
pub use wire::{ComputeMode, ComputeSpec, Database, DeltaAction, DeltaOp, RemoteExtensions, Role};

use serde::Deserialize;

/// A ComputeConfig (`-c` file, or the body of `POST /configure`), its spec
/// validated.
#[derive(Debug, Clone)]
pub struct ComputeConfig {
    /// The spec; none when the compute is to wait for one.
    pub spec: Option<ValidSpec>,
    /// Settings of compute_ctl itself (JWKS, ...), kept as JSON.
    pub compute_ctl_config: Option<serde_json::Value>,
}

/// A ComputeConfig as received.
#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    spec: Option<ComputeSpec>,
    #[serde(default)]
    compute_ctl_config: Option<serde_json::Value>,
}

impl ComputeConfig {
    /// Parses a ComputeConfig and validates its spec.
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        let (raw, unknown) = parse_json_noting_unknown::<RawConfig>(text);
        // Named as within the spec, as when the spec comes alone (`-S`).
        warn_unknown_fields(
            unknown
                .into_iter()
                .map(|p| match p.strip_prefix("spec.") {
                    Some(in_spec) => in_spec.to_string(),
                    None => format!("(the config, beside the spec) {p}"),
                })
                .collect(),
        );
        let raw = raw?;
        let spec = raw
            .spec
            .map(ValidSpec::try_from)
            .transpose()
            .map_err(|e| SpecError::new(format!("spec.{}", e.field), e.reason))?;
        Ok(Self {
            spec,
            compute_ctl_config: raw.compute_ctl_config,
        })
    }
}

/// Deserializes with the path of the offending field in the error. Fields
/// we do not know are ignored, as the reference does, and each is named once
/// in a warning (see [`warn_unknown_fields`]).
fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, SpecError> {
    let (parsed, unknown) = parse_json_noting_unknown(text);
    warn_unknown_fields(unknown);
    parsed
}

/// [`parse_json`], and the JSON paths of the fields it ignored.
fn parse_json_noting_unknown<T: serde::de::DeserializeOwned>(
    text: &str,
) -> (Result<T, SpecError>, Vec<String>) {
    let mut unknown = Vec::new();
    let de = &mut serde_json::Deserializer::from_str(text);
    let mut note = |path: serde_ignored::Path| unknown.push(json_path(&path));
    let de = serde_ignored::Deserializer::new(de, &mut note);
    let parsed = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(document)".to_string()
        } else {
            path
        };
        SpecError::new(field, e.into_inner().to_string())
    });
    (parsed, unknown)
}

/// How many distinct unknown fields are named in the log at the most; a
/// spec with more (a hostile one) gets one line for the rest.
const MAX_UNKNOWN_FIELDS_LOGGED: usize = 256;

/// Logs each field of `paths` once per process: the same spec sent again
/// (each refresh, each reconfigure) does not repeat the warning.
fn warn_unknown_fields(paths: Vec<String>) {
    static LOGGED: parking_lot::Mutex<Option<std::collections::HashSet<String>>> =
        parking_lot::Mutex::new(None);
    if paths.is_empty() {
        return;
    }
    let mut logged = LOGGED.lock();
    let logged = logged.get_or_insert_with(Default::default);
    let mut over = 0;
    for path in paths {
        if logged.contains(&path) {
            continue;
        }
        if logged.len() >= MAX_UNKNOWN_FIELDS_LOGGED {
            over += 1;
            continue;
        }
        tracing::warn!(field = %path, "the spec has a field compute_ctl does not know: ignored");
        logged.insert(path);
    }
    if over > 0 {
        tracing::warn!("{over} more unknown fields of the spec ignored (not named)");
    }
}

/// The JSON path of an ignored field, array indices folded (`cluster.roles[].x`:
/// one warning for a field every role has), keys escaped and cut so a hostile
/// key cannot forge a log line.
fn json_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, .. } => format!("{}[]", json_path(parent)),
        Path::Map { parent, key } => {
            let key: String = key.chars().take(64).flat_map(char::escape_debug).collect();
            match json_path(parent) {
                p if p.is_empty() => key,
                p => format!("{p}.{key}"),
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => json_path(parent),
    }
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
