//! Slow or greedy clients cannot take the compute down: connections that
//! send nothing, send their head a byte at a time, or never read their
//! answer are closed; a port full of idle connections still serves the
//! probes, `/configure` and the internal port under a low descriptor limit;
//! `/database_schema` runs one pg_dump at a time, and one whose reader
//! stalls is stopped.

use super::*;
use std::io::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (EOF or reset); None if it
/// is still open after `within`.
async fn closed_within(conn: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(within, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    })
    .await;
    closed.ok().map(|()| started.elapsed())
}

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connecting")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed_by_default() {
    let c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    // Idling is the test: the default header timeout is 10 s.
    let mut silent = connect(c.http_port).await;
    let mut internal = connect(c.internal_port).await;
    let closed = closed_within(&mut silent, Duration::from_secs(25)).await;
    assert!(closed.is_some(), "a silent connection stayed open for 25 s");
    let closed = closed_within(&mut internal, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "the internal port kept a silent connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_idle_keep_alives_and_trickling_bodies_are_cut() {
    let c = Compute::start_with(Opts {
        extra_args: vec![
            "--http-header-timeout".into(),
            "1".into(),
            "--http-idle-timeout".into(),
            "1".into(),
        ],
        ..Opts::default()
    });
    c.wait_status("empty", Duration::from_secs(10)).await;
    // A head sent a byte every 200 ms (12 s in all) is cut after the timeout.
    let (mut read, mut write) = connect(c.http_port).await.into_split();
    let head =
        b"GET /status HTTP/1.1\r\nhost: x\r\nx-pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let trickle = tokio::spawn(async move {
        for byte in head {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut answer = Vec::new();
    let cut = tokio::time::timeout(Duration::from_secs(6), read.read_to_end(&mut answer)).await;
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(cut.is_ok(), "a head trickling for 6 s kept its connection");
    assert!(
        !answer.contains(" 200 "),
        "a head sent over 12 s was served: {answer}"
    );
    // A keep-alive connection left idle after an answer is closed.
    let mut kept = connect(c.http_port).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 512];
    let n = kept.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    let closed = closed_within(&mut kept, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "an idle keep-alive stayed open");
    // A body that stops half-way is 408, not a connection held forever.
    let mut body = connect(c.http_port).await;
    body.write_all(
        b"POST /configure HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"spec\":",
    )
    .await
    .unwrap();
    let mut answer = String::new();
    let read =
        tokio::time::timeout(Duration::from_secs(10), body.read_to_string(&mut answer)).await;
    assert!(read.is_ok(), "a stalled body held its connection");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(c.get("/status").await.1["status"], "empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_under_a_low_nofile_limit_leave_probes_configure_and_internal_served() {
    let mut c = Compute::start_with(Opts {
        spec: Some(small_spec()),
        wrap: Some(vec![
            "prlimit".into(),
            "--nofile=200:200".into(),
            "--".into(),
        ]),
        ..Opts::default()
    });
    c.wait_running();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", c.pid())).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(nofile.contains(" 200 "), "{nofile}");
    // 190 connections that send nothing: 150 on the external port, 40 on the internal one.
    let mut idle = Vec::new();
    for i in 0..190 {
        let port = if i < 150 {
            c.http_port
        } else {
            c.internal_port
        };
        idle.push(connect(port).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quick = |what: &'static str| {
        move |r: Result<(u16, Value), tokio::time::error::Elapsed>| -> (u16, Value) {
            r.unwrap_or_else(|_| panic!("{what} did not answer within 5 s"))
        }
    };
    let within = Duration::from_secs(5);
    let (code, _) = quick("/healthz")(tokio::time::timeout(within, c.get("/healthz")).await);
    assert_eq!(code, 200);
    let (code, body) = quick("/readyz")(tokio::time::timeout(within, c.get("/readyz")).await);
    assert_eq!(code, 200, "{body}");
    let grown = spec(
        json!([{"name": "bob", "encrypted_password": null}, {"name": "carol", "encrypted_password": null}]),
        json!([{"name": "db1", "owner": "bob"}]),
    );
    let configured = tokio::time::timeout(Duration::from_secs(30), c.configure(&grown)).await;
    let (code, body) = configured.expect("/configure did not answer within 30 s");
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("running")),
        "{body}"
    );
    let grant =
        json!({"database": "db1", "schema": "public", "privileges": ["USAGE"], "role": "carol"});
    let granted = tokio::time::timeout(within, c.internal_post("/grants", &grant)).await;
    let (code, body) = quick("the internal port")(granted);
    assert_eq!(code, 201, "{body}");
    // compute_ctl stayed within its limit all along.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", c.pid()))
        .unwrap()
        .count();
    assert!(fds < 200, "{fds} descriptors open");
    drop(idle);
}

/// A raw `/database_schema` request whose client never reads its answer
/// (a small receive buffer, so the kernel does not read it either).
async fn never_reading_dump(port: u16, db: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut conn = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let head = format!("GET /database_schema?database={db} HTTP/1.1\r\nhost: x\r\n\r\n");
    conn.write_all(head.as_bytes()).await.unwrap();
    conn
}

fn pg_dumps_of(db: &str) -> Vec<i32> {
    processes_mentioning(std::path::Path::new(&format!("dbname='{db}'")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_dumps_run_one_at_a_time_and_a_stalled_reader_stops_its_pg_dump() {
    let mut c = Compute::start_with(Opts {
        spec: Some(spec(
            json!([{"name": "dumper", "encrypted_password": null}]),
            json!([{"name": "stalled", "owner": "dumper"}]),
        )),
        extra_args: vec!["--http-idle-timeout".into(), "2".into()],
        ..Opts::default()
    });
    c.wait_running();
    let client = c.client("stalled").await;
    // Far larger than every buffer on the way: pg_dump blocks while nobody reads.
    let comment = "c".repeat(1024 * 1024);
    let ddl: String = (0..24)
        .map(|i| {
            format!(
                "CREATE TABLE public.t{i} (id int); COMMENT ON TABLE public.t{i} IS '{comment}';"
            )
        })
        .collect();
    client.batch_execute(&ddl).await.unwrap();
    let first = never_reading_dump(c.http_port, "stalled").await;
    crate::wait::until("the first pg_dump", Duration::from_secs(20), async || {
        pg_dumps_of("stalled").len() == 1
    })
    .await;
    // A second dump meanwhile is refused at once, with when to retry.
    let resp = http()
        .get(c.url("/database_schema?database=stalled"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("already running"),
        "{body}"
    );
    assert_eq!(pg_dumps_of("stalled").len(), 1, "no second pg_dump");
    // The stalled reader's dump is stopped and its pg_dump killed.
    crate::wait::until(
        "the stalled pg_dump to be killed",
        Duration::from_secs(30),
        async || pg_dumps_of("stalled").is_empty(),
    )
    .await;
    drop(first);
    // Then a reader that reads gets the whole dump.
    let (code, body) = c.get("/database_schema?database=stalled").await;
    assert_eq!(code, 200);
    let text = body.as_str().unwrap();
    assert!(
        text.contains("COMMENT ON TABLE public.t23"),
        "{} bytes",
        text.len()
    );
}
