//! The driver: the one owner of the typed state machine.
//!
//! It holds an [`AnyState`], does the work each state calls for (start
//! postgres, reconfigure it, wait on it, stop it), advances the machine, and
//! publishes a [`Snapshot`] after every transition. Everyone else (signal
//! handlers, the HTTP API, the activity monitor) reads snapshots and sends
//! [`Event`]s; the driver decides what a request means in the current state.

mod accept;
mod admit;
mod bulk;
mod env;
mod operate;
mod promote;
mod refresh;
mod replies;
mod request;
mod snapshot;
mod start;
mod status;
pub(crate) mod template;
mod terminate;

use admit::Here;
pub use admit::{described, Asked};
use env::Env;
pub use env::Params;
pub use promote::PromoteTimings;
pub use refresh::RefreshSource;
pub use request::{Event, Handle, Keys, Operation, Request, RequestError, Restarted};
use snapshot::Facts;
pub use snapshot::{Snapshot, Timings};
pub use status::ComputeStatus;

use admit::{admitted, not_taken, Next, Operations, ServingOnly};
use replies::Replies;
use request::interruptible;

use start::{reconfigure, start_compute};

use crate::postgres::Postgres;
use crate::spec::ValidSpec;
use crate::storage;
use anyhow::Result;
use chrono::Utc;
use compute_states::{
    AnyState, Compute, Configuration, Empty, Exited, Failed, FailedServing, Init, Kind,
    Reconfiguration, Running, Status, Termination, TerminationMode,
};
use parking_lot::RwLock;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, OnceCell};

/// The driver's types, plugged into the machine.
pub struct Ctx;

impl Compute for Ctx {
    type Spec = Arc<ValidSpec>;
    type Postgres = Postgres;
    type Error = String;
    type Stopped = crate::postgres::Stopped;
    type ExitStatus = Result<std::process::ExitStatus>;

    fn exited(postgres: &Postgres, status: Self::ExitStatus) -> String {
        exit_reason(&status, Some(postgres))
    }
}

/// The machine as the driver holds it.
pub type State = AnyState<Ctx>;

/// The driver loop.
pub struct Driver {
    env: Arc<Env>,
    /// What everyone else reads: written by [`Driver::publish`] only.
    snapshot: Arc<RwLock<Snapshot>>,
    /// What the driver knows besides its state, published with it.
    facts: Facts,
    events: request::Inbox,
    started_at: Instant,
    /// The replies owed to requests answered later than they arrive.
    replies: Replies,
    /// A static compute's LSN lease, renewed while the driver lives (see
    /// `storage::lease`), and what it is held on.
    lsn_lease: Option<(
        storage::lease::LeaseTarget,
        tokio_util::task::AbortOnDropHandle<()>,
    )>,
}

impl Driver {
    /// A driver in Empty, and the handle to talk to it.
    pub fn new(params: Params) -> (Driver, Handle) {
        let (tx, rx) = mpsc::channel(64);
        let snapshot = Arc::new(RwLock::new(Snapshot {
            start_time: Utc::now(),
            tenant: None,
            timeline: None,
            compute_status: ComputeStatus::Empty,
            status: Status::Empty,
            last_active: None,
            error: None,
            pending_restart: Vec::new(),
            timings: Timings::default(),
            lsn: None,
            transitions: Vec::new(),
            pg_downtime: Duration::ZERO,
            pg_current_downtime: Duration::ZERO,
            replication: None,
            spec: None,
            edge: params.edge.clone(),
        }));
        let facts = Facts {
            refresh: if params.refresh.is_some() {
                refresh::RefreshAsk::Idle
            } else {
                refresh::RefreshAsk::Impossible
            },
            ..Facts::default()
        };
        let driver = Driver {
            env: Arc::new(Env {
                params,
                known_settings: OnceCell::new(),
                subscribers_released: Default::default(),
                reload_session: Default::default(),
            }),
            snapshot: snapshot.clone(),
            facts,
            events: request::Inbox::new(rx),
            started_at: Instant::now(),
            replies: Replies::default(),
            lsn_lease: None,
        };
        (
            driver,
            Handle {
                snapshot,
                events: tx,
            },
        )
    }

