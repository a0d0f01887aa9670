//! A local compute's apply that creates databases in bulk runs with `fsync`
//! lifted (its PGDATA does not outlive the compute: see `driver::bulk`) and
//! puts it back after, failed or not; a spec that sets `fsync` itself keeps
//! it, and one creation is not worth the two reloads.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// What postmaster logs when a reload changes `fsync`, as it lifts it and
/// as it puts it back.
const LIFTED: &str = "parameter \"fsync\" changed to \"off\"";
const PUT_BACK: &str = "parameter \"fsync\" removed from configuration file, reset to default";

/// The index of the first line of `log` that contains `needle`, after line
/// `from`.
fn line_of(log: &[&str], needle: &str, from: usize) -> Option<usize> {
    log.iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i)
}

/// The indexes of the lines of `log` that log a `CREATE DATABASE`.
fn creations(log: &[&str]) -> Vec<usize> {
    (0..log.len())
        .filter(|&i| log[i].contains("statement: CREATE DATABASE "))
        .collect()
}

/// A spec of two roles and `databases`, logging its DDL, with `settings`.
fn spec_with(databases: Value, settings: Value) -> Value {
    let mut s = spec(
        json!([{"name": "alice", "encrypted_password": null},
               {"name": "bob", "encrypted_password": null}]),
        databases,
    );
    let mut all = vec![json!({"name": "log_statement", "value": "ddl", "vartype": "enum"})];
    all.extend(settings.as_array().cloned().unwrap_or_default());
    s["cluster"]["settings"] = Value::Array(all);
    s
}

/// Waits until `c`'s log holds `needle` `times` times (postgres' lines are
/// forwarded as they come); panics with the log after 10 s.
fn wait_logged(c: &Compute, needle: &str, times: usize) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = c.log();
        if text.matches(needle).count() >= times {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} not logged {times} times:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `SHOW fsync` on `c`.
async fn fsync_of(c: &Compute) -> String {
    c.client("postgres")
        .await
        .query_one("SHOW fsync", &[])
        .await
        .unwrap()
        .get(0)
}

/// The override file postgres includes last (empty unless something is lifted).
fn override_of(c: &Compute) -> String {
    std::fs::read_to_string(c.pgdata().join("compute_ctl_temp_override.conf")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_creation_lifts_fsync_around_its_apply_at_a_start_and_on_a_running_compute() {
    // "app" takes the template's spare database; three are created.
    let first = spec_with(
        json!([{"name": "app", "owner": "alice"}, {"name": "two", "owner": "bob"},
               {"name": "three", "owner": "alice"}, {"name": "four", "owner": "bob"}]),
        json!([]),
    );
    let mut c = Compute::start_with(Opts {
        spec: Some(first.clone()),
        ..Opts::default()
    });
    c.wait_running();
    let text = wait_logged(&c, PUT_BACK, 1);
    let log: Vec<&str> = text.lines().collect();
    let made = creations(&log);
    assert_eq!(made.len(), 3, "{text}");
    let lifted = line_of(&log, LIFTED, 0).expect("fsync lifted");
    let back = line_of(&log, PUT_BACK, 0).expect("fsync put back");
    assert!(lifted < made[0] && made[2] < back, "{text}");
    assert_eq!(fsync_of(&c).await, "on");
    assert_eq!(override_of(&c), "");

    // Two more on the running compute: lifted again, then back.
    let mut second = first.clone();
    let dbs = second["cluster"]["databases"].as_array_mut().unwrap();
    dbs.push(json!({"name": "five", "owner": "alice"}));
    dbs.push(json!({"name": "six", "owner": "bob"}));
    let (code, body) = c.configure(&second).await;
    assert_eq!(code, 200, "{body}");
    let text = wait_logged(&c, PUT_BACK, 2);
    let log: Vec<&str> = text.lines().collect();
    let made = creations(&log);
    assert_eq!(made.len(), 5, "{text}");
    let lifted = line_of(&log, LIFTED, back + 1).expect("fsync lifted for the reconfigure");
    let back = line_of(&log, PUT_BACK, lifted).expect("and put back");
    assert!(lifted < made[3] && made[4] < back, "{text}");
    assert_eq!(fsync_of(&c).await, "on");
    assert_eq!(override_of(&c), "");

    // One creation is not worth the two reloads.
    let mut third = second.clone();
    let dbs = third["cluster"]["databases"].as_array_mut().unwrap();
    dbs.push(json!({"name": "seven", "owner": "alice"}));
    let (code, body) = c.configure(&third).await;
    assert_eq!(code, 200, "{body}");
    let text = wait_logged(&c, "CREATE DATABASE \"seven\"", 1);
    assert_eq!(text.matches(LIFTED).count(), 2, "{text}");
    // Every database is there and usable, owned as the spec says.
    for (db, owner) in [
        ("two", "bob"),
        ("four", "bob"),
        ("six", "bob"),
        ("seven", "alice"),
    ] {
        assert_eq!(c.db_owner(db).await, owner);
        c.client(db)
            .await
            .batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_bulk_apply_still_puts_fsync_back() {
    let mut c = Compute::start(Some(spec_with(json!([]), json!([]))));
    c.wait_running();
    // The second creation fails: a locale postgres does not have.
    let bad = spec_with(
        json!([{"name": "fine", "owner": "alice"},
               {"name": "ghostly", "owner": "bob", "options": [
                   {"name": "lc_collate", "value": "ghost_GHOST.UTF-8", "vartype": "string"},
                   {"name": "template", "value": "template0", "vartype": "string"}]},
               {"name": "fine too", "owner": "alice"}]),
        json!([]),
    );
    let (code, body) = c.configure(&bad).await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("ghost_GHOST"),
        "{body}"
    );
    let text = wait_logged(&c, PUT_BACK, 1);
    let lifted = text.find(LIFTED).expect("fsync lifted");
    assert!(text[lifted..].contains(PUT_BACK), "{text}");
    assert_eq!(fsync_of(&c).await, "on");
    assert_eq!(override_of(&c), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_that_sets_fsync_keeps_it_through_a_bulk_creation() {
    for value in ["on", "off"] {
        let s = spec_with(
            json!([{"name": "app", "owner": "alice"}, {"name": "two", "owner": "bob"},
                   {"name": "three", "owner": "alice"}]),
            json!([{"name": "fsync", "value": value, "vartype": "bool"}]),
        );
        let mut c = Compute::start(Some(s));
        c.wait_running();
        let text = c.log();
        assert_eq!(
            creations(&text.lines().collect::<Vec<_>>()).len(),
            2,
            "{text}"
        );
        assert!(!text.contains("parameter \"fsync\""), "{text}");
        assert_eq!(fsync_of(&c).await, value);
    }
}
