//! `postgres --sync-safekeepers` run by src/storage, against shell scripts
//! standing in for it: the LSN parsed, retries, errors, and the script's
//! process group killed when the future is dropped.

use super::*;

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
    // The sleep would last 1000 s: gone within the deadline, it was killed.
    let what = format!("script {pid} and its sleep {sleep_pid} to end with the future");
    crate::wait::until(&what, Duration::from_secs(60), async || {
        dead(pid) && dead(sleep_pid)
    })
    .await;
}
