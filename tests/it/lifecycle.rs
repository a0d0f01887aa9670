//! A real compute, end to end, on the embedded default (local storage).

use crate::common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn starts_with_tricky_roles_and_databases_and_stops_on_sigterm() {
    let names = crate::hostile::names();
    let roles: Vec<_> = names
        .iter()
        .map(|n| json!({"name": n, "encrypted_password": null}))
        .collect();
    // Each database is owned by the role of the same name.
    let dbs: Vec<_> = names
        .iter()
        .map(|n| json!({"name": n, "owner": n}))
        .collect();
    let mut c = Compute::start(Some(spec(json!(roles), json!(dbs))));
    c.wait_running();

    let client = c.client("postgres").await;
    let rows = client
        .query(
            "SELECT d.datname, r.rolname FROM pg_catalog.pg_database d \
             JOIN pg_catalog.pg_roles r ON r.oid = d.datdba WHERE d.datname = ANY($1)",
            &[&names],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), names.len(), "every database exists");
    for row in rows {
        let (db, owner): (String, String) = (row.get(0), row.get(1));
        assert_eq!(db, owner, "database {db:?} is owned by its role");
    }
    let roles: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_roles WHERE rolname = ANY($1) AND rolcanlogin",
            &[&names],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(roles, names.len() as i64);
    drop(client);

    let postmaster = c.postmaster_pid().expect("postmaster.pid");
    c.signal(15);
    let status = c.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", c.log());
    assert!(!process_alive(postmaster), "postmaster survived");
    assert!(
        processes_mentioning(&c.pgdata()).is_empty(),
        "processes left behind"
    );
    assert!(c.log().contains("to=terminated"));
}

#[tokio::test]
async fn roles_log_in_with_md5_and_scram_passwords_which_never_reach_the_log() {
    let md5 = postgres_protocol::password::md5(b"md5-secret-pw", "md5 user");
    let md5_hash = md5.strip_prefix("md5").unwrap().to_string();
    let scram = postgres_protocol::password::scram_sha_256(b"scram-secret-pw");
    let mut s = spec(
        json!([
            {"name": "md5 user", "encrypted_password": md5_hash},
            {"name": "scram'user", "encrypted_password": scram},
        ]),
        json!([{"name": "app", "owner": "md5 user"}]),
    );
    // Make postgres log every statement: the passwords still must not show.
    s["cluster"]["settings"] = json!([
        {"name": "log_statement", "value": "all", "vartype": "enum"},
        {"name": "password_encryption", "value": "scram-sha-256", "vartype": "enum"},
    ]);
    let mut c = Compute::start(Some(s));
    c.wait_running();

    let md5_client = connect(&format!(
        "{} password=md5-secret-pw",
        c.connstr("md5 user", "app")
    ))
    .await;
    assert!(md5_client.is_ok(), "md5 login: {:?}", md5_client.err());
    let scram_client = connect(&format!(
        "{} password=scram-secret-pw",
        c.connstr("scram'user", "app")
    ))
    .await;
    assert!(
        scram_client.is_ok(),
        "scram login: {:?}",
        scram_client.err()
    );
    let wrong = connect(&format!("{} password=nope", c.connstr("scram'user", "app"))).await;
    assert!(wrong.is_err(), "a wrong password is refused");

    // Postgres' own log lines are forwarded into ours (log_statement = all).
    let client = c.client("postgres").await;
    client
        .simple_query("SELECT 'forwarded-marker'")
        .await
        .unwrap();
    c.wait_for_log("forwarded-marker", Duration::from_secs(10));

    c.signal(15);
    assert_eq!(c.wait_exit(Duration::from_secs(30)).code(), Some(0));
    let log = c.log();
    for secret in [
        md5_hash.as_str(),
        scram.as_str(),
        "md5-secret-pw",
        "scram-secret-pw",
    ] {
        assert!(!log.contains(secret), "a password reached the log");
    }
    let scram_salt = scram.split('$').nth(1).unwrap();
    assert!(
        !log.contains(scram_salt),
        "a SCRAM verifier reached the log"
    );
}

