//! Unit tests of the pure planner: no database.

use super::*;
use crate::catalog::model::DATCONNLIMIT_INVALID_DB;
use serde_json::{json, Value};

const SU: &str = "cloud_admin";
const HASH: &str = "0123456789abcdef0123456789abcdef";
const SCRAM: &str = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy";

/// The tricky names the product must survive.
pub(crate) fn tricky_names() -> Vec<String> {
    vec![
        "name with spaces".into(),
        "name%20with%20".into(),
        "trailing tab\t".into(),
        "'; SELECT pg_sleep(1000);".into(),
        "hash#tag".into(),
        "amp&ersand".into(),
        "emoji 🐘🚀".into(),
        r#"";with ';injections $$ $x$ $ %I !/\&#@"#.into(),
        "\"double quoted\"".into(),
        "'single quoted'".into(),
        "role$".into(),
        "role$$".into(),
        "$x$".into(),
        "x".into(),
        "$xx$".into(),
        "a".repeat(63),
        format!("{}x", "é".repeat(31)),
        "UPPER Case".into(),
        "back\\slash".into(),
        "semi;colon--comment".into(),
        "/* c */ star".into(),
        "ünïcødé-ñame".into(),
    ]
}

/// A spec with these roles, databases and delta operations.
pub(crate) fn spec(v: Value) -> ComputeSpec {
    let mut doc = json!({"format_version": 1.0, "cluster": {"roles": [], "databases": []}});
    for key in ["roles", "databases"] {
        if let Some(x) = v.get(key) {
            doc["cluster"][key] = x.clone();
        }
    }
    if let Some(d) = v.get("delta_operations") {
        doc["delta_operations"] = d.clone();
    }
    ComputeSpec::from_json(&doc.to_string()).expect("valid spec")
}

fn role(name: &str, password: Option<&str>) -> RoleInfo {
    RoleInfo {
        login: true,
        password: password.map(crate::secret::Secret::new),
        ..RoleInfo::new(name)
    }
}

fn catalog(roles: Vec<RoleInfo>, dbs: Vec<DatabaseInfo>) -> Catalog {
    let mut all = vec![RoleInfo {
        superuser: true,
        ..role(SU, None)
    }];
    all.extend(roles);
    let mut databases = vec![
        DatabaseInfo::new("postgres", SU),
        DatabaseInfo::new("template1", SU),
        DatabaseInfo {
            allow_connections: false,
            is_template: true,
            ..DatabaseInfo::new("template0", SU)
        },
    ];
    databases.extend(dbs);
    Catalog {
        roles: all,
        databases,
        template_defaults: false,
    }
}

fn sqls(p: &Plan) -> Vec<&str> {
    p.steps.iter().map(Step::sql).collect()
}

#[test]
fn matching_spec_gives_an_empty_plan() {
    let cat = catalog(
        vec![
            role("md5 role", Some(&format!("md5{HASH}"))),
            role("md5 prefixed", Some(&format!("md5{HASH}"))),
            role("scram role", Some(SCRAM)),
            role("no password", None),
            RoleInfo {
                createdb: true,
                connlimit: 5,
                ..role("with options", None)
            },
            role("nologin", None),
        ],
        vec![DatabaseInfo::new("db", "md5 role")],
    );
    let cat = Catalog {
        roles: cat
            .roles
            .into_iter()
            .map(|r| RoleInfo {
                login: r.name != "nologin",
                ..r
            })
            .collect(),
        ..cat
    };
    let s = spec(json!({
        "roles": [
            {"name": "md5 role", "encrypted_password": HASH},
            {"name": "md5 prefixed", "encrypted_password": format!("md5{HASH}")},
            {"name": "scram role", "encrypted_password": SCRAM},
            {"name": "no password", "encrypted_password": null},
            {"name": "with options", "options": [
                {"name": "CREATEDB", "value": null, "vartype": "bool"},
                {"name": "connection_limit", "value": "5", "vartype": "integer"}]},
            {"name": "nologin", "options": [{"name": "login", "value": "false", "vartype": "bool"}]}
        ],
        "databases": [{"name": "db", "owner": "md5 role"}, {"name": "postgres", "owner": SU}]
    }));
    let p = plan(&cat, &s, SU).unwrap();
    assert!(p.is_empty(), "{p}");
    assert_eq!(p.len(), 0);
    assert_eq!(p.to_string(), "");
}

