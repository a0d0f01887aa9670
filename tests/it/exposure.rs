//! What the external port answers a caller on another host: a network
//! namespace of the test's own, joined to this host by a veth pair whose ends
//! have addresses from the benchmarking range (198.18.0.0/15, RFC 2544), so
//! nothing but the two ends ever talks. The namespace calls the compute's
//! external port on the host end's address, as a stranger on the network
//! would. Without keys the authenticated routes are 401 to it (and stay open
//! to loopback); with keys a valid token is let through.

use crate::common::*;
use crate::http::jwt::{keypair, token};
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

/// A network namespace with one veth pair to the host, removed on drop
/// (even when the test fails).
struct Namespace {
    name: String,
    host_if: String,
    /// The host end's address (what the namespace calls).
    host: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Namespace {
    /// A fresh namespace; its /30 in 198.18.0.0/15 is picked from the pid and
    /// a counter, so parallel tests and runs do not collide.
    fn new() -> Namespace {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let slot = (std::process::id().wrapping_mul(16).wrapping_add(n)) % (1 << 15);
        let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + slot * 4;
        let tag = format!("{}x{n}", std::process::id() % 100_000);
        let ns = Namespace {
            name: format!("cctl-{tag}"),
            host_if: format!("cch{tag}"),
            host: Ipv4Addr::from(base + 1),
        };
        let inside = Ipv4Addr::from(base + 2);
        let guest_if = format!("ccn{tag}");
        let (host_cidr, guest_cidr) = (format!("{}/30", ns.host), format!("{inside}/30"));
        let name = ns.name.as_str();
        let steps: [&[&str]; 7] = [
            &["netns", "add", name],
            &[
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &guest_if,
                "netns",
                name,
            ],
            &["addr", "add", &host_cidr, "dev", &ns.host_if],
            &["link", "set", &ns.host_if, "up"],
            &["-n", name, "addr", "add", &guest_cidr, "dev", &guest_if],
            &["-n", name, "link", "set", &guest_if, "up"],
            &["-n", name, "link", "set", "lo", "up"],
        ];
        for step in steps {
            // On failure `ns` is dropped here: what was made is removed.
            if let Err(e) = ip(step) {
                panic!("setting up the namespace: {e}");
            }
        }
        ns
    }

    /// `curl` run inside the namespace: (status, body as JSON or text).
    fn curl(&self, method: &str, port: u16, path: &str, extra: &[&str]) -> (u16, Value) {
        let url = format!("http://{}:{port}{path}", self.host);
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "curl", "-sS", "-m", "20"])
            .args(["-X", method, "-w", "\n%{http_code}"])
            .args(extra)
            .arg(&url)
            .output()
            .expect("running curl in the namespace");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        let code: u16 = code.trim().parse().unwrap_or_else(|_| {
            panic!(
                "curl {method} {url}: {}{text}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let body = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
        (code, body)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting one end deletes the pair; then the namespace.
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// The tools the test needs: root (namespaces), `ip` and `curl`.
fn can_run() -> bool {
    let have = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    crate::needs::root("a network namespace")
        && crate::needs::needs(have("ip") && have("curl"), "ip and curl are needed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_a_caller_on_another_host_gets_401_and_loopback_is_served() {
    if !can_run() {
        return;
    }
    let ns = Namespace::new();
    let c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    let port = c.http_port;

    // The stranger: every authenticated route is 401, saying how to configure keys.
    let configure = json!({"spec": spec(json!([]), json!([])),
                           "compute_ctl_config": {"jwks": {"keys": []}}})
    .to_string();
    for (method, path, body) in [
        ("GET", "/status", None),
        ("GET", "/info", None),
        ("GET", "/dbs_and_roles", None),
        ("POST", "/configure", Some(configure.as_str())),
        ("POST", "/terminate", None),
    ] {
        let mut extra = vec![];
        if let Some(body) = body {
            extra = vec!["-H", "content-type: application/json", "--data", body];
        }
        let (code, answer) = ns.curl(method, port, path, &extra);
        assert_eq!(code, 401, "{method} {path} from another host: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains("compute_ctl_config.jwks"), "{error}");
    }
    // A token does not help while there are no keys to check it against.
    let (key, _) = keypair();
    let bearer = format!(
        "authorization: Bearer {}",
        token(&key, json!({"compute_id": "x"}))
    );
    assert_eq!(ns.curl("GET", port, "/status", &["-H", &bearer]).0, 401);
    // The probes and /metrics stay open to it.
    for path in ["/healthz", "/startupz", "/metrics"] {
        let (code, answer) = ns.curl("GET", port, path, &[]);
        assert!(code == 200 || code == 503, "{path}: {code} {answer}");
        assert!(
            !answer.to_string().contains("jwks"),
            "{path} is not authenticated: {answer}"
        );
    }
    // Nothing it sent reached the driver: still empty, as loopback sees it.
    let (code, body) = c.get("/status").await;
    assert_eq!((code, body["status"].as_str()), (200, Some("empty")));
    c.assert_logged("answers its authenticated routes only to callers on loopback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keys_a_caller_on_another_host_needs_a_valid_token() {
    if !can_run() {
        return;
    }
    let ns = Namespace::new();
    let (key, jwk) = keypair();
    let c = Compute::start_with(Opts {
        config: Some(json!({"spec": null, "compute_ctl_config": {"jwks": {"keys": [jwk]}}})),
        extra_args: vec!["--compute-id".into(), "compute-1".into()],
        ..Opts::default()
    });
    crate::wait::until("the API", Duration::from_secs(10), async || {
        http().get(c.url("/healthz")).send().await.is_ok()
    })
    .await;
    let port = c.http_port;
    assert_eq!(ns.curl("GET", port, "/status", &[]).0, 400, "no header");
    let bad = "authorization: Bearer not.a.jwt";
    assert_eq!(ns.curl("GET", port, "/status", &["-H", bad]).0, 401);
    let good = format!(
        "authorization: Bearer {}",
        token(&key, json!({"compute_id": "compute-1"}))
    );
    let (code, body) = ns.curl("GET", port, "/status", &["-H", &good]);
    assert_eq!((code, body["status"].as_str()), (200, Some("empty")));
    // With keys, loopback needs a token as well.
    assert_eq!(c.get("/status").await.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_example_key_guards_the_compose_compute_and_mint_token_signs_for_it() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let text = std::fs::read_to_string(deploy.join("compose/config.json")).unwrap();
    let config: Value = serde_json::from_str(&text).unwrap();
    assert!(!config["compute_ctl_config"]["jwks"]["keys"][0].is_null());
    // The Kubernetes Secret trusts the same example key.
    let x = config["compute_ctl_config"]["jwks"]["keys"][0]["x"]
        .as_str()
        .unwrap();
    let secret = std::fs::read_to_string(deploy.join("kubernetes/secret.yaml")).unwrap();
    assert!(
        secret.contains(x),
        "the Secret's JWKS is not the example key"
    );
    let c = Compute::start_with(Opts {
        config: Some(config),
        ..Opts::default()
    });
    crate::wait::until("the API", Duration::from_secs(10), async || {
        http().get(c.url("/healthz")).send().await.is_ok()
    })
    .await;
    assert_eq!(c.get("/status").await.0, 400, "keys: a token is needed");
    let out = Command::new(deploy.join("mint-token.sh"))
        .output()
        .expect("running deploy/mint-token.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let resp = http()
        .get(c.url("/status"))
        .bearer_auth(token.trim())
        .send()
        .await;
    let (code, body) = into_pair(resp).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("empty")),
        "{body}"
    );
}
