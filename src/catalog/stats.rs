//! Figures the catalog work records for `/metrics`: failed migrations and
//! the installed extensions. They are written here by the catalog code (the
//! migration runner, the extension collector) and only read by
//! [`register`], which `crate::metrics` calls when rendering.

use parking_lot::Mutex;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use std::collections::BTreeMap;

/// An installed extension as the metric labels it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtensionKey {
    /// `pg_extension.extname`.
    pub name: String,
    /// `pg_extension.extversion`.
    pub version: String,
    /// Whether its owner is a superuser.
    pub owned_by_superuser: bool,
}

/// Failures per migration id.
static MIGRATION_FAILURES: Mutex<BTreeMap<i64, u64>> = Mutex::new(BTreeMap::new());

/// Databases per installed extension, from the last collection (None before it).
static INSTALLED_EXTENSIONS: Mutex<Option<BTreeMap<ExtensionKey, u64>>> = Mutex::new(None);

/// Counts a failed migration.
pub fn migration_failed(id: i64) {
    *MIGRATION_FAILURES.lock().entry(id).or_default() += 1;
}

/// How many times migration `id` failed.
#[cfg(test)]
pub fn migration_failures_of(id: i64) -> u64 {
    MIGRATION_FAILURES.lock().get(&id).copied().unwrap_or(0)
}

/// Replaces the installed extensions with a new collection.
pub fn set_installed_extensions(counts: BTreeMap<ExtensionKey, u64>) {
    *INSTALLED_EXTENSIONS.lock() = Some(counts);
}

/// Adds `compute_ctl_db_migration_failed_total{migration_id}` and
/// `compute_installed_extensions{extension_name, version, owned_by_superuser}`.
pub fn register(registry: &Registry) -> prometheus::Result<()> {
    let failed = IntCounterVec::new(
        Opts::new(
            "compute_ctl_db_migration_failed_total",
            "Failed runs of a catalog migration, by migration id",
        ),
        &["migration_id"],
    )?;
    for (id, n) in MIGRATION_FAILURES.lock().iter() {
        failed.with_label_values(&[&id.to_string()]).inc_by(*n);
    }
    registry.register(Box::new(failed))?;

    let installed = IntGaugeVec::new(
        Opts::new(
            "compute_installed_extensions",
            "Number of databases where an extension is installed, by name, version and owner",
        ),
        &["extension_name", "version", "owned_by_superuser"],
    )?;
    for (key, n) in INSTALLED_EXTENSIONS.lock().iter().flatten() {
        let owned = if key.owned_by_superuser { "1" } else { "0" };
        installed
            .with_label_values(&[&key.name, &key.version, owned])
            .set(*n as i64);
    }
    registry.register(Box::new(installed))
}
