//! The pure planner: from a catalog snapshot and a spec, the ordered SQL
//! statements that make the catalog match the spec. No I/O here.
//!
//! Identifiers are always written with [`escape_identifier`] and literals with
//! [`escape_literal`]; SQL text is only ever built through [`Sql`], which
//! accepts fixed keywords, escaped names, escaped literals and the already
//! escaped renderings of [`super::options`].

use super::model::{Catalog, DatabaseInfo, RoleInfo};
use super::options::{database_option_sql, role_attribute, RoleAttr};
use crate::secret::Secret;
use crate::spec::{ComputeSpec, DeltaAction, DeltaOp, Role};
use postgres_protocol::escape::{escape_identifier, escape_literal};

mod sql;
mod step;

use sql::Sql;
pub use step::{Plan, Step};

/// Placeholder for a password in every shown form of a statement.
pub const REDACTED: &str = "<redacted>";

/// The three passes of the reconciliation, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum Phase {
    /// Renames and drops of `delta_operations`: role renames, database
    /// renames, database drops, role drops.
    Delta,
    /// Create missing roles, alter changed ones.
    Roles,
    /// Drop invalid databases, create missing ones, fix owners.
    Databases,
}

/// A spec that cannot be applied to this catalog. Nothing has been executed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The spec or a delta operation would change the superuser or a `pg_*` role.
    #[error("refusing to {action} role {role:?}: {why}")]
    ProtectedRole {
        /// The role.
        role: String,
        /// What was asked, e.g. `delete`.
        action: &'static str,
        /// Why it is protected.
        why: &'static str,
    },
    /// A rename whose old and new names both exist.
    #[error("cannot rename {kind} {from:?} to {to:?}: both exist")]
    RenameTargetExists {
        /// `role` or `database`.
        kind: &'static str,
        /// Old name.
        from: String,
        /// New name.
        to: String,
    },
    /// A database whose owner is neither a spec role, an existing role, nor the superuser.
    #[error("database {database:?}: owner {owner:?} is neither a role of the spec, an existing role, nor the superuser")]
    UnknownOwner {
        /// The database.
        database: String,
        /// Its owner in the spec.
        owner: String,
    },
    /// A role or database option that cannot be rendered.
    #[error("{object}: {reason}")]
    BadOption {
        /// E.g. `role "x"`.
        object: String,
        /// Why.
        reason: String,
    },
}

/// `role "x"`, `database "x"`: how objects are named in steps and logs.
fn object(kind: &str, name: &str) -> String {
    format!("{kind} {}", escape_identifier(name))
}

/// Whether `name` is reserved by postgres for its predefined roles.
fn is_reserved(name: &str) -> bool {
    name.starts_with("pg_")
}

/// The password as the catalog stores it, for a spec `encrypted_password`.
///
/// `SCRAM-SHA-256$...` is used as is; an md5 hash is given without its `md5`
/// prefix (one that already has it is tolerated). Postgres only recognizes
/// lowercase md5 hashes (it would hash anything else as a plain password), so
/// hexadecimal digits are lowercased.
pub fn stored_password(spec_password: &str) -> String {
    let is_hash = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if spec_password.starts_with("SCRAM-SHA-256$") {
        spec_password.to_string()
    } else if let Some(hash) = spec_password.strip_prefix("md5").filter(|h| is_hash(h)) {
        format!("md5{}", hash.to_ascii_lowercase())
    } else if is_hash(spec_password) {
        format!("md5{}", spec_password.to_ascii_lowercase())
    } else {
        format!("md5{spec_password}")
    }
}

struct Planner<'a> {
    sim: Catalog,
    superuser: &'a str,
    privileged: Option<&'a str>,
    steps: Vec<Step>,
    phase: Phase,
    group: usize,
}

impl<'a> Planner<'a> {
    fn push(&mut self, database: Option<&str>, object: String, sql: Sql) {
        self.steps.push(Step {
            database: database.map(str::to_string),
            sql: sql.text,
            redacted: sql.redacted,
            object,
            phase: self.phase,
            group: self.group,
            secret: sql.secret,
        });
    }

    /// Starts a new ordering group (unless the current one is still empty).
    fn barrier(&mut self) {
        if self.steps.last().is_some_and(|s| s.group == self.group) {
            self.group += 1;
        }
    }

    fn protect(&self, role: &str, action: &'static str) -> Result<(), PlanError> {
        let why = if role == self.superuser {
            "it is the superuser compute_ctl connects as"
        } else if Some(role) == self.privileged {
            "it is the privileged role"
        } else if is_reserved(role) {
            "pg_* roles are reserved by postgres"
        } else {
            return Ok(());
        };
        Err(PlanError::ProtectedRole {
            role: role.to_string(),
            action,
            why,
        })
    }

