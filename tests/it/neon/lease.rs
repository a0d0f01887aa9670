//! A static compute holds an LSN lease on every pageserver of every shard,
//! renews it before it ends, retries errors with backoff, and reports a
//! refusal (the LSN behind the GC cutoff) once, without asking again.

use crate::common::*;
use crate::fake_pageserver::{initdb_archive, Archive, FakePageserver, Lease, Options};
use crate::neon_support::*;
use serde_json::json;
use std::time::Duration;

const LSN: &str = "0/1000028";

async fn pageserver_leasing(lease: Lease) -> FakePageserver {
    let mut opts = Options::new(Archive::Bytes(initdb_archive()));
    opts.lease = lease;
    FakePageserver::start(opts).await
}

fn leases(ps: &FakePageserver) -> Vec<String> {
    ps.recorded()
        .commands
        .into_iter()
        .filter(|c| c.starts_with("lease lsn "))
        .collect()
}

async fn wait_for_leases(ps: &FakePageserver, n: usize, what: &str) -> Vec<String> {
    crate::wait::until(what, Duration::from_secs(30), async || {
        leases(ps).len() >= n
    })
    .await;
    leases(ps)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_compute_leases_its_lsn_on_every_shard_and_renews_it() {
    // A lease valid for 2 s is renewed after 1 s (half of it, as a lease
    // shorter than two minutes is).
    let shard0 = pageserver_leasing(Lease::Grant(Duration::from_secs(2))).await;
    let shard1 = pageserver_leasing(Lease::Grant(Duration::from_secs(2))).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Hang); // never synced
    let mut spec = neon_spec(&shard0, json!({"Static": LSN}));
    spec["pageserver_connection_info"] = json!({
        "shard_count": 2,
        "stripe_size": 2048,
        "shards": {
            "0002": {"pageservers": [{"libpq_url": shard0.connstring()}]},
            "0102": {"pageservers": [{"libpq_url": shard1.connstring()}]}
        }
    });
    let mut c = start(spec, &pgbin, &[]);
    c.wait_running();
    let first = wait_for_leases(&shard0, 3, "three leases from shard 0").await;
    assert!(
        first
            .iter()
            .all(|l| *l == format!("lease lsn {TENANT}-0002 {TIMELINE} {LSN} ")),
        "{first:?}"
    );
    let second = wait_for_leases(&shard1, 3, "three leases from shard 1").await;
    assert!(
        second
            .iter()
            .all(|l| *l == format!("lease lsn {TENANT}-0102 {TIMELINE} {LSN} ")),
        "{second:?}"
    );
    // The token is the password, as for the basebackup.
    assert!(shard1
        .recorded()
        .passwords
        .iter()
        .all(|p| p == "storage-secret-token"));
    let text = c.metrics().await;
    let granted = metric(
        &text,
        "compute_ctl_lsn_lease_requests_total{result=\"granted\"}",
    );
    assert!(granted.unwrap_or(0.0) >= 3.0, "{text}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let until = metric(&text, "compute_ctl_lsn_lease_valid_until_seconds").unwrap_or(0.0);
    assert!(until > now - 5.0 && until < now + 5.0, "{until} vs {now}");
    c.assert_logged("LSN lease granted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_lease_is_reported_and_not_asked_again() {
    let ps = pageserver_leasing(Lease::Refuse).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Hang);
    let mut c = start(neon_spec(&ps, json!({"Static": LSN})), &pgbin, &[]);
    c.wait_running();
    wait_for_leases(&ps, 1, "the lease request").await;
    c.wait_for_log("refused the LSN lease", Duration::from_secs(30));
    // Idling is the test: a refusal is permanent, so nothing more is asked.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(leases(&ps).len(), 1);
    let text = c.metrics().await;
    assert_eq!(
        metric(
            &text,
            "compute_ctl_lsn_lease_requests_total{result=\"refused\"}"
        ),
        Some(1.0),
        "{text}"
    );
    // The compute keeps serving its data.
    assert_eq!(c.get("/status").await.1["status"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_errors_are_retried_with_backoff() {
    let ps = pageserver_leasing(Lease::FailFirst(2, Duration::from_secs(600))).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Hang);
    let mut c = start(neon_spec(&ps, json!({"Static": LSN})), &pgbin, &[]);
    c.wait_running();
    wait_for_leases(&ps, 3, "two failed lease requests and a granted one").await;
    c.wait_for_log("LSN lease granted", Duration::from_secs(30));
    let log = c.log();
    assert!(
        log.contains("acquiring the LSN lease") && log.contains("attempt=2"),
        "{log}"
    );
    let text = c.metrics().await;
    assert_eq!(
        metric(
            &text,
            "compute_ctl_lsn_lease_requests_total{result=\"error\"}"
        ),
        Some(2.0),
        "{text}"
    );
}
