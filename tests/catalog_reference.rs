//! The reference's catalog scenarios (rows 10-14, 17, 23, 25-28 of
//! NEON_SCENARIOS.md) against real computes: the privileged role, the
//! migrations, the catalog routes, and hostile names end to end.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The reference's `TEST_ROLE_NAMES` (test_compute_catalog.py).
fn test_role_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "neondb_owner",
        "role with spaces",
        "role with%20spaces ",
        "role with whitespaces\t",
        "injective role with spaces'; SELECT pg_sleep(1000);",
        "role with #pound-sign and &ampersands=true",
        "role with emoji 🌍",
        "role \";with ';injections $$ $x$ $ %I !/\\&#@",
        "\"role in double quotes\"",
        "'role in single quotes'",
        "role$",
        "role$$",
        "role$x$",
        "x",
        "xx",
        "$x",
        "x$",
        "$x$",
        "xx$",
        "$xx",
        "$xx$",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push("x".repeat(63));
    names
}

/// The reference's `TEST_DB_NAMES`: (database, owner).
fn test_dbs() -> Vec<(String, String)> {
    test_role_names()
        .into_iter()
        .map(|role| {
            let db = if role == "neondb_owner" {
                "neondb".to_string()
            } else {
                role.replacen("role", "db", 1)
            };
            (db, role)
        })
        .collect()
}

fn hostile_spec() -> Value {
    let mut s = spec(
        Value::Array(
            test_role_names()
                .iter()
                .map(|r| json!({"name": r, "encrypted_password": null}))
                .collect(),
        ),
        Value::Array(
            test_dbs()
                .iter()
                .map(|(d, o)| json!({"name": d, "owner": o}))
                .collect(),
        ),
    );
    s["skip_pg_catalog_updates"] = json!(false);
    s["drop_subscriptions_before_start"] = json!(true);
    s
}

async fn internal_post(c: &Compute, path: &str, body: &Value) -> (u16, Value) {
    into_pair(http().post(c.internal_url(path)).json(body).send().await).await
}

async fn schema_dump(c: &Compute, db: &str) -> (u16, Value) {
    c.get(&format!("/database_schema?database={}", urlquote(db)))
        .await
}

