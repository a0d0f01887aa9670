//! Rows 5, 6, 22, 24, 29 and 30 of the reference's acceptance scenarios
//! (`NEON_SCENARIOS.md`), each a test named after its row, and the linger
//! after `/terminate` (row 22's code-derived part).

use crate::common::*;
use crate::fake_pageserver::Behaviour;
use crate::neon_support::*;
use crate::wait::until;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn small_spec() -> Value {
    spec(
        json!([{"name": "bob", "encrypted_password": null}]),
        json!([{"name": "db1", "owner": "bob"}]),
    )
}

/// An LSN `X/Y` as a number, to compare.
fn lsn(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').expect("an LSN is X/Y");
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

/// The value of an unlabelled sample in a Prometheus text.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

#[tokio::test]
async fn neon_scenario_5_compute_ctl_up_has_one_sample() {
    let mut c = Compute::start(Some(small_spec()));
    c.wait_running();
    // Row 4 first: a reconfigure of log_line_prefix.
    let prefix = "%m [%p] [test_compute_reconfigure]: ";
    let mut s = small_spec();
    s["cluster"]["settings"] =
        json!([{"name": "log_line_prefix", "vartype": "string", "value": prefix}]);
    let (code, body) = c.configure(&s).await;
    assert_eq!(code, 200, "{body}");
    let text = c.metrics().await;
    let samples: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("compute_ctl_up"))
        .collect();
    let tag = option_env!("BUILD_TAG").unwrap_or("latest");
    assert_eq!(
        samples,
        vec![format!("compute_ctl_up{{build_tag=\"{tag}\",status=\"running\"}} 1").as_str()],
        "{text}"
    );
}

#[tokio::test]
async fn neon_scenario_6_duplicate_safekeeper_connstring() {
    let c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    // As the reference's cluster_spec.json: no safekeeper_connstrings, the
    // storage in the settings, one safekeeper twice.
    let mut s = small_spec();
    s["cluster"]["settings"] = json!([
        {"name": "neon.safekeepers", "vartype": "string",
         "value": "127.0.0.1:6502,127.0.0.1:6503,127.0.0.1:6501,127.0.0.1:6502"},
        {"name": "neon.tenant_id", "vartype": "string", "value": TENANT},
        {"name": "neon.timeline_id", "vartype": "string", "value": TIMELINE},
        {"name": "neon.pageserver_connstring", "vartype": "string",
         "value": "host=127.0.0.1 port=6400"}
    ]);
    let (code, body) = c.configure(&s).await;
    assert_eq!(code, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("duplicate entry in safekeeper_connstrings: 127.0.0.1:6502"),
        "{error}"
    );
    assert_eq!(c.get("/status").await.1["status"], "empty");
}

/// A running local primary with some WAL written; returns it and the flush
/// LSN a client saw last.
async fn primary_with_wal(linger: Option<&str>) -> (Compute, u64) {
    let mut c = Compute::start_with(Opts {
        spec: Some(small_spec()),
        terminate_linger: linger.map(str::to_string),
        ..Opts::default()
    });
    c.wait_running();
    let client = c.client("db1").await;
    client
        .batch_execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g")
        .await
        .unwrap();
    let seen: String = client
        .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    (c, lsn(&seen))
}

