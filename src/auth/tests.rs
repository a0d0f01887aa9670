//! The authenticator's outcomes, against freshly generated keys.

use super::keys::RSA_ALGORITHMS;
use super::*;
use jsonwebtoken::{encode, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

const COMPUTE: &str = "compute-1";
/// A caller on another host (the benchmarking range, RFC 2544).
const REMOTE: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 2)));

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A freshly generated key pair: its private half and public JWK.
struct TestKey {
    encoding: EncodingKey,
    alg: Algorithm,
    jwk: Value,
}

fn ed25519(kid: Option<&str>) -> TestKey {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pkcs8");
    let mut jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
        "x": b64url(pair.public_key().as_ref()),
    });
    if let Some(kid) = kid {
        jwk["kid"] = json!(kid);
    }
    TestKey {
        encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        alg: Algorithm::EdDSA,
        jwk,
    }
}

fn p256(kid: Option<&str>) -> TestKey {
    let rng = SystemRandom::new();
    let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("keygen");
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("pkcs8");
    // Uncompressed point: 0x04 || x || y.
    let point = pair.public_key().as_ref();
    let mut jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": b64url(&point[1..33]), "y": b64url(&point[33..65]),
    });
    if let Some(kid) = kid {
        jwk["kid"] = json!(kid);
    }
    TestKey {
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        alg: Algorithm::ES256,
        jwk,
    }
}

fn mint(key: &TestKey, kid: Option<&str>, claims: Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, &claims, &key.encoding).expect("encode")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn auth(keys: &[&TestKey], compute_id: Option<&str>) -> Authenticator {
    let jwks: Vec<Value> = keys.iter().map(|k| k.jwk.clone()).collect();
    let config = json!({"jwks": {"keys": jwks}});
    Authenticator::from_config(Some(&config), compute_id).expect("valid jwks")
}

fn in_minutes(minutes: i64) -> i64 {
    chrono::Utc::now().timestamp() + minutes * 60
}

fn status(result: Result<Claims, AuthError>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(e) => e.status,
    }
}

#[test]
fn open_without_keys() {
    for config in [
        None,
        Some(json!(null)),
        Some(json!({})),
        Some(json!({"jwks": null})),
        Some(json!({"jwks": {"keys": []}})),
    ] {
        let a = Authenticator::from_config(config.as_ref(), Some(COMPUTE)).expect("ok");
        assert!(a.is_open(), "{config:?}");
        // Loopback callers pass without a token, whatever the header.
        for local in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            let local: IpAddr = local.parse().expect("an address");
            assert_eq!(a.check(Some(local), None), Ok(Claims::default()));
            assert_eq!(
                a.check(Some(local), Some("Basic eHh4")),
                Ok(Claims::default())
            );
        }
        // Anyone else, or a caller whose address is unknown, is 401 with how to fix it.
        for other in [
            REMOTE,
            None,
            Some("10.0.0.1".parse().expect("v4")),
            Some("::ffff:198.18.0.2".parse().expect("v6")),
            Some("fe80::1".parse().expect("v6")),
        ] {
            let err = a.check(other, None).expect_err("not on loopback");
            assert_eq!(
                (err.status, err.message.as_str()),
                (401, NO_KEYS),
                "{other:?}"
            );
            assert!(err.message.contains("compute_ctl_config.jwks"));
        }
    }
}

