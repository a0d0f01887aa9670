//! Why the catalog is planned: the caller's facts the plan depends on,
//! passed in as one value rather than as flags, and never stored in the
//! catalog snapshot (which holds only what was read).

/// Where the cluster a start reconciles came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A fresh copy of a local template that `finish_template` finished
    /// for this privileged role: template1 carries its default privileges,
    /// and the cluster serves no one yet.
    FinishedTemplate,
    /// Anything else (Neon storage, a restart on the same data, a replica
    /// just promoted): each step looks for itself.
    Unknown,
}

/// Why a plan is made: what it may change before it plans and how it
/// creates databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanContext {
    /// Nothing changes: the plan is shown (`compute_ctl plan`) or a spec is
    /// checked against the catalog before it is accepted. Template1 is
    /// looked at, not given anything.
    DryRun,
    /// A running compute's catalog brought to a new spec: template1 is
    /// given the privileged role's default privileges it lacks when the
    /// plan creates databases; databases are created with postgres'
    /// default strategy (the compute serves users, and `FILE_COPY`'s
    /// checkpoints would write out what they dirtied).
    Reconcile,
    /// A reconciliation as [`PlanContext::Reconcile`] whose apply, when it
    /// creates databases in bulk, runs with postgres' syncs lifted (local
    /// storage: see `BulkApply`): those creations are file copies, whose
    /// checkpoints then sync nothing and write each page once, where
    /// `WAL_LOG` writes it to the WAL and again to its file. Chosen by the
    /// catalog from its caller's hooks, never by the driver.
    ReconcileUnsynced,
    /// A primary's start's catalog step (or the first one of a replica just
    /// promoted), on a cluster from this origin.
    Start(Origin),
}

impl PlanContext {
    /// Whether the plan may first change template1 (give it the privileged
    /// role's default privileges).
    pub(super) fn prepares_template1(self) -> bool {
        self != PlanContext::DryRun
    }

    /// Whether postgres serves no one yet, so the checkpoints `STRATEGY
    /// FILE_COPY` forces cost no workload: a start on a fresh copy of the
    /// local template.
    pub(super) fn serves_no_one(self) -> bool {
        self == PlanContext::Start(Origin::FinishedTemplate)
    }

    /// Whether several databases this plan creates are file copies
    /// (`STRATEGY FILE_COPY`): where postgres serves no one yet, or where
    /// their apply runs with the syncs lifted.
    pub(super) fn copies_files(self) -> bool {
        self.serves_no_one() || self == PlanContext::ReconcileUnsynced
    }
}

/// What a start knows of template1's default privileges for the privileged
/// role when it plans (found out beside the migrations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Template1 {
    /// Not looked at, or it could not be: the catalog read looks if the
    /// plan creates databases.
    Unknown,
    /// Databases made from it inherit them.
    Inherits,
    /// They do not: the plan sets them in each new database.
    Lacks,
}

impl Template1 {
    /// From whether databases made from it inherit them.
    pub(super) fn inherits(yes: bool) -> Self {
        if yes {
            Template1::Inherits
        } else {
            Template1::Lacks
        }
    }
}
