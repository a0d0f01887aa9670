//! Catalog reconciliation at scale, against real computes:
//! - 1000 roles (md5 passwords) and 50 databases from empty, through
//!   `POST /configure` on an Empty compute (the catalog step is `config_ms`:
//!   privileged role, migrations, template1's default privileges, roles `IN
//!   ROLE` it, databases, their grants; the default privileges of each new
//!   database come with template1), with the breakdown read from
//!   compute_ctl's log;
//! - the same spec through the library's catalog step of a start without
//!   a privileged role (what the step did before there was one: no
//!   migrations, grants or default privileges), on a compute whose postgres
//!   was just restarted;
//! - the floor: the same DDL run by `psql -f` on a fresh compute;
//! - a no-op re-apply of that spec through `/configure` (target: < 100 ms
//!   median, zero DDL: counted from postgres' `log_statement = ddl` lines).
//!
//! The three are interleaved ROUNDS times (default 3) and the medians and
//! their ratios printed: the machine may be shared, so compare ratios. Each
//! compute runs on a spare PGDATA the one before made, and makes the next
//! before the next timed part begins (the floor is timed on a settled
//! compute, the variant without the privileged role right after a restart
//! of its postgres, ours is a start's catalog step).
//!
//! Run: `cargo bench --bench catalog` (ROLES, DATABASES, ROUNDS, REAPPLIES to
//! change; CATALOG_LOG=path keeps compute_ctl's and postgres' log of the
//! last run of ours there).

mod common;
use common::*;

use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn md5_hex(role: &str) -> String {
    postgres_protocol::password::md5(format!("pw-{role}").as_bytes(), role)
        .trim_start_matches("md5")
        .to_string()
}

/// A fresh directory (world-writable: postgres runs as its own user) in `work`.
fn fresh_dir(work: &Path, name: &str) -> PathBuf {
    let d = work.join(name);
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
    d
}

