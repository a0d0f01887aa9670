//! How a spec names Neon storage today, and what reaches postgres: the
//! reference's `pageserver_connection_info` (shards, stripe size), the
//! safekeepers' generation and the endpoint's ids in postgresql.conf, the
//! storage token in the postmaster's environment (never its argv), and no
//! local start for a spec that names Neon storage incompletely.

use crate::common::*;
use crate::fake_pageserver::Behaviour;
use crate::neon_support::*;
use serde_json::{json, Value};
use std::time::Duration;

/// `neon_spec` with the pageserver named only by `pageserver_connection_info`.
fn info_spec(mode: Value, shards: Value, shard_count: u8, stripe: Value) -> Value {
    let mut spec = json!({
        "format_version": 1.0,
        "mode": mode,
        "tenant_id": TENANT,
        "timeline_id": TIMELINE,
        "safekeeper_connstrings": SAFEKEEPERS.split(',').collect::<Vec<_>>(),
        "storage_auth_token": "storage-secret-token",
        "cluster": {
            "roles": [{"name": "app user", "encrypted_password": null}],
            "databases": [{"name": "app db", "owner": "app user"}]
        }
    });
    spec["pageserver_connection_info"] = json!({
        "shard_count": shard_count,
        "stripe_size": stripe,
        "shards": shards,
        "prefer_protocol": "libpq"
    });
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_naming_its_pageserver_only_by_connection_info_starts_on_it() {
    let ps = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let shards = json!({"0000": {"pageservers": [
        {"id": 1, "libpq_url": ps.connstring(), "grpc_url": null}
    ]}});
    let mut c = start(
        info_spec(json!("Primary"), shards, 0, Value::Null),
        &pgbin,
        &[],
    );
    c.wait_running();
    // The data came from the pageserver, not from a local initdb.
    assert_eq!(
        ps.recorded().commands,
        vec![format!("basebackup {TENANT} {TIMELINE} {SYNC_LSN} --gzip")]
    );
    assert_eq!(
        show(&c, "neon.pageserver_connstring").await,
        ps.connstring()
    );
    assert_eq!(c.db_owner("app db").await, "app user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_take_the_basebackup_from_shard_zero_and_name_both() {
    let shard0 = pageserver(Behaviour::Normal).await;
    let shard1 = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Hang); // a replica never syncs
    let shards = json!({
        "0102": {"pageservers": [{"libpq_url": shard1.connstring()}]},
        "0002": {"pageservers": [{"libpq_url": shard0.connstring()}]}
    });
    let mut spec = info_spec(json!("Replica"), shards, 2, json!(2048));
    spec["safekeepers_generation"] = json!(5);
    spec["project_id"] = json!("proj-quiet-fog");
    spec["branch_id"] = json!("br-old-sea");
    spec["endpoint_id"] = json!("ep-red-sun");
    let mut c = start(spec, &pgbin, &[]);
    c.wait_running();
    assert_eq!(
        shard0.recorded().commands,
        vec![format!("basebackup {TENANT} {TIMELINE} --gzip --replica")]
    );
    assert!(shard1.recorded().commands.is_empty());
    assert_eq!(
        show(&c, "neon.pageserver_connstring").await,
        format!("{},{}", shard0.connstring(), shard1.connstring())
    );
    assert_eq!(show(&c, "neon.stripe_size").await, "2048");
    assert_eq!(
        show(&c, "neon.safekeepers").await,
        format!("g#5:{SAFEKEEPERS}")
    );
    assert_eq!(show(&c, "neon.project_id").await, "proj-quiet-fog");
    assert_eq!(show(&c, "neon.branch_id").await, "br-old-sea");
    assert_eq!(show(&c, "neon.endpoint_id").await, "ep-red-sun");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_neon_storage_is_a_400_and_never_a_local_start() {
    let c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(30)).await;
    let ps = "postgresql://no_user@127.0.0.1:1";
    let missing_shard = info_spec(
        json!("Primary"),
        json!({"0002": {"pageservers": [{"libpq_url": ps}]}}),
        2,
        json!(2048),
    );
    let grpc_only = info_spec(
        json!("Primary"),
        json!({"0000": {"pageservers": [{"grpc_url": "grpc://127.0.0.1:1"}]}}),
        0,
        Value::Null,
    );
    let mut grpc_only = grpc_only;
    grpc_only["pageserver_connection_info"]["prefer_protocol"] = json!("grpc");
    let no_pageserver = json!({
        "format_version": 1.0,
        "tenant_id": TENANT,
        "timeline_id": TIMELINE,
        "cluster": {"roles": [], "databases": []}
    });
    for (spec, needle) in [
        (missing_shard, "shard 0102 missing"),
        (grpc_only, "grpc protocol is not supported"),
        (no_pageserver, "no pageserver"),
    ] {
        let (code, body) = c.configure(&spec).await;
        assert_eq!(code, 400, "{body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{needle}: {error}");
    }
    let (_, status) = c.get("/status").await;
    assert_eq!(status["status"], "empty", "{status}");
    assert!(
        !c.pgdata().join("PG_VERSION").exists(),
        "a local cluster was made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_token_reaches_the_postmaster_in_its_environment_only() {
    let ps = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let spec = neon_spec(&ps, json!("Primary"));
    let mut c = start(spec.clone(), &pgbin, &[]);
    c.wait_running();
    let token_of = |pid: i32| {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).replace('\0', "\n");
        assert!(
            !text(&cmdline).contains("secret-token"),
            "the token is in the argv"
        );
        text(&environ)
            .lines()
            .find_map(|l| l.strip_prefix("NEON_AUTH_TOKEN=").map(String::from))
    };
    let first = c.postmaster_pid().unwrap();
    assert_eq!(token_of(first).as_deref(), Some("storage-secret-token"));

    // A new token: postgres reads it only at start, so it is pending a restart.
    let mut rotated = spec.clone();
    rotated["storage_auth_token"] = json!("rotated-secret-token");
    let (code, body) = c.configure(&rotated).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["pending_restart"], json!(["storage_auth_token"]));
    let (code, body) = c.post("/restart", &json!({})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["pending_restart"], json!([]));
    let second = c.postmaster_pid().unwrap();
    assert_ne!(first, second);
    assert_eq!(token_of(second).as_deref(), Some("rotated-secret-token"));

    // Back to no token: none in the environment, even if ours had one.
    let mut none = rotated;
    none["storage_auth_token"] = Value::Null;
    c.configure(&none).await;
    c.post("/restart", &json!({})).await;
    assert_eq!(token_of(c.postmaster_pid().unwrap()), None);
    let (_, status) = c.get("/status").await;
    for text in [status.to_string(), c.log()] {
        assert!(!text.contains("secret-token"), "the token leaked: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_field_of_the_spec_is_named_once_in_a_warning() {
    let mut s = spec(json!([]), json!([]));
    s["lfc_settings"] = json!({"size": 1});
    s["cluster"]["roles"] = json!([{"name": "alice", "encrypted_password": null, "flavour": 1}]);
    let mut c = Compute::start(Some(s.clone()));
    c.wait_running();
    c.configure(&s).await;
    let log = c.log();
    for field in ["lfc_settings", "cluster.roles[].flavour"] {
        let warnings = log
            .lines()
            .filter(|l| l.contains("does not know") && l.contains(field))
            .count();
        assert_eq!(warnings, 1, "{field}:\n{log}");
    }
}