#[tokio::test]
async fn a_broken_spec_file_is_a_clear_error_and_touches_nothing() {
    let dir = test_dir();
    let pgdata = dir.path().join("pgdata");
    std::fs::create_dir(&pgdata).unwrap();
    std::fs::write(pgdata.join("precious"), "keep me").unwrap();
    let cases = [
        ("{\"format_version\": 1.0, \"cluster\": ", "EOF"),
        (
            r#"{"format_version": 1.0, "cluster": {"roles": [{"name": 7}]}}"#,
            "cluster.roles[0].name",
        ),
        (
            r#"{"format_version": 1.0, "cluster": {"settings": [{"name": "work_mem", "value": null, "vartype": "integer"}]}}"#,
            "cluster.settings[0].value",
        ),
    ];
    for (text, expected) in cases {
        let spec_path = dir.path().join("spec.json");
        std::fs::write(&spec_path, text).unwrap();
        let out = run_once(&pgdata, &spec_path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(
            stderr.contains("invalid compute spec") && stderr.contains(expected),
            "{stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(pgdata.join("precious")).unwrap(),
            "keep me"
        );
    }
}

#[tokio::test]
async fn an_unknown_setting_fails_before_pgdata_is_touched() {
    let mut s = spec(json!([]), json!([]));
    s["cluster"]["settings"] = json!([
        {"name": "work_mem", "value": "4MB", "vartype": "integer"},
        {"name": "wrok_mem", "value": "4MB", "vartype": "integer"},
        {"name": "my_extension.knob", "value": "1", "vartype": "integer"},
    ]);
    let dir_marker;
    let mut c = {
        let c = Compute::start(Some(s));
        dir_marker = c.pgdata();
        c
    };
    let status = c.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1));
    let log = c.log();
    assert!(
        log.contains("cluster.settings[1].name") && log.contains("wrok_mem"),
        "{log}"
    );
    assert!(
        !dir_marker.exists(),
        "PGDATA was created for a spec that was refused"
    );
}

#[tokio::test]
async fn postgres_dying_on_its_own_fails_the_compute() {
    let mut c = Compute::start(Some(spec(json!([]), json!([]))));
    c.wait_running();
    let postmaster = c.postmaster_pid().unwrap();
    send_signal(postmaster, 9);
    let status = c.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{}", c.log());
    let log = c.log();
    assert!(
        log.contains("to=failed") && log.contains("postgres exited unexpectedly"),
        "{log}"
    );
}

#[tokio::test]
async fn sigquit_stops_immediately_and_sigint_fast() {
    for (sig, mode) in [(3, "mode=immediate"), (2, "mode=fast")] {
        let mut c = Compute::start(Some(spec(json!([]), json!([]))));
        c.wait_running();
        let postmaster = c.postmaster_pid().unwrap();
        c.signal(sig);
        assert_eq!(c.wait_exit(Duration::from_secs(30)).code(), Some(0));
        assert!(c.log().contains(mode), "{}", c.log());
        assert!(!process_alive(postmaster));
    }
}

#[tokio::test]
async fn without_a_spec_the_compute_waits_empty_and_terminates() {
    let mut c = Compute::start(None);
    // The signal handlers are in place once the API listens.
    c.wait_for_log("HTTP API listening", Duration::from_secs(60));
    // Idle for a moment: the test is that nothing happens meanwhile.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        c.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "exited while Empty"
    );
    assert!(!c.pgdata().exists(), "nothing is written while Empty");
    c.signal(15);
    assert_eq!(c.wait_exit(Duration::from_secs(10)).code(), Some(0));
    c.assert_logged("from=empty to=termination_pending");
}

