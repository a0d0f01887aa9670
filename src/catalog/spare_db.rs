//! Empty databases made ahead of time in the local template, so that a
//! start takes one by a rename instead of waiting for a `CREATE DATABASE`.
//!
//! `CREATE DATABASE` copies template1 and makes the copy durable: on a
//! fresh cluster it is most of a cold start's catalog step (a checkpoint
//! or a WAL flush of the whole copy, then a sync). The local template is
//! made once per machine and version (see `driver::template`), so it gets
//! [`COUNT`] spare databases there, made from template1 after the
//! migrations and template1's default privileges, by the superuser, not
//! connectable (`ALLOW_CONNECTIONS false`) and named `compute_ctl_spare_<n>`.
//!
//! A start on a fresh copy of that template ([`Origin::FinishedTemplate`])
//! takes a spare for each spec database that does not exist yet and has no
//! options (owner aside): in one transaction, `ALTER DATABASE spare RENAME
//! TO name`, `ALLOW_CONNECTIONS true` and, with a privileged role, the
//! `GRANT ALL ON DATABASE` the plan gives each database it creates. The
//! plan then finds the database, owned by the superuser, and gives it to
//! its owner once the roles exist (`ALTER DATABASE .. OWNER TO`, which also
//! moves the ACL's grants to the owner). What comes out is what `CREATE
//! DATABASE .. OWNER ..` and the grant would have made, OID aside: the same
//! template1 copied, the same `pg_database` row, ACL and shared
//! dependencies (tests/it/catalog/spare_databases.rs compares both ways).
//! The spares not taken are dropped in the background once the start has
//! planned. `DROP DATABASE` first marks its database invalid and commits,
//! and a catalog read then would plan to drop it too: every catalog read
//! and plan waits for the drops under way ([`settled`]).
//!
//! A spec database with options (encoding, locale, template, strategy...)
//! is created as before, as is any database a delta operation names. Other
//! starts (Neon storage, a restart on the same data) never take spares:
//! they only exist in a fresh copy of the local template, whose key names
//! [`template_key`] (an older template, without spares, is not reused).

use super::context::Origin;
use crate::connect::Connector;
use crate::spec::ValidSpec;
use anyhow::Context;
use postgres_protocol::escape::escape_identifier;
use std::collections::HashSet;
use tokio_postgres::Client;
use tracing::{info, warn};

/// How many spare databases the local template holds: as many as a start
/// takes at most. Each costs a template1's size in every copy of the
/// template (about 7.5 MB on PostgreSQL 15), and each one a start does not
/// take costs a `DROP DATABASE` (a checkpoint) in the background: one
/// serves the common spec of one database with neither.
pub const COUNT: usize = 1;

/// The spares' names: this, then their number.
const PREFIX: &str = "compute_ctl_spare_";

/// The spares of this cluster: named so, owned by the connected superuser,
/// not connectable and not templates (a user's database of the same name
/// is none of these), in name order.
const SPARES: &str = "SELECT d.datname::pg_catalog.text FROM pg_catalog.pg_database d \
    WHERE d.datname::pg_catalog.text LIKE 'compute\\_ctl\\_spare\\_%' \
    AND NOT d.datallowconn AND NOT d.datistemplate \
    AND d.datdba OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r \
        WHERE r.rolname OPERATOR(pg_catalog.=) current_user) \
    ORDER BY 1";

/// Names the spares in the local template's key: a template made without
/// them (or with another count) is made again.
pub fn template_key() -> String {
    format!("spare_databases={COUNT}")
}

/// Makes the spares in a fresh local template whose catalog is finished
/// (`finish_template`): template1 is as every start will find it.
/// `STRATEGY FILE_COPY`: no copy of template1 in the WAL (the template's
/// postgres runs with `fsync` off; its shutdown checkpoint and the
/// template's sync make them durable).
pub async fn make_in_template(connector: &Connector) -> anyhow::Result<()> {
    let conn = connector.open(connector.maintenance_db()).await?;
    let made = async {
        for n in 1..=COUNT {
            let name = format!("{PREFIX}{n}");
            let sql = format!(
                "CREATE DATABASE {} WITH TEMPLATE template1 STRATEGY FILE_COPY \
                 ALLOW_CONNECTIONS false",
                escape_identifier(&name)
            );
            conn.client
                .batch_execute(&sql)
                .await
                .with_context(|| format!("creating the spare database {name}"))?;
        }
        anyhow::Ok(())
    }
    .await;
    conn.close().await;
    made?;
    info!(count = COUNT, "spare databases made in the template");
    Ok(())
}

/// What [`take`] did.
#[derive(Debug, Default, PartialEq, Eq)]
#[must_use = "the spares not taken are dropped only when asked to"]
pub struct Taken {
    /// The spec databases that are spares renamed.
    pub databases: Vec<String>,
    /// The spares not taken.
    pub unused: Vec<String>,
}

impl Taken {
    /// Drops the spares not taken, in the background: once the start has
    /// read the catalog and planned (see [`settled`]).
    pub fn drop_unused(self, connector: &Connector) {
        drop_in_background(connector, self.unused);
    }
}

