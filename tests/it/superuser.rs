//! Who gets the superuser: only compute_ctl, postgres' own user and the
//! helpers a deployment names (`--socket-group`). Another local uid
//! (`nobody`) is refused on the socket and on loopback, while compute_ctl
//! keeps reconciling; a spec cannot move the socket; compute_ctl's own
//! statements (a role's password verifier among them) stay out of
//! `pg_stat_statements`; the settings `postgres --describe-config` leaves
//! out are accepted.

use crate::common::*;
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};

/// `psql -c 'SELECT 1'` as the OS user `os_user`, to `host` (a socket's
/// directory or an address) as the database user `db_user`, never prompting.
fn psql_as(os_user: &str, host: &str, port: u16, db_user: &str) -> Output {
    let psql = crate::fake_pageserver::pg_bindir().join("psql");
    Command::new("runuser")
        .args(["-u", os_user, "--"])
        .arg(psql)
        .args(["-w", "-X", "-At", "-h", host, "-p", &port.to_string()])
        .args(["-U", db_user, "-d", "postgres", "-c", "SELECT 1"])
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null())
        .output()
        .expect("running psql with runuser")
}

fn refused(out: &Output) -> bool {
    !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains('1')
}

fn alice(password: &str) -> serde_json::Value {
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    json!([{"name": "alice", "encrypted_password": verifier}])
}

#[tokio::test]
async fn nobody_gets_the_superuser_on_the_socket_or_loopback() {
    if !crate::needs::root("running psql as nobody") {
        return;
    }
    let mut c = Compute::start(Some(spec(alice("alice-pw"), json!([]))));
    c.wait_running();
    let sock = c.socket_dir().display().to_string();
    for host in [sock.as_str(), "127.0.0.1", "localhost"] {
        let out = psql_as("nobody", host, c.port, SUPERUSER);
        assert!(
            refused(&out),
            "nobody became the superuser through {host}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // The socket's directory is postgres' own, closed to everyone else.
    let meta = std::fs::metadata(c.socket_dir()).unwrap();
    let postgres = nix::unistd::User::from_name("postgres").unwrap().unwrap();
    assert_eq!(meta.uid(), postgres.uid.as_raw());
    assert_eq!(meta.mode() & 0o7777, 0o700);

    // compute_ctl still reconciles: a new role, and the password user logs in.
    let (code, body) = c
        .configure(&spec(
            json!([alice("alice-pw")[0], {"name": "bob", "encrypted_password": null}]),
            json!([{"name": "shop", "owner": "bob"}]),
        ))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.db_owner("shop").await, "bob");
    let alice = connect(&format!(
        "{} password=alice-pw",
        c.connstr("alice", "postgres")
    ))
    .await
    .expect("alice logs in over loopback with her password");
    let superuser: bool = alice
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!superuser);
    c.terminate();
}

#[tokio::test]
async fn the_socket_group_lets_a_named_helper_in_and_no_one_else() {
    if !crate::needs::root("running psql as other users") {
        return;
    }
    // `nogroup` is nobody's group: nobody stands for the deployment's helper;
    // daemon (not in it) for any other uid.
    let mut c = Compute::start_with(Opts {
        spec: Some(spec(json!([]), json!([]))),
        extra_args: vec!["--socket-group".into(), "nogroup".into()],
        ..Opts::default()
    });
    c.wait_running();
    let sock = c.socket_dir().display().to_string();
    let meta = std::fs::metadata(c.socket_dir()).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o750);
    let helper = psql_as("nobody", &sock, c.port, SUPERUSER);
    assert!(
        helper.status.success(),
        "the helper of the socket group is refused: {}",
        String::from_utf8_lossy(&helper.stderr)
    );
    let other = psql_as("daemon", &sock, c.port, SUPERUSER);
    assert!(refused(&other), "daemon became the superuser");
    c.terminate();
}

#[tokio::test]
async fn an_open_socket_directory_is_refused_and_a_spec_cannot_move_the_socket() {
    // A directory others may use (sticky, as /tmp): compute_ctl will not start.
    let shared = test_dir();
    std::fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let spec_file = shared.path().join("spec.json");
    std::fs::write(&spec_file, spec(json!([]), json!([])).to_string()).unwrap();
    // Under `timeout`: a compute_ctl that starts anyway would never exit.
    let out = Command::new("timeout")
        .args(["-s", "TERM", "60", env!("CARGO_BIN_EXE_compute_ctl")])
        .arg("-D")
        .arg(shared.path().join("pgdata"))
        .arg("-C")
        .arg(format!(
            "postgresql://{SUPERUSER}@127.0.0.1:{}/postgres",
            free_port()
        ))
        .args(["--external-http-port", "0", "--internal-http-port", "0"])
        .arg("--template-cache")
        .arg(shared_template_cache())
        .arg("--socket-dir")
        .arg(shared.path())
        .arg("-S")
        .arg(&spec_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("shared directory"), "{log}");

    // The socket's settings are compute_ctl's: a 400, and the compute keeps running.
    let mut c = Compute::start(Some(spec(json!([]), json!([]))));
    c.wait_running();
    for (name, value) in [
        ("unix_socket_directories", "/tmp"),
        ("unix_socket_permissions", "0777"),
        ("Unix_Socket_Group", "nogroup"),
    ] {
        let mut s = spec(json!([]), json!([]));
        s["cluster"]["settings"] = json!([{"name": name, "value": value, "vartype": "string"}]);
        let (code, body) = c.configure(&s).await;
        assert_eq!(code, 400, "{name}: {body}");
        assert!(body["error"].as_str().unwrap().contains("socket"), "{body}");
    }
    let (_, status) = c.get("/status").await;
    assert_eq!(status["status"], "running", "{status}");
    c.terminate();
}

