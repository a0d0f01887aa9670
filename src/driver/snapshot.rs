//! What the driver publishes: the snapshot everyone else reads (status,
//! error, activity, downtime, the spec in effect) and the startup timings
//! `/metrics.json` reports; and the driver's own facts ([`Facts`]), which
//! it keeps beside its state and publishes with it. The driver never reads
//! the snapshot back: what it needs to know is in its state or its facts.

use super::ComputeStatus;
use crate::spec::ValidSpec;
use chrono::{DateTime, Utc};
use compute_states::{Lsn, Status};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Startup timings, as `/metrics.json` reports them: every field of the
/// reference's `ComputeMetrics`, in its order; a step this compute does not
/// take reports 0.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// From process start until a spec was available.
    pub wait_for_spec_ms: u64,
    /// The reference's check whether the safekeepers are already in sync
    /// (no such step here: always 0).
    pub sync_sk_check_ms: u64,
    /// Safekeeper sync (remote storage only).
    pub sync_safekeepers_ms: u64,
    /// Time to connect to the pageserver for the basebackup, in microseconds.
    pub pageserver_connect_micros: u64,
    /// Basebackup download (remote storage only).
    pub basebackup_ms: u64,
    /// Basebackup size in bytes (remote storage only).
    pub basebackup_bytes: u64,
    /// Postgres start, until it accepted connections (recovery included).
    pub start_postgres_ms: u64,
    /// Catalog reconciliation.
    pub config_ms: u64,
    /// From the spec to Running.
    pub total_startup_ms: u64,
    /// Remote extensions' control files and preload libraries, before postgres starts.
    pub load_ext_ms: u64,
    /// Remote extensions' archives downloaded at start (or found downloaded).
    pub num_ext_downloaded: u64,
    /// Largest remote extension's archive downloaded at start, in bytes.
    pub largest_ext_size: u64,
    /// Bytes of remote extensions' archives downloaded at start.
    pub total_ext_download_size: u64,
}

/// What the driver publishes after every transition (and the monitor updates).
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// When compute_ctl started.
    pub start_time: DateTime<Utc>,
    /// The spec's tenant, if any.
    pub tenant: Option<String>,
    /// The spec's timeline, if any.
    pub timeline: Option<String>,
    /// The current state, as the API names it (`status` in `/status`).
    #[serde(rename = "status")]
    pub compute_status: ComputeStatus,
    /// The current typed state.
    #[serde(skip)]
    pub status: Status,
    /// Last user activity (from the activity monitor).
    pub last_active: Option<DateTime<Utc>>,
    /// Why the compute failed, when it did.
    pub error: Option<String>,
    /// Settings changed by the last configuration that take effect only after a restart.
    pub pending_restart: Vec<String>,
    /// Startup timings.
    #[serde(skip)]
    pub timings: Timings,
    /// The final LSN once terminated.
    #[serde(skip)]
    pub lsn: Option<Lsn>,
    /// Transitions taken so far, as (from, to) pairs with counts.
    #[serde(skip)]
    pub transitions: Vec<((Status, Status), u64)>,
    /// Time postgres was found down by the monitor while it should have served.
    #[serde(skip)]
    pub pg_downtime: Duration,
    /// The part of it in the current outage (zero while postgres answers).
    #[serde(skip)]
    pub pg_current_downtime: Duration,
    /// Replication as the monitor last read it while Running (a replica's
    /// positions and lag, or a primary's standbys); null otherwise.
    pub replication: Option<crate::replication::Replication>,
    /// The spec in effect (roles and databases for `/dbs_and_roles`).
    #[serde(skip)]
    pub spec: Option<Arc<ValidSpec>>,
    /// The edge (TLS): written by its own tasks, shown as it is now.
    #[serde(flatten)]
    pub edge: Arc<crate::edge::Edge>,
}

/// What the driver knows besides its state: kept by the driver, published
/// with the state by `Driver::publish`, the snapshot's one writer (but for
/// the monitor's fields).
#[derive(Debug, Clone, Default)]
pub(super) struct Facts {
    /// The spec's tenant, if any.
    pub tenant: Option<String>,
    /// The spec's timeline, if any.
    pub timeline: Option<String>,
    /// The last error, until the compute runs again.
    pub error: Option<String>,
    /// Settings changed by the last configuration that need a restart.
    pub pending_restart: Vec<String>,
    /// Startup timings.
    pub timings: Timings,
    /// Transitions taken so far, as (from, to) pairs with counts.
    pub transitions: Vec<((Status, Status), u64)>,
    /// Whether a spec has arrived yet (`wait_for_spec_ms` is taken once).
    pub spec_seen: bool,
    /// Whether a refresh can be asked for, and one waiting for the work
    /// under way; not published.
    pub refresh: super::refresh::RefreshAsk,
    /// When the spec source was last read by a refresh; not published.
    pub last_refresh: Option<std::time::Instant>,
    /// The figures of the last promotion (what a repeated `/promote`
    /// answers); not published.
    pub last_promotion: Option<super::PromoteTimings>,
}
