//! A static compute's LSN lease. A static compute reads its pages as of a
//! fixed LSN, and the pageserver garbage-collects pages older than its GC
//! cutoff unless someone holds a lease on that LSN. So while a static
//! compute lives, it asks every pageserver of every shard for a lease
//! (`lease lsn <tenant shard> <timeline> <lsn> `, as the reference does),
//! and renews it well before it ends: after `max(d - 60 s, d / 2)` of a
//! lease valid for `d`.
//!
//! Errors (a pageserver away, a garbled answer) are retried after a pause
//! growing from 500 ms by half each time, up to a minute, for ever. A
//! `valid_until` of NULL means the LSN is already behind the GC cutoff: that
//! is permanent, so it is reported (an error in the log, and the metric) and
//! not asked again. Every renewal is logged and counted
//! (`compute_ctl_lsn_lease_requests_total`, `compute_ctl_lsn_lease_valid_until_seconds`).

use crate::secret::Secret;
use crate::spec::{ComputeMode, ValidSpec};
use anyhow::{anyhow, bail, Context, Result};
use compute_states::Lsn;
use parking_lot::Mutex;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One pageserver to ask, for one shard.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardLease {
    /// The tenant id, with `-<NN><CC>` (shard number and count in hex)
    /// when the tenant is sharded.
    pub tenant_shard: String,
    /// The pageserver's libpq URL.
    pub url: Secret,
}

/// What a static compute holds a lease on, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseTarget {
    /// Every pageserver of every shard.
    pub shards: Vec<ShardLease>,
    /// The timeline.
    pub timeline: String,
    /// The LSN the compute reads at.
    pub lsn: Lsn,
    /// Sent as the password.
    pub token: Option<Secret>,
}

impl LeaseTarget {
    /// The lease `spec` needs: only a static compute on Neon storage has one.
    pub fn of(spec: &ValidSpec) -> Option<LeaseTarget> {
        let ComputeMode::Static(lsn) = spec.mode else {
            return None;
        };
        let tenant = spec.tenant_id.as_deref()?;
        let timeline = spec.timeline_id.clone()?;
        let shard_id = |number: usize, count: usize| match count {
            0 => tenant.to_string(),
            _ => format!("{tenant}-{number:02x}{count:02x}"),
        };
        let mut shards = Vec::new();
        if let Some(info) = &spec.pageserver_connection_info {
            // Every pageserver listed for each shard, as the reference asks.
            let count = usize::from(info.shard_count);
            for number in 0..count.max(1) {
                let key = format!("{number:02x}{count:02x}");
                let pageservers = info.shards.get(&key).map(|s| s.pageservers.as_slice());
                for ps in pageservers.unwrap_or_default() {
                    if let Some(url) = &ps.libpq_url {
                        shards.push(ShardLease {
                            tenant_shard: shard_id(number, count),
                            url: url.clone(),
                        });
                    }
                }
            }
        } else {
            let urls: Vec<&str> = spec
                .pageserver_connstring
                .as_ref()?
                .expose()
                .split(',')
                .collect();
            let count = if urls.len() > 1 { urls.len() } else { 0 };
            for (number, url) in urls.into_iter().enumerate() {
                shards.push(ShardLease {
                    tenant_shard: shard_id(number, count),
                    url: Secret::new(url.trim()),
                });
            }
        }
        Some(LeaseTarget {
            shards,
            timeline,
            lsn,
            token: spec.storage_auth_token.clone(),
        })
    }
}

