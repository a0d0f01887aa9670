//! Audit logging with the real pgaudit packages: a user role's DDL is an
//! audit record, compute_ctl's own catalog statements are not, and a
//! password in an audited statement does not reach the log.

use crate::common::{connect, spec, Compute};
use serde_json::json;
use std::path::Path;
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

#[tokio::test]
async fn the_compliance_levels_write_audit_files() {
    if !have_pgaudit() {
        return;
    }
    let mut c = Compute::start(Some(audited_spec("Extended")));
    c.wait_running();
    as_alice(
        &c,
        "CREATE TABLE filed_table (i int); SELECT * FROM filed_table",
    )
    .await;
    let dir = c.pgdata().join("log");
    crate::wait::until(
        "an audit file with the DDL",
        Duration::from_secs(30),
        async || {
            std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.starts_with("audit")
                        && std::fs::read_to_string(e.path())
                            .is_ok_and(|t| t.contains("filed_table"))
                })
        },
    )
    .await;
    c.terminate();
}
