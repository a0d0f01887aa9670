//! A catalog step too long for the stop budget: a SIGTERM during the plan
//! or the apply of a large spec is honoured within `--stop-timeout` (the
//! plan runs off the runtime and gives up when the compute stops waiting for
//! it; the apply's statement in flight ends with postgres' fast shutdown).

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Roles enough that planning and applying them take longer than the
/// shortened budget below (no passwords: the spec stays under the body limit).
const ROLES: usize = 100_000;

/// The shortened stop budget, in seconds.
const STOP_TIMEOUT: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_during_a_large_plan_is_honoured_within_the_stop_timeout() {
    // The spec's dry run, before it is accepted.
    sigterm_once_logged("planning the catalog reconciliation").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_during_a_large_apply_is_honoured_within_the_stop_timeout() {
    sigterm_once_logged("applying the catalog plan").await;
}

/// Starts a compute with the shortened budget, sends it a spec of
/// [`ROLES`] roles, and signals SIGTERM once `line` is logged for it: the
/// compute must exit 0, postgres stopped, within the budget
/// (plus a margin for a loaded machine).
async fn sigterm_once_logged(line: &str) {
    let mut c = Compute::start_with(Opts {
        spec: Some(spec(json!([]), json!([]))),
        extra_args: vec!["--stop-timeout".into(), STOP_TIMEOUT.to_string()],
        ..Opts::default()
    });
    c.wait_running();
    let roles: Vec<Value> = (0..ROLES)
        .map(|i| json!({"name": format!("role {i:06}")}))
        .collect();
    let big = spec(
        json!(roles),
        json!([{"name": "app", "owner": "role 000000"}]),
    );
    let times = c.log().matches(line).count() + 1;
    let url = c.url("/configure");
    let configure =
        tokio::spawn(async move { http().post(url).json(&json!({"spec": big})).send().await });
    let deadline = Instant::now() + Duration::from_secs(120);
    while c.log().matches(line).count() < times {
        assert!(
            Instant::now() < deadline,
            "not logged {times} times: {line}\n{}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let postmaster = c.postmaster_pid();
    let asked = Instant::now();
    c.signal(15);
    // A plan that held the runtime took tens of seconds here, and so does
    // the apply of this many roles.
    let margin = Duration::from_secs(3);
    let status = c.wait_exit(Duration::from_secs(STOP_TIMEOUT) + margin);
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(0), "after {took:?}:\n{}", c.log());
    assert!(postmaster.is_some_and(|pm| !process_alive(pm)));
    // The /configure got an answer or its connection closed: not a hang.
    let _ = configure.await.unwrap();
}
