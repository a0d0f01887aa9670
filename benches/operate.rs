//! Operation benchmarks against a real compute, on a small database: the
//! `POST /restart` round trip (fast stop, start on the same PGDATA, catalog
//! check, Running), and `POST /promote` of a vanilla replica after its
//! primary was terminated, as a control plane does it (round trip, and the
//! three phases the answer reports: LSN wait, `pg_promote()`, reconfigure).
//!
//! Run: `cargo bench --bench operate` (RESTARTS=N, PROMOTIONS=N to change).

mod common;
use common::*;

use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    install_crypto();
    restarts().await;
    promotions().await;
}

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    let dir = bench_dir(prefix);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

fn small_spec() -> Value {
    json!({
        "format_version": 1.0,
        "cluster": {
            "roles": [{"name": "bob", "encrypted_password": null}],
            "databases": [{"name": "db1", "owner": "bob"}],
            "settings": [{"name": "listen_addresses", "value": "127.0.0.1", "vartype": "string"}]
        }
    })
}

async fn restarts() {
    let dir = temp_dir("cc-bench-operate-");
    let c = Compute::start(dir.path()).await;
    let base = c.base.clone();
    let client = reqwest::Client::new();
    c.configure(&small_spec()).await;

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
    c.stop().await;
}

/// One promotion: a primary with a small table, a replica of it; the
/// primary terminated (its LSN), the replica promoted up to that LSN.
/// Returns the round trip and the answer's three phases.
async fn promote_once(client: &reqwest::Client) -> (Duration, [u64; 3]) {
    let (pdir, rdir) = (temp_dir("cc-bench-primary-"), temp_dir("cc-bench-replica-"));
    let primary = Compute::start(pdir.path()).await;
    primary.configure(&small_spec()).await;
    let (db, conn) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=cloud_admin dbname=db1",
            pdir.path().join("sock").display(),
            primary.port
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    db.batch_execute("CREATE TABLE t AS SELECT generate_series(1, 10000) AS n")
        .await
        .unwrap();
    let replica = Compute::start(rdir.path()).await;
    let mut replica_spec = small_spec();
    replica_spec["mode"] = json!("Replica");
    replica_spec["primary_connstring"] = json!(format!(
        "host={} port={} user=cloud_admin",
        pdir.path().join("sock").display(),
        primary.port
    ));
    replica.configure(&replica_spec).await;
    db.batch_execute("INSERT INTO t SELECT generate_series(1, 10000)")
        .await
        .unwrap();
    drop(db);
    let answer: Value = client
        .post(format!("{}/terminate", primary.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lsn = answer["lsn"].as_str().unwrap().to_string();
    primary.stop().await;
    let t = Instant::now();
    let resp = client
        .post(format!("{}/promote", replica.base))
        .json(&json!({"spec": small_spec(), "wal_flush_lsn": lsn}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    let elapsed = t.elapsed();
    assert_eq!(status, 200, "{body}");
    replica.stop().await;
    let phase = |k: &str| body[k].as_u64().unwrap();
    (
        elapsed,
        [
            phase("lsn_wait_time_ms"),
            phase("pg_promote_time_ms"),
            phase("reconfigure_time_ms"),
        ],
    )
}

async fn promotions() {
    let client = reqwest::Client::new();
    let n = env_or("PROMOTIONS", 3);
    let mut rounds = Vec::with_capacity(n);
    for _ in 0..n {
        let (t, p) = promote_once(&client).await;
        eprintln!(
            "  promote: {:.1} ms (lsn wait {} ms, pg_promote {} ms, reconfigure {} ms)",
            ms(t),
            p[0],
            p[1],
            p[2]
        );
        rounds.push((t, p));
    }
    let mut times: Vec<Duration> = rounds.iter().map(|(t, _)| *t).collect();
    times.sort();
    let median = |i: usize| {
        let mut v: Vec<u64> = rounds.iter().map(|(_, p)| p[i]).collect();
        v.sort();
        v[v.len() / 2]
    };
    println!(
        "/promote of a vanilla replica after its primary's /terminate, small database ({n} runs):"
    );
    println!(
        "  round trip median {:.1} ms, max {:.1} ms; phases (median): lsn wait {} ms, pg_promote {} ms, reconfigure {} ms",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        median(0),
        median(1),
        median(2)
    );
}
