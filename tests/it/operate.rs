//! Operating a running compute (issue 14): `POST /restart`, and
//! `--suspend-when-idle` (scale to zero without a control plane).

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn small_spec() -> Value {
    spec(
        json!([{"name": "bob", "encrypted_password": null}]),
        json!([{"name": "db1", "owner": "bob"}]),
    )
}

async fn restart(c: &Compute, query: &str) -> (u16, Value) {
    into_pair(http().post(c.url(&format!("/restart{query}"))).send().await).await
}

#[tokio::test]
async fn restart_applies_a_pending_setting_and_keeps_the_data() {
    let mut c = Compute::start(Some(small_spec()));
    c.wait_running();
    let db = c.client("postgres").await;
    db.batch_execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (1), (2), (3)")
        .await
        .unwrap();
    drop(db);
    let before = c.postmaster_pid().expect("postmaster pid");

    // Nothing pending: only_if_pending leaves postgres alone.
    let (code, body) = restart(&c, "?only_if_pending=true").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "running");
    assert_eq!(
        c.postmaster_pid(),
        Some(before),
        "restarted with nothing pending"
    );

    let mut s = small_spec();
    s["cluster"]["settings"] =
        json!([{"name": "shared_buffers", "value": "64MB", "vartype": "string"}]);
    let (code, body) = c.configure(&s).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["pending_restart"], json!(["shared_buffers"]));

    let (code, body) = restart(&c, "?only_if_pending=true").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "running");
    assert_eq!(body["pending_restart"], json!([]));
    assert_eq!(c.get("/status").await.1["pending_restart"], json!([]));
    let after = c.postmaster_pid().expect("postmaster pid after restart");
    assert_ne!(after, before, "postgres was not restarted");

    let db = c.client("postgres").await;
    let sb: String = db
        .query_one("SHOW shared_buffers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sb, "64MB");
    let n: i64 = db
        .query_one("SELECT count(*) FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3, "rows written before the restart are gone");
    // The catalog was re-checked: the spec's role is still there.
    let bob: i64 = db
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname = 'bob'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bob, 1);

    // Dropping the setting again needs a restart too: pending, not an error.
    let (code, body) = c.configure(&small_spec()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["pending_restart"], json!(["shared_buffers"]));

    // The transition is counted under its own state.
    let metrics = http()
        .get(c.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("restarting"), "{metrics}");
}

#[tokio::test]
async fn restart_refuses_bad_input_and_the_wrong_state() {
    let c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(20)).await;
    let (code, body) = restart(&c, "").await;
    assert_eq!(code, 412, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("empty"),
        "{body}"
    );
    let (code, body) = restart(&c, "?only_if_pending=yes").await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("only_if_pending"),
        "{body}"
    );
}

#[tokio::test]
async fn a_restart_whose_postgres_does_not_come_back_fails_with_its_log() {
    let mut c = Compute::start(Some(small_spec()));
    c.wait_running();
    let db = c.client("postgres").await;
    // Valid while running (it needs a restart), fatal at the next start.
    db.batch_execute("ALTER SYSTEM SET shared_preload_libraries = 'no_such_library_14'")
        .await
        .unwrap();
    drop(db);
    let (code, body) = restart(&c, "").await;
    assert_eq!(code, 500, "{body}");
    // Postgres' last log lines are in the error.
    let error = body["error"].as_str().unwrap_or("");
    assert!(error.contains("no_such_library_14"), "{error}");
    // Failed without a postgres: the compute exits 1 once the delay is over.
    assert_eq!(c.wait_exit(Duration::from_secs(30)).code(), Some(1));
}

fn suspending_spec(timeout: i64) -> Value {
    let md5 = postgres_protocol::password::md5(b"pw", "bob");
    let mut s = spec(
        json!([{"name": "bob", "encrypted_password": md5.strip_prefix("md5").unwrap()}]),
        json!([{"name": "db1", "owner": "bob"}]),
    );
    s["suspend_timeout_seconds"] = json!(timeout);
    s["cluster"]["settings"] = json!([
        // An autovacuum worker is activity: keep it out of these tests.
        {"name": "autovacuum", "value": "off", "vartype": "bool"},
        {"name": "listen_addresses", "value": "127.0.0.1", "vartype": "string"}
    ]);
    s
}

fn start_suspending(spec: Value) -> Compute {
    let mut c = Compute::start_with(Opts {
        spec: Some(spec),
        extra_args: vec!["--suspend-when-idle".into()],
        ..Opts::default()
    });
    c.wait_running();
    c
}

#[tokio::test]
async fn an_idle_compute_suspends_itself_though_a_session_stays_connected() {
    // The short timeout comes once the session is there (a slow machine
    // must not suspend the compute before the test has connected).
    let mut c = start_suspending(suspending_spec(-1));
    let bob = connect(&format!("{} password=pw", c.connstr("bob", "db1")))
        .await
        .unwrap();
    bob.batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let (code, body) = c.configure(&suspending_spec(2)).await;
    assert_eq!(code, 200, "{body}");
    // Connected, idle: not activity.
    let status = c.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}", c.log());
    let log = c.log();
    assert!(log.contains("suspending"), "{log}");
    // Terminated as /terminate does: postgres stopped, the LSN recorded.
    assert!(log.contains("compute terminated lsn="), "{log}");
    assert!(c.postmaster_pid().is_none(), "postgres left running");
    drop(bob);
}

