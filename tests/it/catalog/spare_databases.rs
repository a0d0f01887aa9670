//! A start from the local template takes its databases from spares made in
//! the template (`ALTER DATABASE .. RENAME`) instead of `CREATE DATABASE`,
//! and what it gives is what a creation would have (see
//! src/catalog/spare_db.rs): compared here with databases the same start
//! had to create.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

const SPARES_LEFT: &str =
    "SELECT count(*) FROM pg_database WHERE datname LIKE 'compute\\_ctl\\_spare\\_%'";

/// Everything of database `db` that does not depend on its OID or name: its
/// `pg_database` row, its shared dependencies and settings, and, inside,
/// its schemas, default privileges, extensions and relations.
async fn shape(c: &Compute, db: &str) -> Vec<String> {
    let admin = c.client("postgres").await;
    let mut out = Vec::new();
    let row = admin
        .query_one(
            "SELECT (to_jsonb(d) - 'oid' - 'datname')::text FROM pg_database d WHERE datname = $1",
            &[&db],
        )
        .await
        .unwrap();
    out.push(format!("pg_database {}", row.get::<_, String>(0)));
    for row in admin
        .query(
            "SELECT s.deptype::text || ' ' || r.rolname FROM pg_shdepend s \
             JOIN pg_roles r ON r.oid = s.refobjid \
             WHERE s.classid = 'pg_database'::regclass \
             AND s.objid = (SELECT oid FROM pg_database WHERE datname = $1) ORDER BY 1",
            &[&db],
        )
        .await
        .unwrap()
    {
        out.push(format!("shdepend {}", row.get::<_, String>(0)));
    }
    let settings: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_db_role_setting \
             WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = $1)",
            &[&db],
        )
        .await
        .unwrap()
        .get(0);
    out.push(format!("settings {settings}"));
    let inside = c.client(db).await;
    for sql in [
        "SELECT nspname || ' ' || nspowner::regrole::text || ' ' || coalesce(nspacl::text, '-') \
         FROM pg_namespace ORDER BY 1",
        "SELECT defaclrole::regrole::text || ' ' || defaclnamespace::regnamespace::text || ' ' \
         || defaclobjtype::text || ' ' || defaclacl::text FROM pg_default_acl ORDER BY 1",
        "SELECT extname || ' ' || extversion FROM pg_extension ORDER BY 1",
        "SELECT count(*)::text || ' ' || md5(string_agg(relname || relkind::text \
         || coalesce(relacl::text, '-'), ',' ORDER BY relname, relkind)) FROM pg_class",
        "SELECT count(*)::text FROM pg_proc",
    ] {
        for row in inside.query(sql, &[]).await.unwrap() {
            out.push(row.get::<_, String>(0));
        }
    }
    out
}

fn start(cache: &std::path::Path, s: serde_json::Value) -> Compute {
    let mut s = s;
    s["cluster"]["settings"] =
        json!([{"name": "log_statement", "value": "ddl", "vartype": "enum"}]);
    let mut c = Compute::start_with(Opts {
        spec: Some(s),
        template_cache: cache.to_path_buf(),
        ..Opts::default()
    });
    c.wait_running();
    c
}

fn created(log: &str, db: &str) -> bool {
    log.contains(&format!("statement: CREATE DATABASE \"{db}\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_taken_from_a_spare_is_what_create_database_makes() {
    let cache = test_dir();
    let roles = json!([{"name": "alice", "encrypted_password": null}]);
    // "made" is named by a delta operation (a rename from a database that
    // does not exist: nothing to rename), so it is created, not taken; so
    // is "latin", which has options; "more" finds no spare left.
    let mut s = spec(
        roles,
        json!([{"name": "app", "owner": "alice"}, {"name": "made", "owner": "alice"},
               {"name": "latin", "owner": "alice", "options": [
                   {"name": "template", "value": "template0", "vartype": "string"},
                   {"name": "encoding", "value": "LATIN1", "vartype": "string"},
                   {"name": "lc_collate", "value": "C", "vartype": "string"},
                   {"name": "lc_ctype", "value": "C", "vartype": "string"}]},
               {"name": "more", "owner": "alice"}]),
    );
    s["delta_operations"] = json!([{"action": "rename_db", "name": "gone", "new_name": "made"}]);
    let mut c = start(cache.path(), s);
    let log = c.log();
    assert!(
        log.contains("spec databases taken from spares, not created databases=[\"app\"]"),
        "{log}"
    );
    assert!(!created(&log, "app"), "{log}");
    for db in ["made", "latin", "more"] {
        assert!(created(&log, db), "{db}: {log}");
    }
    // Both ways give the same database, OID and name aside.
    assert_eq!(shape(&c, "app").await, shape(&c, "made").await);
    // The one with options has them.
    let admin = c.client("postgres").await;
    let row = admin
        .query_one(
            "SELECT pg_encoding_to_char(encoding), datcollate, pg_get_userbyid(datdba) \
             FROM pg_database WHERE datname = 'latin'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "LATIN1");
    assert_eq!(row.get::<_, String>(1), "C");
    assert_eq!(row.get::<_, String>(2), "alice");
    let left: i64 = admin.query_one(SPARES_LEFT, &[]).await.unwrap().get(0);
    assert_eq!(left, 0, "the one spare was taken");
    c.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_superusers_own_database_taken_from_a_spare_is_what_create_database_makes() {
    let cache = test_dir();
    let mut c = start(
        cache.path(),
        spec(json!([]), json!([{"name": "mine", "owner": "cloud_admin"}])),
    );
    let log = c.log();
    assert!(!created(&log, "mine"), "{log}");
    // What a CREATE DATABASE now makes, with the privileged role's grant the
    // start gives each database it creates.
    let admin = c.client("postgres").await;
    for sql in [
        "CREATE DATABASE again",
        "GRANT ALL ON DATABASE again TO neon_superuser",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    assert_eq!(shape(&c, "mine").await, shape(&c, "again").await);
    c.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spares_not_taken_are_dropped_and_a_configure_right_after_the_start_works() {
    let cache = test_dir();
    let mut c = start(cache.path(), spec(json!([]), json!([])));
    // Right away, while the spare is being dropped: the reconcile waits for
    // the drop (else it would see the spare invalid, mid-drop, and plan to
    // drop it too).
    let more = spec(
        json!([{"name": "bob", "encrypted_password": null}]),
        json!([{"name": "later", "owner": "bob"}]),
    );
    let (status, body) = c.configure(&more).await;
    assert_eq!(status, 200, "{body}");
    let admin = c.client("postgres").await;
    wait_for_count(
        &admin,
        SPARES_LEFT,
        0,
        Duration::from_secs(30),
        "spares dropped",
    )
    .await;
    assert_eq!(c.db_owner("later").await, "bob");
    c.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_skips_the_catalog_step_drops_the_spares() {
    let cache = test_dir();
    let mut s = spec(json!([]), json!([]));
    s["skip_pg_catalog_updates"] = json!(true);
    let mut c = start(cache.path(), s);
    let admin = c.client("postgres").await;
    wait_for_count(
        &admin,
        SPARES_LEFT,
        0,
        Duration::from_secs(30),
        "spares dropped",
    )
    .await;
    c.terminate();
}
