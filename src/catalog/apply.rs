//! The executor: runs a [`Plan`] group by group.

use super::plan::{Plan, Step};
use crate::connect::{Connection, Connector};
use anyhow::Context;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use tracing::{info, warn};

/// What [`apply_on`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Statements executed successfully.
    pub statements: usize,
    /// Wall time of the apply.
    pub duration: Duration,
    /// Databases whose per-database work was skipped because they do not
    /// accept connections (any more).
    pub skipped_databases: Vec<String>,
}

/// [`apply_on`] on a maintenance connection of its own, closed after.
#[cfg(test)]
pub async fn apply(
    connector: &Connector,
    plan: &Plan,
    concurrency: usize,
) -> anyhow::Result<ApplyReport> {
    let (report, plain) = apply_on(connector, None, plan, concurrency).await?;
    if let Some(conn) = plain {
        conn.close().await;
    }
    Ok(report)
}

/// Runs `plan`: its ordering groups one after the other; inside a group, the
/// statements of the maintenance database first, in order, then those of
/// each other database in order on its own connection, up to `concurrency`
/// databases at a time.
///
/// The first failure stops the apply (once the statements already running
/// have finished) with an error naming the object and the redacted
/// statement. What succeeded stays; planning again from the catalog and
/// applying finishes the job.
///
/// `plain`, when given (a connection to the maintenance database already
/// open, the start's, not quiet), is the connection for the maintenance
/// database's statements, so that the apply costs no connection of its own
/// for them; that connection is given back after a successful apply, for
/// what follows the catalog step (the confirm of its reload).
pub(crate) async fn apply_on(
    connector: &Connector,
    plain: Option<Connection>,
    plan: &Plan,
    concurrency: usize,
) -> anyhow::Result<(ApplyReport, Option<Connection>)> {
    let start = Instant::now();
    let mut report = ApplyReport::default();
    let mut maintenance = Maintenance {
        conn: plain,
        quiet: false,
    };
    let result = run_groups(connector, plan, concurrency, &mut maintenance, &mut report).await;
    report.duration = start.elapsed();
    match result {
        Ok(()) => Ok((report, maintenance.give_back().await)),
        Err(e) => {
            if let Some(conn) = maintenance.conn {
                conn.close().await;
            }
            Err(e)
        }
    }
}

async fn run_groups(
    connector: &Connector,
    plan: &Plan,
    concurrency: usize,
    maintenance: &mut Maintenance,
    report: &mut ApplyReport,
) -> anyhow::Result<()> {
    let groups: Vec<&[Step]> = plan.groups().collect();
    let mut next = 0;
    while let Some(group) = groups.get(next) {
        next += 1;
        // The next group's work inside the databases this group creates
        // (say, default privileges) is done by the creation workers right
        // after each creation, while the other creations go on.
        let mut followups = followups_of(group, groups.get(next).copied());
        if !followups.is_empty() {
            next += 1;
        }
        let global: Vec<&Step> = group.iter().filter(|s| s.database().is_none()).collect();
        let mut rest = global.as_slice();
        while let Some(first) = rest.first() {
            // A run of database creations goes out on parallel connections:
            // each one is dominated by postgres writing and syncing files.
            let run = rest.iter().take_while(|s| s.creates_database()).count();
            // A run of role statements and grants goes out in batches, each
            // one round trip and one commit (not one per statement).
            let batch = rest
                .iter()
                .take(BATCH)
                .take_while(|s| s.batchable() && s.has_secret() == first.has_secret())
                .count();
            if first.creates_database() && run > 1 && concurrency > 1 {
                let work = std::mem::take(&mut followups);
                create_databases(connector, &rest[..run], work, concurrency, report).await?;
                rest = &rest[run..];
            } else if batch > 1 {
                maintenance.execute_batch(connector, &rest[..batch]).await?;
                report.statements += batch;
                rest = &rest[batch..];
            } else {
                maintenance.execute(connector, first).await?;
                report.statements += 1;
                rest = &rest[1..];
            }
        }
        run_per_database(connector, group, concurrency, report).await?;
        // Follow-ups not taken by a parallel creation run as their group.
        let left: Vec<Step> = followups.into_values().flatten().collect();
        run_per_database(connector, &left, concurrency, report).await?;
    }
    Ok(())
}

/// The steps of `next`, by the object of the `CREATE DATABASE` step of
/// `group` whose database they run in, if `next` holds nothing else: no
/// global step, and only steps in databases `group` creates.
fn followups_of(group: &[Step], next: Option<&[Step]>) -> HashMap<String, Vec<Step>> {
    let mut by_object: HashMap<String, Vec<Step>> = HashMap::new();
    let Some(next) = next else {
        return by_object;
    };
    // A creation's object is `database "name"`, as is that of the steps
    // the planner adds in the database it creates.
    let creations: HashSet<&str> = group
        .iter()
        .filter(|c| c.creates_database())
        .map(Step::object)
        .collect();
    for step in next {
        let created = step.database().is_some() && creations.contains(step.object());
        if !created {
            return HashMap::new();
        }
        by_object
            .entry(step.object().to_string())
            .or_default()
            .push(step.clone());
    }
    by_object
}

