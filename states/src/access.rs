//! What the driver may read (and, for a serving postgres, wait on) in each
//! state: the accessors, kept apart so `lib.rs` reads as the states and
//! their table. Nothing here moves a state; transitions are the table's.

use crate::*;

impl<C: Compute> ConfigurationPending<C> {
    /// The spec waiting to be applied.
    pub fn spec(&self) -> &C::Spec {
        &self.spec
    }
}

impl<C: Compute> ReconfigurationPending<C> {
    /// The spec waiting to be applied.
    pub fn spec(&self) -> &C::Spec {
        &self.spec
    }
}

impl<C: Compute> Configuration<C> {
    /// The spec being applied.
    pub fn spec(&self) -> &C::Spec {
        &self.spec
    }
}

impl<C: Compute> Reconfiguration<C> {
    /// The spec being applied.
    pub fn spec(&self) -> &C::Spec {
        &self.spec
    }
    /// The spec in effect until the reconfiguration succeeds.
    pub fn previous(&self) -> &C::Spec {
        &self.previous
    }
    /// The serving postgres being reconfigured.
    pub fn postgres(&self) -> &C::Postgres {
        &self.postgres
    }
    /// The serving postgres, mutably (to learn whether it died).
    pub fn postgres_mut(&mut self) -> &mut C::Postgres {
        &mut self.postgres
    }
}

impl<C: Compute> Init<C> {
    /// The spec the compute starts from.
    pub fn spec(&self) -> &C::Spec {
        &self.spec
    }
}

impl<C: Compute> Running<C> {
    /// The spec the compute runs with.
    pub fn spec(&self) -> &C::Spec {
        &self.spec
    }
    /// The running postgres.
    pub fn postgres(&self) -> &C::Postgres {
        &self.postgres
    }
    /// The running postgres, mutably (to wait on it, say).
    pub fn postgres_mut(&mut self) -> &mut C::Postgres {
        &mut self.postgres
    }
}

impl<C: Compute> RestartPending<C> {
    /// The spec the compute restarts with.
    pub fn spec(&self) -> &C::Spec {
        &self.spec
    }
}

impl<C: Compute> Restarting<C> {
    /// The spec the compute restarts with.
    pub fn spec(&self) -> &C::Spec {
        &self.spec
    }
}

impl<C: Compute> Promoting<C> {
    /// The spec the compute runs as a replica until it is promoted.
    pub fn replica_spec(&self) -> &C::Spec {
        &self.replica
    }
    /// The spec it takes as a primary.
    pub fn primary_spec(&self) -> &C::Spec {
        &self.primary
    }
    /// How far the replica must have replayed before it is promoted.
    pub fn wal_flush_lsn(&self) -> Lsn {
        self.wal_flush_lsn
    }
    /// The postgres being promoted.
    pub fn postgres(&self) -> &C::Postgres {
        &self.postgres
    }
}

impl<C: Compute> TerminationPending<C> {
    /// How postgres is to be stopped, and who asked.
    pub fn termination(&self) -> Termination {
        self.termination
    }
}

impl<C: Compute> Terminating<C> {
    /// How postgres is being stopped, and who asked.
    pub fn termination(&self) -> Termination {
        self.termination
    }
}

impl<C: Compute> Stopping<C> {
    /// How postgres is being stopped, and who asked.
    pub fn termination(&self) -> Termination {
        self.termination
    }
    /// The spec in effect when the termination was asked for (what the
    /// final LSN is read from).
    pub fn spec(&self) -> &C::Spec {
        &self.spec
    }
}

impl<C: Compute> Promoted<C> {
    /// The spec in effect: the primary's.
    pub fn primary_spec(&self) -> &C::Spec {
        &self.primary
    }
    /// The promoted postgres.
    pub fn postgres(&self) -> &C::Postgres {
        &self.postgres
    }
}

impl<C: Compute> RefreshPending<C> {
    /// The spec in effect.
    pub fn spec(&self) -> &C::Spec {
        &self.spec
    }
    /// Why the last attempt failed, if one did.
    pub fn error(&self) -> Option<&C::Error> {
        self.error.as_ref()
    }
}

impl<C: Compute> Refreshing<C> {
    /// The spec in effect.
    pub fn spec(&self) -> &C::Spec {
        &self.spec
    }
    /// Why the last attempt failed, if one did.
    pub fn error(&self) -> Option<&C::Error> {
        self.error.as_ref()
    }
    /// The serving postgres.
    pub fn postgres(&self) -> &C::Postgres {
        &self.postgres
    }
    /// The serving postgres, mutably (to wait on it).
    pub fn postgres_mut(&mut self) -> &mut C::Postgres {
        &mut self.postgres
    }
}

impl<C: Compute> Failed<C> {
    /// Why the compute failed.
    pub fn error(&self) -> &C::Error {
        &self.error
    }
}

impl<C: Compute> FailedServing<C> {
    /// Why the compute failed.
    pub fn error(&self) -> &C::Error {
        &self.error
    }
    /// The spec in effect: the last one postgres was configured with.
    pub fn spec(&self) -> &C::Spec {
        &self.spec
    }
    /// The postgres still serving.
    pub fn postgres(&self) -> &C::Postgres {
        &self.postgres
    }
    /// The postgres still serving, mutably (to wait on it).
    pub fn postgres_mut(&mut self) -> &mut C::Postgres {
        &mut self.postgres
    }
}

impl<C: Compute> Terminated<C> {
    /// The last flushed LSN of a primary stopped with a shutdown checkpoint.
    pub fn lsn(&self) -> Option<Lsn> {
        self.lsn
    }
    /// How postgres was stopped, and who asked.
    pub fn termination(&self) -> Termination {
        self.termination
    }
}
