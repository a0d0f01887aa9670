//! Databases a local start creates several at once are file copies of
//! their template (`STRATEGY FILE_COPY`, see the planner's `file_copy`); so
//! are a running compute's when its apply creates several with `fsync`
//! lifted (see `bulk.rs`); one creation, or a spec that sets `fsync`, keeps
//! postgres' default. Either way a new database is the template as it is at
//! that moment, with what the start gave template1.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

/// The `CREATE DATABASE` statements postgres logged (`log_statement = ddl`),
/// as (database, with `STRATEGY FILE_COPY`).
fn creations(log: &str) -> Vec<(String, bool)> {
    log.lines()
        .filter_map(|l| l.split("statement: CREATE DATABASE ").nth(1))
        .map(|rest| {
            let name = rest.split(" WITH OWNER").next().unwrap_or(rest);
            (name.to_string(), rest.contains("STRATEGY FILE_COPY"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_creations_are_file_copies_unless_the_syncs_stay() {
    let settings = json!([{"name": "log_statement", "value": "ddl", "vartype": "enum"}]);
    let roles = json!([{"name": "alice", "encrypted_password": null},
                       {"name": "bob", "encrypted_password": null}]);
    let mut first = spec(
        roles.clone(),
        // "app" is the template's spare database renamed (see
        // spare_databases.rs); the others are created.
        json!([{"name": "app", "owner": "alice"}, {"name": "app two", "owner": "bob"},
               {"name": "app three", "owner": "alice"},
               {"name": "walled", "owner": "bob", "options": [
                   {"name": "strategy", "value": "wal_log", "vartype": "string"}]}]),
    );
    first["cluster"]["settings"] = settings.clone();
    let mut c = Compute::start_with(Opts {
        spec: Some(first.clone()),
        ..Opts::default()
    });
    c.wait_running();
    c.wait_for_log(
        "statement: CREATE DATABASE \"walled\"",
        Duration::from_secs(10),
    );
    // The spec's own strategy is kept.
    let mut made = creations(&c.log());
    made.sort();
    assert_eq!(
        made,
        [
            ("\"app three\"".to_string(), true),
            ("\"app two\"".to_string(), true),
            ("\"walled\"".to_string(), false),
        ],
        "{}",
        c.log()
    );
    // A copy is a whole database: its owner, and the privileged role's
    // default privileges, which the start put in template1 just before.
    let admin = c.client("postgres").await;
    for (db, owner) in [("app", "alice"), ("app two", "bob"), ("walled", "bob")] {
        let row = admin
            .query_one(
                "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
                &[&db],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), owner, "{db}");
        let acls: i64 = c
            .client(db)
            .await
            .query_one("SELECT count(*) FROM pg_default_acl", &[])
            .await
            .unwrap()
            .get(0);
        assert!(acls > 0, "{db} has template1's default privileges");
        c.client(db)
            .await
            .batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
            .await
            .unwrap();
    }
    // Two more on the running compute (a reconfiguration), with fsync
    // lifted for them: file copies too, whose checkpoints sync nothing.
    let mut second = first.clone();
    let dbs = second["cluster"]["databases"].as_array_mut().unwrap();
    dbs.push(json!({"name": "later", "owner": "alice"}));
    dbs.push(json!({"name": "later two", "owner": "bob"}));
    let (code, body) = c.configure(&second).await;
    assert_eq!(code, 200, "{body}");
    for db in ["later", "later two"] {
        c.wait_for_log(
            &format!("statement: CREATE DATABASE \"{db}\""),
            Duration::from_secs(10),
        );
        assert!(creations(&c.log()).contains(&(format!("\"{db}\""), true)));
    }
    // One alone: postgres' default, whose creation forces no checkpoint.
    let mut third = second.clone();
    let dbs = third["cluster"]["databases"].as_array_mut().unwrap();
    dbs.push(json!({"name": "alone", "owner": "alice"}));
    let (code, body) = c.configure(&third).await;
    assert_eq!(code, 200, "{body}");
    c.wait_for_log(
        "statement: CREATE DATABASE \"alone\"",
        Duration::from_secs(10),
    );
    assert!(creations(&c.log()).contains(&("\"alone\"".to_string(), false)));
    // Two more with the spec's own fsync on: not lifted, so postgres'
    // default, whose checkpoints a running compute's users would pay for.
    let mut fourth = third.clone();
    fourth["cluster"]["settings"] = json!([
        {"name": "log_statement", "value": "ddl", "vartype": "enum"},
        {"name": "fsync", "value": "on", "vartype": "bool"}]);
    let dbs = fourth["cluster"]["databases"].as_array_mut().unwrap();
    dbs.push(json!({"name": "synced", "owner": "alice"}));
    dbs.push(json!({"name": "synced two", "owner": "bob"}));
    let (code, body) = c.configure(&fourth).await;
    assert_eq!(code, 200, "{body}");
    for db in ["synced", "synced two"] {
        c.wait_for_log(
            &format!("statement: CREATE DATABASE \"{db}\""),
            Duration::from_secs(10),
        );
        assert!(creations(&c.log()).contains(&(format!("\"{db}\""), false)));
    }
}
