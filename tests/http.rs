//! The HTTP API against real computes over real HTTP.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn small_spec() -> Value {
    spec(
        json!([{"name": "bob", "encrypted_password": null}]),
        json!([{"name": "db1", "owner": "bob"}]),
    )
}

fn with_settings(mut s: Value, settings: Value) -> Value {
    s["cluster"]["settings"] = settings;
    s
}

#[tokio::test]
async fn configure_from_empty_then_every_route() {
    let mut c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    let (code, body) = c.get("/status").await;
    assert_eq!((code, body["status"].as_str()), (200, Some("empty")));

    // Wrong state: 412 naming the current state.
    for (path, post) in [
        ("/dbs_and_roles", false),
        ("/check_writability", true),
        ("/database_schema?database=x", false),
    ] {
        let (code, body) = if post {
            c.post(path, &json!({})).await
        } else {
            c.get(path).await
        };
        assert_eq!(code, 412, "{path}: {body}");
        assert_eq!(body["error"], "invalid compute status: empty");
    }

    let (code, body) = c.configure(&small_spec()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "running");
    assert!(body["last_active"].is_string());

    let (code, body) = c.get("/dbs_and_roles").await;
    assert_eq!(code, 200);
    assert!(body["roles"]
        .as_array()
        .unwrap()
        .contains(&json!({"name": "bob", "encrypted_password": null, "options": null})));
    assert!(body["databases"].as_array().unwrap().contains(&json!(
        {"name": "db1", "owner": "bob", "options": null, "restrict_conn": false, "invalid": false}
    )));
    assert!(!body.to_string().contains("SCRAM") && !body.to_string().contains("md5"));

    let client = c.client("db1").await;
    client
        .batch_execute("CREATE TABLE public.t (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    let (code, body) = c.get("/database_schema?database=db1").await;
    assert_eq!(code, 200);
    assert!(
        body.as_str().unwrap().contains("CREATE TABLE public.t"),
        "{body}"
    );
    let (code, body) = c.get("/database_schema?database=nope").await;
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("database \"nope\" does not exist"))
    );
    let (code, _) = c.get("/database_schema").await;
    assert_eq!(code, 400);

    let (code, body) = c.post("/check_writability", &json!({})).await;
    assert_eq!((code, body), (200, json!(true)));

    let (code, body) = c.get("/metrics.json").await;
    assert_eq!(code, 200);
    for key in [
        "wait_for_spec_ms",
        "start_postgres_ms",
        "config_ms",
        "total_startup_ms",
        "basebackup_bytes",
    ] {
        assert!(body[key].is_u64(), "{key} in {body}");
    }
    let (code, body) = c.get("/info").await;
    assert!(code == 200 && body["num_cpus"].as_u64().unwrap() >= 1);
    let (code, body) = c.get("/metrics").await;
    let text = body.as_str().unwrap().to_string();
    assert_eq!(code, 200);
    let tag = option_env!("BUILD_TAG").unwrap_or("latest");
    assert!(
        text.contains(&format!(
            "compute_ctl_up{{build_tag=\"{tag}\",status=\"running\"}} 1"
        )),
        "{text}"
    );
    assert!(text
        .contains("compute_ctl_transitions_total{from=\"empty\",to=\"configuration_pending\"} 1"));
    assert!(text.contains("compute_pg_downtime_ms_total"));
    let (code, body) = c.get("/diagram").await;
    assert_eq!(code, 200);
    assert!(body.as_str().unwrap().ends_with("class Running current\n"));

    // Internal port: extensions and grants; not on the external port.
    let ext = json!({"extension": "hstore", "database": "db1", "version": "1.8"});
    let (code, _) = c.post("/extensions", &ext).await;
    assert_eq!(code, 404);
    let (code, body) = into_pair(
        http()
            .post(c.internal_url("/extensions"))
            .json(&ext)
            .send()
            .await,
    )
    .await;
    assert_eq!(
        (code, body),
        (201, json!({"extension": "hstore", "version": "1.8"}))
    );
    let installed: String = client
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'hstore'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(installed, "1.8");
    let grant = json!({"database": "db1", "schema": "public", "privileges": ["USAGE", "CREATE"], "role": "bob"});
    let (code, body) = into_pair(
        http()
            .post(c.internal_url("/grants"))
            .json(&grant)
            .send()
            .await,
    )
    .await;
    assert_eq!((code, body), (201, grant));
    let ok: bool = client
        .query_one(
            "SELECT has_schema_privilege('bob', 'public', 'CREATE')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ok);
    let bad = json!({"database": "db1", "schema": "public", "privileges": ["USAGE; DROP"], "role": "bob"});
    let (code, _) = into_pair(
        http()
            .post(c.internal_url("/grants"))
            .json(&bad)
            .send()
            .await,
    )
    .await;
    assert_eq!(code, 400);

    // Terminate from Running: 200 with the shutdown checkpoint's LSN, then exit 0.
    let (code, body) = c.post("/terminate?mode=fast", &json!({})).await;
    assert_eq!(code, 200, "{body}");
    assert!(body["lsn"].as_str().unwrap().contains('/'), "{body}");
    assert_eq!(c.wait_exit(Duration::from_secs(20)).code(), Some(0));
}

