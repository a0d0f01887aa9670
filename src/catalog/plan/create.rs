//! The create/alter passes of the planner: roles with their attributes and
//! passwords, then databases with their owners and options. A role's wanted
//! attributes are compared with the snapshot's, so an unchanged role gives
//! no statement.

use super::sql::Sql;
use super::{object, stored_password, PlanError, Planner, StepKind};
use crate::catalog::model::{DatabaseInfo, RoleInfo};
use crate::options::{database_option_sql, role_attribute, RoleAttr};
use crate::secret::Secret;
use crate::spec::{Database, Role};
use postgres_protocol::escape::escape_literal;

impl Planner<'_> {
    pub(super) fn role(&mut self, role: &Role) -> Result<(), PlanError> {
        self.protect(&role.name, "create or alter")?;
        let obj = object("role", &role.name);
        // Desired attributes: LOGIN unless the options say otherwise; for a
        // repeated option, the last one wins.
        let mut attrs = vec![RoleAttr::Flag("LOGIN", "NOLOGIN", true)];
        for opt in role.options.iter().flatten() {
            let attr = match role_attribute(opt) {
                // As postgres writes it, to compare with the catalog's.
                Ok(RoleAttr::ValidUntil(t)) => match self.valid_until.get(&t) {
                    Some(shown) => RoleAttr::ValidUntil(shown.clone()),
                    None => RoleAttr::ValidUntil(t),
                },
                Ok(attr) => attr,
                Err(reason) => {
                    return Err(PlanError::BadOption {
                        object: obj.clone(),
                        reason,
                    })
                }
            };
            match attrs.iter_mut().find(|a| same_attr(a, &attr)) {
                Some(existing) => *existing = attr,
                None => attrs.push(attr),
            }
        }
        let password = role
            .encrypted_password
            .as_ref()
            .map(|p| Secret::new(stored_password(p.expose())));
        // What differs from the role as it is, if it exists.
        let current = self.sim.role(&role.name).map(|current| {
            let changed: Vec<&RoleAttr> = attrs.iter().filter(|a| !has_attr(current, a)).collect();
            (changed, password != current.password)
        });
        match current {
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
                self.push(StepKind::RoleChange, None, obj, sql);
                self.sim.roles.push(created);
            }
            Some((changed, password_changed)) => {
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
                self.push(StepKind::RoleChange, None, obj, sql);
                if let Some(r) = self.sim.roles.get_mut(&role.name) {
                    for attr in &attrs {
                        set_attr(r, attr);
                    }
                    r.password = password;
                }
            }
        }
        Ok(())
    }

    pub(super) fn database(&mut self, db: &Database) -> Result<(), PlanError> {
        let owner_known = db.owner == self.superuser
            || self.sim.role(&db.owner).is_some()
            || self.spec_roles.contains(db.owner.as_str());
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
                // The spec's own strategy, if it names one, wins.
                let mut strategy_given = false;
                for opt in db.options.iter().flatten() {
                    let rendered =
                        database_option_sql(opt).map_err(|reason| PlanError::BadOption {
                            object: obj.clone(),
                            reason,
                        })?;
                    strategy_given |= rendered.starts_with("STRATEGY ");
                    sql = sql.kw(" ").safe(&rendered);
                }
                if self.file_copy && !strategy_given {
                    sql = sql.kw(" STRATEGY FILE_COPY");
                }
                self.push(StepKind::CreateDatabase, None, obj, sql);
                self.sim
                    .push_database(DatabaseInfo::new(&db.name, &db.owner));
            }
            Some(current) if current.owner != db.owner => {
                let sql = Sql::new("ALTER DATABASE ")
                    .ident(&db.name)
                    .kw(" OWNER TO ")
                    .ident(&db.owner);
                self.push(StepKind::Other, None, obj, sql);
                self.sim.set_owner(&db.name, &db.owner);
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// Whether the spec makes this database from a template of its choosing
/// (whose default privileges compute_ctl does not know).
pub(super) fn names_own_template(db: &Database) -> bool {
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
