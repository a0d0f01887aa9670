//! The lifecycle of a compute node as a typestate machine.
//!
//! Every state is its own type. A transition is a method that consumes the
//! current state and returns the next one, so an illegal move (skipping a
//! state, leaving a terminal state, going back, reusing a consumed state) is a
//! compile error rather than a runtime check. The states' fields are private:
//! the only way to obtain, say, a [`Running`] is through a transition that
//! supplies the evidence it needs (a handle to a started postgres).
//!
//! All transitions are declared once, in the `machine!` table at the bottom of
//! this file. The same declaration generates the transition methods, the
//! [`AnyState`] enum the driver loop holds, the fieldless [`Status`] with its
//! stable snake_case names (what the API reports), the [`Kind`] of each state
//! type (two types can report one status: a start and a reconfiguration are
//! both `configuration`), and the [`EDGES`] table that [`mermaid`] (the status
//! view) and [`mermaid_types`] (the type view) render.
//!
//! Whether a postgres serves is a fact of the type, never an `Option`: a
//! state either holds it by value (`Running`, `FailedServing`,
//! `TerminationPending`, ...) or has none (`Failed`, `Terminating`,
//! `Restarting`, ...). A *handover* consumes a state holding postgres and
//! returns the postgres, for the driver to stop, with the next state.
//!
//! This crate is pure: no I/O, no async runtime. The driver in the
//! `compute_ctl` binary supplies the concrete types through [`Compute`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::marker::PhantomData;

#[macro_use]
mod machine;
mod access;
mod diagram;
mod lsn;
mod termination;

pub use diagram::{mermaid, mermaid_highlighted, mermaid_types, View};
pub use lsn::{Lsn, LsnParseError};
pub use termination::{Origin, Termination, TerminationMode};

/// The concrete types a driver plugs into the machine.
pub trait Compute {
    /// The parsed compute specification.
    type Spec;
    /// Evidence that postgres is up and accepting connections.
    type Postgres;
    /// Why the compute failed.
    type Error;
    /// Evidence that postgres has stopped: what stopping it returns, and
    /// nothing else can make.
    type Stopped;
    /// How postgres ended on its own (its exit status, or why it is unknown).
    type ExitStatus;
    /// The error of a compute whose postgres exited on its own with `status`.
    fn exited(postgres: &Self::Postgres, status: Self::ExitStatus) -> Self::Error;
}

/// One end of an edge in the diagram: a state, or the pseudo-state `[*]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    /// `[*]` as a source: the process has just been spawned.
    Start,
    /// A compute state (its type: two types can share a [`Status`]).
    State(Kind),
    /// `[*]` as a target: the process exits.
    End,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Start | Node::End => f.write_str("[*]"),
            Node::State(k) => f.write_str(k.type_name()),
        }
    }
}

/// A declared transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Edge {
    /// Where the transition starts.
    pub from: Node,
    /// Where it leads.
    pub to: Node,
    /// The name of the method that performs it.
    pub method: &'static str,
    /// What it means, as shown in the diagram.
    pub label: &'static str,
}

/// The end of the machine: the process exits with this code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the compute has ended; exit the process with this code"]
pub struct Exited {
    code: u8,
}

impl Exited {
    /// The process exit code: 0 after a requested termination, 1 after a failure.
    pub fn code(self) -> u8 {
        self.code
    }
}

/// The process has started; no spec yet.
pub struct Empty<C: Compute> {
    _compute: PhantomData<fn() -> C>,
}

/// A spec was received over the API for a compute with no postgres; the
/// driver has not picked it up yet.
pub struct ConfigurationPending<C: Compute> {
    spec: C::Spec,
}

/// A spec was received over the API for a serving postgres; the driver has
/// not picked it up yet. Reported as `configuration_pending`.
pub struct ReconfigurationPending<C: Compute> {
    spec: C::Spec,
    previous: C::Spec,
    postgres: C::Postgres,
}

