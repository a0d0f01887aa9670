//! Computes on Neon storage (a test pageserver and a stand-in for
//! `postgres --sync-safekeepers`), and vanilla replicas, end to end.

mod addressing;
mod conf_lines;
mod gate;
mod lease;
mod neon_extension;
mod refresh;
mod scenarios;
mod size_limit;

use crate::common::*;
use crate::fake_pageserver::Behaviour;
use crate::neon_support::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_runs_on_the_streamed_basebackup() {
    let ps = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let mut c = start(neon_spec(&ps, json!("Primary")), &pgbin, &[]);
    c.wait_running();

    let rec = ps.recorded();
    assert_eq!(
        rec.commands,
        vec![format!("basebackup {TENANT} {TIMELINE} {SYNC_LSN} --gzip")]
    );
    assert_eq!(rec.passwords, vec!["storage-secret-token".to_string()]);
    assert!(rec.startup_params[0].contains(&("application_name".into(), "compute_ctl".into())));
    // As the reference, the pageserver is told the compute's mode.
    assert!(
        rec.startup_params[0].contains(&("options".into(), "-c neon.compute_mode=primary".into())),
        "{:?}",
        rec.startup_params[0]
    );
    let sync_log = std::fs::read_to_string(pgbin.with_file_name("state.log")).unwrap();
    assert!(
        sync_log.contains(&format!("PGDATA={}", c.pgdata().display())),
        "{sync_log}"
    );
    assert!(sync_log.contains("TOKEN=storage-secret-token"));

    // It serves the streamed data, reconciled with the spec.
    let owner = c.db_owner("app db").await;
    assert_eq!(owner, "app user");
    let conf = std::fs::read_to_string(c.pgdata().join("postgresql.conf")).unwrap();
    assert!(conf.contains(&format!("neon.tenant_id = '{TENANT}'")));
    assert!(conf.contains("neon.safekeepers = 'sk-1:5454,sk-2:5454'"));
    assert!(!c.pgdata().join("standby.signal").exists());

    let (_, metrics) = c.get("/metrics.json").await;
    assert!(
        metrics["basebackup_bytes"].as_u64().unwrap() > 0,
        "{metrics}"
    );
    // Every field of the reference's ComputeMetrics, real where the step exists.
    for field in [
        "wait_for_spec_ms",
        "sync_sk_check_ms",
        "sync_safekeepers_ms",
        "pageserver_connect_micros",
        "basebackup_ms",
        "basebackup_bytes",
        "start_postgres_ms",
        "config_ms",
        "total_startup_ms",
        "load_ext_ms",
        "num_ext_downloaded",
        "largest_ext_size",
        "total_ext_download_size",
    ] {
        assert!(metrics[field].is_u64(), "{field} missing: {metrics}");
    }
    assert!(
        metrics["pageserver_connect_micros"].as_u64().unwrap() > 0,
        "{metrics}"
    );
    assert!(
        !c.log().contains("storage-secret-token"),
        "the storage token reached the log"
    );
    c.signal(15);
    assert_eq!(c.wait_exit(Duration::from_secs(30)).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_and_static_computes_ask_for_their_basebackup_and_stand_by() {
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Hang); // never called for these
    for (mode, command) in [
        (
            json!("Replica"),
            format!("basebackup {TENANT} {TIMELINE} --gzip --replica"),
        ),
        (
            json!({"Static": "0/1000028"}),
            format!("basebackup {TENANT} {TIMELINE} 0/1000028 --gzip --replica"),
        ),
    ] {
        let ps = pageserver(Behaviour::Normal).await;
        let mut c = start(neon_spec(&ps, mode.clone()), &pgbin, &[]);
        c.wait_running();
        let rec = ps.recorded();
        // (A static compute also leases its LSN, beside the start: see neon::lease.)
        let basebackups: Vec<&String> = rec
            .commands
            .iter()
            .filter(|c| !c.starts_with("lease lsn "))
            .collect();
        assert_eq!(basebackups, vec![&command], "{mode}");
        assert!(c.pgdata().join("standby.signal").exists());
        let client = c.client("postgres").await;
        let show = |name: &'static str| {
            let client = &client;
            async move {
                let row = client.query_one(&format!("SHOW {name}"), &[]).await;
                row.unwrap().get::<_, String>(0)
            }
        };
        let want = if mode.is_string() {
            "replica"
        } else {
            "static"
        };
        assert_eq!(show("neon.compute_mode").await, want);
        let options = (
            "options".to_string(),
            format!("-c neon.compute_mode={want}"),
        );
        // (The basebackup's connection; a static compute's lease has its own.)
        assert!(
            rec.startup_params.iter().any(|p| p.contains(&options)),
            "{mode}"
        );
        if want == "static" {
            // It replays up to its LSN and stops there.
            assert_eq!(show("recovery_target_lsn").await, "0/1000028");
        }
        let in_recovery: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get(0);
        assert!(in_recovery, "{mode}");
        assert!(
            !pgbin.with_file_name("state.log").exists(),
            "a {mode} compute synced safekeepers"
        );
    }
}

