//! The admission table, as data: which state type takes which request.

use super::*;
use compute_states::Kind::*;

/// Every request, and the state types that take it.
fn expected() -> Vec<(Asked, Vec<Kind>)> {
    let waiting = vec![Empty, Running, Failed, FailedServing];
    let mut terminate = waiting.clone();
    terminate.extend([TerminationPending, Terminating, Stopping, Terminated]);
    vec![
        (Asked::Configure, waiting),
        (Asked::Terminate, terminate),
        (
            Asked::Refresh,
            vec![
                ConfigurationPending,
                ReconfigurationPending,
                Configuration,
                Reconfiguration,
                Init,
                Running,
                RestartPending,
                Promoting,
                RefreshPending,
                Refreshing,
                FailedServing,
                Restarting,
                Promoted,
            ],
        ),
        (Asked::Restart, vec![Running]),
        (Asked::Promote, vec![Running]),
        (Asked::Connect, vec![Running, FailedServing]),
        (Asked::ConnectRunning, vec![Running]),
        (Asked::Ping, Kind::ALL.to_vec()),
    ]
}

#[test]
fn each_state_takes_what_the_table_says() {
    for (asked, kinds) in expected() {
        let mut kinds = kinds;
        kinds.sort_by_key(|k| Kind::ALL.iter().position(|x| x == k));
        assert_eq!(accepted_in(asked), kinds, "{asked:?}");
    }
}

#[test]
fn a_refusal_names_the_status_as_the_api_does() {
    let here = Here::new(Stopping, Some(TerminationMode::Immediate));
    match admit(here, Asked::Restart) {
        Admission::Refuse(RequestError::InvalidState(status)) => {
            assert_eq!(status, ComputeStatus::TerminationPendingImmediate)
        }
        other => panic!("{other:?}"),
    }
    // A restart in place and a promotion are `configuration` to the API.
    match admit(Here::new(Restarting, None), Asked::Configure) {
        Admission::Refuse(RequestError::InvalidState(status)) => {
            assert_eq!(status, ComputeStatus::Configuration)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_route_table_says_the_statuses() {
    assert_eq!(described(Asked::Configure), "empty, running, failed");
    assert_eq!(described(Asked::Restart), "running");
    assert_eq!(described(Asked::Connect), "running, failed (FailedServing)");
    assert_eq!(
        described(Asked::Terminate),
        "empty, running, termination_pending, failed, terminated"
    );
    assert_eq!(described(Asked::Ping), "any");
    assert_eq!(
        described(Asked::Refresh),
        "configuration_pending, configuration, init, running, restarting, promoting, \
         refresh_configuration_pending, refresh_configuration, failed (FailedServing)"
    );
}

/// Only Running takes an operation: the one state whose `triage` takes
/// them up (the others' is `Infallible`).
#[test]
fn only_running_takes_an_operation() {
    for asked in [Asked::Restart, Asked::Promote] {
        assert_eq!(accepted_in(asked), vec![Running]);
    }
}
