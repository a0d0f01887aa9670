//! What `/status` and `/metrics` say while the compute works: answers during a
//! long apply, activity, downtime; and a schema dump's client going away.

use super::*;

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
    // Dropped at once, mid-stream.
    drop(c.start_schema_dump("db1").await);
    crate::wait::until("the pg_dump to end", Duration::from_secs(30), async || {
        processes_mentioning(std::path::Path::new("--schema-only")).is_empty()
    })
    .await;
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
    send_signal(postmaster, 19); // SIGSTOP
    su.batch_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'compute_ctl' AND pid <> pg_backend_pid()",
    )
    .await
    .unwrap();
    // The outage itself (the test: over a second of it must be counted).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    send_signal(postmaster, 18); // SIGCONT
    let (_, body) = c.get("/metrics").await;
    let ms = downtime(body.as_str().unwrap());
    assert!(ms >= 1000.0, "downtime {ms} ms");
}
