//! The reference's catalog scenarios (rows 10-14, 17 and 23 of
//! NEON_SCENARIOS.md) against real computes: hostile names end to end, the
//! catalog routes, subscriptions, database settings, the migrations.

use crate::common::*;
use crate::hostile::reference_role_names;
use serde_json::{json, Value};
use std::time::Duration;

/// The reference's `TEST_DB_NAMES`: (database, owner).
fn test_dbs() -> Vec<(String, String)> {
    reference_role_names()
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

/// How many of the database `db` and the role `role` exist (0, 1 or 2).
async fn db_and_role_count(admin: &tokio_postgres::Client, db: &str, role: &str) -> i64 {
    admin
        .query_one(
            "SELECT (SELECT count(*) FROM pg_database WHERE datname = $1) \
             + (SELECT count(*) FROM pg_roles WHERE rolname = $2)",
            &[&db, &role],
        )
        .await
        .unwrap()
        .get(0)
}

fn hostile_spec() -> Value {
    let mut s = spec(
        Value::Array(
            reference_role_names()
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
        let n = db_and_role_count(&admin, &db, &owner).await;
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
        reference_role_names()
            .iter()
            .map(|r| json!({"action": "delete_role", "name": r})),
    );
    drop["delta_operations"] = Value::Array(ops);
    let (code, body) = c.configure(&drop).await;
    assert_eq!(code, 200, "{body}");
    for (db, owner) in test_dbs() {
        let n = db_and_role_count(&admin, &db, &owner).await;
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
         'host={} port={} user={SUPERUSER} dbname=publisher_db' PUBLICATION mypub \
         WITH (create_slot = false)",
        c.socket_dir().display(),
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
    let user = crate::common::connect(&format!("{connstr} options='-c statement_timeout=0'"))
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
    // A template of its own: a local start's migrations run when its
    // template is made, so the failure comes then (and none is published).
    let cache = test_dir();
    let c = Compute::start_with(Opts {
        template_cache: cache.path().to_path_buf(),
        spec: Some(spec(json!([]), json!([]))),
        env: vec![("FAILPOINTS".into(), "compute-migration=return(4)".into())],
        failure_exit_delay: 30,
        ..Opts::default()
    });
    let status = c.wait_status("failed", Duration::from_secs(60)).await;
    let error = status["error"].as_str().unwrap_or_default();
    assert!(error.contains("migration id=4"), "{error}");
    let text = c.metrics().await;
    let samples: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("compute_ctl_db_migration_failed_total"))
        .collect();
    assert_eq!(
        samples,
        ["compute_ctl_db_migration_failed_total{migration_id=\"4\"} 1"]
    );
    let log = c.log();
    // Id 3 acts only on PostgreSQL 16+ (the tests run on 15): skipped, and
    // counted, as the reference does.
    for id in [1, 2, 4] {
        assert!(log.contains(&format!("Running migration id={id}")), "{log}");
    }
    assert!(log.contains("Skipping migration id=3"), "{log}");
    assert!(!log.contains("Running migration id=5"));
    let published = std::fs::read_dir(cache.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pg"))
        .count();
    assert_eq!(
        published, 0,
        "a template whose migration failed is not kept"
    );
}

/// `/check_writability` on a compute at its size limit: Neon's postgres
/// answers `disk_full` to a write that would grow the project past it, and
/// the reference counts that as writable (the compute is not broken). The
/// model: a trigger on the check's table raising what Neon's postgres
/// raises. Another error is still a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_writability_at_the_size_limit_counts_as_writable() {
    let mut c = Compute::start(Some(spec(json!([]), json!([]))));
    c.wait_running();
    let (code, body) = c.post("/check_writability", &json!({})).await;
    assert_eq!((code, body), (200, json!(true)));
    let raising = |errcode: &str| {
        format!(
            "CREATE OR REPLACE FUNCTION public.size_limit() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'could not extend file: project size limit exceeded'
                   USING ERRCODE = '{errcode}'; END $$;
             DROP TRIGGER IF EXISTS size_limit ON public.health_check;
             CREATE TRIGGER size_limit BEFORE INSERT OR UPDATE ON public.health_check
                 FOR EACH ROW EXECUTE FUNCTION public.size_limit();"
        )
    };
    let admin = c.client("postgres").await;
    admin.batch_execute(&raising("disk_full")).await.unwrap();
    let (code, body) = c.post("/check_writability", &json!({})).await;
    assert_eq!((code, body), (200, json!(true)));
    admin
        .batch_execute(&raising("read_only_sql_transaction"))
        .await
        .unwrap();
    let (code, body) = c.post("/check_writability", &json!({})).await;
    assert_eq!(code, 500, "{body}");
}
