//! Installed extensions, counted for the `compute_installed_extensions`
//! metric: at start (in the background) and every
//! `--installed-extensions-collection-interval` (the periodic task is
//! [`crate::collector`]'s: the catalog knows nothing of the driver).

use super::stats::{self, ExtensionKey};
use crate::connect::Connector;
use anyhow::Context;
use std::collections::BTreeMap;
use tracing::{debug, warn};

const DATABASES: &str = "SELECT datname::pg_catalog.text FROM pg_catalog.pg_database \
    WHERE datallowconn AND datconnlimit OPERATOR(pg_catalog.<>) -2 ORDER BY 1";

const EXTENSIONS: &str = "SELECT e.extname::pg_catalog.text, e.extversion, r.rolsuper \
    FROM pg_catalog.pg_extension e \
    JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) e.extowner";

/// For each (extension, version, owned by a superuser), the number of
/// databases (that accept connections) where it is installed.
pub async fn collect(connector: &Connector) -> anyhow::Result<BTreeMap<ExtensionKey, u64>> {
    let main = connector.open(connector.maintenance_db()).await?;
    let dbs = main.client.query(DATABASES, &[]).await;
    main.close().await;
    let mut counts = BTreeMap::new();
    for row in dbs.context("listing databases")? {
        let db: String = row.try_get(0)?;
        let conn = match connector.open(&db).await {
            Ok(conn) => conn,
            Err(e) => {
                // Dropped meanwhile, or not accepting connections: not counted.
                debug!(database = %db, "not counting extensions: {e:#}");
                continue;
            }
        };
        let rows = conn.client.query(EXTENSIONS, &[]).await;
        conn.close().await;
        for r in rows.with_context(|| format!("listing extensions in {db:?}"))? {
            let key = ExtensionKey {
                name: r.try_get(0)?,
                version: r.try_get(1)?,
                owned_by_superuser: r.try_get(2)?,
            };
            *counts.entry(key).or_default() += 1;
        }
    }
    Ok(counts)
}

/// Collects once and publishes the figures; a failure is logged.
pub async fn refresh(connector: &Connector) {
    match collect(connector).await {
        Ok(counts) => stats::set_installed_extensions(counts),
        Err(e) => warn!("counting installed extensions: {e:#}"),
    }
}
