//! The PID-1 reaper reaps every orphan at once, also when one of our own
//! children (left for tokio to reap) has exited in front of them.
//!
//! Alone in its binary: reaping takes any exited child that compute_ctl did
//! not spawn, and other tests' children would be such.

use compute_ctl::testing::process::{self, alive};
use std::process::Command;
use std::time::{Duration, Instant};

/// Waits until `pid` is a zombie (exited, not reaped).
fn wait_zombie(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "{pid} did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `pid` still exists (a zombie counts).
fn exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_orphan_is_reaped_even_behind_an_exited_child_of_ours() {
    // Ours first, so a waitid(P_ALL) would likely see it before the others.
    let mut own_cmd = tokio::process::Command::new("true");
    let mut own = process::spawn(&mut own_cmd).expect("spawn true");
    let own_pid = own.id().expect("pid") as i32;
    wait_zombie(own_pid);
    // Children we did not spawn through `process::spawn` stand for orphans.
    let orphans: Vec<i32> = (0..3)
        .map(|_| Command::new("true").spawn().expect("spawn true").id() as i32)
        .collect();
    orphans.iter().for_each(|&pid| wait_zombie(pid));

    assert_eq!(process::reap_orphans(), orphans.len());
    for pid in &orphans {
        assert!(!exists(*pid), "orphan {pid} was left a zombie");
    }
    // Ours is left to tokio, which still gets its exit status.
    assert!(exists(own_pid), "our own child was reaped by the reaper");
    let status = own.wait().await.expect("tokio reaps our child");
    assert!(status.success());
    process::forget(Some(own_pid as u32));
    assert_eq!(process::reap_orphans(), 0);
}
