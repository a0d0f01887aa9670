//! Which request a state takes: one function, [`admit`], decides for every
//! state and every request, and the driver asks it wherever it receives a
//! request (the states that wait for requests, the work it listens beside,
//! the stop, the linger). The route table's `states` column is rendered from
//! it ([`accepted_in`]), so what the README says a route does where is what
//! the driver does.
//!
//! What accepting means is the state's business: an accepted `/configure`
//! is still checked before it is taken (a 400 changes nothing), an accepted
//! `/terminate` during a termination is answered 201 once it ends.

use super::{ComputeStatus, Operation, Request, RequestError};
use crate::spec::ValidSpec;
use compute_states::{Kind, Status, Termination, TerminationMode};
use std::convert::Infallible;
use std::sync::Arc;

/// A request without its data: what [`admit`] decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Asked {
    /// `/configure`, the control plane's spec.
    Configure,
    /// `/refresh_configuration`.
    Refresh,
    /// `/terminate`.
    Terminate,
    /// `/restart`.
    Restart,
    /// `/promote`.
    Promote,
    /// A connection to the serving postgres (`/dbs_and_roles`, `/grants`, ...).
    Connect,
    /// A connection for a change made only while Running
    /// (`/check_writability`, `/extensions`).
    ConnectRunning,
    /// Liveness (`/healthz`).
    Ping,
}

/// Where the driver is when a request arrives: the state's type, and the
/// mode of a termination under way (the status the API names depends on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Here {
    kind: Kind,
    mode: Option<TerminationMode>,
}

impl Here {
    /// In a state of type `kind` (with a termination's `mode`, if any).
    pub fn new(kind: Kind, mode: Option<TerminationMode>) -> Here {
        Here { kind, mode }
    }

    /// The type of the state.
    pub fn kind(self) -> Kind {
        self.kind
    }

    /// The status a refusal names.
    pub fn status(self) -> ComputeStatus {
        ComputeStatus::of(self.kind.status(), self.mode)
    }
}

/// What [`admit`] decides.
#[derive(Debug)]
pub enum Admission {
    /// The state takes the request up.
    Accept,
    /// Refused: HTTP 412 naming the status.
    Refuse(RequestError),
}

/// Whether the state at `here` takes `asked`.
///
/// - The states that wait for requests take a spec and a termination:
///   Empty, Running, and Failed with or without postgres.
/// - A connection is given while postgres serves (Running, and Failed with
///   the previous configuration serving); one for a change only while Running.
/// - A restart and a promotion: Running only.
/// - A termination under way or done takes another `/terminate` (answered
///   201 with the LSN once terminated); a start, a reconfiguration, a
///   restart or a promotion under way refuses it (a signal stops them).
/// - A refresh of the configuration wherever postgres serves or is being
///   brought up: taken up at once where postgres serves and nothing is
///   under way (Running, Failed with postgres serving), folded into the one
///   under way (a refresh), else noted for when the work under way is done.
///   Not without postgres (Empty, Failed: a new spec starts afresh) nor
///   once terminating.
/// - A ping, anywhere.
pub fn admit(here: Here, asked: Asked) -> Admission {
    use Kind::*;
    let k = here.kind;
    let accepted = match asked {
        Asked::Ping => true,
        Asked::Configure => matches!(k, Empty | Running | Failed | FailedServing),
        Asked::Terminate => matches!(
            k,
            Empty
                | Running
                | Failed
                | FailedServing
                | TerminationPending
                | Terminating
                | Stopping
                | Terminated
        ),
        Asked::Refresh => !matches!(
            k,
            Empty | Failed | TerminationPending | Terminating | Stopping | Terminated
        ),
        Asked::Connect => matches!(k, Running | FailedServing),
        Asked::ConnectRunning | Asked::Restart | Asked::Promote => k == Running,
    };
    if accepted {
        Admission::Accept
    } else {
        Admission::Refuse(RequestError::InvalidState(here.status()))
    }
}

/// The state types that take `asked`, in declaration order.
pub fn accepted_in(asked: Asked) -> Vec<Kind> {
    Kind::ALL
        .iter()
        .copied()
        .filter(|k| matches!(admit(Here::new(*k, None), asked), Admission::Accept))
        .collect()
}

