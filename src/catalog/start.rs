//! The catalog step of a primary's start, and the same work done once in a
//! local template instead (see `driver::template`).
//!
//! A start drops the subscriptions copied with the data when the spec asks
//! (once per timeline), makes sure of the privileged role and the
//! migrations, gives template1 the privileged role's default privileges,
//! and reconciles roles and databases. Its critical path is connections
//! and round trips to a postgres that has just started, so one maintenance
//! connection serves the privileged role, the migrations, the apply's
//! concurrency and the catalog read; and a cluster copied from a finished
//! template is not asked what the template already holds.
//!
//! None of the start's own commits (the privileged role, the migrations,
//! template1's default privileges) waits for its WAL flush, a commit's
//! fsync each (on Neon storage, the safekeepers' answer). Nothing is lost
//! that matters: every start applies the spec and the migrations again from
//! what the data holds, so a start whose commits a crash lost is redone by
//! the next one. And nothing durable can come after them without them: the
//! WAL is flushed in order, so the first durable commit after them (a
//! `CREATE DATABASE`; any client's once the compute is Running) makes them
//! durable first, and postgres' WAL writer flushes them within
//! `wal_writer_delay` (200 ms) in any case. (On local storage, whose PGDATA
//! does not outlive the compute, a bulk creation's commits are not synced
//! either: see `driver::bulk`.)

use super::context::{Origin, PlanContext, Template1};
use super::{apply_plan, migrations, privileged, read_and_plan, template1, ApplyReport, BulkApply};
use crate::connect::{Connection, Connector};
use crate::spec::ValidSpec;
use anyhow::Context;
use tokio_postgres::Client;
use tracing::info;

/// How many connections the start's apply may use at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// This many.
    Fixed(usize),
    /// A tenth of `max_connections` (1 to 16), read on the start's first
    /// connection.
    ShareOfMaxConnections,
}

/// The catalog step of a primary's start, unless the spec skips catalog
/// updates: drops the subscriptions copied with the data when the spec asks
/// (once per timeline), creates the privileged role, runs the migrations,
/// reconciles roles and databases; then counts the installed extensions in
/// the background.
pub async fn start(
    connector: &Connector,
    spec: &ValidSpec,
    concurrency: Concurrency,
    origin: Origin,
) -> anyhow::Result<ApplyReport> {
    let (report, conn) = start_on(connector, None, spec, concurrency, origin, None).await?;
    if let Some(conn) = conn {
        conn.close().await;
    }
    spawn_extension_count(connector);
    Ok(report)
}

/// [`start`], on `conn` when given (a connection to the maintenance
/// database already open), giving back the maintenance connection it ran
/// on: the one that read the catalog and applied its statements without a
/// password, so that what follows the catalog step (the neon extension, the
/// confirm of the size limit's reload) costs no connection of its own. The
/// installed extensions are not counted: the caller starts that (see
/// [`spawn_extension_count`]) once the start is done, so that the
/// postmaster forks no backend for it meanwhile. `bulk` wraps an apply that
/// creates databases in bulk (see [`BulkApply`]).
pub(crate) async fn start_on(
    connector: &Connector,
    conn: Option<Connection>,
    spec: &ValidSpec,
    concurrency: Concurrency,
    origin: Origin,
    bulk: Option<&dyn BulkApply>,
) -> anyhow::Result<(ApplyReport, Option<Connection>)> {
    if spec.skip_pg_catalog_updates {
        info!("skip_pg_catalog_updates is set: no catalog step");
        super::spare_db::drop_all(connector, origin);
        return Ok((ApplyReport::default(), conn));
    }
    let began = std::time::Instant::now();
    if spec.drop_subscriptions_before_start {
        let timeline = spec.timeline_id.as_deref().unwrap_or_default();
        let dropped = super::drop_before_start(connector, timeline)
            .await
            .context("dropping subscriptions before start")?;
        info!(dropped, "drop_subscriptions_before_start done");
    }
    let conn = match conn {
        Some(conn) => conn,
        None => connector.open(connector.maintenance_db()).await?,
    };
    let planned = async {
        let (concurrency, template1) =
            prepare(connector, &conn.client, spec, concurrency, origin).await?;
        let spares = super::spare_db::take(connector, &conn.client, spec, origin).await?;
        let bulk = super::bulk::lifting(bulk, &conn.client, spec).await?;
        let context = PlanContext::Start(origin);
        let plan = read_and_plan(connector, &conn.client, spec, context, template1).await?;
        spares.drop_unused(connector);
        anyhow::Ok((plan, concurrency, bulk))
    }
    .await;
    let (plan, concurrency, bulk) = match planned {
        Ok(planned) => planned,
        Err(e) => {
            conn.close().await;
            return Err(e);
        }
    };
    apply_plan(connector, Some(conn), plan, concurrency, bulk, began).await
}

