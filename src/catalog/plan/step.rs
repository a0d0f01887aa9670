//! The planner's output: statements ([`Step`]) in order ([`Plan`]).

use super::Phase;
use std::fmt;

/// What a statement does, as far as its execution cares: set by the
/// planner with each statement, never guessed back from the SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// A role created, altered or renamed, in the maintenance database.
    RoleChange,
    /// A privilege granted in the maintenance database (`GRANT ALL ON
    /// DATABASE`).
    Grant,
    /// A database created (`CREATE DATABASE`, which cannot run in a
    /// transaction block).
    CreateDatabase,
    /// Anything else: changes and drops of databases, a role's drop and its
    /// handover, subscriptions, work inside a database. Each runs alone.
    Other,
}

/// One SQL statement of a [`Plan`].
///
/// Its texts are boxed `str`s, not `String`s: a plan of 100k roles holds
/// 200k steps, and each text built by pushes keeps spare capacity (and a
/// `String` a word more) that a box does not.
#[derive(Clone, PartialEq, Eq)]
pub struct Step {
    pub(super) kind: StepKind,
    pub(super) database: Option<Box<str>>,
    pub(super) sql: Box<str>,
    /// The shown form, when it differs from `sql` (a password in it): a
    /// plan of 100k roles keeps one copy of each statement, not two.
    pub(super) redacted: Option<Box<str>>,
    pub(super) object: Box<str>,
    pub(super) phase: Phase,
    pub(super) group: usize,
    pub(super) secret: bool,
}

impl Step {
    /// The database the statement must run in; `None` is the maintenance
    /// database (the one of the connection string).
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The statement to execute. It may contain a password: see
    /// [`Step::has_secret`]; show [`Step::redacted_sql`] instead.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The statement with any password replaced by `<redacted>`.
    pub fn redacted_sql(&self) -> &str {
        self.redacted.as_deref().unwrap_or(&self.sql)
    }

    /// What the statement is about, e.g. `role "x"`.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// What the statement does.
    pub fn kind(&self) -> StepKind {
        self.kind
    }

    /// Which pass of the reconciliation the statement belongs to.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Ordering group: groups run one after the other; inside a group, the
    /// statements of one database run in order, those of different databases
    /// may run in parallel.
    pub fn group(&self) -> usize {
        self.group
    }

    /// Whether [`Step::sql`] contains a password.
    pub fn has_secret(&self) -> bool {
        self.secret
    }

    /// Whether this may run in a transaction block with others of its kind
    /// (role creations and changes, grants): the executor sends runs of
    /// them as one batch.
    pub fn batchable(&self) -> bool {
        self.database.is_none() && matches!(self.kind, StepKind::RoleChange | StepKind::Grant)
    }

    /// Whether this creates a database. Creations of distinct databases
    /// (the spec's names are unique) do not depend on each other and may run
    /// in parallel.
    pub fn creates_database(&self) -> bool {
        self.kind == StepKind::CreateDatabase
    }
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("kind", &self.kind)
            .field("database", &self.database)
            .field("sql", &self.redacted_sql())
            .field("object", &self.object)
            .field("phase", &self.phase)
            .field("group", &self.group)
            .field("secret", &self.secret)
            .finish()
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{};", self.redacted_sql())?;
        if let Some(db) = &self.database {
            // Debug quoting keeps control characters of the name on one line.
            write!(f, " -- in database {db:?}")?;
        }
        Ok(())
    }
}

/// The ordered statements that reconcile a catalog with a spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The statements, in execution order.
    pub steps: Vec<Step>,
}

impl Plan {
    /// Nothing to do: the catalog matches the spec.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Number of statements.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// The steps cut into their ordering groups, in order.
    pub fn groups(&self) -> impl Iterator<Item = &[Step]> {
        self.steps.chunk_by(|a, b| a.group == b.group)
    }
}

/// The dry-run text: one statement per line, passwords redacted.
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            writeln!(f, "{step}")?;
        }
        Ok(())
    }
}
