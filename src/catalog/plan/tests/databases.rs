//! Databases, and the names of every object: created with their options,
//! half-dropped ones dropped first, every identifier and literal escaped.

use super::*;

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
    let p = check(
        &cat,
        &s,
        &[
            "DROP DATABASE \"listed\" WITH (FORCE)",
            "DROP DATABASE \"unlisted\" WITH (FORCE)",
            "CREATE DATABASE \"listed\" WITH OWNER \"o\"",
            &grant("\"listed\""),
        ],
    );
    assert!(p.steps.iter().all(|s| s.phase() == Phase::Databases));
}

#[test]
fn several_creations_on_local_storage_are_file_copies() {
    let two = json!([{"name": "a", "owner": SU}, {"name": "b", "owner": SU, "options": [
        {"name": "Strategy", "value": "WAL_LOG", "vartype": "string"}]}, {"name": "c", "owner": SU}]);
    // The spec's own strategy is kept; the others are copies.
    check(
        &catalog(vec![], vec![]),
        &spec(json!({"databases": two})),
        &[
            "CREATE DATABASE \"a\" WITH OWNER \"cloud_admin\" STRATEGY FILE_COPY",
            "CREATE DATABASE \"b\" WITH OWNER \"cloud_admin\" STRATEGY wal_log",
            "CREATE DATABASE \"c\" WITH OWNER \"cloud_admin\" STRATEGY FILE_COPY",
            &grant("\"a\""),
            &grant("\"b\""),
            &grant("\"c\""),
        ],
    );
    // A lone creation (the others exist) keeps postgres' default (here
    // without the privileged role: nothing but the creation).
    check_plain(
        &catalog(
            vec![],
            vec![DatabaseInfo::new("a", SU), DatabaseInfo::new("b", SU)],
        ),
        &spec(json!({"databases": two})),
        &["CREATE DATABASE \"c\" WITH OWNER \"cloud_admin\""],
    );
    // On Neon storage the compute's files are not the database's.
    let neon = ValidSpec::from_json(
        &json!({
            "format_version": 1.0,
            "cluster": {"roles": [], "databases": [{"name": "a", "owner": SU}, {"name": "c", "owner": SU}]},
            "pageserver_connstring": "postgresql://ps:6400",
            "tenant_id": "0123456789abcdef0123456789abcdef",
            "timeline_id": "0123456789abcdef0123456789abcdef",
            "safekeeper_connstrings": ["sk1:5454"]
        })
        .to_string(),
    )
    .unwrap();
    check(
        &catalog(vec![], vec![]),
        &neon,
        &[
            "CREATE DATABASE \"a\" WITH OWNER \"cloud_admin\"",
            "CREATE DATABASE \"c\" WITH OWNER \"cloud_admin\"",
            &grant("\"a\""),
            &grant("\"c\""),
        ],
    );
}

#[test]
fn database_options_are_rendered() {
    let s = spec(json!({"databases": [{"name": "d", "owner": SU, "options": [
        {"name": "template", "value": "template0", "vartype": "string"},
        {"name": "encoding", "value": "UTF8", "vartype": "string"},
        {"name": "connection_limit", "value": "7", "vartype": "integer"}]}]}));
    check(
        &catalog(vec![], vec![]),
        &s,
        &[
            "CREATE DATABASE \"d\" WITH OWNER \"cloud_admin\" TEMPLATE \"template0\" ENCODING 'UTF8' CONNECTION LIMIT 7",
            &grant("\"d\""),
            // Made from another template than template1: its default
            // privileges are set in it.
            &crate::catalog::template1::default_privileges_sql(PRIV),
        ],
    );
}

