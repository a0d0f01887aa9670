//! `drop_subscriptions_before_start`: a compute started on a copy of another
//! one's data (a branch) must not keep replicating into it through the
//! copied subscriptions. With the spec flag, every subscription is dropped
//! before the catalog step, once per timeline: done timelines are recorded
//! in `neon.drop_subscriptions_done`, so subscriptions made later survive
//! restarts.

use crate::connect::Connector;
use anyhow::Context;
use postgres_protocol::escape::escape_identifier;
use tracing::info;

const PREPARE: &str = "CREATE SCHEMA IF NOT EXISTS neon;
CREATE TABLE IF NOT EXISTS neon.drop_subscriptions_done (id pg_catalog.int4 GENERATED ALWAYS AS IDENTITY PRIMARY KEY, timeline_id pg_catalog.text NOT NULL);";

const SUBSCRIPTIONS: &str = "SELECT d.datname::pg_catalog.text, s.subname::pg_catalog.text \
    FROM pg_catalog.pg_subscription s \
    JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.subdbid \
    WHERE d.datallowconn AND d.datconnlimit OPERATOR(pg_catalog.<>) -2 \
    ORDER BY 1, 2";

/// Drops every subscription of the cluster unless it was already done for
/// `timeline` (then: nothing). Returns how many were dropped.
pub async fn drop_before_start(connector: &Connector, timeline: &str) -> anyhow::Result<usize> {
    let main = connector.open(connector.maintenance_db()).await?;
    let result = async {
        main.client
            .batch_execute(PREPARE)
            .await
            .context("preparing neon.drop_subscriptions_done")?;
        let done = main
            .client
            .query_opt(
                "SELECT 1 FROM neon.drop_subscriptions_done WHERE timeline_id = $1",
                &[&timeline],
            )
            .await?
            .is_some();
        if done {
            info!(timeline, "subscriptions were already dropped for this timeline");
            return Ok(0);
        }
        let subs: Vec<(String, String)> = main
            .client
            .query(SUBSCRIPTIONS, &[])
            .await
            .context("listing subscriptions")?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()?;
        for (db, sub) in &subs {
            let conn = connector.open(db).await?;
            // Detached from its slot first: the publisher need not be reachable.
            let name = escape_identifier(sub);
            let sql = format!(
                "ALTER SUBSCRIPTION {name} DISABLE; ALTER SUBSCRIPTION {name} SET (slot_name = NONE); DROP SUBSCRIPTION {name}"
            );
            let dropped = conn
                .client
                .batch_execute(&sql)
                .await
                .with_context(|| format!("dropping subscription {sub:?} in database {db:?}"));
            conn.close().await;
            dropped?;
            info!(database = %db, subscription = %sub, "dropped subscription before start");
        }
        main.client
            .execute(
                "INSERT INTO neon.drop_subscriptions_done (timeline_id) VALUES ($1)",
                &[&timeline],
            )
            .await
            .context("recording the dropped subscriptions")?;
        anyhow::Ok(subs.len())
    }
    .await;
    main.close().await;
    result
}