#[test]
fn malformed_jwks_is_an_error_naming_the_key() {
    let good = ed25519(Some("good"));
    let cases = [
        (json!("nope"), "expected a JSON object"),
        (json!({"jwks": []}), "jwks"),
        (json!({"jwks": {}}), "missing \"keys\""),
        (json!({"jwks": {"keys": {}}}), "must be an array"),
        (
            json!({"jwks": {"keys": [good.jwk, {"kty": "OKP", "crv": "Ed25519", "x": "not base64!", "kid": "bad"}]}}),
            "keys[1] (kid \"bad\"): unusable key",
        ),
        (
            json!({"jwks": {"keys": [{"crv": "Ed25519", "x": "AAAA"}]}}),
            "keys[0]: invalid JWK",
        ),
        (
            json!({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}}),
            "keys[0] (kid \"hmac\"): symmetric",
        ),
        (
            json!({"jwks": {"keys": [{"kty": "OKP", "crv": "X25519", "x": b64url(&[1; 32])}]}}),
            "keys[0]: invalid JWK",
        ),
        (
            json!({"jwks": {"keys": [{"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}]}}),
            "unsupported EC curve",
        ),
        (
            json!({"jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64url(&[1; 32]), "use": "enc"}]}}),
            "encryption key",
        ),
        (
            json!({"jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64url(&[1; 32]), "alg": "RS256"}]}}),
            "\"alg\": \"RS256\" does not fit",
        ),
        (
            json!({"jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64url(&[1; 32]), "key_ops": ["sign"]}]}}),
            "key_ops",
        ),
    ];
    for (config, expected) in cases {
        let err = Authenticator::from_config(Some(&config), Some(COMPUTE))
            .expect_err(&config.to_string())
            .to_string();
        assert!(err.contains(expected), "{err:?} lacks {expected:?}");
    }
}

#[test]
fn rsa_jwk_is_accepted() {
    // The RSA public key of RFC 7517 appendix A.1 (2048 bits).
    let jwk = json!({
        "kty": "RSA", "alg": "RS256", "kid": "2011-04-29",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
    });
    let keys = parse_jwks(&json!({"keys": [jwk]})).expect("valid RSA JWK");
    assert_eq!(keys[0].kid(), Some("2011-04-29"));
    assert_eq!(keys[0].algorithms(), &[Algorithm::RS256]);

    // Without "alg": every RSA signature algorithm.
    let no_alg = json!({"kty": "RSA", "n": b64url(&[0xc5; 256]), "e": "AQAB"});
    let keys = parse_jwks(&json!({"keys": [no_alg]})).expect("valid RSA JWK");
    assert_eq!(keys[0].kid(), None);
    assert_eq!(keys[0].algorithms(), &RSA_ALGORITHMS);
}

/// RFC 7515 appendix A.2: an RS256 JWS and its public key. Its `exp` (2011) has
/// passed, and expiry is only looked at once the signature verifies, so
/// "expired" proves RSA verification works; a flipped signature byte is 401 too.
#[test]
fn rsa_signature_is_verified() {
    const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
    let config = json!({"jwks": {"keys": [{
        "kty": "RSA", "e": "AQAB",
        "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
    }]}});
    let a = Authenticator::from_config(Some(&config), Some(COMPUTE)).expect("jwks");
    let err = a.check(REMOTE, Some(&bearer(TOKEN))).expect_err("expired");
    assert_eq!(
        (err.status, err.message.as_str()),
        (401, "authorization token has expired")
    );

    let mut tampered = TOKEN.to_owned();
    let last = if tampered.ends_with('w') { "A" } else { "w" };
    tampered.replace_range(tampered.len() - 1.., last);
    let err = a
        .check(REMOTE, Some(&bearer(&tampered)))
        .expect_err("tampered");
    assert_eq!(err.status, 401);
    assert!(err.message.contains("signature"), "{err}");
}

#[test]
fn header_shape_is_400() {
    let key = ed25519(None);
    let a = auth(&[&key], Some(COMPUTE));
    let token = mint(&key, None, json!({"compute_id": COMPUTE}));
    for header in [
        None,
        Some("".to_owned()),
        Some("Bearer".to_owned()),
        Some("Bearer ".to_owned()),
        Some("Basic dXNlcjpwYXNz".to_owned()),
        Some(format!("Token {token}")),
        Some(format!("Bearer {token} extra")),
    ] {
        let err = a.check(REMOTE, header.as_deref()).expect_err("must fail");
        assert_eq!(
            (err.status, err.message.as_str()),
            (400, INVALID_TOKEN),
            "{header:?}"
        );
    }
}

#[test]
fn a_bearer_token_that_does_not_decode_is_401() {
    let key = ed25519(None);
    let a = auth(&[&key], Some(COMPUTE));
    let token = mint(&key, None, json!({"compute_id": COMPUTE}));
    let (_, rest) = token.split_once('.').expect("jwt");
    for header in [
        "Bearer not.a.jwt".to_owned(),
        "Bearer garbage".to_owned(),
        "Bearer a.b.c".to_owned(),
        format!("Bearer {token}.x.y"),
        format!("Bearer {}.{rest}", b64url(b"[\"alg\"]")),
        format!("Bearer {}.{rest}", b64url(b"{\"typ\":\"JWT\"}")),
        format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1)),
    ] {
        let err = a.check(REMOTE, Some(&header)).expect_err("must fail");
        assert_eq!(
            (err.status, err.message.as_str()),
            (401, INVALID_TOKEN),
            "{header:?}"
        );
    }
    // A well-formed header over a payload that is not JSON: the signature
    // does not verify.
    let (head, _) = token.split_once('.').expect("jwt");
    for bad in [
        format!("{head}.{}.sig", b64url(b"not json")),
        format!("{head}.{}.", b64url(b"{}")),
    ] {
        assert_eq!(status(a.check(REMOTE, Some(&bearer(&bad)))), 401);
    }
}
#[test]
fn right_compute_id_is_ok() {
    let key = ed25519(None);
    let a = auth(&[&key], Some(COMPUTE));
    assert!(!a.is_open());
    let exp = in_minutes(5);
    let token = mint(
        &key,
        None,
        json!({"compute_id": COMPUTE, "exp": exp, "extra": [1, 2]}),
    );
    let claims = a.check(REMOTE, Some(&bearer(&token))).expect("granted");
    assert_eq!(claims.compute_id.as_deref(), Some(COMPUTE));
    assert_eq!(claims.exp, Some(exp as u64));
    // The scheme is case-insensitive, surrounding whitespace is fine; no exp is fine.
    let token = mint(&key, None, json!({"compute_id": COMPUTE}));
    assert_eq!(
        status(a.check(REMOTE, Some(&format!(" bearer  {token} ")))),
        200
    );
}

#[test]
fn wrong_compute_id_is_403() {
    let key = ed25519(None);
    let a = auth(&[&key], Some(COMPUTE));
    let token = mint(&key, None, json!({"compute_id": "compute-2"}));
    let err = a
        .check(REMOTE, Some(&bearer(&token)))
        .expect_err("other compute");
    assert_eq!(err.status, 403, "{err}");
    let token = mint(&key, None, json!({"sub": "someone"}));
    assert_eq!(status(a.check(REMOTE, Some(&bearer(&token)))), 403);
    // A compute_id scoped token still needs the right one even with aud compute.
    let token = mint(&key, None, json!({"compute_id": "x", "aud": "compute"}));
    assert_eq!(status(a.check(REMOTE, Some(&bearer(&token)))), 403);
}

#[test]
fn without_compute_id_only_admin_grants() {
    let key = ed25519(None);
    for configured in [None, Some("")] {
        let a = auth(&[&key], configured);
        for claim in ["", COMPUTE] {
            let token = mint(&key, None, json!({"compute_id": claim}));
            assert_eq!(status(a.check(REMOTE, Some(&bearer(&token)))), 403);
        }
        let token = mint(
            &key,
            None,
            json!({"scope": ADMIN_SCOPE, "aud": [COMPUTE_AUDIENCE]}),
        );
        assert_eq!(status(a.check(REMOTE, Some(&bearer(&token)))), 200);
    }
}

#[test]
fn admin_scope_needs_compute_audience() {
    let key = ed25519(None);
    let a = auth(&[&key], Some(COMPUTE));
    for (claims, expected) in [
        (json!({"scope": ADMIN_SCOPE, "aud": "compute"}), 200),
        (
            json!({"scope": ADMIN_SCOPE, "aud": ["other", "compute"]}),
            200,
        ),
        (json!({"scope": ADMIN_SCOPE, "aud": "other"}), 401),
        (json!({"scope": ADMIN_SCOPE, "aud": ["other"]}), 401),
        (json!({"scope": ADMIN_SCOPE}), 401),
        (json!({"scope": "compute_ctl:read", "aud": "compute"}), 403),
    ] {
        let token = mint(&key, None, claims.clone());
        assert_eq!(
            status(a.check(REMOTE, Some(&bearer(&token)))),
            expected,
            "{claims}"
        );
    }
    let token = mint(&key, None, json!({"scope": ADMIN_SCOPE, "aud": "compute"}));
    let claims = a.check(REMOTE, Some(&bearer(&token))).expect("admin");
    assert_eq!(claims.audience, Some(vec!["compute".to_owned()]));
    assert_eq!(claims.scope.as_deref(), Some(ADMIN_SCOPE));
}
#[test]
fn other_key_is_401() {
    let key = ed25519(None);
    let stranger = ed25519(None);
    let a = auth(&[&key], Some(COMPUTE));
    let token = mint(&stranger, None, json!({"compute_id": COMPUTE}));
    let err = a
        .check(REMOTE, Some(&bearer(&token)))
        .expect_err("foreign key");
    assert_eq!(err.status, 401, "{err}");
    assert_eq!(err.message, "invalid authorization token signature");
    assert!(!err.message.contains(&token));

    // A valid signature over altered claims fails too.
    let good = mint(&key, None, json!({"compute_id": "compute-2"}));
    let forged_payload = b64url(json!({"compute_id": COMPUTE}).to_string().as_bytes());
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_eq!(status(a.check(REMOTE, Some(&bearer(&forged)))), 401);
}

#[test]
fn expiry_and_not_before() {
    let key = ed25519(None);
    let a = auth(&[&key], Some(COMPUTE));
    let check = |claims: Value| status(a.check(REMOTE, Some(&bearer(&mint(&key, None, claims)))));
    assert_eq!(
        check(json!({"compute_id": COMPUTE, "exp": in_minutes(-1)})),
        401
    );
    assert_eq!(check(json!({"compute_id": COMPUTE, "exp": 0})), 401);
    // Expiry beats the grant decision: an expired foreign-compute token is 401.
    assert_eq!(
        check(json!({"compute_id": "other", "exp": in_minutes(-1)})),
        401
    );
    assert_eq!(
        check(json!({"compute_id": COMPUTE, "exp": in_minutes(1)})),
        200
    );
    // A fractional NumericDate is not what the control plane sends: malformed.
    let past = in_minutes(-1) as f64 + 0.5;
    assert_eq!(check(json!({"compute_id": COMPUTE, "exp": past})), 401);
    assert_eq!(
        check(json!({"compute_id": COMPUTE, "nbf": in_minutes(1)})),
        401
    );
    assert_eq!(
        check(json!({"compute_id": COMPUTE, "nbf": in_minutes(-1)})),
        200
    );
    let err = a
        .check(
            REMOTE,
            Some(&bearer(&mint(
                &key,
                None,
                json!({"compute_id": COMPUTE, "exp": in_minutes(-1)}),
            ))),
        )
        .expect_err("expired");
    assert!(err.message.contains("expired"), "{err}");
}

#[test]
fn malformed_claims_in_a_signed_token_are_401() {
    let key = ed25519(None);
    let a = auth(&[&key], Some(COMPUTE));
    for claims in [
        json!({"compute_id": 17}),
        json!({"compute_id": COMPUTE, "exp": "tomorrow"}),
        json!({"scope": ADMIN_SCOPE, "aud": 1}),
    ] {
        let token = mint(&key, None, claims.clone());
        let err = a
            .check(REMOTE, Some(&bearer(&token)))
            .expect_err("malformed");
        assert_eq!(err.status, 401, "{claims}");
        assert_eq!(err.message, "malformed claims in authorization token");
    }
}

#[test]
fn unsupported_or_mismatched_algorithm_is_refused() {
    let key = ed25519(None);
    let a = auth(&[&key], Some(COMPUTE));
    let refusal = |token: &str| {
        let err = a
            .check(REMOTE, Some(&bearer(token)))
            .expect_err("must be refused");
        (err.status, err.message)
    };
    let payload = b64url(json!({"compute_id": COMPUTE}).to_string().as_bytes());
    // alg "none" (unsigned) and an algorithm jsonwebtoken lacks: not a token we can read.
    for header in [json!({"alg": "none"}), json!({"alg": "ES512"})] {
        let head = b64url(header.to_string().as_bytes());
        let token = format!("{head}.{payload}.{}", b64url(b"sig"));
        assert_eq!(refusal(&token), (401, INVALID_TOKEN.to_owned()), "{header}");
    }
    let unsupported = (401, "unsupported token algorithm".to_owned());
    // HS256 with the public key as the secret (algorithm confusion).
    let x = key.jwk["x"].as_str().expect("x").as_bytes();
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({"compute_id": COMPUTE}),
        &EncodingKey::from_secret(x),
    )
    .expect("encode");
    assert_eq!(refusal(&token), unsupported);
    // An ES256 token against an Ed25519-only JWKS.
    let ec = p256(None);
    let token = mint(&ec, None, json!({"compute_id": COMPUTE}));
    assert_eq!(refusal(&token), unsupported);
}
#[test]
fn kid_selects_the_key() {
    let a_key = ed25519(Some("a"));
    let b_key = ed25519(Some("b"));
    let a = auth(&[&a_key, &b_key], Some(COMPUTE));
    let claims = json!({"compute_id": COMPUTE});
    let check = |key: &TestKey, kid: Option<&str>| {
        status(a.check(REMOTE, Some(&bearer(&mint(key, kid, claims.clone())))))
    };
    assert_eq!(check(&b_key, Some("b")), 200);
    assert_eq!(check(&a_key, Some("a")), 200);
    // Without a kid every fitting key is tried.
    assert_eq!(check(&b_key, None), 200);
    // The kid names the other key: its signature does not verify.
    assert_eq!(check(&b_key, Some("a")), 401);
    // Unknown kid.
    let err = a
        .check(
            REMOTE,
            Some(&bearer(&mint(&b_key, Some("c"), claims.clone()))),
        )
        .expect_err("unknown kid");
    assert_eq!(err.status, 401);
    assert!(err.message.contains("unknown key"), "{err}");
}

#[test]
fn ec_keys_and_mixed_sets() {
    let ed = ed25519(Some("ed"));
    let ec = p256(Some("ec"));
    let a = auth(&[&ed, &ec], Some(COMPUTE));
    assert_eq!(a.keys().len(), 2);
    let claims = json!({"compute_id": COMPUTE});
    for (key, kid) in [(&ec, Some("ec")), (&ec, None), (&ed, None)] {
        let token = mint(key, kid, claims.clone());
        assert_eq!(
            status(a.check(REMOTE, Some(&bearer(&token)))),
            200,
            "{kid:?}"
        );
    }
    // ES256 token whose kid names the Ed25519 key: algorithm mismatch.
    let token = mint(&ec, Some("ed"), claims);
    let err = a
        .check(REMOTE, Some(&bearer(&token)))
        .expect_err("mismatch");
    assert_eq!(err.status, 401);
    assert_eq!(err.message, "token algorithm does not match its key");
}

#[test]
fn auth_error_display_and_debug_hide_secrets() {
    let key = ed25519(Some("k"));
    let a = auth(&[&key], Some(COMPUTE));
    let debug = format!("{a:?}");
    assert!(debug.contains("\"k\""), "{debug}");
    assert!(
        !debug.contains(key.jwk["x"].as_str().expect("x")),
        "{debug}"
    );
    let err = AuthError::new(403, "nope");
    assert_eq!(err.to_string(), "nope");
    let _: &dyn std::error::Error = &err;
}

#[test]
fn the_reference_messages() {
    let key = ed25519(None);
    let a = auth(&[&key], Some(COMPUTE));
    let refusal = |claims: Value| {
        let err = a
            .check(REMOTE, Some(&bearer(&mint(&key, None, claims))))
            .expect_err("refused");
        (err.status, err.message)
    };
    assert_eq!(
        refusal(json!({"compute_id": "other"})),
        (
            403,
            "invalid compute ID in authorization token claims".to_owned()
        )
    );
    assert_eq!(
        refusal(json!({})),
        (
            403,
            "missing compute_id in authorization token claims".to_owned()
        )
    );
    assert_eq!(
        refusal(json!({"scope": ADMIN_SCOPE, "aud": ["invalid"]})),
        (
            401,
            "invalid audience in authorization token claims".to_owned()
        )
    );
    let err = a.check(REMOTE, None).expect_err("no header");
    assert_eq!((err.status, err.message.as_str()), (400, INVALID_TOKEN));
}

#[test]
fn a_waiting_gate_is_503_until_keys_are_installed() {
    let key = ed25519(None);
    let gate = Gate::waiting("keys are being pulled");
    let token = mint(&key, None, json!({"compute_id": COMPUTE}));
    let err = gate
        .check(REMOTE, Some(&bearer(&token)))
        .expect_err("waiting");
    assert_eq!(
        (err.status, err.message.as_str()),
        (503, "keys are being pulled")
    );
    assert!(gate.is_waiting());
    assert!(gate.install(auth(&[&key], Some(COMPUTE))));
    assert_eq!(status(gate.check(REMOTE, Some(&bearer(&token)))), 200);
    assert_eq!(status(gate.check(REMOTE, None)), 400);
    // Keys in force are not dropped by a config without keys.
    assert!(!gate.install(Authenticator::open()));
    assert_eq!(status(gate.check(REMOTE, None)), 400);
}
