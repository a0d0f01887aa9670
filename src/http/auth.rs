//! JWT bearer authentication for the external HTTP routes.
//!
//! The control plane passes a JSON Web Key Set (RFC 7517) in
//! `compute_ctl_config.jwks`, in the format of [`jsonwebtoken::jwk::JwkSet`]:
//! `{"keys": [JWK, ...]}`. Requests to the external routes (all but `/metrics`)
//! must carry `Authorization: Bearer <JWT>`, signed by one of those keys.
//!
//! Outcomes of [`Authenticator::check`]:
//!
//! | case | status |
//! |---|---|
//! | header missing, not `Bearer <token>`, or not a `header.payload.signature` JWT of JSON objects | 400 |
//! | unknown `kid`, unsupported or mismatched `alg`, bad signature, `exp` passed, `nbf` not reached | 401 |
//! | valid token whose claims do not grant this compute | 403 |
//!
//! A token grants this compute when its `compute_id` claim equals `--compute-id`, or
//! when its `scope` is `compute_ctl:admin` and its audience (`aud`, a string or an
//! array) contains `compute`. Without `--compute-id` only the admin scope grants.
//! `exp` and `nbf` are checked when present (with [`LEEWAY_SECS`] of clock skew) but
//! not required: the control plane's tokens need not carry them.
//!
//! With no keys configured the authenticator is *open* ([`Authenticator::is_open`]):
//! every request passes, and the caller should say so loudly in the log.
//!
//! # Minting a token (tests, tooling)
//!
//! With `ring` and `jsonwebtoken`:
//!
//! ```ignore
//! use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
//! use ring::{rand::SystemRandom, signature::{Ed25519KeyPair, KeyPair}};
//!
//! let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())?;
//! let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())?;
//! // The JWK for compute_ctl_config.jwks: x is the base64url (no padding) public key.
//! let jwk = serde_json::json!({
//!     "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1",
//!     "x": base64url_no_pad(pair.public_key().as_ref()),
//! });
//! let mut header = Header::new(Algorithm::EdDSA);
//! header.kid = Some("k1".into());
//! let claims = serde_json::json!({"compute_id": "compute-1", "exp": now + 300});
//! let token = encode(&header, &claims, &EncodingKey::from_ed_der(pkcs8.as_ref()))?;
//! // Send "Authorization: Bearer {token}".
//! // An admin token: {"scope": "compute_ctl:admin", "aud": ["compute"]}.
//! ```

use anyhow::{anyhow, bail};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The `scope` claim value that grants every compute (with [`COMPUTE_AUDIENCE`]).
pub const ADMIN_SCOPE: &str = "compute_ctl:admin";
/// The audience an admin-scoped token must name.
pub const COMPUTE_AUDIENCE: &str = "compute";
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 5;
/// Longest token accepted (bytes); longer ones are rejected without decoding.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a request was refused: an HTTP status (400, 401 or 403) and a message
/// fit for the `{"error": ...}` body. The message never contains the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    /// 400 (malformed header or token), 401 (not authenticated), 403 (not granted).
    pub status: u16,
    /// Human-readable reason.
    pub message: String,
}

impl AuthError {
    fn bad_request(message: impl Into<String>) -> Self {
        AuthError {
            status: 400,
            message: message.into(),
        }
    }

    fn unauthorized(message: impl Into<String>) -> Self {
        AuthError {
            status: 401,
            message: message.into(),
        }
    }

