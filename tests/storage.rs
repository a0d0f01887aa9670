//! src/storage against real processes: a fake pageserver speaking the
//! Postgres protocol (tests/fake_pageserver), real postgres servers, and
//! shell scripts standing in for `postgres --sync-safekeepers`.

mod fake_pageserver;

use compute_ctl::pgbin::PgBin;
use compute_ctl::process::RunAs;
use compute_ctl::secret::Secret;
use compute_ctl::storage::{self, Backoff, BasebackupRequest};
use compute_states::Lsn;
use fake_pageserver::{Archive, Behaviour, FakePageserver, Options};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TENANT: &str = "3a1b2c3d4e5f60718293a4b5c6d7e8f9";
const TIMELINE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// A temporary directory the postgres user can traverse.
fn test_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("cc-storage-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn owner() -> Option<RunAs> {
    RunAs::detect("postgres").unwrap()
}

fn quick(attempts: u32) -> Backoff {
    Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(40),
        attempts,
        ..Backoff::default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn is_empty_dir(dir: &Path) -> bool {
    dir.is_dir() && std::fs::read_dir(dir).unwrap().next().is_none()
}

async fn pgbin() -> PgBin {
    PgBin::resolve(Some(&fake_pageserver::pg_bindir().join("postgres")))
        .await
        .unwrap()
}

fn request<'a>(ps: &'a str, token: Option<&'a str>, lsn: Option<Lsn>) -> BasebackupRequest<'a> {
    BasebackupRequest {
        pageserver_connstring: Secret::new(ps),
        auth_token: token.map(Secret::new),
        tenant_id: TENANT,
        timeline_id: TIMELINE,
        lsn,
        replica: false,
    }
}

/// Peak resident memory of this process so far, in bytes.
fn vm_hwm() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// A postgres server started on `pgdata`, stopped (fast) when dropped.
struct Postgres {
    child: Child,
    port: u16,
}

impl Postgres {
    async fn start(pgdata: &Path, sockdir: &Path) -> Postgres {
        std::fs::create_dir_all(sockdir).unwrap();
        std::fs::set_permissions(sockdir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let port = free_port();
        let mut cmd = Command::new(fake_pageserver::pg_bindir().join("postgres"));
        cmd.arg("-D")
            .arg(pgdata)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(sockdir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(u) = fake_pageserver::pg_user() {
            cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if connect(port).await.is_ok() {
                return Postgres { child, port };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("postgres on {} exited: {status}", pgdata.display());
            }
            assert!(Instant::now() < deadline, "postgres did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn query(&self, sql: &str) -> Vec<String> {
        let client = connect(self.port).await.unwrap();
        client
            .simple_query(sql)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .collect()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: fast shutdown.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let _ = self.child.wait();
    }
}

async fn connect(port: u16) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
        tokio_postgres::NoTls,
    )
    .await?;
    tokio::spawn(conn);
    Ok(client)
}

// ---------------------------------------------------------------------------
// basebackup

#[tokio::test]
async fn basebackup_makes_a_pgdata_postgres_starts_on() {
    let dir = test_dir();
    let pgdata = dir.path().join("pgdata");
    let archive = fake_pageserver::initdb_archive();
    let ps = FakePageserver::start(Options::new(Archive::Bytes(archive.clone()))).await;
    let lsn: Lsn = "0/16B3748".parse().unwrap();
    let owner = owner();

    let stats = storage::basebackup(
        &request(&ps.connstring(), Some("secret-token"), Some(lsn)),
        &pgdata,
        owner.as_ref(),
        &quick(3),
    )
    .await
    .unwrap();

    assert_eq!(stats.attempts, 1);
    assert_eq!(stats.bytes, archive.len() as u64);
    let rec = ps.recorded();
    assert_eq!(
        rec.commands,
        [format!("basebackup {TENANT} {TIMELINE} 0/16B3748 --gzip")]
    );
    assert_eq!(rec.passwords, ["secret-token"]);
    assert!(rec.startup_params[0].contains(&("application_name".into(), "compute_ctl".into())));

    // Owned by the postgres user, with the modes postgres wants.
    let uid = owner
        .as_ref()
        .map_or(nix::unistd::Uid::effective().as_raw(), |u| u.uid);
    for path in [pgdata.join("global"), pgdata.join("global/pg_control")] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.uid(), uid, "{}", path.display());
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(meta.mode() & 0o777, want, "{}", path.display());
    }

    let pg = Postgres::start(&pgdata, &dir.path().join("sock")).await;
    let n = pg.query("SELECT count(*) FROM pg_database").await;
    assert_eq!(n, ["3"]); // postgres, template0, template1
}

#[tokio::test]
async fn replica_basebackup_sends_no_lsn() {
    let dir = test_dir();
    let pgdata = dir.path().join("pgdata");
    let mut opts = Options::new(Archive::Bytes(fake_pageserver::initdb_archive()));
    opts.require_password = false;
    let ps = FakePageserver::start(opts).await;
    let connstring = format!("{},postgresql://no_user@127.0.0.1:1", ps.connstring());
    let mut req = request(&connstring, None, None);
    req.replica = true;

    storage::basebackup(&req, &pgdata, owner().as_ref(), &quick(1))
        .await
        .unwrap();
    storage::create_standby_signal(&pgdata, owner().as_ref()).unwrap();

    assert_eq!(
        ps.recorded().commands,
        [format!("basebackup {TENANT} {TIMELINE} --gzip --replica")]
    );
    let meta = std::fs::metadata(pgdata.join("standby.signal")).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    if let Some(u) = owner() {
        assert_eq!(meta.uid(), u.uid);
    }
}

#[tokio::test]
async fn error_after_the_archive_fails_and_leaves_pgdata_empty() {
    let dir = test_dir();
    let pgdata = dir.path().join("pgdata");
    let mut opts = Options::new(Archive::Bytes(fake_pageserver::initdb_archive()));
    opts.behaviour = Behaviour::ErrorAfterArchive("timeline was deleted during basebackup".into());
    let ps = FakePageserver::start(opts).await;

    let e = storage::basebackup(
        &request(&ps.connstring(), Some("t"), Some(Lsn(1))),
        &pgdata,
        owner().as_ref(),
        &quick(2),
    )
    .await
    .unwrap_err()
    .to_string();

    assert!(e.contains("timeline was deleted during basebackup"), "{e}");
    assert!(e.contains("after 2 attempts"), "{e}");
    assert_eq!(ps.recorded().connections, 2);
    assert!(is_empty_dir(&pgdata));
}

#[tokio::test]
async fn dropped_connection_is_retried_per_backoff() {
    let dir = test_dir();
    let pgdata = dir.path().join("pgdata");
    let mut opts = Options::new(Archive::Bytes(fake_pageserver::initdb_archive()));
    opts.behaviour = Behaviour::DropAfter(256 * 1024);
    let ps = FakePageserver::start(opts).await;
    let backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(150),
        attempts: 3,
        ..Backoff::default()
    };

    let started = Instant::now();
    let e = storage::basebackup(
        &request(&ps.connstring(), Some("t"), Some(Lsn(1))),
        &pgdata,
        owner().as_ref(),
        &backoff,
    )
    .await
    .unwrap_err()
    .to_string();

    // Pauses of 100 ms and then 150 ms (capped) between the 3 attempts.
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(e.contains("after 3 attempts"), "{e}");
    assert!(e.contains("stream failed after"), "{e}");
    assert_eq!(ps.recorded().connections, 3);
    assert_eq!(ps.recorded().commands.len(), 3);
    assert!(is_empty_dir(&pgdata));
}

