//! The executor's batches: runs of role statements and grants go out as one
//! multi-statement query (one round trip, one commit), and a failing batch
//! is replayed statement by statement so the error names the culprit; the
//! work inside new databases is done by the creation workers.

use super::plan::plan;
use super::plan::tests::spec;
use super::tests::Pg;
use super::*;
use serde_json::json;

const SU: &str = "cloud_admin";
const HASH: &str = "0123456789abcdef0123456789abcdef";

/// The transaction id that created each of `names`, from pg_authid.
async fn creating_xids(pg: &Pg, names: &[&str]) -> Vec<String> {
    let client = pg.client("postgres").await;
    let mut xids = Vec::new();
    for name in names {
        let row = client
            .query_one(
                "SELECT xmin::text FROM pg_catalog.pg_authid WHERE rolname = $1",
                &[name],
            )
            .await
            .unwrap();
        xids.push(row.get(0));
    }
    xids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_statements_run_as_one_batch() {
    let pg = Pg::start().await;
    let s = spec(json!({
        "roles": [
            {"name": "a", "encrypted_password": HASH},
            {"name": "b", "encrypted_password": HASH},
            {"name": "c", "encrypted_password": HASH}
        ],
        "databases": [{"name": "d1", "owner": "a"}, {"name": "d2", "owner": "b"}]
    }));
    let connector = pg.connector().with_privileged_role("neon_superuser");
    let report = reconcile(&connector, &s, 2).await.unwrap();
    // The privileged role, 3 roles, 2 databases, 2 grants, 2 default privileges.
    assert_eq!(report.statements, 10);
    let xids = creating_xids(&pg, &["a", "b", "c"]).await;
    assert!(xids.iter().all(|x| *x == xids[0]), "{xids:?}");
    let client = pg.client("postgres").await;
    let granted = client
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_database, pg_catalog.aclexplode(datacl) a \
             WHERE datname IN ('d1', 'd2') AND a.grantee = 'neon_superuser'::regrole",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert!(granted > 0);
    // Each new database's default privileges, set by the creation workers
    // right after creating it.
    for db in ["d1", "d2"] {
        let defaults = pg
            .client(db)
            .await
            .query_one(
                "SELECT count(*) FROM pg_catalog.pg_default_acl, pg_catalog.aclexplode(defaclacl) a \
                 WHERE a.grantee = 'neon_superuser'::regrole AND a.is_grantable",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        assert!(defaults > 0, "{db}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_names_its_statement_and_keeps_the_ones_before() {
    let pg = Pg::start().await;
    let stale = {
        let client = pg.client("postgres").await;
        let catalog = read_catalog(&client).await.unwrap();
        let s = spec(json!({
            "roles": [
                {"name": "first", "encrypted_password": HASH},
                {"name": "clash", "encrypted_password": HASH},
                {"name": "last", "encrypted_password": HASH}
            ]
        }));
        plan(&catalog, &s, SU).unwrap()
    };
    pg.client("postgres")
        .await
        .batch_execute("CREATE ROLE clash")
        .await
        .unwrap();
    let e = apply(&pg.connector(), &stale, 1).await.unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("role \"clash\": CREATE ROLE \"clash\" WITH LOGIN PASSWORD <redacted>"),
        "{msg}"
    );
    assert!(!msg.contains(HASH), "{msg}");
    let names = pg.role_names().await;
    assert!(names.iter().any(|n| n == "first"), "{names:?}");
    assert!(!names.iter().any(|n| n == "last"), "{names:?}");
}
