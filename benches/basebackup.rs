//! Basebackup throughput and memory: the fake pageserver (tests/it/fake_pageserver)
//! streams generated archives of 64 MiB and 512 MiB of data (about 2:1 gzip)
//! over loopback; compute_ctl's `storage::basebackup` unpacks them into a
//! temporary PGDATA. Prints MB/s and the growth of this process' peak RSS
//! (VmHWM), which must not follow the archive's size. The server makes its
//! archive on the fly at next to no cost, so the client is what is measured.
//!
//! Beside it, the floor of the system tools: the same archive, written to a
//! file first (so it is in the page cache), unpacked by `gzip -dc | tar -x`
//! into an empty directory. Rounds are interleaved (floor, ours, floor,
//! ours, ...) and medians compared, so the ratio holds on a busy machine.
//!
//! Run: `cargo bench --bench basebackup` (ROUNDS=N, default 3). Asserts nothing.

mod common;
#[path = "../tests/it/fake_pageserver/mod.rs"]
mod fake_pageserver;

use compute_ctl::testing::process::RunAs;
use compute_ctl::testing::secret::Secret;
use compute_ctl::testing::storage::{self, Backoff, BasebackupRequest};
use compute_states::Lsn;
use fake_pageserver::{Archive, FakePageserver, GeneratedStream, Options};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

/// Peak resident memory of this process so far, in bytes.
fn vm_hwm() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .expect("VmHWM in /proc/self/status")
        * 1024
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU seconds used so far by this process (`own`) and by its waited-for
/// children, from /proc/self/stat (clock ticks of 10 ms).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // utime, stime, cutime, cstime are fields 14-17 (1-based): 11-14 here.
    ((f[11] + f[12]) / 100.0, (f[13] + f[14]) / 100.0)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The generated archive of `data` bytes, written to `path`; its size.
fn write_archive(path: &Path, data: u64) -> u64 {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut size = 0;
    for piece in GeneratedStream::new(data) {
        size += piece.len() as u64;
        f.write_all(&piece).unwrap();
    }
    f.flush().unwrap();
    size
}

/// `gzip -dc archive | tar -x` into the empty `dir`: the time and the CPU
/// seconds it took.
fn floor(archive: &Path, dir: &Path) -> (Duration, f64) {
    std::fs::create_dir(dir).unwrap();
    let cpu = cpu_seconds().1;
    let started = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg("gzip -dc \"$0\" | tar -x -C \"$1\"")
        .arg(archive)
        .arg(dir)
        .status()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(status.success(), "gzip -dc | tar -x failed");
    let cpu = cpu_seconds().1 - cpu;
    std::fs::remove_dir_all(dir).unwrap();
    (elapsed, cpu)
}

fn main() {
    let rounds = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let owner = RunAs::detect("postgres").unwrap();
    let work = common::bench_dir("cc-bench-bb-");
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    println!("load average at start: {}", load_average());
    println!(
        "{:>9} {:>9} {:>9} {:>11} {:>11} {:>11} {:>8} {:>14} {:>7} {:>7}",
        "data MiB",
        "gzip MiB",
        "seconds",
        "data MB/s",
        "floor s",
        "floor MB/s",
        "ratio",
        "peak RSS +MiB",
        "cpu s",
        "floor cpu s"
    );
    for data in [64 * MIB, 512 * MIB] {
        let archive = work.path().join(format!("archive-{}.tar.gz", data / MIB));
        write_archive(&archive, data);
        let pgdata = work.path().join(format!("pgdata-{}", data / MIB));
        let (mut ours, mut floors, mut growth, mut gz_bytes) = (vec![], vec![], 0u64, 0u64);
        let (mut our_cpu, mut floor_cpu) = (vec![], vec![]);
        for _ in 0..rounds {
            let (t, cpu) = floor(&archive, &work.path().join("floor"));
            floors.push(t);
            floor_cpu.push(cpu);
            let cpu = cpu_seconds().0;
            let (stats, grew) = runtime.block_on(async {
                let ps =
                    FakePageserver::start(Options::new(Archive::Generated { data_bytes: data }))
                        .await;
                let connstring = ps.connstring();
                let req = BasebackupRequest {
                    pageserver_connstring: Secret::new(connstring.as_str()),
                    auth_token: Some(Secret::new("token")),
                    tenant_id: "3a1b2c3d4e5f60718293a4b5c6d7e8f9",
                    timeline_id: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                    lsn: Some(Lsn(0x16B3748)),
                    replica: false,
                };
                let before = vm_hwm();
                let stats = storage::basebackup(&req, &pgdata, owner.as_ref(), &Backoff::default())
                    .await
                    .expect("basebackup");
                (stats, vm_hwm().saturating_sub(before))
            });
            ours.push(stats.duration);
            our_cpu.push(cpu_seconds().0 - cpu);
            gz_bytes = stats.bytes;
            growth = growth.max(grew);
            std::fs::remove_dir_all(&pgdata).unwrap();
        }
        let _ = std::fs::remove_file(&archive);
        let (o, f) = (median(&mut ours), median(&mut floors));
        let cpu = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (oc, fc) = (cpu(&mut our_cpu), cpu(&mut floor_cpu));
        let mbps = |d: Duration| data as f64 / 1e6 / d.as_secs_f64();
        println!(
            "{:>9} {:>9.1} {:>9.2} {:>11.0} {:>11.2} {:>11.0} {:>7.2}x {:>14.1} {:>7.2} {:>7.2}",
            data / MIB,
            gz_bytes as f64 / MIB as f64,
            o.as_secs_f64(),
            mbps(o),
            f.as_secs_f64(),
            mbps(f),
            f.as_secs_f64() / o.as_secs_f64(),
            growth as f64 / MIB as f64,
            oc,
            fc
        );
    }
    println!("load average at end: {}", load_average());
    println!(
        "ratio: data MB/s of compute_ctl / of `gzip -dc | tar -x` on the same archive \
         (medians of {rounds} interleaved rounds; target >= 1.5x; peak RSS growth target < 16 MiB); \
         cpu s: CPU time of this process (the fake pageserver included) and of the floor's two tools"
    );
}
