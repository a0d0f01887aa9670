//! The compute's edge: what stands between postgres and its clients, beyond
//! postgres itself. TLS for clients (`tls`: the pair from
//! `compute_ctl_config.tls` checked and copied into PGDATA; `watch`: a
//! rotation picked up within seconds and applied by a reload).
//!
//! [`Edge`] is set at launch (what the deployment configured: the `-c`
//! file's `compute_ctl_config`, or the control plane's first answer) and
//! holds what the edge last did, which `/status` and the metrics read: the
//! driver puts it in its snapshot as it is, the edge's tasks update it.

pub mod audit;
pub mod export;
pub mod ini;
pub mod pgbouncer;
pub mod ship;
pub mod tls;
pub mod watch;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use std::path::Path;
use tls::{Pair, TlsConfig};

/// The edge's configuration and what it last did.
#[derive(Default)]
pub struct Edge {
    /// `compute_ctl_config.tls` of the first configuration that has one
    /// (the launch file's, or the control plane's first answer; as the
    /// reference, a later configuration's is ignored): see [`Edge::adopt`].
    tls: std::sync::OnceLock<TlsConfig>,
    /// pgbouncer: where its ini is, and whether compute_ctl runs it.
    pub pgbouncer: pgbouncer::PgbouncerConfig,
    /// Where audit records go (`AUDIT_LOGGING_TLS_ENDPOINT`, else
    /// `AUDIT_LOGGING_ENDPOINT`).
    pub audit_endpoint: Option<ship::AuditTarget>,
    /// The pair last copied into PGDATA; held while one is copied, so two
    /// copies never interleave.
    installed: Mutex<Option<Pair>>,
    status: RwLock<EdgeStatus>,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("tls", &self.tls.get())
            .field("status", &*self.status.read())
            .finish_non_exhaustive()
    }
}

/// What `/status` shows of the edge (fields absent when not configured).
#[derive(Debug, Clone, Default, Serialize)]
pub struct EdgeStatus {
    /// TLS for clients, when `compute_ctl_config.tls` is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsStatus>,
    /// pgbouncer, once compute_ctl tuned or ran it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgbouncer: Option<pgbouncer::PgbouncerStatus>,
    /// The shipping of audit records, when an endpoint is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<ship::ShipStatus>,
}

/// The certificate postgres serves, and the rotations seen.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsStatus {
    /// The served certificate's expiry (null until one is served).
    pub cert_not_after: Option<DateTime<Utc>>,
    /// Rotations applied by a reload since the start.
    pub rotations: u64,
    /// Pairs refused (a key that is not the certificate's, an unreadable
    /// file) since the start.
    pub rejected: u64,
    /// Why the last pair seen was refused; null once a good one is served.
    pub last_error: Option<String>,
}

impl Serialize for Edge {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.status.read().serialize(s)
    }
}

impl Edge {
    /// The edge of a launch configuration (`compute_ctl_config`).
    pub fn from_compute_ctl_config(config: Option<&serde_json::Value>) -> Result<Edge> {
        let edge = Edge::default();
        edge.adopt(config)?;
        Ok(edge)
    }

    /// Takes the TLS configuration of a `compute_ctl_config` that arrived
    /// after the launch (the control plane's answer, a refresh): the first
    /// one with `tls` is kept, as the reference keeps its launch's; a later,
    /// different one is ignored with a warning (the watch follows the files,
    /// not their names). A `tls` that is not one is an error, and nothing
    /// is taken.
    pub fn adopt(&self, config: Option<&serde_json::Value>) -> Result<()> {
        let Some(tls) = TlsConfig::from_compute_ctl_config(config)? else {
            return Ok(());
        };
        match self.tls.get() {
            Some(kept) if *kept == tls => {}
            Some(kept) => tracing::warn!(
                kept = ?kept,
                ignored = ?tls,
                "compute_ctl_config.tls names other files than the first configuration's: ignored"
            ),
            None => {
                if self.tls.set(tls).is_ok() {
                    self.status.write().tls.get_or_insert_with(Default::default);
                }
            }
        }
        Ok(())
    }

    /// The TLS configuration, whatever the spec's features.
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.tls.get()
    }

    /// An edge with every part shown, for the generated metrics reference.
    pub fn documented() -> Edge {
        let edge = Edge::default();
        let mut status = edge.status.write();
        status.tls = Some(TlsStatus {
            cert_not_after: Some(Utc::now()),
            ..TlsStatus::default()
        });
        status.audit = Some(ship::ShipStatus::default());
        status.pgbouncer = Some(pgbouncer::PgbouncerStatus {
            supervised: true,
            pid: Some(1),
            ..Default::default()
        });
        drop(status);
        edge
    }

    /// What `/status` and the metrics show.
    pub fn status(&self) -> EdgeStatus {
        self.status.read().clone()
    }

    /// The TLS configuration, when `spec_features` turn it on.
    pub fn tls_for(&self, spec_features: &[String]) -> Option<&TlsConfig> {
        self.tls
            .get()
            .filter(|_| spec_features.iter().any(|f| f == tls::FEATURE))
    }

    /// Reads and checks the pair and copies it into `pgdata` (for a
    /// postgresql.conf that turns TLS on). A pair that is not one is an
    /// error naming both files, and nothing is copied, unless an earlier
    /// pair was served: that one stays (a renewal caught half-way must not
    /// fail a reconfiguration).
    pub fn install_tls(&self, tls: &TlsConfig, pgdata: &Path) -> Result<Pair> {
        let raw = tls.read_raw()?;
        let pair = match self.check(tls, raw) {
            Ok(pair) => pair,
            Err(e) => {
                let Some(previous) = self.installed.lock().clone() else {
                    return Err(e);
                };
                tracing::error!("TLS: keeping the certificate served: {e:#}");
                previous
            }
        };
        self.install(&pair, pgdata)?;
        self.served(&pair, false);
        Ok(pair)
    }

    /// Checks a pair as read; a refusal is counted and shown.
    fn check(&self, tls: &TlsConfig, raw: (Vec<u8>, Vec<u8>)) -> Result<Pair> {
        Pair::check(raw)
            .with_context(|| tls.pair_names())
            .inspect_err(|e| {
                let mut status = self.status.write();
                let t = status.tls.get_or_insert_with(Default::default);
                t.rejected += 1;
                t.last_error = Some(format!("{e:#}"));
            })
    }

    /// Copies `pair` into `pgdata`, one copy at a time.
    fn install(&self, pair: &Pair, pgdata: &Path) -> Result<()> {
        let mut installed = self.installed.lock();
        tls::install(pgdata, pair)?;
        *installed = Some(pair.clone());
        Ok(())
    }

    /// Whether `raw` is what was last copied into PGDATA.
    fn is_installed(&self, raw: &(Vec<u8>, Vec<u8>)) -> bool {
        self.installed.lock().as_ref().is_some_and(|p| p.is(raw))
    }

    /// Records the pair postgres serves now.
    fn served(&self, pair: &Pair, rotated: bool) {
        let mut status = self.status.write();
        let t = status.tls.get_or_insert_with(Default::default);
        t.cert_not_after = Some(pair.not_after);
        t.last_error = None;
        if rotated {
            t.rotations += 1;
        }
    }
}
