//! Maintenance connections to the compute's own postgres: how compute_ctl's
//! own sessions reach it (the Unix socket, where the superuser is trusted)
//! and the settings forced on them.
//!
//! A leaf of its own: the catalog, `config` (the reload barrier), the
//! activity monitor and the HTTP API all open such connections, and none of
//! them should import the catalog for it.

use anyhow::Context;
use std::path::Path;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Config, NoTls};
use tracing::warn;

/// Settings forced on every maintenance connection. Startup-packet options
/// win over `ALTER DATABASE .. SET` and `ALTER ROLE .. SET` defaults, so a
/// database made read-only or given a tiny `statement_timeout` cannot break
/// the apply. `pg_stat_statements.track=none`: our statements (`CREATE
/// ROLE .. PASSWORD` with its verifier among them) are not kept where spec
/// roles can read them; without the library loaded it is an inert
/// placeholder setting. `neon.forward_ddl=false`, as the reference's
/// maintenance sessions: Neon's postgres forwards role and database DDL to
/// the control plane, and a forwarding that fails aborts the statement,
/// while compute_ctl's own DDL comes from the control plane already (inert
/// on vanilla PostgreSQL too). `pgaudit.log=none`: compute_ctl's own
/// statements are not audited (as the reference's sessions).
const FORCED_OPTIONS: &str = "-c default_transaction_read_only=off -c statement_timeout=0 \
    -c lock_timeout=0 -c idle_in_transaction_session_timeout=0 -c search_path= \
    -c DateStyle=ISO -c TimeZone=UTC -c pg_stat_statements.track=none \
    -c neon.forward_ddl=false -c pgaudit.log=none";

/// How to open maintenance connections to the compute's own postgres.
#[derive(Debug, Clone)]
pub struct Connector {
    config: Config,
    privileged_role: Option<String>,
}

/// A maintenance connection and the task that drives it.
pub(crate) struct Connection {
    pub(crate) client: Client,
    task: JoinHandle<()>,
}

impl Connection {
    /// Closes the connection and waits until its socket is closed, so the
    /// server notices soon (e.g. before a `DROP DATABASE` or a rename).
    pub(crate) async fn close(self) {
        drop(self.client);
        let _ = self.task.await;
    }
}

impl Connector {
    /// From the superuser's connection configuration (the connection string).
    pub fn new(config: Config) -> Self {
        Self {
            config,
            privileged_role: None,
        }
    }

    /// How compute_ctl's own sessions reach postgres: `connstr`'s user,
    /// password, database and options, through the Unix socket in
    /// `socket_dir` on `port` (pg_hba.conf trusts the superuser there only;
    /// `connstr`'s host, which other clients use, is not ours to use).
    pub fn socket_config(connstr: &Config, socket_dir: &Path, port: u16) -> Config {
        let mut config = Config::new();
        config.host_path(socket_dir).port(port);
        if let Some(user) = connstr.get_user() {
            config.user(user);
        }
        if let Some(password) = connstr.get_password() {
            config.password(password);
        }
        if let Some(db) = connstr.get_dbname() {
            config.dbname(db);
        }
        if let Some(options) = connstr.get_options() {
            config.options(options);
        }
        if let Some(timeout) = connstr.get_connect_timeout() {
            config.connect_timeout(*timeout);
        }
        config
    }

    /// The same, with a privileged role (see `catalog::privileged`): the
    /// spec's roles are made its members and its databases grant it ALL.
    /// Without one, roles and databases are created as plain postgres would.
    pub fn with_privileged_role(mut self, name: &str) -> Self {
        self.privileged_role = Some(name.to_string());
        self
    }

    /// The privileged role, if any.
    pub fn privileged_role(&self) -> Option<&str> {
        self.privileged_role.as_deref()
    }

    /// Superuser name (the connection string's user); `postgres` if it has none.
    pub fn superuser(&self) -> &str {
        self.config.get_user().unwrap_or("postgres")
    }

    /// The superuser's password from the connection string, if it has one
    /// (client tools get it through a password file, never in argv).
    pub fn password(&self) -> Option<crate::secret::Secret> {
        self.config
            .get_password()
            .map(|p| crate::secret::Secret::new(String::from_utf8_lossy(p)))
    }

    /// The maintenance database: the connection string's, `postgres` if it has none.
    pub fn maintenance_db(&self) -> &str {
        self.config.get_dbname().unwrap_or("postgres")
    }

    /// A libpq key=value connection string to `dbname` for client tools such
    /// as `pg_dump` (first host and port of the configuration; no password).
    pub fn libpq_connstring(&self, dbname: &str) -> String {
        fn quote(v: &str) -> String {
            format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!(
            "host={} port={port} user={} dbname={} application_name=compute_ctl",
            quote(&host),
            quote(self.superuser()),
            quote(dbname)
        )
    }

    /// Connects to `dbname` (spawns the connection task on tokio), with
    /// `application_name=compute_ctl`, `default_transaction_read_only=off`,
    /// no statement, lock or idle timeouts, an empty `search_path`, and
    /// `SET ROLE NONE`, whatever the database's or role's defaults say.
    pub async fn connect(&self, dbname: &str) -> anyhow::Result<Client> {
        Ok(self.open(dbname).await?.client)
    }

    pub(crate) async fn open(&self, dbname: &str) -> anyhow::Result<Connection> {
        self.open_with(dbname, "").await
    }

    async fn open_with(&self, dbname: &str, extra: &str) -> anyhow::Result<Connection> {
        let mut config = self.config.clone();
        let options = match self.config.get_options() {
            Some(own) if !own.trim().is_empty() => format!("{own} {FORCED_OPTIONS} {extra}"),
            _ => format!("{FORCED_OPTIONS} {extra}"),
        };
        config
            .dbname(dbname)
            .application_name("compute_ctl")
            .options(&options);
        let (client, connection) = config
            .connect(NoTls)
            .await
            .with_context(|| format!("connecting to database {dbname:?}"))?;
        let db = dbname.to_string();
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                warn!(database = %db, "maintenance connection error: {e}");
            }
        });
        // `ALTER DATABASE .. SET role` would make us someone else.
        client
            .batch_execute("SET ROLE NONE")
            .await
            .with_context(|| format!("resetting the role in database {dbname:?}"))?;
        Ok(Connection { client, task })
    }
}
