//! Operation benchmarks against a real compute: the `POST /restart` round
//! trip (fast stop, start on the same PGDATA, catalog check, Running) on a
//! small database.
//!
//! Run: `cargo bench --bench operate` (RESTARTS=N to change).

mod common;
use common::*;

use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

#[tokio::main]
async fn main() {
    install_crypto();
    let dir = tempfile::Builder::new()
        .prefix("cc-bench-operate-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let c = Compute::start(dir.path()).await;
    let base = c.base.clone();
    let client = reqwest::Client::new();
    c.configure(&json!({
        "format_version": 1.0,
        "cluster": {
            "roles": [{"name": "bob", "encrypted_password": null}],
            "databases": [{"name": "db1", "owner": "bob"}],
            "settings": []
        }
    }))
    .await;

    let n = env_or("RESTARTS", 10);
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let resp = client.post(format!("{base}/restart")).send().await.unwrap();
        let status = resp.status();
        let _ = resp.bytes().await;
        times.push(t.elapsed());
        assert_eq!(status, 200);
    }
    times.sort();
    println!("/restart round trip, small database ({n} runs; shared machine, noisy):");
    println!(
        "  median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.9).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}
