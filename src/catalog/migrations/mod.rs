//! Versioned catalog migrations: SQL that gives the privileged role what it
//! needs, applied once per cluster on a primary, in order, each in its own
//! transaction, its id recorded in `neon_migration.migration_id`.
//!
//! Ids 1 to 12 are the reference's, in its order and with the same effect on
//! each PostgreSQL version, so a timeline started by the reference's
//! compute_ctl one day and by ours the next is migrated exactly once: both
//! read the same counter, and each id means the same change to both. Ours
//! follow from 13 (the files named `-ours-`): append only, never edit or
//! reorder one that has shipped. A counter above what we know (a newer
//! reference) is logged and left alone.
//!
//! A migration file may start with `-- SKIP` (it only advances the counter,
//! as the reference's ids 5 to 9 do) or with `-- min_server_version: N` (on
//! an older postgres it is skipped, and still recorded). `{privileged_role}`
//! in a file is replaced by the quoted privileged role, and
//! `{privileged_role_literal}` by its name as a string literal.
//!
//! For the reference's test harness, `FAILPOINTS=compute-migration=return(N)`
//! makes migration N fail after its SQL ran (its transaction is rolled back).

use super::stats;
use anyhow::{anyhow, Context};
use postgres_protocol::escape::{escape_identifier, escape_literal};
use tokio_postgres::Client;
use tracing::info;

/// One migration: its id (position, from 1) and SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Recorded in `neon_migration.migration_id` once applied.
    pub id: i64,
    /// The file name, for logs and errors.
    pub name: &'static str,
    /// The SQL, with `{privileged_role}` placeholders.
    pub sql: &'static str,
}

macro_rules! migrations {
    ($($id:literal => $file:literal),* $(,)?) => {
        &[$(Migration { id: $id, name: $file, sql: include_str!($file) }),*]
    };
}

/// Every migration, in order. Append only: never edit or reorder one that
/// has shipped (a cluster records how far it got by id).
pub const MIGRATIONS: &[Migration] = migrations![
    1 => "0001-add_bypass_rls_to_privileged_role.sql",
    2 => "0002-alter_roles.sql",
    3 => "0003-grant_pg_create_subscription_to_privileged_role.sql",
    4 => "0004-grant_pg_monitor_to_privileged_role.sql",
    5 => "0005-grant_all_on_tables_to_privileged_role.sql",
    6 => "0006-grant_all_on_sequences_to_privileged_role.sql",
    7 => "0007-grant_all_on_tables_with_grant_option_to_privileged_role.sql",
    8 => "0008-grant_all_on_sequences_with_grant_option_to_privileged_role.sql",
    9 => "0009-revoke_replication_for_previously_allowed_roles.sql",
    10 => "0010-grant_snapshot_synchronization_funcs_to_privileged_role.sql",
    11 => "0011-grant_pg_show_replication_origin_status_to_privileged_role.sql",
    12 => "0012-grant_pg_signal_backend_to_privileged_role.sql",
    13 => "0013-ours-grant_public_schema.sql",
    14 => "0014-ours-default_privileges.sql",
];

/// How many of [`MIGRATIONS`] are the reference's (ids 1 to this).
#[cfg(test)]
pub const REFERENCE_MIGRATIONS: i64 = 12;

impl Migration {
    /// The server version this migration needs, from its first line.
    pub fn min_server_version(&self) -> Option<i32> {
        self.sql
            .lines()
            .next()?
            .strip_prefix("-- min_server_version:")?
            .trim()
            .parse()
            .ok()
    }

    /// Whether this migration only advances the counter (`-- SKIP`).
    pub fn skipped(&self) -> bool {
        self.sql.starts_with("-- SKIP")
    }

    /// The SQL to run for this privileged role.
    pub fn render(&self, privileged_role: &str) -> String {
        self.sql
            .replace("{privileged_role}", &escape_identifier(privileged_role))
            .replace(
                "{privileged_role_literal}",
                &escape_literal(privileged_role),
            )
    }
}

