//! The status as the API names it: the reference's `ComputeStatus`.
//!
//! The typed machine has one `termination_pending` status (its states
//! `TerminationPending` and `Terminating` carry the mode); Neon's control
//! plane knows two names for it (`termination_pending_fast`,
//! `termination_pending_immediate`) and fails to parse anything else. This
//! is the one place where a typed [`Status`] becomes the wire name, used by
//! `/status`, the 412 messages and the `compute_ctl_up` metric.

use compute_states::{Status, TerminationMode};
use serde::Serialize;

/// The reference's `ComputeStatus`, spelled as in its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::Display, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ComputeStatus {
    /// No spec yet.
    Empty,
    /// A spec arrived over the API.
    ConfigurationPending,
    /// Applying a spec.
    Configuration,
    /// Starting from the spec given at launch.
    Init,
    /// Serving.
    Running,
    /// Stopping postgres with a fast shutdown.
    TerminationPendingFast,
    /// Stopping postgres with an immediate shutdown.
    TerminationPendingImmediate,
    /// Failed to start or to configure, or postgres died.
    Failed,
    /// Postgres stopped; the process exits (or lingers before it does).
    Terminated,
    /// A refresh of the configuration was asked for; postgres serves.
    RefreshConfigurationPending,
    /// Reading the spec again and applying it; postgres serves.
    RefreshConfiguration,
}

impl ComputeStatus {
    /// The wire name of a typed status; `mode` is the termination's, used
    /// only for `TerminationPending` (fast when unknown).
    pub fn of(status: Status, mode: Option<TerminationMode>) -> Self {
        match status {
            Status::Empty => Self::Empty,
            Status::ConfigurationPending => Self::ConfigurationPending,
            Status::Configuration => Self::Configuration,
            Status::Init => Self::Init,
            Status::Running => Self::Running,
            // The reference's control plane parses no other name: a restart
            // in place is, to it, a configuration (not serving, not failed).
            Status::Restarting => Self::Configuration,
            // Likewise a promotion: the compute takes no new spec until it
            // is a primary with its new spec (or still the replica it was).
            Status::Promoting => Self::Configuration,
            Status::TerminationPending => match mode.unwrap_or_default() {
                TerminationMode::Fast => Self::TerminationPendingFast,
                TerminationMode::Immediate => Self::TerminationPendingImmediate,
            },
            Status::RefreshConfigurationPending => Self::RefreshConfigurationPending,
            Status::RefreshConfiguration => Self::RefreshConfiguration,
            Status::Failed => Self::Failed,
            Status::Terminated => Self::Terminated,
        }
    }

    /// Every wire name a typed status can have.
    pub const ALL: &'static [ComputeStatus] = &[
        Self::Empty,
        Self::ConfigurationPending,
        Self::Configuration,
        Self::Init,
        Self::Running,
        Self::TerminationPendingFast,
        Self::TerminationPendingImmediate,
        Self::Failed,
        Self::Terminated,
        Self::RefreshConfigurationPending,
        Self::RefreshConfiguration,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn termination_pending_names_its_mode() {
        let name = |s, m| serde_json::to_value(ComputeStatus::of(s, m)).unwrap();
        assert_eq!(
            name(Status::TerminationPending, Some(TerminationMode::Fast)),
            "termination_pending_fast"
        );
        assert_eq!(
            name(Status::TerminationPending, Some(TerminationMode::Immediate)),
            "termination_pending_immediate"
        );
        assert_eq!(
            name(Status::ConfigurationPending, None),
            "configuration_pending"
        );
        // Display (412 messages, metric labels) and JSON agree.
        for s in ComputeStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.to_string());
        }
        // Every typed status maps to a listed name.
        for s in Status::ALL {
            for m in [TerminationMode::Fast, TerminationMode::Immediate] {
                assert!(ComputeStatus::ALL.contains(&ComputeStatus::of(*s, Some(m))));
            }
        }
    }
}
