//! A soak: reconfigure cycles on one compute, each changing a setting, a
//! role and a database (one created, the previous dropped), each cycle's
//! catalog checked exactly. compute_ctl's RSS, open file descriptors and
//! threads are printed before and after; descriptors must not leak; no
//! zombie child is left.
//!
//! 20 cycles by default (CI); `COMPUTE_CTL_SOAK_CYCLES=300` for the issue's
//! soak (about 2 minutes on 2 cores).

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Instant;

fn cycles() -> usize {
    std::env::var("COMPUTE_CTL_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// Cycle `i`'s spec: role `soak r<i>` and database `soak db <i>` replace
/// those of cycle `i - 1`; `work_mem` is `1024 + i` kB.
fn cycle_spec(i: usize) -> Value {
    let mut s = spec(
        json!([
            {"name": "soak keep", "encrypted_password": null},
            {"name": format!("soak r{i}"), "encrypted_password": null}
        ]),
        json!([{"name": format!("soak db {i}"), "owner": format!("soak r{i}")}]),
    );
    s["cluster"]["settings"] =
        json!([{"name": "work_mem", "value": format!("{}kB", 1024 + i), "vartype": "string"}]);
    if i > 0 {
        s["delta_operations"] = json!([
            {"action": "delete_db", "name": format!("soak db {}", i - 1)},
            {"action": "delete_role", "name": format!("soak r{}", i - 1)}
        ]);
    }
    s
}

/// (RSS in KiB, open descriptors, threads) of a process.
fn usage(pid: u32) -> (u64, usize, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (field("VmRSS:"), fds, field("Threads:"))
}

/// Children of `pid` in state Z.
fn zombies(pid: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let mut f = rest.split_whitespace();
            f.next() == Some("Z") && f.next() == Some(&pid.to_string())
        })
        .count()
}

async fn names(client: &tokio_postgres::Client, sql: &str) -> BTreeSet<String> {
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfigure_cycles_keep_the_catalog_exact_and_leak_nothing() {
    let n = cycles();
    let mut c = Compute::start(Some(cycle_spec(0)));
    c.wait_running();
    let pid = c.pid();
    // Warm up: the first reconfigurations start pools and threads for good.
    for i in 1..=3 {
        assert_eq!(c.configure(&cycle_spec(i)).await.0, 200);
    }
    let before = usage(pid);
    let started = Instant::now();
    for i in 4..4 + n {
        let (code, body) = c.configure(&cycle_spec(i)).await;
        assert_eq!(code, 200, "cycle {i}: {body}");
        let client = c.client("postgres").await;
        let roles = names(
            &client,
            "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'soak %'",
        )
        .await;
        let want: BTreeSet<String> = ["soak keep".to_string(), format!("soak r{i}")].into();
        assert_eq!(roles, want, "cycle {i}");
        let dbs = names(
            &client,
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'soak %'",
        )
        .await;
        assert_eq!(dbs, [format!("soak db {i}")].into(), "cycle {i}");
        let work_mem: String = client.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
        assert_eq!(work_mem, format!("{}kB", 1024 + i), "cycle {i}");
    }
    let elapsed = started.elapsed();
    let after = usage(pid);
    println!(
        "soak: {n} reconfigure cycles in {:.1} s ({:.0} ms each); compute_ctl before -> after: \
         RSS {} -> {} KiB ({:+.1}%), fds {} -> {}, threads {} -> {}",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / n as f64,
        before.0,
        after.0,
        (after.0 as f64 / before.0 as f64 - 1.0) * 100.0,
        before.1,
        after.1,
        before.2,
        after.2
    );
    // A descriptor leaked per cycle would show; a few come and go (HTTP
    // connections, postgres' log pipes are steady).
    assert!(
        after.1 <= before.1 + 8,
        "descriptors grew from {} to {} over {n} cycles",
        before.1,
        after.1
    );
    assert_eq!(zombies(pid), 0, "zombie children of compute_ctl");
}
