//! A certificate rotation, picked up within [`POLL`] and applied by a
//! reload of the postgres serving (never a restart, and no reconfiguration
//! of the compute).
//!
//! Every [`POLL`] both files are read (they are small); when either changed
//! and the pair is not the one in PGDATA, it is checked, copied into PGDATA
//! and postgres reloads (`pg_reload_conf()`): new connections get the new
//! certificate from the same postmaster. A pair that is not one (the key of
//! another certificate, as a renewal written file by file can be for a
//! moment) is refused, logged naming both files and counted; postgres keeps
//! serving the old pair, and the next change is looked at again. While the
//! compute is not serving, nothing is copied: its next start copies the
//! files as they are then. The reference polls the certificate every 60 s
//! and reconfigures the whole compute for each change, and once more right
//! after every start.

use super::Edge;
use crate::driver::{Handle, Request};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often both files are read.
pub const POLL: Duration = Duration::from_secs(1);

/// How long a reload may take to be seen by a new connection.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Watches the pair of `edge.tls` (once there is one: it can come with the
/// control plane's answer, after the launch) for the life of the process.
pub fn spawn(edge: Arc<Edge>, pgdata: PathBuf, handle: Handle) {
    tokio::spawn(async move {
        let mut seen: Option<(Vec<u8>, Vec<u8>)> = None;
        let mut unreadable = false;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if edge.tls().is_none() {
                continue;
            }
            let Some(spec) = handle.snapshot().spec else {
                continue;
            };
            let Some(tls) = edge.tls_for(&spec.features) else {
                continue;
            };
            let files = {
                let tls = tls.clone();
                tokio::task::spawn_blocking(move || tls.read_raw()).await
            };
            let raw = match files {
                Ok(Ok(raw)) => raw,
                Ok(Err(e)) => {
                    if !unreadable {
                        tracing::warn!("TLS rotation: cannot read the pair: {e:#}");
                    }
                    unreadable = true;
                    continue;
                }
                Err(e) => {
                    tracing::warn!("TLS rotation: {e}");
                    continue;
                }
            };
            unreadable = false;
            if seen.as_ref() == Some(&raw) || edge.is_installed(&raw) {
                seen = Some(raw);
                continue;
            }
            let pair = match edge.check(tls, raw.clone()) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::error!(
                        "TLS rotation refused, postgres keeps serving the previous certificate: {e:#}"
                    );
                    seen = Some(raw);
                    continue;
                }
            };
            match apply(&edge, &pair, &pgdata, &handle).await {
                Ok(()) => {
                    edge.served(&pair, true);
                    tracing::info!(
                        cert_not_after = %pair.not_after,
                        "TLS rotation applied: postgres reloaded the new certificate"
                    );
                    seen = Some(raw);
                }
                // Not serving now (starting, reconfiguring, stopping): the
                // next poll tries again, or the next start copies it.
                Err(e) => tracing::info!("TLS rotation postponed: {e:#}"),
            }
        }
    });
}

/// Copies the pair into PGDATA and reloads the postgres serving.
async fn apply(
    edge: &Edge,
    pair: &super::Pair,
    pgdata: &std::path::Path,
    handle: &Handle,
) -> Result<()> {
    let connector = handle
        .request(|reply| Request::Connect { reply })
        .await
        .context("postgres is not serving")?;
    let db = connector.maintenance_db().to_string();
    let client = connector.connect(&db).await?;
    let load_time =
        "SELECT (EXTRACT(epoch FROM pg_catalog.pg_conf_load_time()) * 1000000)::pg_catalog.int8";
    let before: i64 = client.query_one(load_time, &[]).await?.get(0);
    drop(client);
    edge.install(pair, pgdata)?;
    let client = connector.connect(&db).await?;
    client
        .simple_query("SELECT pg_catalog.pg_reload_conf()")
        .await
        .context("asking postgres to reload")?;
    drop(client);
    // A backend forked after the postmaster's reload has its load time,
    // and postgres reloads its TLS files in the same step.
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        let client = connector.connect(&db).await?;
        let now: i64 = client.query_one(load_time, &[]).await?.get(0);
        if now > before {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("postgres did not reload within {RELOAD_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