    fn delta(&mut self, op: &DeltaOp) -> Result<(), PlanError> {
        match op.action {
            DeltaAction::RenameRole => {
                let to = op.new_name.as_deref().unwrap_or_default();
                self.protect(&op.name, "rename")?;
                self.protect(to, "rename a role to")?;
                self.rename_role(&op.name, to)
            }
            DeltaAction::RenameDb => {
                let to = op.new_name.as_deref().unwrap_or_default();
                self.rename_db(&op.name, to)
            }
            DeltaAction::DeleteRole => {
                self.protect(&op.name, "delete")?;
                self.delete_role(&op.name);
                Ok(())
            }
            DeltaAction::DeleteDb => {
                self.delete_db(&op.name);
                Ok(())
            }
        }
    }

    fn rename_role(&mut self, from: &str, to: &str) -> Result<(), PlanError> {
        if self.sim.role(from).is_none() || from == to {
            return Ok(());
        }
        if self.sim.role(to).is_some() {
            return Err(PlanError::RenameTargetExists {
                kind: "role",
                from: from.into(),
                to: to.into(),
            });
        }
        let sql = Sql::new("ALTER ROLE ")
            .ident(from)
            .kw(" RENAME TO ")
            .ident(to);
        self.push(None, object("role", from), sql);
        for role in self.sim.roles.iter_mut().filter(|r| r.name == from) {
            role.name = to.to_string();
            // Postgres clears an md5 password on rename: it is salted with the name.
            if role
                .password
                .as_ref()
                .is_some_and(|p| p.expose().starts_with("md5"))
            {
                role.password = None;
            }
        }
        for db in self.sim.databases.iter_mut().filter(|d| d.owner == from) {
            db.owner = to.to_string();
        }
        Ok(())
    }

    fn rename_db(&mut self, from: &str, to: &str) -> Result<(), PlanError> {
        if self.sim.database(from).is_none() || from == to {
            return Ok(());
        }
        if self.sim.database(to).is_some() {
            return Err(PlanError::RenameTargetExists {
                kind: "database",
                from: from.into(),
                to: to.into(),
            });
        }
        let sql = Sql::new("ALTER DATABASE ")
            .ident(from)
            .kw(" RENAME TO ")
            .ident(to);
        self.push(None, object("database", from), sql);
        for db in self.sim.databases.iter_mut().filter(|d| d.name == from) {
            db.name = to.to_string();
        }
        Ok(())
    }

    fn delete_role(&mut self, name: &str) {
        if self.sim.role(name).is_none() {
            return;
        }
        let obj = object("role", name);
        // In every database that can be connected to, not only the spec's:
        // hand over what the role owns, and revoke what was granted to it.
        let mut dbs: Vec<String> = self
            .sim
            .databases
            .iter()
            .filter(|d| d.accepts_connections())
            .map(|d| d.name.clone())
            .collect();
        dbs.sort();
        self.barrier();
        for db in &dbs {
            // Privileges granted to it by others than the objects' owners
            // (say, through the privileged role's grant option) are not
            // revoked by DROP OWNED: revoke them as their grantors.
            let revoke = Sql::new("SELECT pg_catalog.set_config('compute_ctl.dropped_role', ")
                .lit(name)
                .kw(", true); ")
                .kw(REVOKE_FOREIGN_GRANTS);
            self.push(Some(db), obj.clone(), revoke);
            let reassign = Sql::new("REASSIGN OWNED BY ")
                .ident(name)
                .kw(" TO ")
                .ident(self.superuser);
            self.push(Some(db), obj.clone(), reassign);
            self.push(
                Some(db),
                obj.clone(),
                Sql::new("DROP OWNED BY ").ident(name),
            );
        }
        self.barrier();
        self.push(None, obj, Sql::new("DROP ROLE ").ident(name));
        self.sim.roles.retain(|r| r.name != name);
        let superuser = self.superuser.to_string();
        for db in self.sim.databases.iter_mut().filter(|d| d.owner == name) {
            db.owner.clone_from(&superuser);
        }
    }

