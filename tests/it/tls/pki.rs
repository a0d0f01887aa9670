//! A test CA and server pairs, made with the openssl CLI in a private
//! temporary directory (root's, 0755 under the sticky /tmp: a directory
//! compute_ctl as root reads from).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The kind of a server key.
#[derive(Clone, Copy)]
pub enum KeyKind {
    /// RSA 2048 (PKCS#8).
    Rsa,
    /// ECDSA on P-256, as a SEC1 `EC PRIVATE KEY` (the reference's form).
    EcdsaP256,
}

/// A test certificate authority.
pub struct Ca {
    dir: tempfile::TempDir,
    pub cert: PathBuf,
}

/// A server certificate and its key, as files.
pub struct ServerPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Ca {
    pub fn new() -> Ca {
        let dir = crate::common::test_dir();
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=compute_ctl test CA",
                "-days",
                "2",
            ],
        );
        Ca {
            cert: dir.path().join("ca.crt"),
            dir,
        }
    }

    /// A pair for `localhost` and 127.0.0.1, valid `days` days, signed by
    /// this CA, in files named after `name`.
    pub fn server(&self, name: &str, kind: KeyKind, days: u32) -> ServerPair {
        let d = self.dir.path();
        let key = format!("{name}.key");
        match kind {
            KeyKind::Rsa => openssl(
                d,
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    &key,
                ],
            ),
            KeyKind::EcdsaP256 => openssl(
                d,
                &[
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-genkey",
                    "-noout",
                    "-out",
                    &key,
                ],
            ),
        }
        let csr = format!("{name}.csr");
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                &key,
                "-out",
                &csr,
                "-subj",
                "/CN=localhost",
            ],
        );
        let ext = format!("{name}.ext");
        std::fs::write(d.join(&ext), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
        let cert = format!("{name}.crt");
        let days = days.to_string();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                &days,
                "-extfile",
                &ext,
            ],
        );
        ServerPair {
            cert: d.join(cert),
            key: d.join(key),
        }
    }
}

impl ServerPair {
    /// The certificate's SHA-256 fingerprint, as `openssl x509 -fingerprint` prints it.
    pub fn fingerprint(&self) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&self.cert)
            .output()
            .expect("openssl x509");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The certificate's expiry, in seconds since the epoch.
    pub fn not_after(&self) -> i64 {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in"])
            .arg(&self.cert)
            .output()
            .expect("openssl x509");
        let text = String::from_utf8_lossy(&out.stdout);
        let date = text.trim().trim_start_matches("notAfter=");
        chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%SZ")
            .unwrap_or_else(|e| panic!("{date:?}: {e}"))
            .and_utc()
            .timestamp()
    }

    /// Puts `other`'s key and certificate at this pair's paths, each file
    /// replaced at once (as a secret's update does), the key first.
    pub fn replace_with(&self, other: &ServerPair) {
        for (from, to) in [(&other.key, &self.key), (&other.cert, &self.cert)] {
            let tmp = to.with_extension("new");
            std::fs::copy(from, &tmp).unwrap();
            std::fs::rename(&tmp, to).unwrap();
        }
    }
}
