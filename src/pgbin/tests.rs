//! The binary's lookup, version and settings, and their caches.

use super::*;

#[test]
fn major_versions_parse() {
    assert_eq!(
        parse_major("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
        Some(15)
    );
    assert_eq!(parse_major("postgres (PostgreSQL) 17devel"), Some(17));
    assert_eq!(parse_major("postgres (PostgreSQL) 9.6.24"), Some(9));
    assert_eq!(parse_major("garbage"), None);
}

#[tokio::test]
async fn missing_binary_is_a_clear_error() {
    let e = PgBin::resolve(Some(Path::new("/nonexistent/postgres")))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/postgres"), "{e}");
}

#[tokio::test]
async fn finds_and_describes_the_installed_postgres() {
    let bin = PgBin::resolve(None)
        .await
        .expect("postgres is installed on test machines");
    assert!(bin.major >= 13, "{}", bin.version);
    assert!(bin.tool("initdb").is_file());
    let known = bin.known_settings().await.unwrap();
    assert!(known.contains("work_mem") && known.contains("shared_buffers"));
    assert!(!known.contains("no_such_setting"));
    // What --describe-config leaves out, and we add.
    let extra: HashSet<&str> = bin.undescribed_settings().collect();
    for name in [
        "application_name",
        "transaction_isolation",
        "jit_expressions",
    ] {
        assert!(!known.contains(name) && extra.contains(name), "{name}");
    }
    assert!(extra.iter().all(|n| !known.contains(*n)), "{extra:?}");
}

#[tokio::test]
async fn the_settings_cache_never_writes_through_a_planted_name() {
    use std::os::unix::fs::PermissionsExt;
    let bin = PgBin::resolve(None).await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let victim = cache.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let (file, _) = bin.settings_cache_entry(cache.path());
    // The temporary name the cache once used, and the file itself.
    let planted = file.with_extension(format!("tmp-{}", std::process::id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    std::os::unix::fs::symlink(&victim, &file).unwrap();
    bin.known_settings_cached(cache.path()).await.unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(std::fs::symlink_metadata(&file).unwrap().is_file());
    // A cache directory others can write is not believed.
    let (_, header) = bin.settings_cache_entry(cache.path());
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, format!("{header}only_this\n")).unwrap();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let described = bin.known_settings_cached(cache.path()).await.unwrap();
    assert!(described.contains("work_mem"));
}

#[tokio::test]
async fn the_settings_are_cached_per_binary() {
    let bin = PgBin::resolve(None).await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let first = bin.known_settings_cached(cache.path()).await.unwrap();
    assert_eq!(first, bin.known_settings().await.unwrap());
    let (file, header) = bin.settings_cache_entry(cache.path());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(&header), "{text}");
    // Read back from the file (made different here, to tell).
    std::fs::write(&file, format!("{header}only_this\n")).unwrap();
    let cached = bin.known_settings_cached(cache.path()).await.unwrap();
    assert_eq!(cached, HashSet::from(["only_this".to_string()]));
    // A file for another binary (header) is not believed.
    std::fs::write(&file, "postgres (PostgreSQL) 99.0 (0, 0)\nonly_this\n").unwrap();
    let again = bin.known_settings_cached(cache.path()).await.unwrap();
    assert_eq!(again, first);
    // No cache directory: described each time.
    let gone = cache.path().join("missing");
    assert_eq!(bin.known_settings_cached(&gone).await.unwrap(), first);
}

/// A stand-in `postgres` in `dir` that prints `version` and counts its runs
/// in `dir/runs`.
fn counting_postgres(dir: &Path, version: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("postgres");
    let runs = dir.join("runs");
    // A new file each time (a new inode), as a package upgrade makes.
    let _ = std::fs::remove_file(&bin);
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\necho run >> '{}'\necho 'postgres (PostgreSQL) {version}'\n",
            runs.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_version_is_cached_per_binary() {
    let bins = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let postgres = counting_postgres(bins.path(), "15.99");
    let first = PgBin::resolve_cached(Some(&postgres), cache.path())
        .await
        .unwrap();
    assert_eq!((first.major, runs(bins.path())), (15, 1));
    assert_eq!(first.version, "postgres (PostgreSQL) 15.99");
    let again = PgBin::resolve_cached(Some(&postgres), cache.path())
        .await
        .unwrap();
    assert_eq!(again.version, first.version);
    assert_eq!(runs(bins.path()), 1, "the second resolve ran postgres");
    // Another binary at the same path is asked again.
    let postgres = counting_postgres(bins.path(), "16.1");
    let upgraded = PgBin::resolve_cached(Some(&postgres), cache.path())
        .await
        .unwrap();
    assert_eq!((upgraded.major, runs(bins.path())), (16, 2));
    // The uncached way always asks.
    PgBin::resolve(Some(&postgres)).await.unwrap();
    assert_eq!(runs(bins.path()), 3);
    // No cache directory: asked each time, and still resolved.
    let gone = cache.path().join("missing");
    PgBin::resolve_cached(Some(&postgres), &gone).await.unwrap();
    PgBin::resolve_cached(Some(&postgres), &gone).await.unwrap();
    assert_eq!(runs(bins.path()), 5);
    assert!(!gone.exists());
}

#[tokio::test]
async fn the_version_cache_is_believed_only_where_others_cannot_write() {
    use std::os::unix::fs::PermissionsExt;
    let bins = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let postgres = counting_postgres(bins.path(), "15.99");
    let (name, header) = version_cache_entry(&postgres);
    let file = cache.path().join(&name);
    // A planted link at the cache's name is replaced, not written through.
    let victim = cache.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, &file).unwrap();
    PgBin::resolve_cached(Some(&postgres), cache.path())
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(std::fs::symlink_metadata(&file).unwrap().is_file());
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text, format!("{header}postgres (PostgreSQL) 15.99\n"));
    // A version planted in a directory others can write is not believed.
    std::fs::write(&file, format!("{header}postgres (PostgreSQL) 99.0\n")).unwrap();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let bin = PgBin::resolve_cached(Some(&postgres), cache.path())
        .await
        .unwrap();
    assert_eq!(bin.major, 15);
    assert_eq!(runs(bins.path()), 2);
}
