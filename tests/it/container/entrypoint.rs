//! compute_ctl as a container entrypoint, on the host: probes, the shutdown
//! budget, JSON logs, settings from the environment, and no process left
//! behind. (container/image.rs runs the image in a real container runtime.)

use crate::common::*;
use crate::wait::until;

use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn with_settings(mut spec: Value, settings: Value) -> Value {
    spec["cluster"]["settings"] = settings;
    spec
}

#[tokio::test]
async fn probes_answer_without_authentication_and_follow_the_state() {
    // Keys configured: every other external route needs a token.
    let pkcs8 =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    use base64::Engine;
    use ring::signature::KeyPair;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "k1", "x": x});
    let c = Compute::start_with(Opts {
        config: Some(json!({"spec": null, "compute_ctl_config": {"jwks": {"keys": [jwk]}}})),
        ..Opts::default()
    });
    until("the API is up", Duration::from_secs(10), async || {
        http().get(c.url("/healthz")).send().await.is_ok()
    })
    .await;
    assert_eq!(c.get("/status").await.0, 400, "a token is required");
    // Empty: alive, not ready, not started.
    let (code, body) = c.get("/healthz").await;
    assert_eq!(
        (code, body["compute"].as_str()),
        (200, Some("empty")),
        "{body}"
    );
    let (code, body) = c.get("/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(c.get("/startupz").await.0, 503);

    // An admin token signed by the configured key.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("k1".into());
    let exp = chrono::Utc::now().timestamp() + 300;
    let claims = json!({"scope": "compute_ctl:admin", "aud": ["compute"], "exp": exp});
    let key = jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref());
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let configured = http()
        .post(c.url("/configure"))
        .bearer_auth(token)
        .json(&json!({"spec": spec(json!([]), json!([]))}))
        .send()
        .await
        .unwrap();
    assert_eq!(configured.status(), 200);
    for path in ["/healthz", "/readyz", "/startupz", "/readyz?lag=0"] {
        let (code, body) = c.get(path).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    assert_eq!(c.get("/readyz?lag=many").await.0, 400);

    // A postgres that does not answer: not ready, but alive, and fast.
    let postmaster = c.postmaster_pid().unwrap();
    send_signal(postmaster, 19); // SIGSTOP
    let started = Instant::now();
    let (code, body) = c.get("/healthz").await;
    assert_eq!(code, 200, "{body}");
    assert!(started.elapsed() < Duration::from_millis(500));
    let (code, body) = c.get("/readyz").await;
    send_signal(postmaster, 18); // SIGCONT
    assert_eq!(code, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("did not answer"),
        "{body}"
    );
    assert_eq!(c.get("/readyz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_with_lag_fails_a_replica_whose_replay_is_behind() {
    let mut primary = Compute::start(Some(with_settings(
        spec(json!([]), json!([])),
        json!([{"name": "listen_addresses", "value": "127.0.0.1", "vartype": "string"},
               {"name": "wal_level", "value": "replica", "vartype": "enum"}]),
    )));
    primary.wait_running();
    let replica_spec = replica_spec_of(&primary, "replica");
    let mut replica = Compute::start(Some(replica_spec));
    replica.wait_running();
    until("the replica streams", Duration::from_secs(20), async || {
        replica.get("/readyz?lag=0").await.0 == 200
    })
    .await;
    let r = replica.client("postgres").await;
    r.batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    let p = primary.client("postgres").await;
    p.batch_execute("CREATE TABLE t AS SELECT generate_series(1, 10000) AS n")
        .await
        .unwrap();
    until("the lag shows", Duration::from_secs(20), async || {
        replica.get("/readyz?lag=0").await.0 == 503
    })
    .await;
    let (code, body) = replica.get("/readyz?lag=0").await;
    assert_eq!(code, 503);
    assert!(
        body["error"].as_str().unwrap().contains("bytes behind"),
        "{body}"
    );
    assert_eq!(replica.get("/readyz?lag=1000000000").await.0, 200);
    assert_eq!(replica.get("/readyz").await.0, 200, "no lag asked: ready");
    r.batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    until(
        "the replica catches up",
        Duration::from_secs(20),
        async || replica.get("/readyz?lag=0").await.0 == 200,
    )
    .await;
}

#[tokio::test]
async fn json_logs_parse_and_postgres_lines_are_objects() {
    // The format from COMPUTE_CTL_LOG_FORMAT_FILE: env vars and *_FILE secrets.
    let dir = test_dir();
    let format_file = dir.path().join("format");
    std::fs::write(&format_file, "json\n").unwrap();
    let c = Compute::start_with(Opts {
        spec: Some(spec(json!([]), json!([]))),
        env: vec![(
            "COMPUTE_CTL_LOG_FORMAT_FILE".into(),
            format_file.display().to_string(),
        )],
        ..Opts::default()
    });
    c.wait_status("running", Duration::from_secs(60)).await;
    // A statement postgres logs with a password in it.
    let client = c.client("postgres").await;
    client
        .batch_execute("SET log_statement = 'all'")
        .await
        .unwrap();
    client
        .batch_execute("CREATE ROLE x PASSWORD 'sekrit-pw'")
        .await
        .unwrap();
    until(
        "postgres logs the statement",
        Duration::from_secs(10),
        async || c.log().contains("CREATE ROLE x"),
    )
    .await;
    let log = c.log();
    assert!(!log.contains("sekrit-pw"), "{log}");
    // Settings from the environment (and secret files) stay with compute_ctl.
    let environ = std::fs::read(format!("/proc/{}/environ", c.postmaster_pid().unwrap())).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("LC_MESSAGES=C"), "{environ}");
    assert!(!environ.contains("COMPUTE_CTL_"), "{environ}");
    let objects: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    for o in &objects {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(o.get(field).is_some(), "no {field} in {o}");
        }
    }
    let ready = objects
        .iter()
        .find(|o| {
            o["source"] == "postgres"
                && o["message"] == "database system is ready to accept connections"
        })
        .unwrap_or_else(|| panic!("no postgres line:\n{log}"));
    assert_eq!(ready["severity"], "LOG");
    assert_eq!(ready["level"], "INFO");
    assert!(ready["pid"].as_i64().unwrap() > 0, "{ready}");
    assert!(
        objects
            .iter()
            .any(|o| o["span"]["name"] == "start_postgres"),
        "span fields are kept"
    );
    let statement = objects
        .iter()
        .find(|o| {
            o["message"]
                .as_str()
                .is_some_and(|m| m.contains("CREATE ROLE x"))
        })
        .unwrap();
    assert_eq!(statement["source"], "postgres");
    assert_eq!(
        statement["message"],
        "statement: CREATE ROLE x PASSWORD '<redacted>'"
    );
}

