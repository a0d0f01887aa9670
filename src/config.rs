//! postgresql.conf and pg_hba.conf, rendered from the spec (pure) and
//! written; the reload, and the barrier that waits until it took effect.

use crate::connect::Connector;
pub use crate::options::quote_conf_value;
use crate::options::setting_line;
use crate::spec::{ComputeMode, Storage, ValidSpec};
use anyhow::{bail, Context, Result};
use std::fmt::Write;
use std::path::Path;

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
    /// TLS for clients and the rest of the edge (none in a template's
    /// configuration or a pure rendering).
    pub edge: Option<&'a crate::edge::Edge>,
    /// The internal HTTP port, where Neon's postgres asks for remote
    /// extensions (`neon.extension_server_port`, read at its start).
    pub extension_server_port: Option<u16>,
    /// Whether logical replication's subscribers are held back
    /// (`neon.disable_logical_replication_subscribers`): while a start with
    /// `drop_subscriptions_before_start` has not dropped the copied
    /// subscriptions yet.
    pub hold_subscribers: bool,
}

/// The full postgresql.conf for `spec`.
///
/// Order: compute_ctl's own defaults (lowest precedence), the spec's raw
/// `postgresql_conf`, storage settings, the mode (`neon.compute_mode`, and
/// `hot_standby`/`recovery_target_lsn` for read-only computes), the locales
/// on Neon storage, `port`, the spec's settings between the markers, the
/// socket directory (after the spec: see [`pg_hba_conf`]), and the include
/// of the override file last.
pub fn postgresql_conf(spec: &ValidSpec, p: &ConfigParams) -> String {
    let mut out = String::new();
    out.push_str("# Written by compute_ctl from the compute spec; rewritten at every start.\n");
    out.push_str("# Defaults of compute_ctl (anything below overrides them):\n");
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
    out.push_str(&storage_lines(spec));
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
    out.push_str(&edge_lines(spec, p));
    // As the reference, after the spec's settings (so they win), inert on
    // vanilla PostgreSQL.
    if let Some(port) = p.extension_server_port {
        let _ = writeln!(out, "neon.extension_server_port = {port}");
    }
    let _ = writeln!(
        out,
        "neon.disable_logical_replication_subscribers = {}",
        p.hold_subscribers
    );
    // After the spec's text and settings, so neither can move the socket the
    // superuser is trusted on (a second directory such as /tmp, or an
    // abstract `@name`, would be open to every local user).
    out.push_str(
        "# The superuser's socket: compute_ctl's private directory, whatever the spec says.\n",
    );
    let _ = writeln!(
        out,
        "unix_socket_directories = {}",
        quote_conf_value(&p.socket_dir.to_string_lossy())
    );
    let _ = writeln!(
        out,
        "include_if_exists = {}",
        quote_conf_value(OVERRIDE_FILE)
    );
    out
}

/// The edge's lines (TLS, audit), after the spec's settings so that the spec
/// cannot turn off what the deployment turned on.
fn edge_lines(spec: &ValidSpec, p: &ConfigParams) -> String {
    let tls = match p.edge.and_then(|e| e.tls_for(&spec.features)) {
        Some(_) => format!(
            "# TLS for clients (compute_ctl_config.tls; copied into PGDATA):\n{}",
            crate::edge::tls::conf_lines()
        ),
        None => String::new(),
    };
    tls + &crate::edge::audit::conf_lines(spec)
}

/// What the edge puts into PGDATA before postgresql.conf names it: the
/// TLS pair, checked (a key that is not the certificate's is an error naming
/// both files, and nothing is written).
fn write_edge_files(pgdata: &Path, spec: &ValidSpec, p: &ConfigParams) -> Result<()> {
    if let Some(edge) = p.edge {
        if spec.audit_log_level.to_files() && edge.audit_endpoint.is_none() {
            bail!(
                "audit_log_level {} ships audit files, but AUDIT_LOGGING_ENDPOINT and \
                 AUDIT_LOGGING_TLS_ENDPOINT are both empty",
                spec.audit_log_level
            );
        }
        if let Some(tls) = edge.tls_for(&spec.features) {
            edge.install_tls(tls, pgdata)?;
        }
    }
    Ok(())
}