/// The maintenance database's connection, opened when first needed (or
/// the one the apply was given), and whether postgres is told, for now, to
/// neither log its statements nor quote them in error reports: it is while
/// statements with a password run (a session setting, changed in a query
/// of its own, since `log_statement` is decided for a whole query string
/// before any of it runs), and is back to the server's settings for the
/// others.
#[derive(Default)]
struct Maintenance {
    conn: Option<Connection>,
    quiet: bool,
}

/// Makes a session quiet: postgres neither logs its statements nor quotes
/// them in error reports (for statements with a password).
const QUIET: &str = "SET log_statement = 'none'; SET log_min_error_statement = 'panic'; \
    SET log_min_duration_statement = -1";
/// Gives a quiet session back the server's logging settings.
const LOUD: &str =
    "RESET log_statement; RESET log_min_error_statement; RESET log_min_duration_statement";

/// Most statements sent in one batch.
const BATCH: usize = 250;

impl Maintenance {
    async fn execute(&mut self, connector: &Connector, step: &Step) -> anyhow::Result<()> {
        let conn = self.connection(connector, step.has_secret()).await?;
        execute(&conn.client, step, step.has_secret()).await
    }

    /// Runs `steps` (all [`Step::batchable`], all with a secret or none) as
    /// one multi-statement query: one round trip, one implicit transaction.
    /// If it fails, nothing of it stays, and the steps are run one by one:
    /// the failing one is reported as [`Maintenance::execute`] reports it,
    /// and those before it stay applied.
    async fn execute_batch(
        &mut self,
        connector: &Connector,
        steps: &[&Step],
    ) -> anyhow::Result<()> {
        let secret = steps.iter().any(|s| s.has_secret());
        let conn = self.connection(connector, secret).await?;
        let sql = steps
            .iter()
            .map(|s| s.sql())
            .collect::<Vec<_>>()
            .join(";\n");
        if conn.client.batch_execute(&sql).await.is_ok() {
            for step in steps {
                log_step(step);
            }
            return Ok(());
        }
        for step in steps {
            self.execute(connector, step).await?;
        }
        Ok(())
    }

    async fn connection(
        &mut self,
        connector: &Connector,
        secret: bool,
    ) -> anyhow::Result<&mut Connection> {
        if self.conn.is_none() {
            self.conn = Some(connector.open(connector.maintenance_db()).await?);
            self.quiet = false;
        }
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("maintenance connection missing"))?;
        if secret != self.quiet {
            let sql = if secret { QUIET } else { LOUD };
            conn.client
                .batch_execute(sql)
                .await
                .context("setting how postgres logs the maintenance session's statements")?;
            self.quiet = secret;
        }
        Ok(conn)
    }

    /// The connection, as logged as the server's settings say (None if it
    /// cannot be made so: it is closed).
    async fn give_back(self) -> Option<Connection> {
        let conn = self.conn?;
        if self.quiet && conn.client.batch_execute(LOUD).await.is_err() {
            conn.close().await;
            return None;
        }
        Some(conn)
    }
}

