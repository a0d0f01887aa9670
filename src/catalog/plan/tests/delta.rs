//! Delta operations: renames and drops in the contract's order, simulated
//! so that later steps see them; what a dropped role owns handed over first.

use super::*;

#[test]
fn phases_run_in_contract_order() {
    let cat = catalog(
        vec![role("old", None), role("gone", None)],
        vec![
            DatabaseInfo::new("olddb", "old"),
            DatabaseInfo::new("dropme", "gone"),
        ],
    );
    let s = spec(json!({
        // Given in reverse: the plan still follows the contract's order.
        "delta_operations": [
            {"action": "delete_role", "name": "gone"},
            {"action": "delete_db", "name": "dropme"},
            {"action": "rename_db", "name": "olddb", "new_name": "newdb"},
            {"action": "rename_role", "name": "old", "new_name": "new"}
        ],
        "roles": [{"name": "new"}, {"name": "fresh"}],
        "databases": [{"name": "newdb", "owner": "new"}, {"name": "freshdb", "owner": "fresh"}]
    }));
    let p = check(
        &cat,
        &s,
        &around_handover(
            &[
                "ALTER ROLE \"old\" RENAME TO \"new\"",
                "ALTER DATABASE \"olddb\" RENAME TO \"newdb\"",
                "DROP DATABASE \"dropme\" WITH (FORCE)",
            ],
            "gone",
            3,
            &[
                "DROP ROLE \"gone\"",
                "CREATE ROLE \"fresh\" WITH LOGIN INHERIT CREATEROLE CREATEDB BYPASSRLS REPLICATION IN ROLE \"neon_superuser\"",
                "CREATE DATABASE \"freshdb\" WITH OWNER \"fresh\"",
                "GRANT ALL ON DATABASE \"freshdb\" TO \"neon_superuser\"",
            ],
        ),
    );
    use Phase::*;
    let where_: Vec<(Phase, Option<&str>)> =
        p.steps.iter().map(|s| (s.phase(), s.database())).collect();
    let (n, pg, t1) = (Some("newdb"), Some("postgres"), Some("template1"));
    assert_eq!(
        where_,
        [
            (Delta, None),
            (Delta, None),
            (Delta, None),
            (Delta, n),
            (Delta, n),
            (Delta, n),
            (Delta, pg),
            (Delta, pg),
            (Delta, pg),
            (Delta, t1),
            (Delta, t1),
            (Delta, t1),
            (Delta, None),
            (Roles, None),
            (Databases, None),
            (Databases, None),
        ]
    );
    // Groups: the per-database steps share one group, between barriers;
    // the creation and its grant share the last.
    let groups: Vec<usize> = p.groups().map(<[Step]>::len).collect();
    assert_eq!(groups, [3, 9, 1, 1, 2]);
    assert!(p.steps.windows(2).all(|w| w[0].group() <= w[1].group()));
    assert!(p.steps.windows(2).all(|w| w[0].phase() <= w[1].phase()));
    assert!(p
        .to_string()
        .contains("DROP OWNED BY \"gone\"; -- in database \"template1\"\n"));
}

#[test]
fn renames_only_when_old_exists_and_new_does_not() {
    let cat = catalog(
        vec![role("a", None), role("b", None)],
        vec![DatabaseInfo::new("da", SU), DatabaseInfo::new("db", SU)],
    );
    let rename = |action: &str, from: &str, to: &str| json!({"action": action, "name": from, "new_name": to});
    // Old name missing: nothing, whether or not the new one exists; chained
    // renames see the earlier ones.
    let cases = [
        (vec![rename("rename_role", "missing", "a")], vec![]),
        (vec![rename("rename_role", "missing", "zz")], vec![]),
        (vec![rename("rename_db", "missing", "da")], vec![]),
        (vec![rename("rename_db", "missing", "zz")], vec![]),
        (
            vec![
                rename("rename_role", "a", "c"),
                rename("rename_role", "b", "a"),
            ],
            vec![
                "ALTER ROLE \"a\" RENAME TO \"c\"",
                "ALTER ROLE \"b\" RENAME TO \"a\"",
            ],
        ),
    ];
    for (ops, expected) in cases {
        check(&cat, &spec(json!({"delta_operations": ops})), &expected);
    }
    // Both exist: a clear error naming both.
    let cases = [
        (
            rename("rename_role", "a", "b"),
            "cannot rename role \"a\" to \"b\": both exist",
        ),
        (
            rename("rename_db", "da", "db"),
            "cannot rename database \"da\" to \"db\": both exist",
        ),
    ];
    for (op, error) in cases {
        let e = refused(&cat, &spec(json!({"delta_operations": [op]})));
        assert!(matches!(e, PlanError::RenameTargetExists { .. }), "{e}");
        assert_eq!(e.to_string(), error);
    }
}

