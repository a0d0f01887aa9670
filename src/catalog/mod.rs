//! The catalog: roles and databases, reconciled with the spec.
//!
//! [`read_catalog`] takes a snapshot, [`plan::plan_cancellable`] (pure)
//! computes the ordered statements, [`apply::apply_on`] runs them; [`reconcile`] does
//! all three. The order is the contract's: delta operations, then roles, then databases. At a
//! primary's start, [`start()`] first drops copied subscriptions (when the
//! spec asks), creates the privileged role and runs the [`migrations`].

mod apply;
mod bulk;
mod context;
pub mod migrations;
mod model;
pub mod neon_extension;
mod plan;
pub mod privileged;
mod read;
pub mod spare_db;
mod start;
pub mod stats;
mod subscriptions;
mod template1;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_batch;
#[cfg(test)]
mod tests_migrations;
#[cfg(test)]
mod tests_names;
#[cfg(test)]
mod tests_reference;
#[cfg(test)]
mod tests_scale;
#[cfg(test)]
mod tests_start;
#[cfg(test)]
mod tests_template1;

#[cfg(test)]
pub use apply::apply;
pub use apply::ApplyReport;
pub(crate) use bulk::BulkApply;
use context::Template1;
pub use context::{Origin, PlanContext};
pub use model::DatabaseInfo;
#[cfg(test)]
pub use plan::plan_with;
pub use plan::{stored_password, Plan, PlanError};
pub use privileged::{check_privileged_role_name, DEFAULT_PRIVILEGED_ROLE};
pub use read::{read_catalog, read_valid_until};
pub(crate) use start::start_on;
pub use start::{finish_template, spawn_extension_count, start, template_finish_key, Concurrency};
pub use subscriptions::drop_before_start;

use crate::connect::{Connection, Connector};
use crate::spec::ValidSpec;
use anyhow::Context;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tracing::info;

/// Refuses delta operations that would drop or rename the maintenance
/// database (compute_ctl's own connections use it) or a template database
/// (`CREATE DATABASE` copies template1).
fn protect_databases(spec: &ValidSpec, maintenance_db: &str) -> anyhow::Result<()> {
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
        return Err(PlanError::ProtectedDatabase {
            database: op.name.clone(),
            action: op.action.to_string(),
            why,
        }
        .into());
    }
    Ok(())
}

/// Whether the planner refuses `spec` on the catalog as it is now (a dry
/// run: nothing changes). `Ok(None)`: it would plan; `Ok(Some(why))`: the spec
/// cannot be applied, which is the spec's fault; `Err`: the catalog could
/// not be read.
pub async fn refusal(connector: &Connector, spec: &ValidSpec) -> anyhow::Result<Option<PlanError>> {
    match dry_run(connector, spec).await {
        Ok(_) => Ok(None),
        Err(e) => match e.downcast_ref::<PlanError>() {
            Some(why) => Ok(Some(why.clone())),
            None => Err(e),
        },
    }
}

/// Reads the catalog and plans, without changing anything: what
/// [`reconcile`] would execute (`compute_ctl plan` prints it), except that
/// where template1 lacks the privileged role's default privileges, the plan
/// sets them in each new database, whereas [`reconcile`] first gives them
/// to template1 (see `Catalog::template1_defaults`).
pub async fn dry_run(connector: &Connector, spec: &ValidSpec) -> anyhow::Result<Plan> {
    let conn = connector.open(connector.maintenance_db()).await?;
    let plan = read_and_plan(
        connector,
        &conn.client,
        spec,
        PlanContext::DryRun,
        Template1::Unknown,
    )
    .await;
    conn.close().await;
    plan
}

/// Reads the catalog through `client` (a connection to the maintenance
/// database) and plans for `context`: unless a dry run, template1 is first
/// given the privileged role's default privileges if databases are to be
/// created and it lacks them. `template1` is what the start found out about
/// it beside the migrations: when known, it is not looked at again.
async fn read_and_plan(
    connector: &Connector,
    client: &tokio_postgres::Client,
    spec: &ValidSpec,
    context: PlanContext,
    template1: Template1,
) -> anyhow::Result<Plan> {
    protect_databases(spec, connector.maintenance_db())?;
    spare_db::settled().await;
    let read = async {
        let mut catalog = read_catalog(client).await?;
        catalog.valid_until = read_valid_until(client, spec).await?;
        let existing: std::collections::HashSet<&str> =
            catalog.databases.iter().map(|d| d.name.as_str()).collect();
        let creates = spec
            .cluster
            .databases
            .iter()
            .any(|d| !existing.contains(d.name.as_str()));
        let template_open = catalog
            .database(template1::TEMPLATE1)
            .is_some_and(DatabaseInfo::accepts_connections);
        // (A privileged role still to be created cannot be granted anything
        // yet: then the plan sets them in each new database.)
        let role = connector
            .privileged_role()
            .filter(|r| creates && template_open && catalog.role(r).is_some());
        if let Some(role) = role {
            let prepare = context.prepares_template1();
            catalog.template1_defaults = match template1 {
                Template1::Inherits => true,
                Template1::Lacks => false,
                Template1::Unknown => {
                    template1::inherits_defaults(connector, client, role, prepare).await
                }
            };
        }
        anyhow::Ok(catalog)
    }
    .await;
    // (A `ValidSpec` is shared, not copied: the planner's thread gets the same one.)
    plan_off_the_runtime(read?, spec.clone(), connector, context)
        .await
        .context("planning the catalog reconciliation")
}

