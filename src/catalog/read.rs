//! Reading the catalog snapshot from postgres.

use super::model::{Catalog, DatabaseInfo, RoleInfo};
use crate::options::{role_attribute, RoleAttr};
use crate::secret::Secret;
use crate::spec::ValidSpec;
use anyhow::Context;
use futures_util::TryStreamExt;
use std::collections::HashMap;
use tokio_postgres::Client;

const ROLES: &str = "SELECT rolname::pg_catalog.text, rolpassword, rolsuper, rolinherit, \
    rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, \
    rolvaliduntil::pg_catalog.text \
    FROM pg_catalog.pg_authid ORDER BY rolname";

const DATABASES: &str = "SELECT d.datname::pg_catalog.text, \
    pg_catalog.pg_get_userbyid(d.datdba)::pg_catalog.text, \
    d.datallowconn, d.datconnlimit, d.datistemplate \
    FROM pg_catalog.pg_database d ORDER BY d.datname";

const SUBSCRIPTIONS: &str = "SELECT d.datname::pg_catalog.text, s.subname::pg_catalog.text \
    FROM pg_catalog.pg_subscription s \
    JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.subdbid \
    ORDER BY s.subname";

/// Reads roles (from `pg_authid`, so with their password hashes: needs a
/// superuser), databases and their subscriptions. Roles named `pg_*` are left out.
///
/// The three queries are pipelined on the one connection (sent together,
/// answered in order): a catalog check costs two round trips, not six.
pub async fn read_catalog(client: &Client) -> anyhow::Result<Catalog> {
    let (roles, mut databases, subscriptions) = tokio::try_join!(
        read_roles(client),
        read_databases(client),
        read_subscriptions(client)
    )?;
    let by_name: HashMap<String, usize> = databases
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.clone(), i))
        .collect();
    for (db, sub) in subscriptions {
        if let Some(&i) = by_name.get(&db) {
            databases[i].subscriptions.push(sub);
        }
    }
    Ok(Catalog {
        roles,
        databases,
        template1_defaults: false,
        valid_until: HashMap::new(),
    })
}

async fn read_roles(client: &Client) -> anyhow::Result<Vec<RoleInfo>> {
    let mut roles = Vec::new();
    // Row by row as postgres sends them: a whole result of 100k rows held
    // at once would weigh several times the roles made from it.
    let rows = client
        .query_raw(ROLES, std::iter::empty::<String>())
        .await
        .context("reading roles from pg_authid")?;
    let mut rows = std::pin::pin!(rows);
    while let Some(row) = rows
        .try_next()
        .await
        .context("reading roles from pg_authid")?
    {
        let name: String = row.try_get(0)?;
        if name.starts_with("pg_") {
            continue;
        }
        roles.push(RoleInfo {
            name,
            password: row.try_get::<_, Option<String>>(1)?.map(Secret::new),
            superuser: row.try_get(2)?,
            inherit: row.try_get(3)?,
            createrole: row.try_get(4)?,
            createdb: row.try_get(5)?,
            login: row.try_get(6)?,
            replication: row.try_get(7)?,
            bypassrls: row.try_get(8)?,
            connlimit: row.try_get(9)?,
            valid_until: row.try_get(10)?,
        });
    }
    Ok(roles)
}

async fn read_databases(client: &Client) -> anyhow::Result<Vec<DatabaseInfo>> {
    let rows = client
        .query(DATABASES, &[])
        .await
        .context("reading databases from pg_database")?;
    rows.iter()
        .map(|row| {
            Ok(DatabaseInfo {
                name: row.try_get(0)?,
                owner: row.try_get(1)?,
                allow_connections: row.try_get(2)?,
                connlimit: row.try_get(3)?,
                is_template: row.try_get(4)?,
                subscriptions: Vec::new(),
            })
        })
        .collect()
}

/// (database, subscription) pairs.
async fn read_subscriptions(client: &Client) -> anyhow::Result<Vec<(String, String)>> {
    let rows = client
        .query(SUBSCRIPTIONS, &[])
        .await
        .context("reading subscriptions from pg_subscription")?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// How this postgres writes each `valid_until` of the spec's roles
/// (`rolvaliduntil::text` in this session: the spec's text, as it is, to
/// the catalog's), so that the pure planner can compare them as text. One
/// query per distinct value; the spec itself is left as it was checked.
pub async fn read_valid_until(
    client: &Client,
    spec: &ValidSpec,
) -> anyhow::Result<HashMap<String, String>> {
    let mut shown = HashMap::new();
    for role in &spec.cluster.roles {
        for opt in role.options.iter().flatten() {
            let Ok(RoleAttr::ValidUntil(text)) = role_attribute(opt) else {
                continue;
            };
            if shown.contains_key(&text) {
                continue;
            }
            let row = client
                .query_one(
                    "SELECT $1::pg_catalog.text::pg_catalog.timestamptz::pg_catalog.text",
                    &[&text],
                )
                .await
                .with_context(|| {
                    format!(
                        "role {:?}: valid_until {text:?} is not a timestamp",
                        role.name
                    )
                })?;
            shown.insert(text, row.try_get(0)?);
        }
    }
    Ok(shown)
}
