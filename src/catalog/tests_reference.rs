//! The reference's catalog behaviour (privileged role, migrations, dropped
//! subscriptions, role drops with grants from others), against a real
//! PostgreSQL started per test (see `tests::Pg`).

use super::model::{Catalog, RoleInfo};
use super::plan::tests::spec;
use super::tests::Pg;
use super::*;
use serde_json::json;
use tokio_postgres::Client;

const SU: &str = "cloud_admin";
const PRIV: &str = "neon_superuser";

#[test]
fn the_privileged_plan_makes_members_and_grants_databases() {
    let s = spec(json!({
        "roles": [{"name": "a"},
                  {"name": "b", "options": [{"name": "createdb", "value": "false", "vartype": "bool"}]}],
        "databases": [{"name": "d1", "owner": "a"}, {"name": "d2", "owner": "b"}]
    }));
    let p = plan_with(&Catalog::default(), &s, SU, Some(PRIV)).unwrap();
    let sqls: Vec<(Option<&str>, &str)> = p.steps.iter().map(|s| (s.database(), s.sql())).collect();
    let defaults = "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO \"neon_superuser\" WITH GRANT OPTION; \
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO \"neon_superuser\" WITH GRANT OPTION";
    assert_eq!(
        sqls,
        [
            (None, "CREATE ROLE \"neon_superuser\" NOSUPERUSER NOLOGIN INHERIT CREATEROLE CREATEDB \
                    REPLICATION BYPASSRLS IN ROLE pg_read_all_data, pg_write_all_data"),
            (None, "CREATE ROLE \"a\" WITH LOGIN INHERIT CREATEROLE CREATEDB BYPASSRLS REPLICATION IN ROLE \"neon_superuser\""),
            (None, "CREATE ROLE \"b\" WITH LOGIN NOCREATEDB INHERIT CREATEROLE BYPASSRLS REPLICATION IN ROLE \"neon_superuser\""),
            // A reconciliation (`PlanContext::Reconcile`): postgres' default strategy.
            (None, "CREATE DATABASE \"d1\" WITH OWNER \"a\""),
            (None, "CREATE DATABASE \"d2\" WITH OWNER \"b\""),
            (None, "GRANT ALL ON DATABASE \"d1\" TO \"neon_superuser\""),
            (None, "GRANT ALL ON DATABASE \"d2\" TO \"neon_superuser\""),
            (Some("d1"), defaults),
            (Some("d2"), defaults),
        ]
    );
    // The creations stay one parallel run; the per-database steps come after.
    assert!(p.steps[3].creates_database() && p.steps[4].creates_database());
    assert!(p.steps[7].group() > p.steps[6].group());
    // With the role in the catalog, it is not created again.
    let mut cat = Catalog::default();
    cat.roles.push(RoleInfo::new(PRIV));
    let p = plan_with(&cat, &s, SU, Some(PRIV)).unwrap();
    assert!(p.steps[0].sql().starts_with("CREATE ROLE \"a\""));
    // The privileged role itself is protected.
    let s = spec(json!({"delta_operations": [{"action": "delete_role", "name": PRIV}]}));
    let e = plan_with(&Catalog::default(), &s, SU, Some(PRIV)).unwrap_err();
    assert!(e.to_string().contains("privileged role"), "{e}");
}