/// The driver is applying a spec received over the API with a full start:
/// the move to [`Running`] needs the postgres it started.
pub struct Configuration<C: Compute> {
    spec: C::Spec,
}

/// The driver is applying a spec received over the API to a serving
/// postgres, which the state keeps (it cannot be lost on the way to
/// [`Running`]), with the spec it served until now (still in effect if the
/// reconfiguration fails). Reported as `configuration`.
pub struct Reconfiguration<C: Compute> {
    spec: C::Spec,
    previous: C::Spec,
    postgres: C::Postgres,
}

/// Starting from a spec that was available at launch.
pub struct Init<C: Compute> {
    spec: C::Spec,
}

/// Postgres is up and the catalog matches the spec.
pub struct Running<C: Compute> {
    spec: C::Spec,
    postgres: C::Postgres,
}

/// A restart was requested (`POST /restart`): the serving postgres is still
/// here; the driver takes it up at once with [`RestartPending::begin`],
/// which hands the postgres over to be stopped. Reported as `restarting`.
pub struct RestartPending<C: Compute> {
    spec: C::Spec,
    postgres: C::Postgres,
}

/// A restart under way: the old postgres was handed to the driver, which
/// stops it fast and starts a new one on the same PGDATA, so settings
/// pending a restart go live. The state holds no postgres; the move back to
/// [`Running`] needs both the proof the old one stopped and the new one.
/// Held by the driver from the handover to the restart's end, never between
/// steps.
pub struct Restarting<C: Compute> {
    spec: C::Spec,
}

/// A promotion was requested (`POST /promote`): the replica waits until it
/// has replayed the old primary's WAL up to `wal_flush_lsn`, and is
/// promoted ([`Promoting::pg_promoted`]). Until then the replica's spec
/// stays in effect (and comes back if the WAL never arrives).
pub struct Promoting<C: Compute> {
    replica: C::Spec,
    primary: C::Spec,
    wal_flush_lsn: Lsn,
    postgres: C::Postgres,
}

/// Postgres was promoted: it is a primary, with the primary's spec in
/// effect, being configured as one. Held by the driver inside the
/// promotion's step. Reported as `promoting`.
pub struct Promoted<C: Compute> {
    primary: C::Spec,
    postgres: C::Postgres,
}

/// A refresh of the configuration was requested (`/refresh_configuration`,
/// or a refresh that failed and is tried again): the serving postgres and
/// the spec in effect are kept; the driver takes it up at once. The error
/// is the last failed attempt's, if any.
pub struct RefreshPending<C: Compute> {
    spec: C::Spec,
    postgres: C::Postgres,
    error: Option<C::Error>,
}

/// The driver reads the spec again from where it came from and, if it
/// changed, reconfigures the serving postgres with it.
pub struct Refreshing<C: Compute> {
    spec: C::Spec,
    postgres: C::Postgres,
    error: Option<C::Error>,
}

/// A termination was requested while postgres serves: the driver takes it
/// up at once with [`TerminationPending::begin`], which hands the postgres
/// over to be stopped, with the spec in effect (what the final LSN is read
/// from).
pub struct TerminationPending<C: Compute> {
    termination: Termination,
    spec: C::Spec,
    postgres: C::Postgres,
}

/// The compute is terminating and no postgres was handed over to be
/// stopped: none was serving (a termination before a start finished, or
/// after postgres died), or the work it interrupted dropped the one it held
/// (which the driver waits for). Reported as `termination_pending`.
pub struct Terminating<C: Compute> {
    termination: Termination,
    _compute: PhantomData<fn() -> C>,
}

/// The driver is stopping the postgres [`TerminationPending::begin`] handed
/// over; the state holds none. It ends only in [`Terminated`], with the
/// proof that postgres stopped ([`Stopping::terminated`]) or by saying what
/// a failed stop left behind ([`Stopping::abandoned`]). Held by the driver
/// from the handover to its end, never between steps. Reported as
/// `termination_pending`.
pub struct Stopping<C: Compute> {
    termination: Termination,
    spec: C::Spec,
}