#[tokio::test]
async fn http_errors_are_json_with_the_right_codes() {
    let c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    let client = http();
    let check = |code: u16, body: &Value, want: u16| {
        assert_eq!(code, want, "{body}");
        assert!(body["error"].is_string(), "not a JSON error: {body}");
    };
    let (code, body) = c.get("/no/such/route").await;
    check(code, &body, 404);
    let (code, body) = into_pair(client.delete(c.url("/status")).send().await).await;
    check(code, &body, 405);
    let (code, body) = into_pair(client.get(c.url("/configure")).send().await).await;
    check(code, &body, 405);
    // No JSON content type.
    let (code, body) = into_pair(client.post(c.url("/configure")).body("{}").send().await).await;
    check(code, &body, 415);
    let (code, body) = into_pair(
        client
            .post(c.url("/configure"))
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await,
    )
    .await;
    check(code, &body, 415);
    // Malformed bodies.
    let post_raw = |body: &'static str| {
        client
            .post(c.url("/configure"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (code, body) = into_pair(post_raw("{not json").await).await;
    check(code, &body, 400);
    let (code, body) = into_pair(post_raw("{\"spec\": null}").await).await;
    check(code, &body, 400);
    let (code, body) = into_pair(
        post_raw(
            "{\"spec\": {\"format_version\": 1.0, \"cluster\": {\"roles\": [{\"name\": 1}]}}}",
        )
        .await,
    )
    .await;
    check(code, &body, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("spec.cluster.roles[0].name"),
        "{body}"
    );
    // A setting postgres does not know: 400, and the compute is still Empty.
    let bad = with_settings(
        small_spec(),
        json!([{"name": "no_such_setting", "value": "1", "vartype": "integer"}]),
    );
    let (code, body) = c.configure(&bad).await;
    check(code, &body, 400);
    assert!(body["error"].as_str().unwrap().contains("no_such_setting"));
    assert_eq!(c.get("/status").await.1["status"], "empty");
    // Too large: refused from the Content-Length alone, before the body is read.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", c.http_port))
            .await
            .unwrap();
        let head = format!(
            "POST /configure HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            5 * 1024 * 1024
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = conn.read(&mut buf).await.unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("{\"error\":"), "{answer}");
    }
    let (code, body) = c.post("/terminate?mode=sideways", &json!({})).await;
    check(code, &body, 400);
    assert_eq!(c.get("/status").await.1["status"], "empty");
}

#[tokio::test]
async fn terminate_from_empty_answers_and_exits() {
    let mut c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    let started = Instant::now();
    let (code, body) = c.post("/terminate", &json!({})).await;
    assert_eq!((code, body), (200, json!({"lsn": null})));
    assert_eq!(c.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "terminate from Empty hung"
    );
}

#[tokio::test]
async fn a_second_terminate_during_shutdown_gets_201() {
    let mut c = Compute::start(Some(small_spec()));
    c.wait_status("running", Duration::from_secs(60)).await;
    let empty = json!({});
    let (a, b) = tokio::join!(c.post("/terminate", &empty), async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        c.post("/terminate", &empty).await
    });
    let mut codes = [a.0, b.0];
    codes.sort();
    assert_eq!(codes, [200, 201], "{a:?} {b:?}");
    assert_eq!(a.1["lsn"], b.1["lsn"]);
    assert_eq!(c.wait_exit(Duration::from_secs(20)).code(), Some(0));
}

#[tokio::test]
async fn twenty_reconfigures_are_each_visible_to_the_next_new_connection() {
    let mut c = Compute::start(Some(small_spec()));
    c.wait_running();
    for i in 1..=20 {
        // Not multiples of 1024, which postgres would show in MB.
        let work_mem = format!("{}kB", 4000 + i * 10);
        let s = with_settings(
            small_spec(),
            json!([{"name": "work_mem", "value": work_mem, "vartype": "string"}]),
        );
        let (code, body) = c.configure(&s).await;
        assert_eq!(code, 200, "reconfigure {i}: {body}");
        // A fresh connection, the moment /configure has answered.
        let fresh = c.client("postgres").await;
        let seen: String = fresh.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
        assert_eq!(seen, work_mem, "reconfigure {i} not visible");
    }
}

