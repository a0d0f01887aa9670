//! The migrations against a real PostgreSQL: the reference's twelve with
//! their effect on this version, a cluster the reference migrated part way
//! ending exactly as a fresh one, and a counter beyond ours left alone.

use super::migrations::{self, MIGRATIONS, REFERENCE_MIGRATIONS};
use super::privileged;
use super::tests::Pg;
use tokio_postgres::Client;

async fn counter(c: &Client) -> i64 {
    c.query_one("SELECT id FROM neon_migration.migration_id", &[])
        .await
        .unwrap()
        .get(0)
}

/// What the migrations give `role`, with its name taken out: its attributes,
/// the roles it is a member of (with the admin option), the functions it may
/// run, what it holds on schema public and the default privileges there.
async fn fingerprint(c: &Client, role: &str) -> Vec<String> {
    const FINGERPRINT: &str = "\
        SELECT pg_catalog.format('attributes super=%s login=%s inherit=%s createrole=%s createdb=%s replication=%s bypassrls=%s', \
                 rolsuper, rolcanlogin, rolinherit, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls) \
          FROM pg_catalog.pg_roles WHERE rolname = $1 \
        UNION ALL \
        SELECT pg_catalog.format('member of %s admin=%s', g.rolname, m.admin_option) \
          FROM pg_catalog.pg_auth_members m \
          JOIN pg_catalog.pg_roles g ON g.oid = m.roleid \
          JOIN pg_catalog.pg_roles r ON r.oid = m.member \
         WHERE r.rolname = $1 \
        UNION ALL \
        SELECT pg_catalog.format('executes %s', f) \
          FROM pg_catalog.unnest(ARRAY['pg_catalog.pg_show_replication_origin_status()']) f \
         WHERE pg_catalog.has_function_privilege($1, f, 'EXECUTE') \
        UNION ALL \
        SELECT pg_catalog.format('schema public usage=%s create=%s', \
                 pg_catalog.has_schema_privilege($1, 'public', 'USAGE WITH GRANT OPTION'), \
                 pg_catalog.has_schema_privilege($1, 'public', 'CREATE WITH GRANT OPTION')) \
        UNION ALL \
        SELECT pg_catalog.format('default %s %s', d.defaclobjtype, \
                 pg_catalog.replace(d.defaclacl::pg_catalog.text, $1, 'P')) \
          FROM pg_catalog.pg_default_acl d \
        ORDER BY 1";
    let mut rows: Vec<String> = c
        .query(FINGERPRINT, &[&role])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn a_fresh_cluster_gets_the_reference_s_twelve_then_ours() {
    let pg = Pg::start().await;
    let c = pg.client("postgres").await;
    // Roles the reference's id 2 repairs: a member that does not inherit,
    // and an outsider that bypasses row-level security.
    privileged::ensure(&c, "neon_superuser").await.unwrap();
    c.batch_execute(
        "ALTER ROLE neon_superuser NOBYPASSRLS; \
         CREATE ROLE insider NOINHERIT IN ROLE neon_superuser; \
         CREATE ROLE outsider BYPASSRLS",
    )
    .await
    .unwrap();
    let reached = migrations::run(&c, "neon_superuser").await.unwrap();
    assert_eq!(reached, MIGRATIONS.len() as i64);
    assert_eq!(counter(&c).await, 14);
    let row = c
        .query_one(
            "SELECT (SELECT rolbypassrls FROM pg_roles WHERE rolname = 'neon_superuser'), \
                    (SELECT rolinherit FROM pg_roles WHERE rolname = 'insider'), \
                    (SELECT rolbypassrls FROM pg_roles WHERE rolname = 'outsider'), \
                    EXISTS (SELECT FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid \
                             WHERE g.rolname = 'pg_create_subscription' \
                               AND m.member = 'neon_superuser'::regrole), \
                    (SELECT admin_option FROM pg_auth_members \
                      WHERE roleid = 'pg_monitor'::regrole AND member = 'neon_superuser'::regrole), \
                    has_function_privilege('neon_superuser', \
                      'pg_catalog.pg_show_replication_origin_status()', 'EXECUTE'), \
                    (SELECT admin_option FROM pg_auth_members \
                      WHERE roleid = 'pg_signal_backend'::regrole AND member = 'neon_superuser'::regrole), \
                    has_schema_privilege('neon_superuser', 'public', 'CREATE WITH GRANT OPTION'), \
                    current_setting('server_version_num')::int",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "id 1: BYPASSRLS");
    assert!(row.get::<_, bool>(1), "id 2: members inherit");
    assert!(!row.get::<_, bool>(2), "id 2: no one else bypasses RLS");
    // Id 3 acts from PostgreSQL 16 on (the tests run on 15).
    let version: i32 = row.get(8);
    assert_eq!(row.get::<_, bool>(3), version >= 160000, "id 3");
    assert!(row.get::<_, bool>(4), "id 4: pg_monitor with admin option");
    assert!(row.get::<_, bool>(5), "id 11");
    assert!(
        row.get::<_, bool>(6),
        "id 12: pg_signal_backend with admin option"
    );
    assert!(row.get::<_, bool>(7), "id 13 (ours)");
    let log = pg.log();
    assert!(!log.contains("ERROR"), "{log}");
}

#[tokio::test]
async fn a_cluster_the_reference_migrated_part_way_ends_as_a_fresh_one() {
    let pg = Pg::start().await;
    let admin = pg.client("postgres").await;
    // One database per starting point (the counter lives in the database
    // migrated), one privileged role each (the migrations change roles,
    // which are the cluster's).
    let fresh_role = "priv_fresh";
    admin
        .batch_execute("CREATE DATABASE m_fresh")
        .await
        .unwrap();
    let fresh = pg.client("m_fresh").await;
    privileged::ensure(&fresh, fresh_role).await.unwrap();
    migrations::run(&fresh, fresh_role).await.unwrap();
    let expected = fingerprint(&fresh, fresh_role).await;
    for n in [1, 2, 4, 9, 11, REFERENCE_MIGRATIONS] {
        let (db, role) = (format!("m_{n}"), format!("priv_{n}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        let c = pg.client(&db).await;
        privileged::ensure(&c, &role).await.unwrap();
        // As the reference leaves it after its first n (the same ids, the
        // same effects), then our start.
        let first = &MIGRATIONS[..n as usize];
        assert_eq!(
            migrations::run_list(&c, &role, first, None).await.unwrap(),
            n
        );
        assert_eq!(migrations::run(&c, &role).await.unwrap(), 14);
        assert_eq!(fingerprint(&c, &role).await, expected, "resumed after {n}");
    }
}

#[tokio::test]
async fn a_counter_beyond_ours_is_left_alone() {
    let pg = Pg::start().await;
    let c = pg.client("postgres").await;
    privileged::ensure(&c, "neon_superuser").await.unwrap();
    migrations::run_list(&c, "neon_superuser", &MIGRATIONS[..1], None)
        .await
        .unwrap();
    c.batch_execute("UPDATE neon_migration.migration_id SET id = 99")
        .await
        .unwrap();
    assert_eq!(migrations::run(&c, "neon_superuser").await.unwrap(), 99);
    assert_eq!(counter(&c).await, 99);
    // Nothing after id 1 ran.
    let monitor: bool = c
        .query_one(
            "SELECT pg_has_role('neon_superuser', 'pg_monitor', 'MEMBER')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!monitor);
}
