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
    /// How postgres is to be stopped.
    pub fn mode(&self) -> TerminationMode {
        self.mode
    }
}

impl<C: Compute> Terminating<C> {
    /// How postgres is being stopped.
    pub fn mode(&self) -> TerminationMode {
        self.mode
    }
}

impl<C: Compute> Stopping<C> {
    /// How postgres is being stopped.
    pub fn mode(&self) -> TerminationMode {
        self.mode
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
}
