//! Audit logging with pgaudit (and pgauditlogtofile for the compliance
//! levels): the settings of each `audit_log_level`, as the reference's, and
//! the extensions created in the `postgres` database of a primary.
//!
//! The reference appends `,pgaudit` to `shared_preload_libraries` unless the
//! list *contains the text* `pgaudit`, so a list that names only
//! `pgauditlogtofile` never gets `pgaudit` (which that library needs). Here
//! each library is looked for as an entry of the list. compute_ctl's own
//! sessions are not audited: each sets `pgaudit.log = none` at its start
//! (see `catalog::connect`), and the `postgres` database defaults to it.

use crate::options::quote_conf_value;
use crate::spec::{edge::AuditLevel, Storage, ValidSpec};
use std::fmt::Write;

/// The lines of postgresql.conf for the spec's level, after the spec's own
/// settings (so they win); empty when audit is off.
pub fn conf_lines(spec: &ValidSpec) -> String {
    let level = spec.audit_log_level;
    if !level.on() {
        return String::new();
    }
    let listed = spec
        .settings()
        .iter()
        .rev()
        .find(|s| s.name.eq_ignore_ascii_case("shared_preload_libraries"))
        .and_then(|s| s.value.clone());
    let mut libraries: Vec<String> = match listed {
        Some(list) => list
            .split(',')
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        // The reference's default is Neon's library; a vanilla postgres has none.
        None if matches!(spec.storage(), Storage::Neon { .. }) => vec!["neon".into()],
        None => vec![],
    };
    let mut wanted = vec!["pgaudit"];
    if level.to_files() {
        wanted.push("pgauditlogtofile");
    }
    for lib in wanted {
        if !libraries.iter().any(|l| l == lib) {
            libraries.push(lib.to_string());
        }
    }
    let preload = quote_conf_value(&libraries.join(","));
    let mut out = String::new();
    if level.to_files() {
        let (parameter, log) = match level {
            AuditLevel::Full => ("on", "all"),
            _ => ("off", "all, -misc"),
        };
        out.push_str("# Managed by compute_ctl compliance audit settings: begin\n");
        let _ = writeln!(out, "pgaudit.log_parameter={parameter}");
        let _ = writeln!(out, "pgaudit.log={}", quote_conf_value(log));
        out.push_str("pgaudit.log_catalog=off\n");
        out.push_str("pgaudit.log_rotation_age=5\n");
        let _ = writeln!(out, "shared_preload_libraries={preload}");
        out.push_str("# Managed by compute_ctl compliance audit settings: end\n");
    } else {
        out.push_str("# Managed by compute_ctl base audit settings: start\n");
        out.push_str("pgaudit.log='ddl,role'\n");
        out.push_str("pgaudit.log_catalog=off\n");
        let _ = writeln!(out, "shared_preload_libraries={preload}");
        out.push_str("# Managed by compute_ctl base audit settings: end\n");
    }
    out
}

/// The statements a primary runs in its `postgres` database for the level
/// (the reference's last phases of the catalog apply).
pub fn catalog_statements(level: AuditLevel) -> Vec<&'static str> {
    let mut out = vec![];
    if level.on() {
        out.push("CREATE EXTENSION IF NOT EXISTS pgaudit WITH SCHEMA public");
    }
    if level.to_files() {
        out.push("CREATE EXTENSION IF NOT EXISTS pgauditlogtofile WITH SCHEMA public");
    }
    if level.on() {
        out.push("ALTER DATABASE postgres SET pgaudit.log TO 'none'");
    }
    out
}

#[cfg(test)]
mod tests;

/// Creates the level's extensions on a running primary, once per spec
/// that asks for audit (the reference's last catalog phases); a failure is
/// logged and tried again at the next poll.
pub fn spawn(handle: crate::driver::Handle) {
    tokio::spawn(async move {
        let mut done: Option<usize> = None;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let snap = handle.snapshot();
            let Some(spec) = snap.spec else { continue };
            let id = std::sync::Arc::as_ptr(&spec) as usize;
            if done == Some(id)
                || snap.status != compute_states::Status::Running
                || spec.mode != crate::spec::ComputeMode::Primary
                || spec.skip_pg_catalog_updates
                || !spec.audit_log_level.on()
            {
                continue;
            }
            match create_extensions(&handle, spec.audit_log_level).await {
                Ok(()) => done = Some(id),
                Err(e) => tracing::warn!("audit: creating pgaudit's extensions: {e:#}"),
            }
        }
    });
}

async fn create_extensions(
    handle: &crate::driver::Handle,
    level: AuditLevel,
) -> anyhow::Result<()> {
    let connector = handle
        .request(|reply| crate::driver::Request::Connect { reply })
        .await?;
    let client = connector.connect("postgres").await?;
    for sql in catalog_statements(level) {
        client.batch_execute(sql).await?;
    }
    tracing::info!(level = %level, "audit: pgaudit's extensions are in place");
    Ok(())
}
