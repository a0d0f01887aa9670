//! A snapshot of the catalog objects compute_ctl manages: roles and databases.

use crate::secret::Secret;
use std::collections::HashMap;

/// `pg_database.datconnlimit` of a database whose `DROP DATABASE` was
/// interrupted: it cannot be connected to and can only be dropped.
pub const DATCONNLIMIT_INVALID_DB: i32 = -2;

/// Roles (except the `pg_*` ones) and databases of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Roles, sorted by name; `pg_*` roles are left out.
    pub roles: Vec<RoleInfo>,
    /// Databases, sorted by name.
    pub databases: Vec<DatabaseInfo>,
    /// Whether `template1` gives the privileged role its default privileges
    /// in schema public, so the databases made from it inherit them. Read
    /// only when databases are to be created (`false` otherwise).
    pub template1_defaults: bool,
    /// How this postgres writes each `valid_until` value of the spec's
    /// roles, from the spec's text to `rolvaliduntil::text` (what the roles
    /// above show). A value missing here is compared as the spec writes it.
    pub valid_until: HashMap<String, String>,
}

impl Catalog {
    /// The role named `name`.
    pub fn role(&self, name: &str) -> Option<&RoleInfo> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// The database named `name`.
    pub fn database(&self, name: &str) -> Option<&DatabaseInfo> {
        self.databases.iter().find(|d| d.name == name)
    }
}

/// A row of `pg_authid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    /// `rolname`.
    pub name: String,
    /// `rolpassword`: `md5...` or `SCRAM-SHA-256$...`. Secret: never shown by `Debug`.
    pub password: Option<Secret>,
    /// `rolsuper`.
    pub superuser: bool,
    /// `rolinherit`.
    pub inherit: bool,
    /// `rolcreaterole`.
    pub createrole: bool,
    /// `rolcreatedb`.
    pub createdb: bool,
    /// `rolcanlogin`.
    pub login: bool,
    /// `rolreplication`.
    pub replication: bool,
    /// `rolbypassrls`.
    pub bypassrls: bool,
    /// `rolconnlimit`, -1 for no limit.
    pub connlimit: i32,
    /// `rolvaliduntil` as text, in the reading session's `TimeZone`/`DateStyle`.
    pub valid_until: Option<String>,
}

impl RoleInfo {
    /// A role as `CREATE ROLE name` makes it (no LOGIN, no password).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            password: None,
            superuser: false,
            inherit: true,
            createrole: false,
            createdb: false,
            login: false,
            replication: false,
            bypassrls: false,
            connlimit: -1,
            valid_until: None,
        }
    }

    /// The boolean attribute named by its positive keyword (`LOGIN`, ...).
    pub(crate) fn flag(&self, keyword: &str) -> Option<bool> {
        Some(match keyword {
            "SUPERUSER" => self.superuser,
            "INHERIT" => self.inherit,
            "CREATEROLE" => self.createrole,
            "CREATEDB" => self.createdb,
            "LOGIN" => self.login,
            "REPLICATION" => self.replication,
            "BYPASSRLS" => self.bypassrls,
            _ => return None,
        })
    }

    pub(crate) fn set_flag(&mut self, keyword: &str, value: bool) {
        match keyword {
            "SUPERUSER" => self.superuser = value,
            "INHERIT" => self.inherit = value,
            "CREATEROLE" => self.createrole = value,
            "CREATEDB" => self.createdb = value,
            "LOGIN" => self.login = value,
            "REPLICATION" => self.replication = value,
            "BYPASSRLS" => self.bypassrls = value,
            _ => {}
        }
    }
}

/// A row of `pg_database`, with the logical subscriptions defined in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// `datname`.
    pub name: String,
    /// Name of the owner (`datdba`).
    pub owner: String,
    /// `datallowconn`.
    pub allow_connections: bool,
    /// `datconnlimit`; [`DATCONNLIMIT_INVALID_DB`] marks a half-dropped database.
    pub connlimit: i32,
    /// `datistemplate`.
    pub is_template: bool,
    /// Names of the subscriptions of `pg_subscription` that live in this database.
    pub subscriptions: Vec<String>,
}

impl DatabaseInfo {
    /// A plain database owned by `owner`.
    pub fn new(name: impl Into<String>, owner: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            owner: owner.into(),
            allow_connections: true,
            connlimit: -1,
            is_template: false,
            subscriptions: Vec::new(),
        }
    }

    /// Half-dropped: `DROP DATABASE` was interrupted.
    pub fn is_invalid(&self) -> bool {
        self.connlimit == DATCONNLIMIT_INVALID_DB
    }

    /// Whether per-database work can connect to it.
    pub fn accepts_connections(&self) -> bool {
        self.allow_connections && !self.is_invalid()
    }
}
