//! Operating a running compute: `POST /restart` (issue 14).

mod common;

use common::*;
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