/// The statuses in which `asked` is taken, as the route table says them:
/// `any`, or the statuses in declaration order, one that only some of its
/// types take naming them (`failed (FailedServing)`: only with postgres
/// serving).
pub fn described(asked: Asked) -> String {
    let taking = accepted_in(asked);
    if taking.len() == Kind::ALL.len() {
        return "any".into();
    }
    let mut out = Vec::new();
    for status in Status::ALL {
        let kinds: Vec<Kind> = Kind::ALL
            .iter()
            .copied()
            .filter(|k| k.status() == *status)
            .collect();
        let taken: Vec<&str> = kinds
            .iter()
            .filter(|k| taking.contains(k))
            .map(|k| k.type_name())
            .collect();
        if taken.len() == kinds.len() {
            out.push(status.to_string());
        } else if !taken.is_empty() {
            out.push(format!("{status} ({})", taken.join(", ")));
        }
    }
    out.join(", ")
}

impl Request {
    /// What the request asks, without its data.
    pub fn asked(&self) -> Asked {
        match self {
            Request::Configure { .. } => Asked::Configure,
            Request::Terminate { .. } => Asked::Terminate,
            Request::Refresh { .. } => Asked::Refresh,
            Request::Operate(Operation::Restart { .. }) => Asked::Restart,
            Request::Operate(Operation::Promote { .. }) => Asked::Promote,
            Request::Connect { .. } => Asked::Connect,
            Request::ConnectRunning { .. } => Asked::ConnectRunning,
            Request::Ping { .. } => Asked::Ping,
        }
    }

    /// Answers the request with `err`.
    pub(super) fn refuse(self, err: RequestError) {
        match self {
            Request::Configure { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Request::Operate(Operation::Restart { reply, .. }) => {
                let _ = reply.send(Err(err));
            }
            Request::Terminate { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Request::Connect { reply } | Request::ConnectRunning { reply } => {
                let _ = reply.send(Err(err));
            }
            Request::Ping { reply } | Request::Refresh { reply } => {
                let _ = reply.send(Err(err));
            }
            Request::Operate(Operation::Promote { reply, .. }) => {
                let _ = reply.send(Err(err));
            }
        }
    }
}

/// Admits `request` at `here`: a refused one is answered, and so is what is
/// answered the same in every state (a ping); the rest is returned for the
/// state to take up.
pub(super) fn admitted(here: Here, request: Request) -> Option<Request> {
    if let Admission::Refuse(err) = admit(here, request.asked()) {
        request.refuse(err);
        return None;
    }
    match request {
        Request::Ping { reply } => {
            let _ = reply.send(Ok(()));
            None
        }
        other => Some(other),
    }
}

/// A request `admit` accepted that the state has no way to take up: a
/// disagreement between [`admit`] and the driver, which the admission tests
/// rule out. Refused with the state's status, and logged.
pub(super) fn not_taken(here: Here, request: Request) {
    let asked = request.asked();
    tracing::error!(?asked, status = %here.status(), "admitted, but not taken up here");
    request.refuse(RequestError::InvalidState(here.status()));
}

/// What an event asks of a state that waits for requests, once admitted.
pub(super) enum Next<O: Operations> {
    /// Stop postgres and end.
    Terminate(Termination),
    /// Read the spec again (answered already): only where postgres serves.
    Refresh(O::Serving),
    /// Apply this (accepted) spec.
    Configure(Arc<ValidSpec>),
    /// What only this state takes up.
    Operate(O),
    /// Nothing to do (the event was already answered).
    Nothing,
}

/// The operations a waiting state takes up itself (Running's, or none),
/// and whether postgres serves there, so that a refresh can be taken up:
/// [`Operations::serving`] is the proof, which a state without postgres
/// cannot give (its `Serving` is uninhabited).
pub(super) trait Operations: Sized {
    /// What a state where postgres serves has; uninhabited where it does not.
    type Serving;
    /// The operation, if this state takes it.
    fn take(op: Operation) -> Result<Self, Operation>;
    /// The proof that postgres serves here, if it does.
    fn serving() -> Option<Self::Serving>;
}

/// Running takes every operation, and postgres serves.
impl Operations for Operation {
    type Serving = ();
    fn take(op: Operation) -> Result<Self, Operation> {
        Ok(op)
    }
    fn serving() -> Option<()> {
        Some(())
    }
}

/// A failed compute whose postgres still serves takes no operation, but a
/// refresh.
pub(super) enum ServingOnly {}

impl Operations for ServingOnly {
    type Serving = ();
    fn take(op: Operation) -> Result<Self, Operation> {
        Err(op)
    }
    fn serving() -> Option<()> {
        Some(())
    }
}

/// The states without postgres (Empty, Failed) take none, nor a refresh.
impl Operations for Infallible {
    type Serving = Infallible;
    fn take(op: Operation) -> Result<Self, Operation> {
        Err(op)
    }
    fn serving() -> Option<Infallible> {
        None
    }
}

#[cfg(test)]
mod tests;
