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
//! stable snake_case names, and the [`EDGES`] table that [`mermaid`] renders.
//!
//! This crate is pure: no I/O, no async runtime. The driver in the
//! `compute_ctl` binary supplies the concrete types through [`Compute`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::marker::PhantomData;

mod diagram;
mod lsn;

pub use diagram::{mermaid, mermaid_highlighted};
pub use lsn::{Lsn, LsnParseError};

/// The concrete types a driver plugs into the machine.
pub trait Compute {
    /// The parsed compute specification.
    type Spec;
    /// Evidence that postgres is up and accepting connections.
    type Postgres;
    /// Why the compute failed.
    type Error;
}

/// How postgres is asked to stop.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum TerminationMode {
    /// Disconnect clients, write a shutdown checkpoint, exit (SIGINT to the postmaster).
    #[default]
    Fast,
    /// Exit at once without a checkpoint; recovery runs at the next start (SIGQUIT).
    Immediate,
}

/// One end of an edge in the diagram: a state, or the pseudo-state `[*]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    /// `[*]` as a source: the process has just been spawned.
    Start,
    /// A compute state.
    State(Status),
    /// `[*]` as a target: the process exits.
    End,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Start | Node::End => f.write_str("[*]"),
            Node::State(s) => f.write_str(s.type_name()),
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

/// A spec was received over the API; the driver has not picked it up yet.
pub struct ConfigurationPending<C: Compute> {
    spec: C::Spec,
    postgres: Option<C::Postgres>,
}

