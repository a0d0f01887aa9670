//! The executor: runs a [`Plan`] group by group.

use super::connect::{Connection, Connector};
use super::plan::{Plan, Step};
use anyhow::Context;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use tracing::{info, warn};

/// What [`apply`] did.
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

/// Runs `plan`: its ordering groups one after the other; inside a group, the
/// statements of the maintenance database first, in order, then those of
/// each other database in order on its own connection, up to `concurrency`
/// databases at a time.
///
/// The first failure stops the apply (once the statements already running
/// have finished) with an error naming the object and the redacted
/// statement. What succeeded stays; planning again from the catalog and
/// applying finishes the job.
pub async fn apply(
    connector: &Connector,
    plan: &Plan,
    concurrency: usize,
) -> anyhow::Result<ApplyReport> {
    let start = Instant::now();
    let mut report = ApplyReport::default();
    let mut maintenance = Maintenance::default();
    let result = run_groups(connector, plan, concurrency, &mut maintenance, &mut report).await;
    for conn in [maintenance.plain, maintenance.quiet].into_iter().flatten() {
        conn.close().await;
    }
    report.duration = start.elapsed();
    result.map(|()| report)
}

async fn run_groups(
    connector: &Connector,
    plan: &Plan,
    concurrency: usize,
    maintenance: &mut Maintenance,
    report: &mut ApplyReport,
) -> anyhow::Result<()> {
    for group in plan.groups() {
        let global: Vec<&Step> = group.iter().filter(|s| s.database().is_none()).collect();
        let mut rest = global.as_slice();
        while let Some(first) = rest.first() {
            // A run of database creations goes out on parallel connections:
            // each one is dominated by postgres writing and syncing files.
            let run = rest.iter().take_while(|s| s.creates_database()).count();
            if first.creates_database() && run > 1 && concurrency > 1 {
                report.statements += create_databases(connector, &rest[..run], concurrency).await?;
                rest = &rest[run..];
            } else {
                maintenance.execute(connector, first).await?;
                report.statements += 1;
                rest = &rest[1..];
            }
        }
        run_per_database(connector, group, concurrency, report).await?;
    }
    Ok(())
}

/// The maintenance database's connections, opened when first needed: a
/// plain one, and a quiet one (not logged) for statements with a password.
#[derive(Default)]
struct Maintenance {
    plain: Option<Connection>,
    quiet: Option<Connection>,
}

impl Maintenance {
    async fn execute(&mut self, connector: &Connector, step: &Step) -> anyhow::Result<()> {
        let db = connector.maintenance_db();
        let conn = if step.has_secret() {
            match &mut self.quiet {
                Some(conn) => conn,
                None => self.quiet.insert(connector.open_quiet(db).await?),
            }
        } else {
            match &mut self.plain {
                Some(conn) => conn,
                None => self.plain.insert(connector.open(db).await?),
            }
        };
        execute(&conn.client, step, step.has_secret()).await
    }
}

/// Runs independent `CREATE DATABASE` steps on up to `concurrency`
/// connections; the first failure stops the others from taking new steps.
/// Returns how many succeeded.
async fn create_databases(
    connector: &Connector,
    steps: &[&Step],
    concurrency: usize,
) -> anyhow::Result<usize> {
    let queue = Arc::new(parking_lot::Mutex::new(
        steps
            .iter()
            .map(|s| (*s).clone())
            .collect::<std::collections::VecDeque<Step>>(),
    ));
    let failed = Arc::new(AtomicBool::new(false));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.min(steps.len()) {
        let (connector, queue, failed) = (connector.clone(), queue.clone(), failed.clone());
        workers.spawn(async move {
            let conn = match connector.open(connector.maintenance_db()).await {
                Ok(conn) => conn,
                Err(e) => {
                    failed.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            };
            let mut done = 0;
            let mut result = Ok(());
            while !failed.load(Ordering::SeqCst) {
                let Some(step) = queue.lock().pop_front() else {
                    break;
                };
                if let Err(e) = execute(&conn.client, &step, false).await {
                    failed.store(true, Ordering::SeqCst);
                    result = Err(e);
                    break;
                }
                done += 1;
            }
            conn.close().await;
            result.map(|()| done)
        });
    }
    let mut done = 0;
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        match joined.context("database creation task panicked")? {
            Ok(n) => done += n,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(done), Err)
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
    skipped: Option<String>,
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
        skipped: None,
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
            outcome.skipped = Some(db.to_string());
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

/// Runs one step. A statement with a password runs on a quiet connection
/// (`quiet`), or else in a transaction where postgres neither logs it nor
/// quotes it in an error report.
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
    info!(
        object = %step.object(),
        database = step.database().unwrap_or("(maintenance)"),
        phase = %step.phase(),
        "{}",
        step.redacted_sql()
    );
    Ok(())
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
