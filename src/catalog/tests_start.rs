//! The catalog step of a primary's start ([`start`]): template1 is given the
//! privileged role's default privileges beside the migrations, and a cluster
//! whose migrations are all recorded is not written to for them.

use super::plan::tests::spec;
use super::tests::Pg;
use super::*;
use serde_json::json;
use tokio_postgres::Client;

const PRIV: &str = "neon_superuser";

/// The transaction ids that last wrote the migrations' table row and schema.
async fn migration_xmins(c: &Client) -> (String, String) {
    let row = c
        .query_one(
            "SELECT (SELECT xmin::text FROM neon_migration.migration_id WHERE key = 0), \
             (SELECT xmin::text FROM pg_namespace WHERE nspname = 'neon_migration')",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_prepares_template1_beside_the_migrations() {
    let pg = Pg::start().await;
    let connector = pg.connector().with_privileged_role(PRIV);
    // A spec without databases leaves template1 alone.
    start(
        &connector,
        &spec(json!({"roles": [{"name": "a"}]})),
        Concurrency::Fixed(2),
        Origin::Unknown,
    )
    .await
    .unwrap();
    assert!(!pg.has_defaults("template1").await);
    let c = pg.client("postgres").await;
    let last = migrations::MIGRATIONS.len() as i64;
    let id: i64 = c
        .query_one("SELECT id FROM neon_migration.migration_id", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(id, last);
    // One that lists databases: template1 gets them at start, and the new
    // database inherits them (no statement of its own in it).
    let with_db = spec(json!({
        "roles": [{"name": "a"}],
        "databases": [{"name": "d 1", "owner": "a"}]
    }));
    let before = migration_xmins(&c).await;
    let report = start(&connector, &with_db, Concurrency::Fixed(2), Origin::Unknown)
        .await
        .unwrap();
    // The creation and its grant.
    assert_eq!(report.statements, 2, "{report:?}");
    assert!(pg.has_defaults("template1").await);
    assert!(pg.has_defaults("d 1").await);
    // The migrations were all recorded: nothing of theirs was written again.
    assert_eq!(migration_xmins(&c).await, before);
    // A start with nothing left to do does nothing.
    let report = start(&connector, &with_db, Concurrency::Fixed(2), Origin::Unknown)
        .await
        .unwrap();
    assert_eq!(report.statements, 0, "{report:?}");
    assert_eq!(migration_xmins(&c).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_resume_when_the_table_lost_its_row() {
    let pg = Pg::start().await;
    let c = pg.client("postgres").await;
    privileged::ensure(&c, PRIV).await.unwrap();
    let last = migrations::MIGRATIONS.len() as i64;
    assert_eq!(migrations::run(&c, PRIV).await.unwrap(), last);
    // The table without its row: made again from 0, every migration re-run
    // (they are idempotent), as before the table was read first.
    c.batch_execute("DELETE FROM neon_migration.migration_id")
        .await
        .unwrap();
    let m = migrations::run_all(&c, PRIV).await.unwrap();
    assert_eq!((m.reached, m.applied), (last, last as usize));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_template_holds_what_a_start_would_do_first() {
    let pg = Pg::start().await;
    let connector = pg.connector().with_privileged_role(PRIV);
    finish_template(&connector).await.unwrap();
    let c = pg.client("postgres").await;
    let row = c
        .query_one(
            "SELECT rolcreaterole AND rolcreatedb AND rolreplication AND rolbypassrls \
             AND NOT rolsuper AND NOT rolcanlogin, \
             (SELECT id FROM neon_migration.migration_id WHERE key = 0) \
             FROM pg_roles WHERE rolname = $1",
            &[&PRIV],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the privileged role's attributes");
    assert_eq!(row.get::<_, i64>(1), migrations::MIGRATIONS.len() as i64);
    assert!(pg.has_defaults("template1").await);
    // Done again, it finds everything done.
    let before = migration_xmins(&c).await;
    finish_template(&connector).await.unwrap();
    assert_eq!(migration_xmins(&c).await, before);

    // A start told the cluster is a finished template's copy creates the
    // spec's database with the defaults inherited, and nothing more.
    let with_db = spec(json!({
        "roles": [{"name": "a"}],
        "databases": [{"name": "d 1", "owner": "a"}]
    }));
    let concurrency = Concurrency::ShareOfMaxConnections;
    let report = start(&connector, &with_db, concurrency, Origin::FinishedTemplate)
        .await
        .unwrap();
    assert_eq!(report.statements, 3, "role, database, grant: {report:?}");
    assert!(pg.has_defaults("d 1").await);
    assert_eq!(migration_xmins(&c).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_share_of_max_connections_is_a_tenth() {
    // The test cluster runs with max_connections = 40.
    let pg = Pg::start().await;
    let c = pg.client("postgres").await;
    assert_eq!(super::start::share_of_max_connections(&c).await, 4);
}

#[test]
fn the_template_key_names_the_role_and_the_migrations() {
    let a = template_finish_key("neon_superuser");
    let b = template_finish_key("my_superuser");
    assert_ne!(a, b);
    assert!(a.contains("privileged_role=\"neon_superuser\""), "{a}");
    let n = migrations::MIGRATIONS.len();
    assert!(a.contains(&format!("migrations={n} ")), "{a}");
    assert_eq!(a, template_finish_key("neon_superuser"), "stable");
}
