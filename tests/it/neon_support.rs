//! The Neon storage stand-ins shared by the Neon tests: a `postgres` that
//! answers `--sync-safekeepers` as Neon's does, a spec on the test
//! pageserver, and a compute started on them.

#![allow(dead_code)]

use crate::common::*;
use crate::fake_pageserver::{
    initdb_archive, pg_bindir, Archive, Behaviour, FakePageserver, Options,
};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const TENANT: &str = "0123456789abcdef0123456789abcdef";
pub const TIMELINE: &str = "fedcba9876543210fedcba9876543210";
pub const SYNC_LSN: &str = "0/16B3748";
pub const SAFEKEEPERS: &str = "sk-1:5454,sk-2:5454";

/// What the stand-in does when called with `--sync-safekeepers`.
pub enum Sync {
    /// Prints the LSN.
    Ok,
    /// Fails this many times, then prints the LSN.
    FailFirst(u32),
    /// Prints the LSN this many times, then fails.
    FailAfter(u32),
    /// Never answers.
    Hang,
}

/// A pgbin directory whose `postgres` answers `--sync-safekeepers` itself
/// and runs the real postgres otherwise; the other tools are the real ones.
///
/// Like Neon's postgres, the stand-in reads the safekeepers, tenant and
/// timeline from `$PGDATA/postgresql.conf` and fails when they are not
/// there. It prints the LSN in `state.lsn` next to it when that file
/// exists, else [`SYNC_LSN`].
pub fn wrapper_pgbin(dir: &Path, sync: Sync) -> PathBuf {
    wrapper_pgbin_serving(dir, sync, "")
}

/// [`wrapper_pgbin`] whose postmaster (`postgres -D ...`) also gets
/// `server_args`, after compute_ctl's own (e.g. `-c port=N`, which then
/// wins over the configuration file).
pub fn wrapper_pgbin_serving(dir: &Path, sync: Sync, server_args: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let real = pg_bindir();
    for tool in ["initdb", "pg_controldata", "pg_dump", "pg_basebackup"] {
        std::os::unix::fs::symlink(real.join(tool), bin.join(tool)).unwrap();
    }
    let count = "n=$(cat \"$STATE\" 2>/dev/null || echo 0); echo $((n+1)) > \"$STATE\"\n";
    let behaviour = match sync {
        Sync::Ok => String::new(),
        Sync::FailFirst(n) => format!(
            "{count}if [ \"$n\" -lt {n} ]; then echo \"safekeepers unreachable (attempt $n)\" >&2; exit 1; fi\n"
        ),
        Sync::FailAfter(n) => format!(
            "{count}if [ \"$n\" -ge {n} ]; then echo \"safekeepers unreachable (call $n)\" >&2; exit 1; fi\n"
        ),
        Sync::Hang => "echo $$ > \"$STATE.pid\"; sleep 1000\n".to_string(),
    };
    let conf_check = format!(
        "conf=\"$PGDATA/postgresql.conf\"\n\
         for want in \"neon.safekeepers = '{SAFEKEEPERS}'\" \"neon.tenant_id = '{TENANT}'\" \"neon.timeline_id = '{TIMELINE}'\"; do\n\
           if ! grep -qxF \"$want\" \"$conf\" 2>/dev/null; then\n\
             echo \"sync-safekeepers: $conf lacks $want\" >> \"$STATE.log\"\n\
             echo \"FATAL: no safekeepers, tenant or timeline in $conf\" >&2; exit 1\n\
           fi\n\
         done\n"
    );
    let state = bin.join("state");
    let script = format!(
        "#!/bin/bash\n\
         STATE={state}\n\
         if [ \"$1\" = \"--sync-safekeepers\" ]; then\n\
           echo \"PGDATA=$PGDATA TOKEN=$NEON_AUTH_TOKEN\" >> \"$STATE.log\"\n\
           {conf_check}\
           {behaviour}\
           if [ -f \"$STATE.lsn\" ]; then cat \"$STATE.lsn\"; else echo \"{SYNC_LSN}\"; fi\n\
           exit 0\n\
         fi\n\
         if [ \"$1\" = \"-D\" ]; then exec {real}/postgres \"$@\" {server_args}; fi\n\
         exec {real}/postgres \"$@\"\n",
        state = state.display(),
        real = real.display(),
    );
    let path = bin.join("postgres");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The stand-in runs as the postgres user and keeps its state here.
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o1777)).unwrap();
    path
}

pub fn neon_spec(ps: &FakePageserver, mode: Value) -> Value {
    json!({
        "format_version": 1.0,
        "mode": mode,
        "tenant_id": TENANT,
        "timeline_id": TIMELINE,
        "pageserver_connstring": ps.connstring(),
        "safekeeper_connstrings": SAFEKEEPERS.split(',').collect::<Vec<_>>(),
        "storage_auth_token": "storage-secret-token",
        "cluster": {
            "roles": [{"name": "app user", "encrypted_password": null}],
            "databases": [{"name": "app db", "owner": "app user"}]
        }
    })
}

pub async fn pageserver(behaviour: Behaviour) -> FakePageserver {
    let mut opts = Options::new(Archive::Bytes(initdb_archive()));
    opts.behaviour = behaviour;
    FakePageserver::start(opts).await
}

/// A compute on the fake storage; the archive's superuser is `postgres`.
pub fn start(spec: Value, pgbin: &Path, extra: &[&str]) -> Compute {
    Compute::start_with(neon_opts(spec, pgbin, extra))
}

/// What [`start`] starts, for a test to change more of it.
pub fn neon_opts(spec: Value, pgbin: &Path, extra: &[&str]) -> Opts {
    let mut args = vec!["-b".to_string(), pgbin.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    Opts {
        spec: Some(spec),
        extra_args: args,
        superuser: "postgres".into(),
        ..Opts::default()
    }
}

/// A setting as a new superuser session of `c` shows it.
pub async fn show(c: &Compute, name: &str) -> String {
    let client = c.client("postgres").await;
    let row = client.query_one(&format!("SHOW {name}"), &[]).await;
    row.unwrap_or_else(|e| panic!("SHOW {name}: {e}")).get(0)
}
