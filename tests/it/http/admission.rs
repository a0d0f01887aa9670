//! The route table's `states` column against what the driver does: each
//! route that asks the driver is refused with 412 exactly where the column,
//! rendered from the driver's admission, says it is not taken.

use super::small_spec;
use crate::common::*;
use compute_ctl::testing::http::table::{Ports, States, ROUTES};
use serde_json::{json, Value};
use std::time::Duration;

/// A request that gets past each route's own checks of its input, so that
/// what answers is the admission.
fn input(path: &str) -> (&'static str, Value) {
    match path {
        "promote" => ("", json!({"spec": small_spec(), "wal_flush_lsn": "0/1"})),
        "extensions" => (
            "",
            json!({"extension": "hstore", "database": "postgres", "version": "1.8"}),
        ),
        "grants" => (
            "",
            json!({"database": "postgres", "schema": "public", "privileges": ["USAGE"], "role": "bob"}),
        ),
        "database_schema" => ("?database=postgres", json!({})),
        _ => ("", json!({})),
    }
}

#[tokio::test]
async fn in_empty_a_route_is_refused_where_the_table_says() {
    let mut c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    let mut checked = Vec::new();
    for route in ROUTES {
        let States::Asks(..) = route.states else {
            continue;
        };
        // These take Empty somewhere else: a spec starts it, a termination ends it.
        if matches!(route.path, "configure" | "terminate") {
            continue;
        }
        let states = route.states.describe();
        let taken = states == "any" || states.split(", ").any(|s| s == "empty");
        let (query, body) = input(route.path);
        let path = format!("/{}{query}", route.path);
        let url = match route.ports {
            Ports::External => c.url(&path),
            Ports::Internal => c.internal_url(&path),
        };
        let request = http().request(route.method.clone(), url);
        let request = match route.method.as_str() {
            "POST" if body != json!({}) => request.json(&body),
            _ => request,
        };
        let (code, answer) = into_pair(request.send().await).await;
        if taken {
            assert_ne!(
                code, 412,
                "/{}: the table says {states}: {answer}",
                route.path
            );
        } else {
            assert_eq!(
                (code, answer["error"].as_str()),
                (412, Some("invalid compute status: empty")),
                "/{}: the table says {states}",
                route.path
            );
        }
        checked.push(route.path);
    }
    // Every kind of admission was asked.
    for path in [
        "restart",
        "promote",
        "dbs_and_roles",
        "extensions",
        "healthz",
    ] {
        assert!(checked.contains(&path), "{path} not checked: {checked:?}");
    }
    let (code, body) = c.post("/terminate", &json!({})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.wait_exit(Duration::from_secs(20)).code(), Some(0));
}
