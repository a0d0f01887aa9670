//! Container start benchmark: the image (tests/it/container/support.rs builds it
//! from the Dockerfile, with the release binary) from `podman run` to
//! Running, beside the same binary and spec started on the host (its
//! template cache warm, as the image's is). Prints the medians and the
//! difference; asserts nothing.
//!
//! Run: `cargo bench --bench container` as root with podman, runc and
//! mmdebstrap (ITERATIONS=N to change the sample size, default 5).

mod common;
#[path = "../tests/it/container/support.rs"]
mod container_support;
#[allow(dead_code)] // the bench needs only part of what the tests do
#[path = "../tests/it/needs.rs"]
mod needs;
/// Where the container support finds its free ports: the benches' own.
mod ports {
    pub use crate::common::free_port;
}
use container_support::*;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn running(port: u16) -> bool {
    http_get(port, "/status").is_some_and(|(_, body)| body.contains(r#""status":"running""#))
}

fn wait_running(port: u16, started: Instant) -> Duration {
    while !running(port) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never Running"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    started.elapsed()
}

/// The binary on the host: spawn to Running.
fn on_host(work: &std::path::Path, i: usize) -> Duration {
    let (pg, http) = (free_port(), free_port());
    let spec = work.join("spec.json");
    std::fs::write(&spec, small_spec().to_string()).unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_compute_ctl"))
        .args([
            "-D",
            &work.join(format!("pgdata-{i}")).display().to_string(),
        ])
        .args([
            "-C",
            &format!("postgresql://cloud_admin@127.0.0.1:{pg}/postgres"),
        ])
        .args(["-S", &spec.display().to_string()])
        .args([
            "--external-http-port",
            &http.to_string(),
            "--internal-http-port",
            "0",
        ])
        .args([
            "--template-cache",
            &work.join("cache").display().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let took = wait_running(http, started);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    child.wait().unwrap();
    took
}

/// The image: `podman run` to Running.
fn in_container() -> Duration {
    let started = Instant::now();
    let c = Container::run(&small_spec(), &[]);
    let took = wait_running(c.http_port, started);
    c.stop(30);
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if !available() {
        return;
    }
    let iterations: usize = std::env::var("ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    image();
    let work = common::bench_dir("cc-bench-");
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Warm-up: the host's template cache, podman's first container.
    on_host(work.path(), 0);
    in_container();
    let (mut host, mut container) = (vec![], vec![]);
    for i in 1..=iterations {
        host.push(on_host(work.path(), i));
        container.push(in_container());
    }
    let (h, c) = (median(host), median(container));
    println!("start to Running, median of {iterations} (small spec, release binary):");
    println!("  on the host:        {:>8.1} ms", h.as_secs_f64() * 1000.0);
    println!(
        "  in a container:     {:>8.1} ms  (podman run with runc, image {IMAGE})",
        c.as_secs_f64() * 1000.0
    );
    println!(
        "  container overhead: {:>8.1} ms",
        (c.as_secs_f64() - h.as_secs_f64()) * 1000.0
    );
}