    /// Runs the machine to its end. `spec` is the spec available at launch, if any.
    pub async fn run(mut self, spec: Option<Arc<ValidSpec>>) -> Exited {
        let empty = Empty::spawn();
        let mut state: State = match spec {
            Some(spec) => {
                self.spec_arrived(&spec);
                empty.start(spec).into()
            }
            None => empty.into(),
        };
        self.count_transition(None, state.status());
        loop {
            self.publish(&state);
            let from = state.status();
            state = match state {
                AnyState::Empty(s) => self.on_empty(s).await,
                AnyState::Init(s) => self.on_init(s).await,
                AnyState::ConfigurationPending(s) => s.begin().into(),
                AnyState::ReconfigurationPending(s) => s.begin().into(),
                AnyState::Configuration(s) => self.on_configuration(s).await,
                AnyState::Reconfiguration(s) => self.on_reconfiguration(s).await,
                AnyState::Running(s) => self.on_running(s).await,
                AnyState::RestartPending(s) => self.on_restarting(s).await,
                AnyState::Promoting(s) => self.on_promoting(s).await,
                AnyState::RefreshPending(s) => s.begin().into(),
                AnyState::Refreshing(s) => self.on_refreshing(s).await,
                AnyState::TerminationPending(s) => {
                    let (postgres, s) = s.begin();
                    self.stop_and_terminate(s, postgres).await
                }
                AnyState::Terminating(s) => self.nothing_to_stop(s).await,
                AnyState::Failed(s) => match self.on_failed(s).await {
                    Ok(next) => next,
                    Err(exited) => return exited,
                },
                AnyState::FailedServing(s) => self.on_failed_serving(s).await,
                AnyState::Terminated(s) => return self.on_terminated(s).await,
            };
            let to = state.status();
            tracing::info!(from = %from, to = %to, "compute state changed");
            self.count_transition(Some(from), to);
        }
    }

    fn spec_arrived(&mut self, spec: &ValidSpec) {
        // As the reference: the lease is held from the moment the spec is
        // known, beside the start, and follows the spec's pageservers.
        let target = storage::lease::LeaseTarget::of(spec);
        if self.lsn_lease.as_ref().map(|(t, _)| t) != target.as_ref() {
            self.lsn_lease = target.map(|t| {
                let task = tokio::spawn(storage::lease::keep(t.clone()));
                (t, tokio_util::task::AbortOnDropHandle::new(task))
            });
        }
        let facts = &mut self.facts;
        if !facts.spec_seen {
            facts.spec_seen = true;
            facts.timings.wait_for_spec_ms = self.started_at.elapsed().as_millis() as u64;
        }
        facts.tenant = spec.tenant_id.clone();
        facts.timeline = spec.timeline_id.clone();
    }

    fn count_transition(&mut self, from: Option<Status>, to: Status) {
        let Some(from) = from else { return };
        let transitions = &mut self.facts.transitions;
        match transitions.iter_mut().find(|(k, _)| *k == (from, to)) {
            Some((_, n)) => *n += 1,
            None => transitions.push(((from, to), 1)),
        }
    }