const PREPARE: &str = "CREATE SCHEMA IF NOT EXISTS neon_migration;
CREATE TABLE IF NOT EXISTS neon_migration.migration_id (key pg_catalog.int4 NOT NULL PRIMARY KEY, id pg_catalog.int8 NOT NULL DEFAULT 0);
INSERT INTO neon_migration.migration_id VALUES (0, 0) ON CONFLICT DO NOTHING;
REVOKE ALL ON SCHEMA neon_migration FROM PUBLIC;";

/// The migration the reference's `FAILPOINTS` variable makes fail, if any.
fn failpoint() -> Option<i64> {
    let value = std::env::var("FAILPOINTS").ok()?;
    failpoint_in(&value)
}

/// Parses `compute-migration=return(N)` out of a `FAILPOINTS` value
/// (`name=action` pairs separated by `;`).
fn failpoint_in(value: &str) -> Option<i64> {
    value.split(';').find_map(|pair| {
        let (name, action) = pair.split_once('=')?;
        if name.trim() != "compute-migration" {
            return None;
        }
        action
            .trim()
            .strip_prefix("return(")?
            .strip_suffix(')')?
            .trim()
            .parse()
            .ok()
    })
}

/// Applies the migrations not applied yet, on `client` (the maintenance
/// database, as the superuser). Returns the id reached. A failure names the
/// migration, is counted in `compute_ctl_db_migration_failed_total`, and
/// leaves the id at the last one that succeeded, so the next run resumes there.
#[cfg(test)]
pub async fn run(client: &Client, privileged_role: &str) -> anyhow::Result<i64> {
    run_list(client, privileged_role, MIGRATIONS, failpoint()).await
}

/// Applies the migrations not applied yet (as `run`), saying how many it applied.
pub(crate) async fn run_all(client: &Client, privileged_role: &str) -> anyhow::Result<Migrated> {
    run_counted(client, privileged_role, MIGRATIONS, failpoint()).await
}

#[cfg(test)]
pub(crate) async fn run_list(
    client: &Client,
    privileged_role: &str,
    migrations: &[Migration],
    fail_at: Option<i64>,
) -> anyhow::Result<i64> {
    Ok(run_counted(client, privileged_role, migrations, fail_at)
        .await?
        .reached)
}

/// What [`run_counted`] did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migrated {
    /// The id reached.
    pub(crate) reached: i64,
    /// How many migrations it applied (or skipped for the server version)
    /// now.
    pub(crate) applied: usize,
}

/// The migrations in `migrations` not applied yet, saying how many it applied. A cluster whose migrations are
/// all recorded already costs one round trip and no write.
pub(crate) async fn run_counted(
    client: &Client,
    privileged_role: &str,
    migrations: &[Migration],
    fail_at: Option<i64>,
) -> anyhow::Result<Migrated> {
    let last = migrations.last().map_or(0, |m| m.id);
    let row = client
        .query_one(STATE, &[])
        .await
        .context("reading neon_migration.migration_id")?;
    let (exists, version): (bool, i32) = (row.try_get(0)?, row.try_get(1)?);
    let found = match exists {
        true => recorded(client).await?,
        false => None,
    };
    let current = match found {
        Some(id) => id,
        None => {
            // Not flushed at its commit, as no migration's is (see
            // `catalog::start`).
            client
                .batch_execute(&format!(
                    "BEGIN; SET LOCAL synchronous_commit = off; {PREPARE} COMMIT"
                ))
                .await
                .context("preparing neon_migration.migration_id")?;
            recorded(client)
                .await?
                .context("neon_migration.migration_id has no row after PREPARE")?
        }
    };
    if current > last {
        tracing::warn!(
            migration_id = current,
            known = last,
            "the cluster's migration counter is beyond the migrations compute_ctl knows \
             (a newer compute_ctl migrated it): left as it is"
        );
    }
    if current >= last {
        return Ok(Migrated {
            reached: current,
            applied: 0,
        });
    }
    let mut reached = current;
    let mut applied = 0;
    for m in migrations.iter().filter(|m| m.id > current) {
        let result = apply_one(client, m, privileged_role, version, fail_at).await;
        if let Err(e) = result {
            let _ = client.batch_execute("ROLLBACK").await;
            if reached > current {
                // The ones applied stay applied, even if postgres is now
                // stopped at once: a commit that writes, so it waits for the
                // flush of all before it.
                let _ = client
                    .batch_execute("UPDATE neon_migration.migration_id SET id = id WHERE key = 0")
                    .await;
            }
            stats::migration_failed(m.id);
            return Err(e.context(format!("migration id={} ({}) failed", m.id, m.name)));
        }
        reached = m.id;
        applied += 1;
    }
    Ok(Migrated { reached, applied })
}

