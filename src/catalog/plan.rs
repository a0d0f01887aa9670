//! The pure planner: from a catalog snapshot and a spec, the ordered SQL
//! statements that make the catalog match the spec. No I/O here.
//!
//! The planner simulates each statement on its copy of the snapshot, pass
//! by pass ([`Phase`]): the delta operations (`delta.rs`), then roles and
//! databases (`create.rs`). This file holds the entry points, the planner's
//! state and what the passes share.
//!
//! Identifiers are always written with [`escape_identifier`] and literals
//! with [`escape_literal`](postgres_protocol::escape::escape_literal); SQL
//! text is only ever built through [`Sql`], which accepts fixed keywords,
//! escaped names, escaped literals and the already escaped renderings of
//! [`crate::options`].

use super::context::PlanContext;
use super::model::{Catalog, RoleInfo};
use crate::spec::{ComputeSpec, DeltaAction, DeltaOp, ValidSpec};
use postgres_protocol::escape::escape_identifier;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

mod create;
mod delta;
mod index;
mod sql;
mod step;

use index::Sim;
use sql::Sql;
pub use step::{Plan, Step, StepKind};

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
    /// A delta operation would drop or rename a database compute_ctl needs.
    #[error("refusing to {action} database {database:?}: {why}")]
    ProtectedDatabase {
        /// The database.
        database: String,
        /// What was asked, e.g. `delete_db`.
        action: String,
        /// Why it is protected.
        why: &'static str,
    },
    /// A role or database option that cannot be rendered.
    #[error("{object}: {reason}")]
    BadOption {
        /// E.g. `role "x"`.
        object: String,
        /// Why.
        reason: String,
    },
    /// The caller stopped waiting for the plan (say, the compute is
    /// terminating): it was abandoned half made.
    #[error("planning was cancelled")]
    Cancelled,
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

/// Whether the `creating` databases a plan creates are made with `STRATEGY
/// FILE_COPY` rather than postgres' default `WAL_LOG`: on local storage,
/// at a start whose postgres serves no one yet, or in an apply that runs
/// with the syncs lifted ([`PlanContext::copies_files`]), when there are at
/// least [`FILE_COPY_FROM`] (a database whose options name a strategy
/// keeps it).
///
/// `WAL_LOG` reads every page of template1 through shared buffers and
/// writes it again as a full-page WAL record: for a 7 MB template1, ~4 MB
/// of WAL and ~900 dirty buffers a database, which the creations evict from
/// each other (and the next checkpoint still owes every new file's fsync).
/// `FILE_COPY` copies template1's files and syncs them, between two
/// checkpoints that creations running at once share, with one small WAL
/// record: measured on 50 creations at 10 at once (2 busy cores), about a
/// third less time (the catalog bench: 999 ms against 1449 ms for the same
/// spec with `WAL_LOG`). Both are durable at commit. A lone creation keeps
/// `WAL_LOG`: its two checkpoints would be all its own, and on a busy
/// compute a checkpoint writes out everything dirty. On Neon storage the
/// compute's files are a cache of the pageserver's, not the database: a
/// file copy there would copy the wrong thing, so `WAL_LOG` stays. Nor on a
/// running compute (a reconfiguration): the two forced checkpoints write
/// out everything its users dirtied, a burst postgres 15 moved away from
/// (measured beside `pgbench -c 4` on a journaled ext4: 50 creations 4 at
/// a time took 6.8 s with `FILE_COPY` and the clients fell to 1064 tps,
/// 3.9 s with `WAL_LOG` and 1437 tps; 1951 tps alone). Unless its syncs
/// are lifted: then a checkpoint writes to the page cache and syncs
/// nothing, and `WAL_LOG` is the slower of the two (30 creations one at a
/// time beside `pgbench -c 4`, `fsync` off: `FILE_COPY` 1.2-1.7 s with the
/// clients at 3477-4131 tps, `WAL_LOG` 2.4-3.7 s at 2912-3497 tps).
fn file_copy(spec: &ComputeSpec, context: PlanContext, creating: usize) -> bool {
    context.copies_files() && spec.pageserver_connstring.is_none() && creating >= FILE_COPY_FROM
}

