//! Computes on Neon storage (a test pageserver and a stand-in for
//! `postgres --sync-safekeepers`), and vanilla replicas, end to end.

mod common;
mod fake_pageserver;

use common::*;
use fake_pageserver::{initdb_archive, pg_bindir, Archive, Behaviour, FakePageserver, Options};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TENANT: &str = "0123456789abcdef0123456789abcdef";
const TIMELINE: &str = "fedcba9876543210fedcba9876543210";
const SYNC_LSN: &str = "0/16B3748";

/// What the stand-in does when called with `--sync-safekeepers`.
enum Sync {
    /// Prints the LSN.
    Ok,
    /// Fails this many times, then prints the LSN.
    FailFirst(u32),
    /// Never answers.
    Hang,
}

/// A pgbin directory whose `postgres` answers `--sync-safekeepers` itself
/// and runs the real postgres otherwise; the other tools are the real ones.
fn wrapper_pgbin(dir: &Path, sync: Sync) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let real = pg_bindir();
    for tool in ["initdb", "pg_controldata", "pg_dump", "pg_basebackup"] {
        std::os::unix::fs::symlink(real.join(tool), bin.join(tool)).unwrap();
    }
    let behaviour = match sync {
        Sync::Ok => String::new(),
        Sync::FailFirst(n) => format!(
            "n=$(cat \"$STATE\" 2>/dev/null || echo 0); echo $((n+1)) > \"$STATE\"\n\
             if [ \"$n\" -lt {n} ]; then echo \"safekeepers unreachable (attempt $n)\" >&2; exit 1; fi\n"
        ),
        Sync::Hang => "echo $$ > \"$STATE.pid\"; sleep 1000\n".to_string(),
    };
    let state = bin.join("state");
    let script = format!(
        "#!/bin/bash\n\
         STATE={state}\n\
         if [ \"$1\" = \"--sync-safekeepers\" ]; then\n\
           echo \"PGDATA=$PGDATA TOKEN=$NEON_AUTH_TOKEN\" >> \"$STATE.log\"\n\
           {behaviour}\
           echo \"{SYNC_LSN}\"\n\
           exit 0\n\
         fi\n\
         exec {real}/postgres \"$@\"\n",
        state = state.display(),
        real = real.display(),
    );
    let path = bin.join("postgres");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The stand-in runs as the postgres user and keeps its state here.
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o1777)).unwrap();
    path
}

fn neon_spec(ps: &FakePageserver, mode: Value) -> Value {
    json!({
        "format_version": 1.0,
        "mode": mode,
        "tenant_id": TENANT,
        "timeline_id": TIMELINE,
        "pageserver_connstring": ps.connstring(),
        "safekeeper_connstrings": ["sk-1:5454", "sk-2:5454"],
        "storage_auth_token": "storage-secret-token",
        "cluster": {
            "roles": [{"name": "app user", "encrypted_password": null}],
            "databases": [{"name": "app db", "owner": "app user"}]
        }
    })
}

async fn pageserver(behaviour: Behaviour) -> FakePageserver {
    let mut opts = Options::new(Archive::Bytes(initdb_archive()));
    opts.behaviour = behaviour;
    FakePageserver::start(opts).await
}

/// A compute on the fake storage; the archive's superuser is `postgres`.
fn start(spec: Value, pgbin: &Path, extra: &[&str]) -> Compute {
    let mut args = vec!["-b".to_string(), pgbin.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    Compute::start_with(Opts {
        spec: Some(spec),
        extra_args: args,
        superuser: "postgres".into(),
        ..Opts::default()
    })
}

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
        assert_eq!(ps.recorded().commands, vec![command], "{mode}");
        assert!(c.pgdata().join("standby.signal").exists());
        let client = c.client("postgres").await;
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
    assert!(c.log().contains("2 attempts"), "{}", c.log());
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
    let pgbin = wrapper_pgbin(tools.path(), sync);
    let mut c = start(neon_spec(&ps, json!("Primary")), &pgbin, &[]);
    c.wait_for_log(wait_for, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    c.signal(15);
    assert_eq!(
        c.wait_exit(Duration::from_secs(10)).code(),
        Some(0),
        "{}",
        c.log()
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "termination took {:?}",
        t.elapsed()
    );
    assert!(c.log().contains("from=init to=termination_pending"));
    if let Ok(pid) = std::fs::read_to_string(pgbin.with_file_name("state.pid")) {
        let pid: i32 = pid.trim().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!process_alive(pid), "the hanging sync-safekeepers survived");
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

    let mut replica_spec = spec(json!([]), json!([]));
    replica_spec["mode"] = json!("Replica");
    replica_spec["primary_connstring"] = json!(format!(
        "host=127.0.0.1 port={} user={SUPERUSER} application_name=replica",
        primary.port
    ));
    let mut replica = Compute::start(Some(replica_spec));
    replica.wait_running();
    let r = replica.client("app").await;
    let v: String = r.query_one("SELECT v FROM t", &[]).await.unwrap().get(0);
    assert_eq!(v, "before");
    // A row written now streams over.
    p.batch_execute("INSERT INTO t VALUES ('after')")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: i64 = r
            .query_one("SELECT count(*) FROM t WHERE v = 'after'", &[])
            .await
            .unwrap()
            .get(0);
        if n == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never saw the new row"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let after = primary.get("/status").await.1["last_active"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        after > before,
        "a walsender is activity: {before} -> {after}"
    );
}

fn with_settings(mut s: Value, settings: Value) -> Value {
    s["cluster"]["settings"] = settings;
    s
}
