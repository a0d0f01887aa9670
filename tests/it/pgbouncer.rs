//! pgbouncer run by compute_ctl (`--pgbouncer`), the real Debian pgbouncer:
//! a client through it reaches the spec's database, a reconfiguration's
//! `default_pool_size` shows in `SHOW CONFIG` without a pgbouncer restart
//! (the ini's comments kept), a killed pgbouncer is restarted, a
//! terminated compute leaves no pgbouncer behind, and a TLS client
//! (`verify-full` against the test CA) reaches the spec's database through it.

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
    crate::common::send_signal(first as i32, 9);
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

/// A pgbouncer the deployment runs (here: the test, as postgres' user):
/// compute_ctl edits its ini and sends `RELOAD` on its admin console with
/// `PGBOUNCER_PASSWORD`, which never reaches the log.
#[tokio::test]
async fn a_pgbouncer_the_deployment_runs_is_tuned_over_its_admin_console() {
    if !crate::needs::needs(
        Path::new(BIN).exists(),
        "the pgbouncer package (/usr/sbin/pgbouncer)",
    ) || !crate::needs::root("pgbouncer as postgres' user")
    {
        return;
    }
    use std::os::unix::process::CommandExt;
    let dir = test_dir();
    let port = free_port();
    let admin_pw = "deployment-admin-pw-4821";
    std::fs::write(
        dir.path().join("userlist.txt"),
        format!("\"postgres\" \"{admin_pw}\"\n"),
    )
    .unwrap();
    let ini = dir.path().join("pgbouncer.ini");
    std::fs::write(
        &ini,
        format!(
            "[databases]\n* = host=127.0.0.1 port=5432\n\n[pgbouncer]\n; the deployment's own comment\n\
             listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = scram-sha-256\nauth_file = {}/userlist.txt\nadmin_users = postgres\n\
             default_pool_size = 64\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let pg = nix::unistd::User::from_name("postgres").unwrap().unwrap();
    let mut bouncer = std::process::Command::new(BIN)
        .arg(&ini)
        .uid(pg.uid.as_raw())
        .gid(pg.gid.as_raw())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut s = spec(json!([]), json!([]));
    s["pgbouncer_settings"] = json!({"default_pool_size": "33"});
    let mut c = Compute::start_with(Opts {
        spec: Some(s),
        extra_args: vec!["--pgbouncer-ini".into(), ini.display().to_string()],
        env: vec![("PGBOUNCER_PASSWORD".into(), admin_pw.into())],
        ..Opts::default()
    });
    c.wait_running();
    let show = async || {
        let client = crate::common::connect(&format!(
            "host=127.0.0.1 port={port} user=postgres dbname=pgbouncer password={admin_pw}"
        ))
        .await
        .ok()?;
        let rows = client.simple_query("SHOW CONFIG").await.ok()?;
        rows.into_iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("default_pool_size") => {
                r.get(1).map(str::to_string)
            }
            _ => None,
        })
    };
    crate::wait::until(
        "default_pool_size 33 after RELOAD",
        Duration::from_secs(30),
        async || show().await.as_deref() == Some("33"),
    )
    .await;
    let text = std::fs::read_to_string(&ini).unwrap();
    assert!(text.contains("; the deployment's own comment\n"), "{text}");
    let (_, status) = c.get("/status").await;
    assert_eq!(status["pgbouncer"]["failures"], 0, "{status}");
    assert_eq!(status["pgbouncer"]["supervised"], false, "{status}");
    c.terminate();
    assert!(
        !c.log().contains(admin_pw),
        "the admin password reached the log"
    );
    let _ = bouncer.kill();
    let _ = bouncer.wait();
}

#[tokio::test]
async fn a_tls_client_reaches_the_spec_database_through_our_pgbouncer() {
    let psql = "/usr/lib/postgresql/15/bin/psql";
    if !crate::needs::needs(
        Path::new(BIN).exists() && Path::new(psql).exists(),
        "the pgbouncer package (/usr/sbin/pgbouncer) and psql",
    ) || !crate::needs::root("pgbouncer as postgres' user")
    {
        return;
    }
    let ca = crate::tls::pki::Ca::new();
    let pair = ca.server("bouncer", crate::tls::pki::KeyKind::EcdsaP256, 2);
    let dir = test_dir();
    let port = free_port();
    std::fs::write(dir.path().join("defaults.ini"), defaults(dir.path(), port)).unwrap();
    std::fs::write(
        dir.path().join("userlist.txt"),
        format!("\"bouncer_admin\" \"{ADMIN_PW}\"\n"),
    )
    .unwrap();
    let mut spec = bouncer_spec("8");
    spec["features"] = json!(["tls_experimental"]);
    let ini = dir.path().join("pgbouncer.ini");
    let mut c = Compute::start_with(Opts {
        config: Some(json!({
            "spec": spec,
            "compute_ctl_config": {"tls": {
                "key_path": pair.key.display().to_string(),
                "cert_path": pair.cert.display().to_string(),
            }},
        })),
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
    let through = |mode: &str| {
        let out = std::process::Command::new(psql)
            .arg(format!(
                "host=localhost port={port} user=alice dbname=app {mode} sslrootcert={}",
                ca.cert.display()
            ))
            .args(["-XAtc", "SELECT current_database() || ' ' || current_user"])
            .env("PGPASSWORD", ALICE_PW)
            .output()
            .expect("psql");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text.trim().to_string())
    };
    let mut last = (false, String::new());
    crate::wait::until(
        "a TLS client through pgbouncer",
        Duration::from_secs(30),
        async || {
            last = through("sslmode=verify-full");
            last.0
        },
    )
    .await;
    assert_eq!(last.1, "app alice");
    let (ok, out) = through("sslmode=require");
    assert!(ok && out == "app alice", "sslmode=require: {out}");
    // pgbouncer serves the pair compute_ctl copied into PGDATA.
    let conf = std::fs::read_to_string(&ini).unwrap();
    assert!(conf.contains("client_tls_sslmode"), "{conf}");
    c.terminate();
}
