//! read + plan + apply against a real PostgreSQL 15, started per test in its
//! own temporary directory on a free port (as the `postgres` user when run as
//! root), stopped with SIGQUIT and removed on drop.

use super::model::Catalog;
use super::plan::plan;
use super::plan::tests::spec;
use super::*;
use crate::spec::{ComputeSpec, ValidSpec};
use serde_json::json;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

const SU: &str = "cloud_admin";
pub(super) const HASH: &str = "0123456789abcdef0123456789abcdef";
/// A well-formed SCRAM secret (32-byte keys), so postgres stores it verbatim.
pub(super) const SCRAM: &str = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$\
    AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn bindir() -> PathBuf {
    std::env::var_os("POSTGRES_BINDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// A throw-away postgres cluster.
pub(super) struct Pg {
    dir: tempfile::TempDir,
    pub(super) port: u16,
    child: Child,
}

fn as_postgres_user(cmd: &mut Command) -> &mut Command {
    if nix::unistd::geteuid().is_root() {
        let user = nix::unistd::User::from_name("postgres")
            .expect("looking up the postgres user")
            .expect("a postgres user must exist to run postgres as root");
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    cmd
}

fn chown_to_postgres(path: &Path) {
    if nix::unistd::geteuid().is_root() {
        let user = nix::unistd::User::from_name("postgres").unwrap().unwrap();
        nix::unistd::chown(path, Some(user.uid), Some(user.gid)).unwrap();
    }
}

/// The one port allocator of the tests (the integration tests' and the
/// benches'): below the ephemeral range, where no outgoing connection can
/// take the port between its pick and postgres' bind.
#[path = "../../tests/it/ports.rs"]
mod ports;
use ports::free_port;

impl Pg {
    pub(super) async fn start() -> Pg {
        let bin = bindir();
        assert!(
            bin.join("postgres").exists(),
            "PostgreSQL binaries not found in {bin:?} (set POSTGRES_BINDIR)"
        );
        let dir = tempfile::Builder::new()
            .prefix("catalog-pg-")
            .tempdir()
            .unwrap();
        chown_to_postgres(dir.path());
        let data = dir.path().join("data");
        let out = as_postgres_user(&mut Command::new(bin.join("initdb")))
            .arg("-D")
            .arg(&data)
            .args(["-U", SU, "--auth=trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = File::create(dir.path().join("postgres.log")).unwrap();
        let child = as_postgres_user(&mut Command::new(bin.join("postgres")))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .args(["-c", "log_statement=ddl", "-c", "fsync=off"])
            .args(["-c", "max_connections=40", "-c", "shared_buffers=16MB"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let pg = Pg { dir, port, child };
        for _ in 0..300 {
            if pg
                .config("postgres")
                .connect(tokio_postgres::NoTls)
                .await
                .is_ok()
            {
                return pg;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("postgres did not start: {}", pg.log());
    }

    pub(super) fn config(&self, db: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host("127.0.0.1").port(self.port).user(SU).dbname(db);
        c
    }

    pub(super) fn connector(&self) -> Connector {
        Connector::new(self.config("postgres"))
    }

    /// A superuser session, immune to hostile database settings.
    pub(super) async fn client(&self, db: &str) -> Client {
        self.connector().connect(db).await.unwrap()
    }

    /// Whether `db` gives `neon_superuser` every default privilege in public
    /// (see `template1::HAS_DEFAULTS`).
    pub(super) async fn has_defaults(&self, db: &str) -> bool {
        self.client(db)
            .await
            .query_one(super::template1::HAS_DEFAULTS, &[&"neon_superuser"])
            .await
            .unwrap()
            .get(1)
    }

    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// Statements postgres logged (log_statement = ddl).
    pub(super) fn logged_statements(&self) -> usize {
        self.log().matches("LOG:  statement: ").count()
    }

    pub(super) async fn catalog(&self) -> Catalog {
        read_catalog(&self.client("postgres").await).await.unwrap()
    }

    pub(super) async fn plan(&self, spec: &ValidSpec) -> Plan {
        let client = self.client("postgres").await;
        let mut catalog = read_catalog(&client).await.unwrap();
        catalog.valid_until = read_valid_until(&client, spec).await.unwrap();
        plan(&catalog, spec, SU).unwrap()
    }

    /// datname -> owner
    pub(super) async fn owners(&self) -> HashMap<String, String> {
        self.client("postgres")
            .await
            .query(
                "SELECT datname::text, pg_catalog.pg_get_userbyid(datdba)::text FROM pg_catalog.pg_database",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    pub(super) async fn role_names(&self) -> Vec<String> {
        self.client("postgres")
            .await
            .query("SELECT rolname::text FROM pg_catalog.pg_roles", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown; the directory goes with the TempDir.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGQUIT,
            );
        }
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_role_owning_objects_in_other_databases() {
    let pg = Pg::start().await;
    let s = spec(json!({
        "roles": [{"name": "victim role", "encrypted_password": HASH}, {"name": "granter"}],
        "databases": [{"name": "app db", "owner": "granter"}, {"name": "owned by victim", "owner": "victim role"}]
    }));
    reconcile(&pg.connector(), &s, 2).await.unwrap();
    let postgres = pg.client("postgres").await;
    postgres
        .batch_execute("CREATE DATABASE \"not in spec\"")
        .await
        .unwrap();
    postgres
        .batch_execute(
            "GRANT granter TO \"victim role\"; \
             CREATE SCHEMA vs AUTHORIZATION \"victim role\"; \
             ALTER DEFAULT PRIVILEGES FOR ROLE \"victim role\" GRANT SELECT ON TABLES TO granter",
        )
        .await
        .unwrap();
    pg.client("not in spec")
        .await
        .batch_execute(
            "CREATE TABLE public.t (x int); ALTER TABLE public.t OWNER TO \"victim role\"; \
             GRANT CREATE ON SCHEMA public TO \"victim role\"",
        )
        .await
        .unwrap();
    pg.client("app db")
        .await
        .batch_execute(
            "SET ROLE granter; CREATE TABLE public.g (x int); GRANT SELECT ON public.g TO \"victim role\" WITH GRANT OPTION; \
             RESET ROLE",
        )
        .await
        .unwrap();

    let s = spec(json!({
        "delta_operations": [{"action": "delete_role", "name": "victim role"}],
        "roles": [{"name": "granter"}],
        "databases": [{"name": "app db", "owner": "granter"}, {"name": "owned by victim", "owner": "granter"}]
    }));
    let report = reconcile(&pg.connector(), &s, 3).await.unwrap();
    assert!(report.skipped_databases.is_empty());
    assert!(!pg.role_names().await.contains(&"victim role".to_string()));
    let owner: String = pg
        .client("not in spec")
        .await
        .query_one(
            "SELECT pg_catalog.pg_get_userbyid(relowner)::text FROM pg_catalog.pg_class WHERE relname = 't'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, SU);
    let acl: String = pg
        .client("app db")
        .await
        .query_one(
            "SELECT relacl::text FROM pg_catalog.pg_class WHERE relname = 'g'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!acl.contains("victim"), "{acl}");
    assert_eq!(pg.owners().await["owned by victim"], "granter");
    assert!(pg.plan(&s).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_template_database_with_subscription() {
    let pg = Pg::start().await;
    let s = spec(json!({"databases": [{"name": "sub db", "owner": SU}]}));
    reconcile(&pg.connector(), &s, 1).await.unwrap();
    let in_db = pg.client("sub db").await;
    in_db
        .batch_execute(
            "CREATE SUBSCRIPTION \"my sub\" CONNECTION 'host=127.0.0.1 port=1 dbname=nowhere' \
             PUBLICATION p WITH (connect = false)",
        )
        .await
        .unwrap();
    pg.client("postgres")
        .await
        .batch_execute("ALTER DATABASE \"sub db\" IS_TEMPLATE true")
        .await
        .unwrap();
    let catalog = pg.catalog().await;
    let db = catalog.database("sub db").unwrap();
    assert!(db.is_template);
    assert_eq!(db.subscriptions, ["my sub"]);

    // `in_db` stays connected: WITH (FORCE) takes care of it.
    let s = spec(json!({"delta_operations": [{"action": "delete_db", "name": "sub db"}]}));
    reconcile(&pg.connector(), &s, 1).await.unwrap();
    assert!(pg.catalog().await.database("sub db").is_none());
    let subs: i64 = pg
        .client("postgres")
        .await
        .query_one("SELECT count(*) FROM pg_catalog.pg_subscription", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(subs, 0);
    drop(in_db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_database_and_role_settings_do_not_break_reconcile() {
    let pg = Pg::start().await;
    let setup = spec(json!({
        "roles": [{"name": "victim"}, {"name": "nobody", "options": [{"name": "login", "value": "false", "vartype": "bool"}]}],
        "databases": [{"name": "hostile", "owner": "victim"}]
    }));
    reconcile(&pg.connector(), &setup, 1).await.unwrap();
    let mut sql = String::new();
    for db in ["postgres", "hostile", "template1"] {
        for setting in [
            "default_transaction_read_only = on",
            "statement_timeout = 1",
            "lock_timeout = 1",
            "idle_in_transaction_session_timeout = 1",
            "role = nobody",
            "search_path = evil, public",
        ] {
            sql.push_str(&format!("ALTER DATABASE {db} SET {setting};"));
        }
    }
    sql.push_str("ALTER ROLE cloud_admin SET statement_timeout = 1; ALTER ROLE cloud_admin SET default_transaction_read_only = on;");
    pg.client("postgres")
        .await
        .batch_execute(&sql)
        .await
        .unwrap();
    // A plain session does suffer from these settings.
    let (plain, conn) = pg
        .config("hostile")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    // With statement_timeout = 1 ms even this query may be cancelled: retry.
    let mut attempts = 0;
    let row = loop {
        attempts += 1;
        match plain
            .query_one(
                "SELECT current_user::text, current_setting('default_transaction_read_only')",
                &[],
            )
            .await
        {
            Ok(row) => break row,
            Err(e) if attempts < 50 && e.code() == Some(&SqlState::QUERY_CANCELED) => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("nobody".into(), "on".into())
    );
    drop(plain);
    pg.client("hostile")
        .await
        .batch_execute(
            "CREATE TABLE public.owned (x int); ALTER TABLE public.owned OWNER TO victim",
        )
        .await
        .unwrap();

    let s = spec(json!({
        "delta_operations": [{"action": "delete_role", "name": "victim"}],
        "roles": [
            {"name": "nobody", "options": [{"name": "login", "value": "false", "vartype": "bool"}]},
            {"name": "r1", "encrypted_password": HASH, "options": [
                {"name": "valid_until", "value": "2100-01-01", "vartype": "string"}]}
        ],
        "databases": [{"name": "hostile", "owner": "r1"}, {"name": "d1", "owner": "r1"}]
    }));
    reconcile(&pg.connector(), &s, 2).await.unwrap();
    let owners = pg.owners().await;
    assert_eq!(owners["hostile"], "r1");
    assert_eq!(owners["d1"], "r1");
    // valid_until was normalized, so nothing is left to do.
    assert!(pg.plan(&s).await.is_empty());
    let report = reconcile(&pg.connector(), &s, 2).await.unwrap();
    assert_eq!(report.statements, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_database_is_dropped_and_recreated() {
    let pg = Pg::start().await;
    let s = spec(json!({
        "roles": [{"name": "o"}],
        "databases": [{"name": "broken", "owner": "o"}, {"name": "junk", "owner": "o"}]
    }));
    reconcile(&pg.connector(), &s, 1).await.unwrap();
    pg.client("postgres")
        .await
        .batch_execute("UPDATE pg_catalog.pg_database SET datconnlimit = -2 WHERE datname IN ('broken', 'junk')")
        .await
        .unwrap();
    assert!(pg.catalog().await.database("broken").unwrap().is_invalid());
    let s = spec(json!({
        "delta_operations": [{"action": "delete_role", "name": "nobody here"}],
        "roles": [{"name": "o"}],
        "databases": [{"name": "broken", "owner": "o"}]
    }));
    reconcile(&pg.connector(), &s, 1).await.unwrap();
    let catalog = pg.catalog().await;
    let broken = catalog.database("broken").unwrap();
    assert!(!broken.is_invalid());
    assert_eq!(broken.owner, "o");
    assert!(catalog.database("junk").is_none());
    assert!(pg.plan(&s).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_named_redacted_and_a_rerun_finishes() {
    let pg = Pg::start().await;
    let setup = spec(json!({
        "roles": [{"name": "holder"}],
        "databases": [{"name": "closed db", "owner": SU}]
    }));
    reconcile(&pg.connector(), &setup, 1).await.unwrap();
    pg.client("closed db")
        .await
        .batch_execute("CREATE TABLE public.t (x int); ALTER TABLE public.t OWNER TO holder")
        .await
        .unwrap();
    let postgres = pg.client("postgres").await;
    postgres
        .batch_execute("ALTER DATABASE \"closed db\" ALLOW_CONNECTIONS false")
        .await
        .unwrap();

    // The planner skips the closed database; DROP ROLE then fails, naming the role.
    let s = spec(json!({
        "delta_operations": [{"action": "delete_role", "name": "holder"}],
        "roles": [{"name": "after", "encrypted_password": HASH}]
    }));
    let e = reconcile(&pg.connector(), &s, 2).await.unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("role \"holder\": DROP ROLE \"holder\""),
        "{msg}"
    );
    // Nothing after the failure ran.
    assert!(pg.catalog().await.role("after").is_none());
    postgres
        .batch_execute("ALTER DATABASE \"closed db\" ALLOW_CONNECTIONS true")
        .await
        .unwrap();
    reconcile(&pg.connector(), &s, 2).await.unwrap();
    let catalog = pg.catalog().await;
    assert!(catalog.role("holder").is_none());
    assert!(catalog.role("after").is_some());

    // A stale plan: the secret statement fails, the error is redacted, and
    // postgres logs neither the statement nor the password.
    let stale = pg
        .plan(&spec(
            json!({"roles": [{"name": "late", "encrypted_password": SCRAM}]}),
        ))
        .await;
    postgres.batch_execute("CREATE ROLE late").await.unwrap();
    let e = apply(&pg.connector(), &stale, 1).await.unwrap_err();
    let msg = format!("{e:#} {e:?}");
    assert!(
        msg.contains("CREATE ROLE \"late\" WITH LOGIN PASSWORD <redacted>"),
        "{msg}"
    );
    assert!(msg.contains("already exists"), "{msg}");
    assert!(!msg.contains("AQIDBAUG"), "{msg}");
    assert!(!pg.log().contains("AQIDBAUG"));

    // A database that stops accepting connections after planning is skipped.
    postgres
        .batch_execute("CREATE ROLE gone; ALTER DATABASE \"closed db\" OWNER TO gone")
        .await
        .unwrap();
    let stale = pg
        .plan(&spec(
            json!({"delta_operations": [{"action": "delete_role", "name": "gone"}]}),
        ))
        .await;
    postgres
        .batch_execute("ALTER DATABASE \"closed db\" ALLOW_CONNECTIONS false")
        .await
        .unwrap();
    let report = apply(&pg.connector(), &stale, 2).await.unwrap();
    assert_eq!(report.skipped_databases, ["closed db"]);
    assert!(pg.catalog().await.role("gone").is_none());
    assert_eq!(pg.owners().await["closed db"], SU);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_pg_catalog_updates_does_nothing() {
    let pg = Pg::start().await;
    let s = ValidSpec::try_from(ComputeSpec {
        skip_pg_catalog_updates: true,
        ..spec(json!({"roles": [{"name": "r"}]})).into_raw()
    })
    .unwrap();
    let report = reconcile(&pg.connector(), &s, 1).await.unwrap();
    assert_eq!(report.statements, 0);
    assert!(pg.catalog().await.role("r").is_none());
}

/// As the reference's maintenance sessions: compute_ctl's own DDL is not
/// forwarded to the control plane by Neon's postgres (every kind of
/// maintenance connection, made quiet for passwords or not).
#[tokio::test]
async fn maintenance_sessions_do_not_forward_ddl() {
    let pg = Pg::start().await;
    let connector = pg.connector();
    let conn = connector.open("postgres").await.unwrap();
    for _quiet in [false, true] {
        let row = conn
            .client
            .query_one("SHOW neon.forward_ddl", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "false");
        conn.client
            .batch_execute("SET log_statement = 'none'")
            .await
            .unwrap();
    }
    conn.close().await;
}