    fn forbidden(message: impl Into<String>) -> Self {
        AuthError {
            status: 403,
            message: message.into(),
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AuthError {}

/// The claims of a verified token (unknown claims are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The compute this token is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_id: Option<String>,
    /// `compute_ctl:admin` grants every compute when the audience names `compute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The `aud` claim: a string or an array of strings (empty when absent).
    #[serde(
        rename = "aud",
        default,
        deserialize_with = "deserialize_audience",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub audience: Vec<String>,
    /// Expiry, seconds since the Unix epoch (fractions are truncated).
    #[serde(
        default,
        deserialize_with = "deserialize_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub exp: Option<i64>,
    /// Not-before, seconds since the Unix epoch (fractions are truncated).
    #[serde(
        default,
        deserialize_with = "deserialize_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
    /// The subject, if any (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

fn deserialize_audience<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(a)) => vec![a],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// An RFC 7519 `NumericDate`: an integer or a fraction of seconds since the epoch.
fn deserialize_numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(i) = n.as_i64() {
        Ok(Some(i))
    } else if n.as_u64().is_some() {
        // Beyond i64::MAX: the far future.
        Ok(Some(i64::MAX))
    } else {
        match n.as_f64() {
            // `as` saturates, which is what a date out of range should do.
            Some(f) if f.is_finite() => Ok(Some(f.trunc() as i64)),
            _ => Err(serde::de::Error::custom("invalid NumericDate")),
        }
    }
}

/// A public key from the JWKS, ready to verify signatures.
#[derive(Clone)]
pub struct VerificationKey {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

impl VerificationKey {
    /// The key id (`kid`), if the JWK has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The signature algorithms this key verifies: the JWK's `alg` when given,
    /// else every algorithm that fits the key type.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// Verifies bearer tokens against the JWKS from `compute_ctl_config.jwks`.
#[derive(Debug, Clone)]
pub struct Authenticator {
    /// Empty: open.
    keys: Vec<VerificationKey>,
    compute_id: Option<String>,
}

impl Authenticator {
    /// From the `compute_ctl_config` JSON value (may be None / lack `jwks`) and the
    /// `--compute-id`.
    ///
    /// No keys configured (no config, `jwks` absent or null, or `"keys": []`) gives an
    /// open authenticator ([`Authenticator::is_open`]); the caller logs a loud warning.
    ///
    /// # Errors
    ///
    /// A malformed or unusable JWKS, naming the bad key (index and kid), or a
    /// `compute_ctl_config` that is not a JSON object.
    pub fn from_config(
        compute_ctl_config: Option<&Value>,
        compute_id: Option<&str>,
    ) -> anyhow::Result<Authenticator> {
        let compute_id = compute_id.filter(|id| !id.is_empty()).map(str::to_owned);
        let jwks = match compute_ctl_config {
            None | Some(Value::Null) => None,
            Some(Value::Object(config)) => config.get("jwks").filter(|j| !j.is_null()),
            Some(_) => bail!("compute_ctl_config: expected a JSON object"),
        };
        let keys = match jwks {
            None => Vec::new(),
            Some(jwks) => parse_jwks(jwks)?,
        };
        Ok(Authenticator { keys, compute_id })
    }

    /// An authenticator without keys: every request is let through.
    pub fn open() -> Authenticator {
        Authenticator {
            keys: Vec::new(),
            compute_id: None,
        }
    }

    /// True when no keys are configured: every request is let through.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The configured keys (empty when open).
    pub fn keys(&self) -> &[VerificationKey] {
        &self.keys
    }

    /// Checks the value of the Authorization header (None when absent) and returns
    /// the token's claims. When open, returns empty claims whatever the header.
    ///
    /// A header that is not valid UTF-8 is malformed: pass `Some("")` for it (400).
    ///
    /// # Errors
    ///
    /// The refusal, with its HTTP status: 400 for a missing or malformed header or
    /// token, 401 when the token is not authentic or not current, 403 when its
    /// claims do not grant this compute. The message never contains the token.
    pub fn check(&self, authorization: Option<&str>) -> Result<Claims, AuthError> {
        if self.is_open() {
            return Ok(Claims::default());
        }
        let header =
            authorization.ok_or_else(|| AuthError::bad_request("missing Authorization header"))?;
        let token = bearer_token(header)?;
        let parsed = inspect_token(token)?;
        let claims = self.verify(token, &parsed)?;

        let now = now_secs();
        if let Some(exp) = claims.exp {
            if now >= exp.saturating_add(LEEWAY_SECS) {
                return Err(AuthError::unauthorized("authorization token has expired"));
            }
        }
        if let Some(nbf) = claims.nbf {
            if now.saturating_add(LEEWAY_SECS) < nbf {
                return Err(AuthError::unauthorized(
                    "authorization token is not valid yet",
                ));
            }
        }
        if self.grants(&claims) {
            Ok(claims)
        } else {
            Err(AuthError::forbidden(
                "authorization token does not grant access to this compute",
            ))
        }
    }

