//! Lines of the reference's `postgresql.conf` for Neon's postgres: the
//! internal port it asks for remote extensions (`neon.extension_server_port`,
//! in every configuration written), and logical replication's subscribers
//! held back (`neon.disable_logical_replication_subscribers`) while a start
//! with `drop_subscriptions_before_start` has not dropped the subscriptions
//! copied from another timeline, and let go once it has.

use crate::common::*;
use crate::fake_pageserver::Behaviour;
use crate::neon_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_are_held_until_the_start_dropped_the_copied_subscriptions() {
    let ps = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let mut spec = neon_spec(&ps, json!("Primary"));
    spec["drop_subscriptions_before_start"] = json!(true);
    let mut c = start(spec.clone(), &pgbin, &[]);
    c.wait_running();
    assert_eq!(
        show(&c, "neon.disable_logical_replication_subscribers").await,
        "false"
    );
    // Held at the postmaster's start, let go by a reload after the drop.
    let log = c.log();
    assert!(
        log.contains(
            "parameter \"neon.disable_logical_replication_subscribers\" changed to \"false\""
        ),
        "{log}"
    );
    assert_eq!(
        show(&c, "neon.extension_server_port").await,
        c.internal_port.to_string()
    );
    // A later reconfiguration does not hold them again (the reference's
    // does, until its next start).
    let mut changed = spec.clone();
    changed["cluster"]["roles"][0]["encrypted_password"] =
        json!("md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    let (status, body) = c.configure(&changed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        show(&c, "neon.disable_logical_replication_subscribers").await,
        "false"
    );
    let conf = std::fs::read_to_string(c.pgdata().join("postgresql.conf")).unwrap();
    assert!(conf.contains("neon.disable_logical_replication_subscribers = false\n"));
    assert!(conf.contains(&format!(
        "neon.extension_server_port = {}\n",
        c.internal_port
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_subscribers_are_never_held() {
    let ps = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let mut c = start(neon_spec(&ps, json!("Primary")), &pgbin, &[]);
    c.wait_running();
    assert_eq!(
        show(&c, "neon.disable_logical_replication_subscribers").await,
        "false"
    );
    assert!(!c
        .log()
        .contains("parameter \"neon.disable_logical_replication_subscribers\" changed"));
}
