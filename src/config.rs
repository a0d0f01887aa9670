//! postgresql.conf and pg_hba.conf, rendered from the spec (pure) and
//! written; the reload, and the barrier that waits until it took effect.

use crate::catalog::Connector;
pub use crate::options::quote_conf_value;
use crate::options::setting_line;
use crate::spec::{ComputeMode, Storage, ValidSpec};
use anyhow::{bail, Context, Result};
use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Marks the start of the settings block compute_ctl manages.
pub const BEGIN_MARKER: &str = "# Managed by compute_ctl: begin";
/// Marks its end.
pub const END_MARKER: &str = "# Managed by compute_ctl: end";
/// File a human may create to override settings at run time; included last.
pub const OVERRIDE_FILE: &str = "compute_ctl_temp_override.conf";

/// Facts about this compute that go into the configuration besides the spec.
#[derive(Debug, Clone)]
pub struct ConfigParams<'a> {
    /// The port postgres listens on (from the connstr).
    pub port: u16,
    /// The superuser (from the connstr): trusted on the Unix socket only.
    pub superuser: &'a str,
    /// Where postgres puts its Unix socket: a directory only postgres' user
    /// (and root, and the `--socket-group`) may enter.
    pub socket_dir: &'a Path,
    /// The privileged role, shown as `neon.privileged_role_name`.
    pub privileged_role: Option<&'a str>,
}

/// The full postgresql.conf for `spec`.
///
/// Order: compute_ctl's own defaults (lowest precedence), the spec's raw
/// `postgresql_conf`, storage settings, the mode (`neon.compute_mode`, and
/// `hot_standby`/`recovery_target_lsn` for read-only computes), the locales
/// on Neon storage, `port`, the spec's settings between the markers, and
/// the include of the override file last.
pub fn postgresql_conf(spec: &ValidSpec, p: &ConfigParams) -> String {
    let mut out = String::new();
    out.push_str("# Written by compute_ctl from the compute spec; rewritten at every start.\n");
    out.push_str("# Defaults of compute_ctl (anything below overrides them):\n");
    let _ = writeln!(
        out,
        "unix_socket_directories = {}",
        quote_conf_value(&p.socket_dir.to_string_lossy())
    );
    if let Some(role) = p.privileged_role {
        let _ = writeln!(
            out,
            "neon.privileged_role_name = {}",
            quote_conf_value(role)
        );
    }
    if let Some(raw) = &spec.cluster.postgresql_conf {
        out.push_str(raw);
        if !raw.ends_with('\n') {
            out.push('\n');
        }
    }
    let storage = [
        (
            "neon.pageserver_connstring",
            spec.pageserver_connstring.as_ref().map(|s| s.expose()),
        ),
        ("neon.tenant_id", spec.tenant_id.as_deref()),
        ("neon.timeline_id", spec.timeline_id.as_deref()),
    ];
    for (name, value) in storage {
        if let Some(v) = value {
            let _ = writeln!(out, "{name} = {}", quote_conf_value(v));
        }
    }
    if !spec.safekeeper_connstrings.is_empty() {
        let _ = writeln!(
            out,
            "neon.safekeepers = {}",
            quote_conf_value(&spec.safekeeper_connstrings.join(","))
        );
    }
    // The mode, for Neon's postgres and the pageserver; a static compute
    // replays up to its LSN and stops there.
    let mode = match spec.mode {
        ComputeMode::Primary => "primary",
        ComputeMode::Replica => "replica",
        ComputeMode::Static(_) => "static",
    };
    let _ = writeln!(out, "neon.compute_mode = {}", quote_conf_value(mode));
    match spec.mode {
        ComputeMode::Primary => {}
        ComputeMode::Replica => out.push_str("hot_standby = on\n"),
        ComputeMode::Static(lsn) => {
            out.push_str("hot_standby = on\n");
            let _ = writeln!(
                out,
                "recovery_target_lsn = {}",
                quote_conf_value(&lsn.to_string())
            );
        }
    }
    // As the reference's computes: messages and formats in C.UTF-8 on Neon
    // storage, whatever the pageserver's initdb had.
    if matches!(spec.storage(), Storage::Neon { .. }) {
        for name in ["lc_messages", "lc_monetary", "lc_numeric", "lc_time"] {
            let _ = writeln!(out, "{name} = 'C.UTF-8'");
        }
    }
    let _ = writeln!(out, "port = {}", p.port);
    out.push_str(BEGIN_MARKER);
    out.push('\n');
    for s in spec.settings() {
        out.push_str(&setting_line(s));
        out.push('\n');
    }
    out.push_str(END_MARKER);
    out.push('\n');
    let _ = writeln!(
        out,
        "include_if_exists = {}",
        quote_conf_value(OVERRIDE_FILE)
    );
    out
}

