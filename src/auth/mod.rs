//! JWT bearer authentication for the external HTTP routes.
//!
//! The control plane passes a JSON Web Key Set (RFC 7517) in
//! `compute_ctl_config.jwks`: `{"keys": [JWK, ...]}` ([`keys`]). Requests to
//! the external routes that need authentication carry
//! `Authorization: Bearer <JWT>`, signed by one of those keys; `jsonwebtoken`
//! decodes and verifies the token. Statuses and messages are the reference's:
//!
//! | case | status |
//! |---|---|
//! | header missing, or not `Bearer <token>` | 400 `invalid authorization token` |
//! | a token that does not decode (not a JWT, malformed claims), unknown `kid`, unsupported or mismatched `alg`, bad signature, `exp` passed, `nbf` not reached | 401 |
//! | `scope` `compute_ctl:admin` without `aud`, or with an `aud` not naming `compute` | 401 |
//! | other tokens: no `compute_id`, or one that is not `--compute-id` | 403 `invalid compute ID in authorization token claims` |
//! | keys not known yet (the control plane's answer is awaited) | 503 |
//!
//! `exp` and `nbf` are checked when present (with [`LEEWAY_SECS`] of clock
//! skew) but not required. With no keys configured the authenticator is
//! *open* ([`Authenticator::is_open`]): a caller on loopback passes without a
//! token (a newcomer's `curl localhost:3080/status` works), anyone else is
//! 401 with [`NO_KEYS`], which says how to configure keys (the reference is
//! 401 to all then).
//!
//! # Minting a token (tests, tooling)
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

pub mod keys;

pub use keys::{parse_jwks, VerificationKey};

use anyhow::bail;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use parking_lot::RwLock;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// The `scope` claim value that grants every compute (with [`COMPUTE_AUDIENCE`]).
pub const ADMIN_SCOPE: &str = "compute_ctl:admin";
/// The audience an admin-scoped token must name.
pub const COMPUTE_AUDIENCE: &str = "compute";
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 5;
/// Longest token accepted (bytes); longer ones are rejected without decoding.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// The reference's answer to a missing or malformed header (400), and to a
/// token that does not decode (401).
pub const INVALID_TOKEN: &str = "invalid authorization token";
/// The refusal of a caller that is not on loopback while no keys are configured.
pub const NO_KEYS: &str = "no keys are configured, so the external API answers only callers on \
loopback: give compute_ctl a JWKS in compute_ctl_config.jwks (a -c/COMPUTE_CTL_CONFIG file, or \
POST /configure from loopback) and send Authorization: Bearer <JWT> signed by one of its keys";

/// Why a request was refused: an HTTP status (400, 401, 403 or 503) and a
/// message fit for the `{"error": ...}` body. The message never contains the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    /// 400 (malformed), 401 (not authenticated), 403 (not granted), 503 (keys not known yet).
    pub status: u16,
    /// Human-readable reason.
    pub message: String,
}

impl AuthError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        AuthError {
            status,
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
    /// The `aud` claim: a string or an array of strings (None when absent).
    #[serde(
        rename = "aud",
        default,
        deserialize_with = "deserialize_audience",
        skip_serializing_if = "Option::is_none"
    )]
    pub audience: Option<Vec<String>>,
    /// Expiry, seconds since the Unix epoch (checked by `jsonwebtoken`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not-before, seconds since the Unix epoch (checked by `jsonwebtoken`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The subject, if any (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

fn deserialize_audience<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => None,
        Some(OneOrMany::One(a)) => Some(vec![a]),
        Some(OneOrMany::Many(v)) => Some(v),
    })
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

    /// An authenticator without keys: callers on loopback are let through.
    pub fn open() -> Authenticator {
        Authenticator {
            keys: Vec::new(),
            compute_id: None,
        }
    }

    /// True when no keys are configured: callers on loopback are let through
    /// without a token, others refused.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The configured keys (empty when open).
    pub fn keys(&self) -> &[VerificationKey] {
        &self.keys
    }

    /// Checks a request from `caller` (its peer address; None when unknown)
    /// with the value of its Authorization header (None when absent) and
    /// returns the token's claims. When open, a caller on loopback gets empty
    /// claims whatever the header, anyone else (an unknown caller too) 401.
    ///
    /// # Errors
    ///
    /// The refusal, with its HTTP status (see the module's table). The message
    /// never contains the token.
    pub fn check(
        &self,
        caller: Option<IpAddr>,
        authorization: Option<&str>,
    ) -> Result<Claims, AuthError> {
        if self.is_open() {
            return match caller {
                Some(ip) if is_loopback(ip) => Ok(Claims::default()),
                _ => Err(AuthError::new(401, NO_KEYS)),
            };
        }
        let token = authorization
            .and_then(bearer_token)
            .ok_or_else(|| AuthError::new(400, INVALID_TOKEN))?;
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::new(401, INVALID_TOKEN));
        }
        let claims = self.verify(token)?;
        authorize(&claims, self.compute_id.as_deref())?;
        Ok(claims)
    }

    /// Decodes the token and checks its signature (with the key(s) its header
    /// points at), `exp` and `nbf`; returns the claims.
    fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| AuthError::new(401, INVALID_TOKEN))?;
        let alg = header.alg;
        let unauthorized = |m: &str| AuthError::new(401, m);
        let fitting: Vec<&VerificationKey> = match &header.kid {
            Some(kid) => {
                let by_kid: Vec<_> = self
                    .keys
                    .iter()
                    .filter(|k| k.kid() == Some(kid.as_str()))
                    .collect();
                if by_kid.is_empty() {
                    return Err(unauthorized(
                        "authorization token is signed with an unknown key",
                    ));
                }
                let fitting: Vec<_> = by_kid
                    .into_iter()
                    .filter(|k| k.algorithms().contains(&alg))
                    .collect();
                if fitting.is_empty() {
                    return Err(unauthorized("token algorithm does not match its key"));
                }
                fitting
            }
            None => self
                .keys
                .iter()
                .filter(|k| k.algorithms().contains(&alg))
                .collect(),
        };
        if fitting.is_empty() {
            return Err(unauthorized("unsupported token algorithm"));
        }
        let validation = validation(alg);
        for key in fitting {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => match e.kind() {
                    ErrorKind::ExpiredSignature => {
                        return Err(unauthorized("authorization token has expired"))
                    }
                    ErrorKind::ImmatureSignature => {
                        return Err(unauthorized("authorization token is not valid yet"))
                    }
                    // The signature is checked before the claims are parsed, so
                    // these are the signer's fault, not a key mismatch.
                    ErrorKind::Json(_) | ErrorKind::Utf8(_) | ErrorKind::Base64(_) => {
                        return Err(unauthorized("malformed claims in authorization token"))
                    }
                    ErrorKind::InvalidToken => return Err(unauthorized(INVALID_TOKEN)),
                    // Bad signature: try the next key.
                    _ => {}
                },
            }
        }
        Err(unauthorized("invalid authorization token signature"))
    }
}

