//! TLS for postgres' clients: the certificate and key the deployment names
//! (`compute_ctl_config.tls`), checked as a pair and copied into PGDATA
//! where postgres reads them (`server.crt`, `server.key`).
//!
//! The reference takes only P-256 keys and retries a mismatched pair
//! forever; here any key rustls' ring provider can sign with (RSA, ECDSA
//! P-256 and P-384, Ed25519) is taken, and a key that is not the
//! certificate's is an error naming both files. The files are read as root
//! from where the deployment put them (often a Kubernetes secret, whose
//! names are symlinks into a timestamped directory): so the path is resolved
//! first, and every directory on the resolved path must be root's and
//! writable by nobody else (or sticky), so that no other user can move what
//! root then opens; the file itself is opened without following a symlink.
//! In PGDATA, postgres' directory, they are written through `safe_fs`.

use crate::safe_fs::Dir;
use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The spec feature that turns TLS on (as the reference).
pub const FEATURE: &str = "tls_experimental";
/// The certificate's name in PGDATA.
pub const CERT_NAME: &str = "server.crt";
/// The key's name in PGDATA.
pub const KEY_NAME: &str = "server.key";

/// `compute_ctl_config.tls`: where the deployment keeps the key and the
/// certificate (chain, server certificate first).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TlsConfig {
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
    /// The certificate chain, PEM.
    pub cert_path: PathBuf,
}

impl TlsConfig {
    /// `compute_ctl_config.tls`, when there is one (absent or null: none).
    pub fn from_compute_ctl_config(config: Option<&serde_json::Value>) -> Result<Option<Self>> {
        let Some(tls) = config.and_then(|c| c.get("tls")) else {
            return Ok(None);
        };
        if tls.is_null() {
            return Ok(None);
        }
        let tls: TlsConfig = serde_json::from_value(tls.clone()).context(
            "compute_ctl_config.tls: expected {\"key_path\": \"...\", \"cert_path\": \"...\"}",
        )?;
        for (field, path) in [("key_path", &tls.key_path), ("cert_path", &tls.cert_path)] {
            if !path.is_absolute() {
                bail!(
                    "compute_ctl_config.tls.{field}: {} is not an absolute path",
                    path.display()
                );
            }
        }
        Ok(Some(tls))
    }

    /// Both files, for messages.
    pub fn pair_names(&self) -> String {
        format!(
            "certificate {} and key {}",
            self.cert_path.display(),
            self.key_path.display()
        )
    }

    /// The raw bytes of both files, to tell a change (no checks but the
    /// safe read).
    pub fn read_raw(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        Ok((read_source(&self.cert_path)?, read_source(&self.key_path)?))
    }
}

/// A checked certificate and key, as read.
#[derive(Clone, PartialEq, Eq)]
pub struct Pair {
    cert: Vec<u8>,
    key: Vec<u8>,
    /// When the server certificate expires.
    pub not_after: DateTime<Utc>,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("not_after", &self.not_after)
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Pair {
    /// Checks that the certificate and the key (as read: cert, key) make
    /// a pair.
    pub fn check((cert, key): (Vec<u8>, Vec<u8>)) -> Result<Pair> {
        let not_after = check_pair(&cert, &key)?;
        Ok(Pair {
            cert,
            key,
            not_after,
        })
    }

    /// Whether these are the bytes `raw` holds (cert, key).
    pub fn is(&self, raw: &(Vec<u8>, Vec<u8>)) -> bool {
        self.cert == raw.0 && self.key == raw.1
    }
}

/// The lines of postgresql.conf that serve TLS from the copies in PGDATA.
pub fn conf_lines() -> String {
    format!("ssl = on\nssl_cert_file = '{CERT_NAME}'\nssl_key_file = '{KEY_NAME}'\n")
}

/// Copies the pair into `pgdata`: mode 0600, owned by PGDATA's owner (the
/// postgres user), each written under a fresh name and renamed into place
/// through a handle on the directory. The certificate goes first, then the
/// key: a reload between the two fails to load (postgres keeps what it
/// served) and the reload that follows takes both.
pub fn install(pgdata: &Path, pair: &Pair) -> Result<()> {
    let dir = Dir::open(pgdata)?;
    let owner = dir.owner()?;
    dir.replace(CERT_NAME, &pair.cert, 0o600, Some(owner))
        .with_context(|| format!("writing {}", pgdata.join(CERT_NAME).display()))?;
    dir.replace(KEY_NAME, &pair.key, 0o600, Some(owner))
        .with_context(|| format!("writing {}", pgdata.join(KEY_NAME).display()))?;
    Ok(())
}

/// Checks that `key` is the private key of `cert`'s first certificate;
/// returns that certificate's expiry.
fn check_pair(cert: &[u8], key: &[u8]) -> Result<DateTime<Utc>> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("the certificate file is not PEM: {e}"))?;
    let Some(first) = chain.first() else {
        bail!("the certificate file holds no certificate");
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(first)
        .map_err(|e| anyhow!("the certificate cannot be parsed: {e}"))?;
    let not_after = DateTime::from_timestamp(parsed.validity().not_after.timestamp(), 0)
        .context("the certificate's expiry is out of range")?;
    let der = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| anyhow!("the key file holds no PEM private key: {e}"))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| {
        anyhow!("the key is not a supported private key (RSA, ECDSA, Ed25519): {e}")
    })?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            anyhow!("the key does not match the certificate (its public key is another)")
        }
        e => anyhow!("cannot compare the key with the certificate: {e}"),
    })?;
    Ok(not_after)
}

/// Reads a file the deployment names, as [`TlsConfig`] says: as root, only
/// through directories no other user can change.
fn read_source(path: &Path) -> Result<Vec<u8>> {
    let resolved =
        std::fs::canonicalize(path).with_context(|| format!("reading {}", path.display()))?;
    if nix::unistd::Uid::effective().is_root() {
        for dir in resolved.ancestors().skip(1) {
            let meta = std::fs::symlink_metadata(dir)
                .with_context(|| format!("stat of {}", dir.display()))?;
            let others_write = meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0;
            if meta.uid() != 0 || others_write {
                bail!(
                    "not reading {} as root: {} is {}, so another user could replace what it holds",
                    path.display(),
                    dir.display(),
                    if meta.uid() != 0 {
                        format!("owned by uid {}", meta.uid())
                    } else {
                        "writable by its group or others".to_string()
                    }
                );
            }
        }
    }
    let (Some(parent), Some(name)) = (
        resolved.parent(),
        resolved.file_name().and_then(|n| n.to_str()),
    ) else {
        bail!("{} names no file", path.display());
    };
    Dir::open(parent)?
        .read(name)?
        .with_context(|| format!("{} does not exist", path.display()))
}

#[cfg(test)]
mod tests;
