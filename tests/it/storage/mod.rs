//! src/storage against real processes: a fake pageserver speaking the
//! Postgres protocol (the fake_pageserver module), real postgres servers, and
//! shell scripts standing in for `postgres --sync-safekeepers`.

use crate::fake_pageserver::{self, Archive, Behaviour, FakePageserver, Options};
use compute_ctl::testing::pgbin::PgBin;
use compute_ctl::testing::storage::{self, Backoff};
use compute_states::Lsn;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod pg_basebackup;
mod support;
mod sync_safekeepers;

use crate::ports::free_port;
use support::*;

fn is_empty_dir(dir: &Path) -> bool {
    dir.is_dir() && std::fs::read_dir(dir).unwrap().next().is_none()
}

async fn pgbin() -> PgBin {
    PgBin::resolve(Some(&fake_pageserver::pg_bindir().join("postgres")))
        .await
        .unwrap()
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
    crate::wait::until(
        "the connection to end with the future",
        Duration::from_secs(30),
        async || ps.recorded().ended > 0,
    )
    .await;
}