#[tokio::test]
async fn a_reconfigure_changes_a_setting_and_adds_a_role_together() {
    let mut c = Compute::start(Some(small_spec()));
    c.wait_running();
    let mut s = with_settings(
        small_spec(),
        json!([
            {"name": "statement_timeout", "value": "1234", "vartype": "integer"},
            {"name": "shared_buffers", "value": "64MB", "vartype": "string"}
        ]),
    );
    s["cluster"]["roles"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "new role", "encrypted_password": null}));
    let (code, body) = c.configure(&s).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["pending_restart"], json!(["shared_buffers"]));
    assert_eq!(
        c.get("/status").await.1["pending_restart"],
        json!(["shared_buffers"])
    );
    let fresh = c.client("postgres").await;
    let timeout: String = fresh
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(timeout, "1234ms");
    let n: i64 = fresh
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = 'new role'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_failed_reconfigure_keeps_serving_and_a_good_one_recovers() {
    let mut c = Compute::start(Some(small_spec()));
    c.wait_running();
    let client = c.client("db1").await;
    client
        .batch_execute("CREATE TABLE keep (v int); INSERT INTO keep VALUES (42)")
        .await
        .unwrap();
    // A database owned by a role that does not exist: the catalog apply fails.
    let bad = spec(json!([]), json!([{"name": "db2", "owner": "ghost"}]));
    let (code, body) = c.configure(&bad).await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("compute configuration failed: "),
        "{body}"
    );
    let status = c.get("/status").await.1;
    assert_eq!(status["status"], "failed");
    assert!(
        status["error"].as_str().unwrap().contains("ghost"),
        "{status}"
    );
    // Postgres still serves its data.
    let v: i32 = client
        .query_one("SELECT v FROM keep", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 42);
    // An invalid value is rejected by postgres at reload: also a failure that keeps serving.
    let rejected = with_settings(
        small_spec(),
        json!([{"name": "work_mem", "value": "banana", "vartype": "string"}]),
    );
    let (code, body) = c.configure(&rejected).await;
    assert_eq!(code, 500);
    assert!(
        body["error"].as_str().unwrap().contains("work_mem"),
        "{body}"
    );
    // A line postgres cannot parse fails at once, not after a reload timeout.
    let mut unparsable = small_spec();
    unparsable["cluster"]["postgresql_conf"] = json!("this is = not = valid\n");
    let t = Instant::now();
    let (code, body) = c.configure(&unparsable).await;
    assert_eq!(code, 500);
    assert!(
        body["error"].as_str().unwrap().contains("cannot parse"),
        "{body}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    // A good spec recovers.
    let (code, body) = c.configure(&small_spec()).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("running")),
        "{body}"
    );
    assert_eq!(c.get("/status").await.1["error"], Value::Null);
    let fresh = c.client("postgres").await;
    let wm: String = fresh.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
    assert_eq!(wm, "4MB");
}

#[tokio::test]
async fn a_failed_start_keeps_its_error_in_status_until_exit() {
    let mut c = Compute::start_with(Opts {
        failure_exit_delay: 30,
        ..Opts::default()
    });
    c.wait_status("empty", Duration::from_secs(10)).await;
    let bad = spec(json!([]), json!([{"name": "db2", "owner": "ghost"}]));
    let (code, body) = c.configure(&bad).await;
    assert_eq!(code, 500, "{body}");
    let status = c.wait_status("failed", Duration::from_secs(5)).await;
    assert!(status["error"].as_str().unwrap().contains("ghost"));
    // Still there a moment later; a good spec then starts it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.get("/status").await.1["status"], "failed");
    let (code, body) = c.configure(&small_spec()).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("running")),
        "{body}"
    );
    c.signal(15);
    assert_eq!(c.wait_exit(Duration::from_secs(20)).code(), Some(0));
}

