//! What the rest of compute_ctl can ask of the driver: the events and
//! requests it receives, why a request can be refused, and the [`Handle`]
//! through which the API, the signal handlers and the monitor read the
//! published snapshot and reach the loop, and how the loop's long work
//! listens to them meanwhile (`interruptible`). The loop itself is in
//! `mod.rs`.

use super::admit::{admitted, not_taken, Here};
use super::{ComputeStatus, PromoteTimings, Snapshot};
use crate::auth::{Authenticator, Gate};
use crate::connect::Connector;
use crate::spec::ValidSpec;
use chrono::{DateTime, Utc};
use compute_states::{Lsn, Status, Termination, TerminationMode};
use parking_lot::RwLock;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What the API and signal handlers can ask of the driver.
pub enum Event {
    /// A termination signal (SIGTERM, SIGINT: fast; SIGQUIT: immediate).
    Signal(TerminationMode),
    /// A request that wants an answer.
    Request(Request),
    /// The monitor found the compute idle longer than the spec's
    /// `suspend_timeout_seconds` (with `--suspend-when-idle`): terminate fast,
    /// record the LSN as `/terminate` does, and exit 0 without lingering.
    Suspend {
        /// How long it was idle, for the log.
        idle: Duration,
    },
}

/// A request with a reply channel.
pub enum Request {
    /// Apply this spec: start the compute from Empty, or reconfigure it.
    Configure {
        /// The new spec, parsed and validated on its own.
        spec: Arc<ValidSpec>,
        /// The keys that came with it, installed when the spec is accepted.
        keys: Option<Keys>,
        /// Answered once Running (Ok) or Failed (Err).
        reply: oneshot::Sender<Result<Snapshot, RequestError>>,
    },
    /// Stop postgres and end.
    Terminate {
        /// Fast or immediate.
        mode: TerminationMode,
        /// Answered once Terminated.
        reply: oneshot::Sender<Result<Option<Lsn>, RequestError>>,
    },
    /// Liveness: answered by the loop whatever the state (a refusal counts
    /// as an answer).
    Ping {
        /// Answered at once.
        reply: oneshot::Sender<Result<(), RequestError>>,
    },
    /// An operation only a Running compute takes.
    Operate(Operation),
    /// A way to talk to postgres, granted only while it serves.
    Connect {
        /// The superuser connector.
        reply: oneshot::Sender<Result<Connector, RequestError>>,
    },
    /// A way to talk to postgres for a change made only while Running.
    ConnectRunning {
        /// The superuser connector.
        reply: oneshot::Sender<Result<Connector, RequestError>>,
    },
    /// Read the spec again from where it came from and apply it if it
    /// changed (`/refresh_configuration`). Answered at once: Ok when the
    /// refresh was taken up (or will be, once the work under way is done).
    Refresh {
        /// Answered at once.
        reply: oneshot::Sender<Result<(), RequestError>>,
    },
}

/// The keys that came with a spec (`compute_ctl_config.jwks`): installed
/// into the gate when the driver accepts the spec, before its start, so a
/// spec that is refused changes no keys, whether it came over HTTP or from
/// the control plane.
pub struct Keys {
    /// The gate of the authenticated routes.
    pub gate: Arc<Gate>,
    /// The new keys.
    pub auth: Authenticator,
}

impl Keys {
    pub(super) fn install(self) {
        self.gate.install(self.auth);
    }
}

/// What only a Running compute takes.
pub enum Operation {
    /// Restart postgres in place (`POST /restart`), so pending settings go live.
    Restart {
        /// Restart only when some setting is pending a restart.
        only_if_pending: bool,
        /// Answered once Running again (Ok) or Failed (Err).
        reply: oneshot::Sender<Result<Restarted, RequestError>>,
    },
    /// Promote a replica (`POST /promote`): wait until it has replayed up to
    /// `wal_flush_lsn`, `pg_promote()`, then apply `spec` as a primary.
    Promote {
        /// The spec to run as a primary.
        spec: Arc<ValidSpec>,
        /// The old primary's last flushed WAL position.
        wal_flush_lsn: Lsn,
        /// Answered once promoted (or not).
        reply: oneshot::Sender<Result<PromoteTimings, RequestError>>,
    },
}

