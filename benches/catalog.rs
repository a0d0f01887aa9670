//! Catalog reconciliation at scale, against real computes: a growth table,
//! one row per size (`CATALOG_SIZES`, default `1000x50,10000x200,100000x500`:
//! roles with md5 passwords x databases), each with
//! - from empty at a start: `POST /configure` with the spec on an Empty
//!   compute (the catalog step is `config_ms`: privileged role, migrations,
//!   template1's default privileges, roles `IN ROLE` it, databases, their
//!   grants), with the breakdown read from compute_ctl's log;
//! - from empty on a running compute: the same spec as a `/configure` that
//!   adds it to a compute Running with none (its round trip), with the
//!   growth of compute_ctl's peak RSS over it;
//! - a no-op re-apply of the spec there (REAPPLIES times, default 5; DDL
//!   counted from postgres' `log_statement = ddl` lines), then
//!   `/dbs_and_roles` with the growth of the peak RSS over it;
//! - the floor: the same DDL run by `psql -f` on a settled compute.
//!
//! Ratios to the floor are printed beside each time: the machine may be
//! shared, so compare ratios. Each compute runs on a spare PGDATA the one
//! before made, and makes the next before the next timed part begins.
//!
//! Run: `cargo bench --bench catalog` (CATALOG_SIZES, ROUNDS (default 1),
//! REAPPLIES to change; `CATALOG_SIZES=1000x50` is a short run;
//! CATALOG_LOG=path keeps compute_ctl's and postgres' log of the last start
//! there).

#[path = "common/chart.rs"]
mod chart;
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

