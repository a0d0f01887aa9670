//! The HTTP API's JWT authentication against a real compute: keys, audiences
//! and scopes.

use super::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh Ed25519 key pair: the private key, and its public JWK (kid `k1`).
pub(crate) fn keypair() -> (EncodingKey, Value) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1",
                     "x": b64url(pair.public_key().as_ref())});
    (EncodingKey::from_ed_der(pkcs8.as_ref()), jwk)
}

/// A token with `claims` signed by `key` (kid `k1`).
pub(crate) fn token(key: &EncodingKey, claims: Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".into());
    encode(&header, &claims, key).unwrap()
}

#[tokio::test]
async fn jwt_is_enforced_on_external_routes_except_metrics() {
    let (key, jwk) = keypair();
    let (other, _) = keypair();
    let mut c = Compute::start_with(Opts {
        config: Some(json!({"spec": null, "compute_ctl_config": {"jwks": {"keys": [jwk]}}})),
        extra_args: vec!["--compute-id".into(), "compute-1".into()],
        ..Opts::default()
    });
    c.wait_for_log("HTTP API listening", Duration::from_secs(10));
    let exp = chrono::Utc::now().timestamp() + 300;
    let get = |auth: Option<String>| {
        let mut req = http().get(c.url("/status"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move { into_pair(req.send().await).await }
    };
    assert_eq!(get(None).await.0, 400);
    assert_eq!(get(Some("Basic Zm9vOmJhcg==".into())).await.0, 400);
    // A well-formed header whose token does not decode: 401, as the reference.
    let (code, body) = get(Some("Bearer not.a.jwt".into())).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("invalid authorization token"))
    );
    let forged = token(&other, json!({"compute_id": "compute-1", "exp": exp}));
    assert_eq!(get(Some(format!("Bearer {forged}"))).await.0, 401);
    let expired = token(&key, json!({"compute_id": "compute-1", "exp": exp - 3600}));
    assert_eq!(get(Some(format!("Bearer {expired}"))).await.0, 401);
    let wrong = token(&key, json!({"compute_id": "compute-2", "exp": exp}));
    let (code, body) = get(Some(format!("Bearer {wrong}"))).await;
    assert_eq!(code, 403, "{body}");
    let good = token(&key, json!({"compute_id": "compute-1", "exp": exp}));
    let (code, body) = get(Some(format!("Bearer {good}"))).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("empty")));
    let admin = token(
        &key,
        json!({"scope": "compute_ctl:admin", "aud": ["compute"], "exp": exp}),
    );
    assert_eq!(get(Some(format!("Bearer {admin}"))).await.0, 200);
    // /metrics is open; the internal port does not serve /status.
    assert_eq!(
        into_pair(http().get(c.url("/metrics")).send().await)
            .await
            .0,
        200
    );
    assert_eq!(
        into_pair(http().get(c.internal_url("/status")).send().await)
            .await
            .0,
        404
    );
    // The token never reaches the log.
    let signature = good.rsplit('.').next().unwrap();
    assert!(!c.log().contains(signature));
}

#[tokio::test]
async fn keys_configured_by_a_configure_guard_the_external_port() {
    let (key, jwk) = keypair();
    let c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    assert_eq!(c.get("/status").await.0, 200, "open without keys");
    let body = json!({"spec": small_spec(), "compute_ctl_config": {"jwks": {"keys": [jwk]}}});
    let (code, answer) = into_pair(http().post(c.url("/configure")).json(&body).send().await).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        c.get("/status").await.0,
        400,
        "the external port now wants a token"
    );
    let admin = token(
        &key,
        json!({"scope": "compute_ctl:admin", "aud": "compute"}),
    );
    let (code, _) = into_pair(http().get(c.url("/status")).bearer_auth(admin).send().await).await;
    assert_eq!(code, 200);
    // A later config without keys does not open the external port again.
    let body = json!({"spec": small_spec(), "compute_ctl_config": {}});
    let (code, answer) = into_pair(
        http()
            .post(c.url("/configure"))
            .bearer_auth(token(
                &key,
                json!({"scope": "compute_ctl:admin", "aud": "compute"}),
            ))
            .json(&body)
            .send()
            .await,
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(c.get("/status").await.0, 400);
}

/// The keys of a `/configure` are installed when the driver accepts its
/// spec, before the start (as the control-plane pull's are), and a refused
/// spec installs none.
#[tokio::test]
async fn keys_guard_from_the_moment_their_spec_is_accepted() {
    let (key, jwk) = keypair();
    let c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    let config = |spec: Value| json!({"spec": spec, "compute_ctl_config": {"jwks": {"keys": [jwk.clone()]}}});
    let bad = {
        let mut s = small_spec();
        s["cluster"]["settings"] =
            json!([{"name": "no_such_setting", "value": "1", "vartype": "integer"}]);
        s
    };
    let (code, answer) = c.post("/configure", &config(bad)).await;
    assert_eq!(code, 400, "{answer}");
    assert_eq!(
        c.get("/status").await.0,
        200,
        "a refused spec installed its keys"
    );

    let url = c.url("/configure");
    let body = config(small_spec());
    let configure =
        tokio::spawn(async move { into_pair(http().post(url).json(&body).send().await).await });
    let admin = token(
        &key,
        json!({"scope": "compute_ctl:admin", "aud": "compute"}),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let seen = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the keys were never installed"
        );
        if c.get("/status").await.0 == 400 {
            let answer = into_pair(
                http()
                    .get(c.url("/status"))
                    .bearer_auth(&admin)
                    .send()
                    .await,
            )
            .await;
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(seen.0, 200, "{}", seen.1);
    assert_ne!(
        seen.1["status"], "running",
        "the keys were installed only once the compute ran"
    );
    let (code, answer) = configure.await.unwrap();
    assert_eq!(code, 200, "{answer}");
}