#[test]
fn passwords_are_compared_and_redacted() {
    let cat = catalog(
        vec![
            role("a", Some("md5ffffffffffffffffffffffffffffffff")),
            role("b", Some(SCRAM)),
        ],
        vec![],
    );
    let s = spec(json!({"roles": [
        {"name": "a", "encrypted_password": HASH},
        {"name": "b", "encrypted_password": null},
        {"name": "c", "encrypted_password": SCRAM}
    ]}));
    let p = plan(&cat, &s, SU).unwrap();
    assert_eq!(
        sqls(&p),
        [
            format!("ALTER ROLE \"a\" WITH PASSWORD 'md5{HASH}'").as_str(),
            "ALTER ROLE \"b\" WITH PASSWORD NULL",
            format!("CREATE ROLE \"c\" WITH LOGIN PASSWORD '{SCRAM}'").as_str(),
        ]
    );
    let flags: Vec<bool> = p.steps.iter().map(Step::has_secret).collect();
    assert_eq!(flags, [true, false, true]);
    let shown = format!("{p}\n{p:?}");
    assert!(!shown.contains(HASH) && !shown.contains(SCRAM), "{shown}");
    assert_eq!(
        p.to_string(),
        "ALTER ROLE \"a\" WITH PASSWORD <redacted>;\n\
         ALTER ROLE \"b\" WITH PASSWORD NULL;\n\
         CREATE ROLE \"c\" WITH LOGIN PASSWORD <redacted>;\n"
    );
    assert!(p
        .steps
        .iter()
        .all(|s| s.phase() == Phase::Roles && s.database().is_none()));
}

