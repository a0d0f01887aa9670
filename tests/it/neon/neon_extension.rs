//! The `neon` extension at a primary's start on Neon storage, as the
//! reference: created in schema `neon` where the installation has it,
//! updated to the installation's version at every start (also with
//! `skip_pg_catalog_updates`), and skipped, with a log line, on an
//! installation without it (vanilla PostgreSQL).
//!
//! The installation is a private copy of PostgreSQL with a stand-in `neon`
//! extension (SQL only); the data outlives the compute, as on Neon: the
//! second start is on the first one's stopped PGDATA, served by the test
//! pageserver, with a newer extension in the installation.

use crate::common::*;
use crate::extensions::support::Install;
use crate::fake_pageserver::{archive_of, initdb_archive, Archive, FakePageserver, Options};
use crate::neon_support::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Puts a stand-in `neon` extension at `default` (1.0 or 1.1) into `install`.
fn neon_extension(install: &Install, default: &str) {
    let dir = install.extension_dir();
    let control = format!(
        "comment = 'a stand-in for Neon'\ndefault_version = '{default}'\nrelocatable = false\n"
    );
    std::fs::write(dir.join("neon.control"), control).unwrap();
    std::fs::write(
        dir.join("neon--1.0.sql"),
        "CREATE FUNCTION @extschema@.stand_in() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("neon--1.0--1.1.sql"),
        "CREATE FUNCTION @extschema@.stand_in_too() RETURNS int LANGUAGE sql AS 'SELECT 2';\n",
    )
    .unwrap();
}

/// A `postgres` that answers `--sync-safekeepers` and runs `install`'s.
fn wrapper_of(install: &Install, dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let real = install.postgres().parent().unwrap().to_path_buf();
    for tool in ["initdb", "pg_controldata", "pg_dump", "pg_basebackup"] {
        std::os::unix::fs::symlink(real.join(tool), bin.join(tool)).unwrap();
    }
    let script = format!(
        "#!/bin/bash\n\
         if [ \"$1\" = \"--sync-safekeepers\" ]; then echo {SYNC_LSN}; exit 0; fi\n\
         exec {}/postgres \"$@\"\n",
        real.display()
    );
    let path = bin.join("postgres");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

async fn on(
    archive: std::sync::Arc<Vec<u8>>,
    pgbin: &Path,
    skip: bool,
) -> (Compute, FakePageserver) {
    let ps = FakePageserver::start(Options::new(Archive::Bytes(archive))).await;
    let mut spec = neon_spec(&ps, json!("Primary"));
    spec["skip_pg_catalog_updates"] = json!(skip);
    let c = start(spec, pgbin, &[]);
    (c, ps)
}

async fn neon_extension_of(c: &Compute) -> Option<(String, String)> {
    c.client("postgres")
        .await
        .query_opt(
            "SELECT e.extversion, n.nspname::text FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'neon'",
            &[],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

fn at(version: &str) -> Option<(String, String)> {
    Some((version.to_string(), "neon".to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_neon_extension_is_created_then_updated_at_each_start() {
    let install = Install::copy(&[]);
    neon_extension(&install, "1.0");
    let tools = test_dir();
    let pgbin = wrapper_of(&install, tools.path());

    let (mut first, _ps) = on(initdb_archive(), &pgbin, false).await;
    first.wait_running();
    assert_eq!(neon_extension_of(&first).await, at("1.0"));
    first.terminate();

    // The next image has a newer extension; the catalog step is skipped,
    // the update is not.
    neon_extension(&install, "1.1");
    let (mut second, _ps) = on(archive_of(&first.pgdata()), &pgbin, true).await;
    second.wait_running();
    assert_eq!(neon_extension_of(&second).await, at("1.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_skip_pg_catalog_updates_the_neon_extension_is_not_created() {
    let install = Install::copy(&[]);
    neon_extension(&install, "1.0");
    let tools = test_dir();
    let pgbin = wrapper_of(&install, tools.path());
    let (mut c, _ps) = on(initdb_archive(), &pgbin, true).await;
    c.wait_running();
    assert_eq!(neon_extension_of(&c).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanilla_postgresql_has_no_neon_extension_and_starts_all_the_same() {
    let ps = pageserver(crate::fake_pageserver::Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let mut c = start(neon_spec(&ps, json!("Primary")), &pgbin, &[]);
    c.wait_running();
    assert_eq!(neon_extension_of(&c).await, None);
    c.assert_logged("the neon extension is not in this installation");
}
