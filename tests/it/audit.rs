//! Audit logging with the real pgaudit packages: a user role's DDL is an
//! audit record, compute_ctl's own catalog statements are not, and a
//! password in an audited statement does not reach the log; the audit files
//! shipped to a local TCP listener standing for the collector, which may be
//! down for a while.

use crate::common::{connect, free_port, spec, Compute, Opts};
use serde_json::json;
use std::io::BufRead;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PASSWORD: &str = "alice-audit-pw";

fn have_pgaudit() -> bool {
    crate::needs::needs(
        Path::new("/usr/lib/postgresql/15/lib/pgaudit.so").exists()
            && Path::new("/usr/lib/postgresql/15/lib/pgauditlogtofile.so").exists(),
        "the postgresql-15-pgaudit and postgresql-15-pgauditlogtofile packages",
    )
}

fn audited_spec(level: &str) -> serde_json::Value {
    let md5 = postgres_protocol::password::md5(PASSWORD.as_bytes(), "alice");
    let mut s = spec(
        json!([{"name": "alice", "encrypted_password": md5.strip_prefix("md5").unwrap(),
                "options": [{"name": "CREATEROLE", "vartype": "bool"}]}]),
        json!([{"name": "app", "owner": "alice"}]),
    );
    s["audit_log_level"] = json!(level);
    s
}

async fn as_alice(c: &Compute, sql: &str) {
    let client = connect(&format!(
        "{} password={PASSWORD}",
        c.connstr("alice", "app")
    ))
    .await
    .expect("alice over TCP");
    client.batch_execute(sql).await.expect(sql);
}

fn audit_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("AUDIT: SESSION"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_user_ddl_is_audited_and_compute_ctls_own_statements_are_not() {
    if !have_pgaudit() {
        return;
    }
    let mut c = Compute::start(Some(audited_spec("Base")));
    c.wait_running();
    as_alice(&c, "CREATE TABLE audited_table (i int)").await;
    as_alice(&c, "CREATE ROLE bob LOGIN PASSWORD 'bob-secret-pw'").await;
    c.wait_for_log("audited_table", Duration::from_secs(30));
    c.wait_for_log(
        "ROLE,CREATE ROLE,,,CREATE ROLE bob",
        Duration::from_secs(30),
    );
    let log = c.log();
    let audit = audit_lines(&log);
    assert!(
        audit
            .iter()
            .any(|l| l.contains("DDL,CREATE TABLE") && l.contains("audited_table")),
        "{audit:#?}"
    );
    // compute_ctl created alice and the database: not audited.
    assert!(
        !audit
            .iter()
            .any(|l| l.contains("alice") || l.contains("CREATE DATABASE")),
        "compute_ctl's own statements were audited: {audit:#?}"
    );
    // The password of an audited statement does not reach the log.
    assert!(!log.contains("bob-secret-pw"), "{audit:#?}");
    // The extension is there, and the postgres database is not audited.
    let su = c.client("postgres").await;
    crate::wait::until("pgaudit created", Duration::from_secs(30), async || {
        su.query_one(
            "SELECT count(*) FROM pg_extension WHERE extname = 'pgaudit'",
            &[],
        )
        .await
        .map(|r| r.get::<_, i64>(0) == 1)
        .unwrap_or(false)
    })
    .await;
    c.terminate();
}

/// A syslog collector on `port`: every line it receives, from any
/// connection.
fn collector(port: u16) -> Arc<Mutex<Vec<String>>> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("collector port");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let sink = sink.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(conn).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
    });
    lines
}

/// The JSON of each collected syslog message (after `<174>1 TS HOST - - - - `).
fn messages(lines: &Arc<Mutex<Vec<String>>>) -> Vec<serde_json::Value> {
    lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| {
            assert!(l.starts_with("<174>1 "), "not local5.info RFC 5424: {l}");
            let json = l.splitn(8, ' ').nth(7).unwrap_or_default();
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
        })
        .collect()
}

fn shipping(port: u16) -> Compute {
    let mut s = audited_spec("Extended");
    s["endpoint_id"] = json!("ep-audited");
    s["project_id"] = json!("proj-audited");
    Compute::start_with(Opts {
        spec: Some(s),
        env: vec![("AUDIT_LOGGING_ENDPOINT".into(), format!("127.0.0.1:{port}"))],
        ..Opts::default()
    })
}

#[tokio::test]
async fn audit_records_reach_the_collector_and_compute_ctls_own_do_not() {
    if !have_pgaudit() {
        return;
    }
    let port = free_port();
    let lines = collector(port);
    let mut c = shipping(port);
    c.wait_running();
    as_alice(
        &c,
        "CREATE TABLE shipped_table (i int); SELECT * FROM shipped_table",
    )
    .await;
    crate::wait::until(
        "the DDL at the collector",
        Duration::from_secs(30),
        async || {
            messages(&lines).iter().any(|m| {
                m["msg"]
                    .as_str()
                    .is_some_and(|t| t.contains("CREATE TABLE shipped_table"))
            })
        },
    )
    .await;
    let all = messages(&lines);
    let first = &all[0];
    assert_eq!(first["endpoint_id"], "ep-audited", "{first}");
    assert_eq!(first["project_id"], "proj-audited", "{first}");
    assert!(
        !all.iter().any(|m| {
            let t = m["msg"].as_str().unwrap_or_default();
            t.contains("CREATE ROLE") || t.contains("CREATE DATABASE")
        }),
        "compute_ctl's own statements were shipped: {all:#?}"
    );
    let (_, status) = c.get("/status").await;
    assert!(status["audit"]["sent"].as_u64() >= Some(1), "{status}");
    c.terminate();
}