/// The fewest database creations in one plan that are made with `STRATEGY
/// FILE_COPY` (see [`file_copy`]): those of a bulk apply, so that on a
/// running compute they are file copies only when the apply runs with the
/// syncs lifted.
const FILE_COPY_FROM: usize = super::bulk::BULK_CREATIONS;

/// The plan under construction and the catalog as it will be after it.
struct Planner<'a> {
    sim: Sim<'a>,
    /// The names of the spec's roles.
    spec_roles: HashSet<&'a str>,
    /// Set when the caller no longer wants the plan.
    cancel: Option<&'a AtomicBool>,
    superuser: &'a str,
    privileged: Option<&'a str>,
    /// How postgres writes the spec's `valid_until` values
    /// ([`Catalog::valid_until`]).
    valid_until: &'a std::collections::HashMap<String, String>,
    steps: Vec<Step>,
    phase: Phase,
    group: usize,
    /// Create databases with `STRATEGY FILE_COPY` (see [`file_copy`]).
    file_copy: bool,
}

impl<'a> Planner<'a> {
    /// Appends a statement of this kind to the current phase and group.
    fn push(&mut self, kind: StepKind, database: Option<&str>, object: String, sql: Sql) {
        self.steps.push(Step {
            kind,
            database: database.map(Box::from),
            redacted: sql.secret.then(|| sql.redacted.into_boxed_str()),
            sql: sql.text.into_boxed_str(),
            object: object.into_boxed_str(),
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

    /// Gives up if the caller asked to (looked at every [`CANCEL_EVERY`]
    /// objects of the spec, `n` counting them).
    fn check_cancel(&self, n: usize) -> Result<(), PlanError> {
        let asked = || self.cancel.is_some_and(|c| c.load(Ordering::Relaxed));
        if n.is_multiple_of(CANCEL_EVERY) && asked() {
            return Err(PlanError::Cancelled);
        }
        Ok(())
    }

    /// Refuses to touch the superuser, the privileged role and `pg_*` roles.
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
}

/// Plans the statements that make `catalog` match `spec`, in the contract's
/// order: delta operations, roles, databases. Pure: no I/O.
///
/// `superuser` is the role compute_ctl connects as; it and the `pg_*` roles
/// are never altered or dropped. A spec that matches the catalog gives an
/// empty plan.
#[cfg(test)]
pub fn plan(catalog: &Catalog, spec: &ValidSpec, superuser: &str) -> Result<Plan, PlanError> {
    plan_with(catalog, spec, superuser, None)
}

/// `plan()` with a privileged role, for a reconciliation:
/// [`plan_cancellable`] never cancelled.
#[cfg(test)]
pub fn plan_with(
    catalog: &Catalog,
    spec: &ValidSpec,
    superuser: &str,
    privileged: Option<&str>,
) -> Result<Plan, PlanError> {
    plan_unchecked(catalog, spec, superuser, privileged, PlanContext::Reconcile)
}

/// Plans as `plan()` does, with a privileged role (the reference's
/// `neon_superuser`): roles are created as its members with `INHERIT
/// CREATEROLE CREATEDB BYPASSRLS REPLICATION` (unless their options say
/// otherwise), each new database grants it ALL and, in schema public, ALL
/// on the tables and sequences its superuser creates later (with grant
/// option: inherited from template1 when [`Catalog::template1_defaults`]
/// says it has them, else set in the new database); it is never altered,
/// renamed or dropped.
///
/// `context` says why the plan is made (here: whether databases are created
/// with `STRATEGY FILE_COPY`, see [`file_copy`]).
///
/// It gives up with [`PlanError::Cancelled`] soon after `cancel` is set: a
/// plan of a large catalog runs on a thread of its own, and whoever waits
/// for it may stop waiting. Each name is looked up in an index, so a plan
/// is O(n log n) in the roles, databases and delta operations.
pub fn plan_cancellable(
    catalog: &Catalog,
    spec: &ValidSpec,
    superuser: &str,
    privileged: Option<&str>,
    context: PlanContext,
    cancel: &AtomicBool,
) -> Result<Plan, PlanError> {
    plan_inner(catalog, spec, superuser, privileged, context, Some(cancel))
}

/// How many spec objects the planner handles between two looks at its
/// cancellation flag.
const CANCEL_EVERY: usize = 1024;

/// [`plan_cancellable`], never cancelled, on any spec. The planner does not rely on validation: it
/// escapes every name and value and refuses bad options itself (the tests
/// give it specs the validator would refuse).
#[cfg(test)]
fn plan_unchecked(
    catalog: &Catalog,
    spec: &ComputeSpec,
    superuser: &str,
    privileged: Option<&str>,
    context: PlanContext,
) -> Result<Plan, PlanError> {
    plan_inner(catalog, spec, superuser, privileged, context, None)
}

/// The planner, looking at `cancel` (if any) as it goes.
fn plan_inner<'a>(
    catalog: &'a Catalog,
    spec: &'a ComputeSpec,
    superuser: &'a str,
    privileged: Option<&'a str>,
    context: PlanContext,
    cancel: Option<&'a AtomicBool>,
) -> Result<Plan, PlanError> {
    let mut p = Planner {
        sim: Sim::of(catalog),
        spec_roles: spec.cluster.roles.iter().map(|r| r.name.as_str()).collect(),
        cancel,
        superuser,
        privileged,
        valid_until: &catalog.valid_until,
        steps: Vec::new(),
        phase: Phase::Delta,
        group: 0,
        file_copy: false,
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
    for (n, op) in ops.into_iter().enumerate() {
        p.check_cancel(n)?;
        p.delta(op)?;
    }
    p.barrier();
    p.phase = Phase::Roles;
    if let Some(privileged) = privileged.filter(|r| p.sim.role(r).is_none()) {
        // Missing (say, the start skipped catalog updates): its members need it.
        p.push(
            StepKind::RoleChange,
            None,
            object("role", privileged),
            Sql::new("CREATE ROLE ")
                .ident(privileged)
                .kw(" ")
                .kw(super::privileged::CREATE_ATTRIBUTES),
        );
        p.sim.roles.push(RoleInfo::new(privileged));
    }
    for (n, role) in spec.cluster.roles.iter().enumerate() {
        p.check_cancel(n)?;
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
    // The spec's databases that do not exist yet, in the spec's order.
    let created: Vec<&str> = spec
        .cluster
        .databases
        .iter()
        .filter(|d| p.sim.database(&d.name).is_none())
        .map(|d| d.name.as_str())
        .collect();
    p.file_copy = file_copy(spec, context, created.len());
    for (n, db) in spec.cluster.databases.iter().enumerate() {
        p.check_cancel(n)?;
        p.database(db)?;
    }
    if let Some(privileged) = privileged {
        // After every creation, so that the creations stay one parallel run.
        for db in &created {
            let sql = Sql::new("GRANT ALL ON DATABASE ")
                .ident(db)
                .kw(" TO ")
                .ident(privileged);
            p.push(StepKind::Grant, None, object("database", db), sql);
        }
        p.barrier();
        let created: HashSet<&str> = created.into_iter().collect();
        // The default privileges come with the template when template1 has
        // them and the database is made from it; else they are set in it.
        for db in spec.cluster.databases.iter() {
            if !created.contains(db.name.as_str())
                || (p.sim.template1_defaults && !create::names_own_template(db))
            {
                continue;
            }
            let sql = Sql::new("").safe(&super::template1::default_privileges_sql(privileged));
            let obj = object("database", &db.name);
            p.push(StepKind::Other, Some(&db.name), obj, sql);
        }
    }
    Ok(Plan { steps: p.steps })
}

#[cfg(test)]
pub(crate) mod tests;