    /// Whether verified `claims` grant access to this compute.
    fn grants(&self, claims: &Claims) -> bool {
        let own_compute = matches!(
            (&self.compute_id, &claims.compute_id),
            (Some(want), Some(got)) if want == got
        );
        let admin = claims.scope.as_deref() == Some(ADMIN_SCOPE)
            && claims.audience.iter().any(|a| a == COMPUTE_AUDIENCE);
        own_compute || admin
    }

    /// Checks the signature with the key(s) the header points at; returns the claims.
    fn verify(&self, token: &str, parsed: &TokenHeader) -> Result<Claims, AuthError> {
        let alg = Algorithm::from_str(&parsed.alg)
            .map_err(|_| AuthError::unauthorized("unsupported token algorithm"))?;
        let candidates: Vec<&VerificationKey> = match &parsed.kid {
            Some(kid) => {
                let by_kid: Vec<_> = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                    .collect();
                if by_kid.is_empty() {
                    return Err(AuthError::unauthorized(
                        "authorization token is signed with an unknown key",
                    ));
                }
                let fitting: Vec<_> = by_kid
                    .into_iter()
                    .filter(|k| k.algorithms.contains(&alg))
                    .collect();
                if fitting.is_empty() {
                    return Err(AuthError::unauthorized(
                        "token algorithm does not match its key",
                    ));
                }
                fitting
            }
            None => {
                let fitting: Vec<_> = self
                    .keys
                    .iter()
                    .filter(|k| k.algorithms.contains(&alg))
                    .collect();
                if fitting.is_empty() {
                    return Err(AuthError::unauthorized("unsupported token algorithm"));
                }
                fitting
            }
        };

        let mut validation = Validation::new(alg);
        // exp and nbf are checked by `check` (optional, fractional dates allowed);
        // aud is part of the grant decision, not of validity.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;

        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                // The signature is checked before the claims are parsed, so these
                // are the signer's fault, not a key mismatch.
                Err(e) => match e.kind() {
                    ErrorKind::Json(_) | ErrorKind::Utf8(_) | ErrorKind::Base64(_) => {
                        return Err(AuthError::bad_request(
                            "malformed claims in authorization token",
                        ));
                    }
                    ErrorKind::InvalidToken => {
                        return Err(AuthError::bad_request("malformed authorization token"));
                    }
                    // Bad signature, or a key ring could not use: try the next one.
                    _ => {}
                },
            }
        }
        Err(AuthError::unauthorized(
            "invalid authorization token signature",
        ))
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 7235).
fn bearer_token(header: &str) -> Result<&str, AuthError> {
    let malformed = || AuthError::bad_request("expected \"Authorization: Bearer <token>\"");
    let header = header.trim();
    let (scheme, rest) = header.split_once([' ', '\t']).ok_or_else(malformed)?;
    let token = rest.trim();
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.contains(char::is_whitespace)
    {
        return Err(malformed());
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::bad_request("authorization token is too long"));
    }
    Ok(token)
}

/// What we need from a token's JOSE header before picking a key.
#[derive(Debug)]
struct TokenHeader {
    alg: String,
    kid: Option<String>,
}

/// Checks the compact JWS structure (three base64url parts; header and payload
/// JSON objects) and reads the header: malformed is 400; a `crit` header, which
/// we cannot honour, is 401.
fn inspect_token(token: &str) -> Result<TokenHeader, AuthError> {
    let malformed = || AuthError::bad_request("malformed authorization token: not a signed JWT");
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let json_object = |part: &str| -> Option<Map<String, Value>> {
        match serde_json::from_slice(&b64url_decode(part)?).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    };
    let header = json_object(header).ok_or_else(malformed)?;
    json_object(payload).ok_or_else(malformed)?;
    if b64url_decode(signature).is_none_or(|s| s.is_empty()) {
        return Err(malformed());
    }
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.clone(),
        _ => return Err(malformed()),
    };
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(malformed()),
    };
    // RFC 7515 4.1.11: extensions marked critical must be understood; we know none.
    if header.contains_key("crit") {
        return Err(AuthError::unauthorized(
            "unsupported critical header in authorization token",
        ));
    }
    Ok(TokenHeader { alg, kid })
}

/// Decodes unpadded base64url (RFC 4648 section 5), rejecting padding and
/// non-canonical trailing bits (the `base64` crate's strict engine).
fn b64url_decode(input: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(input)
        .ok()
}