/// The settings that name the storage a compute reads and writes: what a
/// rollback must never take back once a new spec moved the compute.
const STORAGE_SETTINGS: [&str; 3] = [
    "neon.stripe_size",
    "neon.pageserver_connstring",
    "neon.safekeepers",
];

/// The storage lines of postgresql.conf, in the reference's order: the
/// stripe size (when sharded), the pageservers (each shard's, comma-separated
/// in shard order), the safekeepers (with their generation as the `g#<n>:`
/// prefix the walproposer reads), then the tenant, timeline, project, branch
/// and endpoint, each only when the spec has it.
fn storage_lines(spec: &ValidSpec) -> String {
    let mut out = String::new();
    if let Some(stripe) = spec.shard_stripe_size {
        let _ = writeln!(out, "neon.stripe_size = {stripe}");
    }
    if let Some(ps) = &spec.pageserver_connstring {
        let _ = writeln!(
            out,
            "neon.pageserver_connstring = {}",
            quote_conf_value(ps.expose())
        );
    }
    if !spec.safekeeper_connstrings.is_empty() {
        let generation = spec
            .safekeepers_generation
            .map(|g| format!("g#{g}:"))
            .unwrap_or_default();
        let list = spec.safekeeper_connstrings.join(",");
        let _ = writeln!(
            out,
            "neon.safekeepers = {}",
            quote_conf_value(&format!("{generation}{list}"))
        );
    }
    let ids = [
        ("neon.tenant_id", &spec.tenant_id),
        ("neon.timeline_id", &spec.timeline_id),
        ("neon.project_id", &spec.project_id),
        ("neon.branch_id", &spec.branch_id),
        ("neon.endpoint_id", &spec.endpoint_id),
    ];
    for (name, value) in ids {
        if let Some(v) = value {
            let _ = writeln!(out, "{name} = {}", quote_conf_value(v));
        }
    }
    out
}

