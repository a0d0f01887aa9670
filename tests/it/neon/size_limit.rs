//! A project at its size limit still gets its roles and databases: while
//! compute_ctl applies a spec to the catalog on Neon storage,
//! `neon.max_cluster_size` is `-1` in the override file (included last),
//! and the file is emptied and reloaded after the apply, a failed one too
//! (the reference's `compute_ctl_temp_override.conf`).
//!
//! The apply is held on a row lock the test takes (compute_ctl's `ALTER
//! ROLE` waits for the test's own uncommitted one), so what postgres has
//! loaded can be read in the middle of it.

use crate::common::*;
use crate::fake_pageserver::Behaviour;
use crate::neon_support::*;
use crate::wait::until;
use serde_json::json;
use std::time::Duration;

/// `neon.max_cluster_size` as a new backend sees it (NULL: not set).
async fn size_limit(c: &Compute) -> Option<String> {
    c.client("postgres")
        .await
        .query_one("SELECT current_setting('neon.max_cluster_size', true)", &[])
        .await
        .unwrap()
        .get(0)
}

fn lifted(setting: &Option<String>) -> bool {
    setting.as_deref() == Some("-1")
}

/// Whether compute_ctl's apply is waiting on the test's lock.
async fn apply_is_blocked(c: &Compute) -> bool {
    c.client("postgres")
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND query ILIKE 'ALTER ROLE%'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
        > 0
}

fn override_file(c: &Compute) -> String {
    std::fs::read_to_string(c.pgdata().join("compute_ctl_temp_override.conf")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_limit_is_lifted_for_the_apply_only_and_put_back_after_a_failed_one() {
    let ps = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let spec = neon_spec(&ps, json!("Primary"));
    let mut c = start(spec.clone(), &pgbin, &[]);
    c.wait_running();
    // The start applied with the limit lifted, and put it back.
    assert_eq!(override_file(&c), "");
    assert!(!lifted(&size_limit(&c).await));
    assert!(
        c.log()
            .contains("parameter \"neon.max_cluster_size\" removed from configuration file"),
        "postgres did not see the limit put back after the start's apply:\n{}",
        c.log()
    );

    for (round, password) in [
        ("succeeds", "md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ("fails", "md5bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
    ] {
        let holder = c.client("postgres").await;
        holder
            .batch_execute("BEGIN; ALTER ROLE \"app user\" CONNECTION LIMIT 7")
            .await
            .unwrap();
        let mut changed = spec.clone();
        changed["cluster"]["roles"][0]["encrypted_password"] = json!(password);
        let configure = {
            let changed = changed.clone();
            let c = &c;
            async move { c.configure(&changed).await }
        };
        let observe = async {
            until(
                "the apply to wait on the test's lock",
                Duration::from_secs(30),
                async || apply_is_blocked(&c).await,
            )
            .await;
            let during = size_limit(&c).await;
            assert!(
                lifted(&during),
                "{round}: during the apply the limit is {during:?}"
            );
            assert_eq!(override_file(&c), "neon.max_cluster_size=-1\n");
            if round == "succeeds" {
                holder.batch_execute("COMMIT").await.unwrap();
            } else {
                // The apply's session is killed: the apply fails.
                c.client("postgres")
                    .await
                    .batch_execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE wait_event_type = 'Lock' AND query ILIKE 'ALTER ROLE%'",
                    )
                    .await
                    .unwrap();
                holder.batch_execute("ROLLBACK").await.unwrap();
            }
        };
        let ((status, body), ()) = tokio::join!(configure, observe);
        match round {
            "succeeds" => assert_eq!(status, 200, "{body}"),
            _ => assert_ne!(status, 200, "{body}"),
        }
        assert_eq!(
            override_file(&c),
            "",
            "{round}: the override file after the apply"
        );
        let after = size_limit(&c).await;
        assert!(
            !lifted(&after),
            "{round}: after the apply the limit is {after:?}"
        );
    }
}
