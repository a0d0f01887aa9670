//! `/refresh_configuration` on Neon storage, against a control plane whose
//! answer the test changes: the compute moves to the pageserver the control
//! plane names now, a control plane that fails is asked again until it
//! answers, and one that has no spec for the compute any more (it is
//! attached to no storage) ends the process with exit 1 (row 21).

use crate::common::*;
use crate::fake_pageserver::Behaviour;
use crate::neon_support::*;
use crate::wait::until;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warp::Filter;

/// A control plane for compute-1 whose answer (and a number of 503s before
/// it) the test sets; counts the requests.
struct ControlPlane {
    port: u16,
    answer: Arc<Mutex<(Value, u32)>>,
    asked: Arc<Mutex<u32>>,
}

impl ControlPlane {
    async fn start(answer: Value) -> ControlPlane {
        let state = Arc::new(Mutex::new((answer, 0)));
        let asked = Arc::new(Mutex::new(0));
        let (s, a) = (state.clone(), asked.clone());
        let route = warp::path!("compute" / "api" / "v2" / "computes" / "compute-1" / "spec")
            .and(warp::get())
            .map(move || {
                *a.lock().unwrap() += 1;
                let mut state = s.lock().unwrap();
                if state.1 > 0 {
                    state.1 -= 1;
                    return warp::reply::with_status(
                        warp::reply::json(&json!({"error": "busy"})),
                        warp::http::StatusCode::SERVICE_UNAVAILABLE,
                    );
                }
                warp::reply::with_status(warp::reply::json(&state.0), warp::http::StatusCode::OK)
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        ControlPlane {
            port,
            answer: state,
            asked,
        }
    }

    fn answer(&self, answer: Value, failures: u32) {
        *self.answer.lock().unwrap() = (answer, failures);
    }

    fn asked(&self) -> u32 {
        *self.asked.lock().unwrap()
    }

    fn args(&self) -> Vec<String> {
        vec![
            "-p".into(),
            format!("http://127.0.0.1:{}", self.port),
            "-i".into(),
            "compute-1".into(),
        ]
    }
}

fn attached(spec: &Value) -> Value {
    json!({"status": "attached", "spec": spec, "compute_ctl_config": {"jwks": null}})
}

/// A primary on the test pageserver, its spec pulled from `cp`.
fn start_pulled(cp: &ControlPlane, pgbin: &std::path::Path) -> Compute {
    let mut opts = neon_opts(json!(null), pgbin, &[]);
    opts.spec = None;
    opts.extra_args.extend(cp.args());
    Compute::start_with(opts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_21_empty_spec_during_refresh_configuration() {
    let ps = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let mut spec = neon_spec(&ps, json!("Primary"));
    spec["cluster"] = json!({"roles": [], "databases": []});
    spec["skip_pg_catalog_updates"] = json!(true);
    spec["reconfigure_concurrency"] = json!(1);
    spec["suspend_timeout_seconds"] = json!(-1);
    let cp = ControlPlane::start(attached(&spec)).await;
    let mut c = start_pulled(&cp, &pgbin);
    c.wait_status("running", Duration::from_secs(30)).await;
    let postmaster = c.postmaster_pid().expect("a postmaster");
    cp.answer(json!({"status": "empty", "spec": null}), 0);
    let (code, body) = c.refresh_configuration().await;
    assert_eq!((code, &body), (200, &json!("")), "{}", c.log());
    let status = c.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{}", c.log());
    let log = c.log();
    assert!(log.contains("attached to no storage"), "{log}");
    // Postgres was stopped (immediately: no checkpoint to storage that is
    // not the compute's any more), not left behind.
    assert!(!process_alive(postmaster), "postgres outlived compute_ctl");
    assert!(log.contains("to=termination_pending"), "{log}");
    // Detached, there are no safekeepers to sync with: one sync, the start's.
    let calls = std::fs::read_to_string(pgbin.with_file_name("state.log")).unwrap();
    assert_eq!(calls.lines().count(), 1, "{calls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_moves_the_compute_to_the_pageserver_the_control_plane_names_now() {
    let ps = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let spec = neon_spec(&ps, json!("Primary"));
    let cp = ControlPlane::start(attached(&spec)).await;
    let c = start_pulled(&cp, &pgbin);
    c.wait_status("running", Duration::from_secs(60)).await;
    let pid = c.postmaster_pid();

    // The shard moved: the control plane names another pageserver, and
    // answers 503 for a while (more than one pull's own attempts).
    let moved = pageserver(Behaviour::Normal).await;
    let mut new = neon_spec(&moved, json!("Primary"));
    new["cluster"]["roles"] = json!([
        {"name": "app user", "encrypted_password": null},
        {"name": "after the move", "encrypted_password": null}
    ]);
    cp.answer(attached(&new), 8);
    let asked = cp.asked();
    let (code, _) = c.refresh_configuration().await;
    assert_eq!(code, 200);
    // The failed attempt shows in /status while postgres serves on.
    until(
        "the failed refresh in /status",
        Duration::from_secs(30),
        async || {
            let s = c.get("/status").await.1;
            s["status"] != "running" && s["error"].as_str().is_some_and(|e| e.contains("503"))
        },
    )
    .await;
    c.client("app db").await;
    until(
        "the retried refresh to apply",
        Duration::from_secs(60),
        async || {
            c.get("/status").await.1["status"] == "running"
                && show(&c, "neon.pageserver_connstring").await == moved.connstring()
        },
    )
    .await;
    assert!(cp.asked() > asked + 1, "the control plane was asked again");
    assert_eq!(c.postmaster_pid(), pid, "a refresh is applied in place");
    assert_eq!(c.get("/status").await.1["error"], Value::Null);
    let client = c.client("postgres").await;
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = 'after the move'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    // The states it went through, as the reference names them.
    for (from, to) in [
        ("running", "refresh_configuration_pending"),
        ("refresh_configuration_pending", "refresh_configuration"),
        ("refresh_configuration", "refresh_configuration_pending"),
        ("refresh_configuration", "running"),
    ] {
        assert!(c.transitions(from, to).await >= 1, "{from} -> {to}");
    }
    // The same spec again: read, nothing applied.
    let reloads = c.log().matches("received SIGHUP").count();
    c.refresh_and_wait().await;
    assert_eq!(c.log().matches("received SIGHUP").count(), reloads);
    assert!(c.log().contains("nothing to apply"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_is_refused_without_postgres_or_a_source() {
    // Started without -p, -S or -c: the spec comes over the API, and there
    // is nowhere to read it again.
    let c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    let (code, body) = c.refresh_configuration().await;
    assert_eq!(code, 412, "{body}");
    assert_eq!(body["error"], "invalid compute status: empty");
    let (code, _) = c.configure(&spec(json!([]), json!([]))).await;
    assert_eq!(code, 200);
    let (code, body) = c.refresh_configuration().await;
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no spec source"));
}
