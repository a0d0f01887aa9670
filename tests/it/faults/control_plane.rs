//! A control plane (`-p URL -i ID`) that fails: answers 500, garbage JSON, a
//! body without end, hangs up, never answers, or is not there at all. The pull is retried a bounded number
//! of times (5xx and transport errors only), the log says what happened,
//! and the compute stays up in `empty`, its API closed (503) since the
//! control plane's keys are unknown (see README, "control plane").

use crate::common::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Copy, Debug)]
enum Answer {
    Status500,
    Garbage,
    /// 200 and a body that never ends.
    Endless,
    /// Closes the connection without a word.
    Hangup,
    /// Reads the request and never answers, the connection left open.
    Silent,
}

/// A raw HTTP/1.1 control plane; counts the requests it was sent.
async fn control_plane(answer: Answer) -> (u16, Arc<AtomicU32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicU32::new(0));
    let count = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let count = count.clone();
            tokio::spawn(async move {
                // The request head (no body on a GET).
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if sock.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                count.fetch_add(1, Ordering::SeqCst);
                let reply = |status: &str, body: &str| {
                    format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = match answer {
                    Answer::Status500 => {
                        let r = reply("500 Internal Server Error", "{\"error\": \"db down\"}");
                        sock.write_all(r.as_bytes()).await
                    }
                    Answer::Garbage => {
                        let r = reply("200 OK", "{\"status\": \"attached\", \"spec\": {\"for");
                        sock.write_all(r.as_bytes()).await
                    }
                    Answer::Endless => {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                                    transfer-encoding: chunked\r\n\r\n";
                        if sock.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let mut chunk = format!("{:x}\r\n", 1 << 16).into_bytes();
                        chunk.extend(std::iter::repeat_n(b' ', 1 << 16));
                        chunk.extend_from_slice(b"\r\n");
                        loop {
                            if sock.write_all(&chunk).await.is_err() {
                                return;
                            }
                        }
                    }
                    Answer::Hangup => Ok(()),
                    Answer::Silent => {
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                };
            });
        }
    });
    (port, requests)
}

fn start(port: u16) -> Compute {
    Compute::start_with(Opts {
        extra_args: vec![
            "-p".into(),
            format!("http://127.0.0.1:{port}"),
            "-i".into(),
            "compute-1".into(),
            // Each attempt's bound (30 s by default), short for the silent case.
            "--control-plane-timeout".into(),
            "2".into(),
        ],
        ..Opts::default()
    })
}

/// compute_ctl's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn fails_then_waits(answer: Answer, requests_wanted: u32, needle: &str) -> Compute {
    let (port, requests) = control_plane(answer).await;
    let mut c = start(port);
    c.wait_for_log(
        "pulling the spec from the control plane",
        Duration::from_secs(60),
    );
    let log = c.log();
    assert!(log.contains(needle), "{answer:?}: no {needle:?} in\n{log}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        requests_wanted,
        "{answer:?}: requests\n{log}"
    );
    // Still up, waiting in empty; the probes and /metrics answer.
    assert!(c.child.as_mut().unwrap().try_wait().unwrap().is_none());
    let metrics = http().get(c.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("status=\"empty\""), "{metrics}");
    assert_eq!(c.get("/healthz").await.0, 200);
    assert_eq!(
        c.configure(&spec(serde_json::json!([]), serde_json::json!([])))
            .await
            .0,
        503
    );
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_answering_500_is_retried_5_times_then_reported() {
    let c = fails_then_waits(Answer::Status500, 5, "control plane answered 500").await;
    let retries = c
        .log()
        .matches("control plane answered with an error; retrying")
        .count();
    assert_eq!(retries, 4, "{}", c.log());
    assert!(
        c.log().contains("db down"),
        "the body is logged: {}",
        c.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_json_is_reported_without_retrying() {
    fails_then_waits(
        Answer::Garbage,
        1,
        "no valid \"status\" (empty or attached): EOF",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_answer_is_cut_at_16_mib_and_reported() {
    let c = fails_then_waits(Answer::Endless, 1, "with more than 16777216 bytes").await;
    let rss = rss_kib(c.pid());
    println!("compute_ctl's RSS after an endless control-plane answer: {rss} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_hanging_up_is_retried_5_times_then_reported() {
    let c = fails_then_waits(Answer::Hangup, 5, "fetching the spec from").await;
    let retries = c.log().matches("cannot reach the control plane").count();
    assert_eq!(retries, 4, "{}", c.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_control_plane_is_retried_5_times_then_reported() {
    let port = free_port(); // nobody listens
    let mut c = start(port);
    c.wait_for_log(
        "pulling the spec from the control plane",
        Duration::from_secs(60),
    );
    let log = c.log();
    assert_eq!(
        log.matches("cannot reach the control plane").count(),
        4,
        "{log}"
    );
    assert!(
        log.contains("Connection refused") || log.contains("connection refused"),
        "{log}"
    );
    assert!(c.child.as_mut().unwrap().try_wait().unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_that_never_answers_times_out_5_times_then_is_reported() {
    let c = fails_then_waits(Answer::Silent, 5, "fetching the spec from").await;
    let log = c.log();
    assert_eq!(
        log.matches("cannot reach the control plane").count(),
        4,
        "{log}"
    );
    assert!(log.contains("timed out"), "the timeout is named: {log}");
}