/// Seconds since midnight of a log line's RFC 3339 timestamp.
fn stamp(line: &str) -> Option<f64> {
    let t = line.split_whitespace().next()?.split('T').nth(1)?;
    let t = t.trim_end_matches('Z');
    let mut parts = t.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Where the catalog step's time went, in ms, from compute_ctl's own log
/// lines: privileged role, migrations, catalog read, template1 and plan;
/// roles; database creations; grants; default privileges set in new
/// databases (only those not made from a prepared template1).
#[derive(Default, Clone, Copy)]
struct Breakdown {
    migrations: f64,
    roles: f64,
    databases: f64,
    grants: f64,
    default_privileges: f64,
}

fn breakdown(log: &[String]) -> Breakdown {
    let last = |pred: &dyn Fn(&str) -> bool| {
        log.iter()
            .filter(|l| pred(l))
            .filter_map(|l| stamp(l))
            .fold(None, |_, t| Some(t))
    };
    let apply = |l: &str| l.contains("compute_ctl::catalog::apply:");
    let Some(ready) = last(&|l| l.contains("postgres is ready")) else {
        return Breakdown::default();
    };
    // Up to the plan: privileged role, migrations, catalog read, template1.
    let migrated = last(&|l| l.contains("applying the catalog plan")).unwrap_or(ready);
    let roles = last(&|l| apply(l) && l.contains("phase=roles")).unwrap_or(migrated);
    let dbs = last(&|l| apply(l) && l.contains(": CREATE DATABASE ")).unwrap_or(roles);
    let grants = last(&|l| apply(l) && l.contains(": GRANT ALL ON DATABASE ")).unwrap_or(dbs);
    let done = last(&|l| l.contains("catalog reconciled")).unwrap_or(grants);
    Breakdown {
        migrations: (migrated - ready) * 1e3,
        roles: (roles - migrated) * 1e3,
        databases: (dbs - roles) * 1e3,
        grants: (grants - dbs) * 1e3,
        default_privileges: (done - grants) * 1e3,
    }
}

/// Waits until `c` has made the spare PGDATA it makes once Running (at most
/// 10 s), then lets the disk's writeback settle: no timed part overlaps a
/// copy, and every variant's compute runs on a claimed spare, as ours does.
async fn settle(c: &Compute) {
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(10)
        && !c
            .log_lines()
            .iter()
            .any(|l| l.contains("made a spare PGDATA") || l.contains("making a spare PGDATA"))
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

/// compute_ctl from Empty: `/configure` with the spec. Returns the catalog
/// step (`config_ms`), its breakdown, and the compute (for the re-applies).
/// Its start claims the spare PGDATA the compute before made.
async fn ours(dir: &Path, spec: &Value) -> (f64, Breakdown, Compute) {
    let c = Compute::start(dir).await;
    c.configure(spec).await;
    settle(&c).await;
    let metrics: Value = reqwest::get(format!("{}/metrics.json", c.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let config_ms = metrics["config_ms"].as_u64().unwrap() as f64;
    let log = c.log_lines();
    if let Ok(path) = std::env::var("CATALOG_LOG") {
        // The whole log of the last run, to see where the time went.
        std::fs::write(path, log.join("\n")).unwrap();
    }
    (config_ms, breakdown(&log), c)
}

/// The same spec through the library's catalog step of a start, without a
/// privileged role, on a compute whose postgres was just restarted
/// (`/restart`): as ours, timed on a postgres that has just started, with
/// no spare being copied beside it.
async fn without_privileged(dir: &Path, spec: &Value, empty: &Value) -> f64 {
    let c = Compute::start(dir).await;
    c.configure(empty).await;
    settle(&c).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/restart", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(dir.join("sock"))
        .port(c.port)
        .user("cloud_admin")
        .dbname("postgres");
    use compute_ctl::testing::catalog::{start, Concurrency, Connector, Origin};
    let connector = Connector::new(config);
    let spec = compute_ctl::testing::spec::ValidSpec::from_json(&spec.to_string()).unwrap();
    let t = Instant::now();
    // A start's catalog step (its strategy for new databases included),
    // with no privileged role: what the step did before there was one.
    let (concurrency, origin) = (Concurrency::ShareOfMaxConnections, Origin::FinishedTemplate);
    start(&connector, &spec, concurrency, origin).await.unwrap();
    let took = ms(t.elapsed());
    c.stop().await;
    took
}

/// The floor: the same DDL by `psql -f` on a fresh compute.
async fn floor(dir: &Path, empty: &Value, sql: &str) -> f64 {
    let f = Compute::start(dir).await;
    f.configure(empty).await;
    settle(&f).await;
    let file = dir.join("floor.sql");
    std::fs::write(&file, sql).unwrap();
    let t = Instant::now();
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
        .arg(f.port.to_string())
        .args(["-U", "cloud_admin", "-d", "postgres", "-f"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("psql (Debian's postgresql-client)");
    let took = ms(t.elapsed());
    assert!(
        out.status.success(),
        "the floor's psql -f failed ({}): {}\nthe end of the compute's log (postgres' included):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        {
            let log = f.log_lines();
            log[log.len().saturating_sub(40)..].join("\n")
        }
    );
    f.stop().await;
    took
}

/// The 1, 5 and 15 minute load averages: the machine may be shared.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    install_crypto();
    let roles = env_or("ROLES", 1000);
    let databases = env_or("DATABASES", 50);
    let rounds = env_or("ROUNDS", 3).max(1);
    let reapplies = env_or("REAPPLIES", 20);
    let names: Vec<String> = (0..roles).map(|i| format!("role {i:04}")).collect();
    let spec = json!({
        "format_version": 1.0,
        "cluster": {
            "roles": names.iter().map(|n| json!({"name": n, "encrypted_password": md5_hex(n)})).collect::<Vec<_>>(),
            "databases": (0..databases).map(|i| json!({"name": format!("db {i:02}"), "owner": names[i % roles]})).collect::<Vec<_>>(),
            "settings": [{"name": "log_statement", "value": "ddl", "vartype": "enum"}]
        }
    });
    let empty = json!({"format_version": 1.0, "cluster": {"settings": [{"name": "log_statement", "value": "ddl", "vartype": "enum"}]}});
    let mut sql = String::new();
    for n in &names {
        sql.push_str(&format!(
            "CREATE ROLE \"{n}\" WITH LOGIN PASSWORD 'md5{}';\n",
            md5_hex(n)
        ));
    }
    for i in 0..databases {
        sql.push_str(&format!(
            "CREATE DATABASE \"db {i:02}\" WITH OWNER \"{}\";\n",
            names[i % roles]
        ));
    }

    let work = tempfile::Builder::new()
        .prefix("cc-bench-cat-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();

    let load_before = load_average();
    let (mut step, mut plain, mut floors) = (vec![], vec![], vec![]);
    let mut parts: Vec<Breakdown> = vec![];
    let mut kept = None;
    for round in 0..rounds {
        let (config_ms, b, c) = ours(&fresh_dir(work.path(), &format!("ours{round}")), &spec).await;
        step.push(config_ms);
        parts.push(b);
        match kept {
            None => kept = Some(c),
            Some(_) => c.stop().await,
        }
        floors.push(
            floor(
                &fresh_dir(work.path(), &format!("floor{round}")),
                &empty,
                &sql,
            )
            .await,
        );
        plain.push(
            without_privileged(
                &fresh_dir(work.path(), &format!("plain{round}")),
                &spec,
                &empty,
            )
            .await,
        );
    }

    // No-op re-applies on the first compute.
    let c = kept.unwrap();
    let ddl_first = c.ddl_lines();
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..reapplies {
        times.push(c.configure(&spec).await);
    }
    let ddl_after = c.ddl_lines() - ddl_first;
    times.sort();
    c.stop().await;

    let pick = |f: fn(&Breakdown) -> f64| median(&mut parts.iter().map(f).collect::<Vec<_>>());
    let (step_m, plain_m, floor_m) = (median(&mut step), median(&mut plain), median(&mut floors));
    println!("{roles} roles and {databases} databases from empty (medians of {rounds} interleaved rounds; load average {load_before} before, {} after):", load_average());
    println!("  compute_ctl catalog step (config_ms):        {step_m:.0} ms  (runs: {step:.0?})");
    println!(
        "    privileged role + migrations + read + template1 + plan {:.0} ms, roles {:.0} ms, databases {:.0} ms, grants {:.0} ms, per-database default privileges {:.0} ms",
        pick(|b| b.migrations),
        pick(|b| b.roles),
        pick(|b| b.databases),
        pick(|b| b.grants),
        pick(|b| b.default_privileges)
    );
    println!("  same spec without the privileged role work:  {plain_m:.0} ms  (runs: {plain:.0?})");
    println!(
        "  floor, the same DDL by psql -f:              {floor_m:.0} ms  (runs: {floors:.0?})"
    );
    println!("  catalog step / floor: {:.2}x (target <= 0.7x); without the privileged role work / floor: {:.2}x",
        step_m / floor_m, plain_m / floor_m);
    println!(
        "  the privileged role work costs {:+.0}% (with / without: {:.2}x)",
        (step_m / plain_m - 1.0) * 100.0,
        step_m / plain_m
    );
    println!("no-op re-apply through /configure ({reapplies} runs):");
    println!(
        "  median {:.1} ms, max {:.1} ms (target: median < 100 ms); DDL statements logged: {ddl_after} (target 0)",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}