/// What an accepted `/restart` did.
#[derive(Debug)]
pub enum Restarted {
    /// Postgres was restarted: the snapshot published once Running again.
    Done(Box<Snapshot>),
    /// `only_if_pending`, and no setting was pending a restart: nothing
    /// done (the caller reads the snapshot as it is).
    NothingPending,
}

/// Why a request was not carried out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// Not allowed in the current state (HTTP 412).
    #[error("invalid compute status: {0}")]
    InvalidState(ComputeStatus),
    /// The spec is not usable by this postgres (HTTP 400); nothing changed.
    #[error("{0}")]
    BadSpec(String),
    /// The configuration ended in Failed (HTTP 500).
    #[error("compute configuration failed: {0}")]
    ConfigurationFailed(String),
    /// A termination asked for while another one was already under way
    /// (HTTP 201 with the same LSN).
    #[error("compute is already terminated")]
    AlreadyTerminated(Option<Lsn>),
    /// This compute cannot be promoted (a static compute, a replica on Neon
    /// storage): HTTP 412; nothing changed.
    #[error("{0}")]
    CannotPromote(String),
    /// The replica did not replay up to the requested LSN in time (HTTP
    /// 408); it is still a replica with its spec.
    #[error("{0}")]
    PromoteTimeout(String),
    /// The promotion failed (HTTP 500): before `pg_promote()` nothing
    /// changed; after it the compute is Failed with postgres serving.
    #[error("{0}")]
    PromoteFailed(String),
    /// A refresh was asked for, but the compute has nowhere to read its
    /// spec again from (HTTP 409).
    #[error("no spec source to refresh from: compute_ctl was started without -p, -S or -c")]
    NoSpecSource,
    /// The driver has ended.
    #[error("compute_ctl is shutting down")]
    ShuttingDown,
}

/// The driver's end of the event channel, with the events it set aside.
///
/// While the driver awaits something it must finish before it reads its
/// next event (a spec's dry run before it is accepted), it still answers
/// liveness pings ([`Inbox::answering_pings`]): a slow plan must not fail
/// `/healthz` and get the container killed. Every other event read then is
/// set aside, and [`Inbox::recv`] gives those back first, in their order,
/// so they are taken up as if they had waited in the channel.
pub(super) struct Inbox {
    rx: mpsc::Receiver<Event>,
    deferred: std::collections::VecDeque<Event>,
}

impl Inbox {
    pub(super) fn new(rx: mpsc::Receiver<Event>) -> Self {
        Inbox {
            rx,
            deferred: Default::default(),
        }
    }

    /// The next event: one set aside first. Cancel-safe, as the channel's.
    pub(super) async fn recv(&mut self) -> Option<Event> {
        match self.deferred.pop_front() {
            Some(event) => Some(event),
            None => self.rx.recv().await,
        }
    }

    /// The next event if there is one now.
    pub(super) fn try_recv(&mut self) -> Option<Event> {
        self.deferred
            .pop_front()
            .or_else(|| self.rx.try_recv().ok())
    }

    /// Awaits `work`, answering the pings that come meanwhile (every state
    /// admits them) and setting every other event aside for [`Inbox::recv`].
    pub(super) async fn answering_pings<T>(
        &mut self,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                ev = self.rx.recv() => match ev {
                    Some(Event::Request(Request::Ping { reply })) => {
                        let _ = reply.send(Ok(()));
                    }
                    Some(event) => self.deferred.push_back(event),
                    // Every sender is gone: the loop sees it after the work.
                    None => return work.await,
                },
            }
        }
    }
}

