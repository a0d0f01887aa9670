//! Promoting a vanilla replica (`POST /promote`) and the replication status
//! of a replica and of its primary (`/status`, `/metrics`, `/readyz?lag=`)
//! (issue 14), against a real primary and replica.

use crate::common::*;
use crate::wait::until;
use serde_json::{json, Value};
use std::time::Duration;

fn primary_spec(roles: Value) -> Value {
    let mut s = spec(roles, json!([{"name": "db1", "owner": "bob"}]));
    s["cluster"]["settings"] =
        json!([{"name": "listen_addresses", "value": "127.0.0.1", "vartype": "string"}]);
    s
}

/// A primary with role bob and database db1, and a vanilla replica of it,
/// streaming over loopback as bob (with a password, as over any network).
fn primary_and_replica(replica_args: &[&str]) -> (Compute, Compute) {
    let bob = postgres_protocol::password::scram_sha_256(b"bob-pw");
    let mut primary = Compute::start(Some(primary_spec(
        json!([{"name": "bob", "encrypted_password": bob}]),
    )));
    primary.wait_running();
    let mut replica_spec = replica_spec_of(&primary, "the_replica");
    replica_spec["primary_connstring"] = json!(format!(
        "host=127.0.0.1 port={} user=bob password=bob-pw application_name=the_replica",
        primary.port
    ));
    let mut replica = Compute::start_with(Opts {
        spec: Some(replica_spec),
        extra_args: replica_args.iter().map(|a| a.to_string()).collect(),
        ..Opts::default()
    });
    replica.wait_running();
    (primary, replica)
}

async fn promote(c: &Compute, spec: &Value, lsn: &str) -> (u16, Value) {
    c.post("/promote", &json!({"spec": spec, "wal_flush_lsn": lsn}))
        .await
}

