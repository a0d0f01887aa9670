//! The reference's privileged role (row 28 of NEON_SCENARIOS.md): what it
//! may do, what it is refused, and names it cannot have.

use crate::common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_28_privileged_role() {
    // A template of its own: the migrations run (and are logged) when the
    // template for this privileged role is made.
    let cache = test_dir();
    let mut c = Compute::start_with(Opts {
        template_cache: cache.path().to_path_buf(),
        spec: Some(spec(
            json!([{"name": "alice", "encrypted_password": null}]),
            json!([{"name": "app", "owner": "alice"}]),
        )),
        extra_args: vec![
            "--privileged-role-name".into(),
            "my_superuser".into(),
            "--cgroup".into(),
            "neon-postgres".into(),
        ],
        ..Opts::default()
    });
    c.wait_running();
    let admin = c.client("postgres").await;
    let row = admin
        .query_one(
            "SELECT rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, \
             rolconnlimit, rolbypassrls FROM pg_roles WHERE rolname = 'my_superuser'",
            &[],
        )
        .await
        .unwrap();
    let flags: Vec<bool> = [0, 1, 2, 3, 4, 5, 7].iter().map(|i| row.get(*i)).collect();
    assert_eq!(flags, [false, true, true, true, false, true, true]);
    assert_eq!(row.get::<_, i32>(6), -1);
    let version: i32 = admin
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .unwrap()
        .get(0);
    let mut members = vec![
        "pg_read_all_data",
        "pg_write_all_data",
        "pg_monitor",
        "pg_signal_backend",
    ];
    let mut not_members = vec![
        "pg_execute_server_program",
        "pg_read_server_files",
        "pg_write_server_files",
        "pg_checkpoint",
    ];
    if version >= 160000 {
        members.push("pg_create_subscription");
        not_members.push("pg_use_reserved_connections");
    }
    let member = |r: &'static str| {
        let admin = &admin;
        async move {
            admin
                .query_one("SELECT pg_has_role('my_superuser', $1, 'MEMBER')", &[&r])
                .await
                .unwrap()
                .get::<_, bool>(0)
        }
    };
    for r in members {
        assert!(member(r).await, "member of {r}");
    }
    for r in not_members {
        assert!(!member(r).await, "not a member of {r}");
    }
    let n: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = 'neon_superuser'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    // The spec's role is its member, and its database grants it ALL.
    let row = admin
        .query_one(
            "SELECT pg_has_role('alice', 'my_superuser', 'MEMBER'), \
             has_database_privilege('my_superuser', 'app', 'CREATE, CONNECT, TEMPORARY'), \
             (SELECT id FROM neon_migration.migration_id)",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0) && row.get::<_, bool>(1));
    assert!(row.get::<_, i64>(2) > 0);
    let shown: String = admin
        .query_one("SHOW neon.privileged_role_name", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(shown, "my_superuser");
    assert!(c.log().contains("Running migration id=1"));
    // pg_create_subscription's migration needs PostgreSQL 16.
    let five = if version >= 160000 {
        "Running"
    } else {
        "Skipping"
    };
    assert!(
        c.log().contains(&format!("{five} migration id=5 ")),
        "{}",
        c.log()
    );
    // A reference flag without an implementation: one warning naming it.
    assert_eq!(c.log().matches("--cgroup is not supported").count(), 1);
}

#[test]
fn neon_scenario_28_invalid_privileged_role_names_are_refused() {
    for bad in ["NeonSuperuser", "$'neon_superuser", ""] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_compute_ctl"))
            .args(["-D", "/nonexistent", "-C", "postgresql://a@127.0.0.1:1/p"])
            .args(["--privileged-role-name", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("privileged"));
    }
}