/// What comes before the plan, on the start's maintenance connection: the
/// apply's concurrency, the privileged role and the migrations, with
/// template1 when the spec lists databases (a finished template's has what
/// it needs already). Returns the concurrency and what is known of template1.
async fn prepare(
    connector: &Connector,
    client: &Client,
    spec: &ValidSpec,
    concurrency: Concurrency,
    origin: Origin,
) -> anyhow::Result<(usize, Template1)> {
    let concurrency = match concurrency {
        Concurrency::Fixed(n) => n,
        Concurrency::ShareOfMaxConnections => share_of_max_connections(client).await,
    };
    let Some(role) = connector.privileged_role() else {
        return Ok((concurrency, Template1::Unknown));
    };
    let step = match (origin, spec.cluster.databases.is_empty()) {
        (_, true) => Template1Step::LeaveAlone,
        (Origin::FinishedTemplate, false) => Template1Step::Finished,
        (Origin::Unknown, false) => Template1Step::Prepare,
    };
    let (migrated, template1) = privileged_role_and_migrations(connector, client, role, step)
        .await
        .context("running the catalog migrations")?;
    let (id, applied) = (migrated.reached, migrated.applied);
    info!(migration_id = id, applied, "catalog migrations done");
    Ok((concurrency, template1))
}

/// What a start does about template1 beside the migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Template1Step {
    /// Nothing: the spec lists no database.
    LeaveAlone,
    /// Nothing to look at: a finished template's copy, whose template1
    /// carries the privileged role's default privileges.
    Finished,
    /// Give it those it lacks, on its own connection.
    Prepare,
}

/// Makes sure of the privileged role `role` and the migrations on `client`,
/// none of whose commits waits for its WAL flush (see the module's doc);
/// meanwhile, what `step` says about template1. Returns what the
/// migrations did and what is known of template1 (unknown when it was left
/// alone or could not be looked at).
async fn privileged_role_and_migrations(
    connector: &Connector,
    client: &Client,
    role: &str,
    step: Template1Step,
) -> anyhow::Result<(migrations::Migrated, Template1)> {
    privileged::ensure_unflushed(client, role).await?;
    let looking = async {
        match step {
            Template1Step::LeaveAlone => None,
            Template1Step::Finished => Some((None, true)),
            Template1Step::Prepare => template1::prepare_at_start(connector, role)
                .await
                .map(|(pid, ready)| (Some(pid), ready)),
        }
    };
    let (migrated, looked) = tokio::join!(migrations::run_all(client, role), looking);
    let mut template1 = Template1::Unknown;
    if let Some((pid, ready)) = looked {
        if let Some(pid) = pid {
            template1::wait_gone(client, pid).await;
        }
        template1 = Template1::inherits(ready);
    }
    Ok((migrated?, template1))
}

/// A tenth of the server's `max_connections`, 1 to 16 (1 if unreadable).
pub(super) async fn share_of_max_connections(client: &Client) -> usize {
    let max = async {
        let row = client.query_one("SHOW max_connections", &[]).await?;
        anyhow::Ok(row.try_get::<_, String>(0)?.parse::<usize>()?)
    };
    match max.await {
        Ok(max) => (max / 10).clamp(1, 16),
        Err(_) => 1,
    }
}

/// Names what [`finish_template`] does for `privileged` (the role, its
/// attributes, every migration's SQL, template1's default privileges), for
/// the key of a local template: a change to any of it makes a new template.
pub fn template_finish_key(privileged: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    privileged::CREATE_ATTRIBUTES.hash(&mut h);
    template1::default_privileges_sql(privileged).hash(&mut h);
    for m in migrations::MIGRATIONS {
        (m.id, m.render(privileged)).hash(&mut h);
    }
    format!(
        "privileged_role={privileged:?} migrations={} sql={:016x}",
        migrations::MIGRATIONS.len(),
        h.finish()
    )
}

/// Gives a fresh local template what every primary's start would otherwise
/// do first (see [`start`]): the privileged role, the migrations, and
/// template1's default privileges, so that a start from the template finds
/// them done. Durability is the caller's: postgres' shutdown checkpoint and
/// the template's sync.
pub async fn finish_template(connector: &Connector) -> anyhow::Result<()> {
    let Some(role) = connector.privileged_role() else {
        return Ok(());
    };
    let conn = connector.open(connector.maintenance_db()).await?;
    let step = Template1Step::Prepare;
    let result = privileged_role_and_migrations(connector, &conn.client, role, step).await;
    conn.close().await;
    let (id, template1) = result.context("running the catalog migrations")?;
    info!(
        migration_id = id.reached,
        "catalog migrations done in the template"
    );
    anyhow::ensure!(
        template1 == Template1::Inherits,
        "template1 did not take the privileged role's default privileges"
    );
    Ok(())
}

/// Counts the installed extensions in the background (the metrics'
/// `installed_extensions`), once a start's catalog step is done.
pub fn spawn_extension_count(connector: &Connector) {
    let connector = connector.clone();
    tokio::spawn(async move { crate::installed_extensions::refresh(&connector).await });
}
