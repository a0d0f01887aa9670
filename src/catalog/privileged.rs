//! The privileged role (`--privileged-role-name`, `neon_superuser` by
//! default): what the users of a Neon compute get instead of a superuser.
//!
//! It is created at start if missing, without LOGIN, and is given its
//! attributes and predefined-role memberships by the migrations (see
//! [`super::migrations`]). The spec's roles are created as its members and
//! each spec database grants it ALL (see the planner).

use anyhow::Context;
use postgres_protocol::escape::escape_identifier;
use tokio_postgres::Client;
use tracing::info;

/// The reference's default privileged role.
pub const DEFAULT_PRIVILEGED_ROLE: &str = "neon_superuser";

/// What the privileged role is created with, after its name.
pub(crate) const CREATE_ATTRIBUTES: &str = "NOSUPERUSER NOLOGIN INHERIT CREATEROLE CREATEDB \
    REPLICATION BYPASSRLS IN ROLE pg_read_all_data, pg_write_all_data";

/// Checks a privileged role name as the reference does: not empty, at most
/// 63 bytes, only lowercase ASCII letters, digits and `_`, not starting with
/// a digit, and not one of postgres' reserved `pg_` names.
pub fn check_privileged_role_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let first_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    if !ok_chars || !first_ok || name.len() > 63 {
        return Err(format!(
            "invalid privileged role name {name:?}: use 1 to 63 lowercase letters, digits or '_', not starting with a digit"
        ));
    }
    if name.starts_with("pg_") {
        return Err(format!(
            "invalid privileged role name {name:?}: pg_ names are reserved by postgres"
        ));
    }
    Ok(())
}

/// Creates the privileged role if it does not exist, with the reference's
/// attributes: not a superuser, no LOGIN, CREATEROLE, CREATEDB, REPLICATION,
/// BYPASSRLS, member of pg_read_all_data and pg_write_all_data. (The
/// migrations make sure of the attributes and the other memberships.)
#[cfg(test)]
pub async fn ensure(client: &Client, name: &str) -> anyhow::Result<()> {
    if ensure_unflushed(client, name).await? {
        flush(client).await?;
    }
    Ok(())
}

/// `ensure`, without waiting for the WAL flush of the creation (a
/// commit's fsync, tens of ms on a busy disk); true when it created the
/// role, whose creation then becomes durable with the next durable commit
/// (see `catalog::start` on why a start needs no flush of its own).
pub(crate) async fn ensure_unflushed(client: &Client, name: &str) -> anyhow::Result<bool> {
    check_privileged_role_name(name).map_err(anyhow::Error::msg)?;
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) $1",
            &[&name],
        )
        .await
        .context("looking for the privileged role")?
        .is_some();
    if exists {
        return Ok(false);
    }
    let sql = format!(
        "BEGIN; SET LOCAL synchronous_commit = off; CREATE ROLE {} {CREATE_ATTRIBUTES}; COMMIT",
        escape_identifier(name)
    );
    if let Err(e) = client.batch_execute(&sql).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(e).with_context(|| format!("creating the privileged role {name:?}"));
    }
    info!(role = name, "created the privileged role");
    Ok(true)
}

/// Waits until everything committed so far is on disk: a durable commit
/// that writes (an empty transaction commits without waiting).
#[cfg(test)]
pub(crate) async fn flush(client: &Client) -> anyhow::Result<()> {
    client
        .batch_execute(
            "BEGIN; SET LOCAL synchronous_commit = on; \
             CREATE TEMPORARY TABLE IF NOT EXISTS compute_ctl_flush () ON COMMIT DROP; COMMIT",
        )
        .await
        .context("flushing the WAL")
}
