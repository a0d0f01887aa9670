//! A spec the catalog cannot take is a 400 that changes nothing: it is
//! planned (a dry run) before anything is written, and the compute keeps
//! running as it was, its settings and files untouched (before, each of
//! these was a 500 with the bad spec's settings already live, and the
//! compute Failed).

use crate::common::*;
use serde_json::{json, Value};

fn with_work_mem(mut spec: Value) -> Value {
    spec["cluster"]["settings"] =
        json!([{"name": "work_mem", "value": "77MB", "vartype": "integer"}]);
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_the_planner_refuses_is_a_400_and_changes_nothing() {
    let good = spec(
        json!([{"name": "alice", "encrypted_password": null}]),
        json!([{"name": "app", "owner": "alice"}]),
    );
    let mut c = Compute::start(Some(good.clone()));
    c.wait_running();
    let conf_before = std::fs::read_to_string(c.pgdata().join("postgresql.conf")).unwrap();
    let role = |name: &str| json!([{"name": name, "encrypted_password": null}]);
    let delete_db = |name: &str| json!([{"action": "delete_db", "name": name}]);
    let mut cases: Vec<(&str, Value, &str)> = vec![
        (
            "the superuser",
            spec(role(SUPERUSER), json!([])),
            "superuser",
        ),
        (
            "the privileged role",
            spec(role("neon_superuser"), json!([])),
            "privileged role",
        ),
        ("public", spec(role("public"), json!([])), "reserved"),
        ("none", spec(role("none"), json!([])), "reserved"),
        (
            "an unknown owner",
            spec(json!([]), json!([{"name": "app2", "owner": "nobody_here"}])),
            "nobody_here",
        ),
    ];
    for db in ["template1", "postgres"] {
        let mut s = good.clone();
        s["delta_operations"] = delete_db(db);
        cases.push(("a delta on a database compute_ctl needs", s, db));
    }
    for (what, bad, needle) in cases {
        let (code, body) = c.configure(&with_work_mem(bad)).await;
        assert_eq!(code, 400, "{what}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{what}: {error}");
        let (_, status) = c.get("/status").await;
        assert_eq!(status["status"], "running", "{what}: {status}");
        let client = c.client("postgres").await;
        let work_mem: String = client.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
        assert_ne!(work_mem, "77MB", "{what}: its settings went live");
        let conf = std::fs::read_to_string(c.pgdata().join("postgresql.conf")).unwrap();
        assert_eq!(conf, conf_before, "{what}: postgresql.conf changed");
    }
    // The same settings with a spec the catalog can take are applied.
    let (code, body) = c.configure(&with_work_mem(good)).await;
    assert_eq!(code, 200, "{body}");
    let client = c.client("postgres").await;
    let work_mem: String = client.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
    assert_eq!(work_mem, "77MB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_setting_in_the_raw_conf_is_named_at_once() {
    let good = spec(json!([]), json!([]));
    let mut c = Compute::start(Some(good.clone()));
    c.wait_running();
    let mut bad = good.clone();
    bad["cluster"]["postgresql_conf"] = json!("work_mem = '5MB'\nno_such_setting = 1\n");
    let began = std::time::Instant::now();
    let (code, body) = c.configure(&bad).await;
    let took = began.elapsed();
    assert_eq!(code, 500, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("no such settings")
            && error.contains("no_such_setting (")
            && error.contains("postgresql.conf:"),
        "{error}"
    );
    // Postgres never reloads such a file; waiting for it took the whole
    // 30 s reload timeout and said only that it did not reload.
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    let (code, body) = c.configure(&good).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_cannot_open_the_superusers_socket_to_everyone() {
    // A directory every local user may enter, named by the spec's raw text.
    let open = test_dir();
    std::fs::set_permissions(
        open.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut s = spec(json!([]), json!([]));
    s["cluster"]["postgresql_conf"] = json!(format!(
        "unix_socket_directories = '{}'\n",
        open.path().display()
    ));
    let mut c = Compute::start(Some(s));
    c.wait_running();
    let shown: String = c
        .client("postgres")
        .await
        .query_one("SHOW unix_socket_directories", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(shown, c.socket_dir().display().to_string());
    let planted: Vec<_> = std::fs::read_dir(open.path()).unwrap().flatten().collect();
    assert!(
        planted.is_empty(),
        "a socket in the open directory: {planted:?}"
    );
}
