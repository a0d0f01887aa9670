//! The Grafana dashboard (`deploy/grafana/compute_ctl.json`) queries only
//! metrics that exist: every metric it names is in the `/metrics` of a
//! running primary and of its vanilla replica (the replication metrics are
//! on one or the other), and every metric those serve is documented in
//! `docs/metrics.md`.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// Every `expr` (and templating query) of the dashboard.
fn queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

/// The metric names a PromQL expression mentions (ours all begin `compute_`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("compute_") {
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + word.len()..];
        names.insert(word);
    }
    names
}

/// The metric families a `/metrics` text exposes (its `# TYPE` lines).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_dashboard_names_only_metrics_there_are() {
    let path = super::repo_path("deploy/grafana/compute_ctl.json");
    let text = std::fs::read_to_string(&path).expect("deploy/grafana/compute_ctl.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    queries(&dashboard, &mut exprs);
    assert!(
        exprs.len() >= 10,
        "the dashboard has its queries: {exprs:?}"
    );
    let wanted: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(
        wanted.contains("compute_ctl_up"),
        "the dashboard's queries name metrics: {wanted:?}"
    );

    let mut s = spec(json!([]), json!([{"name": "app", "owner": "cloud_admin"}]));
    s["cluster"]["settings"] =
        json!([{"name": "listen_addresses", "value": "127.0.0.1", "vartype": "string"}]);
    let mut primary = Compute::start(Some(s));
    primary.wait_running();
    let mut replica = Compute::start(Some(replica_spec_of(&primary, "dashboard_replica")));
    replica.wait_running();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let served = rt.block_on(async {
        // The replication figures and the extension count arrive a moment
        // after Running (the monitor's first look, the first collection).
        // A standby's replay lag is null while it is idle and caught up:
        // each look writes a row, so the primary has WAL to send.
        let writer = primary.client("app").await;
        writer
            .batch_execute("CREATE TABLE dashboard (n int)")
            .await
            .expect("a table on the primary");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            writer
                .batch_execute("INSERT INTO dashboard VALUES (1)")
                .await
                .expect("a write on the primary");
            let mut served = families(&primary.metrics().await);
            served.extend(families(&replica.metrics().await));
            let missing: Vec<&String> = wanted.difference(&served).collect();
            if missing.is_empty() {
                return served;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the dashboard queries metrics no compute serves: {missing:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let documented: BTreeSet<String> = super::metrics::documented_names().into_iter().collect();
    let undocumented: Vec<&String> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in docs/metrics.md: {undocumented:?}; regenerate with: {}",
        super::UPDATE
    );
    replica.terminate();
    primary.terminate();
}