/// Parses a JWKS (`{"keys": [JWK, ...]}`) into verification keys.
///
/// Accepted: `OKP`/`Ed25519` (EdDSA), `EC` P-256 (ES256) and P-384 (ES384), and
/// `RSA` of 2048 to 8192 bits (RS256/384/512, PS256/384/512). An `alg` member
/// narrows the key to that algorithm. Symmetric (`oct`) keys, encryption keys
/// (`"use": "enc"`, `key_ops` without `verify`) and anything malformed are errors
/// naming the key by index and kid. Duplicate kids are allowed (each is tried).
///
/// # Errors
///
/// The first bad key, as `compute_ctl_config.jwks.keys[INDEX] (kid "KID"): reason`,
/// or a JWKS that is not `{"keys": [...]}`.
pub fn parse_jwks(value: &Value) -> anyhow::Result<Vec<VerificationKey>> {
    let keys = match value {
        Value::Object(jwks) => match jwks.get("keys") {
            Some(Value::Array(keys)) => keys,
            Some(_) => bail!("compute_ctl_config.jwks: \"keys\" must be an array"),
            None => bail!("compute_ctl_config.jwks: missing \"keys\" array"),
        },
        _ => bail!("compute_ctl_config.jwks: expected a JSON object {{\"keys\": [...]}}"),
    };
    keys.iter()
        .enumerate()
        .map(|(index, raw)| {
            parse_key(raw).map_err(|reason| {
                let kid = raw
                    .get("kid")
                    .and_then(Value::as_str)
                    .map(|kid| format!(" (kid {kid:?})"))
                    .unwrap_or_default();
                anyhow!("compute_ctl_config.jwks.keys[{index}]{kid}: {reason}")
            })
        })
        .collect()
}

const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

fn parse_key(raw: &Value) -> Result<VerificationKey, String> {
    let obj = raw.as_object().ok_or("expected a JSON object")?;
    let kty = string_member(obj, "kty")?.ok_or("missing \"kty\"")?;
    let crv = string_member(obj, "crv")?;
    let fits = match kty {
        "OKP" => match crv {
            Some("Ed25519") => {
                decoded_member(obj, "x", Some(32))?;
                vec![Algorithm::EdDSA]
            }
            Some(other) => return Err(format!("unsupported OKP curve {other:?} (use Ed25519)")),
            None => return Err("missing \"crv\"".into()),
        },
        "EC" => {
            let (len, alg) = match crv {
                Some("P-256") => (32, Algorithm::ES256),
                Some("P-384") => (48, Algorithm::ES384),
                Some(other) => {
                    return Err(format!(
                        "unsupported EC curve {other:?} (use P-256 or P-384)"
                    ))
                }
                None => return Err("missing \"crv\"".into()),
            };
            decoded_member(obj, "x", Some(len))?;
            decoded_member(obj, "y", Some(len))?;
            vec![alg]
        }
        "RSA" => {
            let n = decoded_member(obj, "n", None)?;
            let bits = significant_bits(&n);
            if !(2048..=8192).contains(&bits) {
                return Err(format!(
                    "RSA modulus \"n\" has {bits} bits; 2048 to 8192 are supported"
                ));
            }
            let e = decoded_member(obj, "e", None)?;
            if significant_bits(&e) < 2 {
                return Err("invalid RSA exponent \"e\"".into());
            }
            RSA_ALGORITHMS.to_vec()
        }
        "oct" => {
            return Err(
                "symmetric (\"oct\") keys are not accepted; the JWKS must hold public keys".into(),
            )
        }
        other => return Err(format!("unsupported key type \"kty\": {other:?}")),
    };

    let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|e| format!("invalid JWK: {e}"))?;
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(PublicKeyUse::Encryption) => {
            return Err("an encryption key (\"use\": \"enc\") cannot verify signatures".into())
        }
        Some(PublicKeyUse::Other(other)) => return Err(format!("unsupported \"use\": {other:?}")),
    }
    if let Some(ops) = &jwk.common.key_operations {
        if !ops.contains(&KeyOperations::Verify) {
            return Err("\"key_ops\" does not include \"verify\"".into());
        }
    }
    let algorithms = match jwk.common.key_algorithm {
        None => fits,
        Some(declared) => {
            let name = declared.to_string();
            match Algorithm::from_str(&name) {
                Ok(alg) if fits.contains(&alg) => vec![alg],
                Ok(_) => {
                    return Err(format!(
                        "\"alg\": {name:?} does not fit a {kty:?} key{}",
                        crv.map(|c| format!(" on {c}")).unwrap_or_default()
                    ))
                }
                Err(_) => return Err(format!("\"alg\": {name:?} is not a signature algorithm")),
            }
        }
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable key: {e}"))?;
    Ok(VerificationKey {
        kid: jwk.common.key_id,
        algorithms,
        key,
    })
}

