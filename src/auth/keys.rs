//! The key set: `compute_ctl_config.jwks` (RFC 7517, [`JwkSet`]) turned
//! into verification keys by `jsonwebtoken` ([`DecodingKey::from_jwk`]),
//! with an error that names the bad key.

use anyhow::{anyhow, bail};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// The RSA signature algorithms (a JWK without `alg` verifies any of them).
pub const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// A public key from the JWKS, ready to verify signatures.
#[derive(Clone)]
pub struct VerificationKey {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    pub(super) key: DecodingKey,
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

/// Parses a JWKS (`{"keys": [JWK, ...]}`) into verification keys.
///
/// Accepted: `OKP`/`Ed25519` (EdDSA), `EC` P-256 (ES256) and P-384 (ES384), and
/// `RSA` (RS256/384/512, PS256/384/512). An `alg` member narrows the key to
/// that algorithm. Symmetric (`oct`) keys, encryption keys (`"use": "enc"`,
/// `key_ops` without `verify`) and anything `jsonwebtoken` cannot use are
/// errors naming the key by index and kid. Duplicate kids are allowed (each is
/// tried).
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
    // Each key on its own, so that an error names it; together a JwkSet.
    let named = |index: usize, raw: &Value, reason: String| {
        let kid = raw
            .get("kid")
            .and_then(Value::as_str)
            .map(|kid| format!(" (kid {kid:?})"))
            .unwrap_or_default();
        anyhow!("compute_ctl_config.jwks.keys[{index}]{kid}: {reason}")
    };
    let set = JwkSet {
        keys: keys
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                serde_json::from_value::<Jwk>(raw.clone())
                    .map_err(|e| named(i, raw, format!("invalid JWK: {e}")))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    set.keys
        .iter()
        .zip(keys)
        .enumerate()
        .map(|(i, (jwk, raw))| verification_key(jwk).map_err(|reason| named(i, raw, reason)))
        .collect()
}

/// One JWK as a verification key, or why it cannot verify our tokens.
fn verification_key(jwk: &Jwk) -> Result<VerificationKey, String> {
    let fits = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            ref other => return Err(format!("unsupported OKP curve {other:?} (use Ed25519)")),
        },
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            ref other => {
                return Err(format!(
                    "unsupported EC curve {other:?} (use P-256 or P-384)"
                ))
            }
        },
        AlgorithmParameters::RSA(_) => RSA_ALGORITHMS.to_vec(),
        AlgorithmParameters::OctetKey(_) => {
            return Err(
                "symmetric (\"oct\") keys are not accepted; the JWKS must hold public keys".into(),
            )
        }
    };
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
                Ok(_) => return Err(format!("\"alg\": {name:?} does not fit this key type")),
                Err(_) => return Err(format!("\"alg\": {name:?} is not a signature algorithm")),
            }
        }
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
    Ok(VerificationKey {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key,
    })
}
