//! Prometheus metrics, rendered on demand from the published snapshot, so
//! every figure has one source: the driver's (or the monitor's) own field.

use crate::driver::Snapshot;
use crate::replication::Replication;
use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The build's tag, as the reference reports it in `compute_ctl_up`: the
/// `BUILD_TAG` environment variable at compile time, else `latest`.
pub const BUILD_TAG: &str = match option_env!("BUILD_TAG") {
    Some(tag) => tag,
    None => "latest",
};

/// The Prometheus text exposition of `snap`.
pub fn render(snap: &Snapshot, build_tag: &str) -> String {
    let registry = Registry::new();
    // Registering fresh collectors in a fresh registry cannot fail except on
    // programming errors (duplicate names), which the tests would catch.
    let result = fill(&registry, snap, build_tag);
    if let Err(e) = result {
        tracing::error!("rendering metrics: {e}");
    }
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn fill(registry: &Registry, snap: &Snapshot, build_tag: &str) -> prometheus::Result<()> {
    // As the reference: one sample, labelled with the current status.
    let up = IntGaugeVec::new(
        Opts::new("compute_ctl_up", "Compute is up, with its current status"),
        &["build_tag", "status"],
    )?;
    up.with_label_values(&[build_tag, snap.compute_status.into()])
        .set(1);
    registry.register(Box::new(up))?;

    let transitions = IntCounterVec::new(
        Opts::new(
            "compute_ctl_transitions_total",
            "State transitions taken since start",
        ),
        &["from", "to"],
    )?;
    for ((from, to), n) in &snap.transitions {
        let (from, to): (&str, &str) = ((*from).into(), (*to).into());
        transitions.with_label_values(&[from, to]).inc_by(*n);
    }
    registry.register(Box::new(transitions))?;

    let startup = IntGaugeVec::new(
        Opts::new(
            "compute_ctl_startup_ms",
            "Duration of the startup steps, in milliseconds",
        ),
        &["step"],
    )?;
    let t = &snap.timings;
    for (step, ms) in [
        ("wait_for_spec", t.wait_for_spec_ms),
        ("sync_safekeepers", t.sync_safekeepers_ms),
        ("basebackup", t.basebackup_ms),
        ("start_postgres", t.start_postgres_ms),
        ("config", t.config_ms),
        ("total_startup", t.total_startup_ms),
    ] {
        startup.with_label_values(&[step]).set(ms as i64);
    }
    registry.register(Box::new(startup))?;

    let bytes = IntGauge::new(
        "compute_ctl_basebackup_bytes",
        "Size of the basebackup received",
    )?;
    bytes.set(t.basebackup_bytes as i64);
    registry.register(Box::new(bytes))?;

    let last_active = IntGauge::new(
        "compute_ctl_last_active_seconds",
        "Unix time of the last user activity (0 before any)",
    )?;
    last_active.set(snap.last_active.map(|t| t.timestamp()).unwrap_or(0));
    registry.register(Box::new(last_active))?;

    // The reference's names for the time postgres did not answer while the
    // compute should have served: the current outage and all outages.
    let current = IntGauge::new(
        "compute_pg_current_downtime_ms",
        "Milliseconds of the current outage of postgres (0 while it answers)",
    )?;
    current.set(snap.pg_current_downtime.as_millis() as i64);
    registry.register(Box::new(current))?;
    let total = prometheus::IntCounter::new(
        "compute_pg_downtime_ms_total",
        "Milliseconds postgres was found down while the compute should have served",
    )?;
    total.inc_by(snap.pg_downtime.as_millis() as u64);
    registry.register(Box::new(total))?;

    if let Some(r) = &snap.replication {
        replication(registry, r)?;
    }

    edge(registry, &snap.edge.status())?;
    crate::catalog::stats::register(registry)?;
    crate::extensions::register(registry)?;
    crate::installed_extensions::register(registry)?;
    crate::storage::lease::register(registry)?;
    crate::extensions::register(registry)?;
    Ok(())
}

/// The edge: the served TLS certificate's remaining life and the rotations.
fn edge(registry: &Registry, status: &crate::edge::EdgeStatus) -> prometheus::Result<()> {
    if let Some(tls) = &status.tls {
        if let Some(not_after) = tls.cert_not_after {
            let g = IntGauge::new(
                "compute_ctl_tls_cert_expiry_seconds",
                "Seconds until the certificate postgres serves expires (negative once expired)",
            )?;
            g.set((not_after - chrono::Utc::now()).num_seconds());
            registry.register(Box::new(g))?;
        }
        let rotations = IntCounterVec::new(
            Opts::new(
                "compute_ctl_tls_rotations_total",
                "Certificate rotations seen: applied by a reload, or rejected (the old pair kept)",
            ),
            &["result"],
        )?;
        rotations
            .with_label_values(&["applied"])
            .inc_by(tls.rotations);
        rotations
            .with_label_values(&["rejected"])
            .inc_by(tls.rejected);
        registry.register(Box::new(rotations))?;
    }
    {
        use std::sync::atomic::Ordering::Relaxed;
        let lines = IntCounterVec::new(
            Opts::new(
                "compute_ctl_logs_export_lines_total",
                "Postgres log lines forwarded to logs_export_host (sent), or dropped with the queue full",
            ),
            &["result"],
        )?;
        lines
            .with_label_values(&["sent"])
            .inc_by(crate::edge::export::SENT.load(Relaxed));
        lines
            .with_label_values(&["dropped"])
            .inc_by(crate::edge::export::DROPPED.load(Relaxed));
        registry.register(Box::new(lines))?;
    }
    if let Some(a) = &status.audit {
        // The reference's name and type.
        let size = Gauge::new(
            "compute_audit_log_dir_size",
            "Bytes of the log files in PGDATA/log (the audit files)",
        )?;
        size.set(a.dir_size as f64);
        registry.register(Box::new(size))?;
        let records = IntCounterVec::new(
            Opts::new(
                "compute_ctl_audit_records_total",
                "Audit records forwarded to the collector (sent), or dropped with the queue full",
            ),
            &["result"],
        )?;
        records.with_label_values(&["sent"]).inc_by(a.sent);
        records.with_label_values(&["dropped"]).inc_by(a.dropped);
        registry.register(Box::new(records))?;
    }
    if let Some(p) = &status.pgbouncer {
        let counters = [
            (
                "compute_ctl_pgbouncer_apply_failures_total",
                "pgbouncer configurations (the spec's settings, TLS) that failed to apply",
                p.failures,
            ),
            (
                "compute_ctl_pgbouncer_restarts_total",
                "Restarts of the pgbouncer compute_ctl runs (--pgbouncer) after it exited",
                p.restarts,
            ),
        ];
        for (name, help, n) in counters {
            let c = prometheus::IntCounter::new(name, help)?;
            c.inc_by(n);
            registry.register(Box::new(c))?;
        }
        if p.supervised {
            let up = IntGauge::new(
                "compute_ctl_pgbouncer_up",
                "1 while the pgbouncer compute_ctl runs (--pgbouncer) is running",
            )?;
            up.set(i64::from(p.pid.is_some()));
            registry.register(Box::new(up))?;
        }
    }
    Ok(())
}

/// A replica's positions and lag, or a primary's standbys and theirs.
fn replication(registry: &Registry, r: &Replication) -> prometheus::Result<()> {
    match r {
        Replication::Standby(s) => {
            let gauges: [(&str, &str, Option<f64>); 5] = [
                (
                    "compute_replication_lag_bytes",
                    "WAL not yet replayed by this replica, in bytes",
                    s.lag_bytes.map(|b| b as f64),
                ),
                (
                    "compute_replication_lag_seconds",
                    "Age of the last transaction this replica replayed (0 when caught up)",
                    s.lag_seconds,
                ),
                (
                    "compute_replication_receive_lsn",
                    "Last WAL position this replica received, as a number",
                    s.receive_lsn.map(|l| l.0 as f64),
                ),
                (
                    "compute_replication_replay_lsn",
                    "Last WAL position this replica replayed, as a number",
                    s.replay_lsn.map(|l| l.0 as f64),
                ),
                (
                    "compute_replication_streaming",
                    "1 while this replica's WAL receiver streams from its primary",
                    Some(if s.streaming { 1.0 } else { 0.0 }),
                ),
            ];
            for (name, help, value) in gauges {
                // A value not known yet is no sample rather than a made-up 0.
                if let Some(v) = value {
                    let g = Gauge::new(name, help)?;
                    g.set(v);
                    registry.register(Box::new(g))?;
                }
            }
        }
        Replication::Primary { standbys } => {
            let count = IntGauge::new(
                "compute_replication_standbys",
                "Standbys streaming from this primary",
            )?;
            count.set(standbys.len() as i64);
            registry.register(Box::new(count))?;
            let labels = ["application_name", "client_addr"];
            let bytes = GaugeVec::new(
                Opts::new(
                    "compute_replication_standby_lag_bytes",
                    "WAL a standby has not replayed yet, in bytes",
                ),
                &labels,
            )?;
            let seconds = GaugeVec::new(
                Opts::new(
                    "compute_replication_standby_replay_lag_seconds",
                    "A standby's replay lag, in seconds",
                ),
                &labels,
            )?;
            for s in standbys {
                let values = [
                    s.application_name.as_str(),
                    s.client_addr.as_deref().unwrap_or(""),
                ];
                if let Some(b) = s.lag_bytes {
                    bytes.with_label_values(&values).set(b as f64);
                }
                if let Some(l) = s.replay_lag_seconds {
                    seconds.with_label_values(&values).set(l);
                }
            }
            registry.register(Box::new(bytes))?;
            registry.register(Box::new(seconds))?;
        }
    }
    Ok(())
}

/// Every metric family `/metrics` can carry, for the generated reference
/// (`docs/metrics.md`): the families rendered from snapshots that fill every
/// optional part (transitions, a replica's replication, a primary's with a
/// standby) and the catalog's figures. A family without a sample is not
/// rendered, so the catalog's counters are given one sample each, in this
/// process: call it only from a process that serves no metrics (a test).
pub fn documented() -> Vec<MetricDoc> {
    use crate::replication::{Standby, StandbyStatus};
    use compute_states::{Lsn, Status};
    crate::catalog::stats::migration_failed(0);
    crate::extensions::count_request("200 OK", "example.tar.zst");
    crate::installed_extensions::set_installed_extensions(
        [(
            crate::installed_extensions::ExtensionKey {
                name: "plpgsql".into(),
                version: "1.0".into(),
                owned_by_superuser: true,
            },
            1,
        )]
        .into(),
    );
    let snapshot = |replication| Snapshot {
        start_time: chrono::Utc::now(),
        tenant: None,
        timeline: None,
        compute_status: crate::driver::ComputeStatus::Running,
        status: Status::Running,
        last_active: None,
        error: None,
        pending_restart: Vec::new(),
        timings: Default::default(),
        lsn: None,
        transitions: vec![((Status::Init, Status::Running), 1)],
        pg_downtime: std::time::Duration::ZERO,
        pg_current_downtime: std::time::Duration::ZERO,
        replication: Some(replication),
        spec: None,
        edge: std::sync::Arc::new(crate::edge::Edge::documented()),
    };
    let standby = Replication::Standby(StandbyStatus {
        receive_lsn: Some(Lsn(1)),
        replay_lsn: Some(Lsn(1)),
        primary_lsn: Some(Lsn(1)),
        lag_bytes: Some(0),
        lag_seconds: Some(0.0),
        streaming: true,
    });
    let primary = Replication::Primary {
        standbys: vec![Standby {
            application_name: "replica".into(),
            client_addr: None,
            state: None,
            sync_state: None,
            sent_lsn: None,
            flush_lsn: None,
            replay_lsn: None,
            lag_bytes: Some(0),
            replay_lag_seconds: Some(0.0),
        }],
    };
    let mut families = std::collections::BTreeMap::new();
    for replication in [standby, primary] {
        let registry = Registry::new();
        if let Err(e) = fill(&registry, &snapshot(replication), BUILD_TAG) {
            tracing::error!("rendering metrics: {e}");
        }
        for family in registry.gather() {
            let kind = match family.get_field_type() {
                prometheus::proto::MetricType::COUNTER => "counter",
                prometheus::proto::MetricType::GAUGE => "gauge",
                prometheus::proto::MetricType::SUMMARY => "summary",
                prometheus::proto::MetricType::HISTOGRAM => "histogram",
                prometheus::proto::MetricType::UNTYPED => "untyped",
            };
            let labels = family
                .get_metric()
                .first()
                .map(|m| m.get_label().iter().map(|l| l.name().to_string()).collect())
                .unwrap_or_default();
            families.insert(
                family.name().to_string(),
                MetricDoc {
                    name: family.name().to_string(),
                    kind,
                    labels,
                    help: family.help().to_string(),
                },
            );
        }
    }
    families.into_values().collect()
}

/// One metric family as the reference documents it.
#[derive(Debug, Clone)]
pub struct MetricDoc {
    /// Its name, e.g. `compute_ctl_up`.
    pub name: String,
    /// `counter`, `gauge`, ...
    pub kind: &'static str,
    /// Its label names, in order.
    pub labels: Vec<String>,
    /// Its help text.
    pub help: String,
}
