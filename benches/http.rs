//! HTTP benchmarks against a real compute:
//! - `/configure` round trip for a settings-only change (the answer comes
//!   once the reload is visible to new connections), with its phases
//!   (write, signal, confirm, catalog check); target <= 10 ms median;
//! - `/status` throughput under load from 32 keep-alive connections
//!   (requests/s and p99 latency), with the compute Running;
//! - `/status`, `/metrics` and the probes during a 1000-role, 50-database
//!   apply: 32 clients, each polling every 20 ms (issue 13's figure; the
//!   `load` test checks the same without timing it, in a debug build).
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
    let dir = bench_dir("cc-bench-http-");
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
        "  median {:.1} ms, p90 {:.1} ms, max {:.1} ms   (target: median <= 10 ms)",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.9).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
    print_reconfigure_phases(&c, n, percentile(&times, 0.5));

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

    during_a_big_apply(&c).await;
    c.stop().await;
}

/// The medians of the phases compute_ctl logs for each reconfiguration
/// ("compute reconfigured": writing the files, the SIGHUP, the new backend
/// that confirms the reload, the catalog check on it), of the last `n`;
/// what the round trip has beyond them is HTTP, the spec's checks and the
/// driver.
fn print_reconfigure_phases(c: &Compute, n: usize, round_trip: Duration) {
    let lines: Vec<String> = c
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("compute reconfigured"))
        .collect();
    let lines = &lines[lines.len().saturating_sub(n)..];
    let field = |line: &str, name: &str| -> Option<f64> {
        let at = line.find(&format!(" {name}="))? + name.len() + 2;
        line[at..].split_whitespace().next()?.parse().ok()
    };
    let median = |name: &str| {
        let mut v: Vec<f64> = lines.iter().filter_map(|l| field(l, name)).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let phases = [
        ("write", median("write_ms")),
        ("signal", median("signal_ms")),
        ("confirm", median("confirm_ms")),
        ("catalog check", median("catalog_ms")),
    ];
    let inside: f64 = phases.iter().map(|(_, v)| v).sum();
    let shown: Vec<String> = phases
        .iter()
        .map(|(name, v)| format!("{name} {v:.2}"))
        .collect();
    println!(
        "  phases (medians, ms): {}; the rest of the round trip (HTTP, the spec's checks, the driver) ~{:.2}",
        shown.join(", "),
        round_trip.as_secs_f64() * 1e3 - inside
    );
}

/// 32 clients, each polling `/status`, `/metrics` and the probes in turn
/// every 20 ms, while 1000 roles and 50 databases are applied: latency per
/// route, and any answer that is not 200 (or `/readyz`'s 503 while
/// configuring).
async fn during_a_big_apply(c: &Compute) {
    const PATHS: [&str; 5] = ["/status", "/metrics", "/healthz", "/readyz", "/startupz"];
    let roles: Vec<_> = (0..1000)
        .map(|i| json!({"name": format!("user {i:04}"), "encrypted_password": null}))
        .collect();
    let dbs: Vec<_> = (0..50)
        .map(|i| json!({"name": format!("db {i:02}"), "owner": format!("user {:04}", i * 20)}))
        .collect();
    let big =
        json!({"spec": {"format_version": 1.0, "cluster": {"roles": roles, "databases": dbs}}});
    let applying = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut clients = Vec::new();
    for n in 0..32 {
        let (applying, base) = (applying.clone(), c.base.clone());
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut seen: Vec<(usize, Duration)> = Vec::new();
            let mut errors = 0usize;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut i = n;
            while applying.load(std::sync::atomic::Ordering::SeqCst) {
                tick.tick().await;
                let route = i % PATHS.len();
                i += 1;
                let t = Instant::now();
                match client.get(format!("{base}{}", PATHS[route])).send().await {
                    Ok(resp) => {
                        let code = resp.status().as_u16();
                        let _ = resp.bytes().await;
                        seen.push((route, t.elapsed()));
                        if code != 200 && !(PATHS[route] == "/readyz" && code == 503) {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            (seen, errors)
        }));
    }
    let t = Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("{}/configure", c.base))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let apply = t.elapsed();
    applying.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut per_route: Vec<Vec<Duration>> = vec![Vec::new(); PATHS.len()];
    let mut errors = 0;
    for client in clients {
        let (seen, e) = client.await.unwrap();
        errors += e;
        seen.into_iter().for_each(|(r, d)| per_route[r].push(d));
    }
    println!(
        "during a 1000-role, 50-database apply ({:.1} s; 32 clients, each every 20 ms; client on the same 2 cores):",
        apply.as_secs_f64()
    );
    for (path, mut lat) in PATHS.iter().zip(per_route) {
        lat.sort();
        println!(
            "  {path:<10} {:>5} requests  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            lat.len(),
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            ms(*lat.last().unwrap_or(&Duration::ZERO))
        );
    }
    println!("  errors: {errors} (target 0); p99 target < 5 ms");
}
