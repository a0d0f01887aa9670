//! Roles: attributes and passwords compared with the catalog, created,
//! altered, protected; passwords redacted and escaped.

use super::*;

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
            RoleInfo {
                login: false,
                ..role("nologin", None)
            },
        ],
        vec![DatabaseInfo::new("db", "md5 role")],
    );
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
    let p = check(&cat, &s, &[] as &[&str]);
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
    // Without the privileged role: the statements as plain postgres takes them.
    let p = check_plain(
        &cat,
        &s,
        &[
            format!("ALTER ROLE \"a\" WITH PASSWORD 'md5{HASH}'").as_str(),
            "ALTER ROLE \"b\" WITH PASSWORD NULL",
            format!("CREATE ROLE \"c\" WITH LOGIN PASSWORD '{SCRAM}'").as_str(),
        ],
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
    let cases = [
        (
            &cat,
            json!({"roles": [
                {"name": "a", "options": [{"name": "createrole", "value": null, "vartype": "bool"}]},
                {"name": "b", "options": [
                    {"name": "createdb", "value": "true", "vartype": "bool"},
                    {"name": "connection_limit", "value": "3", "vartype": "integer"},
                    {"name": "valid_until", "value": "2030-01-01 00:00:00+00", "vartype": "string"}]},
                // For a repeated option, the last one wins.
                {"name": "new", "encrypted_password": HASH, "options": [
                    {"name": "createdb", "value": "true", "vartype": "bool"},
                    {"name": "createdb", "value": "false", "vartype": "bool"}]}
            ]}),
            vec![
                "ALTER ROLE \"a\" WITH LOGIN CREATEROLE".to_string(),
                "ALTER ROLE \"b\" WITH CONNECTION LIMIT 3 VALID UNTIL '2030-01-01 00:00:00+00'"
                    .to_string(),
                format!(
                    "CREATE ROLE \"new\" WITH LOGIN PASSWORD 'md5{HASH}' NOCREATEDB{}",
                    MEMBER.replace(" CREATEDB", "")
                ),
            ],
        ),
        // A spec NOLOGIN role is created without LOGIN.
        (
            &catalog(vec![], vec![]),
            json!({"roles": [
                {"name": "n", "options": [{"name": "LOGIN", "value": "off", "vartype": "bool"}]}]}),
            vec![format!("CREATE ROLE \"n\" WITH NOLOGIN{MEMBER}")],
        ),
    ];
    for (cat, s, expected) in cases {
        check(cat, &spec(s), &expected);
    }
}

#[test]
fn md5_password_is_set_again_after_a_rename() {
    let rename = json!([{"action": "rename_role", "name": "a", "new_name": "b"}]);
    let cases = [
        // Postgres clears an md5 password on rename (it is salted with the name).
        (
            format!("md5{HASH}"),
            HASH,
            vec![
                "ALTER ROLE \"a\" RENAME TO \"b\"".to_string(),
                format!("ALTER ROLE \"b\" WITH PASSWORD 'md5{HASH}'"),
            ],
        ),
        // SCRAM survives a rename.
        (
            SCRAM.to_string(),
            SCRAM,
            vec!["ALTER ROLE \"a\" RENAME TO \"b\"".to_string()],
        ),
    ];
    for (stored, given, expected) in cases {
        let cat = catalog(vec![role("a", Some(&stored))], vec![]);
        let s = spec(json!({
            "delta_operations": rename,
            "roles": [{"name": "b", "encrypted_password": given}]
        }));
        check(&cat, &s, &expected);
    }
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
        let e = refused(&cat, &spec(case.clone()));
        assert!(matches!(e, PlanError::ProtectedRole { .. }), "{case}: {e}");
        let named = e.to_string().contains(&format!("{SU:?}")) || e.to_string().contains("\"pg_");
        assert!(named, "{e}");
    }
}

#[test]
fn password_literals_are_escaped() {
    let upper = HASH.to_ascii_uppercase();
    for (given, stored) in [
        (HASH.to_string(), format!("md5{HASH}")),
        (format!("md5{HASH}"), format!("md5{HASH}")),
        (SCRAM.to_string(), SCRAM.to_string()),
        ("md5short".to_string(), "md5md5short".to_string()),
        (upper.clone(), format!("md5{HASH}")),
        (format!("md5{upper}"), format!("md5{HASH}")),
        ("md5é".to_string(), "md5md5é".to_string()),
    ] {
        assert_eq!(stored_password(&given), stored, "{given}");
    }
    // The spec validator refuses such a password; the planner must still escape it.
    let mut s = raw_spec(json!({"roles": [{"name": "r"}]}));
    s.cluster.roles[0].encrypted_password = Some(crate::secret::Secret::new("it's\\odd"));
    let p = check_plain(
        &catalog(vec![], vec![]),
        &s,
        &[r#"CREATE ROLE "r" WITH LOGIN PASSWORD  E'md5it''s\\odd'"#],
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
    let mut s = raw_spec(json!({"roles": [{"name": "r"}]}));
    s.cluster.roles[0].options = Some(vec![crate::options::GenericOption {
        name: "SUPERUSER; DROP".into(),
        value: None,
        vartype: crate::options::VarType::Bool,
    }]);
    let e = refused(&catalog(vec![], vec![]), &s);
    assert!(
        matches!(&e, PlanError::BadOption { object, .. } if object == "role \"r\""),
        "{e}"
    );
}

#[test]
fn valid_until_is_compared_and_written_as_postgres_shows_it() {
    // The catalog read tells how postgres writes the spec's value; the spec
    // itself keeps the text it was checked with.
    let mut cat = catalog(
        vec![RoleInfo {
            valid_until: Some("2030-01-01 00:00:00+00".into()),
            ..role("r", None)
        }],
        vec![],
    );
    cat.valid_until
        .insert("2030-01-01".into(), "2030-01-01 00:00:00+00".into());
    let s = raw_spec(json!({"roles": [{"name": "r", "options": [
        {"name": "valid_until", "value": "2030-01-01", "vartype": "string"}]}]}));
    check(&cat, &s, &[] as &[&str]);
    let fresh = catalog(vec![], vec![]);
    let mut fresh_shown = fresh.clone();
    fresh_shown.valid_until = cat.valid_until.clone();
    check(
        &fresh_shown,
        &s,
        &[format!(
            "CREATE ROLE \"r\" WITH LOGIN VALID UNTIL '2030-01-01 00:00:00+00'{MEMBER}"
        )],
    );
    // Without the read's answer, the spec's text is compared as it is.
    check(
        &Catalog {
            valid_until: Default::default(),
            ..cat.clone()
        },
        &s,
        &["ALTER ROLE \"r\" WITH VALID UNTIL '2030-01-01'"],
    );
}