    /// Publishes the new state with the driver's facts, and answers the
    /// replies it settles: the one writer of the snapshot (but for the
    /// monitor's fields), after each step.
    fn publish(&mut self, state: &State) {
        let facts = &mut self.facts;
        // The spec in effect, where the state has one (elsewhere the last
        // one stays published: what `/dbs_and_roles` lists).
        let spec = match state {
            AnyState::Failed(f) => {
                facts.error = Some(f.error().clone());
                None
            }
            AnyState::FailedServing(f) => {
                facts.error = Some(f.error().clone());
                Some(f.spec())
            }
            AnyState::Running(r) => {
                facts.error = None;
                Some(r.spec())
            }
            AnyState::RefreshPending(r) => {
                facts.error = r.error().cloned();
                Some(r.spec())
            }
            AnyState::Refreshing(r) => {
                facts.error = r.error().cloned();
                Some(r.spec())
            }
            _ => None,
        };
        let mode = match state {
            AnyState::TerminationPending(t) => Some(t.termination().mode),
            AnyState::Terminating(t) => Some(t.termination().mode),
            _ => None,
        };
        let mut snap = self.snapshot.write();
        snap.status = state.status();
        snap.compute_status = ComputeStatus::of(snap.status, mode);
        snap.tenant = facts.tenant.clone();
        snap.timeline = facts.timeline.clone();
        snap.error = facts.error.clone();
        snap.pending_restart = facts.pending_restart.clone();
        snap.timings = facts.timings.clone();
        snap.transitions = facts.transitions.clone();
        if let Some(spec) = spec {
            snap.spec = Some(spec.clone());
        }
        match state {
            AnyState::Running(_) if snap.last_active.is_none() => {
                // Scale-to-zero counts idleness from the moment we serve.
                snap.last_active = Some(Utc::now());
            }
            AnyState::Terminated(t) => snap.lsn = t.lsn(),
            _ => {}
        }
        self.replies.settle(state, &snap);
    }

    fn timings(&self) -> Timings {
        self.facts.timings.clone()
    }

    /// What an event asks of a state that waits for requests (Empty,
    /// Running, Failed with or without postgres), at `here`: requests are
    /// admitted by [`admit`]; a connection and a refresh are answered at
    /// once, a spec is checked and its reply parked, and so is a
    /// termination's. What only the state can take up is returned (`O`:
    /// Running's operations; none elsewhere; a refresh where postgres serves).
    async fn triage<O: Operations>(
        &mut self,
        here: Here,
        event: Option<Event>,
        running: Option<&ValidSpec>,
    ) -> Next<O> {
        let request = match event {
            // Every sender is gone: nobody can reach us any more; stop.
            None => return Next::Terminate(Termination::signal(TerminationMode::Fast)),
            Some(Event::Signal(mode)) => return Next::Terminate(Termination::signal(mode)),
            Some(Event::Suspend { idle }) => {
                tracing::info!(
                    idle_s = idle.as_secs(),
                    "idle longer than suspend_timeout_seconds: suspending (fast termination)"
                );
                return Next::Terminate(Termination::idle());
            }
            Some(Event::Request(request)) => request,
        };
        let Some(request) = admitted(here, request) else {
            return Next::Nothing;
        };
        match request {
            Request::Terminate { mode, reply } => {
                self.replies.park_terminate(reply);
                Next::Terminate(Termination::api(mode))
            }
            Request::Configure { spec, keys, reply } => {
                // In Running, the spec it runs is the one its catalog was last
                // reconciled to (in FailedServing, the one that failed).
                let applied = here.kind() == Kind::Running;
                match self.accept_spec(&spec, running, applied, reply).await {
                    Some(reply) => {
                        if let Some(keys) = keys {
                            keys.install();
                        }
                        self.spec_arrived(&spec);
                        self.replies.park_configure(reply);
                        Next::Configure(spec)
                    }
                    None => Next::Nothing,
                }
            }
            Request::Refresh { reply } => match O::serving() {
                Some(serving) => match self.facts.refresh.check() {
                    Ok(()) => {
                        let _ = reply.send(Ok(()));
                        Next::Refresh(serving)
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        Next::Nothing
                    }
                },
                None => {
                    not_taken(here, Request::Refresh { reply });
                    Next::Nothing
                }
            },
            Request::Connect { reply } | Request::ConnectRunning { reply } => {
                let _ = reply.send(Ok(self.env.connector()));
                Next::Nothing
            }
            Request::Operate(op) => match O::take(op) {
                Ok(op) => Next::Operate(op),
                Err(op) => {
                    not_taken(here, Request::Operate(op));
                    Next::Nothing
                }
            },
            other @ Request::Ping { .. } => {
                not_taken(here, other);
                Next::Nothing
            }
        }
    }