async fn fails_with(behaviour: Behaviour, sync: Sync, needle: &str) -> Compute {
    let ps = pageserver(behaviour).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), sync);
    let mut c = start(
        neon_spec(&ps, json!("Primary")),
        &pgbin,
        &["--storage-attempts", "2"],
    );
    let status = c.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{}", c.log());
    let log = c.log();
    assert!(
        log.contains("to=failed") && log.contains(needle),
        "no {needle:?} in:\n{log}"
    );
    assert!(
        !log.contains("postgres is ready"),
        "postgres started on a broken basebackup"
    );
    // Nothing half-made is left to be used: PGDATA is empty.
    let left: Vec<_> = std::fs::read_dir(c.pgdata())
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "PGDATA holds {} entries", left.len());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_after_the_archive_fails_the_start() {
    fails_with(
        Behaviour::ErrorAfterArchive("timeline was deleted meanwhile".into()),
        Sync::Ok,
        "timeline was deleted meanwhile",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_stream_fails_after_retries() {
    let c = fails_with(Behaviour::DropAfter(100_000), Sync::Ok, "basebackup").await;
    c.assert_logged("2 attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safekeeper_sync_is_retried_then_fails_with_its_stderr() {
    fails_with(
        Behaviour::Normal,
        Sync::FailFirst(5),
        "safekeepers unreachable",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safekeeper_sync_recovers_after_failures_and_records_timings() {
    let ps = pageserver(Behaviour::FailFirst(1)).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::FailFirst(2));
    let mut c = start(neon_spec(&ps, json!("Primary")), &pgbin, &[]);
    c.wait_running();
    let (_, m) = c.get("/metrics.json").await;
    assert!(
        m["sync_safekeepers_ms"].as_u64().unwrap() >= 100,
        "two retries take at least 300 ms: {m}"
    );
    assert_eq!(
        ps.recorded().connections,
        2,
        "the refused pageserver connection is retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_pageserver_still_works() {
    let ps = pageserver(Behaviour::Slow(Duration::from_millis(20))).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let mut c = start(neon_spec(&ps, json!("Primary")), &pgbin, &[]);
    c.wait_running();
}

async fn terminates_promptly(behaviour: Behaviour, sync: Sync, wait_for: &str) {
    let ps = pageserver(behaviour).await;
    let tools = test_dir();
    let hangs_in_sync = matches!(sync, Sync::Hang);
    let pgbin = wrapper_pgbin(tools.path(), sync);
    let mut c = start(neon_spec(&ps, json!("Primary")), &pgbin, &[]);
    c.wait_for_log(wait_for, Duration::from_secs(60));
    // The signal must find the step hanging: the script's pid written, or the
    // basebackup asked for.
    let state_pid = pgbin.with_file_name("state.pid");
    crate::wait::until("the step to hang", Duration::from_secs(60), async || {
        if hangs_in_sync {
            std::fs::read_to_string(&state_pid).is_ok_and(|p| !p.trim().is_empty())
        } else {
            !ps.recorded().commands.is_empty()
        }
    })
    .await;
    let t = Instant::now();
    c.signal(15);
    c.expect_exit(0, Duration::from_secs(10));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "termination took {:?}",
        t.elapsed()
    );
    assert!(c.log().contains("from=init to=termination_pending"));
    if let Ok(pid) = std::fs::read_to_string(pgbin.with_file_name("state.pid")) {
        let pid: i32 = pid.trim().parse().unwrap();
        // It sleeps 1000 s: gone within the deadline, it was killed.
        crate::wait::until(
            "the hanging sync-safekeepers to be killed",
            Duration::from_secs(60),
            async || !process_alive(pid),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_during_a_hanging_sync_is_prompt() {
    terminates_promptly(Behaviour::Normal, Sync::Hang, "sync_safekeepers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_during_a_hanging_basebackup_is_prompt() {
    terminates_promptly(Behaviour::Hang, Sync::Ok, "safekeepers synced").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanilla_replica_follows_its_primary() {
    let mut primary = Compute::start(Some(with_settings(
        spec(
            json!([{"name": "app", "encrypted_password": null}]),
            json!([{"name": "app", "owner": "app"}]),
        ),
        json!([{"name": "listen_addresses", "value": "127.0.0.1", "vartype": "string"},
               {"name": "wal_level", "value": "replica", "vartype": "enum"}]),
    )));
    primary.wait_running();
    let p = primary.client("app").await;
    p.batch_execute("CREATE TABLE t (v text); INSERT INTO t VALUES ('before')")
        .await
        .unwrap();

    let replica_spec = replica_spec_of(&primary, "replica");
    let mut replica = Compute::start(Some(replica_spec));
    replica.wait_running();
    let r = replica.client("app").await;
    let v: String = r.query_one("SELECT v FROM t", &[]).await.unwrap().get(0);
    assert_eq!(v, "before");
    // A row written now streams over.
    p.batch_execute("INSERT INTO t VALUES ('after')")
        .await
        .unwrap();
    wait_for_count(
        &r,
        "SELECT count(*) FROM t WHERE v = 'after'",
        1,
        Duration::from_secs(20),
        "the replica never saw the new row",
    )
    .await;
    let in_recovery: bool = r
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(in_recovery);
    // The replica's walsender on the primary counts as activity there.
    let before = primary.get("/status").await.1["last_active"]
        .as_str()
        .unwrap()
        .to_string();
    crate::wait::until(
        "the primary's last_active to move on (a walsender is activity)",
        Duration::from_secs(60),
        async || primary.get("/status").await.1["last_active"].as_str() > Some(&before),
    )
    .await;
}

fn with_settings(mut s: Value, settings: Value) -> Value {
    s["cluster"]["settings"] = settings;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_neon_primary_answers_terminate_with_the_lsn_of_a_final_sync() {
    for mode in ["fast", "immediate"] {
        let ps = pageserver(Behaviour::Normal).await;
        let tools = test_dir();
        let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
        let mut c = start(neon_spec(&ps, json!("Primary")), &pgbin, &[]);
        c.wait_running();
        // What the safekeepers hold once postgres has stopped.
        std::fs::write(pgbin.with_file_name("state.lsn"), "0/2000000\n").unwrap();
        let (code, body) = c.post(&format!("/terminate?mode={mode}"), &json!({})).await;
        assert_eq!((code, &body), (200, &json!({"lsn": "0/2000000"})), "{mode}");
        assert_eq!(c.wait_exit(Duration::from_secs(30)).code(), Some(0));
        let calls = std::fs::read_to_string(pgbin.with_file_name("state.log")).unwrap();
        assert_eq!(
            calls.lines().count(),
            2,
            "{mode}: one sync at start, one after the stop"
        );
        assert!(c.log().contains("safekeepers synced after the stop"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_neon_replica_answers_terminate_with_null_and_does_not_sync() {
    let ps = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Hang);
    let mut c = start(neon_spec(&ps, json!("Replica")), &pgbin, &[]);
    c.wait_running();
    let (code, body) = c.post("/terminate?mode=fast", &json!({})).await;
    assert_eq!((code, body), (200, json!({"lsn": null})));
    assert_eq!(c.wait_exit(Duration::from_secs(30)).code(), Some(0));
    assert!(!pgbin.with_file_name("state.log").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_final_sync_is_retried_then_terminates_without_an_lsn() {
    let ps = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::FailAfter(1));
    let mut c = start(
        neon_spec(&ps, json!("Primary")),
        &pgbin,
        &["--storage-attempts", "3"],
    );
    c.wait_running();
    let t = Instant::now();
    let (code, body) = c.post("/terminate?mode=immediate", &json!({})).await;
    assert_eq!((code, body), (200, json!({"lsn": null})));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(c.wait_exit(Duration::from_secs(30)).code(), Some(0));
    let log = c.log();
    assert!(
        log.contains("the final safekeeper sync failed")
            && log.contains("3 attempts")
            && log.contains("safekeepers unreachable (call 3)"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pageserver_is_live_before_the_catalog_is_touched() {
    let ps = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let mut spec = neon_spec(&ps, json!("Primary"));
    spec["cluster"]["settings"] =
        json!([{"name": "log_statement", "value": "ddl", "vartype": "enum"}]);
    let mut c = start(spec.clone(), &pgbin, &[]);
    c.wait_running();
    let moved = "postgresql://no_user@127.0.0.1:1/moved";
    spec["pageserver_connstring"] = json!(moved);
    spec["safekeeper_connstrings"] = json!(["sk-3:5454"]);
    spec["cluster"]["roles"] = json!([
        {"name": "app user", "encrypted_password": null},
        {"name": "newcomer", "encrypted_password": null}
    ]);
    let (code, body) = c.configure(&spec).await;
    assert_eq!(code, 200, "{body}");
    let client = c.client("postgres").await;
    let show: String = client
        .query_one("SHOW neon.pageserver_connstring", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(show, moved);
    // Postgres took the new value (its reload logged it) before the first
    // catalog statement of the reconfiguration.
    let log = c.log();
    let changed = log
        .find("parameter \"neon.pageserver_connstring\" changed to")
        .unwrap_or_else(|| panic!("no reload of the pageserver in:\n{log}"));
    let ddl = log
        .find("CREATE ROLE \"newcomer\"")
        .unwrap_or_else(|| panic!("no CREATE ROLE in:\n{log}"));
    assert!(changed < ddl, "the catalog ran before the reload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_timeline_and_mode_cannot_change_on_a_running_compute() {
    let ps = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let spec = neon_spec(&ps, json!("Primary"));
    let mut c = start(spec.clone(), &pgbin, &[]);
    c.wait_running();
    let conf_before = std::fs::read_to_string(c.pgdata().join("postgresql.conf")).unwrap();
    for (field, value) in [
        ("tenant_id", json!("00000000000000000000000000000001")),
        ("timeline_id", json!("00000000000000000000000000000002")),
        ("mode", json!("Replica")),
    ] {
        let mut changed = spec.clone();
        changed[field] = value;
        let (code, body) = c.configure(&changed).await;
        assert_eq!(code, 400, "{field}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("{field}: cannot change on a running compute")),
            "{error}"
        );
    }
    assert_eq!(c.get("/status").await.1["status"], "running");
    let conf_after = std::fs::read_to_string(c.pgdata().join("postgresql.conf")).unwrap();
    assert_eq!(
        conf_before, conf_after,
        "a refused spec changed the configuration"
    );
}
