//! Root never writes through a path another user controls, and the template
//! cache is a clean slate only it can change. The attacker is the postgres
//! user (PGDATA and, once, the cache were its): each test plants, as that
//! user (`runuser -u postgres`), a symlink or a file of its own at a name
//! compute_ctl writes, triggers the write, and checks the target is
//! untouched and the operation succeeded safely.

use crate::common::*;
use crate::fake_pageserver::pg_bindir;
use crate::needs;
use serde_json::json;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Runs `script` with `sh -c` as the postgres user; whether it succeeded.
fn as_postgres(script: &str) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "sh", "-c", script])
        .status()
        .expect("runuser")
        .success()
}

/// A root-owned file (mode 0644) postgres must never get to change.
struct Victim(PathBuf);

impl Victim {
    const TEXT: &'static str = "precious: root's, never written by compute_ctl\n";

    fn new(dir: &Path, name: &str) -> Victim {
        let path = dir.join(name);
        std::fs::write(&path, Self::TEXT).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Victim(path)
    }

    fn assert_untouched(&self, compute: &Compute) {
        let meta = std::fs::symlink_metadata(&self.0).unwrap();
        assert_eq!(
            std::fs::read_to_string(&self.0).unwrap(),
            Self::TEXT,
            "{} was written through a planted name:\n{}",
            self.0.display(),
            compute.log()
        );
        assert_eq!(
            (meta.uid(), meta.mode() & 0o7777),
            (0, 0o644),
            "{} changed owner or mode",
            self.0.display()
        );
    }
}

/// The file at `path` is a regular file (not a link) of postgres' user, 0600.
fn assert_postgres_file(path: &Path) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let postgres = nix::unistd::User::from_name("postgres").unwrap().unwrap();
    assert!(meta.is_file(), "{} is not a regular file", path.display());
    assert_eq!(
        (meta.uid(), meta.mode() & 0o7777),
        (postgres.uid.as_raw(), 0o600),
        "{}",
        path.display()
    );
}

#[tokio::test]
async fn names_planted_in_pgdata_are_never_written_through() {
    if !needs::root("planting as postgres") {
        return;
    }
    let mut c = Compute::start(Some(spec(json!([]), json!([]))));
    c.wait_running();
    let victim = Victim::new(c.dir.path(), "victim");
    let pgdata = c.pgdata();
    let v = victim.0.display();
    // The temporary names compute_ctl once used, and a final name.
    for name in ["postgresql.conf.tmp", "pg_hba.conf.tmp", "pg_hba.conf"] {
        let at = pgdata.join(name);
        assert!(as_postgres(&format!("ln -sfn {v} {}", at.display())));
    }
    // A refresh that brings a changed spec rewrites both files.
    let mut refreshed = spec(json!([]), json!([]));
    refreshed["cluster"]["settings"] =
        json!([{"name": "work_mem", "value": "3MB", "vartype": "integer"}]);
    std::fs::write(c.dir.path().join("spec.json"), refreshed.to_string()).unwrap();
    c.refresh_and_wait().await;
    victim.assert_untouched(&c);
    // The files were replaced, not written through, and are postgres'.
    assert_postgres_file(&pgdata.join("pg_hba.conf"));
    assert_postgres_file(&pgdata.join("postgresql.conf"));

    for name in ["postgresql.conf.tmp", "pg_hba.conf.tmp", "postgresql.conf"] {
        let at = pgdata.join(name);
        assert!(as_postgres(&format!("ln -sfn {v} {}", at.display())));
    }
    let mut changed = spec(json!([]), json!([]));
    changed["cluster"]["settings"] =
        json!([{"name": "work_mem", "value": "5MB", "vartype": "integer"}]);
    let (code, body) = c.configure(&changed).await;
    assert_eq!(code, 200, "{body}\n{}", c.log());
    victim.assert_untouched(&c);
    assert_postgres_file(&pgdata.join("postgresql.conf"));
    let client = c.client("postgres").await;
    let work_mem: String = client.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
    assert_eq!(work_mem, "5MB");
}

