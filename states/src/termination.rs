//! What a termination carries through the machine: how postgres is stopped
//! ([`TerminationMode`]) and who asked ([`Origin`]), together a
//! [`Termination`]. The origin decides what the end does once postgres has
//! stopped (linger for the API's caller, exit 0 or 1), so it travels in the
//! states from the request to [`Terminated`](crate::Terminated) rather than
//! beside them.

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

/// Who asked for a termination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::Display, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Origin {
    /// A signal (SIGTERM, SIGINT, SIGQUIT), or nobody left to ask anything.
    Signal,
    /// `POST /terminate`: its caller reads the answer, so the API lingers.
    Api,
    /// The compute was idle past its suspend timeout (scale to zero).
    Idle,
    /// The spec source says the compute is attached to no storage any more
    /// (a refresh of the configuration found no spec): the data is not
    /// ours to flush, and the process exits 1.
    Detached,
}

/// A termination as the states carry it: how, and who asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Termination {
    /// How postgres is stopped.
    pub mode: TerminationMode,
    /// Who asked.
    pub origin: Origin,
}

impl Termination {
    /// A termination asked for by a signal.
    pub fn signal(mode: TerminationMode) -> Self {
        Termination {
            mode,
            origin: Origin::Signal,
        }
    }

    /// A termination asked for over the API (`/terminate`).
    pub fn api(mode: TerminationMode) -> Self {
        Termination {
            mode,
            origin: Origin::Api,
        }
    }

    /// The fast termination of an idle compute.
    pub fn idle() -> Self {
        Termination {
            mode: TerminationMode::Fast,
            origin: Origin::Idle,
        }
    }

    /// The termination of a compute attached to no storage any more:
    /// immediate (no shutdown checkpoint to storage that is not ours).
    pub fn detached() -> Self {
        Termination {
            mode: TerminationMode::Immediate,
            origin: Origin::Detached,
        }
    }

    /// The same termination made immediate (a second request or signal).
    pub fn immediate(self) -> Self {
        Termination {
            mode: TerminationMode::Immediate,
            ..self
        }
    }

    /// The process exit code once terminated: 0, but 1 for a compute that
    /// was detached from its storage (the platform reads it as a failure).
    pub fn exit_code(self) -> u8 {
        match self.origin {
            Origin::Detached => 1,
            Origin::Signal | Origin::Api | Origin::Idle => 0,
        }
    }
}
