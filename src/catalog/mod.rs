//! The catalog: roles and databases, reconciled with the spec.
//!
//! [`read_catalog`] takes a snapshot, [`plan()`] (pure) computes the ordered
//! statements, [`apply`] runs them; [`reconcile`] does all three. The order is
//! the contract's: delta operations, then roles, then databases.

mod apply;
mod connect;
mod model;
mod options;
mod plan;
mod read;
#[cfg(test)]
mod tests;

pub use apply::{apply, ApplyReport};
pub use connect::Connector;
pub use model::{Catalog, DatabaseInfo, RoleInfo, DATCONNLIMIT_INVALID_DB};
pub use options::{check_database_option, check_role_option, database_option_sql, role_option_sql};
pub use plan::{plan, stored_password, Phase, Plan, PlanError, Step, REDACTED};
pub use read::{normalize_spec, read_catalog};

use crate::spec::ComputeSpec;
use anyhow::Context;
use tracing::info;

/// Refuses delta operations that would drop or rename the maintenance
/// database (compute_ctl's own connections use it) or a template database
/// (`CREATE DATABASE` copies template1).
fn protect_databases(spec: &ComputeSpec, maintenance_db: &str) -> anyhow::Result<()> {
    use crate::spec::DeltaAction;
    for op in spec.delta_operations.iter().flatten() {
        if !matches!(op.action, DeltaAction::DeleteDb | DeltaAction::RenameDb) {
            continue;
        }
        let why = if op.name == maintenance_db {
            "compute_ctl's maintenance connections use it"
        } else if op.name == "template0" || op.name == "template1" {
            "new databases are made from it"
        } else {
            continue;
        };
        anyhow::bail!("refusing to {} database {:?}: {why}", op.action, op.name);
    }
    Ok(())
}

/// Reads the catalog and plans, without changing anything: what
/// [`reconcile`] would execute (`compute_ctl plan` prints it).
pub async fn dry_run(connector: &Connector, spec: &ComputeSpec) -> anyhow::Result<Plan> {
    protect_databases(spec, connector.maintenance_db())?;
    let conn = connector.open(connector.maintenance_db()).await?;
    let read = async {
        let catalog = read_catalog(&conn.client).await?;
        let spec = normalize_spec(&conn.client, spec).await?;
        anyhow::Ok((catalog, spec))
    }
    .await;
    conn.close().await;
    let (catalog, spec) = read?;
    plan(&catalog, &spec, connector.superuser()).context("planning the catalog reconciliation")
}

/// Reads the catalog, plans and applies; returns what was done (the duration
/// includes reading and planning). With `spec.skip_pg_catalog_updates`, does
/// nothing.
pub async fn reconcile(
    connector: &Connector,
    spec: &ComputeSpec,
    concurrency: usize,
) -> anyhow::Result<ApplyReport> {
    if spec.skip_pg_catalog_updates {
        info!("skip_pg_catalog_updates is set: no catalog reconciliation");
        return Ok(ApplyReport::default());
    }
    let start = std::time::Instant::now();
    let plan = dry_run(connector, spec).await?;
    if plan.is_empty() {
        info!("catalog matches the spec: nothing to do");
        return Ok(ApplyReport {
            duration: start.elapsed(),
            ..ApplyReport::default()
        });
    }
    info!(statements = plan.len(), "applying the catalog plan");
    let mut report = apply(connector, &plan, concurrency).await?;
    report.duration = start.elapsed();
    info!(
        statements = report.statements,
        duration_ms = report.duration.as_millis() as u64,
        "catalog reconciled"
    );
    Ok(report)
}