async fn in_recovery(c: &Compute) -> bool {
    c.client("postgres")
        .await
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_replica_has_the_data_and_takes_writes() {
    let (mut primary, mut replica) = primary_and_replica(&[]);
    let p = primary.client("db1").await;
    p.batch_execute("CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 100)")
        .await
        .unwrap();
    let r = replica.client("db1").await;
    // The table arrives by replication too.
    wait_for_count(
        &r,
        "SELECT count(*) FROM pg_class WHERE relname = 't'",
        1,
        Duration::from_secs(30),
        "the replica never saw the table",
    )
    .await;
    wait_for_count(
        &r,
        "SELECT count(*) FROM t",
        100,
        Duration::from_secs(30),
        "the replica never saw the rows",
    )
    .await;

    // Replication status, from both ends.
    until(
        "the replica reports streaming",
        Duration::from_secs(30),
        async || replica.get("/status").await.1["replication"]["streaming"] == true,
    )
    .await;
    let status = replica.get("/status").await.1["replication"].clone();
    assert_eq!(status["role"], "standby", "{status}");
    assert!(status["receive_lsn"].is_string(), "{status}");
    assert!(status["replay_lsn"].is_string(), "{status}");
    assert!(status["lag_bytes"].is_u64(), "{status}");
    assert!(status["lag_seconds"].is_number(), "{status}");
    until(
        "the primary lists its standby",
        Duration::from_secs(30),
        async || {
            let status = primary.get("/status").await.1;
            let standby = &status["replication"]["standbys"][0];
            // Its positions come with its first feedback.
            standby["application_name"] == "the_replica" && standby["lag_bytes"].is_u64()
        },
    )
    .await;
    let standby = primary.get("/status").await.1["replication"]["standbys"][0].clone();
    assert_eq!(standby["state"], "streaming", "{standby}");
    assert_eq!(standby["client_addr"], "127.0.0.1", "{standby}");
    assert!(standby["replay_lsn"].is_string(), "{standby}");
    let text = replica.metrics().await;
    assert!(text.contains("compute_replication_streaming 1"), "{text}");
    assert!(text.contains("compute_replication_lag_bytes "), "{text}");
    assert!(text.contains("compute_replication_lag_seconds "), "{text}");
    let text = primary.metrics().await;
    assert!(text.contains("compute_replication_standbys 1"), "{text}");
    assert!(
        text.contains("compute_replication_standby_lag_bytes{application_name=\"the_replica\""),
        "{text}"
    );

    // As the reference's control plane does: stop the primary, promote the
    // replica up to the primary's last LSN.
    p.batch_execute("INSERT INTO t VALUES (101)").await.unwrap();
    drop(p);
    let (code, body) = into_pair(http().post(primary.url("/terminate")).send().await).await;
    assert_eq!(code, 200, "{body}");
    let lsn = body["lsn"].as_str().expect("a primary's LSN").to_string();
    primary.wait_exit(Duration::from_secs(30));
    // Its primary gone, the replica does not stream: its lag is unknown.
    until(
        "the replica sees its primary gone",
        Duration::from_secs(30),
        async || replica.get("/readyz?lag=100000000").await.0 == 503,
    )
    .await;
    // /status has it from the monitor's next look.
    until(
        "/status says the replica is not streaming",
        Duration::from_secs(30),
        async || replica.get("/status").await.1["replication"]["streaming"] == false,
    )
    .await;

    let new_spec = primary_spec(json!([
        {"name": "bob", "encrypted_password": null},
        {"name": "carol", "encrypted_password": null}
    ]));
    let pid = replica.postmaster_pid();
    let (code, body) = promote(&replica, &new_spec, &lsn).await;
    assert_eq!(code, 200, "{body}");
    // The reference's PromoteState, field for field.
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "lsn_wait_time_ms",
            "pg_promote_time_ms",
            "reconfigure_time_ms",
            "status"
        ],
        "{body}"
    );
    assert_eq!(body["status"], "completed");
    for k in [
        "lsn_wait_time_ms",
        "pg_promote_time_ms",
        "reconfigure_time_ms",
    ] {
        assert!(body[k].is_u64(), "{body}");
    }
    assert_eq!(
        replica.postmaster_pid(),
        pid,
        "promoted in place, not restarted"
    );

    // The rows written on the old primary are here, and it takes writes.
    assert!(!in_recovery(&replica).await);
    let db = replica.client("db1").await;
    let n: i64 = db
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 101);
    db.batch_execute("INSERT INTO t VALUES (102); CREATE TABLE written_after (x int)")
        .await
        .unwrap();
    // The catalog was reconciled with the new spec.
    let carol: i64 = db
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname = 'carol'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(carol, 1, "the primary's spec was not applied");
    let status = replica.get("/status").await.1;
    assert_eq!(status["status"], "running", "{status}");
    until(
        "the status says primary",
        Duration::from_secs(30),
        async || replica.get("/status").await.1["replication"]["role"] == "primary",
    )
    .await;
    assert!(replica.metrics().await.contains("to=\"promoting\""));

    // A second promote of what is now a primary: completed, nothing done.
    let (code, again) = promote(&replica, &new_spec, &lsn).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(
        again, body,
        "a repeated promote answers the promotion's figures"
    );
    assert_eq!(replica.postmaster_pid(), pid);
    // A new spec is now a primary's: /configure takes it.
    let (code, body) = replica.configure(&new_spec).await;
    assert_eq!(code, 200, "{body}");

    // Terminated, it answers the LSN as a primary does.
    let (code, body) = into_pair(http().post(replica.url("/terminate")).send().await).await;
    assert_eq!(code, 200, "{body}");
    assert!(body["lsn"].is_string(), "{body}");
    assert_eq!(replica.wait_exit(Duration::from_secs(30)).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_refused_or_timed_out_leaves_the_replica_as_it_was() {
    let (primary, replica) = primary_and_replica(&["--promote-timeout", "1"]);
    let new_spec = primary_spec(json!([{"name": "bob", "encrypted_password": null}]));

    // Not a primary's spec, or no LSN: 400, nothing changed.
    let mut replica_spec = new_spec.clone();
    replica_spec["mode"] = json!("Replica");
    replica_spec["primary_connstring"] = json!(format!("host=127.0.0.1 port={}", primary.port));
    let (code, body) = promote(&replica, &replica_spec, "0/0").await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("mode"), "{body}");
    let (code, body) = promote(&replica, &new_spec, "not an lsn").await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("wal_flush_lsn"),
        "{body}"
    );
    let (code, body) = replica.post("/promote", &json!({"spec": new_spec})).await;
    assert_eq!(code, 400, "{body}");

    // WAL that will never come: 408 once the timeout is over; still a replica.
    let (code, body) = promote(&replica, &new_spec, "FF/0").await;
    assert_eq!(code, 408, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("FF/0") && error.contains("still a replica"),
        "{error}"
    );
    assert!(in_recovery(&replica).await);
    assert_eq!(replica.get("/status").await.1["status"], "running");
    // Still following its primary.
    let p = primary.client("db1").await;
    p.batch_execute("CREATE TABLE later (n int); INSERT INTO later VALUES (1)")
        .await
        .unwrap();
    let r = replica.client("db1").await;
    wait_for_count(
        &r,
        "SELECT count(*) FROM pg_class WHERE relname = 'later'",
        1,
        Duration::from_secs(30),
        "the replica stopped following its primary",
    )
    .await;
    wait_for_count(
        &r,
        "SELECT count(*) FROM later",
        1,
        Duration::from_secs(30),
        "the replica stopped following its primary",
    )
    .await;

    // A primary's spec that cannot be applied: promoted, then Failed with
    // postgres serving (as a failed reconfiguration); a good spec recovers.
    let mut bad = new_spec.clone();
    bad["cluster"]["databases"] = json!([{"name": "db2", "owner": "nobody_14"}]);
    let (code, body) = promote(&replica, &bad, "0/0").await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("promoted, but") && error.contains("nobody_14"),
        "{error}"
    );
    let status = replica.get("/status").await.1;
    assert_eq!(status["status"], "failed", "{status}");
    assert!(!in_recovery(&replica).await, "postgres was promoted");
    let (code, body) = replica.configure(&new_spec).await;
    assert_eq!(code, 200, "{body}");
    replica
        .client("db1")
        .await
        .batch_execute("INSERT INTO later VALUES (2)")
        .await
        .unwrap();

    // A compute without a spec has nothing to promote: 412.
    let empty = Compute::start(None);
    empty.wait_status("empty", Duration::from_secs(20)).await;
    let (code, body) = promote(&empty, &new_spec, "0/0").await;
    assert_eq!(code, 412, "{body}");
    assert!(body["error"].as_str().unwrap().contains("empty"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_during_a_promotion_terminates_the_compute() {
    let (_primary, mut replica) = primary_and_replica(&["--promote-timeout", "60"]);
    let new_spec = primary_spec(json!([{"name": "bob", "encrypted_password": null}]));
    // WAL that will never come: the promotion waits.
    let url = replica.url("/promote");
    let call = tokio::spawn(async move {
        into_pair(
            http()
                .post(url)
                .json(&json!({"spec": new_spec, "wal_flush_lsn": "FF/0"}))
                .send()
                .await,
        )
        .await
    });
    replica.wait_for_log("to=promoting", Duration::from_secs(30));
    // Other requests wait their turn: 412 meanwhile.
    let (code, body) = replica.configure(&spec(json!([]), json!([]))).await;
    assert_eq!(code, 412, "{body}");
    replica.signal(15);
    assert_eq!(replica.wait_exit(Duration::from_secs(60)).code(), Some(0));
    let log = replica.log();
    assert!(
        log.contains("from=promoting to=termination_pending"),
        "{log}"
    );
    let (code, body) = call.await.unwrap();
    assert_eq!(code, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("termination"),
        "{body}"
    );
}
