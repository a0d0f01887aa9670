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
pub async fn ensure(client: &Client, name: &str) -> anyhow::Result<()> {
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
        return Ok(());
    }
    let sql = format!(
        "CREATE ROLE {} {CREATE_ATTRIBUTES}",
        escape_identifier(name)
    );
    client
        .batch_execute(&sql)
        .await
        .with_context(|| format!("creating the privileged role {name:?}"))?;
    info!(role = name, "created the privileged role");
    Ok(())
}