#[tokio::test]
async fn a_password_file_name_planted_in_the_temporary_directory_changes_nothing() {
    if !needs::root("planting as postgres") {
        return;
    }
    // A temporary directory of the compute's own, open to all as /tmp is.
    let tmp = test_dir();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let mut c = Compute::start_with(Opts {
        spec: Some(spec(
            json!([]),
            json!([{"name": "app", "owner": SUPERUSER}]),
        )),
        // A password in the connstr: client tools get it in a password file.
        wrap: Some(vec![
            "/bin/bash".into(),
            "-c".into(),
            format!("exec \"${{@/{SUPERUSER}@/{SUPERUSER}:hunter2@}}\""),
            "with-password".into(),
        ]),
        env: vec![("TMPDIR".into(), tmp.path().display().to_string())],
        ..Opts::default()
    });
    c.wait_running();
    let victim = Victim::new(c.dir.path(), "victim");
    // Every name the password files once had (pid and a counter), planted.
    let pid = c.pid();
    for n in 0..32 {
        let at = tmp.path().join(format!("compute_ctl-{pid}-{n}.pgpass"));
        let plant = if n % 2 == 0 {
            format!("ln -s {} {}", victim.0.display(), at.display())
        } else {
            format!("echo planted > {}", at.display())
        };
        assert!(as_postgres(&plant));
    }
    let resp = http()
        .get(c.url("/database_schema?database=app"))
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    assert_eq!(code, 200, "{body}\n{}", c.log());
    assert!(body.contains("PostgreSQL database dump"), "{body}");
    victim.assert_untouched(&c);
    // Nothing of ours is left in the temporary directory.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("compute_ctl-pass-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A postgres installation whose `pg_basebackup`, once done, plants (as the
/// user it runs as, postgres) a symlink to `victim` where compute_ctl then
/// keeps the standby's password file.
fn planting_pgbin(dir: &Path, victim: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let real = pg_bindir();
    for tool in ["initdb", "pg_controldata", "pg_dump"] {
        std::os::unix::fs::symlink(real.join(tool), bin.join(tool)).unwrap();
    }
    let scripts = [
        (
            "postgres",
            format!("exec {}/postgres \"$@\"\n", real.display()),
        ),
        (
            "pg_basebackup",
            format!(
                "{}/pg_basebackup \"$@\"; rc=$?\n\
                 while [ $# -gt 0 ]; do [ \"$1\" = -D ] && d=$2; shift; done\n\
                 ln -sfn {} \"$d/primary.pgpass\"\n\
                 exit $rc\n",
                real.display(),
                victim.display()
            ),
        ),
    ];
    for (name, body) in scripts {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/bash\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin.join("postgres")
}

#[tokio::test]
async fn a_replica_start_never_writes_through_what_pg_basebackup_left() {
    if !needs::root("planting as postgres") {
        return;
    }
    // The replica streams over loopback as a spec role with a password (the
    // superuser is trusted on the socket only), so pg_basebackup gets a
    // password file.
    let bob = postgres_protocol::password::scram_sha_256(b"hunter2");
    let mut primary = Compute::start(Some(spec(
        json!([{"name": "bob", "encrypted_password": bob}]),
        json!([]),
    )));
    primary.wait_running();
    let tools = test_dir();
    let victim = Victim::new(tools.path(), "victim");
    let mut replica_spec = replica_spec_of(&primary, "planted");
    replica_spec["primary_connstring"] = json!(format!(
        "host=127.0.0.1 port={} user=bob password=hunter2 application_name=planted",
        primary.port
    ));
    let mut replica = Compute::start_with(Opts {
        spec: Some(replica_spec),
        extra_args: vec![
            "-b".into(),
            planting_pgbin(tools.path(), &victim.0)
                .display()
                .to_string(),
        ],
        ..Opts::default()
    });
    replica.wait_running();
    victim.assert_untouched(&replica);
    let pgdata = replica.pgdata();
    assert_postgres_file(&pgdata.join("primary.pgpass"));
    assert_postgres_file(&pgdata.join("postgresql.auto.conf"));
    let auto = std::fs::read_to_string(pgdata.join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.contains(&format!(
            "passfile=''{}''",
            pgdata.join("primary.pgpass").display()
        )) || auto.contains(&pgdata.join("primary.pgpass").display().to_string()),
        "{auto}"
    );
}

/// A compute with a template cache of its own (in its test directory).
fn with_own_cache(extra_args: Vec<String>) -> (Compute, PathBuf) {
    let cache_parent = test_dir();
    let cache = cache_parent.path().join("cache");
    let c = Compute::start_with(Opts {
        spec: Some(spec(json!([]), json!([]))),
        template_cache: cache.clone(),
        extra_args,
        ..Opts::default()
    });
    // The cache outlives nothing: it goes with the compute's directory.
    std::mem::forget(cache_parent);
    (c, cache)
}

/// The finished template in `cache` (the one `pg<major>-<key>` directory).
fn template_in(cache: &Path) -> PathBuf {
    let found: Vec<_> = std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("pg"))
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

#[tokio::test]
async fn postgres_cannot_change_the_template_cache() {
    if !needs::root("planting as postgres") {
        return;
    }
    // No spares: a restart copies the template itself.
    let (mut c, cache) = with_own_cache(vec!["--no-spare-pgdata".into()]);
    c.wait_running();
    let template = template_in(&cache);
    let auto = template.join("postgresql.auto.conf");
    let stamp = template.join("compute_ctl.template");
    // What an attacker appends, and the stamp forged to match (its byte count).
    let line = "\nwork_mem = '1234kB'\n";
    let stamp_text = std::fs::read_to_string(&stamp).unwrap();
    let bytes: u64 = stamp_text
        .lines()
        .find_map(|l| l.strip_prefix("bytes="))
        .unwrap()
        .parse()
        .unwrap();
    let forged = c.dir.path().join("forged");
    std::fs::write(
        &forged,
        stamp_text.replace(
            &format!("bytes={bytes}\n"),
            &format!("bytes={}\n", bytes + line.len() as u64),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&forged, std::fs::Permissions::from_mode(0o644)).unwrap();
    let attempts = [
        format!("printf '%s' \"{line}\" >> {}", auto.display()),
        format!(
            "cp {} {}.new && mv -f {}.new {}",
            forged.display(),
            stamp.display(),
            stamp.display(),
            stamp.display()
        ),
        format!("touch {}/planted", cache.display()),
        format!("ln -s /etc {}/planted-link", cache.display()),
        // (A link: the stamp counts files only, so the forgery above still holds.)
        format!("ln -s /etc {}/planted-link", template.display()),
    ];
    let succeeded: Vec<_> = attempts.iter().filter(|a| as_postgres(a)).collect();
    c.terminate();
    c.wait_exit(Duration::from_secs(30));
    c.respawn();
    c.wait_running();
    let client = c.client("postgres").await;
    let work_mem: String = client.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
    assert_ne!(work_mem, "1234kB", "the tampered template was used");
    assert!(
        succeeded.is_empty(),
        "postgres changed the cache: {succeeded:?}"
    );
    // The cache and the template are root's alone.
    for dir in [&cache, &template] {
        let meta = std::fs::symlink_metadata(dir).unwrap();
        assert_eq!(meta.uid(), 0, "{}", dir.display());
        assert_eq!(meta.mode() & 0o022, 0, "{}", dir.display());
    }
}

#[tokio::test]
async fn a_template_another_user_could_change_is_rebuilt_not_used() {
    if !needs::root("changing the cache's owner") {
        return;
    }
    let (mut c, cache) = with_own_cache(vec!["--no-spare-pgdata".into()]);
    c.wait_running();
    let template = template_in(&cache);
    c.terminate();
    c.wait_exit(Duration::from_secs(30));
    // As an older compute_ctl left its cache: the run-as user's.
    let chowned = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(&cache)
        .status()
        .unwrap();
    assert!(chowned.success());
    c.respawn();
    c.wait_running();
    assert!(
        c.log().contains("template was changed"),
        "the other user's template was used:\n{}",
        c.log()
    );
    let rebuilt = template_in(&cache);
    assert_eq!(rebuilt, template, "the same key names the same template");
    for dir in [&cache, &rebuilt] {
        assert_eq!(
            std::fs::metadata(dir).unwrap().uid(),
            0,
            "{}",
            dir.display()
        );
    }
}

#[tokio::test]
async fn a_template_build_killed_midway_is_stopped_and_cleared_by_the_next_start() {
    if !needs::root("a template build run as postgres") {
        return;
    }
    let (mut c, cache) = with_own_cache(vec![]);
    // The build's postgres: the postmaster.pid of a `.tmp-` directory.
    let building = poll(
        "the template build's postgres",
        Duration::from_secs(60),
        || {
            let entries = std::fs::read_dir(&cache).ok()?;
            entries.flatten().find_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let pid: i32 = std::fs::read_to_string(e.path().join("postmaster.pid"))
                    .ok()?
                    .lines()
                    .next()?
                    .trim()
                    .parse()
                    .ok()?;
                (name.starts_with(".tmp-") && process_alive(pid)).then_some((e.path(), pid))
            })
        },
    );
    let (tmp, orphan) = building;
    send_signal(c.pid() as i32, 9);
    c.wait_exit(Duration::from_secs(10));
    assert!(
        process_alive(orphan),
        "the build's postgres did not outlive its compute_ctl"
    );
    c.respawn();
    c.wait_running();
    poll(
        "the orphaned build's postgres to stop",
        Duration::from_secs(20),
        || (!process_alive(orphan)).then_some(()),
    );
    assert!(!tmp.exists(), "{} was left:\n{}", tmp.display(), c.log());
    let leftovers: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-") || n.starts_with(".stale-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Polls `found` every millisecond (a template build is brief) until it
/// gives a value; panics naming `what` after `timeout`.
fn poll<T>(what: &str, timeout: Duration, mut found: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = found() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {what} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cannot_reach_into_pgdata_while_a_basebackup_fills_it() {
    use crate::fake_pageserver::Behaviour;
    use crate::neon_support::{neon_spec, pageserver, start, wrapper_pgbin, Sync};
    if !needs::root("planting as postgres") {
        return;
    }
    // Slow: the archive is still being unpacked when postgres tries.
    let ps = pageserver(Behaviour::Slow(Duration::from_millis(20))).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let mut c = start(neon_spec(&ps, json!("Primary")), &pgbin, &[]);
    let pgdata = c.pgdata();
    // The archive's first directories are there: the unpacking has begun.
    let global = pgdata.join("global");
    poll(
        "the basebackup's first entries",
        Duration::from_secs(60),
        || global.exists().then_some(()),
    );
    let planted = [
        format!("touch {}/planted", pgdata.display()),
        format!("ln -s /etc {}/planted-link", pgdata.display()),
        format!("ln -s /etc {}/base/planted-link", pgdata.display()),
    ];
    let succeeded: Vec<_> = planted.iter().filter(|p| as_postgres(p)).collect();
    assert!(
        !c.log().contains("basebackup received"),
        "the basebackup ended before postgres tried: the test proves nothing"
    );
    assert!(
        succeeded.is_empty(),
        "postgres reached into PGDATA during the basebackup: {succeeded:?}"
    );
    c.wait_running();
    // Handed to postgres once full.
    let postgres = nix::unistd::User::from_name("postgres").unwrap().unwrap();
    assert_eq!(
        std::fs::metadata(&pgdata).unwrap().uid(),
        postgres.uid.as_raw()
    );
}