#[tokio::test]
async fn pg_stat_statements_keeps_none_of_compute_ctls_statements() {
    let password = "in-pgss-never";
    let mut s = spec(alice(password), json!([{"name": "app", "owner": "alice"}]));
    s["cluster"]["settings"] = json!([{
        "name": "shared_preload_libraries", "value": "pg_stat_statements", "vartype": "string"
    }]);
    let mut c = Compute::start(Some(s.clone()));
    c.wait_running();
    // A second password, set by ALTER ROLE on the running compute.
    let mut changed = s.clone();
    changed["cluster"]["roles"] = alice("a-new-one");
    let (code, body) = c.configure(&changed).await;
    assert_eq!(code, 200, "{body}");

    let su = c.client("postgres").await;
    su.batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();
    let tracked: i64 = su
        .query_one("SELECT count(*) FROM pg_stat_statements", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        tracked > 0,
        "pg_stat_statements tracks nothing: the test would prove nothing"
    );
    // Bound parameters: this query's own text holds none of them.
    let leaked: Vec<String> = su
        .query(
            "SELECT query FROM pg_stat_statements \
             WHERE query ILIKE '%' || $1 || '%' OR query ILIKE '%' || $2 || '%'",
            &[&"SCRAM-SHA-256$", &"PASSWORD"],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(leaked.is_empty(), "kept by pg_stat_statements: {leaked:?}");
    c.terminate();
}

/// The settings postgres 15 accepts in postgresql.conf that `postgres
/// --describe-config` does not print, each with a value postgres takes.
fn undescribed_settings(pgdata: &std::path::Path) -> Vec<(&'static str, String)> {
    let config_file = pgdata.join("postgresql.conf").display().to_string();
    [
        ("allow_in_place_tablespaces", "off"),
        ("allow_system_table_mods", "off"),
        ("application_name", "named"),
        ("backtrace_functions", ""),
        ("debug_discard_caches", "0"),
        ("force_parallel_mode", "off"),
        ("ignore_checksum_failure", "off"),
        ("ignore_invalid_pages", "off"),
        ("ignore_system_indexes", "off"),
        ("jit_debugging_support", "off"),
        ("jit_dump_bitcode", "off"),
        ("jit_expressions", "on"),
        ("jit_profiling_support", "off"),
        ("jit_tuple_deforming", "on"),
        ("post_auth_delay", "0"),
        ("pre_auth_delay", "0"),
        ("remove_temp_files_after_crash", "on"),
        ("restrict_nonsystem_relation_kind", ""),
        ("trace_notify", "off"),
        ("trace_recovery_messages", "log"),
        ("trace_sort", "off"),
        ("transaction_deferrable", "off"),
        ("transaction_isolation", "read committed"),
        ("transaction_read_only", "off"),
        ("wal_consistency_checking", ""),
        ("zero_damaged_pages", "off"),
    ]
    .into_iter()
    .map(|(n, v)| (n, v.to_string()))
    .chain([("config_file", config_file)])
    .collect()
}

#[tokio::test]
async fn settings_describe_config_leaves_out_are_accepted_and_a_misspelt_one_is_not() {
    let mut c = Compute::start(None);
    c.wait_status("empty", std::time::Duration::from_secs(30))
        .await;
    let settings = undescribed_settings(&c.pgdata());
    assert_eq!(settings.len(), 27);
    let mut s = spec(json!([]), json!([]));
    s["cluster"]["settings"] = settings
        .iter()
        .map(|(n, v)| json!({"name": n, "value": v, "vartype": "string"}))
        .collect();
    let (code, body) = c.configure(&s).await;
    assert_eq!(code, 200, "{body}");
    c.wait_running();
    let su = c.client("postgres").await;
    let jit: String = su
        .query_one(
            "SELECT setting FROM pg_settings WHERE name = 'jit_expressions'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(jit, "on");

    let mut typo = s.clone();
    typo["cluster"]["settings"] =
        json!([{"name": "aplication_name", "value": "x", "vartype": "string"}]);
    let (code, body) = c.configure(&typo).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("aplication_name"),
        "{body}"
    );
    c.terminate();
}