/// The driver is applying a spec received over the API: a full start from
/// Empty, or a reconfiguration of a running postgres.
pub struct Configuration<C: Compute> {
    spec: C::Spec,
    postgres: Option<C::Postgres>,
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

/// A restart was requested (`POST /restart`): postgres is stopped fast and
/// started again on the same PGDATA, so settings pending a restart go live.
pub struct Restarting<C: Compute> {
    spec: C::Spec,
    postgres: Option<C::Postgres>,
}

/// A promotion was requested (`POST /promote`): the replica waits until it
/// has replayed the old primary's WAL up to `wal_flush_lsn`, is promoted, and
/// takes the new spec as a primary. Until postgres is promoted the replica's
/// spec stays in effect (and comes back if the WAL never arrives).
pub struct Promoting<C: Compute> {
    replica: C::Spec,
    primary: C::Spec,
    wal_flush_lsn: Lsn,
    postgres: C::Postgres,
}

/// A termination was requested; postgres is being stopped.
pub struct TerminationPending<C: Compute> {
    mode: TerminationMode,
    postgres: Option<C::Postgres>,
}

/// Something went wrong; the error says what. A failed reconfiguration
/// leaves postgres serving (the previous configuration), so a later spec can
/// recover; a failed start has no postgres.
pub struct Failed<C: Compute> {
    error: C::Error,
    postgres: Option<C::Postgres>,
}

/// Postgres has been stopped on request.
pub struct Terminated<C: Compute> {
    lsn: Option<Lsn>,
    _compute: PhantomData<fn() -> C>,
}

impl<C: Compute> ConfigurationPending<C> {
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
    /// The running postgres when this is a reconfiguration.
    pub fn postgres(&self) -> Option<&C::Postgres> {
        self.postgres.as_ref()
    }
    /// Takes the running postgres out (to stop or reconfigure it); the move to
    /// [`Running`] needs a handle again.
    pub fn take_postgres(&mut self) -> Option<C::Postgres> {
        self.postgres.take()
    }
    /// The running postgres, mutably (to learn whether it died), when this is
    /// a reconfiguration.
    pub fn postgres_mut(&mut self) -> Option<&mut C::Postgres> {
        self.postgres.as_mut()
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

impl<C: Compute> Restarting<C> {
    /// The spec the compute restarts with.
    pub fn spec(&self) -> &C::Spec {
        &self.spec
    }
    /// Takes the postgres to stop (None once taken).
    pub fn take_postgres(&mut self) -> Option<C::Postgres> {
        self.postgres.take()
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
    /// Takes the postgres to stop, if one is running.
    pub fn take_postgres(&mut self) -> Option<C::Postgres> {
        self.postgres.take()
    }
}

impl<C: Compute> Failed<C> {
    /// Why the compute failed.
    pub fn error(&self) -> &C::Error {
        &self.error
    }
    /// The postgres still serving, if any.
    pub fn postgres(&self) -> Option<&C::Postgres> {
        self.postgres.as_ref()
    }
    /// The postgres still serving, mutably (to wait on it).
    pub fn postgres_mut(&mut self) -> Option<&mut C::Postgres> {
        self.postgres.as_mut()
    }
    /// Takes the postgres out (it died, or is about to be stopped).
    pub fn take_postgres(&mut self) -> Option<C::Postgres> {
        self.postgres.take()
    }
}

impl<C: Compute> Terminated<C> {
    /// The last flushed LSN of a primary stopped with a shutdown checkpoint.
    pub fn lsn(&self) -> Option<Lsn> {
        self.lsn
    }
}

/// Declares the machine: the states, the entry, every transition and the
/// exits, each exactly once. Generates the methods, [`Status`], [`AnyState`]
/// and [`EDGES`].
macro_rules! machine {
    (
        states { $( $state:ident = $snake:literal ),* $(,)? }
        start $first:ident $start_label:literal fn $start:ident() $start_body:block
        edges {
            $( $from:ident -> $to:ident $label:literal
               fn $method:ident($self_:ident $(, $arg:ident : $ty:ty)*) $body:block )*
        }
        exits {
            $( $xfrom:ident $xlabel:literal fn $xmethod:ident($xself:ident) $xbody:block )*
        }
    ) => {
        /// The name of a state, without its data: what `/status` reports.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            serde::Serialize, serde::Deserialize,
            strum::Display, strum::EnumString, strum::IntoStaticStr, strum::EnumIter,
        )]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        pub enum Status {
            $(
                #[doc = concat!("See [`", stringify!($state), "`].")]
                $state,
            )*
        }

        impl Status {
            /// Every status, in declaration order.
            pub const ALL: &'static [Status] = &[$(Status::$state),*];

            /// The Rust type name of the state, as used in the diagram.
            pub fn type_name(self) -> &'static str {
                match self {
                    $(Status::$state => stringify!($state),)*
                }
            }
        }

        // Keep the explicit snake_case names and strum's derived ones in step.
        #[cfg(test)]
        const _SNAKE_NAMES: &[(Status, &str)] = &[$((Status::$state, $snake)),*];

        /// Any state of the machine: what the driver loop holds between steps.
        pub enum AnyState<C: Compute> {
            $(
                #[doc = concat!("The compute is in [`", stringify!($state), "`].")]
                $state($state<C>),
            )*
        }

        impl<C: Compute> AnyState<C> {
            /// The status of the held state.
            pub fn status(&self) -> Status {
                match self {
                    $(AnyState::$state(_) => Status::$state,)*
                }
            }
        }

        $(
            impl<C: Compute> From<$state<C>> for AnyState<C> {
                fn from(state: $state<C>) -> Self {
                    AnyState::$state(state)
                }
            }
        )*

        impl<C: Compute> $first<C> {
            #[doc = concat!("`[*] --> ", stringify!($first), "`: ", $start_label, ".")]
            pub fn $start() -> $first<C> $start_body
        }

        $(
            impl<C: Compute> $from<C> {
                #[doc = concat!("`", stringify!($from), " --> ", stringify!($to), "`: ", $label, ".")]
                pub fn $method($self_ $(, $arg: $ty)*) -> $to<C> $body
            }
        )*

        $(
            impl<C: Compute> $xfrom<C> {
                #[doc = concat!("`", stringify!($xfrom), " --> [*]`: ", $xlabel, ".")]
                pub fn $xmethod($xself) -> Exited $xbody
            }
        )*

        /// Every transition of the machine, in declaration order.
        pub const EDGES: &[Edge] = &[
            Edge {
                from: Node::Start,
                to: Node::State(Status::$first),
                method: stringify!($start),
                label: $start_label,
            },
            $(
                Edge {
                    from: Node::State(Status::$from),
                    to: Node::State(Status::$to),
                    method: stringify!($method),
                    label: $label,
                },
            )*
            $(
                Edge {
                    from: Node::State(Status::$xfrom),
                    to: Node::End,
                    method: stringify!($xmethod),
                    label: $xlabel,
                },
            )*
        ];
    };
}

machine! {
    states {
        Empty = "empty",
        ConfigurationPending = "configuration_pending",
        Configuration = "configuration",
        Init = "init",
        Running = "running",
        Restarting = "restarting",
        Promoting = "promoting",
        TerminationPending = "termination_pending",
        Failed = "failed",
        Terminated = "terminated",
    }

    start Empty "Compute spawned" fn spawn() {
        Empty { _compute: PhantomData }
    }

    edges {
        Empty -> ConfigurationPending "Waiting for compute spec"
        fn configure(self, spec: C::Spec) {
            ConfigurationPending { spec, postgres: None }
        }

        ConfigurationPending -> Configuration "Received compute spec"
        fn begin(self) {
            Configuration { spec: self.spec, postgres: self.postgres }
        }

        Configuration -> Failed "Failed to configure the compute"
        fn fail(self, error: C::Error) {
            Failed { error, postgres: self.postgres }
        }

        Configuration -> Running "Compute has been configured"
        fn configured(self, postgres: C::Postgres) {
            Running { spec: self.spec, postgres }
        }

        Empty -> Init "Compute spec is immediately available"
        fn start(self, spec: C::Spec) {
            Init { spec }
        }

        Empty -> TerminationPending "Requested termination"
        fn terminate(self, mode: TerminationMode) {
            TerminationPending { mode, postgres: None }
        }

        Init -> Failed "Failed to start Postgres"
        fn fail(self, error: C::Error) {
            Failed { error, postgres: None }
        }

        Init -> Running "Started Postgres"
        fn started(self, postgres: C::Postgres) {
            Running { spec: self.spec, postgres }
        }

        Running -> TerminationPending "Requested termination"
        fn terminate(self, mode: TerminationMode) {
            TerminationPending { mode, postgres: Some(self.postgres) }
        }

        TerminationPending -> Terminated "Terminated compute"
        fn terminated(self, lsn: Option<Lsn>) {
            Terminated { lsn, _compute: PhantomData }
        }

        Running -> ConfigurationPending "New spec for a running compute"
        fn reconfigure(self, spec: C::Spec) {
            ConfigurationPending { spec, postgres: Some(self.postgres) }
        }

        Running -> Failed "Postgres exited on its own"
        fn postgres_exited(self, error: C::Error) {
            Failed { error, postgres: None }
        }

        Init -> TerminationPending "Signal during startup"
        fn terminate(self, mode: TerminationMode) {
            TerminationPending { mode, postgres: None }
        }

        Configuration -> TerminationPending "Signal during configuration"
        fn terminate(self, mode: TerminationMode) {
            TerminationPending { mode, postgres: self.postgres }
        }

        Running -> Restarting "Requested restart"
        fn restart(self) {
            Restarting { spec: self.spec, postgres: Some(self.postgres) }
        }

        Restarting -> Running "Postgres restarted"
        fn restarted(self, postgres: C::Postgres) {
            Running { spec: self.spec, postgres }
        }

        Restarting -> Failed "Postgres did not come back"
        fn fail(self, error: C::Error) {
            Failed { error, postgres: None }
        }

        Restarting -> TerminationPending "Signal during restart"
        fn terminate(self, mode: TerminationMode) {
            TerminationPending { mode, postgres: self.postgres }
        }

        Running -> Promoting "Requested promotion"
        fn promote(self, spec: C::Spec, wal_flush_lsn: Lsn) {
            Promoting { replica: self.spec, primary: spec, wal_flush_lsn, postgres: self.postgres }
        }

        Promoting -> Running "Promoted to primary"
        fn promoted(self) {
            Running { spec: self.primary, postgres: self.postgres }
        }

        Promoting -> Running "WAL not replayed in time: still a replica"
        fn not_promoted(self) {
            Running { spec: self.replica, postgres: self.postgres }
        }

        Promoting -> Failed "Promoted, but not reconfigured"
        fn fail(self, error: C::Error) {
            Failed { error, postgres: Some(self.postgres) }
        }

        Promoting -> TerminationPending "Signal during promotion"
        fn terminate(self, mode: TerminationMode) {
            TerminationPending { mode, postgres: Some(self.postgres) }
        }

        Failed -> ConfigurationPending "New spec after a failure"
        fn reconfigure(self, spec: C::Spec) {
            ConfigurationPending { spec, postgres: self.postgres }
        }

        Failed -> TerminationPending "Requested termination"
        fn terminate(self, mode: TerminationMode) {
            TerminationPending { mode, postgres: self.postgres }
        }
    }

    exits {
        // The driver stops a postgres still serving before it exits.
        Failed "Compute exited" fn exit(self) {
            Exited { code: 1 }
        }
        Terminated "Compute exited" fn exit(self) {
            Exited { code: 0 }
        }
    }
}

#[cfg(test)]
mod tests;
