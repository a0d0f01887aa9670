//! Figures the catalog work records for `/metrics`: failed migrations. They
//! are written here by the migration runner and only read by [`register`],
//! which `crate::metrics` calls when rendering.

use parking_lot::Mutex;
use prometheus::{IntCounterVec, Opts, Registry};
use std::collections::BTreeMap;

/// Failures per migration id.
static MIGRATION_FAILURES: Mutex<BTreeMap<i64, u64>> = Mutex::new(BTreeMap::new());

/// Counts a failed migration.
pub fn migration_failed(id: i64) {
    *MIGRATION_FAILURES.lock().entry(id).or_default() += 1;
}

/// How many times migration `id` failed.
#[cfg(test)]
pub fn migration_failures_of(id: i64) -> u64 {
    MIGRATION_FAILURES.lock().get(&id).copied().unwrap_or(0)
}

/// Adds `compute_ctl_db_migration_failed_total{migration_id}`.
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
    registry.register(Box::new(failed))
}