/// pg_hba.conf: the superuser is trusted on the Unix socket only, whose
/// directory only postgres' user, root (compute_ctl) and the `--socket-group`
/// may enter; over TCP, loopback included, it is like everyone else: a
/// password (`md5` accepts both md5 and SCRAM verifiers), which the
/// superuser has none of unless a deployment gives it one. Everyone else
/// authenticates with a password from anywhere `listen_addresses` allows.
pub fn pg_hba_conf(p: &ConfigParams) -> String {
    let su = hba_quote(p.superuser);
    format!(
        "# Written by compute_ctl; rewritten at every start.\n\
         # TYPE  DATABASE     USER  ADDRESS       METHOD\n\
         local   all          {su}  trust\n\
         local   replication  {su}  trust\n\
         local   all          all   md5\n\
         host    all          all   0.0.0.0/0     md5\n\
         host    all          all   ::/0          md5\n\
         host    replication  all   0.0.0.0/0     md5\n\
         host    replication  all   ::/0          md5\n"
    )
}

/// pg_hba.conf quotes names in double quotes; the superuser name is checked
/// at start-up to contain no `"` or whitespace, so quoting is enough.
fn hba_quote(name: &str) -> String {
    format!("\"{name}\"")
}

/// Writes both files into `pgdata`, each through a temporary file and a
/// rename, so postgres never reads a half-written file on reload.
pub fn write(pgdata: &Path, spec: &ValidSpec, p: &ConfigParams) -> Result<()> {
    write_atomic(&pgdata.join("postgresql.conf"), &postgresql_conf(spec, p))?;
    write_atomic(&pgdata.join("pg_hba.conf"), &pg_hba_conf(p))?;
    Ok(())
}

