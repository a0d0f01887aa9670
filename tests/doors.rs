//! Issue 9, "close the open doors": what the internal port serves, and
//! `/refresh_configuration`.

mod common;

use common::*;
use compute_ctl::http::table::{Ports, ROUTES};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_not_in_the_internal_list_is_404_on_the_internal_port() {
    let c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    let internal: Vec<&str> = ROUTES
        .iter()
        .filter(|r| r.ports == Ports::Internal)
        .map(|r| r.path)
        .collect();
    assert_eq!(
        internal,
        ["extensions", "grants", "refresh_configuration"],
        "the internal port serves what local helpers need, nothing else"
    );
    let mut checked = 0;
    for route in ROUTES.iter().filter(|r| r.ports != Ports::Internal) {
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let resp = http()
                .request(method.clone(), c.internal_url(&format!("/{}", route.path)))
                .json(&json!({"spec": spec(json!([]), json!([]))}))
                .send()
                .await
                .expect("internal port answers");
            assert_eq!(
                resp.status(),
                404,
                "{method} /{} on the internal port",
                route.path
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked}");
    // Nothing changed: still empty, as seen from the external port.
    assert_eq!(c.get("/status").await.1["status"], "empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_configuration_reapplies_the_spec_file() {
    let mut c = Compute::start(Some(spec(json!([]), json!([]))));
    c.wait_running();
    let path = c.dir.path().join("spec.json");
    let new = spec(
        json!([{"name": "refreshed", "encrypted_password": null}]),
        json!([{"name": "refreshed db", "owner": "refreshed"}]),
    );
    std::fs::write(&path, new.to_string()).unwrap();
    let (code, body) = into_pair(
        http()
            .post(c.internal_url("/refresh_configuration"))
            .send()
            .await,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "running");
    assert_eq!(c.db_owner("refreshed db").await, "refreshed");

    // A broken file is a clear error, and nothing changes.
    std::fs::write(
        &path,
        "{\"format_version\": 1.0, \"cluster\": {\"roles\": 5}}",
    )
    .unwrap();
    let (code, body) = into_pair(
        http()
            .post(c.internal_url("/refresh_configuration"))
            .send()
            .await,
    )
    .await;
    assert_eq!(code, 502, "{body}");
    assert!(body["error"].as_str().unwrap().contains("roles"), "{body}");
    assert_eq!(c.get("/status").await.1["status"], "running");
}