#[test]
fn delete_role_touches_every_connectable_database() {
    let cat = catalog(
        vec![role("r", None), role("keeper", None)],
        vec![
            DatabaseInfo::new("not in spec", "keeper"),
            DatabaseInfo::new("owned", "r"),
            DatabaseInfo {
                allow_connections: false,
                ..DatabaseInfo::new("closed", SU)
            },
            DatabaseInfo {
                connlimit: DATCONNLIMIT_INVALID_DB,
                ..DatabaseInfo::new("half dropped", SU)
            },
        ],
    );
    let s = spec(json!({
        "delta_operations": [
            {"action": "delete_role", "name": "r"},
            {"action": "delete_role", "name": "never existed"}],
        "databases": [{"name": "owned", "owner": "keeper"}]
    }));
    // In every database that accepts connections, not only the spec's; after
    // the delete the database belongs to the superuser: its owner is fixed,
    // the invalid database is dropped.
    let p = check(
        &cat,
        &s,
        &around_handover(
            &[],
            "r",
            4,
            &[
                "DROP ROLE \"r\"",
                "DROP DATABASE \"half dropped\" WITH (FORCE)",
                "ALTER DATABASE \"owned\" OWNER TO \"keeper\"",
            ],
        ),
    );
    let dbs: Vec<&str> = p.steps[..12].iter().filter_map(Step::database).collect();
    let each = |db| [db; 3];
    assert_eq!(
        dbs,
        [
            each("not in spec"),
            each("owned"),
            each("postgres"),
            each("template1")
        ]
        .concat()
    );
    let drop_role = &p.steps[12];
    assert!(p.steps[..12].iter().all(|s| s.group() < drop_role.group()));
    assert!(p
        .steps
        .iter()
        .all(|s| s.object() == "role \"r\"" || s.phase() == Phase::Databases));
}

#[test]
fn deleted_role_still_in_spec_is_recreated_and_owner_must_be_known() {
    let cat = catalog(vec![role("r", None)], vec![DatabaseInfo::new("d", "r")]);
    let s = spec(json!({
        "delta_operations": [{"action": "delete_role", "name": "r"}],
        "roles": [{"name": "r"}],
        "databases": [{"name": "d", "owner": "r"}]
    }));
    check(
        &cat,
        &s,
        &around_handover(
            &[],
            "r",
            3,
            &[
                "DROP ROLE \"r\"",
                "CREATE ROLE \"r\" WITH LOGIN INHERIT CREATEROLE CREATEDB BYPASSRLS REPLICATION IN ROLE \"neon_superuser\"",
                "ALTER DATABASE \"d\" OWNER TO \"r\"",
            ],
        ),
    );
    let s = spec(json!({
        "delta_operations": [{"action": "delete_role", "name": "r"}],
        "databases": [{"name": "d", "owner": "r"}]
    }));
    let e = refused(&cat, &s);
    assert!(
        matches!(&e, PlanError::UnknownOwner { database, owner } if database == "d" && owner == "r")
    );
    assert!(e.to_string().contains("database \"d\""), "{e}");
    // The superuser and existing roles are fine owners.
    let s = spec(json!({"databases": [{"name": "e", "owner": SU}, {"name": "d", "owner": "r"}]}));
    check(
        &cat,
        &s,
        &[
            "CREATE DATABASE \"e\" WITH OWNER \"cloud_admin\"",
            "GRANT ALL ON DATABASE \"e\" TO \"neon_superuser\"",
        ],
    );
}

#[test]
fn template_database_with_subscriptions_is_deleted() {
    let cat = catalog(
        vec![],
        vec![
            DatabaseInfo {
                is_template: true,
                subscriptions: vec!["sub one".into(), "s2".into()],
                ..DatabaseInfo::new("tpl", SU)
            },
            DatabaseInfo {
                allow_connections: false,
                subscriptions: vec!["s".into()],
                ..DatabaseInfo::new("closed", SU)
            },
        ],
    );
    let s = spec(json!({"delta_operations": [
        {"action": "delete_db", "name": "tpl"},
        {"action": "delete_db", "name": "closed"},
        {"action": "delete_db", "name": "not there"}]}));
    let p = check(
        &cat,
        &s,
        &[
            "ALTER DATABASE \"tpl\" IS_TEMPLATE false",
            "ALTER SUBSCRIPTION \"sub one\" DISABLE",
            "ALTER SUBSCRIPTION \"sub one\" SET (slot_name = NONE)",
            "DROP SUBSCRIPTION \"sub one\"",
            "ALTER SUBSCRIPTION \"s2\" DISABLE",
            "ALTER SUBSCRIPTION \"s2\" SET (slot_name = NONE)",
            "DROP SUBSCRIPTION \"s2\"",
            "DROP DATABASE \"tpl\" WITH (FORCE)",
            "ALTER DATABASE \"closed\" ALLOW_CONNECTIONS true",
            "ALTER SUBSCRIPTION \"s\" DISABLE",
            "ALTER SUBSCRIPTION \"s\" SET (slot_name = NONE)",
            "DROP SUBSCRIPTION \"s\"",
            "DROP DATABASE \"closed\" WITH (FORCE)",
        ],
    );
    // The subscriptions are dropped in their database, the rest in the maintenance one.
    let dbs: Vec<Option<&str>> = p.steps.iter().map(Step::database).collect();
    let (t, c) = (Some("tpl"), Some("closed"));
    assert_eq!(dbs, [None, t, t, t, t, t, t, None, None, c, c, c, None]);
    assert_eq!(
        p.steps[1].object(),
        "subscription \"sub one\" in database \"tpl\""
    );
}