    fn delete_db(&mut self, name: &str) {
        let Some(db) = self.sim.database(name).cloned() else {
            return;
        };
        let obj = object("database", name);
        if db.is_template {
            let sql = Sql::new("ALTER DATABASE ")
                .ident(name)
                .kw(" IS_TEMPLATE false");
            self.push(None, obj.clone(), sql);
        }
        if !db.subscriptions.is_empty() && !db.is_invalid() {
            if !db.allow_connections {
                let sql = Sql::new("ALTER DATABASE ")
                    .ident(name)
                    .kw(" ALLOW_CONNECTIONS true");
                self.push(None, obj.clone(), sql);
            }
            // A database with subscriptions cannot be dropped; detached from
            // their slot, they can be dropped without reaching the publisher.
            self.barrier();
            for sub in &db.subscriptions {
                let sobj = format!("subscription {} in {obj}", escape_identifier(sub));
                let disable = Sql::new("ALTER SUBSCRIPTION ").ident(sub).kw(" DISABLE");
                let detach = Sql::new("ALTER SUBSCRIPTION ")
                    .ident(sub)
                    .kw(" SET (slot_name = NONE)");
                let drop = Sql::new("DROP SUBSCRIPTION ").ident(sub);
                for sql in [disable, detach, drop] {
                    self.push(Some(name), sobj.clone(), sql);
                }
            }
            self.barrier();
        }
        self.drop_database(name);
    }

    fn drop_database(&mut self, name: &str) {
        let sql = Sql::new("DROP DATABASE ").ident(name).kw(" WITH (FORCE)");
        self.push(None, object("database", name), sql);
        self.sim.databases.retain(|d| d.name != name);
    }

    fn role(&mut self, role: &Role) -> Result<(), PlanError> {
        self.protect(&role.name, "create or alter")?;
        let obj = object("role", &role.name);
        // Desired attributes: LOGIN unless the options say otherwise; for a
        // repeated option, the last one wins.
        let mut attrs = vec![RoleAttr::Flag("LOGIN", "NOLOGIN", true)];
        for opt in role.options.iter().flatten() {
            let attr = role_attribute(opt).map_err(|reason| PlanError::BadOption {
                object: obj.clone(),
                reason,
            })?;
            match attrs.iter_mut().find(|a| same_attr(a, &attr)) {
                Some(existing) => *existing = attr,
                None => attrs.push(attr),
            }
        }
        let password = role
            .encrypted_password
            .as_ref()
            .map(|p| Secret::new(stored_password(p.expose())));
        match self.sim.role(&role.name).cloned() {
            None => {
                let mut sql = Sql::new("CREATE ROLE ").ident(&role.name).kw(" WITH");
                let mut created = RoleInfo::new(&role.name);
                if self.privileged.is_some() {
                    // The reference's attributes for a member of the
                    // privileged role, unless the spec's options say otherwise.
                    for kw in MEMBER_ATTRIBUTES {
                        if !attrs
                            .iter()
                            .any(|a| matches!(a, RoleAttr::Flag(k, _, _) if *k == kw))
                        {
                            attrs.push(RoleAttr::Flag(kw, "", true));
                        }
                    }
                }
                let (login, rest) = attrs.split_at(1);
                sql = render_attr(sql, &login[0]);
                if let Some(pw) = &password {
                    sql = sql.kw(" PASSWORD ").secret(pw.expose());
                }
                for attr in rest {
                    sql = render_attr(sql, attr);
                }
                if let Some(privileged) = self.privileged {
                    sql = sql.kw(" IN ROLE ").ident(privileged);
                }
                for attr in &attrs {
                    set_attr(&mut created, attr);
                }
                created.password = password;
                self.push(None, obj, sql);
                self.sim.roles.push(created);
            }
            Some(current) => {
                let changed: Vec<&RoleAttr> =
                    attrs.iter().filter(|a| !has_attr(&current, a)).collect();
                let password_changed = password != current.password;
                if changed.is_empty() && !password_changed {
                    return Ok(());
                }
                let mut sql = Sql::new("ALTER ROLE ").ident(&role.name).kw(" WITH");
                for attr in &changed {
                    sql = render_attr(sql, attr);
                }
                if password_changed {
                    sql = match &password {
                        Some(pw) => sql.kw(" PASSWORD ").secret(pw.expose()),
                        None => sql.kw(" PASSWORD NULL"),
                    };
                }
                self.push(None, obj, sql);
                if let Some(r) = self.sim.roles.iter_mut().find(|r| r.name == role.name) {
                    for attr in &attrs {
                        set_attr(r, attr);
                    }
                    r.password = password;
                }
            }
        }
        Ok(())
    }

