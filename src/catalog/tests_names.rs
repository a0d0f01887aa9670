//! Names as hostile as postgres allows (quotes, semicolons, backslashes,
//! unicode, 63 bytes), created, renamed and dropped through the whole
//! read + plan + apply path against a real PostgreSQL 15.

use super::plan::tests::{spec, tricky_names};
use super::tests::{Pg, HASH, SCRAM};
use super::*;
use crate::spec::ValidSpec;
use serde_json::{json, Value};

/// A new name for `name`: at most 63 bytes, different from every tricky name.
fn renamed(name: &str) -> String {
    let mut base = String::new();
    for c in name.chars() {
        if base.len() + c.len_utf8() > 61 {
            break;
        }
        base.push(c);
    }
    format!("{base}~2")
}

fn password_for(i: usize) -> &'static str {
    if i.is_multiple_of(2) {
        HASH
    } else {
        SCRAM
    }
}

fn stored_for(i: usize) -> String {
    stored_password(password_for(i))
}

fn tricky_spec(names: &[String], deltas: Value) -> ValidSpec {
    let roles: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"name": n, "encrypted_password": password_for(i)}))
        .collect();
    let dbs: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "owner": n}))
        .collect();
    spec(json!({"roles": roles, "databases": dbs, "delta_operations": deltas}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tricky_names_create_rename_delete() {
    let pg = Pg::start().await;
    let names = tricky_names();
    let s = tricky_spec(&names, json!([]));
    let report = reconcile(&pg.connector(), &s, 4).await.unwrap();
    assert_eq!(report.statements, 44);

    let owners = pg.owners().await;
    let catalog = pg.catalog().await;
    for (i, name) in names.iter().enumerate() {
        assert_eq!(owners.get(name), Some(name), "owner of database {name:?}");
        let role = catalog
            .role(name)
            .unwrap_or_else(|| panic!("role {name:?}"));
        assert!(role.login, "{name:?}");
        assert_eq!(
            role.password.as_ref().map(|p| p.expose()),
            Some(stored_for(i).as_str()),
            "password of {name:?}"
        );
    }

    // Re-applying: empty plan, no DDL at all.
    assert!(pg.plan(&s).await.is_empty());
    let before = pg.logged_statements();
    assert!(
        before >= 22,
        "log_statement = ddl must log the CREATE DATABASEs"
    );
    let report = reconcile(&pg.connector(), &s, 4).await.unwrap();
    assert_eq!(report.statements, 0);
    assert_eq!(pg.logged_statements(), before);
    // The log has the DDL, never a password.
    let log = pg.log();
    assert!(log.contains("CREATE DATABASE"), "{log}");
    assert!(!log.contains(HASH) && !log.contains("AQIDBAUG"), "{log}");

    // Rename every role and database.
    let new_names: Vec<String> = names.iter().map(|n| renamed(n)).collect();
    let deltas: Vec<Value> = names
        .iter()
        .zip(&new_names)
        .flat_map(|(old, new)| {
            [
                json!({"action": "rename_role", "name": old, "new_name": new}),
                json!({"action": "rename_db", "name": old, "new_name": new}),
            ]
        })
        .collect();
    let s = tricky_spec(&new_names, json!(deltas));
    reconcile(&pg.connector(), &s, 4).await.unwrap();
    let owners = pg.owners().await;
    let catalog = pg.catalog().await;
    for (i, (old, new)) in names.iter().zip(&new_names).enumerate() {
        assert!(
            catalog.role(old).is_none() && catalog.database(old).is_none(),
            "{old:?}"
        );
        assert_eq!(
            owners.get(new),
            Some(new),
            "owner of renamed database {new:?}"
        );
        // md5 passwords, cleared by the rename, are set again.
        assert_eq!(
            catalog
                .role(new)
                .unwrap()
                .password
                .as_ref()
                .map(|p| p.expose()),
            Some(stored_for(i).as_str()),
            "{new:?}"
        );
    }
    // The same spec again (renames now no-ops) changes nothing.
    assert!(pg.plan(&s).await.is_empty());

    // Delete them all.
    let deltas: Vec<Value> = new_names
        .iter()
        .flat_map(|n| {
            [
                json!({"action": "delete_db", "name": n}),
                json!({"action": "delete_role", "name": n}),
            ]
        })
        .collect();
    let s = spec(json!({"delta_operations": deltas}));
    reconcile(&pg.connector(), &s, 4).await.unwrap();
    let catalog = pg.catalog().await;
    assert_eq!(catalog.roles.len(), 1, "{:?}", catalog.roles);
    let dbs: Vec<&str> = catalog.databases.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(dbs, ["postgres", "template0", "template1"]);
    assert!(pg.plan(&s).await.is_empty());
}
