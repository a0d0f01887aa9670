//! The compute specification: what the control plane asks of this compute.
//!
//! Two forms: [`ComputeSpec`] is the JSON as received (`wire.rs`: serde
//! types compatible with the contract, unchecked); [`ValidSpec`] is one that
//! passed every check of `validate.rs` and is the only form the driver, the
//! configuration and the catalog take. Every error names the field it is
//! about. The option grammar the checks use lives below, in
//! [`crate::options`]: `spec` imports nothing that uses it.

#[cfg(test)]
mod tests;
mod valid;
mod validate;
mod wire;

pub use valid::{Storage, ValidSpec};
pub use wire::{ComputeMode, ComputeSpec, Database, DeltaAction, DeltaOp, Role};

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
        let raw: RawConfig = parse_json(text)?;
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