    fn database(
        &mut self,
        spec: &ComputeSpec,
        db: &crate::spec::Database,
    ) -> Result<(), PlanError> {
        let owner_known = db.owner == self.superuser
            || self.sim.role(&db.owner).is_some()
            || spec.cluster.roles.iter().any(|r| r.name == db.owner);
        if !owner_known {
            return Err(PlanError::UnknownOwner {
                database: db.name.clone(),
                owner: db.owner.clone(),
            });
        }
        let obj = object("database", &db.name);
        match self.sim.database(&db.name).cloned() {
            None => {
                let mut sql = Sql::new("CREATE DATABASE ")
                    .ident(&db.name)
                    .kw(" WITH OWNER ")
                    .ident(&db.owner);
                for opt in db.options.iter().flatten() {
                    let rendered =
                        database_option_sql(opt).map_err(|reason| PlanError::BadOption {
                            object: obj.clone(),
                            reason,
                        })?;
                    sql = sql.kw(" ").safe(&rendered);
                }
                self.push(None, obj, sql);
                self.sim
                    .databases
                    .push(DatabaseInfo::new(&db.name, &db.owner));
            }
            Some(current) if current.owner != db.owner => {
                let sql = Sql::new("ALTER DATABASE ")
                    .ident(&db.name)
                    .kw(" OWNER TO ")
                    .ident(&db.owner);
                self.push(None, obj, sql);
                for d in self.sim.databases.iter_mut().filter(|d| d.name == db.name) {
                    d.owner.clone_from(&db.owner);
                }
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// Whether the spec makes this database from a template of its choosing
/// (whose default privileges compute_ctl does not know).
fn names_template(db: &crate::spec::Database) -> bool {
    db.options
        .iter()
        .flatten()
        .any(|o| o.name.trim().eq_ignore_ascii_case("template"))
}

/// Attributes of a role created as a member of the privileged role.
const MEMBER_ATTRIBUTES: [&str; 5] = [
    "INHERIT",
    "CREATEROLE",
    "CREATEDB",
    "BYPASSRLS",
    "REPLICATION",
];

/// Revokes, in the current database, every privilege granted to the role
/// named by the setting `compute_ctl.dropped_role` by a grantor other than
/// the object's owner, as that grantor. Fixed text: the name only ever
/// travels as a setting's value.
const REVOKE_FOREIGN_GRANTS: &str = "DO $compute_ctl$ \
    DECLARE \
    dropped pg_catalog.text := pg_catalog.current_setting('compute_ctl.dropped_role'); \
    r record; \
    BEGIN \
    FOR r IN \
    SELECT DISTINCT a.grantor::pg_catalog.regrole::pg_catalog.text AS grantor, o.kind, o.name \
    FROM ( \
    SELECT 'TABLE' AS kind, c.oid::pg_catalog.regclass::pg_catalog.text AS name, c.relacl AS acl, c.relowner AS owner \
    FROM pg_catalog.pg_class c WHERE c.relacl IS NOT NULL \
    UNION ALL \
    SELECT 'SCHEMA', pg_catalog.quote_ident(n.nspname), n.nspacl, n.nspowner \
    FROM pg_catalog.pg_namespace n WHERE n.nspacl IS NOT NULL \
    UNION ALL \
    SELECT 'ROUTINE', p.oid::pg_catalog.regprocedure::pg_catalog.text, p.proacl, p.proowner \
    FROM pg_catalog.pg_proc p WHERE p.proacl IS NOT NULL \
    ) o, pg_catalog.aclexplode(o.acl) a \
    WHERE a.grantee OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) dropped) \
    AND a.grantor OPERATOR(pg_catalog.<>) o.owner \
    LOOP \
    EXECUTE pg_catalog.format('SET LOCAL ROLE %s', r.grantor); \
    EXECUTE pg_catalog.format('REVOKE ALL ON %s %s FROM %I CASCADE', r.kind, r.name, dropped); \
    END LOOP; \
    SET LOCAL ROLE NONE; \
    END \
    $compute_ctl$";

fn same_attr(a: &RoleAttr, b: &RoleAttr) -> bool {
    match (a, b) {
        (RoleAttr::Flag(x, _, _), RoleAttr::Flag(y, _, _)) => x == y,
        (RoleAttr::ConnectionLimit(_), RoleAttr::ConnectionLimit(_))
        | (RoleAttr::ValidUntil(_), RoleAttr::ValidUntil(_)) => true,
        _ => false,
    }
}

fn has_attr(role: &RoleInfo, attr: &RoleAttr) -> bool {
    match attr {
        RoleAttr::Flag(kw, _, v) => role.flag(kw) == Some(*v),
        RoleAttr::ConnectionLimit(n) => role.connlimit == *n,
        RoleAttr::ValidUntil(t) => role.valid_until.as_deref() == Some(t.as_str()),
    }
}

fn set_attr(role: &mut RoleInfo, attr: &RoleAttr) {
    match attr {
        RoleAttr::Flag(kw, _, v) => role.set_flag(kw, *v),
        RoleAttr::ConnectionLimit(n) => role.connlimit = *n,
        RoleAttr::ValidUntil(t) => role.valid_until = Some(t.clone()),
    }
}

fn render_attr(sql: Sql, attr: &RoleAttr) -> Sql {
    match attr {
        RoleAttr::Flag(yes, _, true) => sql.kw(" ").kw(yes),
        RoleAttr::Flag(_, no, false) => sql.kw(" ").kw(no),
        RoleAttr::ConnectionLimit(n) => sql.kw(" CONNECTION LIMIT ").safe(&n.to_string()),
        RoleAttr::ValidUntil(t) => sql.kw(" VALID UNTIL ").safe(&escape_literal(t)),
    }
}

/// Plans the statements that make `catalog` match `spec`, in the contract's
/// order: delta operations, roles, databases. Pure: no I/O.
///
/// `superuser` is the role compute_ctl connects as; it and the `pg_*` roles
/// are never altered or dropped. A spec that matches the catalog gives an
/// empty plan.
pub fn plan(catalog: &Catalog, spec: &ComputeSpec, superuser: &str) -> Result<Plan, PlanError> {
    plan_with(catalog, spec, superuser, None)
}

/// [`plan()`] with a privileged role (the reference's `neon_superuser`):
/// roles are created as its members with `INHERIT CREATEROLE CREATEDB
/// BYPASSRLS REPLICATION` (unless their options say otherwise), each new
/// database grants it ALL and, in schema public, ALL on the tables and
/// sequences its superuser creates later (with grant option: inherited from
/// template1 when [`Catalog::template_defaults`] says it has them, else set
/// in the new database); it is never altered, renamed or dropped.
pub fn plan_with(
    catalog: &Catalog,
    spec: &ComputeSpec,
    superuser: &str,
    privileged: Option<&str>,
) -> Result<Plan, PlanError> {
    let mut p = Planner {
        sim: catalog.clone(),
        superuser,
        privileged,
        steps: Vec::new(),
        phase: Phase::Delta,
        group: 0,
    };
    // The contract's order: role renames, database renames, database drops,
    // role drops (the spec's order within each kind).
    let mut ops: Vec<&DeltaOp> = spec.delta_operations.iter().flatten().collect();
    ops.sort_by_key(|op| match op.action {
        DeltaAction::RenameRole => 0,
        DeltaAction::RenameDb => 1,
        DeltaAction::DeleteDb => 2,
        DeltaAction::DeleteRole => 3,
    });
    for op in ops {
        p.delta(op)?;
    }
    p.barrier();
    p.phase = Phase::Roles;
    if let Some(privileged) = privileged.filter(|r| p.sim.role(r).is_none()) {
        // Missing (say, the start skipped catalog updates): its members need it.
        p.push(
            None,
            object("role", privileged),
            Sql::new("CREATE ROLE ")
                .ident(privileged)
                .kw(" ")
                .kw(super::privileged::CREATE_ATTRIBUTES),
        );
        p.sim.roles.push(RoleInfo::new(privileged));
    }
    for role in &spec.cluster.roles {
        p.role(role)?;
    }
    p.barrier();
    p.phase = Phase::Databases;
    let invalid: Vec<String> = p
        .sim
        .databases
        .iter()
        .filter(|d| d.is_invalid())
        .map(|d| d.name.clone())
        .collect();
    for name in invalid {
        p.drop_database(&name);
    }
    let before: Vec<String> = p.sim.databases.iter().map(|d| d.name.clone()).collect();
    for db in &spec.cluster.databases {
        p.database(spec, db)?;
    }
    if let Some(privileged) = privileged {
        // After every creation, so that the creations stay one parallel run.
        let created: Vec<String> = spec
            .cluster
            .databases
            .iter()
            .filter(|d| !before.contains(&d.name))
            .map(|d| d.name.clone())
            .collect();
        for db in &created {
            let sql = Sql::new("GRANT ALL ON DATABASE ")
                .ident(db)
                .kw(" TO ")
                .ident(privileged);
            p.push(None, object("database", db), sql);
        }
        p.barrier();
        // The default privileges come with the template when template1 has
        // them and the database is made from it; else they are set in it.
        for db in spec.cluster.databases.iter() {
            if !created.contains(&db.name) || (p.sim.template_defaults && !names_template(db)) {
                continue;
            }
            let sql = Sql::new("").safe(&super::template::default_privileges_sql(privileged));
            p.push(Some(&db.name), object("database", &db.name), sql);
        }
    }
    Ok(Plan { steps: p.steps })
}

#[cfg(test)]
pub(crate) mod tests;
