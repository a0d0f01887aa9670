//! Catalog reconciliation at scale, against real computes:
//! - 1000 roles (md5 passwords) and 50 databases from empty, through
//!   `POST /configure` on an Empty compute (the catalog step is `config_ms`),
//!   beside the floor: the same DDL run by `psql -f` on a fresh postgres;
//! - a no-op re-apply of that spec through `/configure` (target: < 100 ms
//!   median, zero DDL: counted from postgres' `log_statement = ddl` lines).
//!
//! Run: `cargo bench --bench catalog` (ROLES, DATABASES, REAPPLIES to change).

mod common;
use common::*;

use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn md5_hex(role: &str) -> String {
    postgres_protocol::password::md5(format!("pw-{role}").as_bytes(), role)
        .trim_start_matches("md5")
        .to_string()
}

#[tokio::main]
async fn main() {
    install_crypto();
    let roles = env_or("ROLES", 1000);
    let databases = env_or("DATABASES", 50);
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

    let work = tempfile::Builder::new()
        .prefix("cc-bench-cat-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    for d in [&a, &b] {
        std::fs::create_dir(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o1777)).unwrap();
    }

    // compute_ctl from empty.
    let c = Compute::start(&a).await;
    let total = c.configure(&spec).await;
    let metrics: Value = reqwest::get(format!("{}/metrics.json", c.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let config_ms = metrics["config_ms"].as_u64().unwrap();
    let ddl_first = c.ddl_lines();

    // No-op re-applies.
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..reapplies {
        times.push(c.configure(&spec).await);
    }
    let ddl_after = c.ddl_lines() - ddl_first;
    times.sort();
    c.stop().await;

    // Floor: the same DDL through psql on a fresh postgres (a compute with no roles).
    let f = Compute::start(&b).await;
    f.configure(&empty).await;
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
    let file = b.join("floor.sql");
    std::fs::write(&file, sql).unwrap();
    let t = Instant::now();
    let status = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &f.port.to_string(),
            "-U",
            "cloud_admin",
            "-d",
            "postgres",
            "-f",
        ])
        .arg(&file)
        .stdout(Stdio::null())
        .status()
        .expect("psql (Debian's postgresql-client)");
    let floor = t.elapsed();
    assert!(status.success());
    f.stop().await;

    println!("{roles} roles and {databases} databases from empty:");
    println!("  compute_ctl catalog step (config_ms): {config_ms} ms; whole /configure from Empty: {:.0} ms", total.as_secs_f64() * 1e3);
    println!(
        "  floor, the same DDL by psql -f:       {:.0} ms",
        floor.as_secs_f64() * 1e3
    );
    println!(
        "  catalog step / floor: {:.2}x",
        config_ms as f64 / (floor.as_secs_f64() * 1e3)
    );
    println!("no-op re-apply through /configure ({reapplies} runs):");
    println!(
        "  median {:.1} ms, max {:.1} ms (target: median < 100 ms); DDL statements logged: {ddl_after} (target 0)",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}
