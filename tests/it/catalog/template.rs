//! The local template comes finished: the privileged role, the migrations
//! and template1's default privileges are made once, when the template is,
//! and a start from it finds them done (see src/driver/template.rs).

use crate::common::*;
use serde_json::json;

fn templates_in(cache: &std::path::Path) -> usize {
    std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pg"))
        .count()
}

fn start(cache: &std::path::Path, extra_args: Vec<String>) -> Compute {
    let mut c = Compute::start_with(Opts {
        spec: Some(spec(
            json!([{"name": "alice", "encrypted_password": null}]),
            json!([{"name": "app", "owner": "alice"}]),
        )),
        template_cache: cache.to_path_buf(),
        extra_args,
        ..Opts::default()
    });
    c.wait_running();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_template_comes_with_the_privileged_role_and_migrations() {
    let cache = test_dir();
    let mut first = start(cache.path(), vec![]);
    let log = first.log();
    assert!(log.contains("Running migration id=1 ("), "{log}");
    assert!(
        log.contains("catalog migrations done in the template"),
        "{log}"
    );
    first.terminate();
    assert_eq!(templates_in(cache.path()), 1);

    // The next start copies it: nothing to migrate, and the spec's
    // database inherits the privileged role's default privileges.
    let mut second = start(cache.path(), vec![]);
    let log = second.log();
    assert!(!log.contains("Running migration"), "{log}");
    assert!(!log.contains("created the privileged role"), "{log}");
    assert!(
        log.contains("catalog migrations done migration_id="),
        "{log}"
    );
    let row = second
        .client("postgres")
        .await
        .query_one(
            "SELECT (SELECT id FROM neon_migration.migration_id), \
             pg_has_role('alice', 'neon_superuser', 'MEMBER'), \
             has_database_privilege('neon_superuser', 'app', 'CREATE, CONNECT, TEMPORARY')",
            &[],
        )
        .await
        .unwrap();
    let last = compute_ctl::testing::catalog::migrations::MIGRATIONS.len() as i64;
    assert_eq!(row.get::<_, i64>(0), last);
    assert!(row.get::<_, bool>(1) && row.get::<_, bool>(2));
    let defaults: i64 = second
        .client("app")
        .await
        .query_one(
            "SELECT count(*) FROM pg_default_acl d JOIN pg_namespace n \
             ON n.oid = d.defaclnamespace AND n.nspname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(defaults, 2, "on tables and sequences, from template1");
    // The template's own run left no trace of itself in the copy.
    assert!(!second.pgdata().join("pg_stat/pgstat.stat").exists());
    second.terminate();

    // Another privileged role is another template.
    let mut other = start(
        cache.path(),
        vec!["--privileged-role-name".into(), "other_superuser".into()],
    );
    assert!(other.log().contains("Running migration id=1 ("));
    other.terminate();
    assert_eq!(templates_in(cache.path()), 2);
}
