//! What the catalog routes of the HTTP API answer (`/dbs_and_roles`,
//! `/grants`, `/extensions`), as the reference does: their answer shapes
//! and the SQL behind them, beside the handlers that serve them (the
//! reconciling catalog has no part in them); the handlers only parse the
//! request and map [`RequestFailure`] to a status.

use crate::connect::Connector;
use anyhow::Context;
use bytes::Bytes;
use futures_util::TryStreamExt;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::ReceiverStream;

/// Why a catalog request was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum RequestFailure {
    /// The request names something wrong (HTTP 400); the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// Postgres refused or failed (HTTP 500).
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

const ROLES: &str = "SELECT rolname::pg_catalog.text FROM pg_catalog.pg_authid ORDER BY 1";

const DATABASES: &str = "SELECT datname::pg_catalog.text, \
    pg_catalog.pg_get_userbyid(datdba)::pg_catalog.text, \
    NOT datallowconn, datconnlimit OPERATOR(pg_catalog.=) -2 \
    FROM pg_catalog.pg_database ORDER BY 1";

/// The body of `/dbs_and_roles`, chunk by chunk; an `Err` item ends it
/// (reading failed midway: the client sees a cut, never a whole answer).
pub type BodyStream = ReceiverStream<Result<Bytes, std::io::Error>>;

/// How much JSON is sent at a time.
const BODY_CHUNK: usize = 32 * 1024;

/// A database as `/dbs_and_roles` shows it (keys in the order they are
/// written: the order of a `serde_json` map, which sorts them).
#[derive(Serialize)]
struct DatabaseOut {
    invalid: bool,
    name: String,
    options: Option<()>,
    owner: String,
    restrict_conn: bool,
}

/// A role as `/dbs_and_roles` shows it (hashes stay out of the API).
#[derive(Serialize)]
struct RoleOut<'a> {
    encrypted_password: Option<()>,
    name: &'a str,
    options: Option<()>,
}

/// `/dbs_and_roles`: every database of `pg_database` as `{name, owner,
/// options: null, restrict_conn, invalid}` and every role of `pg_authid`
/// (the superuser and the predefined roles included) as `{name,
/// encrypted_password: null, options: null}`.
///
/// Streamed, so that memory stays flat however many roles there are: the
/// roles are serialized row by row as postgres sends them, and postgres is
/// read only as fast as the client takes the body. The databases (a few)
/// and the first role are read before the answer begins, so a failure to
/// read is still an error, not a cut body.
pub async fn dbs_and_roles(connector: &Connector) -> anyhow::Result<BodyStream> {
    let conn = connector.open(connector.maintenance_db()).await?;
    let began = async {
        let mut head = br#"{"databases":["#.to_vec();
        let databases = conn
            .client
            .query(DATABASES, &[])
            .await
            .context("reading pg_database")?;
        for (i, r) in databases.iter().enumerate() {
            if i > 0 {
                head.push(b',');
            }
            let db = DatabaseOut {
                name: r.try_get(0)?,
                owner: r.try_get(1)?,
                options: None,
                restrict_conn: r.try_get(2)?,
                invalid: r.try_get(3)?,
            };
            serde_json::to_writer(&mut head, &db)?;
        }
        head.extend_from_slice(br#"],"roles":["#);
        let rows = conn
            .client
            .query_raw(ROLES, std::iter::empty::<String>())
            .await
            .context("reading pg_authid")?;
        let mut rows = Box::pin(rows);
        let first = rows.try_next().await.context("reading pg_authid")?;
        anyhow::Ok((head, first, rows))
    }
    .await;
    let (mut chunk, first, mut rows) = match began {
        Ok(began) => began,
        Err(e) => {
            conn.close().await;
            return Err(e);
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut next = first;
        let mut count = 0usize;
        let ended = loop {
            let Some(row) = next else {
                chunk.extend_from_slice(b"]}");
                break Ok(());
            };
            let name: String = match row.try_get(0) {
                Ok(name) => name,
                Err(e) => break Err(e.into()),
            };
            if count > 0 {
                chunk.push(b',');
            }
            count += 1;
            let role = RoleOut {
                name: &name,
                encrypted_password: None,
                options: None,
            };
            if let Err(e) = serde_json::to_writer(&mut chunk, &role) {
                break Err(anyhow::Error::from(e));
            }
            if chunk.len() >= BODY_CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(BODY_CHUNK + 256));
                if tx.send(Ok(Bytes::from(full))).await.is_err() {
                    conn.close().await;
                    return; // the client went away
                }
            }
            next = match rows.try_next().await {
                Ok(next) => next,
                Err(e) => break Err(e.into()),
            };
        };
        drop(rows);
        conn.close().await;
        let last = match ended {
            Ok(()) => Ok(Bytes::from(chunk)),
            Err(e) => {
                tracing::error!("reading pg_authid for /dbs_and_roles: {e:#}");
                Err(std::io::Error::other(format!("reading pg_authid: {e:#}")))
            }
        };
        let _ = tx.send(last).await;
    });
    Ok(ReceiverStream::new(rx))
}

/// Fails with a 400 naming `field` unless `db` exists and accepts connections.
async fn check_database(connector: &Connector, db: &str) -> Result<(), RequestFailure> {
    if db.is_empty() {
        return Err(RequestFailure::BadRequest(
            "database must not be empty".into(),
        ));
    }
    let conn = connector.open(connector.maintenance_db()).await?;
    let row = conn
        .client
        .query_opt(
            "SELECT datallowconn FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) $1",
            &[&db],
        )
        .await
        .context("looking for the database");
    conn.close().await;
    match row? {
        Some(r) if r.try_get::<_, bool>(0).map_err(anyhow::Error::from)? => Ok(()),
        Some(_) => Err(RequestFailure::BadRequest(format!(
            "database: {db:?} does not accept connections"
        ))),
        None => Err(RequestFailure::BadRequest(format!(
            "database: {db:?} does not exist"
        ))),
    }
}