/// Runs independent `CREATE DATABASE` steps on up to `concurrency`
/// connections, each creation followed by its `followups` (keyed by the
/// creation's object) on a connection to the new database; the first
/// failure stops the others from taking new steps. Counts what succeeded
/// and what was skipped in `report`.
async fn create_databases(
    connector: &Connector,
    steps: &[&Step],
    followups: HashMap<String, Vec<Step>>,
    concurrency: usize,
    report: &mut ApplyReport,
) -> anyhow::Result<()> {
    let mut followups = followups;
    let queue = Arc::new(parking_lot::Mutex::new(
        steps
            .iter()
            .map(|s| {
                (
                    (*s).clone(),
                    followups.remove(s.object()).unwrap_or_default(),
                )
            })
            .collect::<std::collections::VecDeque<(Step, Vec<Step>)>>(),
    ));
    let failed = Arc::new(AtomicBool::new(false));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.min(steps.len()) {
        let (connector, queue, failed) = (connector.clone(), queue.clone(), failed.clone());
        workers.spawn(async move {
            let mut outcome = Outcome {
                executed: 0,
                skipped: Vec::new(),
                error: None,
            };
            let conn = match connector.open(connector.maintenance_db()).await {
                Ok(conn) => conn,
                Err(e) => {
                    failed.store(true, Ordering::SeqCst);
                    outcome.error = Some(e);
                    return outcome;
                }
            };
            let one = Semaphore::new(1);
            while !failed.load(Ordering::SeqCst) {
                let Some((step, after)) = queue.lock().pop_front() else {
                    break;
                };
                if let Err(e) = execute(&conn.client, &step, false).await {
                    failed.store(true, Ordering::SeqCst);
                    outcome.error = Some(e);
                    break;
                }
                outcome.executed += 1;
                if let Some(db) = after.first().and_then(Step::database) {
                    let done = run_in_database(&connector, db, &after, &one, &failed).await;
                    outcome.executed += done.executed;
                    outcome.skipped.extend(done.skipped);
                    if let Some(e) = done.error {
                        failed.store(true, Ordering::SeqCst);
                        outcome.error = Some(e);
                        break;
                    }
                }
            }
            conn.close().await;
            outcome
        });
    }
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        let outcome = joined.context("database creation task panicked")?;
        report.statements += outcome.executed;
        report.skipped_databases.extend(outcome.skipped);
        if let Some(e) = outcome.error {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The steps of `group` that run in a named database, one task per database.
async fn run_per_database(
    connector: &Connector,
    group: &[Step],
    concurrency: usize,
    report: &mut ApplyReport,
) -> anyhow::Result<()> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_db: HashMap<&str, Vec<Step>> = HashMap::new();
    for step in group {
        if let Some(db) = step.database() {
            by_db
                .entry(db)
                .or_insert_with(|| {
                    order.push(db);
                    Vec::new()
                })
                .push(step.clone());
        }
    }
    if order.is_empty() {
        return Ok(());
    }
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let failed = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    for db in order {
        let steps = by_db.remove(db).unwrap_or_default();
        let (connector, permits, failed) = (connector.clone(), permits.clone(), failed.clone());
        let db = db.to_string();
        tasks.spawn(async move {
            let outcome = run_in_database(&connector, &db, &steps, &permits, &failed).await;
            if outcome.error.is_some() {
                failed.store(true, Ordering::SeqCst);
            }
            outcome
        });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.context("per-database task panicked")?;
        report.statements += outcome.executed;
        report.skipped_databases.extend(outcome.skipped);
        if let Some(e) = outcome.error {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

struct Outcome {
    executed: usize,
    skipped: Vec<String>,
    error: Option<anyhow::Error>,
}

async fn run_in_database(
    connector: &Connector,
    db: &str,
    steps: &[Step],
    permits: &Semaphore,
    failed: &AtomicBool,
) -> Outcome {
    let mut outcome = Outcome {
        executed: 0,
        skipped: Vec::new(),
        error: None,
    };
    let Ok(_permit) = permits.acquire().await else {
        return outcome;
    };
    if failed.load(Ordering::SeqCst) {
        return outcome;
    }
    let conn = match connector.open(db).await {
        Ok(conn) => conn,
        Err(e) if refuses_connections(&e) => {
            warn!(database = %db, "skipping per-database work: {e:#}");
            outcome.skipped.push(db.to_string());
            return outcome;
        }
        Err(e) => {
            outcome.error = Some(e);
            return outcome;
        }
    };
    for step in steps {
        if let Err(e) = execute(&conn.client, step, false).await {
            outcome.error = Some(e);
            break;
        }
        outcome.executed += 1;
    }
    conn.close().await;
    outcome
}

/// The database is gone, or does not (currently) accept connections.
fn refuses_connections(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<tokio_postgres::Error>())
        .filter_map(|e| e.code())
        .any(|code| {
            *code == SqlState::INVALID_CATALOG_NAME
                || *code == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE
                || *code == SqlState::FEATURE_NOT_SUPPORTED
        })
}

/// Runs one step. A statement with a password runs on a session made quiet
/// (`quiet`: see [`QUIET`]), or else in a transaction where postgres neither
/// logs it nor quotes it in an error report.
async fn execute(client: &Client, step: &Step, quiet: bool) -> anyhow::Result<()> {
    let mut attempt = 1;
    let result = loop {
        let result = if step.has_secret() && !quiet {
            execute_secret(client, step.sql()).await
        } else {
            client.batch_execute(step.sql()).await
        };
        match result {
            Err(e) if attempt < CONCURRENT_UPDATE_ATTEMPTS && concurrently_updated(&e) => {
                // REASSIGN/DROP OWNED in several databases at once update the
                // same shared catalog rows; the loser retries.
                tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt))).await;
                attempt += 1;
            }
            result => break result,
        }
    };
    result.with_context(|| format!("{}: {}", step.object(), step.redacted_sql()))?;
    log_step(step);
    Ok(())
}

fn log_step(step: &Step) {
    info!(
        object = %step.object(),
        database = step.database().unwrap_or("(maintenance)"),
        phase = %step.phase(),
        "{}",
        step.redacted_sql()
    );
}

/// Attempts at a statement that lost a race on a shared catalog row.
const CONCURRENT_UPDATE_ATTEMPTS: u32 = 5;

/// Postgres' "tuple concurrently updated": two sessions changed the same
/// catalog row (e.g. pg_shdepend entries of a role) at once.
fn concurrently_updated(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| db.message() == "tuple concurrently updated")
}

async fn execute_secret(client: &Client, sql: &str) -> Result<(), tokio_postgres::Error> {
    // Separate queries: log_statement is decided for a whole query string
    // before any of it runs.
    client.batch_execute("BEGIN").await?;
    let result = async {
        client
            .batch_execute("SET LOCAL log_statement = 'none'")
            .await?;
        client
            .batch_execute("SET LOCAL log_min_error_statement = 'panic'")
            .await?;
        client
            .batch_execute("SET LOCAL log_min_duration_statement = -1")
            .await?;
        client.batch_execute(sql).await?;
        client.batch_execute("COMMIT").await
    }
    .await;
    if result.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}
