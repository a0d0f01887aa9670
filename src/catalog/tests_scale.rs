//! The planner at scale: its index gives the same plans as a scan would
//! (spec order kept, renames and drops seen by later passes), and a plan
//! gives up when its caller stops waiting.

use super::model::{Catalog, DatabaseInfo, RoleInfo};
use super::plan::tests::spec;
use super::plan::{plan_cancellable, PlanError};
use super::PlanContext;
use serde_json::{json, Value};
use std::sync::atomic::AtomicBool;

const SU: &str = "cloud_admin";
const RECONCILE: PlanContext = PlanContext::Reconcile;

fn roles_json(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"name": format!("r{i}"), "encrypted_password": null}))
        .collect()
}

fn catalog_of(n: usize) -> Catalog {
    let mut roles = vec![RoleInfo {
        superuser: true,
        ..RoleInfo::new(SU)
    }];
    roles.extend((0..n).map(|i| RoleInfo {
        login: true,
        ..RoleInfo::new(format!("r{i}"))
    }));
    Catalog {
        roles,
        databases: vec![DatabaseInfo::new("postgres", SU)],
        template1_defaults: false,
        valid_until: Default::default(),
    }
}

#[test]
fn a_large_catalog_plans_in_spec_order_and_a_no_op_is_empty() {
    let n = 20_000;
    let s = spec(json!({"roles": roles_json(n)}));
    let never = AtomicBool::new(false);
    let empty = Catalog::default();
    let p = plan_cancellable(&empty, &s, SU, None, RECONCILE, &never).unwrap();
    assert_eq!(p.len(), n);
    for (i, step) in p.steps.iter().enumerate() {
        assert_eq!(step.sql(), format!("CREATE ROLE \"r{i}\" WITH LOGIN"));
    }
    let p = plan_cancellable(&catalog_of(n), &s, SU, None, RECONCILE, &never).unwrap();
    assert!(p.is_empty(), "{p}");
}

#[test]
fn a_rename_and_a_drop_move_the_databases_they_owned() {
    let mut cat = catalog_of(3);
    for i in 0..4 {
        cat.databases
            .push(DatabaseInfo::new(format!("d{i}"), format!("r{}", i % 2)));
    }
    let s = spec(json!({
        "roles": [{"name": "n0", "encrypted_password": null}],
        "databases": [
            {"name": "d0", "owner": "n0"}, {"name": "d2", "owner": "n0"},
            {"name": "d1", "owner": SU}, {"name": "d3", "owner": SU}
        ],
        "delta_operations": [
            {"action": "rename_role", "name": "r0", "new_name": "n0"},
            {"action": "delete_role", "name": "r1"}
        ]
    }));
    let never = AtomicBool::new(false);
    let p = plan_cancellable(&cat, &s, SU, None, RECONCILE, &never).unwrap();
    // Neither pass needs an ALTER DATABASE .. OWNER TO: the rename gave
    // r0's databases to n0, the drop gave r1's to the superuser.
    assert!(!p.steps.iter().any(|s| s.sql().contains("OWNER TO")), "{p}");
    assert_eq!(p.steps[0].sql(), "ALTER ROLE \"r0\" RENAME TO \"n0\"");
    assert!(p.steps.iter().any(|s| s.sql() == "DROP ROLE \"r1\""), "{p}");
}

#[test]
fn a_cancelled_plan_gives_up() {
    let s = spec(json!({"roles": roles_json(5_000)}));
    let cancelled = AtomicBool::new(true);
    let got = plan_cancellable(&Catalog::default(), &s, SU, None, RECONCILE, &cancelled);
    assert_eq!(got.unwrap_err(), PlanError::Cancelled);
}