    async fn on_empty(&mut self, s: Empty<Ctx>) -> State {
        let here = Here::new(Kind::Empty, None);
        loop {
            let event = self.events.recv().await;
            match self.triage::<Infallible>(here, event, None).await {
                Next::Terminate(termination) => return s.terminate(termination).into(),
                Next::Configure(spec) => return s.configure(spec).into(),
                Next::Operate(never) | Next::Refresh(never) => match never {},
                Next::Nothing => {}
            }
        }
    }

    /// A start from the spec given at launch, which is checked for this
    /// postgres first, as a spec received over the API is when it is accepted.
    async fn on_init(&mut self, s: Init<Ctx>) -> State {
        let (env, spec, timings) = (self.env.clone(), s.spec().clone(), self.timings());
        let work = async move {
            env.check_spec(&spec).await?;
            start_compute(env, spec, timings).await
        };
        let here = Here::new(Kind::Init, None);
        match interruptible(&mut self.events, &mut self.facts.refresh, here, work).await {
            Ok(Ok((pg, timings))) => {
                self.facts.timings = timings;
                s.started(pg).into()
            }
            Ok(Err(e)) => s.fail(format!("{e:#}")).into(),
            Err(termination) => s.terminate(termination).into(),
        }
    }

    /// A full start from a spec received over the API.
    async fn on_configuration(&mut self, s: Configuration<Ctx>) -> State {
        let work = start_compute(self.env.clone(), s.spec().clone(), self.timings());
        let here = Here::new(Kind::Configuration, None);
        match interruptible(&mut self.events, &mut self.facts.refresh, here, work).await {
            Ok(Ok((pg, timings))) => {
                self.facts.timings = timings;
                self.facts.pending_restart.clear();
                s.configured(pg).into()
            }
            Ok(Err(e)) => s.fail(format!("{e:#}")).into(),
            Err(termination) => s.terminate(termination).into(),
        }
    }

    /// A new spec for the postgres serving: reconfigured in place.
    async fn on_reconfiguration(&mut self, mut s: Reconfiguration<Ctx>) -> State {
        let work = reconfigure(
            self.env.clone(),
            s.spec().clone(),
            start::Serving::of(s.postgres()),
            crate::catalog::PlanContext::Reconcile,
        );
        let here = Here::new(Kind::Reconfiguration, None);
        match interruptible(&mut self.events, &mut self.facts.refresh, here, work).await {
            Ok(Ok(pending_restart)) => {
                self.facts.pending_restart = pending_restart;
                s.configured().into()
            }
            Ok(Err(e)) => {
                let mut error = format!("{e:#}");
                if let Some(why) = death_of(s.postgres_mut()).await {
                    error = format!("{error}; {why}");
                }
                s.fail(error).into()
            }
            Err(termination) => s.terminate(termination).into(),
        }
    }

    async fn on_running(&mut self, mut s: Running<Ctx>) -> State {
        // A refresh asked for while the work that led here was under way.
        if self.facts.refresh.take() {
            return s.refresh().into();
        }
        let here = Here::new(Kind::Running, None);
        let running = s.spec().clone();
        loop {
            tokio::select! {
                status = s.postgres_mut().wait() => return s.postgres_exited(status).into(),
                ev = self.events.recv() => match self.triage(here, ev, Some(&running)).await {
                    Next::Terminate(termination) => return s.terminate(termination).into(),
                    Next::Configure(spec) => return s.reconfigure(spec).into(),
                    Next::Refresh(()) => return s.refresh().into(),
                    Next::Operate(Operation::Restart { only_if_pending, reply }) => {
                        let pending = !self.facts.pending_restart.is_empty();
                        if only_if_pending && !pending {
                            let _ = reply.send(Ok(Restarted::NothingPending));
                        } else {
                            self.replies.park_restart(reply);
                            return s.restart().into();
                        }
                    }
                    Next::Operate(Operation::Promote { spec, wal_flush_lsn, reply }) => {
                        if let Some(spec) = self.accept_promotion(&running, spec, reply).await {
                            return s.promote(spec, wal_flush_lsn).into();
                        }
                    }
                    Next::Nothing => {}
                },
            }
        }
    }

