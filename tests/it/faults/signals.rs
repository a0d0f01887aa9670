//! Signals in every state: SIGTERM, SIGINT, SIGQUIT and SIGHUP each end in
//! Terminated and exit 0, whatever the compute was doing (waiting for a
//! spec, starting, applying a catalog, configuring, restarting, failed,
//! already stopping, lingering after a `/terminate`), with no zombie child
//! and no postmaster left behind.

use super::many;
use crate::common::*;
use serde_json::json;
use std::time::Duration;

const SIGNALS: [(i32, &str); 4] = [
    (15, "SIGTERM"),
    (2, "SIGINT"),
    (3, "SIGQUIT"),
    (1, "SIGHUP"),
];

/// Children of `pid` that are zombies (exited, not reaped).
fn zombie_children(pid: u32) -> Vec<i32> {
    let mut found = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next(), fields.next());
        if state == Some("Z") && ppid == Some(&pid.to_string()) {
            found.push(child);
        }
    }
    found
}

/// `sig` made the compute leave `from` for termination_pending; it exits 0
/// with no postmaster and no process on its PGDATA left.
fn ends_cleanly(c: &mut Compute, sig: &str, from: &str, postmaster: Option<i32>) {
    let code = c.wait_exit(Duration::from_secs(60)).code();
    let log = c.log();
    assert_eq!(code, Some(0), "{sig} in {from}:\n{log}");
    assert!(
        log.contains(&format!("from={from} to=termination_pending"))
            || (from == "terminated" && log.contains("signal during the linger")),
        "{sig} did not reach {from}:\n{log}"
    );
    assert!(log.contains("to=terminated"), "{sig} in {from}:\n{log}");
    if let Some(pm) = postmaster {
        assert!(
            !process_alive(pm),
            "{sig} in {from}: the postmaster survived"
        );
    }
    // A backend forked just before its postmaster was killed still carries
    // the postmaster's argv until it sees its parent gone and exits: a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut left = processes_mentioning(&c.pgdata());
    while !left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = processes_mentioning(&c.pgdata());
    }
    assert!(left.is_empty(), "{sig} in {from}: left behind: {left:?}");
}