/// What `jsonwebtoken` checks of a token signed with `alg`: the signature,
/// `exp` and `nbf` when present. The audience is part of the grant decision
/// ([`authorize`]), as in the reference.
fn validation(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.leeway = LEEWAY_SECS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation
}

/// Whether verified `claims` grant this compute (the reference's rules): an
/// admin scope needs the `compute` audience (else 401); any other token needs
/// `compute_id` equal to `--compute-id` (else 403).
fn authorize(claims: &Claims, compute_id: Option<&str>) -> Result<(), AuthError> {
    if claims.scope.as_deref() == Some(ADMIN_SCOPE) {
        return match &claims.audience {
            None => Err(AuthError::new(
                401,
                "missing audience in authorization token claims",
            )),
            Some(aud) if aud.iter().any(|a| a == COMPUTE_AUDIENCE) => Ok(()),
            Some(_) => Err(AuthError::new(
                401,
                "invalid audience in authorization token claims",
            )),
        };
    }
    match (&claims.compute_id, compute_id) {
        (None, _) => Err(AuthError::new(
            403,
            "missing compute_id in authorization token claims",
        )),
        (Some(got), Some(want)) if got == want => Ok(()),
        (Some(_), _) => Err(AuthError::new(
            403,
            "invalid compute ID in authorization token claims",
        )),
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 7235); None
/// when the header is not that.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once([' ', '\t'])?;
    let token = token.trim();
    let well_formed = scheme.eq_ignore_ascii_case("bearer")
        && !token.is_empty()
        && !token.contains(char::is_whitespace);
    well_formed.then_some(token)
}

/// Whether `ip` is this host's loopback (`127.0.0.0/8`, `::1`, or an
/// IPv4-mapped loopback address as a dual-stack socket reports it).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The keys guarding the external API, as known so far: shared by the
/// handlers and whoever learns keys (`/configure`, the control-plane pull).
#[derive(Debug)]
pub struct Gate(RwLock<GateState>);

#[derive(Debug, Clone)]
enum GateState {
    /// Keys not known yet: authenticated requests are 503 with this reason.
    Waiting(String),
    /// Requests are checked by this authenticator.
    Keys(Arc<Authenticator>),
}

impl Gate {
    /// A gate checking requests with `auth` (warns when it is open).
    pub fn new(auth: Authenticator) -> Gate {
        let gate = Gate::waiting("");
        gate.install(auth);
        gate
    }

    /// A gate that answers 503 with `reason` until keys are installed.
    pub fn waiting(reason: impl Into<String>) -> Gate {
        Gate(RwLock::new(GateState::Waiting(reason.into())))
    }

    /// Keeps (or puts) the gate closed, with a new reason.
    pub fn close(&self, reason: impl Into<String>) {
        *self.0.write() = GateState::Waiting(reason.into());
    }

    /// True while no keys are known (authenticated requests get 503).
    pub fn is_waiting(&self) -> bool {
        matches!(*self.0.read(), GateState::Waiting(_))
    }

    /// Installs new keys. Keys in force are never dropped by omission: an open
    /// authenticator does not replace configured keys (false then, with a warning).
    pub fn install(&self, auth: Authenticator) -> bool {
        let mut state = self.0.write();
        if let GateState::Keys(current) = &*state {
            if auth.is_open() && !current.is_open() {
                tracing::warn!(
                    "the new compute_ctl_config has no JWKS; the configured keys stay in force"
                );
                return false;
            }
        }
        if auth.is_open() {
            tracing::warn!(
                "no JWKS in compute_ctl_config: the external HTTP API answers its authenticated routes only to callers on loopback (401 to others)"
            );
        }
        *state = GateState::Keys(Arc::new(auth));
        true
    }

    /// Checks a request from `caller` with its Authorization header (see
    /// [`Authenticator::check`]); 503 while waiting for keys.
    pub fn check(
        &self,
        caller: Option<IpAddr>,
        authorization: Option<&str>,
    ) -> Result<Claims, AuthError> {
        let state = self.0.read().clone();
        match state {
            GateState::Waiting(reason) => Err(AuthError::new(503, reason)),
            GateState::Keys(auth) => auth.check(caller, authorization),
        }
    }
}

#[cfg(test)]
mod tests;