/// The published snapshot and the way to the driver, for everyone else.
#[derive(Clone)]
pub struct Handle {
    pub(super) snapshot: Arc<RwLock<Snapshot>>,
    pub(super) events: mpsc::Sender<Event>,
}

impl Handle {
    /// A copy of the current snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.read().clone()
    }
    /// The current status.
    pub fn status(&self) -> Status {
        self.snapshot.read().status
    }
    /// The current status as the API names it.
    pub fn compute_status(&self) -> ComputeStatus {
        self.snapshot.read().compute_status
    }
    /// Sends an event to the driver; false when the driver has ended.
    pub async fn send(&self, event: Event) -> bool {
        self.events.send(event).await.is_ok()
    }
    /// Sends a request built around a fresh reply channel, and awaits the answer.
    pub async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, RequestError>>) -> Request,
    ) -> Result<T, RequestError> {
        let (tx, rx) = oneshot::channel();
        if !self.send(Event::Request(make(tx))).await {
            return Err(RequestError::ShuttingDown);
        }
        rx.await.unwrap_or(Err(RequestError::ShuttingDown))
    }
    /// Records user activity seen by the monitor (the monitor owns `last_active`).
    /// An earlier time than the one recorded is ignored.
    pub fn set_last_active(&self, at: DateTime<Utc>) {
        let mut snap = self.snapshot.write();
        if snap.last_active.is_none_or(|last| at > last) {
            snap.last_active = Some(at);
        }
    }
    /// Records the replication status the monitor read (the monitor owns
    /// `replication`; None when it is not Running).
    pub fn set_replication(&self, replication: Option<crate::replication::Replication>) {
        self.snapshot.write().replication = replication;
    }
    /// Adds time during which postgres was found down (the monitor owns `pg_downtime`).
    pub fn add_pg_downtime(&self, d: Duration) {
        let mut snap = self.snapshot.write();
        snap.pg_downtime += d;
        snap.pg_current_downtime += d;
        tracing::warn!(
            downtime_info = true,
            current_ms = snap.pg_current_downtime.as_millis() as u64,
            total_ms = snap.pg_downtime.as_millis() as u64,
            "postgres does not answer"
        );
    }
    /// Postgres answered the monitor: the current outage, if any, is over.
    pub fn pg_answered(&self) {
        let mut snap = self.snapshot.write();
        if !snap.pg_current_downtime.is_zero() {
            tracing::info!(
                downtime_info = true,
                outage_ms = snap.pg_current_downtime.as_millis() as u64,
                total_ms = snap.pg_downtime.as_millis() as u64,
                "postgres answers again"
            );
            snap.pg_current_downtime = Duration::ZERO;
        }
    }
}

/// Runs `work` while listening for termination; requests are admitted as
/// at `here` (a state at work takes none but a ping, and a refresh, which
/// is answered at once and noted in `refresh` for when the work is done). Returns the termination if one came first (dropping `work`, which
/// cleans up after itself).
pub(super) async fn interruptible<T>(
    events: &mut Inbox,
    refresh: &mut super::refresh::RefreshAsk,
    here: Here,
    work: impl std::future::Future<Output = T>,
) -> Result<T, Termination> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return Ok(out),
            ev = events.recv() => match ev {
                // Nobody can reach us any more: stop.
                None => return Err(Termination::signal(TerminationMode::Fast)),
                Some(Event::Signal(mode)) => return Err(Termination::signal(mode)),
                // Only a Running compute suspends; the monitor asks again.
                Some(Event::Suspend { .. }) => {}
                Some(Event::Request(r)) => match admitted(here, r) {
                    Some(Request::Refresh { reply }) => {
                        let deferred = refresh.defer();
                        if deferred.is_ok() {
                            tracing::info!(
                                status = %here.status(),
                                "refresh asked for: taken up once the work under way is done"
                            );
                        }
                        let _ = reply.send(deferred);
                    }
                    Some(r) => not_taken(here, r),
                    None => {}
                },
            },
        }
    }
}
