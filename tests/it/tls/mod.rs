//! TLS for clients, against the real openssl: a test CA and server pairs
//! made with the openssl CLI, psql with `sslmode=require` and
//! `verify-full`, the served certificate read with `openssl s_client
//! -starttls postgres`, a rotation served by the same postmaster, and pairs
//! that are not pairs refused.

pub(crate) mod pki;

use crate::common::{spec, Compute, Opts};
use pki::{Ca, KeyKind, ServerPair};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PSQL: &str = "/usr/lib/postgresql/15/bin/psql";
const PASSWORD: &str = "alice-tls-pw";

/// A spec with TLS turned on and a role that logs in over TCP.
fn tls_spec() -> serde_json::Value {
    let md5 = postgres_protocol::password::md5(PASSWORD.as_bytes(), "alice");
    let mut s = spec(
        json!([{"name": "alice", "encrypted_password": md5.strip_prefix("md5").unwrap()}]),
        json!([{"name": "app", "owner": "alice"}]),
    );
    s["features"] = json!(["tls_experimental"]);
    s
}

/// A compute serving `pair` (its files named by compute_ctl_config.tls).
fn start_with(pair: &ServerPair, spec: serde_json::Value) -> Compute {
    Compute::start_with(Opts {
        // A failed start stays to be looked at.
        failure_exit_delay: 60,
        config: Some(json!({
            "spec": spec,
            "compute_ctl_config": {"tls": {
                "key_path": pair.key.display().to_string(),
                "cert_path": pair.cert.display().to_string(),
            }},
        })),
        ..Opts::default()
    })
}

/// psql as alice over TCP with `conninfo` added; (success, output).
fn psql(c: &Compute, conninfo: &str, sql: &str) -> (bool, String) {
    let out = Command::new(PSQL)
        .arg(format!(
            "host=localhost port={} user=alice dbname=app {conninfo}",
            c.port
        ))
        .args(["-XAtc", sql])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .expect("psql");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_string())
}

/// The SHA-256 fingerprint of the certificate postgres serves on `port`.
fn served_fingerprint(port: u16) -> Option<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -starttls postgres -connect 127.0.0.1:{port} </dev/null 2>/dev/null \
             | openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn tools() -> bool {
    crate::needs::needs(
        Path::new(PSQL).exists() && Command::new("openssl").arg("version").output().is_ok(),
        "the TLS tests need psql and the openssl CLI",
    )
}

#[tokio::test]
async fn clients_connect_with_require_and_verify_full_and_status_shows_the_expiry() {
    if !tools() {
        return;
    }
    let ca = Ca::new();
    let pair = ca.server("rsa", KeyKind::Rsa, 30);
    let mut c = start_with(&pair, tls_spec());
    c.wait_running();

    let (ok, out) = psql(
        &c,
        "sslmode=require",
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    assert!(ok && out == "t", "sslmode=require: {out}");
    let root = format!("sslmode=verify-full sslrootcert={}", ca.cert.display());
    let (ok, out) = psql(&c, &root, "SELECT 1");
    assert!(ok && out == "1", "verify-full against the test CA: {out}");
    // A CA that did not sign it is refused: verify-full checks for real.
    let other = Ca::new();
    let (ok, out) = psql(
        &c,
        &format!("sslmode=verify-full sslrootcert={}", other.cert.display()),
        "SELECT 1",
    );
    assert!(!ok, "verify-full against another CA passed: {out}");

    assert_eq!(served_fingerprint(c.port), Some(pair.fingerprint()));
    // The copies in PGDATA: postgres', 0600.
    for name in ["server.crt", "server.key"] {
        let meta = std::fs::metadata(c.pgdata().join(name)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(meta.mode() & 0o777, 0o600, "{name}");
        assert_eq!(
            meta.uid(),
            std::fs::metadata(c.pgdata()).unwrap().uid(),
            "{name}"
        );
    }
    let (_, status) = c.get("/status").await;
    let not_after = status["tls"]["cert_not_after"].as_str().unwrap_or_default();
    let expected = pair.not_after();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(not_after)
            .map(|t| t.timestamp())
            .ok(),
        Some(expected),
        "{status}"
    );
    let metrics = c.metrics().await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("compute_ctl_tls_cert_expiry_seconds "))
        .unwrap_or_else(|| panic!("no expiry metric:\n{metrics}"));
    let seconds: i64 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let left = expected - chrono::Utc::now().timestamp();
    assert!(
        (seconds - left).abs() < 120,
        "{line} (expected about {left})"
    );
    c.terminate();
}