#[tokio::test]
async fn failing_first_connections_then_success() {
    let dir = test_dir();
    let pgdata = dir.path().join("pgdata");
    let mut opts = Options::new(Archive::Bytes(fake_pageserver::initdb_archive()));
    opts.behaviour = Behaviour::FailFirst(2);
    let ps = FakePageserver::start(opts).await;

    let stats = storage::basebackup(
        &request(&ps.connstring(), Some("t"), Some(Lsn(1))),
        &pgdata,
        owner().as_ref(),
        &quick(5),
    )
    .await
    .unwrap();

    assert_eq!(stats.attempts, 3);
    assert_eq!(ps.recorded().connections, 3);
    assert!(pgdata.join("PG_VERSION").is_file());
}

#[tokio::test]
async fn connection_refused_is_named() {
    let dir = test_dir();
    let pgdata = dir.path().join("pgdata");
    let connstring = format!("postgresql://no_user:hunter2@127.0.0.1:{}", free_port());
    let e = storage::basebackup(
        &request(&connstring, Some("t"), Some(Lsn(1))),
        &pgdata,
        None,
        &quick(2),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("onnection refused"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    assert!(is_empty_dir(&pgdata));
}

#[tokio::test]
async fn truncated_and_corrupt_archives_are_named() {
    let archive = fake_pageserver::initdb_archive();
    let truncated = archive[..archive.len() / 2].to_vec();
    let mut corrupt = archive.to_vec();
    corrupt[0] = b'X'; // not a gzip header
    for (bytes, want) in [
        (truncated, "truncated archive"),
        (corrupt, "corrupt archive"),
    ] {
        let dir = test_dir();
        let pgdata = dir.path().join("pgdata");
        let ps = FakePageserver::start(Options::new(Archive::Bytes(bytes.into()))).await;
        let e = storage::basebackup(
            &request(&ps.connstring(), Some("t"), Some(Lsn(1))),
            &pgdata,
            owner().as_ref(),
            &quick(1),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains(want), "{e}");
        assert!(is_empty_dir(&pgdata));
    }
}

#[tokio::test]
async fn nonempty_pgdata_is_refused() {
    let dir = test_dir();
    let pgdata = dir.path().join("pgdata");
    std::fs::create_dir(&pgdata).unwrap();
    std::fs::write(pgdata.join("keep.me"), "x").unwrap();
    let e = storage::basebackup(
        &request("postgresql://no_user@127.0.0.1:1", None, Some(Lsn(1))),
        &pgdata,
        None,
        &quick(1),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("not empty"), "{e}");
    assert!(pgdata.join("keep.me").is_file());
}

#[tokio::test]
async fn slow_pageserver_still_works() {
    let dir = test_dir();
    let pgdata = dir.path().join("pgdata");
    let mut opts = Options::new(Archive::Bytes(fake_pageserver::initdb_archive()));
    opts.behaviour = Behaviour::Slow(Duration::from_millis(2));
    opts.chunk_size = 16 * 1024;
    let ps = FakePageserver::start(opts).await;
    storage::basebackup(
        &request(&ps.connstring(), Some("t"), Some(Lsn(1))),
        &pgdata,
        owner().as_ref(),
        &quick(1),
    )
    .await
    .unwrap();
    assert!(pgdata.join("global/pg_control").is_file());
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

#[tokio::test]
async fn dropping_the_future_during_a_hang_returns_promptly() {
    let dir = test_dir();
    let pgdata = dir.path().join("pgdata");
    let mut opts = Options::new(Archive::Bytes(fake_pageserver::initdb_archive()));
    opts.behaviour = Behaviour::Hang;
    let ps = FakePageserver::start(opts).await;

    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_millis(500),
        storage::basebackup(
            &request(&ps.connstring(), Some("t"), Some(Lsn(1))),
            &pgdata,
            owner().as_ref(),
            &quick(1),
        ),
    )
    .await;
    assert!(r.is_err(), "the hang did not hang");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(ps.recorded().commands.len(), 1);
    // The connection was closed with the future.
    let deadline = Instant::now() + Duration::from_secs(2);
    while ps.recorded().ended == 0 {
        assert!(
            Instant::now() < deadline,
            "the connection outlived the future"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------
// sync-safekeepers

/// A directory with a `postgres` script (bash) running `body` for
/// `--sync-safekeepers`; `$D` is the directory, `$n` the call count.
fn fake_postgres(body: &str) -> tempfile::TempDir {
    let dir = test_dir();
    let script = format!(
        r#"#!/bin/bash
D="$(dirname "$0")"
if [ "$1" = "--version" ]; then echo "postgres (PostgreSQL) 15.99"; exit 0; fi
[ "$1" = "--sync-safekeepers" ] || exit 64
echo "$PGDATA" > "$D/pgdata_seen"
echo "${{NEON_AUTH_TOKEN-<unset>}}" > "$D/token_seen"
id -u > "$D/uid_seen"
n=$(( $(cat "$D/count" 2>/dev/null || echo 0) + 1 ))
echo $n > "$D/count"
{body}
"#
    );
    let path = dir.path().join("postgres");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    if let Some(u) = owner() {
        u.chown(dir.path()).unwrap();
    }
    dir
}

async fn fake_pgbin(dir: &Path) -> PgBin {
    PgBin::resolve(Some(&dir.join("postgres"))).await.unwrap()
}

fn seen(dir: &Path, what: &str) -> String {
    std::fs::read_to_string(dir.join(what))
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test]
async fn sync_safekeepers_parses_the_lsn_and_passes_the_environment() {
    let dir = fake_postgres(
        r#"echo "starting walproposer" >&2
echo "some chatter"
echo "0/16B3748"
echo"#,
    );
    let pgbin = fake_pgbin(dir.path()).await;
    let pgdata = PathBuf::from("/some/pgdata");
    let owner = owner();

    let lsn =
        storage::sync_safekeepers(&pgbin, &pgdata, Some("tok-123"), owner.as_ref(), &quick(3))
            .await
            .unwrap();

    assert_eq!(lsn, "0/16B3748".parse().unwrap());
    assert_eq!(seen(dir.path(), "pgdata_seen"), "/some/pgdata");
    assert_eq!(seen(dir.path(), "token_seen"), "tok-123");
    assert_eq!(seen(dir.path(), "count"), "1");
    let uid = owner.map_or(nix::unistd::Uid::effective().as_raw(), |u| u.uid);
    assert_eq!(seen(dir.path(), "uid_seen"), uid.to_string());

    // Without a token, none is passed on (even if we have one in our env).
    storage::sync_safekeepers(&pgbin, &pgdata, None, None, &quick(1))
        .await
        .unwrap();
    assert_eq!(seen(dir.path(), "token_seen"), "<unset>");
}

#[tokio::test]
async fn sync_safekeepers_retries_then_succeeds() {
    let dir = fake_postgres(
        r#"if [ $n -le 2 ]; then echo "could not connect to safekeeper sk1:5454 (try $n)" >&2; exit 3; fi
echo 1/2"#,
    );
    let pgbin = fake_pgbin(dir.path()).await;
    let lsn = storage::sync_safekeepers(&pgbin, dir.path(), None, owner().as_ref(), &quick(5))
        .await
        .unwrap();
    assert_eq!(lsn, Lsn((1 << 32) | 2));
    assert_eq!(seen(dir.path(), "count"), "3");
}

#[tokio::test]
async fn sync_safekeepers_final_error_names_status_and_stderr() {
    let dir = fake_postgres(
        r#"echo "line one" >&2
echo "could not connect to safekeeper sk1:5454 (try $n)" >&2
exit 3"#,
    );
    let pgbin = fake_pgbin(dir.path()).await;
    let e = storage::sync_safekeepers(&pgbin, dir.path(), None, owner().as_ref(), &quick(3))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("after 3 attempts"), "{e}");
    assert!(e.contains("exit status: 3"), "{e}");
    assert!(
        e.contains("line one | could not connect to safekeeper sk1:5454 (try 3)"),
        "{e}"
    );
    assert_eq!(seen(dir.path(), "count"), "3");

    // Success without an LSN is a failure too.
    let dir = fake_postgres(r#"echo "not an lsn""#);
    let pgbin = fake_pgbin(dir.path()).await;
    let e = storage::sync_safekeepers(&pgbin, dir.path(), None, owner().as_ref(), &quick(2))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"not an lsn\", not an LSN"), "{e}");
}

/// Whether `pid` is gone (or a zombie: dead, waiting to be reaped).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn dropping_sync_safekeepers_kills_the_script_and_its_children() {
    let dir = fake_postgres(
        r#"echo $$ > "$D/pid"
sleep 1000 &
echo $! > "$D/sleep_pid"
wait"#,
    );
    let pgbin = fake_pgbin(dir.path()).await;
    let backoff = quick(1);
    let owner = owner();
    let mut fut = Box::pin(storage::sync_safekeepers(
        &pgbin,
        dir.path(),
        None,
        owner.as_ref(),
        &backoff,
    ));
    let pid_file = dir.path().join("sleep_pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pid_file.is_file() || seen(dir.path(), "sleep_pid").is_empty() {
        tokio::select! {
            r = &mut fut => panic!("sync-safekeepers ended during the hang: {r:?}"),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        assert!(Instant::now() < deadline, "the script did not start");
    }
    let pid: i32 = seen(dir.path(), "pid").parse().unwrap();
    let sleep_pid: i32 = seen(dir.path(), "sleep_pid").parse().unwrap();
    assert!(!dead(pid) && !dead(sleep_pid));

    drop(fut);
    let dropped = Instant::now();
    while !(dead(pid) && dead(sleep_pid)) {
        assert!(
            dropped.elapsed() < Duration::from_secs(2),
            "script {pid} or its sleep {sleep_pid} outlived the future"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------
// pg_basebackup

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_basebackup_makes_a_streaming_standby() {
    let dir = test_dir();
    let primary_data = dir.path().join("primary").join("pgdata");
    fake_pageserver::initdb(&primary_data);
    let primary = Postgres::start(&primary_data, &dir.path().join("sock1")).await;
    primary
        .query("CREATE TABLE t (v text); INSERT INTO t VALUES ('before')")
        .await;

    let standby_data = dir.path().join("standby");
    let stats = storage::pg_basebackup(
        &pgbin().await,
        &format!("host=127.0.0.1 port={} user=postgres", primary.port),
        &standby_data,
        owner().as_ref(),
        &quick(2),
    )
    .await
    .unwrap();
    assert_eq!(stats.attempts, 1);
    assert!(stats.bytes > 1_000_000, "{stats:?}");
    assert!(standby_data.join("standby.signal").is_file());
    let auto_conf = std::fs::read_to_string(standby_data.join("postgresql.auto.conf")).unwrap();
    assert!(auto_conf.contains("primary_conninfo"), "{auto_conf}");

    let standby = Postgres::start(&standby_data, &dir.path().join("sock2")).await;
    assert_eq!(standby.query("SELECT pg_is_in_recovery()").await, ["t"]);
    assert_eq!(standby.query("SELECT v FROM t").await, ["before"]);
    primary.query("INSERT INTO t VALUES ('after')").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = standby.query("SELECT v FROM t ORDER BY v").await;
        if rows == ["after", "before"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "standby never saw the new row: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn pg_basebackup_failure_carries_its_stderr() {
    let dir = test_dir();
    let pgdata = dir.path().join("standby");
    let e = storage::pg_basebackup(
        &pgbin().await,
        &format!(
            "host=127.0.0.1 port={} user=postgres password=hunter2",
            free_port()
        ),
        &pgdata,
        owner().as_ref(),
        &quick(2),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("after 2 attempts"), "{e}");
    assert!(e.contains("exit status: 1"), "{e}");
    assert!(e.contains("Connection refused"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    assert!(is_empty_dir(&pgdata));
}
