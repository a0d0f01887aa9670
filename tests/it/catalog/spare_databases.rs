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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_taken_from_a_spare_is_what_create_database_makes() {
    let cache = test_dir();
    let roles = json!([{"name": "alice", "encrypted_password": null}]);
    // "made" is named by a delta operation (a rename from a database that
    // does not exist: nothing to rename), so it is created, not taken.
    let mut s = spec(
        roles,
        json!([{"name": "app", "owner": "alice"}, {"name": "made", "owner": "alice"},
               {"name": "mine", "owner": "cloud_admin"},
               {"name": "latin", "owner": "alice", "options": [
                   {"name": "template", "value": "template0", "vartype": "string"},
                   {"name": "encoding", "value": "LATIN1", "vartype": "string"},
                   {"name": "lc_collate", "value": "C", "vartype": "string"},
                   {"name": "lc_ctype", "value": "C", "vartype": "string"}]}]),
    );
    s["delta_operations"] = json!([{"action": "rename_db", "name": "gone", "new_name": "made"}]);
    s["cluster"]["settings"] =
        json!([{"name": "log_statement", "value": "ddl", "vartype": "enum"}]);
    let mut c = Compute::start_with(Opts {
        spec: Some(s),
        template_cache: cache.path().to_path_buf(),
        ..Opts::default()
    });
    c.wait_running();
    let log = c.log();
    assert!(
        log.contains("spec databases taken from spares, not created databases=[\"app\", \"mine\"]"),
        "{log}"
    );
    for created in ["made", "latin"] {
        assert!(
            log.contains(&format!("statement: CREATE DATABASE \"{created}\"")),
            "{log}"
        );
    }
    for taken in ["app", "mine"] {
        assert!(
            !log.contains(&format!("statement: CREATE DATABASE \"{taken}\"")),
            "{log}"
        );
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
    // The superuser's own database, taken too, is as a creation would make it:
    // the same as one made now by CREATE DATABASE, with the privileged role's
    // grant the start gives.
    for sql in [
        "CREATE DATABASE again",
        "GRANT ALL ON DATABASE again TO neon_superuser",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    assert_eq!(shape(&c, "mine").await, shape(&c, "again").await);
    // The spares not taken go.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_skips_the_catalog_step_drops_the_spares() {
    let cache = test_dir();
    let mut s = spec(json!([]), json!([]));
    s["skip_pg_catalog_updates"] = json!(true);
    let mut c = Compute::start_with(Opts {
        spec: Some(s),
        template_cache: cache.path().to_path_buf(),
        ..Opts::default()
    });
    c.wait_running();
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
