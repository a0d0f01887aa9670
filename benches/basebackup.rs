//! Basebackup throughput and memory: the fake pageserver (tests/fake_pageserver)
//! streams generated archives of 64 MiB and 512 MiB of data (about 2:1 gzip)
//! over loopback; compute_ctl's `storage::basebackup` unpacks them into a
//! temporary PGDATA. Prints MB/s and the growth of this process' peak RSS
//! (VmHWM), which must not follow the archive's size. The server makes its
//! archive on the fly at next to no cost, so the client is what is measured.
//!
//! Run: `cargo bench --bench basebackup`. Asserts nothing.

#[path = "../tests/fake_pageserver/mod.rs"]
mod fake_pageserver;

use compute_ctl::process::RunAs;
use compute_ctl::secret::Secret;
use compute_ctl::storage::{self, Backoff, BasebackupRequest};
use compute_states::Lsn;
use fake_pageserver::{Archive, FakePageserver, Options};
use std::os::unix::fs::PermissionsExt;

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

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let owner = RunAs::detect("postgres").unwrap();
    let work = tempfile::Builder::new()
        .prefix("cc-bench-bb-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    println!(
        "{:>9} {:>9} {:>9} {:>13} {:>13} {:>14}",
        "data MiB", "gzip MiB", "seconds", "gzip MB/s", "data MB/s", "peak RSS +MiB"
    );
    for data in [64 * MIB, 512 * MIB] {
        let pgdata = work.path().join(format!("pgdata-{}", data / MIB));
        let (stats, growth) = runtime.block_on(async {
            let ps =
                FakePageserver::start(Options::new(Archive::Generated { data_bytes: data })).await;
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
        let secs = stats.duration.as_secs_f64();
        println!(
            "{:>9} {:>9.1} {:>9.2} {:>13.0} {:>13.0} {:>14.1}",
            data / MIB,
            stats.bytes as f64 / MIB as f64,
            secs,
            stats.bytes as f64 / 1e6 / secs,
            data as f64 / 1e6 / secs,
            growth as f64 / MIB as f64
        );
        std::fs::remove_dir_all(&pgdata).unwrap();
    }
}
