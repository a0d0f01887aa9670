//! Unit tests of the pure planner: no database. Each case is a catalog
//! snapshot and a spec in, the exact SQL out, through [`check`] (with the
//! privileged role, as every real compute plans; [`check_plain`] without) (or
//! [`refused`] for a spec the planner must refuse); the other properties of
//! a plan (phases, groups, redaction) are asserted on the plan it returns.

use super::*;
use crate::catalog::context::Origin;
use crate::catalog::model::{DatabaseInfo, DATCONNLIMIT_INVALID_DB};
use serde_json::{json, Value};

mod databases;
mod delta;
mod roles;

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

/// The raw spec with these roles, databases and delta operations.
fn raw_spec(v: Value) -> ComputeSpec {
    spec(v).into_raw()
}

/// A spec with these roles, databases and delta operations.
pub(crate) fn spec(v: Value) -> ValidSpec {
    let mut doc = json!({"format_version": 1.0, "cluster": {"roles": [], "databases": []}});
    for key in ["roles", "databases"] {
        if let Some(x) = v.get(key) {
            doc["cluster"][key] = x.clone();
        }
    }
    if let Some(d) = v.get("delta_operations") {
        doc["delta_operations"] = d.clone();
    }
    ValidSpec::from_json(&doc.to_string()).expect("valid spec")
}

/// A role that can log in, with this stored password.
fn role(name: &str, password: Option<&str>) -> RoleInfo {
    RoleInfo {
        login: true,
        password: password.map(crate::secret::Secret::new),
        ..RoleInfo::new(name)
    }
}

/// The privileged role every real compute has (the reference's name).
const PRIV: &str = "neon_superuser";

/// How a role created as a member of [`PRIV`] ends (the reference's
/// attributes for one).
const MEMBER: &str =
    " INHERIT CREATEROLE CREATEDB BYPASSRLS REPLICATION IN ROLE \"neon_superuser\"";

/// [`PRIV`]'s grant on a database the plan creates, `db` quoted.
fn grant(db: &str) -> String {
    format!("GRANT ALL ON DATABASE {db} TO \"neon_superuser\"")
}

/// A fresh cluster's catalog (the superuser and the privileged role;
/// postgres, template1, carrying the privileged role's default privileges
/// as a finished template's does, and template0) with these roles and
/// databases besides.
fn catalog(roles: Vec<RoleInfo>, dbs: Vec<DatabaseInfo>) -> Catalog {
    let mut all = vec![
        RoleInfo {
            superuser: true,
            ..role(SU, None)
        },
        RoleInfo::new(PRIV),
    ];
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
        template1_defaults: true,
        valid_until: Default::default(),
    }
}

/// The context the cases plan in, unless they say otherwise: a local
/// start's (a reconfiguration's is [`PlanContext::Reconcile`]).
const START: PlanContext = PlanContext::Start(Origin::FinishedTemplate);

/// Plans `spec` on `catalog` as the superuser [`SU`] at a start, with the
/// privileged role [`PRIV`], and checks the exact statements in order;
/// returns the plan.
#[track_caller]
fn check(catalog: &Catalog, spec: &ComputeSpec, expected_sql: &[impl AsRef<str>]) -> Plan {
    check_in(START, Some(PRIV), catalog, spec, expected_sql)
}

/// [`check`] without a privileged role (as plain postgres would).
#[track_caller]
fn check_plain(catalog: &Catalog, spec: &ComputeSpec, expected_sql: &[impl AsRef<str>]) -> Plan {
    check_in(START, None, catalog, spec, expected_sql)
}

/// [`check`] in `context`, with `privileged` as the privileged role.
#[track_caller]
fn check_in(
    context: PlanContext,
    privileged: Option<&str>,
    catalog: &Catalog,
    spec: &ComputeSpec,
    expected_sql: &[impl AsRef<str>],
) -> Plan {
    // (A `match`, not a closure: the panic names the case's line.)
    let plan = match plan_unchecked(catalog, spec, SU, privileged, context) {
        Ok(plan) => plan,
        Err(e) => panic!("refused: {e}\nspec: {spec:?}"),
    };
    let got: Vec<&str> = plan.steps.iter().map(Step::sql).collect();
    let expected: Vec<&str> = expected_sql.iter().map(AsRef::as_ref).collect();
    assert_eq!(got, expected, "spec: {spec:?}");
    plan
}

/// Plans `spec` on `catalog` as [`check`] does, and returns the error.
#[track_caller]
fn refused(catalog: &Catalog, spec: &ComputeSpec) -> PlanError {
    match plan_unchecked(catalog, spec, SU, Some(PRIV), START) {
        Ok(plan) => panic!("planned instead of refusing:\n{plan}spec: {spec:?}"),
        Err(e) => e,
    }
}

/// The statements that hand over, in one database, what role `r` owns and
/// what was granted to it, before `DROP ROLE` (the database is the step's).
fn handover(r: &str) -> [String; 3] {
    let quoted = escape_identifier(r);
    [
        format!(
            "SELECT pg_catalog.set_config('compute_ctl.dropped_role', {}, true); {}",
            postgres_protocol::escape::escape_literal(r),
            crate::catalog::plan::delta::REVOKE_FOREIGN_GRANTS
        ),
        format!("REASSIGN OWNED BY {quoted} TO \"{SU}\""),
        format!("DROP OWNED BY {quoted}"),
    ]
}

/// The statements of a plan that deletes role `r`: `before`, then its
/// handover in each of `databases` databases (in the plan's order), then
/// `after`.
fn around_handover(before: &[&str], r: &str, databases: usize, after: &[&str]) -> Vec<String> {
    let h = handover(r);
    let each = (0..databases).flat_map(|_| h.iter().cloned());
    let own = |sqls: &[&str]| sqls.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    own(before)
        .into_iter()
        .chain(each)
        .chain(own(after))
        .collect()
}