#[tokio::test]
async fn neon_scenario_22_terminate_lsn() {
    // Immediate: the flush LSN, then the exit ~300 ms later (the default linger).
    let (mut c, seen) = primary_with_wal(None).await;
    let (code, body) = c.post("/terminate?mode=immediate", &json!({})).await;
    let answered = Instant::now();
    assert_eq!(code, 200, "{body}");
    assert!(
        lsn(body["lsn"].as_str().unwrap()) >= seen,
        "{body} < {seen:X}"
    );
    assert_eq!(c.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let linger = answered.elapsed();
    assert!(
        linger >= Duration::from_millis(250) && linger < Duration::from_secs(5),
        "exited {linger:?} after the answer"
    );

    // Fast: the shutdown checkpoint, at least what the client saw.
    let (mut c, seen) = primary_with_wal(Some("0")).await;
    let (code, body) = c.post("/terminate", &json!({})).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        lsn(body["lsn"].as_str().unwrap()) >= seen,
        "{body} < {seen:X}"
    );
    assert_eq!(c.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[tokio::test]
async fn neon_scenario_22_a_fast_terminate_lingers_and_answers_201() {
    let (mut c, _) = primary_with_wal(None).await; // the default: 30 s after fast
    let (code, first) = c.post("/terminate?mode=fast", &json!({})).await;
    assert_eq!(code, 200, "{first}");
    // The API answers from the final state.
    let (code, again) = c.post("/terminate", &json!({})).await;
    assert_eq!((code, &again), (201, &first));
    let status = c.get("/status").await.1;
    assert_eq!(status["status"], "terminated", "{status}");
    let (code, body) = c.configure(&small_spec()).await;
    assert_eq!(code, 412, "{body}");
    assert_eq!(body["error"], "invalid compute status: terminated");
    assert!(c.metrics().await.contains("status=\"terminated\"} 1"));
    // A signal during the linger exits at once.
    let t = Instant::now();
    c.signal(15);
    assert_eq!(c.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[tokio::test]
async fn neon_scenario_22_sigterm_exits_without_lingering() {
    let (mut c, _) = primary_with_wal(None).await;
    let t = Instant::now();
    c.signal(15);
    assert_eq!(c.wait_exit(Duration::from_secs(20)).code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(!c.log().contains("the API keeps answering"));
}

#[tokio::test]
async fn neon_scenario_24_downtime_metrics() {
    let mut c = Compute::start(Some(small_spec()));
    c.wait_running();
    let admin = c.client("postgres").await;
    admin
        .batch_execute("CREATE DATABASE test_compute_monitor")
        .await
        .unwrap();
    drop(admin);
    let other = c.client("test_compute_monitor").await;
    other
        .batch_execute("DROP DATABASE postgres WITH (FORCE)")
        .await
        .unwrap();
    until(
        "a current downtime in /metrics",
        Duration::from_secs(60),
        async || {
            let text = c.metrics().await;
            let down = sample(&text, "compute_pg_current_downtime_ms") > 0.0;
            assert!(
                !down || sample(&text, "compute_pg_downtime_ms_total") > 0.0,
                "{text}"
            );
            down
        },
    )
    .await;
    other
        .batch_execute("CREATE DATABASE postgres")
        .await
        .unwrap();
    until(
        "the outage to end in /metrics",
        Duration::from_secs(60),
        async || {
            let text = c.metrics().await;
            let up = sample(&text, "compute_pg_current_downtime_ms") == 0.0;
            assert!(
                !up || sample(&text, "compute_pg_downtime_ms_total") > 0.0,
                "{text}"
            );
            up
        },
    )
    .await;
    assert!(c.log().contains("downtime_info"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_29_locales_on_neon_storage() {
    let ps = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let mut c = start(neon_spec(&ps, json!("Primary")), &pgbin, &[]);
    c.wait_running();
    let client = c.client("postgres").await;
    for name in ["lc_messages", "lc_monetary", "lc_numeric", "lc_time"] {
        let value: String = client
            .query_one("SELECT current_setting($1)", &[&name])
            .await
            .unwrap()
            .get(0);
        assert_eq!(value, "C.UTF-8", "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_30_basebackup_error_in_status() {
    let failpoint = "basebackup-before-control-file failpoint is active";
    let ps = pageserver(Behaviour::ErrorAfterArchive(failpoint.into())).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let spec = neon_spec(&ps, json!("Primary"));
    let c = Compute::start_with(Opts {
        failure_exit_delay: 60,
        ..neon_opts(spec, &pgbin, &["--storage-attempts", "3"])
    });
    let status = c.wait_status("failed", Duration::from_secs(60)).await;
    let error = status["error"].as_str().unwrap();
    // The step, the attempts and the last error.
    assert!(
        error.contains("getting the basebackup")
            && error.contains("failed after 3 attempts")
            && error.contains("basebackup-before-control-file"),
        "{error}"
    );
    // Each failed attempt before the last was logged with its error.
    let retried = c
        .log()
        .lines()
        .filter(|l| {
            l.contains("basebackup failed:") && l.contains("basebackup-before-control-file")
        })
        .count();
    assert_eq!(retried, 2, "{}", c.log());
    assert_eq!(ps.recorded().connections, 3);
}
