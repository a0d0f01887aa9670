//! Fuzzing the spec parser and the HTTP body paths (proptest): random JSON,
//! specs with a field replaced by anything, deep nesting, huge strings,
//! invalid UTF-8 and random bytes. The parser never panics; every route that
//! takes a body answers a 4xx with a JSON error, and the compute keeps
//! running.
//!
//! `COMPUTE_CTL_FUZZ_CASES=N` sets the number of cases of each property.

use crate::common::*;
use compute_ctl::testing::http::catalog::{ExtensionRequest, GrantRequest};
use compute_ctl::testing::spec::{ComputeConfig, ValidSpec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

fn cases(default: u32) -> u32 {
    std::env::var("COMPUTE_CTL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runner(default_cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: cases(default_cases),
        failure_persistence: None,
        max_global_rejects: 100_000,
        ..Config::default()
    })
}

/// A valid `/configure` body.
fn base_config() -> Value {
    json!({"spec": {
        "format_version": 1.0,
        "cluster": {
            "roles": [{"name": "fuzz role", "encrypted_password": null,
                       "options": [{"name": "login", "value": "true", "vartype": "bool"}]}],
            "databases": [{"name": "fuzz db", "owner": "fuzz role"}],
            "settings": [{"name": "work_mem", "value": "4MB", "vartype": "string"}]
        },
        "delta_operations": [{"action": "rename_role", "name": "a", "new_name": "b"}]
    }})
}