/// Whether the table of ids exists (a cluster never migrated has none),
/// and the server version.
const STATE: &str = "SELECT pg_catalog.to_regclass('neon_migration.migration_id') IS NOT NULL, \
    pg_catalog.current_setting('server_version_num')::pg_catalog.int4";

/// The id recorded, if the table has its row.
async fn recorded(client: &Client) -> anyhow::Result<Option<i64>> {
    let row = client
        .query_opt(
            "SELECT id FROM neon_migration.migration_id WHERE key = 0",
            &[],
        )
        .await
        .context("reading neon_migration.migration_id")?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// One migration in its own transaction: one round trip (begin, the SQL,
/// the recorded id, commit in one message), or several when the failpoint
/// names it (it fails after the SQL ran). Its commit does not wait for
/// the WAL flush (see `catalog::start` on why a start flushes nothing of
/// its own; a failure flushes those applied).
async fn apply_one(
    client: &Client,
    m: &Migration,
    privileged_role: &str,
    server_version: i32,
    fail_at: Option<i64>,
) -> anyhow::Result<()> {
    let mut sql = String::from("BEGIN; SET LOCAL synchronous_commit = off;");
    match m.min_server_version() {
        _ if m.skipped() => {
            info!(
                "Skipping migration id={} ({}): it only advances the counter",
                m.id, m.name
            );
        }
        Some(min) if server_version < min => {
            info!(
                "Skipping migration id={} ({}): needs server version {min}",
                m.id, m.name
            );
        }
        _ => {
            info!("Running migration id={} ({})", m.id, m.name);
            sql.push('\n');
            sql.push_str(&m.render(privileged_role));
            sql.push_str("\n;");
        }
    }
    if fail_at == Some(m.id) {
        client.batch_execute(&sql).await?;
        return Err(anyhow!(
            "failpoint compute-migration made migration id={} fail",
            m.id
        ));
    }
    // The id is ours (an integer), not outside input.
    sql.push_str(&format!(
        " UPDATE neon_migration.migration_id SET id = {} WHERE key = 0; COMMIT",
        m.id
    ));
    client.batch_execute(&sql).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_files() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.id, i as i64 + 1, "{}", m.name);
            assert!(m.name.starts_with(&format!("{:04}-", m.id)), "{}", m.name);
            assert_eq!(m.skipped(), (5..=9).contains(&m.id), "{}", m.name);
            if !m.skipped() {
                let sql = m.render("x");
                assert!(sql.contains("\"x\"") || sql.contains("'x'"), "{}", m.name);
            }
            // Ours come after the reference's, and say so in their names.
            assert_eq!(
                m.name.contains("-ours-"),
                m.id > REFERENCE_MIGRATIONS,
                "{}",
                m.name
            );
        }
        let sixteen: Vec<i64> = MIGRATIONS
            .iter()
            .filter(|m| m.min_server_version() == Some(160000))
            .map(|m| m.id)
            .collect();
        assert_eq!(sixteen, [3, 10]);
        assert!(MIGRATIONS[1].render("x").contains("'x', 'member'"));
    }

    #[test]
    fn the_failpoint_is_read_from_failpoints() {
        assert_eq!(failpoint_in("compute-migration=return(3)"), Some(3));
        assert_eq!(
            failpoint_in("other=off; compute-migration=return( 12 )"),
            Some(12)
        );
        assert_eq!(failpoint_in("compute-migration=off"), None);
        assert_eq!(failpoint_in("something=return(2)"), None);
    }
}
