//! The privileged role's default privileges, once in `template1` rather than
//! once in every new database.
//!
//! Each database the spec creates must give the privileged role ALL on the
//! tables and sequences the superuser creates later in its schema public
//! (with grant option). `CREATE DATABASE` copies the template's
//! `pg_default_acl` (and the shared dependencies that go with it), so when
//! `template1` carries them, a database made from it has them from birth:
//! no connection into each new database and no commit there. A reconcile
//! that creates databases looks at `template1` first (and, when allowed,
//! gives it the default privileges it lacks); the planner falls back to a
//! statement in each new database when the template could not be seen or
//! prepared, and for a database the spec makes from another template.

use crate::connect::Connector;
use anyhow::Context;
use postgres_protocol::escape::escape_identifier;
use std::time::{Duration, Instant};
use tokio_postgres::Client;
use tracing::{info, warn};

/// The database `CREATE DATABASE` copies when it names no template.
pub(crate) const TEMPLATE1: &str = "template1";

/// The privileged role's default privileges in schema public, run as the
/// superuser (whose future objects they cover): what each new database must
/// have, directly or inherited from its template.
pub(crate) fn default_privileges_sql(privileged: &str) -> String {
    let role = escape_identifier(privileged);
    format!(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {role} WITH GRANT OPTION; \
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO {role} WITH GRANT OPTION"
    )
}

/// Whether the connected database's schema public gives the privileged role
/// (`$1`), with grant option, every privilege its owner has on the tables
/// and sequences the current user creates there later; and this backend's
/// pid. Version-independent: "every privilege" is read off `acldefault`.
pub(crate) const HAS_DEFAULTS: &str = "SELECT pg_catalog.pg_backend_pid(), coalesce(( \
    SELECT pg_catalog.bool_and(EXISTS ( \
        SELECT 1 FROM pg_catalog.pg_default_acl d, pg_catalog.aclexplode(d.defaclacl) a \
        WHERE d.defaclrole = su.oid AND d.defaclnamespace = n.oid AND d.defaclobjtype = k.t \
        AND a.grantee = pr.oid AND a.is_grantable AND a.privilege_type = o.privilege_type)) \
    FROM (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) su, \
        (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1) pr, \
        (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'public') n, \
        (VALUES ('r'::pg_catalog.\"char\"), ('S'::pg_catalog.\"char\")) k(t), \
        pg_catalog.aclexplode(pg_catalog.acldefault(k.t, su.oid)) o \
    ), false)";

/// Whether databases made from `template1` inherit the privileged role's
/// default privileges. With `prepare`, gives `template1` those it lacks
/// first. Any failure (say, `template1` refuses connections) is logged and
/// answers `false`: the planner then sets them in each new database.
///
/// `CREATE DATABASE` waits while another session is connected to its
/// template, so this returns only once the backend it used has left
/// (`maintenance` is a connection to another database, to watch it go).
pub(crate) async fn inherits_defaults(
    connector: &Connector,
    maintenance: &Client,
    privileged: &str,
    prepare: bool,
) -> bool {
    match look(connector, privileged, prepare).await {
        Ok((pid, ready)) => {
            wait_gone(maintenance, pid).await;
            ready
        }
        Err(e) => {
            warn!("new databases get the privileged role's default privileges one by one: {e:#}");
            false
        }
    }
}

/// At a start, beside the migrations: gives `template1` the privileged
/// role's default privileges it lacks (the role exists), and answers
/// whether databases made from it now inherit them, with the pid of the
/// backend that looked (see [`wait_gone`]: it must be gone before a
/// `CREATE DATABASE`). `None` when it could not look (logged): the
/// reconcile then looks itself.
pub(crate) async fn prepare_at_start(
    connector: &Connector,
    privileged: &str,
) -> Option<(i32, bool)> {
    match look(connector, privileged, true).await {
        Ok(found) => Some(found),
        Err(e) => {
            warn!("template1's default privileges, at start: {e:#}");
            None
        }
    }
}

async fn look(
    connector: &Connector,
    privileged: &str,
    prepare: bool,
) -> anyhow::Result<(i32, bool)> {
    let conn = connector.open(TEMPLATE1).await?;
    let result = async {
        let row = conn
            .client
            .query_one(HAS_DEFAULTS, &[&privileged])
            .await
            .context("reading template1's default privileges")?;
        let (pid, mut ready): (i32, bool) = (row.try_get(0)?, row.try_get(1)?);
        if !ready && prepare {
            // Not flushed at commit: a database copied from template1
            // commits durably, which flushes this first.
            let sql = format!(
                "BEGIN; SET LOCAL synchronous_commit = off; {}; COMMIT",
                default_privileges_sql(privileged)
            );
            conn.client
                .batch_execute(&sql)
                .await
                .context("giving template1 the privileged role's default privileges")?;
            info!(
                role = privileged,
                "template1 now carries the privileged role's default privileges"
            );
            ready = true;
        }
        anyhow::Ok((pid, ready))
    }
    .await;
    conn.close().await;
    result
}

/// Waits (at most a second) until backend `pid` has left.
pub(crate) async fn wait_gone(client: &Client, pid: i32) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        let present = client
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await;
        if !matches!(present, Ok(Some(_))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
