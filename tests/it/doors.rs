//! Issue 9, "close the open doors": what the internal port serves, and
//! `/refresh_configuration`.

use crate::common::*;
use compute_ctl::testing::http::table::{Ports, ROUTES};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_not_in_the_internal_list_is_404_on_the_internal_port() {
    let c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    let internal: Vec<&str> = ROUTES
        .iter()
        .filter(|r| r.ports == Ports::Internal)
        .map(|r| r.path)
        .collect();
    assert_eq!(
        internal,
        [
            "extensions",
            "grants",
            "extension_server/{*filename}",
            "refresh_configuration"
        ],
        "the internal port serves what local helpers need, nothing else"
    );
    let mut checked = 0;
    for route in ROUTES.iter().filter(|r| r.ports != Ports::Internal) {
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let resp = http()
                .request(method.clone(), c.internal_url(&format!("/{}", route.path)))
                .json(&json!({"spec": spec(json!([]), json!([]))}))
                .send()
                .await
                .expect("internal port answers");
            assert_eq!(
                resp.status(),
                404,
                "{method} /{} on the internal port",
                route.path
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked}");
    // Nothing changed: still empty, as seen from the external port.
    assert_eq!(c.get("/status").await.1["status"], "empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_configuration_reapplies_the_spec_file() {
    let mut c = Compute::start(Some(spec(json!([]), json!([]))));
    c.wait_running();
    let path = c.dir.path().join("spec.json");
    let new = spec(
        json!([{"name": "refreshed", "encrypted_password": null}]),
        json!([{"name": "refreshed db", "owner": "refreshed"}]),
    );
    std::fs::write(&path, new.to_string()).unwrap();
    let status = c.refresh_and_wait().await;
    assert_eq!(status["status"], "running");
    assert_eq!(c.db_owner("refreshed db").await, "refreshed");

    // A broken file is a clear error, postgres serves on, and the refresh
    // is tried again until the file is right.
    std::fs::write(
        &path,
        "{\"format_version\": 1.0, \"cluster\": {\"roles\": 5}}",
    )
    .unwrap();
    let (code, body) = c.refresh_configuration().await;
    assert_eq!((code, &body), (200, &json!("")));
    let mut error = String::new();
    crate::wait::until(
        "the failed refresh in /status",
        Duration::from_secs(30),
        async || {
            let status = c.get("/status").await.1;
            error = status["error"].as_str().unwrap_or_default().to_owned();
            error.contains("roles") && status["status"] != "running"
        },
    )
    .await;
    c.client("refreshed db").await;
    let fixed = spec(
        json!([{"name": "refreshed", "encrypted_password": null}, {"name": "again", "encrypted_password": null}]),
        json!([{"name": "refreshed db", "owner": "refreshed"}]),
    );
    std::fs::write(&path, fixed.to_string()).unwrap();
    crate::wait::until("the retried refresh", Duration::from_secs(60), async || {
        c.get("/status").await.1["status"] == "running"
            && c.transitions("refresh_configuration", "refresh_configuration_pending")
                .await
                >= 1
    })
    .await;
    let client = c.client("postgres").await;
    let again = client
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname = 'again'", &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(again, 1, "{}", c.log());
    assert!(c.log().contains("roles"), "the failed attempt is logged");
}

/// A running compute whose external API is guarded by a fresh Ed25519 key,
/// and a way to mint tokens with it (the reference signs with EdDSA).
async fn guarded() -> (Compute, impl Fn(serde_json::Value) -> String) {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let x = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())
    };
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "x": x});
    let mut c = Compute::start_with(Opts {
        config: Some(json!({
            "spec": spec(json!([]), json!([])),
            "compute_ctl_config": {"jwks": {"keys": [jwk]}}
        })),
        extra_args: vec!["--compute-id".into(), "compute-1".into()],
        ..Opts::default()
    });
    c.wait_running();
    let key = EncodingKey::from_ed_der(pkcs8.as_ref());
    let mint = move |claims: serde_json::Value| {
        encode(&Header::new(Algorithm::EdDSA), &claims, &key).unwrap()
    };
    (c, mint)
}

