//! New databases get the privileged role's default privileges whichever way
//! they are made: inherited from template1 (given them by the first
//! reconcile that creates a database), or set in the database when it is
//! made from another template or template1 cannot be used.

use super::model::{Catalog, RoleInfo};
use super::plan::tests::spec;
use super::plan::Step;
use super::tests::Pg;
use super::*;
use serde_json::json;

const PRIV: &str = "neon_superuser";

/// The databases a plan runs statements in.
fn per_database(plan: &Plan) -> Vec<&str> {
    plan.steps.iter().filter_map(Step::database).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_databases_have_the_default_privileges_whichever_path_made_them() {
    let pg = Pg::start().await;
    let connector = pg.connector().with_privileged_role(PRIV);
    // template1 with only part of them: not taken for ready.
    privileged::ensure(&pg.client("postgres").await, PRIV)
        .await
        .unwrap();
    pg.client("template1")
        .await
        .batch_execute(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO neon_superuser WITH GRANT OPTION",
        )
        .await
        .unwrap();
    assert!(!pg.has_defaults("template1").await);
    let first = spec(json!({
        "roles": [{"name": "a"}],
        "databases": [
            {"name": "plain", "owner": "a"},
            {"name": "from template0", "owner": "a", "options": [
                {"name": "template", "value": "template0", "vartype": "string"}]}
        ]
    }));
    // The dry run changes nothing and sets them in each new database.
    let dry = dry_run(&connector, &first).await.unwrap();
    assert_eq!(per_database(&dry), ["plain", "from template0"], "{dry}");
    assert!(!pg.has_defaults("template1").await);
    // The reconcile gives them to template1 first: only the database made
    // from template0 needs a statement of its own.
    let report = reconcile(&connector, &first, 2).await.unwrap();
    // role, 2 creations, 2 grants, 1 in "from template0".
    assert_eq!(report.statements, 6, "{report:?}");
    for db in ["template1", "plain", "from template0"] {
        assert!(pg.has_defaults(db).await, "{db}");
    }
    // Later creations inherit them.
    let second = spec(json!({
        "roles": [{"name": "a"}],
        "databases": [{"name": "plain", "owner": "a"}, {"name": "from template0", "owner": "a"},
                      {"name": "later", "owner": "a"}]
    }));
    let dry = dry_run(&connector, &second).await.unwrap();
    assert!(per_database(&dry).is_empty(), "{dry}");
    reconcile(&connector, &second, 2).await.unwrap();
    assert!(pg.has_defaults("later").await);
    // The privileged role's grants went with the copy: the shared
    // dependencies that keep it from being dropped while they exist.
    let deps: i64 = pg
        .client("later")
        .await
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_shdepend \
             WHERE dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = 'later') \
             AND classid = 'pg_catalog.pg_default_acl'::regclass \
             AND refobjid = 'neon_superuser'::regrole",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(deps, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template1_that_refuses_connections_falls_back_to_each_database() {
    let pg = Pg::start().await;
    let connector = pg.connector().with_privileged_role(PRIV);
    privileged::ensure(&pg.client("postgres").await, PRIV)
        .await
        .unwrap();
    pg.client("postgres")
        .await
        .batch_execute("ALTER DATABASE template1 ALLOW_CONNECTIONS false")
        .await
        .unwrap();
    let s = spec(json!({"roles": [{"name": "a"}], "databases": [{"name": "d", "owner": "a"}]}));
    let report = reconcile(&connector, &s, 2).await.unwrap();
    // The role, the creation, the grant, the defaults in d.
    assert_eq!(report.statements, 4, "{report:?}");
    assert!(pg.has_defaults("d").await);
    pg.client("postgres")
        .await
        .batch_execute("ALTER DATABASE template1 ALLOW_CONNECTIONS true")
        .await
        .unwrap();
    assert!(!pg.has_defaults("template1").await);
}

#[test]
fn the_planner_leaves_inherited_default_privileges_out() {
    let s = spec(json!({
        "roles": [{"name": "a"}],
        "databases": [
            {"name": "d1", "owner": "a"},
            {"name": "d2", "owner": "a", "options": [
                {"name": "Template ", "value": "other", "vartype": "string"}]}
        ]
    }));
    let mut cat = Catalog::default();
    cat.roles.push(RoleInfo::new(PRIV));
    let without = plan_with(&cat, &s, "cloud_admin", Some(PRIV)).unwrap();
    assert_eq!(per_database(&without), ["d1", "d2"]);
    cat.template1_defaults = true;
    let with = plan_with(&cat, &s, "cloud_admin", Some(PRIV)).unwrap();
    assert_eq!(per_database(&with), ["d2"], "{with}");
    assert_eq!(
        with.steps.last().map(Step::sql),
        Some(template1::default_privileges_sql(PRIV).as_str())
    );
}