#[tokio::test]
async fn a_missing_postgres_binary_is_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_compute_ctl"))
        .args([
            "-D",
            "/tmp/never-created",
            "-C",
            "postgresql://cloud_admin@127.0.0.1:1/postgres",
        ])
        .args(["-b", "/nonexistent/bin/postgres"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/bin/postgres") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[tokio::test]
async fn as_root_postgres_runs_unprivileged_and_owns_pgdata() {
    // Only meaningful as root (sessions and CI are).
    if !crate::needs::root("running postgres as user postgres") {
        return;
    }
    let mut c = Compute::start(Some(spec(json!([]), json!([]))));
    c.wait_running();
    use std::os::unix::fs::MetadataExt;
    let pg_uid = nix::unistd::User::from_name("postgres")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    let meta = std::fs::metadata(c.pgdata()).unwrap();
    assert_eq!(meta.uid(), pg_uid);
    assert_eq!(meta.mode() & 0o777, 0o700);
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", c.postmaster_pid().unwrap())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().nth(1) == Some(&pg_uid.to_string()),
        "{uid_line}"
    );
}

#[tokio::test]
async fn the_template_is_made_once_and_rebuilt_when_stale() {
    let cache = test_dir();
    let start = |cache: &std::path::Path| {
        let mut c = Compute::start_with(Opts {
            spec: Some(spec(json!([]), json!([]))),
            template_cache: cache.to_path_buf(),
            ..Opts::default()
        });
        c.wait_running();
        c.signal(15);
        c.wait_exit(Duration::from_secs(30));
        c.log()
    };
    assert!(start(cache.path()).contains("created initdb template"));
    assert!(
        !start(cache.path()).contains("created initdb template"),
        "the cached template was not used"
    );
    // Damage the stamp: the template is stale and rebuilt.
    let entry = std::fs::read_dir(cache.path())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("pg") && e.path().is_dir())
        .unwrap();
    std::fs::write(entry.path().join("compute_ctl.template"), "version=other").unwrap();
    let log = start(cache.path());
    assert!(
        log.contains("stale") && log.contains("created initdb template"),
        "{log}"
    );
}

#[test]
fn as_pid_1_it_handles_sigterm_and_reaps() {
    let have = crate::needs::is_root() && which("unshare").is_some();
    if !crate::needs::needs(have, "PID 1 in a PID namespace needs root and unshare") {
        return;
    }
    // A new PID namespace makes compute_ctl PID 1, as in a container.
    let mut c = Compute::start_with(Opts {
        spec: Some(spec(json!([]), json!([]))),
        wrap: Some(vec![
            "unshare".into(),
            "--pid".into(),
            "--fork".into(),
            "--kill-child".into(),
        ]),
        ..Opts::default()
    });
    c.wait_running();
    // The compute_ctl inside is the only child of unshare.
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", c.pid())).unwrap();
    let inner: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    let nspid = std::fs::read_to_string(format!("/proc/{inner}/status")).unwrap();
    let line = nspid
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .unwrap()
        .to_string();
    assert!(
        line.ends_with("\t1"),
        "compute_ctl is not PID 1 in its namespace: {line}"
    );
    send_signal(inner, 15);
    let status = c.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", c.log());
    assert!(c.log().contains("to=terminated"));
    assert!(processes_mentioning(&c.pgdata()).is_empty());
}