/// `GET /status` with `token` (none: no Authorization header).
async fn status_with(c: &Compute, token: Option<String>) -> (u16, serde_json::Value) {
    let mut req = http().get(c.url("/status"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    into_pair(req.send().await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_1_no_scope_claim() {
    let (c, mint) = guarded().await;
    let (code, body) = status_with(&c, Some(mint(json!({})))).await;
    assert_eq!(code, 403, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_2_admin_scope_claim() {
    let (c, mint) = guarded().await;
    let admin = |aud: Option<serde_json::Value>| {
        let mut claims = json!({"scope": "compute_ctl:admin"});
        if let Some(aud) = aud {
            claims["aud"] = aud;
        }
        Some(mint(claims))
    };
    let (code, body) = status_with(&c, admin(Some(json!(["compute"])))).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("running")));
    assert_eq!(
        status_with(&c, admin(Some(json!(["invalid"])))).await.0,
        401
    );
    assert_eq!(status_with(&c, admin(None)).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neon_scenario_3_missing_header_and_other_compute() {
    let (c, mint) = guarded().await;
    let (code, body) = status_with(&c, None).await;
    assert_eq!(
        (code, body),
        (400, json!({"error": "invalid authorization token"}))
    );
    let (code, body) = status_with(&c, Some(mint(json!({"compute_id": "other"})))).await;
    assert_eq!(
        (code, body),
        (
            403,
            json!({"error": "invalid compute ID in authorization token claims"})
        )
    );
}

/// Writes an executable shell script.
fn script(path: &std::path::Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn pg_basebackup_gets_the_password_in_a_passfile_not_in_argv() {
    let dir = test_dir();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let rec = dir.path().join("rec");
    std::fs::create_dir(&rec).unwrap();
    script(&bin.join("postgres"), "echo 'postgres (PostgreSQL) 15.0'");
    // Records what it sees of itself while it runs, then plays a successful copy.
    script(
        &bin.join("pg_basebackup"),
        &format!(
            r#"tr '\000' ' ' < /proc/$$/cmdline > {rec}/cmdline
tr '\000' '\n' < /proc/$$/environ > {rec}/environ
[ -n "$PGPASSFILE" ] && cat "$PGPASSFILE" > {rec}/passfile && stat -c %a "$PGPASSFILE" > {rec}/mode
touch "$2/standby.signal""#,
            rec = rec.display()
        ),
    );
    let pgbin = compute_ctl::testing::pgbin::PgBin::resolve(Some(&bin.join("postgres")))
        .await
        .unwrap();
    let backoff = compute_ctl::testing::storage::Backoff {
        attempts: 1,
        ..Default::default()
    };
    for connstring in [
        "host=primary port=5432 user=replicator password='pa:ss\\'w0rd'",
        "postgresql://replicator:pa%3Ass'w0rd@primary:5432/postgres",
    ] {
        let pgdata = dir.path().join("pgdata");
        let _ = std::fs::remove_dir_all(&pgdata);
        compute_ctl::testing::storage::pg_basebackup(&pgbin, connstring, &pgdata, None, &backoff)
            .await
            .unwrap();
        let read = |f: &str| std::fs::read_to_string(rec.join(f)).unwrap();
        let cmdline = read("cmdline");
        assert!(cmdline.contains("primary"), "{cmdline}");
        assert!(!cmdline.contains("w0rd"), "password in argv: {cmdline}");
        assert!(
            !read("environ").contains("w0rd"),
            "password in the environment"
        );
        assert_eq!(read("passfile"), "*:*:*:*:pa\\:ss'w0rd\n");
        assert_eq!(read("mode").trim(), "600");
        assert_eq!(
            std::fs::read_dir(std::env::temp_dir())
                .unwrap()
                .flatten()
                .filter(|e| e
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&format!("compute_ctl-{}-", std::process::id())))
                .count(),
            0,
            "the password file is removed afterwards"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_gets_the_password_in_a_passfile_not_in_argv() {
    // The connection string's user part carries a password (trust ignores it).
    let mut c = Compute::start_with(Opts {
        spec: Some(spec(
            json!([]),
            json!([{"name": "dumped", "owner": "cloud_admin"}]),
        )),
        superuser: "cloud_admin:pw-s3cret".into(),
        ..Opts::default()
    });
    c.wait_running();
    let client = connect(&format!(
        "host={} port={} user=cloud_admin dbname=dumped",
        c.socket_dir().display(),
        c.port
    ))
    .await
    .unwrap();
    // A schema far larger than every buffer on the way (pipe, channel, socket):
    // pg_dump blocks while we do not read.
    let comment = "c".repeat(1024 * 1024);
    let ddl: String = (0..32)
        .map(|i| {
            format!(
                "CREATE TABLE public.t{i} (id int); COMMENT ON TABLE public.t{i} IS '{comment}';"
            )
        })
        .collect();
    client.batch_execute(&ddl).await.unwrap();
    let resp = c.start_schema_dump("dumped").await;
    let dumps = processes_mentioning(std::path::Path::new("dbname='dumped'"));
    assert_eq!(dumps.len(), 1, "pg_dump is running");
    let proc = std::path::PathBuf::from(format!("/proc/{}", dumps[0]));
    let cmdline =
        String::from_utf8_lossy(&std::fs::read(proc.join("cmdline")).unwrap()).replace('\0', " ");
    assert!(cmdline.contains("--schema-only"), "{cmdline}");
    assert!(!cmdline.contains("s3cret"), "password in argv: {cmdline}");
    let environ =
        String::from_utf8_lossy(&std::fs::read(proc.join("environ")).unwrap()).into_owned();
    let passfile = environ
        .split('\0')
        .find_map(|kv| kv.strip_prefix("PGPASSFILE="))
        .expect("PGPASSFILE in pg_dump's environment");
    assert_eq!(
        std::fs::read_to_string(passfile).unwrap(),
        "*:*:*:*:pw-s3cret\n"
    );
    drop(resp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_log_lines_hide_multi_line_passwords_and_are_capped() {
    let mut s = spec(json!([]), json!([]));
    s["cluster"]["settings"] =
        json!([{"name": "log_statement", "value": "all", "vartype": "enum"}]);
    let mut c = Compute::start(Some(s));
    c.wait_running();
    let client = c.client("postgres").await;
    client
        .batch_execute("CREATE ROLE multi LOGIN PASSWORD\n   'md5aaaabbbbccccddddeeeeffff00001111'")
        .await
        .unwrap();
    // Well over twice the 64 KiB cap: another backend's line written into the
    // middle of it (writes to the pipe over PIPE_BUF are not atomic, and the
    // activity monitor's statements are logged too) still leaves a piece that
    // must be cut.
    let long = "y".repeat(400 * 1024);
    client
        .batch_execute(&format!("SELECT 'marker-{long}'"))
        .await
        .unwrap();
    c.wait_for_log("[line cut:", Duration::from_secs(10));
    c.wait_for_log("CREATE ROLE multi", Duration::from_secs(10));
    let log = c.log();
    assert!(!log.contains("aaaabbbbcccc"), "the password was logged");
    let cut = log
        .lines()
        .find(|l| l.contains("marker-"))
        .expect("the long statement");
    assert!(cut.len() < 65 * 1024, "{} bytes", cut.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_role_password_is_400_naming_the_role() {
    let c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    let (code, body) = c
        .configure(&spec(
            json!([{"name": "plain role", "encrypted_password": "hunter2-plaintext"}]),
            json!([]),
        ))
        .await;
    assert_eq!(code, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("cluster.roles[0].encrypted_password"),
        "{error}"
    );
    assert!(error.contains("\"plain role\""), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
    assert_eq!(c.get("/status").await.1["status"], "empty");
}

#[tokio::test]
async fn a_template_that_lost_files_or_writes_is_rebuilt() {
    let cache = test_dir();
    let pgbin = compute_ctl::testing::pgbin::PgBin::resolve(None)
        .await
        .unwrap();
    let owner = compute_ctl::testing::process::RunAs::detect("postgres").unwrap();
    let ensure = || {
        compute_ctl::testing::pgdata::ensure_template(
            &pgbin,
            "cloud_admin",
            cache.path(),
            owner.as_ref(),
            compute_ctl::testing::pgdata::unfinished(),
        )
    };
    let dir = ensure().await.unwrap();
    let stamp = std::fs::read_to_string(dir.join("compute_ctl.template")).unwrap();
    assert!(
        stamp.contains("files=") && stamp.contains("bytes="),
        "{stamp}"
    );
    let control = dir.join("global/pg_control");
    let size = std::fs::metadata(&control).unwrap().len();
    assert!(size > 0);

    // A write lost in a crash: the file is there, shorter.
    std::fs::write(&control, b"").unwrap();
    assert_eq!(ensure().await.unwrap(), dir);
    assert_eq!(std::fs::metadata(&control).unwrap().len(), size, "rebuilt");

    // A file lost.
    std::fs::remove_file(dir.join("PG_VERSION")).unwrap();
    ensure().await.unwrap();
    assert!(dir.join("PG_VERSION").is_file(), "rebuilt");

    // No stamp: an unfinished template.
    std::fs::remove_file(dir.join("compute_ctl.template")).unwrap();
    std::fs::write(&control, b"").unwrap();
    ensure().await.unwrap();
    assert_eq!(std::fs::metadata(&control).unwrap().len(), size, "rebuilt");
    // A good template is used as it is.
    let before = std::fs::metadata(&control).unwrap().modified().unwrap();
    ensure().await.unwrap();
    assert_eq!(
        std::fs::metadata(&control).unwrap().modified().unwrap(),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_postgresql_conf_is_replaced_by_the_previous_one() {
    let mut c = Compute::start(Some(spec(json!([]), json!([]))));
    c.wait_running();
    let conf = c.pgdata().join("postgresql.conf");
    let good = std::fs::read_to_string(&conf).unwrap();
    // One invalid value beside a valid change: postgres rejects the file
    // (and applies the valid line on its own).
    let mut rejected = spec(json!([]), json!([]));
    rejected["cluster"]["settings"] = json!([
        {"name": "work_mem", "value": "banana", "vartype": "string"},
        {"name": "maintenance_work_mem", "value": "77MB", "vartype": "string"}
    ]);
    let (code, body) = c.configure(&rejected).await;
    assert_eq!(code, 500, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("work_mem") && error.contains("restored"),
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), good);
    let mwm: String = c
        .client("postgres")
        .await
        .query_one("SHOW maintenance_work_mem", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(mwm, "77MB", "the rejected file's valid line was taken back");
    // A file postgres cannot parse is not left behind either.
    let mut unparsable = spec(json!([]), json!([]));
    unparsable["cluster"]["postgresql_conf"] = json!("this is = not = valid\n");
    let (code, _) = c.configure(&unparsable).await;
    assert_eq!(code, 500);
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), good);
    // A good spec still recovers.
    let (code, body) = c.configure(&spec(json!([]), json!([]))).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_during_a_start_is_taken_up_once_it_is_done() {
    // 400 roles and 20 databases make the start take a while.
    let roles: Vec<serde_json::Value> = (0..400)
        .map(|i| json!({"name": format!("r{i}"), "encrypted_password": null}))
        .collect();
    let dbs: Vec<serde_json::Value> = (0..20)
        .map(|i| json!({"name": format!("d{i}"), "owner": format!("r{i}")}))
        .collect();
    let c = Compute::start_with(Opts {
        config: Some(json!({"spec": spec(json!(roles), json!(dbs))})),
        ..Opts::default()
    });
    let config = c.dir.path().join("config.json");
    assert!(config.is_file(), "the harness writes -c to config.json");
    let mut later = roles.clone();
    later.push(json!({"name": "late", "encrypted_password": null}));
    std::fs::write(
        &config,
        json!({"spec": spec(json!(later), json!(dbs))}).to_string(),
    )
    .unwrap();
    c.wait_status("init", Duration::from_secs(30)).await;
    let (code, body) = c.refresh_configuration().await;
    assert_eq!((code, body), (200, json!("")));
    crate::wait::until(
        "the refresh after the start",
        Duration::from_secs(60),
        async || c.transitions("refresh_configuration", "running").await == 1,
    )
    .await;
    let client = c.client("postgres").await;
    let late: i64 = client
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname = 'late'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(late, 1, "{}", c.log());
    assert!(c.log().contains("taken up once the work under way is done"));
}