/// At a start from `origin`, on `client` (the maintenance database, as the
/// superuser), before the plan: gives each spec database that may have one
/// a spare (see the module's comment); the others are for
/// [`Taken::drop_unused`]. Does nothing unless `origin` is a finished
/// template.
pub async fn take(
    connector: &Connector,
    client: &Client,
    spec: &ValidSpec,
    origin: Origin,
) -> anyhow::Result<Taken> {
    if origin != Origin::FinishedTemplate {
        return Ok(Taken::default());
    }
    let mut spares: Vec<String> = client
        .query(SPARES, &[])
        .await
        .context("looking for spare databases")?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let spec_names: HashSet<&str> = spec
        .cluster
        .databases
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    // A spec database of a spare's name is the spec's, not a spare.
    spares.retain(|s| !spec_names.contains(s.as_str()));
    if spares.is_empty() {
        return Ok(Taken::default());
    }
    let wanted = wanted(client, spec).await?;
    let mut taken = Vec::new();
    let mut left = spares.into_iter();
    for name in wanted {
        let Some(spare) = left.next() else { break };
        rename(client, &spare, &name, connector.privileged_role()).await?;
        taken.push(name);
    }
    let unused: Vec<String> = left.collect();
    if !taken.is_empty() {
        info!(databases = ?taken, "spec databases taken from spares, not created");
    }
    Ok(Taken {
        databases: taken,
        unused,
    })
}

/// The spec databases a spare may stand for, in the spec's order: missing,
/// without options, named by no delta operation.
async fn wanted(client: &Client, spec: &ValidSpec) -> anyhow::Result<Vec<String>> {
    let in_deltas: HashSet<&str> = spec
        .delta_operations
        .iter()
        .flatten()
        .flat_map(|op| std::iter::once(op.name.as_str()).chain(op.new_name.as_deref()))
        .collect();
    let candidates: Vec<String> = spec
        .cluster
        .databases
        .iter()
        .filter(|d| d.options.as_deref().unwrap_or_default().is_empty())
        .filter(|d| !in_deltas.contains(d.name.as_str()))
        .map(|d| d.name.clone())
        .collect();
    if candidates.is_empty() {
        return Ok(candidates);
    }
    let existing: HashSet<String> = client
        .query(
            "SELECT datname::pg_catalog.text FROM pg_catalog.pg_database \
             WHERE datname::pg_catalog.text OPERATOR(pg_catalog.=) ANY($1)",
            &[&candidates],
        )
        .await
        .context("reading which spec databases exist")?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut seen = HashSet::new();
    Ok(candidates
        .into_iter()
        .filter(|n| !existing.contains(n) && seen.insert(n.clone()))
        .collect())
}

/// Makes `spare` the database `name`, connectable, with the privileged
/// role's grant: one transaction, committed durably (as `CREATE DATABASE`
/// is).
async fn rename(
    client: &Client,
    spare: &str,
    name: &str,
    privileged: Option<&str>,
) -> anyhow::Result<()> {
    let (spare_id, id) = (escape_identifier(spare), escape_identifier(name));
    let mut sql = format!(
        "BEGIN; ALTER DATABASE {spare_id} RENAME TO {id}; \
         ALTER DATABASE {id} WITH ALLOW_CONNECTIONS true; "
    );
    if let Some(role) = privileged {
        sql.push_str(&format!(
            "GRANT ALL ON DATABASE {id} TO {}; ",
            escape_identifier(role)
        ));
    }
    sql.push_str("COMMIT");
    if let Err(e) = client.batch_execute(&sql).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(e).with_context(|| format!("taking spare database {spare} as {name}"));
    }
    Ok(())
}

/// Drops `spares` on a connection of its own, not waited for; a failure is
/// logged (it costs disk space, not the compute).
fn drop_in_background(connector: &Connector, spares: Vec<String>) {
    if spares.is_empty() {
        return;
    }
    let connector = connector.clone();
    let dropping = Dropping::begin();
    tokio::spawn(async move {
        let _dropping = dropping;
        let started = std::time::Instant::now();
        let dropped = async {
            let conn = connector.open(connector.maintenance_db()).await?;
            let result = async {
                for spare in &spares {
                    let sql = format!("DROP DATABASE IF EXISTS {}", escape_identifier(spare));
                    conn.client
                        .batch_execute(&sql)
                        .await
                        .with_context(|| format!("dropping spare database {spare}"))?;
                }
                anyhow::Ok(())
            }
            .await;
            conn.close().await;
            result
        };
        match dropped.await {
            Ok(()) => info!(
                spares = ?spares,
                ms = started.elapsed().as_millis() as u64,
                "dropped the spare databases not taken"
            ),
            Err(e) => warn!("{e:#}"),
        }
    });
}

/// At a start that skips the catalog step: the spares are of no use; they
/// are looked for and dropped in the background, so that the cluster soon
/// holds only its own databases.
pub fn drop_all(connector: &Connector, origin: Origin) {
    if origin != Origin::FinishedTemplate {
        return;
    }
    let connector = connector.clone();
    let dropping = Dropping::begin();
    tokio::spawn(async move {
        let _dropping = dropping;
        let found = async {
            let conn = connector.open(connector.maintenance_db()).await?;
            let rows = conn.client.query(SPARES, &[]).await;
            conn.close().await;
            let names: Vec<String> = rows?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            anyhow::Ok(names)
        };
        match found.await {
            Ok(names) => drop_in_background(&connector, names),
            Err(e) => warn!("looking for spare databases: {e:#}"),
        }
    });
}

/// How many drops of spares (or looks for them) this process has under way.
static DROPPING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Woken when a drop of spares ends.
static DROPPED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// One drop of spares under way, counted in [`DROPPING`] until dropped
/// (also when its task panics or is cancelled).
struct Dropping;

impl Dropping {
    fn begin() -> Dropping {
        DROPPING.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Dropping
    }
}

impl Drop for Dropping {
    fn drop(&mut self) {
        DROPPING.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        DROPPED.notify_waiters();
    }
}

/// Returns once no drop of spares is under way in this process: a catalog
/// read waits for it, as a spare being dropped is, for a moment, an invalid
/// database that the plan would drop too (and fail, once it is gone).
pub async fn settled() {
    loop {
        let notified = DROPPED.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if DROPPING.load(std::sync::atomic::Ordering::Acquire) == 0 {
            return;
        }
        notified.await;
    }
}