/// The floor: the same DDL by `psql -f` on a fresh compute.
async fn floor(dir: &Path, empty: &Value, sql: &str) -> f64 {
    let f = Compute::start(dir).await;
    f.configure(empty).await;
    settle(&f).await;
    let file = dir.join("floor.sql");
    std::fs::write(&file, sql).unwrap();
    let t = Instant::now();
    // The superuser is trusted on the socket only.
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(dir.join("sock"))
        .arg("-p")
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

/// The pid of the compute_ctl whose arguments name `dir` (its PGDATA's
/// parent): the bench's computes are told apart by their directories.
fn pid_of(dir: &Path) -> Option<u32> {
    let needle = dir.join("pgdata");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let ours = args.first().is_some_and(|a| a.ends_with(b"compute_ctl"));
        if ours
            && args
                .iter()
                .any(|a| *a == needle.as_os_str().as_encoded_bytes())
        {
            return Some(pid);
        }
    }
    None
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

/// Resets the peak RSS of `pid` to its current RSS, then returns a closure
/// that tells the growth of the peak (MiB) since.
fn rss_watch(pid: u32) -> impl Fn() -> f64 {
    // "5" resets VmHWM (Linux >= 4.0).
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let before = status_kib(pid, "VmRSS");
    move || (status_kib(pid, "VmHWM") - before) / 1024.0
}

/// One size of the growth table.
struct Row {
    roles: usize,
    databases: usize,
    start_ms: f64,
    running_ms: f64,
    floor_ms: f64,
    noop_ms: f64,
    noop_ddl: usize,
    rss_mib: f64,
    dbs_and_roles_mib: f64,
    dbs_and_roles_bytes: usize,
    passwords: bool,
}

/// Largest `/configure` body compute_ctl accepts (its HTTP body limit).
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// The spec of `roles` roles (md5 passwords, unless the spec with them
/// would not fit in a `/configure` body: then none) and `databases`
/// databases, the same DDL as `psql -f` would run it, and whether the roles
/// have passwords.
fn spec_and_sql(roles: usize, databases: usize) -> (Value, String, bool) {
    let names: Vec<String> = (0..roles).map(|i| format!("role {i:06}")).collect();
    let build = |passwords: bool| {
        let role = |n: &String| match passwords {
            true => json!({"name": n, "encrypted_password": md5_hex(n)}),
            false => json!({"name": n}),
        };
        json!({
            "format_version": 1.0,
            "cluster": {
                "roles": names.iter().map(role).collect::<Vec<_>>(),
                "databases": (0..databases).map(|i| json!({"name": format!("db {i:03}"), "owner": names[i % roles]})).collect::<Vec<_>>(),
                "settings": [{"name": "log_statement", "value": "ddl", "vartype": "enum"}]
            }
        })
    };
    let mut spec = build(true);
    // The body is {"spec": ...}: a little margin.
    let passwords = spec.to_string().len() < BODY_LIMIT - 1024;
    if !passwords {
        spec = build(false);
    }
    let mut sql = String::new();
    for n in &names {
        match passwords {
            true => sql.push_str(&format!(
                "CREATE ROLE \"{n}\" WITH LOGIN PASSWORD 'md5{}';\n",
                md5_hex(n)
            )),
            false => sql.push_str(&format!("CREATE ROLE \"{n}\" WITH LOGIN;\n")),
        }
    }
    for i in 0..databases {
        sql.push_str(&format!(
            "CREATE DATABASE \"db {i:03}\" WITH OWNER \"{}\";\n",
            names[i % roles]
        ));
    }
    (spec, sql, passwords)
}

/// The sizes of the table: `CATALOG_SIZES`, e.g. `1000x50,10000x200`
/// (roles x databases).
fn sizes() -> Vec<(usize, usize)> {
    let text = std::env::var("CATALOG_SIZES")
        .unwrap_or_else(|_| "1000x50,10000x200,100000x500".to_string());
    text.split(',')
        .filter_map(|s| {
            let (r, d) = s.trim().split_once('x')?;
            Some((r.parse().ok()?, d.parse().ok()?))
        })
        .filter(|(r, _)| *r > 0)
        .collect()
}

/// One size: ours at a start, ours on a running compute (with its RSS, the
/// no-op re-applies and `/dbs_and_roles`), and the floor.
async fn measure(work: &Path, roles: usize, databases: usize, round: usize) -> (Row, Breakdown) {
    let (spec, sql, passwords) = spec_and_sql(roles, databases);
    let empty = json!({"format_version": 1.0, "cluster": {"settings": [{"name": "log_statement", "value": "ddl", "vartype": "enum"}]}});
    let tag = format!("{roles}-{databases}-{round}");

    // At a start: from Empty, /configure with the whole spec.
    let (start_ms, parts, c) = ours(&fresh_dir(work, &format!("start{tag}")), &spec).await;
    c.stop().await;

    // On a running compute: the spec added by a /configure.
    let dir = fresh_dir(work, &format!("running{tag}"));
    let c = Compute::start(&dir).await;
    c.configure(&empty).await;
    settle(&c).await;
    let pid = pid_of(&dir).expect("the compute's pid");
    let grown = rss_watch(pid);
    let running_ms = ms(c.configure(&spec).await);
    let rss_mib = grown();
    let reapplies = env_or("REAPPLIES", 5).max(1);
    let ddl_first = c.ddl_lines();
    let mut noop = Vec::new();
    for _ in 0..reapplies {
        noop.push(ms(c.configure(&spec).await));
    }
    let noop_ddl = c.ddl_lines() - ddl_first;
    let grown = rss_watch(pid);
    let body = reqwest::get(format!("{}/dbs_and_roles", c.base))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let dbs_and_roles_mib = grown();
    c.stop().await;

    let floor_ms = floor(&fresh_dir(work, &format!("floor{tag}")), &empty, &sql).await;
    let row = Row {
        roles,
        databases,
        start_ms,
        running_ms,
        floor_ms,
        noop_ms: median(&mut noop),
        noop_ddl,
        rss_mib,
        dbs_and_roles_mib,
        dbs_and_roles_bytes: body.len(),
        passwords,
    };
    (row, parts)
}

#[tokio::main]
async fn main() {
    install_crypto();
    let rounds = env_or("ROUNDS", 1).max(1);
    let work = bench_dir("cc-bench-cat-");
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    println!(
        "catalog growth table (medians of {rounds} round(s); load average {} before)",
        load_average()
    );
    println!(
        "{:>7} {:>4} | {:>9} {:>9} {:>9} | {:>6} {:>6} | {:>9} {:>4} | {:>8} | {:>13}",
        "roles",
        "dbs",
        "start ms",
        "run. ms",
        "psql ms",
        "st/psq",
        "ru/psq",
        "no-op ms",
        "DDL",
        "RSS MiB",
        "dbs&roles MiB"
    );
    let mut rows = Vec::new();
    for (roles, databases) in sizes() {
        let mut runs = Vec::new();
        let mut parts = Vec::new();
        for round in 0..rounds {
            let (row, b) = measure(work.path(), roles, databases, round).await;
            runs.push(row);
            parts.push(b);
        }
        let pick = |f: fn(&Row) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
        let row = Row {
            roles,
            databases,
            start_ms: pick(|r| r.start_ms),
            running_ms: pick(|r| r.running_ms),
            floor_ms: pick(|r| r.floor_ms),
            noop_ms: pick(|r| r.noop_ms),
            noop_ddl: runs.iter().map(|r| r.noop_ddl).max().unwrap_or(0),
            rss_mib: pick(|r| r.rss_mib),
            dbs_and_roles_mib: pick(|r| r.dbs_and_roles_mib),
            dbs_and_roles_bytes: runs[0].dbs_and_roles_bytes,
            passwords: runs[0].passwords,
        };
        let b = |f: fn(&Breakdown) -> f64| median(&mut parts.iter().map(f).collect::<Vec<_>>());
        println!(
            "{:>7} {:>4} | {:>9.0} {:>9.0} {:>9.0} | {:>5.2}x {:>5.2}x | {:>9.1} {:>4} | {:>8.1} | {:>6.1} ({} kB){}",
            row.roles,
            row.databases,
            row.start_ms,
            row.running_ms,
            row.floor_ms,
            row.start_ms / row.floor_ms,
            row.running_ms / row.floor_ms,
            row.noop_ms,
            row.noop_ddl,
            row.rss_mib,
            row.dbs_and_roles_mib,
            row.dbs_and_roles_bytes / 1024,
            match row.passwords {
                true => "",
                false => "  (no passwords: with them the spec is over the 4 MiB body limit)",
            }
        );
        println!(
            "{:>14}   start: privileged role + migrations + read + plan {:.0} ms, roles {:.0} ms, databases {:.0} ms, grants {:.0} ms, default privileges {:.0} ms",
            "",
            b(|b| b.migrations),
            b(|b| b.roles),
            b(|b| b.databases),
            b(|b| b.grants),
            b(|b| b.default_privileges)
        );
        rows.push(row);
    }
    println!("load average after: {}", load_average());
    write_growth_chart(&rows);
    println!("targets: from-empty <= 0.5x of psql -f on both paths; no-op re-apply of 100k roles <= 1000 ms with 0 DDL; RSS growth at 100k roles < 64 MiB");
    for r in &rows {
        let both = r.start_ms / r.floor_ms <= 0.5 && r.running_ms / r.floor_ms <= 0.5;
        println!(
            "  {} roles: from-empty {}; no-op {}{}",
            r.roles,
            if both { "met" } else { "NOT met" },
            if r.noop_ms <= 1000.0 && r.noop_ddl == 0 {
                "met"
            } else {
                "NOT met"
            },
            if r.roles >= 100_000 {
                format!("; RSS {}", if r.rss_mib < 64.0 { "met" } else { "NOT met" })
            } else {
                String::new()
            }
        );
    }
}

/// The growth table as a chart, `docs/catalog-growth.svg`: from-empty at a
/// start and on a running compute, beside `psql -f` of the same DDL, and the
/// no-op re-apply, against the number of roles.
fn write_growth_chart(rows: &[Row]) {
    let line = |f: fn(&Row) -> f64| rows.iter().map(|r| (r.roles as f64, f(r))).collect();
    let sizes: Vec<String> = rows
        .iter()
        .map(|r| format!("{}/{}", r.roles, r.databases))
        .collect();
    let title = format!(
        "The catalog from empty, by size (roles/databases: {}), load average {}",
        sizes.join(", "),
        load_average()
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/catalog-growth.svg");
    chart::lines(
        &path,
        &title,
        "roles",
        "ms",
        &[
            chart::Series {
                name: "compute_ctl, at a start",
                points: line(|r| r.start_ms),
            },
            chart::Series {
                name: "compute_ctl, /configure of a running compute",
                points: line(|r| r.running_ms),
            },
            chart::Series {
                name: "psql -f of the same DDL",
                points: line(|r| r.floor_ms),
            },
            chart::Series {
                name: "no-op re-apply",
                points: line(|r| r.noop_ms),
            },
        ],
    );
}
