//! The catalog step of a primary's start ([`start`]): template1 is given the
//! privileged role's default privileges beside the migrations, and a cluster
//! whose migrations are all recorded is not written to for them.

use super::plan::tests::spec;
use super::tests::Pg;
use super::*;
use serde_json::json;
use tokio_postgres::Client;

const PRIV: &str = "neon_superuser";

async fn has_defaults(pg: &Pg, db: &str) -> bool {
    pg.client(db)
        .await
        .query_one(template::HAS_DEFAULTS, &[&PRIV])
        .await
        .unwrap()
        .get(1)
}

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
    start(&connector, &spec(json!({"roles": [{"name": "a"}]})), 2)
        .await
        .unwrap();
    assert!(!has_defaults(&pg, "template1").await);
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
    let report = start(&connector, &with_db, 2).await.unwrap();
    // The creation and its grant.
    assert_eq!(report.statements, 2, "{report:?}");
    assert!(has_defaults(&pg, "template1").await);
    assert!(has_defaults(&pg, "d 1").await);
    // The migrations were all recorded: nothing of theirs was written again.
    assert_eq!(migration_xmins(&c).await, before);
    // A start with nothing left to do does nothing.
    let report = start(&connector, &with_db, 2).await.unwrap();
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