#[test]
fn changed_options_alter_only_what_differs() {
    let cat = catalog(
        vec![
            RoleInfo {
                login: false,
                ..role("a", None)
            },
            RoleInfo {
                createdb: true,
                ..role("b", None)
            },
        ],
        vec![],
    );
    let s = spec(json!({"roles": [
        {"name": "a", "options": [{"name": "createrole", "value": null, "vartype": "bool"}]},
        {"name": "b", "options": [
            {"name": "createdb", "value": "true", "vartype": "bool"},
            {"name": "connection_limit", "value": "3", "vartype": "integer"},
            {"name": "valid_until", "value": "2030-01-01 00:00:00+00", "vartype": "string"}]},
        {"name": "new", "encrypted_password": HASH, "options": [
            {"name": "createdb", "value": "true", "vartype": "bool"},
            {"name": "createdb", "value": "false", "vartype": "bool"}]}
    ]}));
    let p = plan(&cat, &s, SU).unwrap();
    assert_eq!(
        sqls(&p),
        [
            "ALTER ROLE \"a\" WITH LOGIN CREATEROLE",
            "ALTER ROLE \"b\" WITH CONNECTION LIMIT 3 VALID UNTIL '2030-01-01 00:00:00+00'",
            format!("CREATE ROLE \"new\" WITH LOGIN PASSWORD 'md5{HASH}' NOCREATEDB").as_str(),
        ]
    );
    // A spec NOLOGIN role is created without LOGIN.
    let s = spec(json!({"roles": [
        {"name": "n", "options": [{"name": "LOGIN", "value": "off", "vartype": "bool"}]}]}));
    let p = plan(&catalog(vec![], vec![]), &s, SU).unwrap();
    assert_eq!(sqls(&p), ["CREATE ROLE \"n\" WITH NOLOGIN"]);
}

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
    let p = plan(&cat, &s, SU).unwrap();
    let got: Vec<(Phase, Option<&str>, &str)> = p
        .steps
        .iter()
        .map(|s| (s.phase(), s.database(), s.sql()))
        .collect();
    use Phase::*;
    let revoke = format!(
        "SELECT pg_catalog.set_config('compute_ctl.dropped_role', 'gone', true); {}",
        super::REVOKE_FOREIGN_GRANTS
    );
    let revoke = revoke.as_str();
    assert_eq!(
        got,
        [
            (Delta, None, "ALTER ROLE \"old\" RENAME TO \"new\""),
            (Delta, None, "ALTER DATABASE \"olddb\" RENAME TO \"newdb\""),
            (Delta, None, "DROP DATABASE \"dropme\" WITH (FORCE)"),
            (Delta, Some("newdb"), revoke),
            (
                Delta,
                Some("newdb"),
                "REASSIGN OWNED BY \"gone\" TO \"cloud_admin\""
            ),
            (Delta, Some("newdb"), "DROP OWNED BY \"gone\""),
            (Delta, Some("postgres"), revoke),
            (
                Delta,
                Some("postgres"),
                "REASSIGN OWNED BY \"gone\" TO \"cloud_admin\""
            ),
            (Delta, Some("postgres"), "DROP OWNED BY \"gone\""),
            (Delta, Some("template1"), revoke),
            (
                Delta,
                Some("template1"),
                "REASSIGN OWNED BY \"gone\" TO \"cloud_admin\""
            ),
            (Delta, Some("template1"), "DROP OWNED BY \"gone\""),
            (Delta, None, "DROP ROLE \"gone\""),
            (Roles, None, "CREATE ROLE \"fresh\" WITH LOGIN"),
            (
                Databases,
                None,
                "CREATE DATABASE \"freshdb\" WITH OWNER \"fresh\""
            ),
        ]
    );
    // Groups: the per-database steps share one group, between barriers.
    let groups: Vec<usize> = p.groups().map(<[Step]>::len).collect();
    assert_eq!(groups, [3, 9, 1, 1, 1]);
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
    // Old name missing: nothing, whether or not the new one exists.
    for (action, from, to) in [
        ("rename_role", "missing", "a"),
        ("rename_role", "missing", "zz"),
        ("rename_db", "missing", "da"),
        ("rename_db", "missing", "zz"),
    ] {
        let s =
            spec(json!({"delta_operations": [{"action": action, "name": from, "new_name": to}]}));
        assert!(plan(&cat, &s, SU).unwrap().is_empty());
    }
    // Both exist: a clear error naming both.
    let s = spec(
        json!({"delta_operations": [{"action": "rename_role", "name": "a", "new_name": "b"}]}),
    );
    let e = plan(&cat, &s, SU).unwrap_err();
    assert_eq!(
        e,
        PlanError::RenameTargetExists {
            kind: "role",
            from: "a".into(),
            to: "b".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "cannot rename role \"a\" to \"b\": both exist"
    );
    let s = spec(
        json!({"delta_operations": [{"action": "rename_db", "name": "da", "new_name": "db"}]}),
    );
    assert!(matches!(
        plan(&cat, &s, SU),
        Err(PlanError::RenameTargetExists {
            kind: "database",
            ..
        })
    ));
    // Chained renames see the earlier ones.
    let s = spec(json!({"delta_operations": [
        {"action": "rename_role", "name": "a", "new_name": "c"},
        {"action": "rename_role", "name": "b", "new_name": "a"}]}));
    assert_eq!(
        sqls(&plan(&cat, &s, SU).unwrap()),
        [
            "ALTER ROLE \"a\" RENAME TO \"c\"",
            "ALTER ROLE \"b\" RENAME TO \"a\""
        ]
    );
}

