//! The delta pass of the planner: the spec's renames and drops, simulated
//! on the catalog snapshot so that later passes see their effect. Dropping a
//! role first hands over, in every connectable database, what it owns and
//! what was granted to it.

use super::sql::Sql;
use super::{object, PlanError, Planner, StepKind};
use crate::spec::{DeltaAction, DeltaOp};
use postgres_protocol::escape::escape_identifier;

impl Planner<'_> {
    pub(super) fn delta(&mut self, op: &DeltaOp) -> Result<(), PlanError> {
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
        self.push(StepKind::RoleChange, None, object("role", from), sql);
        if let Some(role) = self.sim.roles.rename(from, to) {
            // Postgres clears an md5 password on rename: it is salted with the name.
            if role
                .password
                .as_ref()
                .is_some_and(|p| p.expose().starts_with("md5"))
            {
                role.password = None;
            }
        }
        self.sim.reown_all(from, to);
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
        self.push(StepKind::Other, None, object("database", from), sql);
        self.sim.databases.rename(from, to);
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
        // (The drop's handover is as long as this list: sorting it costs
        // no more than the statements it gives.)
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
            self.push(StepKind::Other, Some(db), obj.clone(), revoke);
            let reassign = Sql::new("REASSIGN OWNED BY ")
                .ident(name)
                .kw(" TO ")
                .ident(self.superuser);
            self.push(StepKind::Other, Some(db), obj.clone(), reassign);
            self.push(
                StepKind::Other,
                Some(db),
                obj.clone(),
                Sql::new("DROP OWNED BY ").ident(name),
            );
        }
        self.barrier();
        self.push(
            StepKind::Other,
            None,
            obj,
            Sql::new("DROP ROLE ").ident(name),
        );
        self.sim.roles.remove(name);
        self.sim.reown_all(name, self.superuser);
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
            self.push(StepKind::Other, None, obj.clone(), sql);
        }
        if !db.subscriptions.is_empty() && !db.is_invalid() {
            if !db.allow_connections {
                let sql = Sql::new("ALTER DATABASE ")
                    .ident(name)
                    .kw(" ALLOW_CONNECTIONS true");
                self.push(StepKind::Other, None, obj.clone(), sql);
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
                    self.push(StepKind::Other, Some(name), sobj.clone(), sql);
                }
            }
            self.barrier();
        }
        self.drop_database(name);
    }

    pub(super) fn drop_database(&mut self, name: &str) {
        let sql = Sql::new("DROP DATABASE ").ident(name).kw(" WITH (FORCE)");
        self.push(StepKind::Other, None, object("database", name), sql);
        self.sim.remove_database(name);
    }
}

/// Revokes, in the current database, every privilege granted to the role
/// named by the setting `compute_ctl.dropped_role` by a grantor other than
/// the object's owner, as that grantor. Fixed text: the name only ever
/// travels as a setting's value.
pub(super) const REVOKE_FOREIGN_GRANTS: &str = "DO $compute_ctl$ \
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
