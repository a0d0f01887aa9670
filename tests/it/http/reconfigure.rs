//! Reconfigurations over HTTP: each visible to the next connection, several
//! changes at once, a failed one that keeps serving, a failed start's error.

use super::*;

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
    // A database owned by a role that does not exist: the planner refuses
    // it before anything is written, and the compute keeps running.
    let refused = spec(json!([]), json!([{"name": "db2", "owner": "ghost"}]));
    let (code, body) = c.configure(&refused).await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("ghost"), "{body}");
    assert_eq!(c.get("/status").await.1["status"], "running");
    // A locale postgres does not have: the catalog apply itself fails.
    let bad = spec(
        json!([]),
        json!([{"name": "db2", "owner": "cloud_admin", "options": [
            {"name": "lc_collate", "value": "ghost_GHOST.UTF-8", "vartype": "string"},
            {"name": "template", "value": "template0", "vartype": "string"}
        ]}]),
    );
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
        status["error"].as_str().unwrap().contains("ghost_GHOST"),
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
    // Still there a moment later (the sleep is the test: it does not exit
    // or forget the error by itself); a good spec then starts it.
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

/// A settings-only reconfigure is not planned before it is accepted (its
/// catalog part is what the running compute was reconciled to), only
/// checked after its reload; that check still sees the catalog as it is,
/// so a spec role dropped by hand comes back. A spec that changes the
/// catalog is planned twice: before it is accepted, and after the reload.
#[tokio::test]
async fn a_settings_only_reconfigure_is_planned_once_after_its_reload() {
    let mut c = Compute::start(Some(small_spec()));
    c.wait_running();
    let plans = |c: &Compute| {
        c.log()
            .matches("planning the catalog reconciliation")
            .count()
    };
    let before = plans(&c);
    let settings = |s: Value| {
        with_settings(
            s,
            json!([{"name": "work_mem", "value": "4321kB", "vartype": "string"}]),
        )
    };
    // Bob owns db1: it is given away first, so bob can be dropped by hand.
    let admin = c.client("postgres").await;
    admin
        .batch_execute("ALTER DATABASE db1 OWNER TO cloud_admin; DROP ROLE bob")
        .await
        .unwrap();
    let (code, body) = c.configure(&settings(small_spec())).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(plans(&c) - before, 1, "{}", c.log());
    let bob: i64 = admin
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname = 'bob'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bob, 1, "the catalog check after the reload put bob back");

    let mut more = settings(small_spec());
    more["cluster"]["roles"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "carol", "encrypted_password": null}));
    let before = plans(&c);
    let (code, body) = c.configure(&more).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(plans(&c) - before, 2, "{}", c.log());
}

/// A settings-only reconfiguration confirms its reload on the idle session
/// the previous one kept (no backend is forked for it), and what it confirms
/// is what a new connection sees; a kept session ended from outside is
/// replaced by a new backend, and one whose catalog step sent DDL is closed.
#[tokio::test]
async fn a_settings_only_reconfigure_confirms_its_reload_on_the_kept_session() {
    let mut c = Compute::start(Some(small_spec()));
    c.wait_running();
    // The `n`th reconfiguration's `confirmed_on` (its line may reach the
    // log a moment after the answer).
    let confirmed_on = |c: &Compute, n: usize| -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = c.log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("compute reconfigured"))
                .collect();
            if let Some(line) = lines.get(n - 1) {
                let at = line.find("confirmed_on=").expect("confirmed_on logged")
                    + "confirmed_on=".len();
                return line[at..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no reconfiguration {n} logged:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let with_work_mem = |s: Value, kb: u32| {
        with_settings(
            s,
            json!([{"name": "work_mem", "value": format!("{kb}kB"), "vartype": "string"}]),
        )
    };
    let admin = c.client("postgres").await;
    let expect = |kb: u32| format!("{kb}kB");
    for (n, kb, on) in [(1, 4001, "new_backend"), (2, 4002, "kept_session")] {
        let (code, body) = c.configure(&with_work_mem(small_spec(), kb)).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(confirmed_on(&c, n), on, "work_mem {kb}");
        let fresh = c.client("postgres").await;
        let seen: String = fresh.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
        assert_eq!(seen, expect(kb));
    }
    // compute_ctl's sessions ended from outside: the kept one among them.
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'compute_ctl' AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
    let (code, body) = c.configure(&with_work_mem(small_spec(), 4003)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(confirmed_on(&c, 3), "new_backend");
    let fresh = c.client("postgres").await;
    let seen: String = fresh.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
    assert_eq!(seen, expect(4003));
    // A role added: the session that confirmed the reload is closed before
    // the DDL, so the next reconfiguration forks a backend again.
    let mut more = with_work_mem(small_spec(), 4004);
    more["cluster"]["roles"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "carol", "encrypted_password": null}));
    let (code, body) = c.configure(&more).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(confirmed_on(&c, 4), "kept_session");
    let (code, body) = c.configure(&with_work_mem(more.clone(), 4005)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(confirmed_on(&c, 5), "new_backend");
}
