//! HTTP benchmarks against a real compute:
//! - `/configure` round trip for a settings-only change (the answer comes
//!   once the reload is visible to new connections); target < 50 ms median;
//! - `/status` throughput under load from 32 keep-alive connections
//!   (requests/s and p99 latency), with the compute Running.
//!
//! Run: `cargo bench --bench http` (CONFIGURES=N, LOAD_SECS=N to change).

mod common;
use common::*;

use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn spec(work_mem_kb: usize) -> serde_json::Value {
    json!({
        "format_version": 1.0,
        "cluster": {
            "roles": [{"name": "bob", "encrypted_password": null}],
            "databases": [{"name": "db1", "owner": "bob"}],
            "settings": [{"name": "work_mem", "value": format!("{work_mem_kb}kB"), "vartype": "string"}]
        }
    })
}

#[tokio::main]
async fn main() {
    install_crypto();
    let dir = tempfile::Builder::new()
        .prefix("cc-bench-http-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let c = Compute::start(dir.path()).await;
    let base = c.base.clone();
    let client = reqwest::Client::new();
    c.configure(&spec(4000)).await;

    // Settings-only reconfigures.
    let n = env_or("CONFIGURES", 50);
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"spec": spec(4001 + i % 900)});
        let t = Instant::now();
        let resp = client
            .post(format!("{base}/configure"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let _ = resp.bytes().await;
        times.push(t.elapsed());
        assert_eq!(status, 200);
    }
    times.sort();
    println!("/configure round trip, settings-only change ({n} runs):");
    println!(
        "  median {:.1} ms, p90 {:.1} ms, max {:.1} ms   (target: median < 50 ms)",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.9).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );

    // /status under load.
    let secs = env_or("LOAD_SECS", 5) as u64;
    let connections = 32;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let url = format!("{base}/status");
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let resp = client.get(&url).send().await.unwrap();
                assert_eq!(resp.status(), 200);
                let _ = resp.bytes().await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    println!("/status under load ({connections} keep-alive connections, {secs} s, client on the same 2 cores):");
    println!(
        "  {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms",
        all.len() as f64 / secs as f64,
        percentile(&all, 0.5).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3
    );

    c.stop().await;
}
