//! pgbouncer run by compute_ctl (`--pgbouncer`), the real Debian pgbouncer:
//! a client through it reaches the spec's database, a reconfiguration's
//! `default_pool_size` shows in `SHOW CONFIG` without a pgbouncer restart
//! (the ini's comments kept), a killed pgbouncer is restarted, and a
//! terminated compute leaves no pgbouncer behind.

use crate::common::{free_port, process_alive, spec, test_dir, Compute, Opts};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const BIN: &str = "/usr/sbin/pgbouncer";
const ALICE_PW: &str = "alice-bouncer-pw";
const ADMIN_PW: &str = "admin-bouncer-pw";

/// The image's defaults, as a deployment would ship them, on a free port.
fn defaults(dir: &Path, port: u16) -> String {
    format!(
        "; compute_ctl's pgbouncer defaults (a test's)\n\
         [databases]\n\
         * = host=localhost port=5432 auth_user=cloud_admin\n\
         \n\
         [pgbouncer]\n\
         ; where clients come in\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = scram-sha-256\n\
         auth_user = cloud_admin\n\
         auth_file = {}/userlist.txt\n\
         admin_users = bouncer_admin\n\
         pool_mode = transaction\n\
         default_pool_size = 64\n\
         ignore_startup_parameters = extra_float_digits\n",
        dir.display()
    )
}

fn bouncer_spec(pool_size: &str) -> serde_json::Value {
    let scram = postgres_protocol::password::scram_sha_256(ALICE_PW.as_bytes());
    let mut s = spec(
        json!([{"name": "alice", "encrypted_password": scram}]),
        json!([{"name": "app", "owner": "alice"}]),
    );
    s["pgbouncer_settings"] = json!({"default_pool_size": pool_size, "pool_mode": "session"});
    s
}

async fn admin(port: u16, command: &str) -> Vec<(String, String)> {
    let client = crate::common::connect(&format!(
        "host=127.0.0.1 port={port} user=bouncer_admin dbname=pgbouncer password={ADMIN_PW}"
    ))
    .await
    .expect("pgbouncer's admin console");
    let mut rows = Vec::new();
    for m in client.simple_query(command).await.expect(command) {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            rows.push((
                r.get(0).unwrap_or_default().to_string(),
                r.get(1).unwrap_or_default().to_string(),
            ));
        }
    }
    rows
}

async fn setting(port: u16, name: &str) -> Option<String> {
    admin(port, "SHOW CONFIG")
        .await
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

async fn pgbouncer_pid(c: &Compute) -> Option<i64> {
    c.get("/status").await.1["pgbouncer"]["pid"].as_i64()
}

#[tokio::test]
async fn pgbouncer_serves_the_spec_reloads_its_settings_restarts_and_stops_with_us() {
    if !crate::needs::needs(
        Path::new(BIN).exists(),
        "the pgbouncer package (/usr/sbin/pgbouncer)",
    ) || !crate::needs::root("pgbouncer as postgres' user")
    {
        return;
    }
    let dir = test_dir();
    let port = free_port();
    std::fs::write(dir.path().join("defaults.ini"), defaults(dir.path(), port)).unwrap();
    std::fs::write(
        dir.path().join("userlist.txt"),
        format!("\"bouncer_admin\" \"{ADMIN_PW}\"\n"),
    )
    .unwrap();
    let ini = dir.path().join("pgbouncer.ini");
    let mut c = Compute::start_with(Opts {
        spec: Some(bouncer_spec("42")),
        extra_args: vec![
            "--pgbouncer".into(),
            "--pgbouncer-ini".into(),
            ini.display().to_string(),
            "--pgbouncer-defaults".into(),
            dir.path().join("defaults.ini").display().to_string(),
        ],
        ..Opts::default()
    });
    c.wait_running();
    crate::wait::until("pgbouncer running", Duration::from_secs(30), async || {
        pgbouncer_pid(&c).await.is_some()
    })
    .await;
    let first = pgbouncer_pid(&c).await.unwrap();

    // A client through pgbouncer reaches the spec's database.
    let through = format!("host=127.0.0.1 port={port} user=alice dbname=app password={ALICE_PW}");
    let mut client = None;
    crate::wait::until(
        "a client through pgbouncer",
        Duration::from_secs(30),
        async || {
            client = crate::common::connect(&through).await.ok();
            client.is_some()
        },
    )
    .await;
    let row = client
        .unwrap()
        .query_one("SELECT current_database(), current_user", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("app".into(), "alice".into())
    );
    assert_eq!(
        setting(port, "default_pool_size").await.as_deref(),
        Some("42")
    );
    assert_eq!(setting(port, "pool_mode").await.as_deref(), Some("session"));

    // A reconfiguration: reloaded, not restarted; the ini's comments stay.
    let (code, body) = c.configure(&bouncer_spec("17")).await;
    assert_eq!(code, 200, "{body}");
    crate::wait::until(
        "default_pool_size 17",
        Duration::from_secs(30),
        async || setting(port, "default_pool_size").await.as_deref() == Some("17"),
    )
    .await;
    assert_eq!(
        pgbouncer_pid(&c).await,
        Some(first),
        "pgbouncer was restarted"
    );
    let text = std::fs::read_to_string(&ini).unwrap();
    assert!(text.contains("; where clients come in\n"), "{text}");
    assert!(text.contains("default_pool_size = 17\n"), "{text}");

    // Killed: started again.
    crate::common::unsafe_kill(first as i32, 9);
    crate::wait::until("pgbouncer restarted", Duration::from_secs(30), async || {
        pgbouncer_pid(&c).await.is_some_and(|p| p != first)
    })
    .await;
    let second = pgbouncer_pid(&c).await.unwrap();
    let (_, status) = c.get("/status").await;
    assert_eq!(status["pgbouncer"]["restarts"], 1, "{status}");
    crate::wait::until(
        "a client through the new pgbouncer",
        Duration::from_secs(30),
        async || crate::common::connect(&through).await.is_ok(),
    )
    .await;
    assert!(c.metrics().await.contains("compute_ctl_pgbouncer_up 1"));

    // Terminated: no pgbouncer left.
    c.terminate();
    assert!(
        !process_alive(second as i32),
        "pgbouncer outlived compute_ctl"
    );
}