#[test]
fn md5_password_is_set_again_after_a_rename() {
    let cat = catalog(vec![role("a", Some(&format!("md5{HASH}")))], vec![]);
    let s = spec(json!({
        "delta_operations": [{"action": "rename_role", "name": "a", "new_name": "b"}],
        "roles": [{"name": "b", "encrypted_password": HASH}]
    }));
    assert_eq!(
        sqls(&plan(&cat, &s, SU).unwrap()),
        [
            "ALTER ROLE \"a\" RENAME TO \"b\"",
            format!("ALTER ROLE \"b\" WITH PASSWORD 'md5{HASH}'").as_str()
        ]
    );
    // SCRAM survives a rename.
    let cat = catalog(vec![role("a", Some(SCRAM))], vec![]);
    let s = spec(json!({
        "delta_operations": [{"action": "rename_role", "name": "a", "new_name": "b"}],
        "roles": [{"name": "b", "encrypted_password": SCRAM}]
    }));
    assert_eq!(plan(&cat, &s, SU).unwrap().len(), 1);
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
    let p = plan(&cat, &s, SU).unwrap();
    let dbs: Vec<&str> = p
        .steps
        .iter()
        .filter(|s| s.sql().starts_with("REASSIGN"))
        .filter_map(Step::database)
        .collect();
    assert_eq!(dbs, ["not in spec", "owned", "postgres", "template1"]);
    assert_eq!(
        p.steps
            .iter()
            .filter(|s| s.sql() == "DROP OWNED BY \"r\"")
            .count(),
        4
    );
    let drop_role = p
        .steps
        .iter()
        .position(|s| s.sql() == "DROP ROLE \"r\"")
        .unwrap();
    assert!(p.steps[..drop_role]
        .iter()
        .all(|s| s.group() < p.steps[drop_role].group()));
    assert!(p
        .steps
        .iter()
        .all(|s| s.object() == "role \"r\"" || s.phase() == Phase::Databases));
    // After the delete the database belongs to the superuser: its owner is fixed,
    // the invalid database is dropped.
    assert_eq!(
        sqls(&p)[drop_role + 1..],
        [
            "DROP DATABASE \"half dropped\" WITH (FORCE)",
            "ALTER DATABASE \"owned\" OWNER TO \"keeper\""
        ]
    );
}