#[tokio::test]
async fn status_answers_at_once_during_startup_and_a_long_apply() {
    // 400 roles and 20 databases make the start and the apply take a while.
    let roles: Vec<Value> = (0..400)
        .map(|i| json!({"name": format!("r{i}"), "encrypted_password": null}))
        .collect();
    let dbs: Vec<Value> = (0..20)
        .map(|i| json!({"name": format!("d{i}"), "owner": format!("r{i}")}))
        .collect();
    let big = spec(json!(roles), json!(dbs));
    let c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    let configure = c.configure(&big);
    tokio::pin!(configure);
    let mut seen = std::collections::BTreeSet::new();
    let mut slowest = Duration::ZERO;
    let mut refused_while_busy = None;
    let mut answered_during_apply = 0;
    let result = loop {
        tokio::select! {
            r = &mut configure => break r,
            () = tokio::time::sleep(Duration::from_millis(5)) => {
                let t = Instant::now();
                let (code, body) = c.get("/status").await;
                slowest = slowest.max(t.elapsed());
                assert_eq!(code, 200);
                let status = body["status"].as_str().unwrap().to_string();
                if status == "configuration" {
                    answered_during_apply += 1;
                }
                if status == "configuration" && refused_while_busy.is_none() {
                    // A second spec while the first is applied: 412 naming the state.
                    refused_while_busy = Some(c.configure(&small_spec()).await);
                }
                seen.insert(status);
            }
        }
    };
    let (code, body) = refused_while_busy.expect("saw the configuration state");
    assert_eq!(code, 412, "{body}");
    assert_eq!(body["error"], "invalid compute status: configuration");
    assert_eq!(result.0, 200, "{}", result.1);
    assert!(
        seen.contains("configuration"),
        "never saw the long step: {seen:?}"
    );
    // /status reads a snapshot and never waits on the apply: several answers
    // arrive during one apply. (How fast they are is the http bench's to
    // measure; on a loaded 2-core machine one can take over 500 ms.)
    assert!(
        answered_during_apply >= 2,
        "only {answered_during_apply} /status answer(s) during the apply; slowest {slowest:?}"
    );
    eprintln!("{answered_during_apply} /status answers during the apply, slowest {slowest:?}");
}

#[tokio::test]
async fn the_monitor_records_non_superuser_activity() {
    let md5 = postgres_protocol::password::md5(b"pw", "bob");
    let s = with_settings(
        spec(
            json!([{"name": "bob", "encrypted_password": md5.strip_prefix("md5").unwrap()}]),
            json!([{"name": "db1", "owner": "bob"}]),
        ),
        // An autovacuum worker counts as activity: keep them out of this test.
        json!([{"name": "autovacuum", "value": "off", "vartype": "bool"}]),
    );
    let mut c = Compute::start(Some(s));
    c.wait_running();
    let first = c.get("/status").await.1["last_active"]
        .as_str()
        .unwrap()
        .to_string();
    // A superuser's activity does not count.
    let su = c.client("postgres").await;
    su.batch_execute("SELECT pg_sleep(1.2)").await.unwrap();
    assert_eq!(
        c.get("/status").await.1["last_active"].as_str().unwrap(),
        first
    );
    // A user's does.
    let bob = connect(&format!("{} password=pw", c.connstr("bob", "db1")))
        .await
        .unwrap();
    bob.batch_execute("SELECT pg_sleep(1.2)").await.unwrap();
    let later = c.get("/status").await.1["last_active"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(later > first, "{later} <= {first}");
}

mod jwt {
    use super::*;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn b64url(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn keypair() -> (EncodingKey, Value) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1",
                         "x": b64url(pair.public_key().as_ref())});
        (EncodingKey::from_ed_der(pkcs8.as_ref()), jwk)
    }

    fn token(key: &EncodingKey, claims: Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        encode(&header, &claims, key).unwrap()
    }

    #[tokio::test]
    async fn jwt_is_enforced_on_external_routes_except_metrics() {
        let (key, jwk) = keypair();
        let (other, _) = keypair();
        let mut c = Compute::start_with(Opts {
            config: Some(json!({"spec": null, "compute_ctl_config": {"jwks": {"keys": [jwk]}}})),
            extra_args: vec!["--compute-id".into(), "compute-1".into()],
            ..Opts::default()
        });
        c.wait_for_log("HTTP API listening", Duration::from_secs(10));
        let exp = chrono::Utc::now().timestamp() + 300;
        let get = |auth: Option<String>| {
            let mut req = http().get(c.url("/status"));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            async move { into_pair(req.send().await).await }
        };
        assert_eq!(get(None).await.0, 400);
        assert_eq!(get(Some("Basic Zm9vOmJhcg==".into())).await.0, 400);
        assert_eq!(get(Some("Bearer not.a.jwt".into())).await.0, 400);
        let forged = token(&other, json!({"compute_id": "compute-1", "exp": exp}));
        assert_eq!(get(Some(format!("Bearer {forged}"))).await.0, 401);
        let expired = token(&key, json!({"compute_id": "compute-1", "exp": exp - 3600}));
        assert_eq!(get(Some(format!("Bearer {expired}"))).await.0, 401);
        let wrong = token(&key, json!({"compute_id": "compute-2", "exp": exp}));
        let (code, body) = get(Some(format!("Bearer {wrong}"))).await;
        assert_eq!(code, 403, "{body}");
        let good = token(&key, json!({"compute_id": "compute-1", "exp": exp}));
        let (code, body) = get(Some(format!("Bearer {good}"))).await;
        assert_eq!((code, body["status"].as_str()), (200, Some("empty")));
        let admin = token(
            &key,
            json!({"scope": "compute_ctl:admin", "aud": ["compute"], "exp": exp}),
        );
        assert_eq!(get(Some(format!("Bearer {admin}"))).await.0, 200);
        // /metrics is open; the internal port does not serve /status.
        assert_eq!(
            into_pair(http().get(c.url("/metrics")).send().await)
                .await
                .0,
            200
        );
        assert_eq!(
            into_pair(http().get(c.internal_url("/status")).send().await)
                .await
                .0,
            404
        );
        // The token never reaches the log.
        let signature = good.rsplit('.').next().unwrap();
        assert!(!c.log().contains(signature));
    }

    #[tokio::test]
    async fn keys_configured_by_a_configure_guard_the_external_port() {
        let (key, jwk) = keypair();
        let c = Compute::start(None);
        c.wait_status("empty", Duration::from_secs(10)).await;
        assert_eq!(c.get("/status").await.0, 200, "open without keys");
        let body = json!({"spec": small_spec(), "compute_ctl_config": {"jwks": {"keys": [jwk]}}});
        let (code, answer) =
            into_pair(http().post(c.url("/configure")).json(&body).send().await).await;
        assert_eq!(code, 200, "{answer}");
        assert_eq!(
            c.get("/status").await.0,
            400,
            "the external port now wants a token"
        );
        let admin = token(
            &key,
            json!({"scope": "compute_ctl:admin", "aud": "compute"}),
        );
        let (code, _) =
            into_pair(http().get(c.url("/status")).bearer_auth(admin).send().await).await;
        assert_eq!(code, 200);
        // A later config without keys does not open the external port again.
        let body = json!({"spec": small_spec(), "compute_ctl_config": {}});
        let (code, answer) = into_pair(
            http()
                .post(c.url("/configure"))
                .bearer_auth(token(
                    &key,
                    json!({"scope": "compute_ctl:admin", "aud": "compute"}),
                ))
                .json(&body)
                .send()
                .await,
        )
        .await;
        assert_eq!(code, 200, "{answer}");
        assert_eq!(c.get("/status").await.0, 400);
    }
}

