//! [`Child`] with real processes (`sh -c ...`): the group dies with the
//! handle, the stderr tail is bounded, and a child leaves the reaper's
//! own-children set only once reaped.
//!
//! No call to [`reap_orphans`] here: it would reap the other tests'
//! children (tests/reaper.rs runs it alone in its binary).

use super::reaper::{is_own, zombie_children};
use super::*;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// Waits (bounded, generously) until `done` holds; panics with `what` if it never does.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether `pid` still exists (a zombie counts).
fn exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script);
    cmd
}

fn quiet(_: &str) {}

/// The pid `child` printed on its first line of stdout.
async fn first_line_pid(child: &mut Child) -> i32 {
    let stdout = child.take_stdout().unwrap();
    let mut first = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut first)
        .await
        .unwrap();
    first.trim().parse().unwrap()
}

#[tokio::test]
async fn dropping_a_child_kills_its_grandchildren() {
    // The shell starts a sleep in the background, tells its pid, and waits.
    let mut cmd = sh("sleep 1000 & echo $!; wait");
    let mut child = Child::spawn(&mut cmd, Options::HELPER, LogAs(quiet)).unwrap();
    let leader = child.pid();
    let grandchild = first_line_pid(&mut child).await;
    assert!(alive(grandchild) && alive(leader));

    drop(child);
    eventually("the grandchild is killed", || !alive(grandchild)).await;
    eventually("the leader is killed", || !alive(leader)).await;
}

#[tokio::test]
async fn a_child_waited_to_completion_keeps_its_group() {
    // Waited to completion: dropping the handle kills nothing more.
    let mut cmd = sh("sleep 1000 >/dev/null 2>&1 & echo $!");
    let done = Child::run(&mut cmd, LogAs(quiet)).await.unwrap();
    assert!(done.status.success());
    let grandchild: i32 = String::from_utf8_lossy(&done.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(
        alive(grandchild),
        "the group of a finished child was killed"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(grandchild),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[tokio::test]
async fn the_stderr_tail_is_capped_in_lines_and_bytes() {
    let options = Options {
        die_with_us: true,
        tail_lines: 3,
        line_bytes: 100,
    };
    // 50 numbered lines, a 10 000-byte line, an empty line (skipped), a last one.
    let script = "i=1; while [ $i -le 50 ]; do echo line$i >&2; i=$((i+1)); done; \
                  head -c 10000 /dev/zero | tr '\\0' x >&2; echo >&2; echo >&2; \
                  echo last >&2; exit 3";
    let mut cmd = sh(script);
    let done = Child::spawn(&mut cmd, options, LogAs(quiet))
        .unwrap()
        .output()
        .await
        .unwrap();
    assert_eq!(done.status.code(), Some(3));
    let long = format!("{} [line cut: 9900 more bytes not shown]", "x".repeat(100));
    assert_eq!(done.stderr_tail, ["line50", long.as_str(), "last"]);
    assert_eq!(
        done.stderr_summary(),
        format!("stderr: line50 | {long} | last")
    );
}

#[tokio::test]
async fn a_child_is_forgotten_only_once_reaped() {
    // Exits at once, but is not waited for yet: a zombie the reaper must
    // leave alone (its status is ours).
    let mut cmd = sh("exit 7");
    let mut child = Child::spawn(&mut cmd, Options::HELPER, LogAs(quiet)).unwrap();
    let pid = child.pid();
    let ours = std::process::id() as i32;
    eventually("the child is a zombie", || {
        zombie_children(ours).contains(&pid)
    })
    .await;
    assert!(is_own(pid), "an unreaped child was forgotten");

    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(7));
    assert!(!exists(pid), "wait returned before the child was reaped");
    assert!(!is_own(pid), "a reaped child is still recorded as ours");
    drop(child);
}

#[tokio::test]
async fn a_dropped_child_is_forgotten_only_once_reaped() {
    let mut cmd = sh("sleep 1000");
    let child = Child::spawn(&mut cmd, Options::HELPER, LogAs(quiet)).unwrap();
    let pid = child.pid();
    assert!(is_own(pid));
    drop(child);
    // Killed and reaped in the background; recorded until then.
    eventually("the dropped child is forgotten", || !is_own(pid)).await;
    assert!(!exists(pid), "forgotten before it was reaped");
}

#[tokio::test]
async fn an_abandoned_child_gets_the_signal_not_a_group_kill() {
    // The leader ignores nothing: SIGTERM ends it, and its background
    // sleep (another group member) survives, since no group kill was sent.
    let mut cmd = sh("sleep 1000 >/dev/null 2>&1 & echo $!; wait");
    let mut child = Child::spawn(&mut cmd, Options::HELPER, LogAs(quiet)).unwrap();
    let grandchild = first_line_pid(&mut child).await;
    let leader = child.abandon(nix::sys::signal::Signal::SIGTERM);
    drop(child);
    eventually("the leader ends on the signal", || !is_own(leader.as_raw())).await;
    assert!(alive(grandchild), "an abandoned child's group was killed");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(grandchild),
        nix::sys::signal::Signal::SIGKILL,
    );
}