/// Replaces `path` with `text` (a rename, keeping the old file's owner and mode).
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("conf.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    // Keep the owner and mode of the file we replace (postgres must read it).
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        std::fs::set_permissions(&tmp, meta.permissions()).ok();
        std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()))
            .with_context(|| format!("chown {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))
}

/// How long to wait for postgres to take a reload into account.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Reloads postgres and returns once a new connection sees the new
/// configuration: its `pg_conf_load_time()` is later than before the reload.
/// Lines postgres rejected are an error; settings that need a restart are returned.
pub async fn reload_and_wait(
    connector: &Connector,
    db: &str,
    postmaster: i32,
) -> Result<Vec<String>> {
    const LOAD_TIME: &str = "SELECT pg_catalog.pg_conf_load_time()::pg_catalog.text, \
                             EXTRACT(epoch FROM pg_catalog.pg_conf_load_time())::pg_catalog.float8";
    let client = connector
        .connect(db)
        .await
        .context("connecting to reload")?;
    let before: f64 = client.query_one(LOAD_TIME, &[]).await?.get(1);
    // pg_file_settings parses the files as they are now: a line postgres
    // cannot parse would make it ignore the whole file on reload. (A row
    // without a file is a restart-only setting removed from the file: it is
    // pending a restart, not broken.)
    let broken: Vec<String> = client
        .query(
            "SELECT pg_catalog.format('%s:%s: %s', sourcefile, sourceline, error) \
             FROM pg_catalog.pg_file_settings \
             WHERE error IS NOT NULL AND name IS NULL AND sourcefile IS NOT NULL",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !broken.is_empty() {
        bail!(
            "postgres cannot parse the configuration: {}",
            broken.join("; ")
        );
    }
    drop(client);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(postmaster),
        nix::sys::signal::Signal::SIGHUP,
    )
    .context("sending SIGHUP to postgres")?;
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    let client = loop {
        // A new backend inherits the postmaster's configuration and load time.
        let client = connector
            .connect(db)
            .await
            .context("connecting after the reload")?;
        let now: f64 = client.query_one(LOAD_TIME, &[]).await?.get(1);
        if now > before {
            break client;
        }
        if Instant::now() > deadline {
            bail!("postgres did not reload its configuration within {RELOAD_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let pending: Vec<String> = client
        .query(
            "SELECT name FROM pg_catalog.pg_settings WHERE pending_restart ORDER BY name",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let rejected: Vec<String> = client
        .query(
            "SELECT pg_catalog.format('%s (%s:%s): %s', name, sourcefile, sourceline, error) \
             FROM pg_catalog.pg_file_settings \
             WHERE error IS NOT NULL AND sourcefile IS NOT NULL \
               AND (name IS NULL OR name <> ALL($1)) \
             ORDER BY sourcefile, sourceline",
            &[&pending],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !rejected.is_empty() {
        bail!(
            "postgres rejected the configuration: {}",
            rejected.join("; ")
        );
    }
    Ok(pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> ValidSpec {
        ValidSpec::from_json(&json.to_string()).unwrap()
    }

    fn params() -> ConfigParams<'static> {
        ConfigParams {
            port: 55432,
            superuser: "cloud_admin",
            socket_dir: Path::new("/tmp"),
            privileged_role: None,
        }
    }

    #[test]
    fn conf_has_the_contract_order() {
        let s = spec(serde_json::json!({
            "format_version": 1.0,
            "mode": "Replica",
            "primary_connstring": "host=primary",
            "cluster": {
                "postgresql_conf": "shared_buffers = 1MB",
                "settings": [
                    {"name": "work_mem", "value": "4MB", "vartype": "integer"},
                    {"name": "search_path", "value": "it's \\ here", "vartype": "string"}
                ]
            }
        }));
        let conf = postgresql_conf(&s, &params());
        let pos = |needle: &str| {
            conf.find(needle)
                .unwrap_or_else(|| panic!("{needle} missing:\n{conf}"))
        };
        assert!(pos("unix_socket_directories = '/tmp'") < pos("shared_buffers = 1MB"));
        assert!(pos("shared_buffers = 1MB") < pos("hot_standby = on"));
        assert!(pos("hot_standby = on") < pos("port = 55432"));
        assert!(pos("port = 55432") < pos(BEGIN_MARKER));
        assert!(pos(BEGIN_MARKER) < pos("work_mem = 4MB"));
        assert!(pos("search_path = 'it''s \\\\ here'") < pos(END_MARKER));
        assert!(conf.ends_with("include_if_exists = 'compute_ctl_temp_override.conf'\n"));
    }

    #[test]
    fn every_mode_is_written_and_static_stops_at_its_lsn() {
        let conf = |mode: serde_json::Value, neon: bool| {
            let mut v = serde_json::json!({"format_version": 1.0, "mode": mode, "cluster": {}});
            if neon {
                v["pageserver_connstring"] = "postgresql://ps:6400".into();
                v["tenant_id"] = "0123456789abcdef0123456789abcdef".into();
                v["timeline_id"] = "0123456789abcdef0123456789abcdef".into();
                v["safekeeper_connstrings"] = serde_json::json!(["sk:5454"]);
            }
            postgresql_conf(&spec(v), &params())
        };
        let primary = conf("Primary".into(), true);
        assert!(primary.contains("neon.compute_mode = 'primary'\n"));
        assert!(!primary.contains("hot_standby") && !primary.contains("recovery_target"));
        for lc in ["lc_messages", "lc_monetary", "lc_numeric", "lc_time"] {
            assert!(
                primary.contains(&format!("{lc} = 'C.UTF-8'\n")),
                "{primary}"
            );
        }
        let replica = conf("Replica".into(), true);
        assert!(replica.contains("neon.compute_mode = 'replica'\nhot_standby = on\n"));
        let stat = conf(serde_json::json!({"Static": "0/16B3748"}), true);
        assert!(
            stat.contains(
                "neon.compute_mode = 'static'\nhot_standby = on\nrecovery_target_lsn = '0/16B3748'\n"
            ),
            "{stat}"
        );
        // Local storage keeps postgres' own locales.
        let local = conf("Primary".into(), false);
        assert!(local.contains("neon.compute_mode = 'primary'"));
        assert!(!local.contains("lc_messages"));
    }

    #[test]
    fn hba_trusts_only_the_superuser() {
        let hba = pg_hba_conf(&params());
        let trusted: Vec<&str> = hba.lines().filter(|l| l.ends_with("trust")).collect();
        assert_eq!(trusted.len(), 2, "{hba}");
        for line in trusted {
            // On the socket only: TCP, loopback included, is any local uid's.
            assert!(line.starts_with("local "), "{line}");
            assert!(line.contains("\"cloud_admin\""), "{line}");
        }
        assert!(
            !hba.contains("127.0.0.1") && !hba.contains("::1/128"),
            "{hba}"
        );
        assert!(hba.contains("host    all          all   0.0.0.0/0     md5"));
    }
}
