//! Processes killed outright (SIGKILL). Postgres killed while Running or in
//! the middle of a catalog apply: the compute fails with postgres' exit
//! status and last log lines in `/status.error`, a new `/configure`
//! recovers it, and without one it exits 1 after the failure delay.
//! compute_ctl killed during a basebackup, a catalog apply or a
//! reconfiguration: the next compute_ctl on the same PGDATA stops the
//! orphaned postmaster, wipes what was half made, and starts clean.

use super::many;
use crate::common::*;
use crate::fake_pageserver::Behaviour;
use serde_json::{json, Value};
use std::time::Duration;

/// The databases named `db N` and their owners.
async fn spec_dbs(c: &Compute) -> Vec<(String, String)> {
    c.client("postgres")
        .await
        .query(
            "SELECT datname::text, pg_get_userbyid(datdba)::text FROM pg_database \
             WHERE datname LIKE 'db %' ORDER BY datname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn want_dbs(n: usize) -> Vec<(String, String)> {
    let mut v: Vec<_> = (0..n)
        .map(|i| (format!("db {i}"), format!("role {}", i % 4)))
        .collect();
    v.sort();
    v
}

/// `/status.error` names postgres' death by SIGKILL and carries its log.
fn assert_death_reported(status: &Value) {
    let error = status["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("postgres exited unexpectedly") && error.contains("SIGKILL"),
        "{status}"
    );
    assert!(
        error.contains("its last log lines:\n") && error.contains("LOG:"),
        "no postgres log lines in the error: {status}"
    );
}

/// Waits for the phase the kills land in: a catalog apply under way.
fn wait_applying(c: &mut Compute) {
    c.wait_for_log("applying the catalog plan", Duration::from_secs(60));
}

/// SIGKILLs postgres once a catalog apply is under way.
fn kill_postgres_applying(c: &mut Compute) {
    wait_applying(c);
    send_signal(c.postmaster_pid().unwrap(), 9);
}

/// A `/configure` of `dbs` databases, sent in the background.
fn configure_in_background(
    c: &Compute,
    dbs: usize,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let url = c.url("/configure");
    tokio::spawn(async move {
        http()
            .post(url)
            .json(&json!({"spec": many(dbs)}))
            .send()
            .await
    })
}

/// After postgres' death: Failed, the death reported; a `/configure` of
/// `dbs` databases runs it again with the catalog exactly the spec.
async fn fails_then_configure_recovers(c: &Compute, dbs: usize) {
    let status = c.wait_status("failed", Duration::from_secs(60)).await;
    assert_death_reported(&status);
    let (code, body) = c.configure(&many(dbs)).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("running")),
        "{body}"
    );
    assert_eq!(
        spec_dbs(c).await,
        want_dbs(dbs),
        "the catalog is exactly the spec"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_while_running_fails_then_configure_recovers_else_exit_1() {
    let small = spec(
        json!([{"name": "r", "encrypted_password": null}]),
        json!([]),
    );
    let mut c = Compute::start_with(Opts {
        spec: Some(small.clone()),
        failure_exit_delay: 3,
        ..Opts::default()
    });
    c.wait_running();
    send_signal(c.postmaster_pid().unwrap(), 9);
    // A new spec starts it again.
    fails_then_configure_recovers(&c, 3).await;

    // Killed again and left alone: exit 1 after the failure delay.
    send_signal(c.postmaster_pid().unwrap(), 9);
    let code = c.wait_exit(Duration::from_secs(60)).code();
    assert_eq!(code, Some(1), "{}", c.log());
    c.assert_logged("exiting in 3s unless a new spec arrives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_during_a_catalog_apply_fails_then_configure_recovers() {
    let mut c = Compute::start_with(Opts {
        spec: Some(spec(json!([]), json!([]))),
        failure_exit_delay: 600,
        ..Opts::default()
    });
    c.wait_running();
    let configure = configure_in_background(&c, 40);
    kill_postgres_applying(&mut c);
    let (code, body) = into_pair(configure.await.unwrap()).await;
    assert_eq!(code, 500, "{body}");
    assert_death_reported(&json!({"error": body["error"]}));
    fails_then_configure_recovers(&c, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_during_the_start_catalog_apply_fails_then_configure_recovers() {
    let mut c = Compute::start_with(Opts {
        spec: Some(many(40)),
        failure_exit_delay: 600,
        ..Opts::default()
    });
    kill_postgres_applying(&mut c);
    fails_then_configure_recovers(&c, 40).await;
}

/// SIGKILLs compute_ctl, leaving whatever it started; returns the orphaned
/// postmaster, if any.
fn kill_compute_ctl(c: &mut Compute) -> Option<i32> {
    let orphan = c.postmaster_pid().filter(|pm| process_alive(*pm));
    c.signal(9);
    c.wait_exit(Duration::from_secs(10));
    orphan
}

/// The next compute_ctl on the same PGDATA stops the orphan and runs.
fn restarts_clean(c: &mut Compute, orphan: Option<i32>) {
    c.respawn();
    c.wait_running();
    if let Some(pm) = orphan {
        assert!(!process_alive(pm), "the orphaned postmaster still runs");
        c.assert_logged("orphaned postmaster");
        assert_ne!(c.postmaster_pid(), Some(pm));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compute_ctl_killed_during_the_start_catalog_apply_restarts_clean() {
    let mut c = Compute::start(Some(many(40)));
    wait_applying(&mut c);
    let orphan = kill_compute_ctl(&mut c);
    assert!(orphan.is_some(), "postgres was running during the apply");
    restarts_clean(&mut c, orphan);
    assert_eq!(spec_dbs(&c).await, want_dbs(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compute_ctl_killed_during_a_reconfiguration_restarts_clean() {
    let mut c = Compute::start(Some(many(2)));
    c.wait_running();
    let configure = configure_in_background(&c, 40);
    wait_applying(&mut c);
    let orphan = kill_compute_ctl(&mut c);
    assert!(
        configure.await.unwrap().is_err(),
        "the /configure got no answer"
    );
    restarts_clean(&mut c, orphan);
    // A clean slate with the spec it was started with: nothing of the half
    // applied one.
    assert_eq!(spec_dbs(&c).await, want_dbs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compute_ctl_killed_during_a_basebackup_restarts_clean() {
    use crate::neon_support::*;
    let ps = pageserver(Behaviour::Slow(Duration::from_millis(20))).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let mut c = start(neon_spec(&ps, json!("Primary")), &pgbin, &[]);
    c.wait_for_log("requesting basebackup", Duration::from_secs(30));
    // Killed once the archive has started to land in PGDATA.
    let entries = || std::fs::read_dir(c.pgdata()).map_or(0, |d| d.count());
    crate::wait::until(
        "the basebackup to start writing",
        Duration::from_secs(60),
        async || entries() > 0,
    )
    .await;
    let orphan = kill_compute_ctl(&mut c);
    assert!(orphan.is_none(), "no postgres during a basebackup");
    assert!(
        !c.log().contains("basebackup done"),
        "killed too late: {}",
        c.log()
    );
    // A stray file, as a half-written archive could leave.
    std::fs::write(c.pgdata().join("half-written"), b"junk").unwrap();
    restarts_clean(&mut c, None);
    assert!(!c.pgdata().join("half-written").exists());
    assert_eq!(c.db_owner("app db").await, "app user");
    assert_eq!(
        ps.recorded().commands.len(),
        2,
        "the second start fetched it anew"
    );
}