/// How long one pageserver may take to answer a lease request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The first pause after a failed attempt; each next one is half again as long.
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// The longest pause between failed attempts.
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// Holds the lease for as long as the future runs (the driver aborts it
/// when the compute ends or its storage changes). Returns only when the
/// lease cannot be had (the LSN is behind the GC cutoff).
pub async fn keep(target: LeaseTarget) {
    let mut failures: i32 = 0;
    loop {
        match acquire(&target).await {
            Ok(Some(valid_until)) => {
                failures = 0;
                count("granted");
                let until = valid_until
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                FIGURES.lock().valid_until = i64::try_from(until).unwrap_or(i64::MAX);
                let left = valid_until
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                let sleep = left.saturating_sub(Duration::from_secs(60)).max(left / 2);
                tracing::info!(
                    lsn = %target.lsn,
                    valid_for_s = left.as_secs(),
                    renew_in_s = sleep.as_secs(),
                    "LSN lease granted"
                );
                tokio::time::sleep(sleep).await;
            }
            Ok(None) => {
                count("refused");
                FIGURES.lock().valid_until = 0;
                tracing::error!(
                    lsn = %target.lsn,
                    "the pageserver refused the LSN lease: the LSN is behind its GC cutoff, so \
                     the pages this static compute reads may be garbage-collected; not asked again"
                );
                return;
            }
            Err(e) => {
                count("error");
                failures = failures.saturating_add(1);
                let pause = FIRST_PAUSE
                    .mul_f64(1.5f64.powi(failures - 1))
                    .min(MAX_PAUSE);
                tracing::warn!(
                    attempt = failures,
                    pause_ms = pause.as_millis() as u64,
                    "acquiring the LSN lease: {e:#}"
                );
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// One round: a lease from every pageserver. `None` when any refuses it;
/// else the earliest expiry.
async fn acquire(target: &LeaseTarget) -> Result<Option<SystemTime>> {
    if target.shards.is_empty() {
        bail!("no pageserver with a libpq URL to ask");
    }
    let mut earliest: Option<SystemTime> = None;
    for shard in &target.shards {
        let asked = tokio::time::timeout(REQUEST_TIMEOUT, request(target, shard))
            .await
            .map_err(|_| anyhow!("no answer within {REQUEST_TIMEOUT:?}"))
            .and_then(|r| r)
            .with_context(|| {
                format!(
                    "asking {} for a lease on {}",
                    crate::secret::mask_connstring(shard.url.expose()),
                    shard.tenant_shard
                )
            })?;
        match asked {
            None => return Ok(None),
            Some(until) => earliest = Some(earliest.map_or(until, |e| e.min(until))),
        }
    }
    Ok(earliest)
}

/// `lease lsn` to one pageserver: the lease's end, or `None` if refused.
async fn request(target: &LeaseTarget, shard: &ShardLease) -> Result<Option<SystemTime>> {
    let mut config: tokio_postgres::Config = shard
        .url
        .expose()
        .parse()
        .context("invalid pageserver connection string")?;
    if let Some(token) = &target.token {
        config.password(token.expose());
    }
    config.application_name("compute_ctl");
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    let connection = tokio::spawn(connection);
    // The trailing space is the reference's.
    let command = format!(
        "lease lsn {} {} {} ",
        shard.tenant_shard, target.timeline, target.lsn
    );
    let answer = client.simple_query(&command).await;
    drop(client);
    let _ = connection.await;
    let row = answer?
        .into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .context("empty response to lease lsn")?;
    let value = row
        .try_get("valid_until")
        .context("the answer to lease lsn has no valid_until")?;
    let Some(value) = value else {
        return Ok(None);
    };
    let millis: u64 = value
        .trim()
        .parse()
        .with_context(|| format!("valid_until {value:?} is not milliseconds since the epoch"))?;
    Ok(Some(UNIX_EPOCH + Duration::from_millis(millis)))
}

/// What the lease did, for `/metrics`.
struct Figures {
    /// Requests by result: granted, refused, error.
    requests: std::collections::BTreeMap<&'static str, u64>,
    /// When the lease held now ends (seconds since the epoch; 0: none).
    valid_until: i64,
}

static FIGURES: Mutex<Figures> = Mutex::new(Figures {
    requests: std::collections::BTreeMap::new(),
    valid_until: 0,
});

fn count(result: &'static str) {
    *FIGURES.lock().requests.entry(result).or_default() += 1;
}

/// Adds `compute_ctl_lsn_lease_requests_total{result}` and
/// `compute_ctl_lsn_lease_valid_until_seconds`.
pub fn register(registry: &Registry) -> prometheus::Result<()> {
    let figures = FIGURES.lock();
    let requests = IntCounterVec::new(
        Opts::new(
            "compute_ctl_lsn_lease_requests_total",
            "A static compute's LSN lease requests, by result (granted, refused, error)",
        ),
        &["result"],
    )?;
    for (result, n) in &figures.requests {
        requests.with_label_values(&[result]).inc_by(*n);
    }
    registry.register(Box::new(requests))?;
    let until = IntGauge::new(
        "compute_ctl_lsn_lease_valid_until_seconds",
        "When the LSN lease a static compute holds ends (Unix time; 0: none held)",
    )?;
    until.set(figures.valid_until);
    registry.register(Box::new(until))
}
