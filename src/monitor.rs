//! The activity monitor: records when users last did something, for scale
//! to zero, and how long postgres was unreachable while it should serve.
//!
//! Activity is any non-superuser client session that is not idle (a session
//! idle in a transaction counts), a walsender, an autovacuum worker, or a
//! running logical subscription worker. The monitor's own connection is a
//! superuser's and does not count.

use crate::catalog::Connector;
use crate::driver::Handle;
use chrono::Utc;
use compute_states::Status;
use std::time::Duration;

/// How often the monitor looks.
pub const INTERVAL: Duration = Duration::from_millis(500);

const ACTIVITY: &str = "\
SELECT EXISTS (
         SELECT 1 FROM pg_catalog.pg_stat_activity a
         JOIN pg_catalog.pg_roles r ON r.oid = a.usesysid
         WHERE a.backend_type = 'client backend'
           AND a.state IS DISTINCT FROM 'idle'
           AND a.pid <> pg_catalog.pg_backend_pid()
           AND NOT r.rolsuper)
    OR EXISTS (
         SELECT 1 FROM pg_catalog.pg_stat_activity
         WHERE backend_type IN ('walsender', 'autovacuum worker'))
    OR EXISTS (
         SELECT 1 FROM pg_catalog.pg_stat_subscription WHERE pid IS NOT NULL)";

/// Starts the monitor; it runs until the process exits.
pub fn spawn(handle: Handle, connector: Connector) {
    tokio::spawn(async move {
        let mut client: Option<tokio_postgres::Client> = None;
        let mut ticker = tokio::time::interval(INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match handle.status() {
                Status::Running => {}
                Status::Terminated | Status::TerminationPending => return,
                _ => {
                    client = None;
                    continue;
                }
            }
            // A postgres that does not answer within the interval is down
            // for that interval.
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                let connect = connector.connect(connector.maintenance_db());
                client = tokio::time::timeout(INTERVAL, connect)
                    .await
                    .ok()
                    .and_then(Result::ok);
            }
            let Some(c) = &client else {
                handle.add_pg_downtime(INTERVAL);
                continue;
            };
            match tokio::time::timeout(INTERVAL, c.query_one(ACTIVITY, &[])).await {
                Ok(Ok(row)) => {
                    handle.pg_answered();
                    if row.get::<_, bool>(0) {
                        handle.set_last_active(Utc::now());
                    }
                }
                failed => {
                    if let Ok(Err(e)) = failed {
                        tracing::debug!("activity probe failed: {e}");
                    }
                    client = None;
                    // Still Running: the driver has not seen postgres exit yet.
                    if handle.status() == Status::Running {
                        handle.add_pg_downtime(INTERVAL);
                    }
                }
            }
        }
    });
}