/// `previous` (a postgresql.conf) with its storage settings replaced by
/// `spec`'s: what a rollback writes, so that putting the previous
/// configuration back never puts back a pageserver or safekeepers the new
/// spec moved the compute away from (they may be gone). The new lines go
/// just before the override file's include, which stays last.
pub fn keeping_storage_of(previous: &str, spec: &ValidSpec) -> String {
    let names_storage = |line: &str| {
        let name: String = line
            .trim_start()
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '=')
            .collect();
        STORAGE_SETTINGS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&name))
    };
    let kept: String = previous
        .lines()
        .filter(|l| names_storage(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let storage = storage_only(spec);
    if kept == storage {
        // The spec moved nothing: the previous file as it was.
        return previous.to_string();
    }
    let include = format!("include_if_exists = {}", quote_conf_value(OVERRIDE_FILE));
    let mut out = String::new();
    let mut placed = false;
    for line in previous.lines() {
        if names_storage(line) {
            continue;
        }
        if !placed && line.trim() == include {
            if !storage.is_empty() {
                out.push_str("# Kept from the spec the compute moved to:\n");
                out.push_str(&storage);
            }
            placed = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !placed {
        out.push_str(&storage);
    }
    out
}

/// The lines of [`storage_lines`] that set [`STORAGE_SETTINGS`].
fn storage_only(spec: &ValidSpec) -> String {
    storage_lines(spec)
        .lines()
        .filter(|l| STORAGE_SETTINGS.iter().any(|s| l.starts_with(s)))
        .map(|l| format!("{l}\n"))
        .collect()
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
/// rename, so postgres never reads a half-written file on reload. PGDATA
/// belongs to postgres: the files are written through a handle on it,
/// never through a name postgres put there (see `safe_fs`).
pub fn write(pgdata: &Path, spec: &ValidSpec, p: &ConfigParams) -> Result<()> {
    write_edge_files(pgdata, spec, p)?;
    write_atomic(&pgdata.join("postgresql.conf"), &postgresql_conf(spec, p))?;
    write_atomic(&pgdata.join("pg_hba.conf"), &pg_hba_conf(p))?;
    // The override file is there, empty, as the reference leaves it (it
    // truncates it, never removes it): postgres' every process logs a line
    // for a missing included file at each reload otherwise.
    let override_file = pgdata.join(OVERRIDE_FILE);
    if std::fs::symlink_metadata(&override_file).is_err() {
        empty_override(pgdata)?;
    }
    Ok(())
}

/// Replaces `path` with `text`: a new file under an unpredictable name,
/// created exclusively in `path`'s directory (opened without following a
/// symlink), given the directory's owner and mode 0600 on its descriptor,
/// renamed over `path`. A symlink or a file planted at `path` or beside it
/// is replaced, never written through.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        bail!("{} names no file in a directory", path.display());
    };
    let dir = crate::safe_fs::Dir::open(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })?;
    // Postgres (the directory's owner) must read it.
    let owner = dir.owner()?;
    dir.replace(name, text.as_bytes(), 0o600, Some(owner))
        .with_context(|| format!("writing {}", path.display()))
}

/// What the override file holds while compute_ctl applies a spec to a
/// catalog on Neon storage: a project at its size limit still gets its
/// roles and databases (Neon's postgres refuses to grow past
/// `neon.max_cluster_size` otherwise), as the reference does.
pub const SIZE_LIMIT_LIFTED: &str = "neon.max_cluster_size=-1\n";

/// Lifts the size limit for the apply to come: the override file (included
/// last, so it wins) says [`SIZE_LIMIT_LIFTED`]. Before postgres starts, or
/// before the reload that precedes the apply.
pub fn lift_size_limit(pgdata: &Path) -> Result<()> {
    write_atomic(&pgdata.join(OVERRIDE_FILE), SIZE_LIMIT_LIFTED)
        .context("lifting the size limit for the catalog's apply")
}

/// What the override file holds while compute_ctl applies a plan that
/// creates databases in bulk on local storage (see `driver::bulk`): their
/// copies and commits are not synced, which on a PGDATA made again at every
/// start loses nothing. Never beside [`SIZE_LIMIT_LIFTED`], which is Neon
/// storage's.
pub const FSYNC_LIFTED: &str = "fsync=off\n";

/// Lifts `fsync` for the apply to come (the override file says
/// [`FSYNC_LIFTED`]); a reload follows.
pub fn lift_fsync(pgdata: &Path) -> Result<()> {
    write_atomic(&pgdata.join(OVERRIDE_FILE), FSYNC_LIFTED)
        .context("lifting fsync for the catalog's apply")
}

/// Empties the override file (as the reference leaves it after an apply),
/// without a reload: for a rollback whose own reload follows.
pub fn empty_override(pgdata: &Path) -> Result<()> {
    write_atomic(&pgdata.join(OVERRIDE_FILE), "").context("emptying the override file")
}

/// Puts the size limit back after an apply, whether it failed or not: the
/// override file emptied (as the reference leaves it), then a reload,
/// confirmed as [`reload_and_wait`] does.
pub async fn restore_size_limit(
    pgdata: &Path,
    connector: &Connector,
    postmaster: i32,
) -> Result<()> {
    restore_size_limit_on(pgdata, connector, postmaster, None).await
}

/// [`restore_size_limit`], its reload confirmed on `idle` when given (see
/// [`reload_and_wait_on`]).
pub(crate) async fn restore_size_limit_on(
    pgdata: &Path,
    connector: &Connector,
    postmaster: i32,
    idle: Option<crate::connect::Connection>,
) -> Result<()> {
    if let Err(e) = empty_override(pgdata) {
        if let Some(conn) = idle {
            conn.close().await;
        }
        return Err(e);
    }
    reload_and_wait_on(connector, connector.maintenance_db(), postmaster, idle)
        .await
        .context("reloading with the size limit back")?;
    Ok(())
}

mod reload;
pub use reload::reload_and_wait;
pub(crate) use reload::reload_and_wait_on;
pub(crate) use reload::{reload_and_confirm, reload_confirmed_on, ReloadSession};

#[cfg(test)]
mod tests_storage;

#[cfg(test)]
mod tests;