#[tokio::test]
async fn a_query_keeps_the_compute_awake_and_the_flag_is_off_by_default() {
    let mut c = start_suspending(suspending_spec(-1));
    let bob = connect(&format!("{} password=pw", c.connstr("bob", "db1")))
        .await
        .unwrap();
    // A query three times the timeout long is activity all along: the
    // compute does not suspend under it (the query would fail).
    let query = tokio::spawn(async move { bob.batch_execute("SELECT pg_sleep(6)").await });
    wait_for_count(
        &c.client("postgres").await,
        "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(6)' AND state = 'active'",
        1,
        Duration::from_secs(30),
        "the query never ran",
    )
    .await;
    let (code, body) = c.configure(&suspending_spec(2)).await;
    assert_eq!(code, 200, "{body}");
    query
        .await
        .unwrap()
        .expect("the compute suspended under a query");
    // Once idle, it suspends.
    assert_eq!(c.wait_exit(Duration::from_secs(60)).code(), Some(0));

    // Without --suspend-when-idle the spec's timeout is the control plane's.
    let off = Compute::start(Some(suspending_spec(1)));
    off.wait_status("running", Duration::from_secs(60)).await;
    // Four times the timeout idle: the test is that it does not suspend.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(off.get("/status").await.1["status"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_streaming_keeps_its_primary_awake() {
    // Never while the standby copies the primary (its time is the machine's).
    let primary = start_suspending(suspending_spec(-1));
    let mut replica_spec = replica_spec_of(&primary, "keeps_awake");
    // -1: never, even with the flag.
    replica_spec["suspend_timeout_seconds"] = json!(-1);
    let mut replica = Compute::start_with(Opts {
        spec: Some(replica_spec),
        extra_args: vec!["--suspend-when-idle".into()],
        ..Opts::default()
    });
    replica.wait_running();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while primary.get("/status").await.1["replication"]["standbys"][0]["state"] != "streaming" {
        assert!(
            std::time::Instant::now() < deadline,
            "the standby never streamed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Now a short timeout, and three times that with nothing but replication.
    let (code, body) = primary.configure(&suspending_spec(2)).await;
    assert_eq!(code, 200, "{body}");
    // The sleep is the test: awake for three times the timeout.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(primary.get("/status").await.1["status"], "running");
    assert_eq!(replica.get("/status").await.1["status"], "running");
    // The standby gone, the primary is idle and suspends.
    let (code, body) = into_pair(http().post(replica.url("/terminate")).send().await).await;
    assert_eq!(code, 200, "{body}");
    let mut primary = primary;
    assert_eq!(primary.wait_exit(Duration::from_secs(60)).code(), Some(0));
}

/// A spec with `dbs` databases: a reconfiguration slow enough to be caught
/// applying its catalog.
fn many_databases(dbs: usize) -> Value {
    let databases: Vec<Value> = (0..dbs)
        .map(|i| json!({"name": format!("db {i}"), "owner": "bob"}))
        .collect();
    spec(
        json!([{"name": "bob", "encrypted_password": null}]),
        json!(databases),
    )
}

/// A `/configure` interrupted by SIGTERM is answered at once with an error
/// naming the termination, not left hanging until the process exits:
/// here compute_ctl cannot exit before the test lets it (the fast stop is
/// held by a stopped checkpointer, with a stop budget longer than the
/// test), and the answer comes meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configure_interrupted_by_sigterm_is_answered_at_once() {
    let mut c = Compute::start_with(Opts {
        spec: Some(small_spec()),
        extra_args: vec!["--stop-timeout".into(), "300".into()],
        ..Opts::default()
    });
    c.wait_running();
    let checkpointer = c.backend_pid("checkpointer").await;
    let url = c.url("/configure");
    let configure = tokio::spawn(async move {
        into_pair(
            http()
                .post(url)
                .json(&json!({"spec": many_databases(80)}))
                .send()
                .await,
        )
        .await
    });
    // The start applied a plan too: wait for the reconfiguration's.
    while c.log().matches("applying the catalog plan").count() < 2 {
        assert!(
            c.child.as_mut().unwrap().try_wait().unwrap().is_none(),
            "{}",
            c.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    send_signal(checkpointer, 19); // SIGSTOP: holds the fast shutdown
    c.signal(15);

    let (code, body) = configure.await.unwrap();
    assert_eq!(code, 500, "{body}\n{}", c.log());
    let text = body.to_string();
    assert!(
        text.contains("termination") && text.contains("interrupted the configuration"),
        "{text}"
    );
    // Answered while compute_ctl still runs: it is stopping postgres.
    assert!(
        c.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "compute_ctl exited before the /configure was answered:\n{}",
        c.log()
    );
    let (_, status) = c.get("/status").await;
    assert_eq!(status["status"], "termination_pending_fast", "{status}");

    send_signal(checkpointer, 18); // SIGCONT: let the stop finish
    let code = c.wait_exit(Duration::from_secs(120)).code();
    assert_eq!(code, Some(0), "{}", c.log());
    assert!(c
        .log()
        .contains("from=configuration to=termination_pending"));
}
