//! A catalog step too long for the stop budget: a SIGTERM during the plan
//! of a large spec is honoured within `--stop-timeout` (the plan runs off
//! the runtime and gives up when the compute stops waiting for it).

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
    let url = c.url("/configure");
    let configure =
        tokio::spawn(async move { http().post(url).json(&json!({"spec": big})).send().await });
    // The start planned once already: wait for the second plan.
    let deadline = Instant::now() + Duration::from_secs(60);
    while c
        .log()
        .matches("planning the catalog reconciliation")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "no second plan:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let postmaster = c.postmaster_pid();
    let asked = Instant::now();
    c.signal(15);
    // The deadline is the budget plus a margin for a loaded machine; a
    // plan that held the runtime took tens of seconds here.
    let margin = Duration::from_secs(3);
    let status = c.wait_exit(Duration::from_secs(STOP_TIMEOUT) + margin);
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(0), "after {took:?}:\n{}", c.log());
    assert!(postmaster.is_some_and(|pm| !process_alive(pm)));
    // The /configure got an answer or its connection closed: not a hang.
    let _ = configure.await.unwrap();
}