/// A string member, None when absent; an error when of another type.
fn string_member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{name:?} must be a string")),
    }
}

/// A required base64url member, decoded; of exactly `len` bytes when given.
fn decoded_member(
    obj: &Map<String, Value>,
    name: &str,
    len: Option<usize>,
) -> Result<Vec<u8>, String> {
    let encoded = string_member(obj, name)?.ok_or_else(|| format!("missing {name:?}"))?;
    let bytes =
        b64url_decode(encoded).ok_or_else(|| format!("{name:?} is not unpadded base64url"))?;
    match len {
        Some(len) if bytes.len() != len => Err(format!(
            "{name:?} must be {len} bytes, found {}",
            bytes.len()
        )),
        _ => Ok(bytes),
    }
}

/// Bit length of a big-endian unsigned integer.
fn significant_bits(bytes: &[u8]) -> usize {
    match bytes.iter().position(|&b| b != 0) {
        None => 0,
        Some(first) => (bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    const COMPUTE: &str = "compute-1";

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
        now_secs() + minutes * 60
    }

    fn status(result: Result<Claims, AuthError>) -> u16 {
        match result {
            Ok(_) => 200,
            Err(e) => e.status,
        }
    }

    #[test]
    fn b64url_roundtrip_and_strictness() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(b64url_decode(&b64url(&bytes)), Some(bytes));
        }
        assert_eq!(b64url_decode("QQ=="), None, "padding is not base64url");
        assert_eq!(b64url_decode("QR"), None, "non-zero trailing bits");
        assert_eq!(b64url_decode("Q"), None);
        assert_eq!(b64url_decode("a+b/"), None, "standard alphabet");
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
            assert_eq!(a.check(None), Ok(Claims::default()));
            assert_eq!(a.check(Some("Basic eHh4")), Ok(Claims::default()));
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
                json!({"jwks": {"keys": [good.jwk, {"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "short"}]}}),
                "keys[1] (kid \"short\"): \"x\" must be 32 bytes",
            ),
            (
                json!({"jwks": {"keys": [{"crv": "Ed25519", "x": "AAAA"}]}}),
                "keys[0]: missing \"kty\"",
            ),
            (
                json!({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}}),
                "keys[0] (kid \"hmac\"): symmetric",
            ),
            (
                json!({"jwks": {"keys": [{"kty": "OKP", "crv": "X25519", "x": b64url(&[1; 32])}]}}),
                "unsupported OKP curve \"X25519\"",
            ),
            (
                json!({"jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "not base64!"}]}}),
                "\"x\" is not unpadded base64url",
            ),
            (
                json!({"jwks": {"keys": [{"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}]}}),
                "unsupported EC curve \"P-521\"",
            ),
            (
                json!({"jwks": {"keys": [{"kty": "RSA", "n": b64url(&[0xff; 128]), "e": "AQAB"}]}}),
                "1024 bits",
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
        let err = a.check(Some(&bearer(TOKEN))).expect_err("expired");
        assert_eq!(
            (err.status, err.message.as_str()),
            (401, "authorization token has expired")
        );

        let mut tampered = TOKEN.to_owned();
        let last = if tampered.ends_with('w') { "A" } else { "w" };
        tampered.replace_range(tampered.len() - 1.., last);
        let err = a.check(Some(&bearer(&tampered))).expect_err("tampered");
        assert_eq!(err.status, 401);
        assert!(err.message.contains("signature"), "{err}");
    }

    #[test]
    fn header_shape_is_400() {
        let key = ed25519(None);
        let a = auth(&[&key], Some(COMPUTE));
        let token = mint(&key, None, json!({"compute_id": COMPUTE}));
        let (head, rest) = token.split_once('.').expect("jwt");
        for header in [
            None,
            Some("".to_owned()),
            Some("Bearer".to_owned()),
            Some("Bearer ".to_owned()),
            Some("Basic dXNlcjpwYXNz".to_owned()),
            Some(format!("Token {token}")),
            Some(format!("Bearer {token} extra")),
            Some("Bearer garbage".to_owned()),
            Some("Bearer a.b.c".to_owned()),
            Some(format!("Bearer {token}.x.y")),
            Some(format!("Bearer {}.{rest}", b64url(b"[\"alg\"]"))),
            Some(format!("Bearer {}.{rest}", b64url(b"{\"typ\":\"JWT\"}"))),
            Some(format!("Bearer {head}.{}.sig", b64url(b"not json"))),
            Some(format!("Bearer {head}.{}.", b64url(b"{}"))),
            Some(format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1))),
        ] {
            let err = a.check(header.as_deref()).expect_err("must fail");
            assert_eq!(err.status, 400, "{header:?}: {err}");
            assert!(!err.message.contains(&token), "token echoed");
        }
        assert_eq!(
            a.check(None).expect_err("missing").message,
            "missing Authorization header"
        );
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
        let claims = a.check(Some(&bearer(&token))).expect("granted");
        assert_eq!(claims.compute_id.as_deref(), Some(COMPUTE));
        assert_eq!(claims.exp, Some(exp));
        // The scheme is case-insensitive, surrounding whitespace is fine; no exp is fine.
        let token = mint(&key, None, json!({"compute_id": COMPUTE}));
        assert_eq!(status(a.check(Some(&format!(" bearer  {token} ")))), 200);
    }

    #[test]
    fn wrong_compute_id_is_403() {
        let key = ed25519(None);
        let a = auth(&[&key], Some(COMPUTE));
        let token = mint(&key, None, json!({"compute_id": "compute-2"}));
        let err = a.check(Some(&bearer(&token))).expect_err("other compute");
        assert_eq!(err.status, 403, "{err}");
        let token = mint(&key, None, json!({"sub": "someone"}));
        assert_eq!(status(a.check(Some(&bearer(&token)))), 403);
        // A compute_id scoped token still needs the right one even with aud compute.
        let token = mint(&key, None, json!({"compute_id": "x", "aud": "compute"}));
        assert_eq!(status(a.check(Some(&bearer(&token)))), 403);
    }

    #[test]
    fn without_compute_id_only_admin_grants() {
        let key = ed25519(None);
        for configured in [None, Some("")] {
            let a = auth(&[&key], configured);
            for claim in ["", COMPUTE] {
                let token = mint(&key, None, json!({"compute_id": claim}));
                assert_eq!(status(a.check(Some(&bearer(&token)))), 403);
            }
            let token = mint(
                &key,
                None,
                json!({"scope": ADMIN_SCOPE, "aud": [COMPUTE_AUDIENCE]}),
            );
            assert_eq!(status(a.check(Some(&bearer(&token)))), 200);
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
            (json!({"scope": ADMIN_SCOPE, "aud": "other"}), 403),
            (json!({"scope": ADMIN_SCOPE, "aud": ["other"]}), 403),
            (json!({"scope": ADMIN_SCOPE}), 403),
            (json!({"scope": "compute_ctl:read", "aud": "compute"}), 403),
        ] {
            let token = mint(&key, None, claims.clone());
            assert_eq!(status(a.check(Some(&bearer(&token)))), expected, "{claims}");
        }
        let token = mint(&key, None, json!({"scope": ADMIN_SCOPE, "aud": "compute"}));
        let claims = a.check(Some(&bearer(&token))).expect("admin");
        assert_eq!(claims.audience, vec!["compute".to_owned()]);
        assert_eq!(claims.scope.as_deref(), Some(ADMIN_SCOPE));
    }

    #[test]
    fn other_key_is_401() {
        let key = ed25519(None);
        let stranger = ed25519(None);
        let a = auth(&[&key], Some(COMPUTE));
        let token = mint(&stranger, None, json!({"compute_id": COMPUTE}));
        let err = a.check(Some(&bearer(&token))).expect_err("foreign key");
        assert_eq!(err.status, 401, "{err}");
        assert_eq!(err.message, "invalid authorization token signature");
        assert!(!err.message.contains(&token));

        // A valid signature over altered claims fails too.
        let good = mint(&key, None, json!({"compute_id": "compute-2"}));
        let forged_payload = b64url(json!({"compute_id": COMPUTE}).to_string().as_bytes());
        let parts: Vec<&str> = good.split('.').collect();
        let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(status(a.check(Some(&bearer(&forged)))), 401);
    }

    #[test]
    fn expiry_and_not_before() {
        let key = ed25519(None);
        let a = auth(&[&key], Some(COMPUTE));
        let check = |claims: Value| status(a.check(Some(&bearer(&mint(&key, None, claims)))));
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
        // Fractional NumericDate.
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
            .check(Some(&bearer(&mint(
                &key,
                None,
                json!({"compute_id": COMPUTE, "exp": in_minutes(-1)}),
            ))))
            .expect_err("expired");
        assert!(err.message.contains("expired"), "{err}");
    }

    #[test]
    fn malformed_claims_in_a_signed_token_are_400() {
        let key = ed25519(None);
        let a = auth(&[&key], Some(COMPUTE));
        for claims in [
            json!({"compute_id": 17}),
            json!({"compute_id": COMPUTE, "exp": "tomorrow"}),
            json!({"scope": ADMIN_SCOPE, "aud": 1}),
        ] {
            let token = mint(&key, None, claims.clone());
            let err = a.check(Some(&bearer(&token))).expect_err("malformed");
            assert_eq!(err.status, 400, "{claims}");
            assert_eq!(err.message, "malformed claims in authorization token");
        }
    }

    #[test]
    fn unsupported_or_mismatched_algorithm_is_401() {
        let key = ed25519(None);
        let a = auth(&[&key], Some(COMPUTE));
        let refusal = |token: &str| {
            let err = a.check(Some(&bearer(token))).expect_err("must be refused");
            (err.status, err.message)
        };
        let unsupported = (401, "unsupported token algorithm".to_owned());
        let payload = b64url(json!({"compute_id": COMPUTE}).to_string().as_bytes());
        // alg "none" (unsigned) and an algorithm jsonwebtoken lacks.
        for header in [json!({"alg": "none"}), json!({"alg": "ES512"})] {
            let head = b64url(header.to_string().as_bytes());
            let token = format!("{head}.{payload}.{}", b64url(b"sig"));
            assert_eq!(refusal(&token), unsupported, "{header}");
        }
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
        // A critical header extension we do not understand.
        let head = b64url(
            json!({"alg": "EdDSA", "crit": ["exp"]})
                .to_string()
                .as_bytes(),
        );
        let token = format!("{head}.{payload}.{}", b64url(b"sig"));
        let (status, message) = refusal(&token);
        assert_eq!(status, 401);
        assert!(message.contains("critical"), "{message}");
    }

    #[test]
    fn kid_selects_the_key() {
        let a_key = ed25519(Some("a"));
        let b_key = ed25519(Some("b"));
        let a = auth(&[&a_key, &b_key], Some(COMPUTE));
        let claims = json!({"compute_id": COMPUTE});
        let check = |key: &TestKey, kid: Option<&str>| {
            status(a.check(Some(&bearer(&mint(key, kid, claims.clone())))))
        };
        assert_eq!(check(&b_key, Some("b")), 200);
        assert_eq!(check(&a_key, Some("a")), 200);
        // Without a kid every fitting key is tried.
        assert_eq!(check(&b_key, None), 200);
        // The kid names the other key: its signature does not verify.
        assert_eq!(check(&b_key, Some("a")), 401);
        // Unknown kid.
        let err = a
            .check(Some(&bearer(&mint(&b_key, Some("c"), claims.clone()))))
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
            assert_eq!(status(a.check(Some(&bearer(&token)))), 200, "{kid:?}");
        }
        // ES256 token whose kid names the Ed25519 key: algorithm mismatch.
        let token = mint(&ec, Some("ed"), claims);
        let err = a.check(Some(&bearer(&token))).expect_err("mismatch");
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
        let err = AuthError::forbidden("nope");
        assert_eq!(err.to_string(), "nope");
        let _: &dyn std::error::Error = &err;
    }
}