fn which(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

#[tokio::test]
async fn plan_shows_what_would_change_and_changes_nothing() {
    let base = spec(
        json!([{"name": "alice", "encrypted_password": null}]),
        json!([{"name": "app", "owner": "alice"}]),
    );
    let mut c = Compute::start(Some(base.clone()));
    c.wait_running();
    let plan = |s: &serde_json::Value| {
        let path = c.dir.path().join("plan-spec.json");
        std::fs::write(&path, s.to_string()).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_compute_ctl"))
            .args([
                "plan",
                "-C",
                // The superuser's door: the socket.
                &format!(
                    "host={} port={} user={SUPERUSER} dbname=postgres",
                    c.socket_dir().display(),
                    c.port
                ),
            ])
            .arg("-S")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (stdout, stderr) = plan(&base);
    assert_eq!(stdout, "");
    assert!(stderr.contains("nothing to do"), "{stderr}");

    let md5 = postgres_protocol::password::md5(b"secret", "bob");
    let changed = spec(
        json!([
            {"name": "alice", "encrypted_password": null},
            {"name": "bob", "encrypted_password": md5.strip_prefix("md5").unwrap()}
        ]),
        json!([{"name": "app", "owner": "bob"}]),
    );
    let (stdout, _) = plan(&changed);
    assert!(
        stdout.contains("CREATE ROLE \"bob\"") && stdout.contains("IN ROLE \"neon_superuser\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("ALTER DATABASE \"app\" OWNER TO \"bob\""),
        "{stdout}"
    );
    assert!(
        !stdout.contains(md5.strip_prefix("md5").unwrap()),
        "the plan shows a password"
    );
    // A dry run: nothing changed.
    let n: i64 = c
        .client("postgres")
        .await
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname = 'bob'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn an_unreachable_pgdata_is_a_clear_error() {
    if !crate::needs::root("a PGDATA the postgres user cannot reach") {
        return;
    }
    let dir = test_dir();
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let pgdata = private.join("pgdata");
    let out = run_once(
        &pgdata,
        &write_spec(dir.path(), &spec(json!([]), json!([]))),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach PGDATA") && stderr.contains("private"),
        "{stderr}"
    );
}

fn write_spec(dir: &std::path::Path, s: &serde_json::Value) -> std::path::PathBuf {
    let path = dir.join("spec.json");
    std::fs::write(&path, s.to_string()).unwrap();
    path
}

/// Runs compute_ctl on `spec` until it exits (the start is expected to fail).
fn run_once(pgdata: &std::path::Path, spec: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_compute_ctl"))
        .arg("-D")
        .arg(pgdata)
        .args(["-C", "postgresql://cloud_admin@127.0.0.1:1/postgres", "-S"])
        .arg(spec)
        .args([
            "--failure-exit-delay",
            "0",
            "--external-http-port",
            "0",
            "--internal-http-port",
            "0",
        ])
        .output()
        .unwrap()
}

#[tokio::test]
async fn sigquit_turns_a_stuck_fast_shutdown_into_an_immediate_one() {
    let mut c = Compute::start(Some(spec(json!([]), json!([]))));
    c.wait_running();
    let checkpointer = c.backend_pid("checkpointer").await;
    // A checkpointer that cannot run makes the fast shutdown hang.
    send_signal(checkpointer, 19); // SIGSTOP
    c.signal(15);
    c.wait_for_log("mode=fast", Duration::from_secs(10));
    // The test: still stuck a second later (nothing ends it but a signal).
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        c.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the stuck shutdown ended by itself"
    );
    c.signal(3);
    c.expect_exit(0, Duration::from_secs(20));
    assert!(c
        .log()
        .contains("immediate shutdown requested while stopping"));
    assert!(!process_alive(checkpointer));
}

#[tokio::test]
async fn the_maintenance_and_template_databases_cannot_be_dropped_or_renamed() {
    for (action, name) in [("delete_db", "postgres"), ("rename_db", "template1")] {
        let mut s = spec(json!([]), json!([]));
        s["delta_operations"] = json!([{"action": action, "name": name, "new_name": "x"}]);
        let mut c = Compute::start(Some(s));
        assert_eq!(c.wait_exit(Duration::from_secs(60)).code(), Some(1));
        let expected = format!("refusing to {action} database \"{name}\"");
        assert!(c.log().contains(&expected), "{}", c.log());
    }
}

#[tokio::test]
async fn a_postgres_that_never_gets_ready_fails_the_start_after_the_timeout() {
    // A pgbin whose postgres answers --version and --describe-config but
    // never starts a server.
    let tools = test_dir();
    let bin = tools.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let real = std::fs::canonicalize("/usr/lib/postgresql")
        .ok()
        .and_then(|root| {
            let mut found: Vec<_> = std::fs::read_dir(root)
                .ok()?
                .flatten()
                .map(|e| e.path().join("bin"))
                .collect();
            found.sort();
            found.pop()
        })
        .expect("postgres under /usr/lib/postgresql");
    for tool in ["initdb", "pg_controldata"] {
        std::os::unix::fs::symlink(real.join(tool), bin.join(tool)).unwrap();
    }
    let script = format!(
        "#!/bin/bash\nif [ \"$1\" = \"-D\" ]; then exec sleep 1000; fi\nexec {}/postgres \"$@\"\n",
        real.display()
    );
    std::fs::write(bin.join("postgres"), script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("postgres"), std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut c = Compute::start_with(Opts {
        spec: Some(spec(json!([]), json!([]))),
        extra_args: vec![
            "-b".into(),
            bin.join("postgres").display().to_string(),
            "--start-timeout".into(),
            "2".into(),
        ],
        ..Opts::default()
    });
    c.expect_exit(1, Duration::from_secs(30));
    c.assert_logged("did not accept connections within 2s");
    assert!(
        processes_mentioning(&c.pgdata()).is_empty(),
        "the never-ready postgres was left running"
    );
}