#[tokio::test]
async fn a_collector_down_then_back_loses_nothing() {
    if !have_pgaudit() {
        return;
    }
    let port = free_port();
    let mut c = shipping(port);
    c.wait_running();
    for i in 0..20 {
        as_alice(&c, &format!("CREATE TABLE while_down_{i} (i int)")).await;
    }
    crate::wait::until("records queued", Duration::from_secs(30), async || {
        c.get("/status").await.1["audit"]["queued"].as_u64() >= Some(20)
    })
    .await;
    let lines = collector(port);
    crate::wait::until(
        "every record at the collector",
        Duration::from_secs(60),
        async || {
            let all = messages(&lines);
            (0..20).all(|i| {
                let name = format!("while_down_{i} ");
                all.iter()
                    .any(|m| m["msg"].as_str().is_some_and(|t| t.contains(&name)))
            })
        },
    )
    .await;
    let (_, status) = c.get("/status").await;
    assert_eq!(status["audit"]["dropped"], 0, "{status}");
    c.terminate();
}

#[tokio::test]
async fn a_compliance_level_without_an_endpoint_fails_the_start_and_a_bad_one_the_launch() {
    if !have_pgaudit() {
        return;
    }
    let mut c = Compute::start_with(Opts {
        spec: Some(audited_spec("Full")),
        failure_exit_delay: 60,
        ..Opts::default()
    });
    let status = c.wait_status("failed", Duration::from_secs(60)).await;
    assert!(
        status["error"]
            .as_str()
            .unwrap_or_default()
            .contains("AUDIT_LOGGING_ENDPOINT"),
        "{status}"
    );
    c.terminate();
    let mut bad = Compute::start_with(Opts {
        spec: Some(audited_spec("Full")),
        env: vec![("AUDIT_LOGGING_ENDPOINT".into(), "collector:99999".into())],
        ..Opts::default()
    });
    bad.expect_exit(1, Duration::from_secs(30));
    bad.assert_logged("is not a port");
}

/// A syslog collector over TLS on `port`, serving `pair`: every line it
/// receives after a handshake.
async fn tls_collector(port: u16, pair: &crate::tls::pki::ServerPair) -> Arc<Mutex<Vec<String>>> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    use tokio::io::AsyncBufReadExt;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(&pair.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&pair.key).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, sink) = (acceptor.clone(), sink.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut reader = tokio::io::BufReader::new(tls).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    sink.lock().unwrap().push(line);
                }
            });
        }
    });
    lines
}

fn shipping_over_tls(port: u16, ca: &Path) -> Compute {
    let mut s = audited_spec("Extended");
    s["endpoint_id"] = json!("ep-tls");
    Compute::start_with(Opts {
        spec: Some(s),
        env: vec![
            (
                "AUDIT_LOGGING_TLS_ENDPOINT".into(),
                format!("localhost:{port}"),
            ),
            ("AUDIT_LOGGING_TLS_CA_FILE".into(), ca.display().to_string()),
        ],
        ..Opts::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_reach_a_tls_collector_that_a_wrong_ca_never_reaches() {
    if !have_pgaudit() {
        return;
    }
    let ca = crate::tls::pki::Ca::new();
    let pair = ca.server("collector", crate::tls::pki::KeyKind::EcdsaP256, 2);
    let port = free_port();
    let lines = tls_collector(port, &pair).await;
    let mut c = shipping_over_tls(port, &ca.cert);
    c.wait_running();
    as_alice(&c, "CREATE TABLE tls_shipped (i int)").await;
    crate::wait::until(
        "the DDL at the TLS collector",
        Duration::from_secs(30),
        async || {
            messages(&lines).iter().any(|m| {
                m["msg"]
                    .as_str()
                    .is_some_and(|t| t.contains("CREATE TABLE tls_shipped"))
            })
        },
    )
    .await;
    assert_eq!(messages(&lines)[0]["endpoint_id"], "ep-tls");
    let (_, status) = c.get("/status").await;
    assert_eq!(status["audit"]["tls"], true, "{status}");
    c.terminate();

    // A compute that trusts another CA does not hand its records to this
    // collector: the handshake fails, is counted, and nothing arrives.
    let other = crate::tls::pki::Ca::new();
    let port = free_port();
    let lines = tls_collector(port, &pair).await;
    let mut c = shipping_over_tls(port, &other.cert);
    c.wait_running();
    as_alice(&c, "CREATE TABLE never_shipped (i int)").await;
    crate::wait::until("a failed handshake", Duration::from_secs(30), async || {
        c.get("/status").await.1["audit"]["failures"].as_u64() >= Some(2)
    })
    .await;
    assert!(
        lines.lock().unwrap().is_empty(),
        "{:?}",
        lines.lock().unwrap()
    );
    assert!(c.log().contains("TLS handshake"), "{}", c.log());
    c.terminate();
}

#[test]
fn a_tls_endpoint_with_a_ca_file_that_is_not_one_fails_the_launch() {
    let dir = crate::common::test_dir();
    let bad = dir.path().join("ca.pem");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    let mut c = Compute::start_with(Opts {
        spec: Some(audited_spec("Extended")),
        env: vec![
            ("AUDIT_LOGGING_TLS_ENDPOINT".into(), "localhost:6514".into()),
            (
                "AUDIT_LOGGING_TLS_CA_FILE".into(),
                bad.display().to_string(),
            ),
        ],
        ..Opts::default()
    });
    assert_eq!(c.wait_exit(Duration::from_secs(30)).code(), Some(1));
    assert!(c.log().contains("AUDIT_LOGGING_TLS_CA_FILE"), "{}", c.log());
}
