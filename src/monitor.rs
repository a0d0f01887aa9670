//! The activity monitor: records when users last did something, for scale
//! to zero, how long postgres was unreachable while it should serve, and
//! the replication status (`/status`, `/metrics`); with
//! `--suspend-when-idle` it asks the driver to suspend the compute once it
//! has been idle for the spec's `suspend_timeout_seconds`.
//!
//! Activity is a non-superuser client session running something (a session
//! idle in a transaction counts) or that finished something since the last
//! look (an idle session counts from the moment it became idle, so a short
//! query between two looks is not missed, and a session that only stays
//! connected is not activity); a walsender (a standby streaming from us), an
//! autovacuum worker, or a running logical subscription worker is activity
//! while it runs. The monitor's own connection is a superuser's and does not
//! count.

use crate::connect::Connector;
use crate::driver::{Event, Handle};
use chrono::{DateTime, Utc};
use compute_states::Status;
use std::time::Duration;

/// How often the monitor looks.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// The time of the latest activity, as Unix seconds (null: none seen).
const ACTIVITY: &str = "\
SELECT EXTRACT(EPOCH FROM GREATEST(
         (SELECT max(CASE WHEN a.state = 'idle' THEN a.state_change ELSE pg_catalog.now() END)
            FROM pg_catalog.pg_stat_activity a
            JOIN pg_catalog.pg_roles r ON r.oid = a.usesysid
           WHERE a.backend_type = 'client backend'
             AND a.pid <> pg_catalog.pg_backend_pid()
             AND NOT r.rolsuper),
         (SELECT pg_catalog.now() WHERE EXISTS (
            SELECT 1 FROM pg_catalog.pg_stat_activity
             WHERE backend_type IN ('walsender', 'autovacuum worker'))),
         (SELECT pg_catalog.now() WHERE EXISTS (
            SELECT 1 FROM pg_catalog.pg_stat_subscription WHERE pid IS NOT NULL))
       ))::pg_catalog.float8";

/// Whether to suspend: `Some(idle)`, the time since `last_active`, once it
/// reaches the spec's `suspend_timeout_seconds`; a timeout of -1 (any value
/// not above 0) or none never suspends.
pub fn suspend_due(
    suspend_timeout_seconds: Option<i64>,
    last_active: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let timeout = u64::try_from(suspend_timeout_seconds?)
        .ok()
        .filter(|t| *t > 0)?;
    let idle = (now - last_active?).to_std().ok()?;
    (idle >= Duration::from_secs(timeout)).then_some(idle)
}

/// Starts the monitor; it runs until the process exits. With
/// `suspend_when_idle`, an idle Running compute is asked to suspend.
pub fn spawn(handle: Handle, connector: Connector, suspend_when_idle: bool) {
    tokio::spawn(async move {
        let mut client: Option<tokio_postgres::Client> = None;
        let mut ticker = tokio::time::interval(INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut suspend_asked = false;
        loop {
            ticker.tick().await;
            match handle.status() {
                Status::Running => {}
                Status::Terminated | Status::TerminationPending => return,
                _ => {
                    client = None;
                    suspend_asked = false;
                    handle.set_replication(None);
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
                    let at = row
                        .get::<_, Option<f64>>(0)
                        .and_then(|s| DateTime::from_timestamp_micros((s * 1e6) as i64));
                    if let Some(at) = at {
                        handle.set_last_active(at.min(Utc::now()));
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
                    continue;
                }
            }
            match tokio::time::timeout(INTERVAL, crate::replication::read(c)).await {
                Ok(Ok(replication)) => handle.set_replication(Some(replication)),
                Ok(Err(e)) => tracing::debug!("replication status: {e}"),
                Err(_) => tracing::debug!("replication status: no answer within {INTERVAL:?}"),
            }
            if suspend_when_idle && !suspend_asked {
                let snap = handle.snapshot();
                let timeout = snap.spec.as_ref().and_then(|s| s.suspend_timeout_seconds);
                if let Some(idle) = suspend_due(timeout, snap.last_active, Utc::now()) {
                    suspend_asked = handle.send(Event::Suspend { idle }).await;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspends_only_after_a_positive_timeout() {
        let now = Utc::now();
        let ago = |s: i64| Some(now - chrono::Duration::seconds(s));
        assert_eq!(suspend_due(Some(10), ago(9), now), None);
        assert_eq!(
            suspend_due(Some(10), ago(10), now),
            Some(Duration::from_secs(10))
        );
        assert!(suspend_due(Some(10), ago(3600), now).is_some());
        // -1 or absent: never; nothing to count from: never.
        assert_eq!(suspend_due(Some(-1), ago(3600), now), None);
        assert_eq!(suspend_due(None, ago(3600), now), None);
        assert_eq!(suspend_due(Some(0), ago(3600), now), None);
        assert_eq!(suspend_due(Some(10), None, now), None);
        // Activity stamped after `now` (clock skew) is not idleness.
        assert_eq!(suspend_due(Some(10), ago(-5), now), None);
    }
}
