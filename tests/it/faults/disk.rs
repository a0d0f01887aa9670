//! Disk full: compute_ctl runs in a private mount namespace (`unshare
//! --mount`) where its directory (PGDATA's parent) and its template cache
//! are small tmpfs mounts. The template copy, the template build and the
//! basebackup each fail with an error naming the step, the path and the
//! cause; nothing half-written is taken for whole later: once the space is
//! there (the tmpfs remounted bigger, from inside the namespace) a new
//! `/configure` starts the compute on whole data.

use crate::common::*;
use crate::fake_pageserver::Behaviour;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Mounts a tmpfs of `$SIZE` on PGDATA's parent (keeping what the harness
/// put there) and on `$CACHE` when set, then runs compute_ctl.
const WRAPPER: &str = r#"set -e
prev=""; for a in "$@"; do if [ "$prev" = "-D" ]; then pgdata="$a"; fi; prev="$a"; done
dir=$(dirname "$pgdata")
keep=$(mktemp -d)
cp -a "$dir/." "$keep/"
mount -t tmpfs -o "size=$SIZE,mode=755" tmpfs "$dir"
cp -a "$keep/." "$dir/"
rm -rf "$keep"
if [ -n "$CACHE" ]; then mount -t tmpfs -o "size=$SIZE,mode=755" tmpfs "$CACHE"; fi
exec "$@"
"#;

fn usable() -> bool {
    let ok = crate::needs::is_root()
        && std::process::Command::new("unshare")
            .args(["--mount", "true"])
            .status()
            .is_ok_and(|s| s.success());
    crate::needs::needs(ok, "the disk-full tests need root and unshare --mount")
}

fn opts(spec: Value, size: &str, cache: Option<&Path>) -> Opts {
    let mut o = Opts {
        spec: Some(spec),
        wrap: Some(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                WRAPPER,
                "sh",
            ]
            .map(String::from)
            .to_vec(),
        ),
        env: vec![("SIZE".into(), size.into())],
        failure_exit_delay: 600,
        ..Opts::default()
    };
    if let Some(cache) = cache {
        o.env.push(("CACHE".into(), cache.display().to_string()));
        o.template_cache = cache.to_path_buf();
    }
    o
}

/// A path as compute_ctl sees it, inside its mount namespace.
fn inside(c: &Compute, path: &Path) -> PathBuf {
    Path::new(&format!("/proc/{}/root", c.pid())).join(path.strip_prefix("/").unwrap())
}

/// Gives compute_ctl's tmpfs mounts room, from inside its namespace.
fn grow(c: &Compute, mounts: &[&Path]) {
    for m in mounts {
        let ns = format!("--mount=/proc/{}/ns/mnt", c.pid());
        let status = std::process::Command::new("nsenter")
            .args([ns.as_str(), "mount", "-o", "remount,size=1g"])
            .arg(m)
            .status()
            .unwrap();
        assert!(status.success(), "remounting {}", m.display());
    }
}

/// Fails with ENOSPC in the log, naming `step`; PGDATA holds nothing that
/// a later start could take for whole (it is checked again by that start).
async fn fails_on_full_disk(c: &mut Compute, step: &str) -> String {
    let status = c.wait_status("failed", Duration::from_secs(120)).await;
    let error = status["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("No space left on device") && error.contains(step),
        "{error}\n{}",
        c.log()
    );
    println!("{step} on a full disk: {error}");
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_copy_on_a_full_disk_fails_naming_it_then_recovers() {
    if !usable() {
        return;
    }
    let small = spec(
        json!([{"name": "disk role", "encrypted_password": null}]),
        json!([]),
    );
    let mut c = Compute::start_with(opts(small.clone(), "8m", None));
    let error = fails_on_full_disk(&mut c, "copying").await;
    assert!(error.contains(&c.pgdata().display().to_string()), "{error}");
    grow(&c, &[c.dir.path()]);
    let (code, body) = c.configure(&small).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("running")),
        "{body}"
    );
    let n: i64 = c
        .client("postgres")
        .await
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = 'disk role'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_built_on_a_full_disk_is_not_used_half_made() {
    if !usable() {
        return;
    }
    let cache = test_dir();
    let small = spec(json!([]), json!([]));
    let mut c = Compute::start_with(opts(small.clone(), "8m", Some(cache.path())));
    let error = fails_on_full_disk(&mut c, "template").await;
    assert!(
        error.contains(&cache.path().display().to_string()),
        "{error}"
    );
    let left: Vec<_> = std::fs::read_dir(inside(&c, cache.path()))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    println!("left in the cache after the failed build: {left:?}");
    grow(&c, &[c.dir.path(), cache.path()]);
    let (code, body) = c.configure(&small).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("running")),
        "{body}"
    );
    let cached = std::fs::read_dir(inside(&c, cache.path())).unwrap().count();
    assert!(cached > 0, "the template was rebuilt in the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basebackup_on_a_full_disk_fails_naming_it_and_leaves_pgdata_empty() {
    if !usable() {
        return;
    }
    use crate::neon_support::*;
    let ps = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let neon = neon_spec(&ps, json!("Primary"));
    let mut o = opts(neon.clone(), "8m", None);
    o.superuser = "postgres".into();
    o.extra_args = vec![
        "-b".into(),
        pgbin.display().to_string(),
        "--storage-attempts".into(),
        "2".into(),
    ];
    let mut c = Compute::start_with(o);
    let error = fails_on_full_disk(&mut c, "basebackup").await;
    assert!(error.contains("2 attempts"), "bounded retries: {error}");
    let left: Vec<_> = std::fs::read_dir(inside(&c, &c.pgdata()))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "half a basebackup left in PGDATA: {left:?}"
    );
    grow(&c, &[c.dir.path()]);
    let (code, body) = c.configure(&neon).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("running")),
        "{body}"
    );
    assert_eq!(c.db_owner("app db").await, "app user");
}