    /// A failed compute without postgres lingers `failure_exit_delay` (so
    /// the control plane can read the error, or send a new spec, which
    /// starts afresh), then exits.
    async fn on_failed(&mut self, s: Failed<Ctx>) -> Result<State, Exited> {
        tracing::error!(error = %s.error(), serving = false, "compute failed");
        if self.facts.refresh.take() {
            tracing::warn!("the refresh asked for during the work is dropped: no postgres serves");
        }
        let here = Here::new(Kind::Failed, None);
        let delay = self.env.params.failure_exit_delay;
        let deadline = tokio::time::sleep(delay);
        tokio::pin!(deadline);
        tracing::info!("exiting in {delay:?} unless a new spec arrives");
        loop {
            tokio::select! {
                () = &mut deadline => {
                    self.replies.exiting(ComputeStatus::Failed);
                    return Err(s.exit());
                }
                ev = self.events.recv() => match self.triage::<Infallible>(here, ev, None).await {
                    Next::Terminate(termination) => return Ok(s.terminate(termination).into()),
                    Next::Configure(spec) => return Ok(s.configure(spec).into()),
                    Next::Operate(never) | Next::Refresh(never) => match never {},
                    Next::Nothing => {}
                },
            }
        }
    }

    /// A failed reconfiguration with postgres still serving (the last spec
    /// that reached Running): it waits for a new spec (reconfigured in
    /// place), a refresh or a termination; if postgres dies, the compute is
    /// Failed without it (and exits after `failure_exit_delay`).
    async fn on_failed_serving(&mut self, mut s: FailedServing<Ctx>) -> State {
        tracing::error!(error = %s.error(), serving = true, "compute failed");
        if self.facts.refresh.take() {
            return s.refresh().into();
        }
        let here = Here::new(Kind::FailedServing, None);
        let running = s.spec().clone();
        loop {
            tokio::select! {
                status = s.postgres_mut().wait() => {
                    tracing::error!("{}", exit_reason(&status, Some(s.postgres())));
                    return s.postgres_exited(status).into();
                }
                ev = self.events.recv() => match self.triage::<ServingOnly>(here, ev, Some(&running)).await {
                    Next::Terminate(termination) => return s.terminate(termination).into(),
                    Next::Configure(spec) => return s.reconfigure(spec).into(),
                    Next::Refresh(()) => return s.refresh().into(),
                    Next::Operate(never) => match never {},
                    Next::Nothing => {}
                },
            }
        }
    }
}

fn exit_reason(status: &Result<std::process::ExitStatus>, pg: Option<&Postgres>) -> String {
    let tail = pg.map(Postgres::log_tail).unwrap_or_default();
    match status {
        Ok(st) => format!("postgres exited unexpectedly ({st}); its last log lines:\n{tail}"),
        Err(e) => format!("lost track of postgres: {e:#}"),
    }
}

/// When a step failed because postgres died under it (killed, crashed):
/// its exit status. Waits briefly: a postmaster killed outright is gone
/// before its backends close our connections.
async fn exit_of(pg: &mut Postgres) -> Option<Result<std::process::ExitStatus>> {
    tokio::time::timeout(Duration::from_millis(200), pg.wait())
        .await
        .ok()
}

/// [`exit_of`], said with postgres' last log lines.
async fn death_of(pg: &mut Postgres) -> Option<String> {
    let status = exit_of(pg).await?;
    Some(exit_reason(&status, Some(pg)))
}
