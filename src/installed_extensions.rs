//! Installed extensions, counted for the `compute_installed_extensions`
//! metric: at start (in the background) and every
//! `--installed-extensions-collection-interval` (the periodic task is
//! [`crate::collector`]'s: the catalog knows nothing of the driver). A
//! module of its own, below the catalog: the count and its figures are no
//! part of reconciling roles and databases.

use crate::connect::Connector;
use anyhow::Context;
use parking_lot::Mutex;
use prometheus::{IntGaugeVec, Opts, Registry};
use std::collections::BTreeMap;
use tracing::{debug, warn};

/// An installed extension as the metric labels it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtensionKey {
    /// `pg_extension.extname`.
    pub name: String,
    /// `pg_extension.extversion`.
    pub version: String,
    /// Whether its owner is a superuser.
    pub owned_by_superuser: bool,
}

/// Databases per installed extension, from the last collection (None before it).
static INSTALLED_EXTENSIONS: Mutex<Option<BTreeMap<ExtensionKey, u64>>> = Mutex::new(None);

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
        Ok(counts) => set_installed_extensions(counts),
        Err(e) => warn!("counting installed extensions: {e:#}"),
    }
}

/// Replaces the installed extensions with a new collection.
pub fn set_installed_extensions(counts: BTreeMap<ExtensionKey, u64>) {
    *INSTALLED_EXTENSIONS.lock() = Some(counts);
}

/// Adds `compute_installed_extensions{extension_name, version, owned_by_superuser}`.
pub fn register(registry: &Registry) -> prometheus::Result<()> {
    let installed = IntGaugeVec::new(
        Opts::new(
            "compute_installed_extensions",
            "Number of databases where an extension is installed, by name, version and owner",
        ),
        &["extension_name", "version", "owned_by_superuser"],
    )?;
    for (key, n) in INSTALLED_EXTENSIONS.lock().iter().flatten() {
        let owned = if key.owned_by_superuser { "1" } else { "0" };
        installed
            .with_label_values(&[&key.name, &key.version, owned])
            .set(*n as i64);
    }
    registry.register(Box::new(installed))
}