/// Strings that matter to a parser: hostile names, numbers as text, huge ones.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        2 => prop::sample::select(vec![
            "", "\0", "Primary", "1.0", "md5", "SCRAM-SHA-256$", "pg_x", "cloud_admin",
            "neon_superuser", "postgres", "template0", "'", "\"", "$$", "\u{feff}", "\u{10ffff}",
        ])
        .prop_map(str::to_string),
        1 => prop::sample::select(crate::hostile::names()),
        1 => (64usize..70_000).prop_map(|n| "n".repeat(n)),
    ]
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    let keys = prop_oneof![
        3 => prop::sample::select(vec![
            "spec", "compute_ctl_config", "format_version", "cluster", "roles", "databases",
            "settings", "name", "owner", "options", "value", "vartype", "encrypted_password",
            "delta_operations", "action", "new_name", "mode", "extension", "database",
            "version", "schema", "privileges", "role", "jwks", "keys",
        ])
        .prop_map(str::to_string),
        1 => any::<String>(),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Where in [`base_config`] a value can be replaced.
const POINTERS: &[&str] = &[
    "",
    "/spec",
    "/spec/format_version",
    "/spec/cluster",
    "/spec/cluster/roles",
    "/spec/cluster/roles/0",
    "/spec/cluster/roles/0/name",
    "/spec/cluster/roles/0/encrypted_password",
    "/spec/cluster/roles/0/options",
    "/spec/cluster/roles/0/options/0/value",
    "/spec/cluster/roles/0/options/0/vartype",
    "/spec/cluster/databases/0",
    "/spec/cluster/databases/0/owner",
    "/spec/cluster/settings/0",
    "/spec/cluster/settings/0/name",
    "/spec/delta_operations/0/action",
    "/spec/delta_operations/0/new_name",
];

/// The valid config with one value replaced.
fn mutated_config() -> impl Strategy<Value = Value> {
    (prop::sample::select(POINTERS), json_value()).prop_map(|(pointer, v)| {
        let mut config = base_config();
        match config.pointer_mut(pointer) {
            Some(slot) => *slot = v,
            None => config = v,
        }
        config
    })
}

/// `depth` nested arrays or objects around a value.
fn nested(depth: usize, objects: bool) -> Vec<u8> {
    let (open, close): (&[u8], &[u8]) = if objects {
        (b"{\"spec\":", b"}")
    } else {
        (b"[", b"]")
    };
    let mut body = open.repeat(depth);
    body.extend_from_slice(b"1");
    body.extend_from_slice(&close.repeat(depth));
    body
}

/// A request body: bytes that may not even be UTF-8.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => json_value().prop_map(|v| v.to_string().into_bytes()),
        4 => mutated_config().prop_map(|v| v.to_string().into_bytes()),
        1 => (1usize..100_000, any::<bool>()).prop_map(|(d, o)| nested(d, o)),
        // A role name of every size up to the body limit (4 MiB; past it, see
        // a_body_over_the_limit_is_refused_before_it_is_read).
        1 => prop::sample::select(vec![64usize, 1000, 1 << 20, (4 << 20) - 2000])
            .prop_map(|n| {
                let mut c = base_config();
                c["spec"]["cluster"]["roles"][0]["name"] = json!("r".repeat(n));
                c.to_string().into_bytes()
            }),
        // Invalid UTF-8 somewhere in a valid body.
        2 => (any::<prop::sample::Index>(), prop::sample::select(vec![0xffu8, 0xc3, 0x80, 0xed]))
            .prop_map(|(at, byte)| {
                let mut b = base_config().to_string().into_bytes();
                let i = at.index(b.len());
                b[i] = byte;
                b
            }),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

fn valid_config(body: &[u8]) -> bool {
    std::str::from_utf8(body)
        .ok()
        .and_then(|t| ComputeConfig::from_json(t).ok())
        .is_some_and(|c| c.spec.is_some())
}

#[test]
fn the_spec_parser_never_panics() {
    let strategy = prop_oneof![body(), any::<String>().prop_map(String::into_bytes)];
    runner(1000)
        .run(&strategy, |bytes| {
            let text = String::from_utf8_lossy(&bytes);
            // Errors are fine; a panic fails the property.
            let _ = ValidSpec::from_json(&text);
            let _ = ComputeConfig::from_json(&text);
            Ok(())
        })
        .unwrap();
}

/// The routes that take a JSON body, and whether to skip a body they would
/// accept (a valid request is not what this property is about).
#[derive(Debug, Clone, Copy)]
enum Route {
    Configure,
    Extensions,
    Grants,
}

fn accepts(route: Route, body: &[u8]) -> bool {
    match route {
        Route::Configure => valid_config(body),
        Route::Extensions => serde_json::from_slice::<ExtensionRequest>(body).is_ok(),
        Route::Grants => serde_json::from_slice::<GrantRequest>(body).is_ok(),
    }
}

#[test]
fn every_body_route_answers_4xx_to_garbage_and_the_compute_keeps_running() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut c = Compute::start(Some(spec(json!([]), json!([]))));
    c.wait_running();
    let routes = prop::sample::select(vec![Route::Configure, Route::Extensions, Route::Grants]);
    let statuses = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    let result = runner(150).run(&(routes, body()), |(route, body)| {
        prop_assume!(!accepts(route, &body));
        let url = match route {
            Route::Configure => c.url("/configure"),
            Route::Extensions => c.internal_url("/extensions"),
            Route::Grants => c.internal_url("/grants"),
        };
        let len = body.len();
        let (status, answer) = rt.block_on(async {
            let sent = http()
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send();
            into_pair_checked(sent).await
        });
        *statuses.borrow_mut().entry(status).or_default() += 1;
        prop_assert!(
            (400..500).contains(&status),
            "{route:?} with {len} bytes answered {status}: {answer}"
        );
        prop_assert!(
            answer["error"].is_string(),
            "{route:?}: not a JSON error: {answer}"
        );
        Ok(())
    });
    println!("answers to garbage bodies: {:?}", statuses.borrow());
    if let Err(e) = result {
        panic!("{e}\ncompute_ctl's log:\n{}", c.log());
    }
    let (status, body) = rt.block_on(c.get("/status"));
    assert_eq!((status, body["status"].as_str()), (200, Some("running")));
    assert!(!c.log().contains("panicked"), "{}", c.log());
}

/// Like [`into_pair`], but a request that got no answer (the server hung
/// up) is an answer of 0, which fails the property with the body's size.
async fn into_pair_checked(
    resp: impl std::future::Future<Output = Result<reqwest::Response, reqwest::Error>>,
) -> (u16, Value) {
    match resp.await {
        Ok(r) => into_pair(Ok(r)).await,
        Err(e) => (0, json!(format!("no answer: {e}"))),
    }
}

/// A body past the 4 MiB limit is answered 413 from its Content-Length
/// alone, before it is sent: the server does not read it. (A client that
/// pushes all of it anyway may see the connection closed under it before it
/// reads the answer, so this client sends the headers only.)
#[test]
fn a_body_over_the_limit_is_refused_before_it_is_read() {
    use std::io::{Read, Write};
    let mut c = Compute::start(Some(spec(json!([]), json!([]))));
    c.wait_running();
    for (port, path) in [(c.http_port, "/configure"), (c.internal_port, "/grants")] {
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            5u64 << 30
        );
        sock.write_all(head.as_bytes()).unwrap();
        let mut answer = String::new();
        sock.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("\"error\""), "{path}: {answer}");
    }
    assert!(c.log().contains("to=running") && !c.log().contains("panicked"));
}
