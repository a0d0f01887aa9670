//! What the API must not wait for: a reader of compute_ctl's stderr that
//! fell behind, and a spec's dry run before it is accepted (a liveness probe
//! that waited for either would get a healthy container killed).

use super::*;

/// The tasks that log (the driver applying a spec, the HTTP requests) do not
/// wait for whoever reads stderr: with nobody reading, a spec whose apply
/// logs far more than a pipe holds (2000 roles, a line each) is applied and
/// answered, and every line reaches stderr, in order, once it is read again.
#[tokio::test]
async fn a_stderr_nobody_reads_does_not_stall_the_apply() {
    let mut c = Compute::start(Some(small_spec()));
    c.wait_running();
    c.pause_log_reader(true);
    let mut roles = vec![json!({"name": "bob", "encrypted_password": null})];
    roles
        .extend((0..2000).map(|i| json!({"name": format!("r{i:04}"), "encrypted_password": null})));
    let big = spec(json!(roles), json!([{"name": "db1", "owner": "bob"}]));
    let configured = tokio::time::timeout(Duration::from_secs(120), c.configure(&big)).await;
    let (_, status) = c.get("/status").await;
    c.pause_log_reader(false);
    let (code, body) = configured.expect("/configure answered while stderr was not read");
    assert_eq!(code, 200, "{body}");
    assert_eq!(status["status"], "running");
    let made: i64 = c
        .client("postgres")
        .await
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'r____'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(made, 2000);
    c.wait_for_log("CREATE ROLE \"r1999\"", Duration::from_secs(30));
    let log = c.log();
    let first = log
        .find("CREATE ROLE \"r0000\"")
        .expect("the first role's line");
    let last = log
        .find("CREATE ROLE \"r1999\"")
        .expect("the last role's line");
    assert!(first < last, "the lines kept their order");
}

/// `/healthz` is answered while the driver waits for a spec's dry run: the
/// catalog read of a spec that adds a role waits behind a lock the test
/// holds on `pg_subscription`, and the probe answers 200 meanwhile (it waited for
/// the dry run before, and failed at its one-second deadline). A
/// `/terminate` sent meanwhile is set aside, not lost, and answered as it
/// was when the driver read nothing during the dry run: after the accept,
/// by the state that follows (412 `configuration`).
#[tokio::test]
async fn healthz_is_answered_while_a_spec_is_planned_before_it_is_accepted() {
    let mut c = Compute::start(Some(small_spec()));
    c.wait_running();
    let locker = c.client("postgres").await;
    let waiter = c.client("postgres").await;
    locker
        .batch_execute("BEGIN; LOCK TABLE pg_catalog.pg_subscription IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut more = small_spec();
    more["cluster"]["roles"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "carol", "encrypted_password": null}));
    let probing = async {
        // The dry run's read is waiting on the lock.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let waiting: i64 = waiter
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                     AND query LIKE '%pg_subscription s JOIN%'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "no dry run waiting on the lock");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut probes = Vec::new();
        for _ in 0..3 {
            probes.push(c.get("/healthz").await);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let terminate = tokio::spawn({
            let url = c.url("/terminate");
            async move {
                let resp = reqwest::Client::new().post(url).send().await?;
                let code = resp.status().as_u16();
                resp.text().await.map(|body| (code, body))
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        locker.batch_execute("COMMIT").await.unwrap();
        (probes, terminate)
    };
    let ((code, body), (probes, terminate)) = tokio::join!(c.configure(&more), probing);
    for (probe, answer) in probes {
        assert_eq!(probe, 200, "/healthz during the dry run: {answer}");
    }
    assert_eq!(code, 200, "{body}");
    let (terminated, answer) = terminate.await.unwrap().expect("/terminate answered");
    assert_eq!(terminated, 412, "{answer}");
    assert!(answer.contains("configuration"), "{answer}");
    let carol: i64 = c
        .client("postgres")
        .await
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname = 'carol'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(carol, 1);
}
