//! Helpers shared by the benchmarks.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../../tests/it/ports.rs"]
mod ports;
pub use ports::free_port;

/// An environment variable as a number, or `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A new directory for a bench's files, under `BENCH_DIR` (default `/tmp`,
/// which every user may enter: postgres runs as `postgres` when the bench
/// runs as root). A machine whose `/tmp` makes files slowly (an aged block
/// group) times the file system more than compute_ctl: point `BENCH_DIR` at
/// a directory elsewhere (mode 1777 or 755 on the way) and say so beside the
/// figures.
pub fn bench_dir(prefix: &str) -> tempfile::TempDir {
    let base = std::env::var_os("BENCH_DIR").unwrap_or_else(|| "/tmp".into());
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .expect("a directory for the bench under BENCH_DIR (default /tmp)")
}

/// The `p` quantile (0..=1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// reqwest's TLS needs a crypto provider chosen (the product uses ring).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A compute_ctl started Empty, its HTTP base URL and what it logged.
pub struct Compute {
    child: Child,
    /// `http://127.0.0.1:<external port>`.
    pub base: String,
    /// The port postgres listens on.
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Compute {
    /// Starts compute_ctl without a spec, with PGDATA and the socket in `dir`.
    pub async fn start(dir: &Path) -> Compute {
        let (port, http_port) = (free_port(), free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_compute_ctl"))
            .arg("-D")
            .arg(dir.join("pgdata"))
            .arg("-C")
            .arg(format!(
                "postgresql://cloud_admin@127.0.0.1:{port}/postgres"
            ))
            .args(["--external-http-port", &http_port.to_string()])
            .args(["--internal-http-port", &free_port().to_string()])
            .arg("--socket-dir")
            .arg(dir.join("sock"))
            // A terminated bench compute exits at once.
            .args(["--terminate-linger", "0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let base = format!("http://127.0.0.1:{http_port}");
        while reqwest::get(format!("{base}/status")).await.is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Compute {
            child,
            base,
            port,
            log,
        }
    }

    /// POSTs `spec` to /configure, expects 200, returns the round trip.
    pub async fn configure(&self, spec: &Value) -> Duration {
        let t = Instant::now();
        let resp = reqwest::Client::new()
            .post(format!("{}/configure", self.base))
            .json(&json!({ "spec": spec }))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "{body}");
        t.elapsed()
    }

    /// DDL statements postgres logged so far (with `log_statement = ddl`).
    pub fn ddl_lines(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| {
                l.contains("statement: CREATE")
                    || l.contains("statement: ALTER")
                    || l.contains("statement: DROP")
            })
            .count()
    }

    /// Every line compute_ctl (and postgres through it) logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Terminates the compute and waits for it.
    pub async fn stop(mut self) {
        let _ = reqwest::Client::new()
            .post(format!("{}/terminate", self.base))
            .send()
            .await;
        let _ = self.child.wait();
    }
}

/// Writes the cold-start spec (one role, one database) into `dir` and spawns
/// compute_ctl on it: PGDATA and the socket in `dir`, templates in `cache`,
/// postgres on `port`, stderr piped (its log, for the phases).
pub fn spawn_one_role_compute(dir: &Path, cache: &Path, port: u16) -> std::process::Child {
    let spec = serde_json::json!({
        "format_version": 1.0,
        "cluster": {
            "roles": [{"name": "alice", "encrypted_password": "a4f3a4c1f6a0b5f7d2b8a9c3e6d1f0b2"}],
            "databases": [{"name": "app", "owner": "alice"}]
        }
    });
    std::fs::write(dir.join("spec.json"), spec.to_string()).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_compute_ctl"))
        .arg("-D")
        .arg(dir.join("pgdata"))
        .arg("-C")
        .arg(format!(
            "postgresql://cloud_admin@127.0.0.1:{port}/postgres"
        ))
        .arg("-S")
        .arg(dir.join("spec.json"))
        .arg("--template-cache")
        .arg(cache)
        .arg("--socket-dir")
        .arg(dir.join("sock"))
        .args(["--external-http-port", &free_port().to_string()])
        .args(["--internal-http-port", &free_port().to_string()])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}