#[test]
fn settings_come_from_the_environment_and_files() {
    let dir = test_dir();
    let connstr_file = dir.path().join("connstr");
    std::fs::write(
        &connstr_file,
        "postgresql://cloud_admin@127.0.0.1:1/postgres\n",
    )
    .unwrap();
    // No flags: `plan` needs a connstr (here from a file) and a spec path
    // (from the environment); clap refuses to go on without either, so an
    // error about the spec file shows both were read.
    let out = Command::new(env!("CARGO_BIN_EXE_compute_ctl"))
        .args(["plan"])
        .env("COMPUTE_CTL_CONNSTR_FILE", &connstr_file)
        .env("COMPUTE_CTL_SPEC_PATH", dir.path().join("missing.json"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("missing.json"),
        "the spec path comes from the environment: {stderr}"
    );
    // An unreadable *_FILE is a clear error.
    let out = Command::new(env!("CARGO_BIN_EXE_compute_ctl"))
        .env("COMPUTE_CTL_CONNSTR_FILE", dir.path().join("nope"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("COMPUTE_CTL_CONNSTR_FILE"));
}

#[tokio::test]
async fn the_probe_subcommand_checks_a_probe() {
    let c = Compute::start(Some(spec(json!([]), json!([]))));
    c.wait_status("running", Duration::from_secs(60)).await;
    let probe = |path: &str| {
        Command::new(env!("CARGO_BIN_EXE_compute_ctl"))
            .args(["probe", path])
            .env("COMPUTE_CTL_EXTERNAL_HTTP_PORT", c.http_port.to_string())
            .output()
            .unwrap()
    };
    let ok = probe("/readyz");
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ready"));
    let failed = probe("/readyz?lag=x");
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("400"));
    let nobody = Command::new(env!("CARGO_BIN_EXE_compute_ctl"))
        .args(["probe", "--port", &free_port().to_string()])
        .output()
        .unwrap();
    assert_eq!(nobody.status.code(), Some(1));
}

#[tokio::test]
async fn the_stop_timeout_escalates_a_stuck_fast_shutdown() {
    let mut c = Compute::start_with(Opts {
        spec: Some(spec(json!([]), json!([]))),
        extra_args: vec!["--stop-timeout".into(), "1".into()],
        ..Opts::default()
    });
    c.wait_running();
    let checkpointer = c.backend_pid("checkpointer").await;
    let postmaster = c.postmaster_pid().unwrap();
    // A checkpointer that cannot run makes the fast shutdown hang.
    send_signal(checkpointer, 19); // SIGSTOP
    let stopping = Instant::now();
    c.signal(15);
    c.expect_exit(0, Duration::from_secs(20));
    c.assert_logged("did not stop within the stop timeout");
    // 1 s of budget, then postgres' own 5 s before it kills a stuck child.
    assert!(stopping.elapsed() < Duration::from_secs(12));
    assert!(!process_alive(postmaster) && !process_alive(checkpointer));
}

#[tokio::test]
async fn a_second_sigterm_escalates_at_once() {
    let mut c = Compute::start_with(Opts {
        spec: Some(spec(json!([]), json!([]))),
        extra_args: vec!["--stop-timeout".into(), "120".into()],
        ..Opts::default()
    });
    c.wait_running();
    let checkpointer = c.backend_pid("checkpointer").await;
    send_signal(checkpointer, 19); // SIGSTOP
    c.signal(15);
    c.wait_for_log("mode=fast", Duration::from_secs(10));
    c.signal(15);
    c.expect_exit(0, Duration::from_secs(20));
    assert!(c
        .log()
        .contains("immediate shutdown requested while stopping"));
    assert!(!process_alive(checkpointer));
}

/// compute_ctl on `pgdata` and `port`, its stderr in `log`.
fn spawn_on(pgdata: &Path, port: u16, sock: &Path, log: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_compute_ctl"))
        .args(["-D", &pgdata.display().to_string()])
        .args([
            "-C",
            &format!("postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"),
        ])
        .args(["--external-http-port", "0", "--internal-http-port", "0"])
        .args([
            "--template-cache",
            &shared_template_cache().display().to_string(),
        ])
        .args(["--socket-dir", &sock.display().to_string()])
        .args(["-S", &pgdata.with_extension("json").display().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn an_orphaned_postmaster_is_stopped_before_the_wipe() {
    let dir = test_dir();
    // compute_ctl makes the socket's directory, private to postgres' user.
    let (pgdata, sock) = (dir.path().join("pgdata"), dir.path().join("sock"));
    std::fs::write(
        pgdata.with_extension("json"),
        spec(json!([]), json!([])).to_string(),
    )
    .unwrap();
    let port = free_port();
    let connstr = format!(
        "host={} port={port} user={SUPERUSER} dbname=postgres",
        sock.display()
    );
    let (log1, log2) = (dir.path().join("1.log"), dir.path().join("2.log"));
    let mut first = spawn_on(&pgdata, port, &sock, &log1);
    until(
        "the first compute serves",
        Duration::from_secs(60),
        async || connect(&connstr).await.is_ok(),
    )
    .await;
    let pidfile = std::fs::read_to_string(pgdata.join("postmaster.pid")).unwrap();
    let orphan: i32 = pidfile.lines().next().unwrap().parse().unwrap();
    // Killed outright: its postgres stays behind.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(process_alive(orphan));

    let mut second = spawn_on(&pgdata, port, &sock, &log2);
    let log = || std::fs::read_to_string(&log2).unwrap_or_default();
    until(
        "the second compute runs",
        Duration::from_secs(60),
        async || {
            assert!(second.try_wait().unwrap().is_none(), "{}", log());
            log().contains("to=running")
        },
    )
    .await;
    assert!(!process_alive(orphan), "{}", log());
    assert!(
        log().contains("left by an earlier compute_ctl"),
        "{}",
        log()
    );
    send_signal(second.id() as i32, 15);
    assert!(second.wait().unwrap().success(), "{}", log());
}

#[tokio::test]
async fn helpers_die_with_compute_ctl() {
    // An initdb that never ends (and an empty template cache, so it runs).
    let dir = test_dir();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let pg = Command::new("sh")
        .args(["-c", "ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1"])
        .output()
        .unwrap();
    let real = String::from_utf8(pg.stdout).unwrap().trim().to_string();
    // A script, not a symlink: the tools are looked up beside it.
    std::fs::write(
        bin.join("postgres"),
        format!("#!/bin/sh\nexec {real}/postgres \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("postgres"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let pidfile = dir.path().join("initdb.pid");
    std::fs::write(
        bin.join("initdb"),
        format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 600\n",
            pidfile.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("initdb"), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Sticky, as a temporary directory: the socket's directory is made in it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let mut c = Compute::start_with(Opts {
        spec: Some(spec(json!([]), json!([]))),
        extra_args: vec!["-b".into(), bin.join("postgres").display().to_string()],
        template_cache: dir.path().join("cache"),
        ..Opts::default()
    });
    until("initdb runs", Duration::from_secs(20), async || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
    })
    .await;
    let helper: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(process_alive(helper));
    c.signal(9);
    c.wait_exit(Duration::from_secs(5));
    until("the helper dies", Duration::from_secs(5), async || {
        !process_alive(helper)
    })
    .await;
}