#[test]
fn tricky_names_are_escaped() {
    let names = tricky_names();
    assert_eq!(names.len(), 22);
    let quoted = |n: &str| format!("\"{}\"", n.replace('"', "\"\""));
    let roles: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "encrypted_password": HASH}))
        .collect();
    let dbs: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "owner": n}))
        .collect();
    let s = spec(json!({"roles": roles, "databases": dbs}));
    let creates: Vec<String> = names
        .iter()
        .map(|n| {
            format!(
                "CREATE ROLE {} WITH LOGIN PASSWORD 'md5{HASH}'{MEMBER}",
                quoted(n)
            )
        })
        .chain(
            names
                .iter()
                // Several at once on local storage: file copies.
                .map(|n| {
                    format!(
                        "CREATE DATABASE {} WITH OWNER {} STRATEGY FILE_COPY",
                        quoted(n),
                        quoted(n)
                    )
                }),
        )
        .chain(names.iter().map(|n| grant(&quoted(n))))
        .collect();
    let p = check(&catalog(vec![], vec![]), &s, &creates);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(p.steps[i].object(), format!("role {}", quoted(name)));
    }
    // The quoting itself, written out for the worst names.
    assert_eq!(
        creates[3],
        format!(
            "CREATE ROLE \"'; SELECT pg_sleep(1000);\" WITH LOGIN PASSWORD 'md5{HASH}'{MEMBER}"
        )
    );
    assert_eq!(
        creates[22 + 7],
        r#"CREATE DATABASE """;with ';injections $$ $x$ $ %I !/\&#@" WITH OWNER """;with ';injections $$ $x$ $ %I !/\&#@" STRATEGY FILE_COPY"#
    );
    assert_eq!(
        creates[22 + 8],
        r#"CREATE DATABASE """double quoted""" WITH OWNER """double quoted""" STRATEGY FILE_COPY"#
    );
    // Renames and deletes quote both names; role renames come before
    // database renames, whatever the spec's order.
    let cat = catalog(
        vec![role("$x$", None)],
        vec![DatabaseInfo::new("'q'", "$x$")],
    );
    let s = spec(json!({"delta_operations": [
        {"action": "rename_db", "name": "'q'", "new_name": "a\"b"},
        {"action": "rename_role", "name": "$x$", "new_name": "role$$"},
        {"action": "delete_role", "name": "role$$"}]}));
    let h = handover("role$$");
    assert!(h[0].contains("'role$$'") && h[1] == r#"REASSIGN OWNED BY "role$$" TO "cloud_admin""#);
    let p = check(
        &cat,
        &s,
        &around_handover(
            &[
                r#"ALTER ROLE "$x$" RENAME TO "role$$""#,
                r#"ALTER DATABASE "'q'" RENAME TO "a""b""#,
            ],
            "role$$",
            3,
            &[r#"DROP ROLE "role$$""#],
        ),
    );
    assert_eq!(p.steps[2].database(), Some("a\"b"));
    // One statement per line even with control characters in a database name.
    let cat = catalog(
        vec![role("r", None)],
        vec![DatabaseInfo::new("tab\t\nnl", SU)],
    );
    let s = spec(json!({"delta_operations": [{"action": "delete_role", "name": "r"}]}));
    let p = check(
        &cat,
        &s,
        &around_handover(&[], "r", 3, &["DROP ROLE \"r\""]),
    );
    assert_eq!(p.to_string().lines().count(), p.len());
}

#[test]
fn a_running_compute_creates_with_postgres_default() {
    // A reconfiguration: the two checkpoints of FILE_COPY would write out
    // what the compute's users dirtied.
    check_in(
        PlanContext::Reconcile,
        Some(PRIV),
        &catalog(vec![], vec![]),
        &spec(json!({"databases": [{"name": "a", "owner": SU}, {"name": "b", "owner": SU}]})),
        &[
            "CREATE DATABASE \"a\" WITH OWNER \"cloud_admin\"",
            "CREATE DATABASE \"b\" WITH OWNER \"cloud_admin\"",
            &grant("\"a\""),
            &grant("\"b\""),
        ],
    );
}

#[test]
fn a_running_compute_whose_bulk_apply_is_unsynced_copies_files() {
    // Its checkpoints sync nothing: a file copy writes each page once.
    let two = spec(json!({"databases": [{"name": "a", "owner": SU}, {"name": "b", "owner": SU}]}));
    check_in(
        PlanContext::ReconcileUnsynced,
        Some(PRIV),
        &catalog(vec![], vec![]),
        &two,
        &[
            "CREATE DATABASE \"a\" WITH OWNER \"cloud_admin\" STRATEGY FILE_COPY",
            "CREATE DATABASE \"b\" WITH OWNER \"cloud_admin\" STRATEGY FILE_COPY",
            &grant("\"a\""),
            &grant("\"b\""),
        ],
    );
    // One creation is no bulk apply: postgres' default.
    check_in(
        PlanContext::ReconcileUnsynced,
        Some(PRIV),
        &catalog(vec![], vec![DatabaseInfo::new("a", SU)]),
        &two,
        &[
            "CREATE DATABASE \"b\" WITH OWNER \"cloud_admin\"",
            &grant("\"b\""),
        ],
    );
}

#[test]
fn each_step_carries_the_kind_its_planner_gave_it() {
    // One plan with every kind: a rename and a drop of a role (its handover
    // in each database), a created and an altered role, a database created,
    // one given a new owner, the privileged role's grant and default
    // privileges in the new database.
    let mut cat = catalog(
        vec![role("old", None), role("gone", None), role("kept", None)],
        vec![DatabaseInfo::new("owned", SU)],
    );
    // The privileged role missing and template1 without its defaults, so
    // that both are planned.
    cat.roles.retain(|r| r.name != PRIV);
    cat.template1_defaults = false;
    let s = raw_spec(json!({
        "delta_operations": [
            {"action": "rename_role", "name": "old", "new_name": "renamed"},
            {"action": "delete_role", "name": "gone"}
        ],
        "roles": [{"name": "new", "encrypted_password": null},
                  {"name": "kept", "encrypted_password": null, "options": [{"name": "createdb", "vartype": "bool", "value": "true"}]}],
        "databases": [{"name": "owned", "owner": "kept"}, {"name": "made", "owner": SU}]
    }));
    let plan = plan_unchecked(&cat, &s, SU, Some(PRIV), START).unwrap();
    use StepKind::*;
    let handover = [
        (
            Other,
            "SELECT pg_catalog.set_config('compute_ctl.dropped_role', 'gone'",
        ),
        (Other, "REASSIGN OWNED BY \"gone\""),
        (Other, "DROP OWNED BY \"gone\""),
    ];
    let expected: Vec<(StepKind, &str)> = [(RoleChange, "ALTER ROLE \"old\" RENAME")]
        .into_iter()
        // In each database: owned, postgres, template1.
        .chain(handover.iter().copied().cycle().take(9))
        .chain([
            (Other, "DROP ROLE \"gone\""),
            (RoleChange, "CREATE ROLE \"neon_superuser\""),
            (RoleChange, "CREATE ROLE \"new\""),
            (RoleChange, "ALTER ROLE \"kept\""),
            (Other, "ALTER DATABASE \"owned\" OWNER"),
            (CreateDatabase, "CREATE DATABASE \"made\""),
            (Grant, "GRANT ALL ON DATABASE \"made\""),
            (Other, "ALTER DEFAULT PRIVILEGES"),
        ])
        .collect();
    assert_eq!(plan.len(), expected.len(), "{plan}");
    for (step, (kind, sql)) in plan.steps.iter().zip(&expected) {
        assert!(step.sql().starts_with(sql), "{step} is not {sql}");
        assert_eq!(step.kind(), *kind, "{step}");
    }
    // What the executor derives from the kind.
    for step in &plan.steps {
        let batchable = matches!(step.kind(), RoleChange | Grant);
        assert_eq!(step.batchable(), batchable, "{step}");
        assert_eq!(
            step.creates_database(),
            step.kind() == CreateDatabase,
            "{step}"
        );
    }
}
