//! Idle cost: compute_ctl's own resident memory and CPU time once it has sat
//! in Running for a while (postgres' processes are not counted: only the
//! supervisor's). Starts a compute with a small spec, waits until Running,
//! then samples `/proc/<pid>` at the start and the end of the idle window.
//!
//! Run: `cargo bench --bench idle` (IDLE_SECONDS=N, default 60). Prints the
//! figures beside the targets (RSS under 16 MiB, CPU under 1% of a core);
//! asserts nothing.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on Linux).
const TICKS: f64 = 100.0;

/// (RSS in KiB, CPU seconds) of process `pid`.
fn sample(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // utime and stime: fields 14 and 15 (1-based), 11 and 12 after the name.
    (rss, (f[11] + f[12]) / TICKS)
}

/// Threads of process `pid`.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn main() {
    let idle = Duration::from_secs(env_or("IDLE_SECONDS", 60) as u64);
    let work = bench_dir("cc-bench-idle-");
    let dir = work.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let port = free_port();
    let mut child = spawn_one_role_compute(dir, &dir.join("templates"), port);
    let pid = child.id();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("to=running") => break,
            Some(Ok(_)) => continue,
            _ => panic!("compute_ctl ended before Running"),
        }
    }
    // Keep reading its log (as a container runtime would), off this thread.
    let drain = std::thread::spawn(move || for _ in lines.by_ref() {});

    let (rss_running, cpu_running) = sample(pid);
    let began = Instant::now();
    std::thread::sleep(idle);
    let window = began.elapsed().as_secs_f64();
    let (rss_idle, cpu_idle) = sample(pid);
    let cpu_share = 100.0 * (cpu_idle - cpu_running) / window;
    println!(
        "compute_ctl idle in Running for {window:.0} s (load average {}):",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "  RSS at Running {:.1} MiB, after the idle window {:.1} MiB   (target < 16 MiB)",
        rss_running as f64 / 1024.0,
        rss_idle as f64 / 1024.0
    );
    println!(
        "  CPU time: {:.2} s to reach Running, {:.2} s in the idle window = {:.3}% of a core   (target < 1%)",
        cpu_running,
        cpu_idle - cpu_running,
        cpu_share
    );
    println!("  threads: {}", threads(pid));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap();
    let _ = drain.join();
}
