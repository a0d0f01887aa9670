//! Pulling the spec from a control plane (`-p`, `-i`).

mod common;

use common::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warp::Filter;

/// A control plane serving `answer` for compute-1, after `failures` 503s.
/// Records the Authorization headers it saw.
async fn control_plane(answer: Value, failures: u32) -> (u16, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let left = Arc::new(Mutex::new(failures));
    let record = seen.clone();
    let route = warp::path!("compute" / "api" / "v2" / "computes" / String / "spec")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .map(move |id: String, auth: Option<String>| {
            record.lock().unwrap().push(auth.unwrap_or_default());
            let mut left = left.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return warp::reply::with_status(
                    warp::reply::json(&json!({"error": "busy"})),
                    warp::http::StatusCode::SERVICE_UNAVAILABLE,
                );
            }
            let status = if id == "compute-1" {
                warp::http::StatusCode::OK
            } else {
                warp::http::StatusCode::NOT_FOUND
            };
            warp::reply::with_status(warp::reply::json(&answer), status)
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (port, seen)
}

fn start(port: u16) -> Compute {
    Compute::start_with(Opts {
        extra_args: vec![
            "-p".into(),
            format!("http://127.0.0.1:{port}"),
            "-i".into(),
            "compute-1".into(),
        ],
        env: vec![("NEON_CONTROL_PLANE_TOKEN".into(), "cp-secret-token".into())],
        ..Opts::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_compute_pulls_its_spec_and_runs() {
    let answer = json!({
        "status": "attached",
        "spec": spec(json!([{"name": "pulled role", "encrypted_password": null}]), json!([{"name": "pulled db", "owner": "pulled role"}])),
        "compute_ctl_config": {"jwks": null}
    });
    let (port, seen) = control_plane(answer, 1).await;
    let c = start(port);
    c.wait_status("running", Duration::from_secs(60)).await;
    let owner = c.db_owner("pulled db").await;
    assert_eq!(owner, "pulled role");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "the 503 was retried once: {seen:?}");
    assert!(seen.iter().all(|a| a == "Bearer cp-secret-token"));
    assert!(!c.log().contains("cp-secret-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_answer_leaves_the_compute_waiting() {
    let (port, seen) = control_plane(json!({"status": "empty", "spec": null}), 0).await;
    let mut c = start(port);
    c.wait_for_log("no spec for this compute yet", Duration::from_secs(20));
    assert_eq!(c.get("/status").await.1["status"], "empty");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_control_plane_is_reported_and_the_compute_waits() {
    let (port, _) = control_plane(json!({"status": "attached", "spec": {"format_version": 1.0, "cluster": {"roles": [{"name": 5}]}}}), 0).await;
    let mut c = start(port);
    c.wait_for_log(
        "pulling the spec from the control plane",
        Duration::from_secs(20),
    );
    assert!(
        c.log().contains("spec.cluster.roles[0].name"),
        "{}",
        c.log()
    );
    assert_eq!(c.get("/status").await.1["status"], "empty");
}