/// Python's `urllib.parse.quote(s, safe='')`.
fn urlquote(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn metrics(c: &Compute) -> String {
    let (code, body) = c.get("/metrics").await;
    assert_eq!(code, 200);
    body.as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_10_to_13_catalog_with_hostile_names() {
    let mut first = spec(json!([]), json!([]));
    first["drop_subscriptions_before_start"] = json!(true);
    let mut c = Compute::start(Some(first));
    c.wait_running();
    // The start recorded its drop of (no) subscriptions for its timeline.
    let done: i64 = c
        .client("postgres")
        .await
        .query_one("SELECT count(*) FROM neon.drop_subscriptions_done", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(done, 1);
    let (code, body) = c.configure(&hostile_spec()).await;
    assert_eq!(code, 200, "{body}");

    // Row 10: every role of pg_authid, the superuser included; every database.
    let (code, body) = c.get("/dbs_and_roles").await;
    assert_eq!(code, 200, "{body}");
    let roles: Vec<&str> = body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(roles.contains(&SUPERUSER), "{roles:?}");
    assert!(body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["encrypted_password"].is_null() && r["options"].is_null()));
    let dbs = body["databases"].as_array().unwrap();
    let owner_of = |name: &str| {
        dbs.iter()
            .find(|d| d["name"] == name)
            .map(|d| d["owner"].as_str().unwrap().to_string())
    };
    assert_eq!(owner_of("postgres").as_deref(), Some(SUPERUSER));
    for (db, owner) in test_dbs() {
        assert!(roles.contains(&owner.as_str()), "role {owner:?} listed");
        assert_eq!(owner_of(&db), Some(owner), "database {db:?}");
    }

    // Row 11: dumps without compute_ctl's own objects; 404 for a missing database.
    let (code, _) = c.post("/check_writability", &json!({})).await;
    assert_eq!(code, 200);
    let mut names: Vec<String> = test_dbs().into_iter().map(|(d, _)| d).collect();
    names.push("postgres".into());
    for db in &names {
        let (code, body) = schema_dump(&c, db).await;
        let text = body.as_str().unwrap_or_default();
        assert_eq!(code, 200, "{db:?}: {body}");
        assert!(
            text.contains("-- PostgreSQL database dump complete"),
            "{db:?}"
        );
        assert!(
            !text.contains("health_check") && !text.contains("migration"),
            "{db:?}: {text}"
        );
    }
    let (code, _) = schema_dump(&c, "nonexistentdb").await;
    assert_eq!(code, 404);

    // Row 12: each name exists exactly, and can be connected to.
    let admin = c.client("postgres").await;
    for (db, owner) in test_dbs() {
        let n: i64 = admin
            .query_one(
                "SELECT (SELECT count(*) FROM pg_database WHERE datname = $1) \
                 + (SELECT count(*) FROM pg_roles WHERE rolname = $2)",
                &[&db, &owner],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 2, "{db:?} / {owner:?}");
        let current: String = c
            .client(&db)
            .await
            .query_one("SELECT current_database()::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(current, db);
    }

    // Row 13: everything dropped by delta operations.
    let mut drop = spec(json!([]), json!([]));
    let mut ops: Vec<Value> = test_dbs()
        .iter()
        .map(|(d, _)| json!({"action": "delete_db", "name": d}))
        .collect();
    ops.extend(
        test_role_names()
            .iter()
            .map(|r| json!({"action": "delete_role", "name": r})),
    );
    drop["delta_operations"] = Value::Array(ops);
    let (code, body) = c.configure(&drop).await;
    assert_eq!(code, 200, "{body}");
    for (db, owner) in test_dbs() {
        let n: i64 = admin
            .query_one(
                "SELECT (SELECT count(*) FROM pg_database WHERE datname = $1) \
                 + (SELECT count(*) FROM pg_roles WHERE rolname = $2)",
                &[&db, &owner],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{db:?} / {owner:?} still there");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_14_dropdb_with_subscription() {
    let subscriber = "';subscriber_db $$ $x$ $;";
    let dbs = json!([{"name": "neondb", "owner": SUPERUSER},
                     {"name": subscriber, "owner": SUPERUSER},
                     {"name": "publisher_db", "owner": SUPERUSER}]);
    let mut s = spec(json!([]), dbs);
    s["cluster"]["settings"] =
        json!([{"name": "wal_level", "value": "logical", "vartype": "enum"}]);
    let mut c = Compute::start(Some(s.clone()));
    c.wait_running();
    let publisher = c.client("publisher_db").await;
    // One statement per query: a slot or a subscription is not made in a
    // transaction that wrote.
    for sql in [
        "CREATE TABLE t (id int PRIMARY KEY)",
        "CREATE PUBLICATION mypub FOR TABLE t",
        "SELECT pg_create_logical_replication_slot('mysub', 'pgoutput')",
    ] {
        publisher.batch_execute(sql).await.unwrap();
    }
    let sub = c.client(subscriber).await;
    sub.batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();
    sub.batch_execute(&format!(
        "CREATE SUBSCRIPTION mysub CONNECTION \
         'host=127.0.0.1 port={} user={SUPERUSER} dbname=publisher_db' PUBLICATION mypub \
         WITH (create_slot = false)",
        c.port
    ))
    .await
    .unwrap();
    publisher
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    // Replicating: the row arrives.
    wait_for_count(
        &sub,
        "SELECT count(*) FROM t",
        1,
        Duration::from_secs(20),
        "the subscription never replicated",
    )
    .await;
    drop(sub);
    s["cluster"]["databases"] = json!([{"name": "neondb", "owner": SUPERUSER},
                                        {"name": "publisher_db", "owner": SUPERUSER}]);
    s["delta_operations"] = json!([{"action": "delete_db", "name": subscriber},
                                   {"action": "delete_db", "name": "nonexistent_db"}]);
    let (code, body) = c.configure(&s).await;
    assert_eq!(code, 200, "{body}");
    let admin = c.client("postgres").await;
    let n: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&subscriber],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    c.client("publisher_db")
        .await
        .query_one("SELECT 1", &[])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_17_db_with_custom_settings() {
    let s = spec(
        json!([{"name": "some_other_role", "encrypted_password": null}]),
        json!([{"name": "db_with_custom_settings", "owner": SUPERUSER}]),
    );
    let mut c = Compute::start(Some(s.clone()));
    c.wait_running();
    c.client("postgres")
        .await
        .batch_execute(
            "ALTER DATABASE db_with_custom_settings SET role = some_other_role; \
             ALTER DATABASE db_with_custom_settings SET default_transaction_read_only = on; \
             ALTER DATABASE db_with_custom_settings SET search_path = non_public_schema; \
             ALTER DATABASE db_with_custom_settings SET statement_timeout = 1",
        )
        .await
        .unwrap();
    let (code, body) = c.configure(&s).await;
    assert_eq!(code, 200, "{body}");
    // A user session sees the database's settings. Its own statement_timeout
    // comes as a startup option (which outranks the database's): a `SET`
    // after connecting could itself be cancelled by the 1 ms timeout.
    let connstr = c.connstr(SUPERUSER, "db_with_custom_settings");
    let user = common::connect(&format!("{connstr} options='-c statement_timeout=0'"))
        .await
        .unwrap();
    let row = user
        .query_one(
            "SELECT current_user::text, current_setting('default_transaction_read_only'), \
             current_setting('search_path')",
            &[],
        )
        .await
        .unwrap();
    let got: (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        got,
        (
            "some_other_role".into(),
            "on".into(),
            "non_public_schema".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_23_migration_failure_fails_the_start() {
    let c = Compute::start_with(Opts {
        spec: Some(spec(json!([]), json!([]))),
        env: vec![("FAILPOINTS".into(), "compute-migration=return(3)".into())],
        failure_exit_delay: 30,
        ..Opts::default()
    });
    let status = c.wait_status("failed", Duration::from_secs(60)).await;
    let error = status["error"].as_str().unwrap_or_default();
    assert!(error.contains("migration id=3"), "{error}");
    let text = metrics(&c).await;
    let samples: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("compute_ctl_db_migration_failed_total"))
        .collect();
    assert_eq!(
        samples,
        ["compute_ctl_db_migration_failed_total{migration_id=\"3\"} 1"]
    );
    let log = c.log();
    for id in 1..=3 {
        assert!(log.contains(&format!("Running migration id={id}")), "{log}");
    }
    assert!(!log.contains("Running migration id=4"));
}

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
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let text = metrics(c).await;
                if plpgsql_count(&text).as_deref() == Some(want) {
                    return;
                }
                assert!(Instant::now() < deadline, "no plpgsql = {want}:\n{text}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
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
    let deadline = Instant::now() + Duration::from_secs(20);
    let sample = "compute_installed_extensions{extension_name=\"hstore\",owned_by_superuser=\"1\",version=\"1.8\"} 1";
    loop {
        let text = metrics(&c).await;
        if text.lines().any(|l| l == sample) {
            break;
        }
        assert!(Instant::now() < deadline, "no {sample}:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let (code, body) = internal_post(&primary, "/grants", &grant).await;
    assert_eq!((code, &body), (201, &grant));
    as_role
        .batch_execute(
            "CREATE TABLE test_schema.test_table (id int); \
             INSERT INTO test_schema.test_table VALUES (1); SELECT * FROM test_schema.test_table",
        )
        .await
        .unwrap();
    // A role that lacks nothing needs no write: fine on a replica.
    let mut replica_spec = spec(json!([]), json!([]));
    replica_spec["mode"] = json!("Replica");
    replica_spec["primary_connstring"] = json!(format!(
        "host=127.0.0.1 port={} user={SUPERUSER} application_name=replica",
        primary.port
    ));
    let mut replica = Compute::start(Some(replica_spec));
    replica.wait_running();
    let (code, body) = internal_post(&replica, "/grants", &grant).await;
    assert_eq!(code, 201, "{body}");
    // Naming what does not exist is a 400 naming the field.
    let mut bad = grant.clone();
    bad["role"] = json!("nobody");
    let (code, body) = internal_post(&primary, "/grants", &bad).await;
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
    let (code, body) = internal_post(&c, "/extensions", &req).await;
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
        internal_post(&c, "/extensions", &req),
        internal_post(&c, "/extensions", &req)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_28_privileged_role() {
    let mut c = Compute::start_with(Opts {
        spec: Some(spec(
            json!([{"name": "alice", "encrypted_password": null}]),
            json!([{"name": "app", "owner": "alice"}]),
        )),
        extra_args: vec![
            "--privileged-role-name".into(),
            "my_superuser".into(),
            "--cgroup".into(),
            "neon-postgres".into(),
        ],
        ..Opts::default()
    });
    c.wait_running();
    let admin = c.client("postgres").await;
    let row = admin
        .query_one(
            "SELECT rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, \
             rolconnlimit, rolbypassrls FROM pg_roles WHERE rolname = 'my_superuser'",
            &[],
        )
        .await
        .unwrap();
    let flags: Vec<bool> = [0, 1, 2, 3, 4, 5, 7].iter().map(|i| row.get(*i)).collect();
    assert_eq!(flags, [false, true, true, true, false, true, true]);
    assert_eq!(row.get::<_, i32>(6), -1);
    let version: i32 = admin
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .unwrap()
        .get(0);
    let mut members = vec![
        "pg_read_all_data",
        "pg_write_all_data",
        "pg_monitor",
        "pg_signal_backend",
    ];
    let mut not_members = vec![
        "pg_execute_server_program",
        "pg_read_server_files",
        "pg_write_server_files",
        "pg_checkpoint",
    ];
    if version >= 160000 {
        members.push("pg_create_subscription");
        not_members.push("pg_use_reserved_connections");
    }
    let member = |r: &'static str| {
        let admin = &admin;
        async move {
            admin
                .query_one("SELECT pg_has_role('my_superuser', $1, 'MEMBER')", &[&r])
                .await
                .unwrap()
                .get::<_, bool>(0)
        }
    };
    for r in members {
        assert!(member(r).await, "member of {r}");
    }
    for r in not_members {
        assert!(!member(r).await, "not a member of {r}");
    }
    let n: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = 'neon_superuser'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    // The spec's role is its member, and its database grants it ALL.
    let row = admin
        .query_one(
            "SELECT pg_has_role('alice', 'my_superuser', 'MEMBER'), \
             has_database_privilege('my_superuser', 'app', 'CREATE, CONNECT, TEMPORARY'), \
             (SELECT id FROM neon_migration.migration_id)",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0) && row.get::<_, bool>(1));
    assert!(row.get::<_, i64>(2) > 0);
    let shown: String = admin
        .query_one("SHOW neon.privileged_role_name", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(shown, "my_superuser");
    assert!(c.log().contains("Running migration id=1"));
    // pg_create_subscription's migration needs PostgreSQL 16.
    let five = if version >= 160000 {
        "Running"
    } else {
        "Skipping"
    };
    assert!(
        c.log().contains(&format!("{five} migration id=5 ")),
        "{}",
        c.log()
    );
    // A reference flag without an implementation: one warning naming it.
    assert_eq!(c.log().matches("--cgroup is not supported").count(), 1);
}

#[test]
fn neon_scenario_28_invalid_privileged_role_names_are_refused() {
    for bad in ["NeonSuperuser", "$'neon_superuser", ""] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_compute_ctl"))
            .args(["-D", "/nonexistent", "-C", "postgresql://a@127.0.0.1:1/p"])
            .args(["--privileged-role-name", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("privileged"));
    }
}