/// Something went wrong and no postgres serves (a failed start, postgres
/// exited, a restart that did not come back); the error says what. A new
/// spec starts afresh; without one the compute exits.
pub struct Failed<C: Compute> {
    error: C::Error,
}

/// A reconfiguration (or the reconfiguration after a promotion) failed and
/// postgres still serves with the spec in effect before it, so a later spec
/// can recover it in place. Reported as `failed`; the compute does not exit
/// while postgres serves.
pub struct FailedServing<C: Compute> {
    error: C::Error,
    spec: C::Spec,
    postgres: C::Postgres,
}

/// Postgres has been stopped on request; the termination says who asked
/// (and so the exit code).
pub struct Terminated<C: Compute> {
    lsn: Option<Lsn>,
    termination: Termination,
    _compute: PhantomData<fn() -> C>,
}

machine! {
    statuses {
        Empty = "empty",
        ConfigurationPending = "configuration_pending",
        Configuration = "configuration",
        Init = "init",
        Running = "running",
        Restarting = "restarting",
        Promoting = "promoting",
        RefreshConfigurationPending = "refresh_configuration_pending",
        RefreshConfiguration = "refresh_configuration",
        TerminationPending = "termination_pending",
        Failed = "failed",
        Terminated = "terminated",
    }

    // Each state type and the status it reports: a start and a
    // reconfiguration are distinct types, one status to the API; so are a
    // state that holds the serving postgres and its twin that holds none.
    states {
        Empty: Empty,
        ConfigurationPending: ConfigurationPending,
        ReconfigurationPending: ConfigurationPending,
        Configuration: Configuration,
        Reconfiguration: Configuration,
        Init: Init,
        Running: Running,
        RestartPending: Restarting,
        Promoting: Promoting,
        RefreshPending: RefreshConfigurationPending,
        Refreshing: RefreshConfiguration,
        TerminationPending: TerminationPending,
        Terminating: TerminationPending,
        Failed: Failed,
        FailedServing: Failed,
        Terminated: Terminated,
    }

    // States held by the driver inside one step, from a handover to the
    // step's end: never between steps, so not in `AnyState`.
    held {
        Restarting: Restarting,
        Promoted: Promoting,
        Stopping: TerminationPending,
    }

    start Empty "Compute spawned" fn spawn() {
        Empty { _compute: PhantomData }
    }

    edges {
        Empty -> ConfigurationPending "Waiting for compute spec"
        fn configure(self, spec: C::Spec) {
            ConfigurationPending { spec }
        }

        ConfigurationPending -> Configuration "Received compute spec"
        fn begin(self) {
            Configuration { spec: self.spec }
        }

        Configuration -> Failed "Failed to configure the compute"
        fn fail(self, error: C::Error) {
            Failed { error }
        }

        Configuration -> Running "Compute has been configured"
        fn configured(self, postgres: C::Postgres) {
            Running { spec: self.spec, postgres }
        }

        Empty -> Init "Compute spec is immediately available"
        fn start(self, spec: C::Spec) {
            Init { spec }
        }

        Empty -> Terminating "Requested termination"
        fn terminate(self, termination: Termination) {
            Terminating { termination, _compute: PhantomData }
        }

        Init -> Failed "Failed to start Postgres"
        fn fail(self, error: C::Error) {
            Failed { error }
        }

        Init -> Running "Started Postgres"
        fn started(self, postgres: C::Postgres) {
            Running { spec: self.spec, postgres }
        }

        Running -> TerminationPending "Requested termination"
        fn terminate(self, termination: Termination) {
            TerminationPending { termination, spec: self.spec, postgres: self.postgres }
        }

        // The postgres handed over was stopped: the proof is what stopping
        // it returned.
        Stopping -> Terminated "Terminated compute"
        fn terminated(self, stopped: C::Stopped, lsn: Option<Lsn>) {
            let _proof = stopped;
            Terminated { lsn, termination: self.termination, _compute: PhantomData }
        }

        // The stop failed: the error says what was left (a postgres
        // abandoned to the reaper); no LSN.
        Stopping -> Terminated "Stop failed: postgres abandoned"
        fn abandoned(self, left: C::Error) {
            let _left = left;
            Terminated { lsn: None, termination: self.termination, _compute: PhantomData }
        }

        // No postgres was handed over (the termination came before one
        // started, or after it died, or the work it interrupted dropped it).
        Terminating -> Terminated "No postgres left to stop"
        fn nothing_to_stop(self) {
            Terminated { lsn: None, termination: self.termination, _compute: PhantomData }
        }

        Init -> Terminating "Signal during startup"
        fn terminate(self, termination: Termination) {
            Terminating { termination, _compute: PhantomData }
        }

        Configuration -> Terminating "Signal during configuration"
        fn terminate(self, termination: Termination) {
            Terminating { termination, _compute: PhantomData }
        }

        Running -> ReconfigurationPending "New spec for a running compute"
        fn reconfigure(self, spec: C::Spec) {
            ReconfigurationPending { spec, previous: self.spec, postgres: self.postgres }
        }

        ReconfigurationPending -> Reconfiguration "Received compute spec"
        fn begin(self) {
            Reconfiguration { spec: self.spec, previous: self.previous, postgres: self.postgres }
        }

        Reconfiguration -> Running "Compute has been reconfigured"
        fn configured(self) {
            Running { spec: self.spec, postgres: self.postgres }
        }

        // Postgres serves on with the spec it had.
        Reconfiguration -> FailedServing "Failed to reconfigure the compute"
        fn fail(self, error: C::Error) {
            FailedServing { error, spec: self.previous, postgres: self.postgres }
        }

        Reconfiguration -> TerminationPending "Signal during reconfiguration"
        fn terminate(self, termination: Termination) {
            TerminationPending { termination, spec: self.previous, postgres: self.postgres }
        }

        Running -> Failed "Postgres exited on its own"
        fn postgres_exited(self, status: C::ExitStatus) {
            Failed { error: C::exited(&self.postgres, status) }
        }

        Running -> RestartPending "Requested restart"
        fn restart(self) {
            RestartPending { spec: self.spec, postgres: self.postgres }
        }

        // Back to serving only with the proof the old postgres stopped and
        // the new one in hand.
        Restarting -> Running "Postgres restarted"
        fn restarted(self, stopped: C::Stopped, postgres: C::Postgres) {
            let _proof = stopped;
            Running { spec: self.spec, postgres }
        }

        Restarting -> Failed "Postgres did not come back"
        fn fail(self, error: C::Error) {
            Failed { error }
        }

        // The postgres being stopped or started was dropped with the work.
        Restarting -> Terminating "Signal during restart"
        fn terminate(self, termination: Termination) {
            Terminating { termination, _compute: PhantomData }
        }

        Running -> Promoting "Requested promotion"
        fn promote(self, spec: C::Spec, wal_flush_lsn: Lsn) {
            Promoting { replica: self.spec, primary: spec, wal_flush_lsn, postgres: self.postgres }
        }

        // `pg_promote()` was called: from here on postgres is a primary,
        // whatever happens next.
        Promoting -> Promoted "Postgres promoted"
        fn pg_promoted(self) {
            Promoted { primary: self.primary, postgres: self.postgres }
        }

        Promoted -> Running "Promoted to primary"
        fn promoted(self) {
            Running { spec: self.primary, postgres: self.postgres }
        }

        Promoting -> Running "WAL not replayed in time: still a replica"
        fn not_promoted(self) {
            Running { spec: self.replica, postgres: self.postgres }
        }

        Promoted -> FailedServing "Promoted, but not reconfigured"
        fn fail(self, error: C::Error) {
            FailedServing { error, spec: self.primary, postgres: self.postgres }
        }

        Promoting -> TerminationPending "Signal during promotion"
        fn terminate(self, termination: Termination) {
            TerminationPending { termination, spec: self.replica, postgres: self.postgres }
        }

        Promoted -> TerminationPending "Signal during promotion"
        fn terminate(self, termination: Termination) {
            TerminationPending { termination, spec: self.primary, postgres: self.postgres }
        }

        Failed -> ConfigurationPending "New spec after a failure"
        fn configure(self, spec: C::Spec) {
            ConfigurationPending { spec }
        }

        Failed -> Terminating "Requested termination"
        fn terminate(self, termination: Termination) {
            Terminating { termination, _compute: PhantomData }
        }

        FailedServing -> ReconfigurationPending "New spec for the postgres still serving"
        fn reconfigure(self, spec: C::Spec) {
            ReconfigurationPending { spec, previous: self.spec, postgres: self.postgres }
        }

        FailedServing -> TerminationPending "Requested termination"
        fn terminate(self, termination: Termination) {
            TerminationPending { termination, spec: self.spec, postgres: self.postgres }
        }

        // The error stays the one that failed the reconfiguration (the
        // driver logs the exit); the exit status is the evidence that the
        // postgres dropped here is gone.
        FailedServing -> Failed "Postgres exited on its own"
        fn postgres_exited(self, status: C::ExitStatus) {
            let _exited = status;
            Failed { error: self.error }
        }

        Running -> RefreshPending "Requested configuration refresh"
        fn refresh(self) {
            RefreshPending { spec: self.spec, postgres: self.postgres, error: None }
        }

        FailedServing -> RefreshPending "Requested configuration refresh"
        fn refresh(self) {
            RefreshPending { spec: self.spec, postgres: self.postgres, error: Some(self.error) }
        }

        RefreshPending -> Refreshing "Refreshing the configuration"
        fn begin(self) {
            Refreshing { spec: self.spec, postgres: self.postgres, error: self.error }
        }

        // The spec read again, the same or applied in place.
        Refreshing -> Running "Configuration refreshed"
        fn refreshed(self, spec: C::Spec) {
            Running { spec, postgres: self.postgres }
        }

        // Tried again (after a pause) until it succeeds or the compute is
        // terminated; postgres serves on meanwhile.
        Refreshing -> RefreshPending "Refresh failed: retried"
        fn retry(self, error: C::Error) {
            RefreshPending { spec: self.spec, postgres: self.postgres, error: Some(error) }
        }

        Refreshing -> TerminationPending "Signal during refresh"
        fn terminate(self, termination: Termination) {
            TerminationPending { termination, spec: self.spec, postgres: self.postgres }
        }

        // The spec source has no spec for this compute: it is attached to
        // no storage any more; postgres is stopped and the process exits 1.
        Refreshing -> TerminationPending "Attached to no storage: exit 1"
        fn detach(self) {
            TerminationPending {
                termination: Termination::detached(),
                spec: self.spec,
                postgres: self.postgres,
            }
        }

        Refreshing -> Failed "Postgres exited on its own"
        fn postgres_exited(self, status: C::ExitStatus) {
            Failed { error: C::exited(&self.postgres, status) }
        }
    }

    // The postgres leaves the machine: the method returns it with the next
    // state, which holds none, so it cannot be taken twice or left behind.
    handovers {
        TerminationPending -> Stopping "Postgres handed over to be stopped"
        fn begin(self) -> C::Postgres {
            (self.postgres, Stopping { termination: self.termination, spec: self.spec })
        }

        RestartPending -> Restarting "Postgres handed over to be stopped"
        fn begin(self) -> C::Postgres {
            (self.postgres, Restarting { spec: self.spec })
        }
    }

    exits {
        // Only without postgres: a compute whose postgres serves stops it
        // (through TerminationPending) before it exits.
        Failed "Compute exited" fn exit(self) {
            Exited { code: 1 }
        }
        // 0, but 1 for a compute detached from its storage.
        Terminated "Compute exited" fn exit(self) {
            Exited { code: self.termination.exit_code() }
        }
    }
}

#[cfg(test)]
mod tests;