/// `POST /grants`.
#[derive(Debug, Serialize, Deserialize)]
pub struct GrantRequest {
    /// Where the schema is.
    pub database: String,
    /// The schema.
    pub schema: String,
    /// Schema privileges: `USAGE`, `CREATE`.
    pub privileges: Vec<String>,
    /// Who gets them.
    pub role: String,
}

/// Privileges that can be granted on a schema.
const SCHEMA_PRIVILEGES: &[&str] = &["USAGE", "CREATE"];

/// Grants the privileges of `req` the role does not have yet (none missing:
/// nothing is written, so this succeeds on a read-only replica too).
/// Returns the privileges granted.
pub async fn grant(
    connector: &Connector,
    req: &GrantRequest,
) -> Result<Vec<&'static str>, RequestFailure> {
    if req.privileges.is_empty() {
        return Err(RequestFailure::BadRequest(
            "privileges must not be empty".into(),
        ));
    }
    let mut wanted = Vec::new();
    for p in &req.privileges {
        let upper = p.trim().to_ascii_uppercase();
        match SCHEMA_PRIVILEGES.iter().find(|k| **k == upper) {
            Some(k) if !wanted.contains(k) => wanted.push(*k),
            Some(_) => {}
            None => {
                return Err(RequestFailure::BadRequest(format!(
                    "privileges: unknown schema privilege {p:?}; allowed: {}",
                    SCHEMA_PRIVILEGES.join(", ")
                )))
            }
        }
    }
    check_database(connector, &req.database).await?;
    let conn = connector.open(&req.database).await?;
    let result = async {
        let found = conn
            .client
            .query_opt(
                "SELECT (SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) $1), \
                 (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) $2)",
                &[&req.role, &req.schema],
            )
            .await
            .context("looking up the role and schema")?;
        let (role, schema): (Option<u32>, Option<u32>) = match &found {
            Some(r) => (r.try_get(0).ok().flatten(), r.try_get(1).ok().flatten()),
            None => (None, None),
        };
        let (Some(role), Some(schema)) = (role, schema) else {
            let field = if role.is_none() { "role" } else { "schema" };
            let name = if role.is_none() { &req.role } else { &req.schema };
            return Err(RequestFailure::BadRequest(format!(
                "{field}: {name:?} does not exist"
            )));
        };
        let mut missing = Vec::new();
        for p in &wanted {
            let has: bool = conn
                .client
                .query_one(
                    "SELECT pg_catalog.has_schema_privilege($1::pg_catalog.oid, $2::pg_catalog.oid, $3)",
                    &[&role, &schema, p],
                )
                .await
                .context("checking the role's privileges")?
                .try_get(0)
                .map_err(anyhow::Error::from)?;
            if !has {
                missing.push(*p);
            }
        }
        if !missing.is_empty() {
            let sql = format!(
                "GRANT {} ON SCHEMA {} TO {}",
                missing.join(", "),
                escape_identifier(&req.schema),
                escape_identifier(&req.role)
            );
            conn.client
                .batch_execute(&sql)
                .await
                .with_context(|| format!("granting {} on schema {:?}", missing.join(", "), req.schema))?;
        }
        Ok(missing)
    }
    .await;
    conn.close().await;
    result
}

/// `POST /extensions`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExtensionRequest {
    /// The extension.
    pub extension: String,
    /// Where to install it.
    pub database: String,
    /// Which version.
    pub version: String,
}

/// Key of the advisory lock that serializes extension installs in a
/// database, so that concurrent identical requests both succeed.
const EXTENSION_LOCK: i64 = 0x636f_6d70_7574_6501;

/// Installs the request's extension at its version in the request's
/// database, as the reference: `CREATE EXTENSION IF NOT EXISTS <ext> WITH
/// SCHEMA public VERSION <v>` where it is not installed, `ALTER EXTENSION
/// <ext> UPDATE TO <v>` where it is at another version, nothing where it is
/// at that version already.
pub async fn install_extension(
    connector: &Connector,
    req: &ExtensionRequest,
) -> Result<(), RequestFailure> {
    for (field, value) in [("extension", &req.extension), ("version", &req.version)] {
        if value.is_empty() {
            return Err(RequestFailure::BadRequest(format!(
                "{field} must not be empty"
            )));
        }
    }
    check_database(connector, &req.database).await?;
    let conn = connector.open(&req.database).await?;
    let (name, version) = (
        escape_identifier(&req.extension),
        escape_literal(&req.version),
    );
    let result = async {
        conn.client
            .batch_execute(&format!(
                "BEGIN; SELECT pg_catalog.pg_advisory_xact_lock({EXTENSION_LOCK})"
            ))
            .await?;
        let installed: Option<String> = conn
            .client
            .query_opt(
                "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = $1",
                &[&req.extension],
            )
            .await?
            .map(|row| row.get(0));
        let change = match installed {
            None => format!(
                "CREATE EXTENSION IF NOT EXISTS {name} WITH SCHEMA public VERSION {version}"
            ),
            Some(v) if v == req.version => String::new(),
            Some(_) => format!("ALTER EXTENSION {name} UPDATE TO {version}"),
        };
        conn.client
            .batch_execute(&format!("{change}; COMMIT"))
            .await
    }
    .await;
    if result.is_err() {
        let _ = conn.client.batch_execute("ROLLBACK").await;
    }
    conn.close().await;
    result.with_context(|| format!("installing extension {:?}", req.extension))?;
    Ok(())
}