#[tokio::test]
async fn a_client_leaving_a_schema_dump_leaves_no_pg_dump_behind() {
    let mut c = Compute::start(Some(small_spec()));
    c.wait_running();
    let client = c.client("db1").await;
    // A schema much larger than a pipe buffer.
    let ddl: String = (0..400)
        .map(|i| {
            format!("CREATE TABLE public.t{i} (id int PRIMARY KEY, a text, b text, c timestamptz);")
        })
        .collect();
    client.batch_execute(&ddl).await.unwrap();
    {
        let mut resp = http()
            .get(c.url("/database_schema?database=db1"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let first = resp.chunk().await.unwrap().unwrap();
        assert!(!first.is_empty());
        // Dropped here, mid-stream.
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dumps = processes_mentioning(std::path::Path::new("--schema-only"));
        if dumps.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pg_dump still running: {dumps:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And a whole dump still works.
    let (code, body) = c.get("/database_schema?database=db1").await;
    assert_eq!(code, 200);
    assert!(body.as_str().unwrap().contains("CREATE TABLE public.t399"));
}

#[tokio::test]
async fn a_postgres_that_stops_answering_counts_as_downtime() {
    let mut c = Compute::start(Some(small_spec()));
    c.wait_running();
    let downtime = |text: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix("compute_pg_downtime_ms_total "))
            .and_then(|v| v.parse().ok())
            .expect("the downtime metric")
    };
    let (_, body) = c.get("/metrics").await;
    assert_eq!(downtime(body.as_str().unwrap()), 0.0);
    // Freeze the postmaster (no new connections) and end compute_ctl's
    // sessions, the monitor's among them (whichever query it ran last).
    let su = c.client("postgres").await;
    let postmaster = c.postmaster_pid().unwrap();
    unsafe_kill(postmaster, 19); // SIGSTOP
    su.batch_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'compute_ctl' AND pid <> pg_backend_pid()",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    unsafe_kill(postmaster, 18); // SIGCONT
    let (_, body) = c.get("/metrics").await;
    let ms = downtime(body.as_str().unwrap());
    assert!(ms >= 1000.0, "downtime {ms} ms");
}
