//! The reference's catalog scenarios that need a restart on the same data
//! (rows 19 and 23 of NEON_SCENARIOS.md): a compute's stopped PGDATA is
//! served by the test pageserver to the next compute, as Neon storage does.

use crate::common::*;
use crate::fake_pageserver::{
    archive_of, initdb_archive, pg_bindir, Archive, FakePageserver, Options,
};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TENANT: &str = "0123456789abcdef0123456789abcdef";
const TIMELINE: &str = "fedcba9876543210fedcba9876543210";

/// A pgbin directory whose `postgres` answers `--sync-safekeepers` with an
/// LSN and runs the real postgres otherwise.
fn wrapper_pgbin(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let real = pg_bindir();
    for tool in ["initdb", "pg_controldata", "pg_dump", "pg_basebackup"] {
        std::os::unix::fs::symlink(real.join(tool), bin.join(tool)).unwrap();
    }
    let script = format!(
        "#!/bin/bash\n\
         if [ \"$1\" = \"--sync-safekeepers\" ]; then echo 0/16B3748; exit 0; fi\n\
         exec {}/postgres \"$@\"\n",
        real.display()
    );
    let path = bin.join("postgres");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A compute on the data of a stopped one (`pgdata`), with `spec`'s cluster.
async fn restart_on(pgdata: &Path, spec: Value, tools: &Path) -> (Compute, FakePageserver) {
    start_on(archive_of(pgdata), spec, tools, SUPERUSER, vec![]).await
}

/// A compute on Neon storage serving `archive` (whose superuser is
/// `superuser`), with `spec`'s cluster and `env` for compute_ctl.
async fn start_on(
    archive: std::sync::Arc<Vec<u8>>,
    mut spec: Value,
    tools: &Path,
    superuser: &str,
    env: Vec<(String, String)>,
) -> (Compute, FakePageserver) {
    let mut opts = Options::new(Archive::Bytes(archive));
    opts.require_password = false;
    let ps = FakePageserver::start(opts).await;
    spec["tenant_id"] = json!(TENANT);
    spec["timeline_id"] = json!(TIMELINE);
    spec["pageserver_connstring"] = json!(ps.connstring());
    spec["safekeeper_connstrings"] = json!(["sk-1:5454"]);
    let c = Compute::start_with(Opts {
        spec: Some(spec),
        extra_args: vec!["-b".into(), wrapper_pgbin(tools).display().to_string()],
        env,
        superuser: superuser.into(),
        ..Opts::default()
    });
    (c, ps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_23_the_next_start_resumes_the_migrations() {
    // A cluster never migrated (a local template comes migrated), served
    // by the pageserver as Neon storage does.
    let tools = test_dir();
    let (mut failed, _ps) = start_on(
        initdb_archive(),
        spec(json!([]), json!([])),
        tools.path(),
        "postgres",
        vec![("FAILPOINTS".into(), "compute-migration=return(4)".into())],
    )
    .await;
    assert_eq!(failed.wait_exit(Duration::from_secs(60)).code(), Some(1));
    failed.assert_logged("Running migration id=1 (");
    failed.assert_logged("migration id=4");

    let tools = test_dir();
    let (mut c, _ps) = start_on(
        archive_of(&failed.pgdata()),
        spec(json!([]), json!([])),
        tools.path(),
        "postgres",
        vec![],
    )
    .await;
    c.wait_running();
    let log = c.log();
    assert!(log.contains("Running migration id=4 ("), "{log}");
    for done in 1..=3 {
        let (ran, skipped) = (
            format!("Running migration id={done} ("),
            format!("Skipping migration id={done} ("),
        );
        assert!(!log.contains(&ran) && !log.contains(&skipped), "{log}");
    }
    let id: i64 = c
        .client("postgres")
        .await
        .query_one("SELECT id FROM neon_migration.migration_id", &[])
        .await
        .unwrap()
        .get(0);
    let last = compute_ctl::testing::catalog::migrations::MIGRATIONS.len() as i64;
    assert_eq!(id, last, "every migration applied");
}

async fn subscriptions(c: &Compute) -> Vec<String> {
    c.client("postgres")
        .await
        .query("SELECT subname::text FROM pg_subscription ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn subscribe(c: &Compute, name: &str) {
    c.client("sub_db")
        .await
        .batch_execute(&format!(
            "CREATE SUBSCRIPTION {name} CONNECTION 'host=127.0.0.1 port=1 dbname=x' \
             PUBLICATION p WITH (connect = false)"
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_19_subscriptions_dropped_once_per_timeline() {
    let cluster = spec(json!([]), json!([{"name": "sub_db", "owner": SUPERUSER}]));
    let mut parent = Compute::start(Some(cluster.clone()));
    parent.wait_running();
    subscribe(&parent, "sub").await;
    parent.terminate();

    // The branch's first start drops the copied subscription and records it.
    let mut branch = cluster.clone();
    branch["drop_subscriptions_before_start"] = json!(true);
    let tools = test_dir();
    let (mut child, _ps) = restart_on(&parent.pgdata(), branch.clone(), tools.path()).await;
    child.wait_running();
    assert!(subscriptions(&child).await.is_empty());
    let done: Vec<String> = child
        .client("postgres")
        .await
        .query("SELECT timeline_id FROM neon.drop_subscriptions_done", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(done, [TIMELINE]);

    // A subscription made since survives the next start on the same timeline.
    subscribe(&child, "sub_new").await;
    child.terminate();
    let tools = test_dir();
    let (mut again, _ps) = restart_on(&child.pgdata(), branch, tools.path()).await;
    again.wait_running();
    assert_eq!(subscriptions(&again).await, ["sub_new"]);
}
