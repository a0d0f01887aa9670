//! A basebackup of a 200 MiB archive streams into PGDATA in bounded memory.
//!
//! Alone in its binary: it reads the peak resident memory of the whole test
//! process (`VmHWM`), to which every other test running in the same process
//! would add (an archive built in memory, a fuzz case's 4 MiB body), making it
//! fail for what it does not test. The rest of src/storage's tests are in
//! `it` (`cargo test --test it storage::`).

#[path = "it/fake_pageserver/mod.rs"]
mod fake_pageserver;
#[path = "it/storage/support.rs"]
mod support;

use compute_ctl::testing::storage;
use compute_states::Lsn;
use fake_pageserver::{Archive, FakePageserver, Options};
use support::*;

/// Peak resident memory of this process so far, in bytes.
fn vm_hwm() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_archive_streams_in_bounded_memory() {
    const DATA: u64 = 200 * 1024 * 1024;
    let dir = test_dir();
    let pgdata = dir.path().join("pgdata");
    let ps = FakePageserver::start(Options::new(Archive::Generated { data_bytes: DATA })).await;
    let before = vm_hwm();

    let stats = storage::basebackup(
        &request(&ps.connstring(), Some("t"), Some(Lsn(1))),
        &pgdata,
        owner().as_ref(),
        &quick(1),
    )
    .await
    .unwrap();

    let growth = vm_hwm().saturating_sub(before);
    eprintln!(
        "{} MiB of data, {} MiB compressed, in {:?}; peak RSS growth {} KiB",
        DATA >> 20,
        stats.bytes >> 20,
        stats.duration,
        growth >> 10
    );
    let files: u64 = std::fs::read_dir(pgdata.join("base/1"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(files, DATA);
    assert!(stats.bytes < DATA, "compressed: {}", stats.bytes);
    assert!(
        growth < 64 * 1024 * 1024,
        "peak RSS grew by {} MiB for a {} MiB archive",
        growth >> 20,
        stats.bytes >> 20
    );
}