#[test]
fn deleted_role_still_in_spec_is_recreated_and_owner_must_be_known() {
    let cat = catalog(vec![role("r", None)], vec![DatabaseInfo::new("d", "r")]);
    let s = spec(json!({
        "delta_operations": [{"action": "delete_role", "name": "r"}],
        "roles": [{"name": "r"}],
        "databases": [{"name": "d", "owner": "r"}]
    }));
    let p = plan(&cat, &s, SU).unwrap();
    assert_eq!(
        sqls(&p)[p.len() - 3..],
        [
            "DROP ROLE \"r\"",
            "CREATE ROLE \"r\" WITH LOGIN",
            "ALTER DATABASE \"d\" OWNER TO \"r\""
        ]
    );
    let s = spec(json!({
        "delta_operations": [{"action": "delete_role", "name": "r"}],
        "databases": [{"name": "d", "owner": "r"}]
    }));
    let e = plan(&cat, &s, SU).unwrap_err();
    assert!(
        matches!(&e, PlanError::UnknownOwner { database, owner } if database == "d" && owner == "r")
    );
    assert!(e.to_string().contains("database \"d\""), "{e}");
    // The superuser and existing roles are fine owners.
    let s = spec(json!({"databases": [{"name": "e", "owner": SU}, {"name": "d", "owner": "r"}]}));
    assert_eq!(
        sqls(&plan(&cat, &s, SU).unwrap()),
        ["CREATE DATABASE \"e\" WITH OWNER \"cloud_admin\""]
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
    let p = plan(&cat, &s, SU).unwrap();
    let got: Vec<(Option<&str>, &str)> = p.steps.iter().map(|s| (s.database(), s.sql())).collect();
    assert_eq!(
        got,
        [
            (None, "ALTER DATABASE \"tpl\" IS_TEMPLATE false"),
            (Some("tpl"), "ALTER SUBSCRIPTION \"sub one\" DISABLE"),
            (
                Some("tpl"),
                "ALTER SUBSCRIPTION \"sub one\" SET (slot_name = NONE)"
            ),
            (Some("tpl"), "DROP SUBSCRIPTION \"sub one\""),
            (Some("tpl"), "ALTER SUBSCRIPTION \"s2\" DISABLE"),
            (
                Some("tpl"),
                "ALTER SUBSCRIPTION \"s2\" SET (slot_name = NONE)"
            ),
            (Some("tpl"), "DROP SUBSCRIPTION \"s2\""),
            (None, "DROP DATABASE \"tpl\" WITH (FORCE)"),
            (None, "ALTER DATABASE \"closed\" ALLOW_CONNECTIONS true"),
            (Some("closed"), "ALTER SUBSCRIPTION \"s\" DISABLE"),
            (
                Some("closed"),
                "ALTER SUBSCRIPTION \"s\" SET (slot_name = NONE)"
            ),
            (Some("closed"), "DROP SUBSCRIPTION \"s\""),
            (None, "DROP DATABASE \"closed\" WITH (FORCE)"),
        ]
    );
    assert_eq!(
        p.steps[1].object(),
        "subscription \"sub one\" in database \"tpl\""
    );
}

#[test]
fn invalid_databases_are_dropped_and_recreated_if_listed() {
    let invalid = |name: &str| DatabaseInfo {
        connlimit: DATCONNLIMIT_INVALID_DB,
        ..DatabaseInfo::new(name, SU)
    };
    let cat = catalog(
        vec![role("o", None)],
        vec![invalid("listed"), invalid("unlisted")],
    );
    let s = spec(json!({"databases": [{"name": "listed", "owner": "o"}]}));
    let p = plan(&cat, &s, SU).unwrap();
    assert_eq!(
        sqls(&p),
        [
            "DROP DATABASE \"listed\" WITH (FORCE)",
            "DROP DATABASE \"unlisted\" WITH (FORCE)",
            "CREATE DATABASE \"listed\" WITH OWNER \"o\""
        ]
    );
    assert!(p.steps.iter().all(|s| s.phase() == Phase::Databases));
}

#[test]
fn superuser_and_reserved_roles_are_protected() {
    let cat = catalog(vec![role("a", None)], vec![]);
    let cases = [
        json!({"roles": [{"name": SU, "encrypted_password": HASH}]}),
        json!({"roles": [{"name": "pg_monitor"}]}),
        json!({"delta_operations": [{"action": "delete_role", "name": SU}]}),
        json!({"delta_operations": [{"action": "delete_role", "name": "pg_read_all_data"}]}),
        json!({"delta_operations": [{"action": "rename_role", "name": SU, "new_name": "x"}]}),
        json!({"delta_operations": [{"action": "rename_role", "name": "a", "new_name": SU}]}),
        json!({"delta_operations": [{"action": "rename_role", "name": "a", "new_name": "pg_x"}]}),
    ];
    for case in cases {
        let e = plan(&cat, &spec(case.clone()), SU).unwrap_err();
        assert!(matches!(e, PlanError::ProtectedRole { .. }), "{case}: {e}");
        let named = e.to_string().contains(&format!("{SU:?}")) || e.to_string().contains("\"pg_");
        assert!(named, "{e}");
    }
}

#[test]
fn database_options_are_rendered() {
    let cat = catalog(vec![], vec![]);
    let s = spec(json!({"databases": [{"name": "d", "owner": SU, "options": [
        {"name": "template", "value": "template0", "vartype": "string"},
        {"name": "encoding", "value": "UTF8", "vartype": "string"},
        {"name": "connection_limit", "value": "7", "vartype": "integer"}]}]}));
    assert_eq!(
        sqls(&plan(&cat, &s, SU).unwrap()),
        ["CREATE DATABASE \"d\" WITH OWNER \"cloud_admin\" TEMPLATE \"template0\" ENCODING 'UTF8' CONNECTION LIMIT 7"]
    );
}

#[test]
fn tricky_names_are_escaped() {
    let names = tricky_names();
    assert_eq!(names.len(), 22);
    let roles: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "encrypted_password": HASH}))
        .collect();
    let dbs: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "owner": n}))
        .collect();
    let s = spec(json!({"roles": roles, "databases": dbs}));
    let p = plan(&catalog(vec![], vec![]), &s, SU).unwrap();
    assert_eq!(p.len(), 44);
    for (i, name) in names.iter().enumerate() {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        assert_eq!(
            p.steps[i].sql(),
            format!("CREATE ROLE {quoted} WITH LOGIN PASSWORD 'md5{HASH}'")
        );
        assert_eq!(p.steps[i].object(), format!("role {quoted}"));
        assert_eq!(
            p.steps[22 + i].sql(),
            format!("CREATE DATABASE {quoted} WITH OWNER {quoted}")
        );
    }
    assert_eq!(
        p.steps[3].sql(),
        format!("CREATE ROLE \"'; SELECT pg_sleep(1000);\" WITH LOGIN PASSWORD 'md5{HASH}'")
    );
    assert_eq!(
        p.steps[22 + 7].sql(),
        r#"CREATE DATABASE """;with ';injections $$ $x$ $ %I !/\&#@" WITH OWNER """;with ';injections $$ $x$ $ %I !/\&#@""#
    );
    assert_eq!(
        p.steps[22 + 8].sql(),
        r#"CREATE DATABASE """double quoted""" WITH OWNER """double quoted""""#
    );
    // Renames and deletes quote both names.
    let cat = catalog(
        vec![role("$x$", None)],
        vec![DatabaseInfo::new("'q'", "$x$")],
    );
    let s = spec(json!({"delta_operations": [
        {"action": "rename_db", "name": "'q'", "new_name": "a\"b"},
        {"action": "rename_role", "name": "$x$", "new_name": "role$$"},
        {"action": "delete_role", "name": "role$$"}]}));
    let p = plan(&cat, &s, SU).unwrap();
    // Role renames come before database renames, whatever the spec's order.
    assert_eq!(sqls(&p)[0], r#"ALTER ROLE "$x$" RENAME TO "role$$""#);
    assert_eq!(sqls(&p)[1], r#"ALTER DATABASE "'q'" RENAME TO "a""b""#);
    assert_eq!(
        sqls(&p)[2],
        format!(
            "SELECT pg_catalog.set_config('compute_ctl.dropped_role', 'role$$', true); {}",
            super::REVOKE_FOREIGN_GRANTS
        )
    );
    assert_eq!(
        sqls(&p)[3],
        r#"REASSIGN OWNED BY "role$$" TO "cloud_admin""#
    );
    assert_eq!(p.steps[2].database(), Some("a\"b"));
    // One statement per line even with control characters in a database name.
    let cat = catalog(
        vec![role("r", None)],
        vec![DatabaseInfo::new("tab\t\nnl", SU)],
    );
    let s = spec(json!({"delta_operations": [{"action": "delete_role", "name": "r"}]}));
    let p = plan(&cat, &s, SU).unwrap();
    assert_eq!(p.to_string().lines().count(), p.len());
}

#[test]
fn password_literals_are_escaped() {
    assert_eq!(stored_password(HASH), format!("md5{HASH}"));
    assert_eq!(stored_password(&format!("md5{HASH}")), format!("md5{HASH}"));
    assert_eq!(stored_password(SCRAM), SCRAM);
    assert_eq!(stored_password("md5short"), "md5md5short");
    let upper = HASH.to_ascii_uppercase();
    assert_eq!(stored_password(&upper), format!("md5{HASH}"));
    assert_eq!(
        stored_password(&format!("md5{upper}")),
        format!("md5{HASH}")
    );
    assert_eq!(stored_password("md5é"), "md5md5é");
    // The spec validator refuses such a password; the planner must still escape it.
    let mut s = spec(json!({"roles": [{"name": "r"}]}));
    s.cluster.roles[0].encrypted_password = Some(crate::secret::Secret::new("it's\\odd"));
    let p = plan(&catalog(vec![], vec![]), &s, SU).unwrap();
    assert_eq!(
        p.steps[0].sql(),
        r#"CREATE ROLE "r" WITH LOGIN PASSWORD  E'md5it''s\\odd'"#
    );
    assert!(!format!("{p:?}{p}").contains("odd"));
    assert_eq!(
        p.steps[0].redacted_sql(),
        "CREATE ROLE \"r\" WITH LOGIN PASSWORD <redacted>"
    );
}

#[test]
fn bad_options_name_the_object() {
    // The spec validator refuses them too; the planner must not trust that.
    let mut s = spec(json!({"roles": [{"name": "r"}]}));
    s.cluster.roles[0].options = Some(vec![crate::spec::GenericOption {
        name: "SUPERUSER; DROP".into(),
        value: None,
        vartype: crate::spec::VarType::Bool,
    }]);
    let e = plan(&catalog(vec![], vec![]), &s, SU).unwrap_err();
    assert!(
        matches!(&e, PlanError::BadOption { object, .. } if object == "role \"r\""),
        "{e}"
    );
}
