//! The HTTP API against real computes over real HTTP: every route, errors,
//! `/terminate`. The other areas' tests are in the submodules.

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

mod admission;
pub(crate) mod jwt;
mod monitor;
mod reconfigure;
mod slow_clients;
mod stalls;

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
    let status_view = body.as_str().unwrap();
    assert!(status_view.ends_with("class Running current\n"));
    assert!(status_view.contains("    Empty --> TerminationPending : Requested termination\n"));
    assert!(!status_view.contains("Reconfiguration"));
    let (code, body) = c.get("/diagram?view=types").await;
    assert_eq!(code, 200);
    let type_view = body.as_str().unwrap();
    assert!(type_view.contains("    Empty --> Terminating : Requested termination\n"));
    assert!(type_view.ends_with("class Running current\n"));
    let (code, body) = c.get("/diagram?view=colours").await;
    assert_eq!(code, 400, "{body}");

    // Internal port: extensions and grants; not on the external port.
    let ext = json!({"extension": "hstore", "database": "db1", "version": "1.8"});
    let (code, _) = c.post("/extensions", &ext).await;
    assert_eq!(code, 404);
    let (code, body) = c.internal_post("/extensions", &ext).await;
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
    let (code, body) = c.internal_post("/grants", &grant).await;
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
    let (code, _) = c.internal_post("/grants", &bad).await;
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
    // The window of the second is the shutdown and the linger after it (the
    // harness's default linger is 0, which ended the race with a small
    // database's fast stop before the second request, now and then).
    let mut c = Compute::start_with(Opts {
        spec: Some(small_spec()),
        terminate_linger: Some("5".into()),
        ..Opts::default()
    });
    c.wait_status("running", Duration::from_secs(60)).await;
    let empty = json!({});
    let (a, b) = tokio::join!(c.post("/terminate", &empty), async {
        // The second once the first has started the shutdown.
        crate::wait::until(
            "the shutdown to start",
            Duration::from_secs(60),
            async || c.get("/status").await.1["status"] != "running",
        )
        .await;
        c.post("/terminate", &empty).await
    });
    let mut codes = [a.0, b.0];
    codes.sort();
    assert_eq!(codes, [200, 201], "{a:?} {b:?}");
    assert_eq!(a.1["lsn"], b.1["lsn"]);
    assert_eq!(c.wait_exit(Duration::from_secs(20)).code(), Some(0));
}

/// A spec given at launch is checked for this postgres as the start begins
/// (a spec over the API is when it is accepted): a setting postgres does
/// not know fails the start, named.
#[tokio::test]
async fn a_launch_spec_with_an_unknown_setting_fails_naming_it() {
    let bad = with_settings(
        small_spec(),
        json!([{"name": "no_such_setting", "value": "1", "vartype": "integer"}]),
    );
    let mut c = Compute::start_with(Opts {
        spec: Some(bad),
        failure_exit_delay: 30,
        ..Opts::default()
    });
    let status = c.wait_status("failed", Duration::from_secs(60)).await;
    let error = status["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("cluster.settings[0].name") && error.contains("no_such_setting"),
        "{status}"
    );
    c.terminate();
}
