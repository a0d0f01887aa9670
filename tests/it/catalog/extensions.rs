//! The reference's extension scenarios (rows 25-27 of NEON_SCENARIOS.md):
//! the installed-extensions metric, `/grants`, `/extensions`.

use crate::common::*;
use crate::wait::until;
use serde_json::json;
use std::time::Duration;

/// The value of the `compute_installed_extensions` sample for plpgsql 1.0.
fn plpgsql_count(text: &str) -> Option<String> {
    text.lines()
        .find(|l| {
            l.starts_with("compute_installed_extensions{")
                && l.contains("extension_name=\"plpgsql\"")
                && l.contains("version=\"1.0\"")
                && l.contains("owned_by_superuser=\"1\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_25_installed_extensions_metric() {
    let mut c = Compute::start_with(Opts {
        spec: Some(spec(json!([]), json!([]))),
        extra_args: vec![
            "--installed-extensions-collection-interval".into(),
            "1".into(),
        ],
        ..Opts::default()
    });
    c.wait_running();
    let wait_for = |want: &'static str| {
        let c = &c;
        async move {
            let what = format!("the metric to count plpgsql = {want}");
            until(&what, Duration::from_secs(60), async || {
                plpgsql_count(&c.metrics().await).as_deref() == Some(want)
            })
            .await;
        }
    };
    // postgres and template1 (template0 takes no connections).
    wait_for("2").await;
    c.client("postgres")
        .await
        .batch_execute("CREATE DATABASE test")
        .await
        .unwrap();
    wait_for("3").await;
    // An extension installed in one database counts once, with its version.
    c.client("test")
        .await
        .batch_execute("CREATE EXTENSION hstore VERSION '1.8'")
        .await
        .unwrap();
    let sample = "compute_installed_extensions{extension_name=\"hstore\",owned_by_superuser=\"1\",version=\"1.8\"} 1";
    until(
        &format!("{sample} in /metrics"),
        Duration::from_secs(60),
        async || c.metrics().await.lines().any(|l| l == sample),
    )
    .await;
}

/// As the reference: once a spec is taken, the collection follows its
/// `suspend_timeout_seconds` (here 1 s), whatever the flag says (an hour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collection_interval_follows_the_specs_suspend_timeout() {
    let mut s = spec(json!([]), json!([]));
    s["suspend_timeout_seconds"] = json!(1);
    let mut c = Compute::start_with(Opts {
        spec: Some(s),
        extra_args: vec![
            "--installed-extensions-collection-interval".into(),
            "3600".into(),
        ],
        ..Opts::default()
    });
    c.wait_running();
    // The start's own count: postgres and template1.
    until("the start's count", Duration::from_secs(60), async || {
        plpgsql_count(&c.metrics().await).as_deref() == Some("2")
    })
    .await;
    c.client("postgres")
        .await
        .batch_execute("CREATE DATABASE counted")
        .await
        .unwrap();
    until(
        "a count within seconds, not the flag's hour",
        Duration::from_secs(30),
        async || plpgsql_count(&c.metrics().await).as_deref() == Some("3"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_26_role_grants() {
    let mut s = spec(
        json!([]),
        json!([{"name": "test_role_grants", "owner": SUPERUSER}]),
    );
    s["cluster"]["settings"] =
        json!([{"name": "listen_addresses", "value": "127.0.0.1", "vartype": "string"}]);
    let mut primary = Compute::start(Some(s));
    primary.wait_running();
    let admin = primary.client("test_role_grants").await;
    admin
        .batch_execute("CREATE SCHEMA test_schema; CREATE ROLE test_role WITH LOGIN PASSWORD 'pw'")
        .await
        .unwrap();
    let as_role = connect(&format!(
        "{} password=pw",
        primary.connstr("test_role", "test_role_grants")
    ))
    .await
    .unwrap();
    assert!(as_role
        .batch_execute("CREATE TABLE test_schema.test_table (id int)")
        .await
        .is_err());
    let grant = json!({"database": "test_role_grants", "schema": "test_schema",
                       "role": "test_role", "privileges": ["CREATE", "USAGE"]});
    let (code, body) = primary.internal_post("/grants", &grant).await;
    assert_eq!((code, &body), (201, &grant));
    as_role
        .batch_execute(
            "CREATE TABLE test_schema.test_table (id int); \
             INSERT INTO test_schema.test_table VALUES (1); SELECT * FROM test_schema.test_table",
        )
        .await
        .unwrap();
    // A role that lacks nothing needs no write: fine on a replica.
    let replica_spec = replica_spec_of(&primary, "replica");
    let mut replica = Compute::start(Some(replica_spec));
    replica.wait_running();
    let (code, body) = replica.internal_post("/grants", &grant).await;
    assert_eq!(code, 201, "{body}");
    // Naming what does not exist is a 400 naming the field.
    let mut bad = grant.clone();
    bad["role"] = json!("nobody");
    let (code, body) = primary.internal_post("/grants", &bad).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("role:"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_27_extensions() {
    let c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    let req = json!({"extension": "hstore", "version": "1.8", "database": "test_extensions"});
    let (code, body) = c.internal_post("/extensions", &req).await;
    assert_eq!(code, 412, "{body}");
    let (code, body) = c
        .configure(&spec(
            json!([]),
            json!([{"name": "test_extensions", "owner": SUPERUSER}]),
        ))
        .await;
    assert_eq!(code, 200, "{body}");
    let db = c.client("test_extensions").await;
    let version: String = db
        .query_one(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'hstore'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let req = json!({"extension": "hstore", "version": version, "database": "test_extensions"});
    // Two at once: both succeed.
    let (a, b) = tokio::join!(
        c.internal_post("/extensions", &req),
        c.internal_post("/extensions", &req)
    );
    for (code, body) in [a, b] {
        assert_eq!(
            (code, body),
            (201, json!({"extension": "hstore", "version": version}))
        );
    }
    let row = db
        .query_one(
            "SELECT extversion, extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'hstore'",
            &[],
        )
        .await
        .unwrap();
    let got: (String, String) = (row.get(0), row.get(1));
    assert_eq!(got, (version, "public".to_string()));
}

/// As the reference: `/extensions` for an extension installed at another
/// version updates it (`ALTER EXTENSION .. UPDATE TO`), and one at that
/// version already is left alone. hstore ships its update scripts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_extension_at_another_version_is_updated() {
    let mut c = Compute::start(Some(spec(
        json!([]),
        json!([{"name": "ext", "owner": SUPERUSER}]),
    )));
    c.wait_running();
    let db = c.client("ext").await;
    db.batch_execute("CREATE EXTENSION hstore VERSION '1.4'")
        .await
        .unwrap();
    let installed = || async {
        db.query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'hstore'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, String>(0)
    };
    for version in ["1.8", "1.8"] {
        let req = json!({"extension": "hstore", "version": version, "database": "ext"});
        let (code, body) = c.internal_post("/extensions", &req).await;
        assert_eq!(
            (code, body),
            (201, json!({"extension": "hstore", "version": version}))
        );
        assert_eq!(installed().await, version);
    }
    // No downgrade script ships: postgres' own error, and nothing changed.
    let req = json!({"extension": "hstore", "version": "1.6", "database": "ext"});
    let (code, body) = c.internal_post("/extensions", &req).await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no update path"),
        "{body}"
    );
    assert_eq!(installed().await, "1.8");
}
