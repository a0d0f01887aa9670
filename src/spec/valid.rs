//! A spec that passed every check ([`ValidSpec`]): the only form the rest of
//! compute_ctl takes. Its one door is [`ValidSpec::try_from`] (which
//! [`ValidSpec::from_json`] goes through): the setting fallbacks are applied,
//! then every check of `validate.rs`. It reads as the wire type
//! ([`Deref`] to [`ComputeSpec`]) but cannot be changed afterwards.

use super::storage::resolve_storage;
use super::validate::validate;
use super::wire::ComputeSpec;
use super::{parse_json, SpecError};
use std::ops::Deref;
use std::sync::Arc;

/// Where the data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage<'a> {
    /// A local cluster from the initdb template.
    Local,
    /// Neon: safekeepers and a pageserver.
    Neon {
        /// The pageservers' libpq URLs, one a shard, comma-separated in
        /// shard order (shard 0 first: it serves the basebackup).
        pageserver: &'a str,
        /// Tenant id.
        tenant: &'a str,
        /// Timeline id.
        timeline: &'a str,
    },
    /// A vanilla replica of this primary.
    Primary(&'a str),
}

/// A `ComputeSpec` that passed validation. Made only by
/// [`ValidSpec::try_from`] or [`ValidSpec::from_json`]; read through
/// [`Deref`]; immutable, and so shared: a clone is a reference count, not a
/// copy of the spec (the planner's thread takes one at each reconcile).
///
/// Neither made around the checks (its field is private) nor changed after
/// them (it has no `DerefMut`): the cases of `src/spec/ui/` do not compile.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSpec(Arc<ComputeSpec>);

impl TryFrom<ComputeSpec> for ValidSpec {
    type Error = SpecError;

    /// Resolves the storage fields (`pageserver_connection_info`, then the
    /// `neon.*` settings where fields are absent: see `storage.rs`), then
    /// validates.
    fn try_from(mut spec: ComputeSpec) -> Result<Self, SpecError> {
        resolve_storage(&mut spec)?;
        validate(&spec)?;
        Ok(Self(Arc::new(spec)))
    }
}

impl Deref for ValidSpec {
    type Target = ComputeSpec;

    fn deref(&self) -> &ComputeSpec {
        &self.0
    }
}

impl ValidSpec {
    /// Parses and validates a spec from JSON text.
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        Self::try_from(parse_json::<ComputeSpec>(text)?)
    }

    /// The unchecked spec back, to be changed and checked again (a copy
    /// if it is shared).
    pub fn into_raw(self) -> ComputeSpec {
        Arc::unwrap_or_clone(self.0)
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

    /// Whether `self` asks the same of the catalog as `other`: the same
    /// roles, databases and delta operations, in the same order (what the
    /// planner reads of a spec; the rest of a plan comes from the catalog).
    pub fn same_catalog_as(&self, other: &ValidSpec) -> bool {
        self.cluster.roles == other.cluster.roles
            && self.cluster.databases == other.cluster.databases
            && self.delta_operations == other.delta_operations
    }

    /// Checks that `self`, a new spec for a compute running `current`,
    /// changes nothing a running compute cannot change: its tenant, its
    /// timeline and its mode. (The pageserver and the safekeepers may change.)
    pub fn check_change_from(&self, current: &ValidSpec) -> Result<(), SpecError> {
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
}