async fn migration_id(c: &Client) -> i64 {
    c.query_one("SELECT id FROM neon_migration.migration_id", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn neon_scenario_23_migrations_retry() {
    let pg = Pg::start().await;
    let c = pg.client("postgres").await;
    privileged::ensure(&c, PRIV).await.unwrap();
    let last = migrations::MIGRATIONS.len() as i64;
    // A failure at id 3: the error names it, ids 1 and 2 stay applied.
    let e = migrations::run_list(&c, PRIV, migrations::MIGRATIONS, Some(3))
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("migration id=3"), "{e:#}");
    assert_eq!(migration_id(&c).await, 2);
    assert_eq!(
        stats::migration_failures_of(3),
        1,
        "counted in compute_ctl_db_migration_failed_total"
    );
    // The next run resumes from it and reaches the end; a third one is a no-op.
    let reached = migrations::run(&c, PRIV).await.unwrap();
    assert_eq!(reached, last);
    assert_eq!(migration_id(&c).await, last);
    assert_eq!(migrations::run(&c, PRIV).await.unwrap(), last);
    // What the migrations gave the privileged role (PostgreSQL 15 here).
    let row = c
        .query_one(
            "SELECT rolsuper, rolcanlogin, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, \
             pg_has_role('neon_superuser', 'pg_monitor', 'MEMBER'), \
             pg_has_role('neon_superuser', 'pg_signal_backend', 'MEMBER'), \
             pg_has_role('neon_superuser', 'pg_read_all_data', 'MEMBER'), \
             has_function_privilege('neon_superuser', 'pg_show_replication_origin_status()', 'EXECUTE') \
             FROM pg_roles WHERE rolname = 'neon_superuser'",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<bool> = (0..10).map(|i| row.get(i)).collect();
    assert_eq!(
        got,
        [false, false, true, true, true, true, true, true, true, true]
    );
}

#[tokio::test]
async fn neon_scenario_19_drop_subscriptions_before_start() {
    let pg = Pg::start().await;
    let c = pg.client("postgres").await;
    c.batch_execute("CREATE DATABASE sub").await.unwrap();
    let sub = pg.client("sub").await;
    let create = |name: &str| {
        format!(
            "CREATE SUBSCRIPTION {name} CONNECTION 'host=127.0.0.1 port={} dbname=postgres' \
             PUBLICATION p WITH (connect = false)",
            pg.port
        )
    };
    sub.batch_execute(&create("sub_old")).await.unwrap();
    let subs = |c: Client| async move {
        c.query("SELECT subname::text FROM pg_subscription ORDER BY 1", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let connector = pg.connector();
    assert_eq!(drop_before_start(&connector, "tl-child").await.unwrap(), 1);
    assert!(subs(pg.client("postgres").await).await.is_empty());
    let done: Vec<String> = c
        .query("SELECT timeline_id FROM neon.drop_subscriptions_done", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(done, ["tl-child"]);
    // Once per timeline: a subscription made since survives the next start.
    sub.batch_execute(&create("sub_new")).await.unwrap();
    assert_eq!(drop_before_start(&connector, "tl-child").await.unwrap(), 0);
    assert_eq!(subs(pg.client("postgres").await).await, ["sub_new"]);
}

/// A client connected as `user` (the test cluster trusts local connections).
async fn client_as(pg: &Pg, user: &str, db: &str) -> Client {
    let mut config = pg.config(db);
    config.user(user);
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

async fn role_exists(c: &Client, name: &str) -> bool {
    c.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn neon_scenario_15_drop_role_with_table_privileges_from_neon_superuser() {
    let pg = Pg::start().await;
    let connector = pg.connector().with_privileged_role(PRIV);
    let base = json!({
        "roles": [{"name": "neon", "encrypted_password": "0123456789abcdef0123456789abcdef", "options": []}],
        "databases": [{"name": "db_with_permissions", "owner": "neon"}]
    });
    start_as_at_a_restart(&connector, &base).await;
    let admin = pg.client("db_with_permissions").await;
    admin
        .batch_execute(
            "CREATE TABLE public.t (x int); CREATE VIEW public.v AS SELECT * FROM public.t",
        )
        .await
        .unwrap();
    let hostile = "'); MALFORMED SQL $$ $x$ $/;5%$ %I";
    let neon = client_as(&pg, "neon", "db_with_permissions").await;
    let quoted = postgres_protocol::escape::escape_identifier(hostile);
    neon.batch_execute(&format!(
        "CREATE ROLE {quoted}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {quoted}"
    ))
    .await
    .unwrap();
    let grantors: Vec<String> = admin
        .query(
            "SELECT grantor::text FROM information_schema.table_privileges WHERE grantee = $1",
            &[&hostile],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        grantors,
        [PRIV, PRIV],
        "granted through the privileged role"
    );
    let mut drop = base.clone();
    drop["delta_operations"] = json!([{"action": "delete_role", "name": hostile}]);
    reconcile(&connector, &spec(drop), 2).await.unwrap();
    assert!(!role_exists(&admin, hostile).await);
    // A role whose granted tables are gone with their schema.
    neon.batch_execute(
        "CREATE ROLE readonly2; GRANT SELECT ON ALL TABLES IN SCHEMA public TO readonly2",
    )
    .await
    .unwrap();
    admin
        .batch_execute("DROP SCHEMA public CASCADE")
        .await
        .unwrap();
    let mut drop = base;
    drop["delta_operations"] = json!([{"action": "delete_role", "name": "readonly2"}]);
    reconcile(&connector, &spec(drop), 2).await.unwrap();
    assert!(!role_exists(&admin, "readonly2").await);
}

#[tokio::test]
async fn neon_scenario_16_drop_role_with_table_privileges_from_non_neon_superuser() {
    let pg = Pg::start().await;
    let connector = pg.connector().with_privileged_role(PRIV);
    let owner = "; RAISE EXCEPTION 'SQL injection detected;";
    let base = json!({
        "roles": [{"name": owner, "encrypted_password": "0123456789abcdef0123456789abcdef"}],
        "databases": [{"name": "neondb", "owner": owner}]
    });
    start_as_at_a_restart(&connector, &base).await;
    let grantee = "'$$; RAISE EXCEPTION 'SQL injection detected;'";
    let quoted = postgres_protocol::escape::escape_identifier(grantee);
    let as_owner = client_as(&pg, owner, "neondb").await;
    as_owner
        .batch_execute(&format!(
            "CREATE USER {quoted}; CREATE TABLE test_table (x int); GRANT ALL ON TABLE test_table TO {quoted}"
        ))
        .await
        .unwrap();
    let mut drop = base;
    drop["delta_operations"] = json!([{"action": "delete_role", "name": grantee}]);
    reconcile(&connector, &spec(drop), 2).await.unwrap();
    assert!(!role_exists(&pg.client("postgres").await, grantee).await);
}

#[tokio::test]
async fn a_reconcile_without_the_start_step_creates_the_privileged_role() {
    // As after a start with skip_pg_catalog_updates, then a full /configure.
    let pg = Pg::start().await;
    let connector = pg.connector().with_privileged_role(PRIV);
    let s = spec(json!({"roles": [{"name": "r"}], "databases": [{"name": "d", "owner": "r"}]}));
    reconcile(&connector, &s, 2).await.unwrap();
    let row = pg
        .client("postgres")
        .await
        .query_one(
            "SELECT pg_has_role('r', 'neon_superuser', 'MEMBER'), \
             has_database_privilege('neon_superuser', 'd', 'CREATE')",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0) && row.get::<_, bool>(1));
    // Applied again: nothing to do.
    assert!(dry_run(&connector, &s).await.unwrap().is_empty());
}

/// The catalog step of a start on data of unknown origin, two connections at once.
async fn start_as_at_a_restart(connector: &Connector, cluster: &serde_json::Value) {
    start(
        connector,
        &spec(cluster.clone()),
        Concurrency::Fixed(2),
        Origin::Unknown,
    )
    .await
    .unwrap();
}
