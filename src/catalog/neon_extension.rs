//! The `neon` extension on Neon storage, as the reference handles it at a
//! primary's start: created in schema `neon` where the installation has it
//! (Neon's postgres does; vanilla PostgreSQL does not, and there this is a
//! logged no-op), moved there if an old compute created it elsewhere, then
//! updated to the installation's version, also with
//! `skip_pg_catalog_updates` (which only skips the creation).

use anyhow::Context;
use tracing::{info, warn};

/// What became of the extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeonExtension {
    /// The installation has no `neon` extension (vanilla PostgreSQL).
    Unavailable,
    /// Not installed, and not created (`skip_pg_catalog_updates`).
    NotInstalled,
    /// Installed, at this version.
    At(String),
}

/// Creates (with `create`) and updates the `neon` extension on `client`, a
/// connection to the maintenance database (the one the start's catalog step
/// ran on). A failed creation is an error (it is part of the catalog's
/// apply); a failed update is logged, as the reference's.
pub(crate) async fn handle_on(
    client: &tokio_postgres::Client,
    create: bool,
) -> anyhow::Result<NeonExtension> {
    let available = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'neon'",
            &[],
        )
        .await?
        .is_some();
    if !available {
        info!("the neon extension is not in this installation: not created");
        return Ok(NeonExtension::Unavailable);
    }
    if create {
        client
            .batch_execute(
                "CREATE SCHEMA IF NOT EXISTS neon;
                 CREATE EXTENSION IF NOT EXISTS neon WITH SCHEMA neon;",
            )
            .await
            .context("creating the neon extension")?;
        // An old compute may have made it elsewhere, not relocatable.
        let elsewhere = client
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_extension e \
                 JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace \
                 WHERE e.extname = 'neon' AND n.nspname OPERATOR(pg_catalog.<>) 'neon'",
                &[],
            )
            .await?
            .is_some();
        if elsewhere {
            client
                .batch_execute(
                    "UPDATE pg_catalog.pg_extension SET extrelocatable = true \
                     WHERE extname = 'neon' AND NOT extrelocatable;
                     ALTER EXTENSION neon SET SCHEMA neon;",
                )
                .await
                .context("moving the neon extension to schema neon")?;
        }
    }
    if version(client).await?.is_none() {
        return Ok(NeonExtension::NotInstalled);
    }
    if let Err(e) = client.batch_execute("ALTER EXTENSION neon UPDATE").await {
        warn!("updating the neon extension: {e}");
    }
    let now = version(client).await?.unwrap_or_default();
    info!(version = %now, "the neon extension is installed");
    Ok(NeonExtension::At(now))
}

async fn version(client: &tokio_postgres::Client) -> Result<Option<String>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'neon'",
            &[],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}