#[tokio::test]
async fn a_rotation_is_served_by_the_same_postmaster_and_a_mismatched_pair_is_refused() {
    if !tools() {
        return;
    }
    let ca = Ca::new();
    let first = ca.server("first", KeyKind::EcdsaP256, 10);
    let mut c = start_with(&first, tls_spec());
    c.wait_running();
    assert_eq!(served_fingerprint(c.port), Some(first.fingerprint()));
    let postmaster = c.postmaster_pid();

    // The deployment renews: an RSA pair now, at the same paths.
    let second = ca.server("second", KeyKind::Rsa, 20);
    first.replace_with(&second);
    let began = std::time::Instant::now();
    crate::wait::until(
        "the new certificate served",
        Duration::from_secs(30),
        async || served_fingerprint(c.port) == Some(second.fingerprint()),
    )
    .await;
    // Figures, not a timed assertion: the tests share a loaded machine.
    eprintln!("rotation served after {:?}", began.elapsed());
    assert_eq!(c.postmaster_pid(), postmaster, "postgres was restarted");
    let (ok, out) = psql(&c, "sslmode=require", "SELECT 1");
    assert!(ok, "{out}");
    let (_, status) = c.get("/status").await;
    assert_eq!(status["tls"]["rotations"], 1, "{status}");
    assert_eq!(status["status"], "running", "{status}");

    // A certificate whose key is not the one beside it: refused, the
    // previous pair still served.
    let third = ca.server("third", KeyKind::EcdsaP256, 30);
    std::fs::copy(&third.cert, &first.cert).unwrap();
    crate::wait::until(
        "the mismatch refused",
        Duration::from_secs(30),
        async || c.get("/status").await.1["tls"]["rejected"].as_u64() >= Some(1),
    )
    .await;
    let (_, status) = c.get("/status").await;
    let error = status["tls"]["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&first.cert.display().to_string())
            && error.contains(&first.key.display().to_string())
            && error.contains("does not match"),
        "{status}"
    );
    assert_eq!(served_fingerprint(c.port), Some(second.fingerprint()));
    assert_eq!(status["status"], "running", "{status}");
    // A reconfiguration meanwhile keeps the pair served rather than fail.
    let (code, body) = c.configure(&tls_spec()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(served_fingerprint(c.port), Some(second.fingerprint()));
    assert_eq!(c.postmaster_pid(), postmaster);
    c.terminate();
}

#[tokio::test]
async fn a_key_that_is_not_the_certificates_fails_the_start_naming_both_files() {
    if !tools() {
        return;
    }
    let ca = Ca::new();
    let a = ca.server("a", KeyKind::EcdsaP256, 10);
    let b = ca.server("b", KeyKind::Rsa, 10);
    let mismatched = ServerPair {
        cert: a.cert.clone(),
        key: b.key.clone(),
    };
    let mut c = start_with(&mismatched, tls_spec());
    let status = c.wait_status("failed", Duration::from_secs(60)).await;
    let error = status["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&a.cert.display().to_string())
            && error.contains(&b.key.display().to_string())
            && error.contains("does not match"),
        "{status}"
    );
    assert!(!c.pgdata().join("server.key").exists());
    c.terminate();
}

#[tokio::test]
async fn without_the_feature_postgres_serves_no_tls() {
    if !tools() {
        return;
    }
    let ca = Ca::new();
    let pair = ca.server("off", KeyKind::EcdsaP256, 10);
    let mut s = tls_spec();
    s["features"] = json!([]);
    let mut c = start_with(&pair, s);
    c.wait_running();
    let (ok, out) = psql(&c, "sslmode=require", "SELECT 1");
    assert!(!ok && out.contains("does not support SSL"), "{out}");
    let (ok, _) = psql(&c, "sslmode=disable", "SELECT 1");
    assert!(ok);
    c.terminate();
}

/// A control plane answering `answer` for compute-1.
async fn control_plane(answer: serde_json::Value) -> u16 {
    use warp::Filter;
    let route = warp::path!("compute" / "api" / "v2" / "computes" / "compute-1" / "spec")
        .and(warp::get())
        .map(move || warp::reply::json(&answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_planes_tls_is_served_as_the_launch_files() {
    if !tools() {
        return;
    }
    let ca = Ca::new();
    let pair = ca.server("ecdsa", KeyKind::EcdsaP256, 30);
    let port = control_plane(json!({
        "status": "attached",
        "spec": tls_spec(),
        "compute_ctl_config": {"jwks": null, "tls": {
            "key_path": pair.key.display().to_string(),
            "cert_path": pair.cert.display().to_string(),
        }},
    }))
    .await;
    let mut c = Compute::start_with(Opts {
        failure_exit_delay: 60,
        extra_args: vec![
            "-p".into(),
            format!("http://127.0.0.1:{port}"),
            "-i".into(),
            "compute-1".into(),
        ],
        ..Opts::default()
    });
    c.wait_status("running", Duration::from_secs(60)).await;
    let root = format!("sslmode=verify-full sslrootcert={}", ca.cert.display());
    let (ok, out) = psql(&c, &root, "SELECT 1");
    assert!(
        ok && out == "1",
        "verify-full against the test CA: {out}\n{}",
        c.log()
    );
    assert_eq!(served_fingerprint(c.port), Some(pair.fingerprint()));
    let (_, status) = c.get("/status").await;
    assert!(status["tls"]["cert_not_after"].is_string(), "{status}");
    c.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_planes_tls_that_is_not_one_configures_nothing() {
    let port = control_plane(json!({
        "status": "attached",
        "spec": tls_spec(),
        "compute_ctl_config": {"jwks": null, "tls": {"key_path": "relative.key", "cert_path": "/x.crt"}},
    }))
    .await;
    let c = Compute::start_with(Opts {
        extra_args: vec![
            "-p".into(),
            format!("http://127.0.0.1:{port}"),
            "-i".into(),
            "compute-1".into(),
        ],
        ..Opts::default()
    });
    crate::wait::until(
        "the refusal in the log",
        Duration::from_secs(30),
        async || c.log().contains("compute_ctl_config.tls"),
    )
    .await;
    let log = c.log();
    assert!(log.contains("not an absolute path"), "{log}");
    assert!(!log.contains("to=configuration_pending"), "{log}");
    // The authenticated routes stay closed, as for unusable keys.
    assert_eq!(c.get("/status").await.0, 503);
}