/// Plans on a blocking thread: a plan of a large catalog is CPU work that
/// must not hold up the runtime (the driver's loop, which answers a
/// termination, runs on it). If the caller stops waiting (its future is
/// dropped: say, the compute is terminating), the planner is told to give
/// up and its thread ends soon after.
async fn plan_off_the_runtime(
    catalog: model::Catalog,
    spec: ValidSpec,
    connector: &Connector,
    context: PlanContext,
) -> Result<Plan, plan::PlanError> {
    /// Sets the flag when dropped: when the plan is no longer awaited.
    struct CancelOnDrop(Arc<AtomicBool>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
    let flag = cancel.0.clone();
    let superuser = connector.superuser().to_string();
    let privileged = connector.privileged_role().map(str::to_string);
    info!(
        roles = spec.cluster.roles.len(),
        databases = spec.cluster.databases.len(),
        "planning the catalog reconciliation"
    );
    let planned = tokio::task::spawn_blocking(move || {
        let privileged = privileged.as_deref();
        plan::plan_cancellable(&catalog, &spec, &superuser, privileged, context, &flag)
    })
    .await;
    drop(cancel);
    match planned {
        Ok(plan) => plan,
        // A planner that panicked is a bug: the panic goes on.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down.
        Err(_) => Err(plan::PlanError::Cancelled),
    }
}

/// Reads the catalog, plans and applies; returns what was done (the duration
/// includes connecting, reading and planning). With
/// `spec.skip_pg_catalog_updates`, does nothing.
pub async fn reconcile(
    connector: &Connector,
    spec: &ValidSpec,
    concurrency: usize,
) -> anyhow::Result<ApplyReport> {
    let (report, conn) = reconcile_on(connector, None, spec, concurrency, None).await?;
    if let Some(conn) = conn {
        conn.close().await;
    }
    Ok(report)
}

/// [`reconcile`], on `conn` when given: a connection to the maintenance
/// database already open (the one that confirmed a reconfiguration's
/// reload), so that reading the catalog costs no connection of its own.
/// The connection is given back when nothing was applied (it sent no DDL);
/// before an apply it is closed, so that it keeps no database busy. `bulk`
/// wraps an apply that creates databases in bulk (see [`BulkApply`]).
pub(crate) async fn reconcile_on(
    connector: &Connector,
    conn: Option<Connection>,
    spec: &ValidSpec,
    concurrency: usize,
    bulk: Option<&dyn BulkApply>,
) -> anyhow::Result<(ApplyReport, Option<Connection>)> {
    if spec.skip_pg_catalog_updates {
        info!("skip_pg_catalog_updates is set: no catalog reconciliation");
        return Ok((ApplyReport::default(), conn));
    }
    let start = std::time::Instant::now();
    let conn = match conn {
        Some(conn) => conn,
        None => connector.open(connector.maintenance_db()).await?,
    };
    let bulk = match bulk::lifting(bulk, &conn.client, spec).await {
        Ok(bulk) => bulk,
        Err(e) => {
            conn.close().await;
            return Err(e);
        }
    };
    let context = match bulk {
        Some(_) => PlanContext::ReconcileUnsynced,
        None => PlanContext::Reconcile,
    };
    let plan = read_and_plan(connector, &conn.client, spec, context, Template1::Unknown).await;
    let conn = if matches!(&plan, Ok(plan) if plan.is_empty()) {
        Some(conn)
    } else {
        conn.close().await;
        None
    };
    let (report, _) = apply_plan(connector, None, plan?, concurrency, bulk, start).await?;
    Ok((report, conn))
}

/// Applies `plan` (read and made since `start`), logging what it did, with
/// `plain` as its maintenance connection (see [`apply::apply_on`]), which is
/// given back; inside `bulk`'s lift and restore when the plan creates
/// databases in bulk ([`bulk::is_bulk`]; `bulk` is given only when it
/// would lift: see [`bulk::lifting`]).
async fn apply_plan(
    connector: &Connector,
    plain: Option<Connection>,
    plan: Plan,
    concurrency: usize,
    bulk: Option<&dyn BulkApply>,
    start: std::time::Instant,
) -> anyhow::Result<(ApplyReport, Option<Connection>)> {
    if plan.is_empty() {
        info!("catalog matches the spec: nothing to do");
        let report = ApplyReport {
            duration: start.elapsed(),
            ..ApplyReport::default()
        };
        return Ok((report, plain));
    }
    info!(statements = plan.len(), "applying the catalog plan");
    let lifted = bulk.filter(|_| bulk::is_bulk(&plan));
    let plain = match lifted {
        Some(hooks) => hooks.lift(plain).await?,
        None => plain,
    };
    let applied = apply::apply_on(connector, plain, &plan, concurrency).await;
    let (mut report, plain) = match lifted {
        None => applied?,
        Some(hooks) => match applied {
            Ok((report, plain)) => (report, hooks.restore(plain).await?),
            Err(e) => {
                // The apply's error is the one to report.
                if let Err(again) = hooks.restore(None).await {
                    tracing::warn!("after the failed apply: {again:#}");
                }
                return Err(e);
            }
        },
    };
    report.duration = start.elapsed();
    info!(
        statements = report.statements,
        duration_ms = report.duration.as_millis() as u64,
        "catalog reconciled"
    );
    Ok((report, plain))
}