/// Runs `case` for each signal, the four at once, each on its own compute
/// and its own runtime (the harness' waits block their thread).
fn each_signal<F, Fut>(case: F)
where
    F: Fn(i32, &'static str) -> Fut + Sync,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::scope(|scope| {
        let runs: Vec<_> = SIGNALS
            .iter()
            .map(|&(sig, name)| {
                let case = &case;
                scope.spawn(move || {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .unwrap()
                        .block_on(case(sig, name))
                })
            })
            .collect();
        for run in runs {
            if let Err(panic) = run.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

#[test]
fn in_empty() {
    each_signal(|sig, name| async move {
        let mut c = Compute::start(None);
        c.wait_for_log("HTTP API listening", Duration::from_secs(10));
        c.signal(sig);
        ends_cleanly(&mut c, name, "empty", None);
    });
}

#[test]
fn in_init_during_the_catalog_apply() {
    each_signal(|sig, name| async move {
        let mut c = Compute::start(Some(many(40)));
        c.wait_for_log("applying the catalog plan", Duration::from_secs(60));
        let postmaster = c.postmaster_pid();
        c.signal(sig);
        ends_cleanly(&mut c, name, "init", postmaster);
    });
}

#[test]
fn in_configuration_during_the_catalog_apply() {
    each_signal(|sig, name| async move {
        let mut c = Compute::start(None);
        c.wait_for_log("HTTP API listening", Duration::from_secs(10));
        let url = c.url("/configure");
        let configure = tokio::spawn(async move {
            http()
                .post(url)
                .json(&json!({"spec": many(40)}))
                .send()
                .await
        });
        c.wait_for_log("applying the catalog plan", Duration::from_secs(60));
        let postmaster = c.postmaster_pid();
        c.signal(sig);
        ends_cleanly(&mut c, name, "configuration", postmaster);
        // The /configure got an answer (not a hang).
        let _ = configure.await.unwrap();
    });
}

#[test]
fn in_running_with_no_zombie() {
    each_signal(|sig, name| async move {
        let mut c = Compute::start(Some(spec(json!([]), json!([]))));
        c.wait_running();
        // Helpers run during the start (initdb template check, catalog...) are reaped.
        assert_eq!(zombie_children(c.pid()), Vec::<i32>::new());
        let postmaster = c.postmaster_pid();
        c.signal(sig);
        ends_cleanly(&mut c, name, "running", postmaster);
    });
}

fn stuck_stop_opts() -> Opts {
    Opts {
        spec: Some(spec(json!([]), json!([]))),
        extra_args: vec!["--stop-timeout".into(), "2".into()],
        ..Opts::default()
    }
}

#[test]
fn in_restarting_while_the_stop_is_stuck() {
    each_signal(|sig, name| async move {
        let mut c = Compute::start_with(stuck_stop_opts());
        c.wait_running();
        let postmaster = c.postmaster_pid();
        // A stopped checkpointer holds the restart's fast shutdown.
        let checkpointer = c.backend_pid("checkpointer").await;
        send_signal(checkpointer, 19);
        let url = c.url("/restart");
        let restart = tokio::spawn(async move { http().post(url).send().await });
        c.wait_for_log("to=restarting", Duration::from_secs(20));
        c.signal(sig);
        ends_cleanly(&mut c, name, "restarting", postmaster);
        let _ = restart.await.unwrap();
        // Its own session's leader (postgres makes every child one), it
        // outlives the postmaster killed under it, and a stopped process
        // never sees that death: the test's own SIGSTOP, so the test's to end.
        send_signal(checkpointer, 9);
    });
}

#[test]
fn in_termination_pending_while_the_stop_is_stuck() {
    each_signal(|sig, name| async move {
        let mut c = Compute::start_with(Opts {
            // Longer than the test waits: the second signal must end it.
            extra_args: vec!["--stop-timeout".into(), "120".into()],
            ..stuck_stop_opts()
        });
        c.wait_running();
        let postmaster = c.postmaster_pid();
        send_signal(c.backend_pid("checkpointer").await, 19);
        c.signal(15);
        c.wait_for_log(
            "from=running to=termination_pending",
            Duration::from_secs(20),
        );
        // Not a wait for something: the test is that it is still stopping
        // (held by the stopped checkpointer) a moment later.
        std::thread::sleep(Duration::from_millis(300));
        assert!(c.child.as_mut().unwrap().try_wait().unwrap().is_none());
        c.signal(sig);
        let code = c.wait_exit(Duration::from_secs(60)).code();
        assert_eq!(code, Some(0), "{name} while stopping:\n{}", c.log());
        assert!(
            c.log().contains("shutdown requested while stopping") || c.log().contains("escalat"),
            "{name} while stopping did not escalate:\n{}",
            c.log()
        );
        assert!(postmaster.is_some_and(|pm| !process_alive(pm)));
        assert!(processes_mentioning(&c.pgdata()).is_empty());
    });
}

#[test]
fn in_failed_with_no_zombie() {
    each_signal(|sig, name| async move {
        let mut c = Compute::start_with(Opts {
            spec: Some(spec(json!([]), json!([]))),
            failure_exit_delay: 600,
            ..Opts::default()
        });
        c.wait_running();
        let postmaster = c.postmaster_pid().unwrap();
        send_signal(postmaster, 9);
        c.wait_for_log("exiting in", Duration::from_secs(20));
        assert_eq!(zombie_children(c.pid()), Vec::<i32>::new(), "{}", c.log());
        c.signal(sig);
        ends_cleanly(&mut c, name, "failed", Some(postmaster));
    });
}

#[test]
fn in_terminated_during_the_linger() {
    each_signal(|sig, name| async move {
        let mut c = Compute::start_with(Opts {
            spec: Some(spec(json!([]), json!([]))),
            terminate_linger: Some("600".into()),
            ..Opts::default()
        });
        c.wait_running();
        let postmaster = c.postmaster_pid();
        let (code, _) = into_pair(http().post(c.url("/terminate")).send().await).await;
        assert_eq!(code, 200);
        c.wait_for_log("to=terminated", Duration::from_secs(20));
        c.signal(sig);
        ends_cleanly(&mut c, name, "terminated", postmaster);
    });
}
