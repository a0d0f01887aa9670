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

/// A running compute whose external API is guarded by a fresh Ed25519 key,
/// and a way to mint tokens with it (the reference signs with EdDSA).
async fn guarded() -> (Compute, impl Fn(serde_json::Value) -> String) {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let x = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())
    };
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "x": x});
    let mut c = Compute::start_with(Opts {
        config: Some(json!({
            "spec": spec(json!([]), json!([])),
            "compute_ctl_config": {"jwks": {"keys": [jwk]}}
        })),
        extra_args: vec!["--compute-id".into(), "compute-1".into()],
        ..Opts::default()
    });
    c.wait_running();
    let key = EncodingKey::from_ed_der(pkcs8.as_ref());
    let mint = move |claims: serde_json::Value| {
        encode(&Header::new(Algorithm::EdDSA), &claims, &key).unwrap()
    };
    (c, mint)
}

/// `GET /status` with `token` (none: no Authorization header).
async fn status_with(c: &Compute, token: Option<String>) -> (u16, serde_json::Value) {
    let mut req = http().get(c.url("/status"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    into_pair(req.send().await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_1_no_scope_claim() {
    let (c, mint) = guarded().await;
    let (code, body) = status_with(&c, Some(mint(json!({})))).await;
    assert_eq!(code, 403, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_2_admin_scope_claim() {
    let (c, mint) = guarded().await;
    let admin = |aud: Option<serde_json::Value>| {
        let mut claims = json!({"scope": "compute_ctl:admin"});
        if let Some(aud) = aud {
            claims["aud"] = aud;
        }
        Some(mint(claims))
    };
    let (code, body) = status_with(&c, admin(Some(json!(["compute"])))).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("running")));
    assert_eq!(
        status_with(&c, admin(Some(json!(["invalid"])))).await.0,
        401
    );
    assert_eq!(status_with(&c, admin(None)).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_3_missing_header_and_other_compute() {
    let (c, mint) = guarded().await;
    let (code, body) = status_with(&c, None).await;
    assert_eq!(
        (code, body),
        (400, json!({"error": "invalid authorization token"}))
    );
    let (code, body) = status_with(&c, Some(mint(json!({"compute_id": "other"})))).await;
    assert_eq!(
        (code, body),
        (
            403,
            json!({"error": "invalid compute ID in authorization token claims"})
        )
    );
}
