//! The replies the driver owes: one owner for every request that is
//! answered later than it arrives (`/configure`, `/restart`, `/terminate`,
//! `/promote`), answered on every state change.
//!
//! The loop parks a reply here when it accepts a request; [`Replies::settle`]
//! runs after each transition and answers whatever the new state settles:
//! Running answers a configuration or a restart, Failed refuses it, a
//! termination that interrupted it refuses it at once (instead of leaving it
//! hanging until the process exits), Terminated answers the terminations.
//! A promotion tells its outcome (its figures, or why it did not happen)
//! and the state it leaves for settles the reply with it; one the
//! promotion told nothing (a state it did not expect) is refused.

use super::{ComputeStatus, PromoteTimings, RequestError, Restarted, Snapshot, State};
use compute_states::{AnyState, Lsn, TerminationMode};
use tokio::sync::oneshot;

/// A reply channel for requests answered with `T`.
type Reply<T> = oneshot::Sender<Result<T, RequestError>>;

/// The parked reply waiting for Running or Failed.
enum Waiting {
    /// `/configure`: a start or a reconfiguration.
    Configure(Reply<Snapshot>),
    /// `/restart`.
    Restart(Reply<Restarted>),
}

impl Waiting {
    fn what(&self) -> &'static str {
        match self {
            Waiting::Configure(_) => "configuration",
            Waiting::Restart(_) => "restart",
        }
    }

    /// Answers with the snapshot published once Running, or the refusal.
    fn answer(self, answer: Result<&Snapshot, RequestError>) {
        match self {
            Waiting::Configure(reply) => {
                let _ = reply.send(answer.cloned());
            }
            Waiting::Restart(reply) => {
                let _ = reply.send(answer.map(|snap| Restarted::Done(Box::new(snap.clone()))));
            }
        }
    }
}

/// How a promotion ended, as its reply says it.
type PromoteOutcome = Result<PromoteTimings, RequestError>;

/// The outstanding replies.
#[derive(Default)]
pub(super) struct Replies {
    /// The `/configure` or `/restart` waiting for Running or Failed.
    snapshot: Option<Waiting>,
    /// `/terminate` calls waiting for Terminated.
    terminate: Vec<Reply<Option<Lsn>>>,
    /// `/terminate` calls made while a termination was under way (answered 201).
    repeated_terminate: Vec<Reply<Option<Lsn>>>,
    /// The `/promote` waiting for the promotion's end, and its outcome
    /// once the promotion has told it (answered when the state moves on).
    promote: Option<(Reply<PromoteTimings>, Option<PromoteOutcome>)>,
}

impl Replies {
    /// Parks the reply of an accepted `/configure`.
    pub(super) fn park_configure(&mut self, reply: Reply<Snapshot>) {
        self.park_snapshot(Waiting::Configure(reply));
    }

    /// Parks the reply of an accepted `/restart`.
    pub(super) fn park_restart(&mut self, reply: Reply<Restarted>) {
        self.park_snapshot(Waiting::Restart(reply));
    }

    fn park_snapshot(&mut self, waiting: Waiting) {
        // The loop accepts one configuration at a time; an earlier one still
        // parked would be a bug, and is answered rather than dropped.
        if let Some(earlier) = self.snapshot.replace(waiting) {
            earlier.answer(Err(RequestError::ConfigurationFailed(
                "superseded by a later request".into(),
            )));
        }
    }

    /// Parks a `/terminate` that starts a termination.
    pub(super) fn park_terminate(&mut self, reply: Reply<Option<Lsn>>) {
        self.terminate.push(reply);
    }

    /// Parks a `/terminate` made while a termination is under way.
    pub(super) fn park_repeated_terminate(&mut self, reply: Reply<Option<Lsn>>) {
        self.repeated_terminate.push(reply);
    }

    /// Parks the reply of an accepted `/promote`.
    pub(super) fn park_promote(&mut self, reply: Reply<PromoteTimings>) {
        if let Some((earlier, _)) = self.promote.replace((reply, None)) {
            let _ = earlier.send(Err(RequestError::PromoteFailed(
                "superseded by a later promotion".into(),
            )));
        }
    }

    /// Records the promotion's outcome, which the parked `/promote` is
    /// answered with once the state moves on from Promoting.
    pub(super) fn promotion_ended(&mut self, outcome: PromoteOutcome) {
        if let Some((_, told)) = &mut self.promote {
            *told = Some(outcome);
        }
    }

    fn answer_promote(&mut self, otherwise: impl FnOnce() -> RequestError) {
        if let Some((reply, told)) = self.promote.take() {
            let _ = reply.send(told.unwrap_or_else(|| Err(otherwise())));
        }
    }

    /// After a transition to `state` (published as `snap`): answers what it
    /// settles.
    pub(super) fn settle(&mut self, state: &State, snap: &Snapshot) {
        if !matches!(state, AnyState::Promoting(_)) {
            self.answer_promote(|| {
                RequestError::PromoteFailed(format!(
                    "the promotion ended in {}",
                    snap.compute_status
                ))
            });
        }
        match state {
            AnyState::Running(_) => self.answer_snapshot(|_| Ok(snap)),
            AnyState::Failed(f) => {
                self.answer_snapshot(|_| Err(RequestError::ConfigurationFailed(f.error().clone())))
            }
            AnyState::FailedServing(f) => {
                self.answer_snapshot(|_| Err(RequestError::ConfigurationFailed(f.error().clone())))
            }
            AnyState::TerminationPending(t) => self.interrupted_by(t.termination().mode),
            AnyState::Terminating(t) => self.interrupted_by(t.termination().mode),
            AnyState::Terminated(t) => {
                for reply in self.terminate.drain(..) {
                    let _ = reply.send(Ok(t.lsn()));
                }
                for reply in self.repeated_terminate.drain(..) {
                    let _ = reply.send(Err(RequestError::AlreadyTerminated(t.lsn())));
                }
            }
            _ => {}
        }
    }

    /// A termination in `mode` interrupted the configuration or restart waiting.
    fn interrupted_by(&mut self, mode: TerminationMode) {
        self.answer_snapshot(|waiting| {
            Err(RequestError::ConfigurationFailed(format!(
                "a termination ({mode} shutdown) interrupted the {}; the compute is stopping",
                waiting.what()
            )))
        })
    }

    fn answer_snapshot<'a>(
        &mut self,
        answer: impl FnOnce(&Waiting) -> Result<&'a Snapshot, RequestError>,
    ) {
        if let Some(waiting) = self.snapshot.take() {
            let answer = answer(&waiting);
            waiting.answer(answer);
        }
    }

    /// The driver ends without reaching Terminated (a failed compute exits):
    /// every reply still owed is refused with `status`.
    pub(super) fn exiting(&mut self, status: ComputeStatus) {
        let refuse = || RequestError::InvalidState(status);
        self.answer_snapshot(|_| Err(refuse()));
        self.answer_promote(refuse);
        for reply in self
            .terminate
            .drain(..)
            .chain(self.repeated_terminate.drain(..))
        {
            let _ = reply.send(Err(refuse()));
        }
    }
}
