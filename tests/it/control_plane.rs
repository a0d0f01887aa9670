//! Pulling the spec from a control plane (`-p`, `-i`).

use crate::common::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
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
async fn an_empty_answer_installs_the_keys_it_carries() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let x = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())
    };
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x});
    let answer =
        json!({"status": "empty", "spec": null, "compute_ctl_config": {"jwks": {"keys": [jwk]}}});
    let (port, _) = control_plane(answer, 0).await;
    let mut c = start(port);
    c.wait_for_log("no spec for this compute yet", Duration::from_secs(20));
    let (code, body) = c.configure(&spec(json!([]), json!([]))).await;
    assert_eq!(
        (code, body),
        (400, json!({"error": "invalid authorization token"})),
        "the keys guard /configure"
    );
    let token = encode(
        &Header::new(Algorithm::EdDSA),
        &json!({"compute_id": "compute-1"}),
        &EncodingKey::from_ed_der(pkcs8.as_ref()),
    )
    .unwrap();
    let (code, body) = into_pair(
        http()
            .post(c.url("/configure"))
            .bearer_auth(token)
            .json(&json!({"spec": spec(json!([]), json!([]))}))
            .send()
            .await,
    )
    .await;
    assert_eq!((code, &body["status"]), (200, &json!("running")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_control_plane_is_reported_and_the_api_stays_closed() {
    let (port, _) = control_plane(json!({"status": "attached", "spec": {"format_version": 1.0, "cluster": {"roles": [{"name": 5}]}}}), 0).await;
    let mut c = start(port);
    c.wait_for_log(
        "pulling the spec from the control plane",
        Duration::from_secs(20),
    );
    c.assert_logged("spec.cluster.roles[0].name");
    // Without the control plane's keys nobody may configure the compute.
    let (code, body) = c.configure(&spec(json!([]), json!([]))).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(c.get("/status").await.0, 503);
    assert!(c.metrics().await.contains("status=\"empty\""));
}

/// A control plane that answers `answer` only once `release` is notified;
/// `asked` is notified when the request arrives.
async fn slow_control_plane(answer: Value) -> (u16, Arc<Notify>, Arc<Notify>) {
    let asked = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (a, r) = (asked.clone(), release.clone());
    let route = warp::path!("compute" / "api" / "v2" / "computes" / String / "spec")
        .and(warp::get())
        .then(move |_id: String| {
            let (a, r, answer) = (a.clone(), r.clone(), answer.clone());
            async move {
                a.notify_one();
                r.notified().await;
                warp::reply::json(&answer)
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (port, asked, release)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configure_before_the_control_plane_answers_gets_503_and_changes_nothing() {
    let answer = json!({
        "status": "attached",
        "spec": spec(json!([{"name": "pulled role", "encrypted_password": null}]), json!([])),
        "compute_ctl_config": {"jwks": null}
    });
    let (port, asked, release) = slow_control_plane(answer).await;
    let c = start(port);
    asked.notified().await;
    // The window: the control plane has been asked and has not answered.
    let intruder = spec(
        json!([{"name": "intruder", "encrypted_password": null}]),
        json!([]),
    );
    let (code, body) = c.configure(&intruder).await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("control plane"),
        "{body}"
    );
    assert_eq!(c.get("/status").await.0, 503);
    assert!(
        c.metrics().await.contains("status=\"empty\""),
        "still empty"
    );
    release.notify_one();
    c.wait_status("running", Duration::from_secs(60)).await;
    let roles: Vec<String> = c
        .client("postgres")
        .await
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(roles.contains(&"pulled role".to_owned()), "{roles:?}");
    assert!(!roles.contains(&"intruder".to_owned()), "{roles:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_file_is_read_at_each_use_and_refresh_pulls_again() {
    let answer = json!({
        "status": "attached",
        "spec": spec(json!([]), json!([])),
        "compute_ctl_config": {"jwks": null}
    });
    let (port, seen) = control_plane(answer, 0).await;
    let dir = test_dir();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "first-token\n").unwrap();
    let c = Compute::start_with(Opts {
        extra_args: vec![
            "-p".into(),
            format!("http://127.0.0.1:{port}"),
            "-i".into(),
            "compute-1".into(),
            "--control-plane-token-file".into(),
            token_file.display().to_string(),
        ],
        ..Opts::default()
    });
    c.wait_status("running", Duration::from_secs(60)).await;
    // A rotated token is picked up by the next pull.
    std::fs::write(&token_file, "second-token").unwrap();
    c.refresh_and_wait().await;
    assert_eq!(
        *seen.lock().unwrap(),
        ["Bearer first-token", "Bearer second-token"]
    );
    let log = c.log();
    assert!(!log.contains("first-token") && !log.contains("second-token"));
}
