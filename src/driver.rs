//! The driver: the one owner of the typed state machine.
//!
//! It holds an [`AnyState`], performs the work each state calls for (start
//! postgres, wait on it, stop it), advances the machine, and publishes a
//! [`Snapshot`] after every transition. Everyone else (signal handlers, the
//! HTTP API) only reads snapshots and sends [`Event`]s.

use crate::catalog::{self, Connector};
use crate::config::{self, ConfigParams};
use crate::pgbin::PgBin;
use crate::pgdata;
use crate::postgres::Postgres;
use crate::process::RunAs;
use crate::spec::{ComputeSpec, SpecError};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use compute_states::{
    AnyState, Compute, Configuration, Empty, Exited, Init, Lsn, Running, Status, TerminationMode,
    TerminationPending,
};
use parking_lot::RwLock;
use serde::Serialize;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, OnceCell};
use tracing::Instrument;

/// The driver's types, plugged into the machine.
pub struct Ctx;

impl Compute for Ctx {
    type Spec = Arc<ComputeSpec>;
    type Postgres = Postgres;
    type Error = String;
}

/// The machine as the driver holds it.
pub type State = AnyState<Ctx>;

/// Everything fixed for the life of the process.
pub struct Params {
    /// The data directory.
    pub pgdata: PathBuf,
    /// How compute_ctl connects to its postgres (the superuser).
    pub connstr: tokio_postgres::Config,
    /// The superuser: the connstr's user.
    pub superuser: String,
    /// The port postgres listens on: the connstr's port.
    pub port: u16,
    /// The postgres installation.
    pub pgbin: PgBin,
    /// Who postgres runs as when we are root.
    pub run_as: Option<RunAs>,
    /// Where initdb templates are cached.
    pub template_cache: PathBuf,
    /// Where postgres puts its Unix socket (unless the spec says otherwise).
    pub socket_dir: PathBuf,
}

/// Startup timings, in milliseconds, as `/metrics.json` reports them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// From process start until a spec was available.
    pub wait_for_spec_ms: u64,
    /// Safekeeper sync (remote storage only).
    pub sync_safekeepers_ms: u64,
    /// Basebackup download (remote storage only).
    pub basebackup_ms: u64,
    /// Basebackup size in bytes (remote storage only).
    pub basebackup_bytes: u64,
    /// PGDATA preparation and postgres start, until it accepted connections.
    pub start_postgres_ms: u64,
    /// Catalog reconciliation.
    pub config_ms: u64,
    /// From the spec to Running.
    pub total_startup_ms: u64,
}

/// What the driver publishes after every transition.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// When compute_ctl started.
    pub start_time: DateTime<Utc>,
    /// The spec's tenant, if any.
    pub tenant: Option<String>,
    /// The spec's timeline, if any.
    pub timeline: Option<String>,
    /// The current state.
    pub status: Status,
    /// Last user activity (filled by the activity monitor).
    pub last_active: Option<DateTime<Utc>>,
    /// Why the compute failed, when it did.
    pub error: Option<String>,
    /// Startup timings.
    #[serde(skip)]
    pub timings: Timings,
    /// The final LSN once terminated.
    #[serde(skip)]
    pub lsn: Option<Lsn>,
    /// Transitions taken so far, as (from, to) pairs with counts.
    #[serde(skip)]
    pub transitions: Vec<((Status, Status), u64)>,
}

/// What the API and signal handlers can ask of the driver.
pub enum Event {
    /// A termination signal (SIGTERM, SIGINT: fast; SIGQUIT: immediate).
    Signal(TerminationMode),
    /// A request that wants an answer.
    Request(Request),
}

/// A request with a reply channel.
pub enum Request {
    /// Apply this spec (from Empty: start the compute).
    Configure {
        /// The new spec, already validated.
        spec: Arc<ComputeSpec>,
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
}

/// Why a request was not carried out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// Not allowed in the current state (HTTP 412).
    #[error("invalid compute status: {0}")]
    InvalidState(Status),
    /// The configuration ended in Failed (HTTP 500).
    #[error("compute configuration failed: {0}")]
    ConfigurationFailed(String),
}

/// The published snapshot, readable from anywhere.
#[derive(Clone)]
pub struct Handle {
    snapshot: Arc<RwLock<Snapshot>>,
    events: mpsc::Sender<Event>,
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
    /// Sends an event to the driver; false when the driver has ended.
    pub async fn send(&self, event: Event) -> bool {
        self.events.send(event).await.is_ok()
    }
    /// Updates the last-activity time (from the activity monitor).
    pub fn set_last_active(&self, at: DateTime<Utc>) {
        self.snapshot.write().last_active = Some(at);
    }
}

/// What a start needs, shared with the start future.
struct Env {
    params: Params,
    known_settings: OnceCell<HashSet<String>>,
}

impl Env {
    /// Checks a spec against what this postgres knows, before anything is
    /// written: plain setting names postgres does not know are refused.
    async fn check_spec(&self, spec: &ComputeSpec) -> Result<(), SpecError> {
        let known = self
            .known_settings
            .get_or_try_init(|| self.params.pgbin.known_settings())
            .await
            .map_err(|e| SpecError {
                field: "cluster.settings".into(),
                reason: format!("cannot list postgres' settings: {e:#}"),
            })?;
        if let Some((i, s)) = spec.unknown_settings(known).next() {
            return Err(SpecError {
                field: format!("cluster.settings[{i}].name"),
                reason: format!("postgres has no setting named {:?}", s.name),
            });
        }
        Ok(())
    }
}

/// The driver loop.
pub struct Driver {
    env: Arc<Env>,
    snapshot: Arc<RwLock<Snapshot>>,
    events: mpsc::Receiver<Event>,
    started_at: Instant,
    /// The `/configure` call waiting for Running or Failed.
    waiting_configure: Option<oneshot::Sender<Result<Snapshot, RequestError>>>,
    /// `/terminate` calls waiting for Terminated.
    waiting_terminate: Vec<oneshot::Sender<Result<Option<Lsn>, RequestError>>>,
}

impl Driver {
    /// A driver in Empty, and the handle to talk to it.
    pub fn new(params: Params) -> (Driver, Handle) {
        let (tx, rx) = mpsc::channel(64);
        let snapshot = Arc::new(RwLock::new(Snapshot {
            start_time: Utc::now(),
            tenant: None,
            timeline: None,
            status: Status::Empty,
            last_active: None,
            error: None,
            timings: Timings::default(),
            lsn: None,
            transitions: Vec::new(),
        }));
        let driver = Driver {
            env: Arc::new(Env {
                params,
                known_settings: OnceCell::new(),
            }),
            snapshot: snapshot.clone(),
            events: rx,
            started_at: Instant::now(),
            waiting_configure: None,
            waiting_terminate: Vec::new(),
        };
        (
            driver,
            Handle {
                snapshot,
                events: tx,
            },
        )
    }

    /// Checks a spec against what this postgres knows, before anything is
    /// written: plain setting names postgres does not know are refused.
    pub async fn check_spec(&self, spec: &ComputeSpec) -> Result<(), SpecError> {
        self.env.check_spec(spec).await
    }

    /// Runs the machine to its end. `spec` is the spec available at launch, if any.
    pub async fn run(mut self, spec: Option<Arc<ComputeSpec>>) -> Exited {
        let mut state: State = Empty::spawn().into();
        self.publish(&state, None);
        if let AnyState::Empty(empty) = state {
            state = match spec {
                Some(spec) => {
                    self.snapshot.write().timings.wait_for_spec_ms =
                        self.started_at.elapsed().as_millis() as u64;
                    self.note_spec(&spec);
                    empty.start(spec).into()
                }
                None => empty.into(),
            };
        }
        loop {
            let from = state.status();
            self.publish(&state, Some(from));
            state = match state {
                AnyState::Empty(s) => self.on_empty(s).await,
                AnyState::Init(s) => self.on_init(s).await,
                AnyState::ConfigurationPending(s) => s.begin().into(),
                AnyState::Configuration(s) => self.on_configuration(s).await,
                AnyState::Running(s) => self.on_running(s).await,
                AnyState::TerminationPending(s) => self.on_termination(s).await,
                AnyState::Failed(s) => {
                    tracing::error!(error = %s.error(), "compute failed");
                    if let Some(reply) = self.waiting_configure.take() {
                        let _ =
                            reply.send(Err(RequestError::ConfigurationFailed(s.error().clone())));
                    }
                    for reply in self.waiting_terminate.drain(..) {
                        let _ = reply.send(Err(RequestError::InvalidState(Status::Failed)));
                    }
                    return s.exit();
                }
                AnyState::Terminated(s) => {
                    for reply in self.waiting_terminate.drain(..) {
                        let _ = reply.send(Ok(s.lsn()));
                    }
                    return s.exit();
                }
            };
            let to = state.status();
            if to != from {
                tracing::info!(from = %from, to = %to, "compute state changed");
                self.count_transition(from, to);
            }
        }
    }

    fn note_spec(&self, spec: &ComputeSpec) {
        let mut snap = self.snapshot.write();
        snap.tenant = spec.tenant_id.clone();
        snap.timeline = spec.timeline_id.clone();
    }

    fn count_transition(&self, from: Status, to: Status) {
        let mut snap = self.snapshot.write();
        match snap.transitions.iter_mut().find(|(k, _)| *k == (from, to)) {
            Some((_, n)) => *n += 1,
            None => snap.transitions.push(((from, to), 1)),
        }
    }

    fn publish(&self, state: &State, _from: Option<Status>) {
        let mut snap = self.snapshot.write();
        snap.status = state.status();
        match state {
            AnyState::Failed(f) => snap.error = Some(f.error().clone()),
            AnyState::Running(_) => snap.error = None,
            AnyState::Terminated(t) => snap.lsn = t.lsn(),
            _ => {}
        }
    }

    fn reject(&self, request: Request, status: Status) {
        reject(request, status)
    }
}

/// Answers a request that the current state does not accept.
fn reject(request: Request, status: Status) {
    match request {
        Request::Configure { reply, .. } => {
            let _ = reply.send(Err(RequestError::InvalidState(status)));
        }
        Request::Terminate { reply, .. } => {
            let _ = reply.send(Err(RequestError::InvalidState(status)));
        }
    }
}

/// Runs `work` while listening for termination; other requests are refused
/// with `status`. Returns the termination mode if one came first (dropping
/// `work`, which cleans up after itself).
async fn interruptible<T>(
    events: &mut mpsc::Receiver<Event>,
    status: Status,
    work: impl std::future::Future<Output = T>,
) -> Result<T, TerminationMode> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return Ok(out),
            ev = events.recv() => match ev {
                None => continue,
                Some(Event::Signal(mode)) => return Err(mode),
                Some(Event::Request(r)) => reject(r, status),
            },
        }
    }
}

impl Driver {
    async fn on_empty(&mut self, s: Empty<Ctx>) -> State {
        match self.events.recv().await {
            // Every sender is gone: nobody can configure us any more.
            None => s.terminate(TerminationMode::Fast).into(),
            Some(Event::Signal(mode)) => s.terminate(mode).into(),
            Some(Event::Request(Request::Terminate { mode, reply })) => {
                self.waiting_terminate.push(reply);
                s.terminate(mode).into()
            }
            Some(Event::Request(Request::Configure { spec, reply })) => {
                self.snapshot.write().timings.wait_for_spec_ms =
                    self.started_at.elapsed().as_millis() as u64;
                self.note_spec(&spec);
                self.waiting_configure = Some(reply);
                s.configure(spec).into()
            }
        }
    }

    async fn on_init(&mut self, s: Init<Ctx>) -> State {
        let work = start_compute(self.env.clone(), s.spec().clone(), self.timings());
        let started = interruptible(&mut self.events, Status::Init, work).await;
        match started {
            Ok(Ok((pg, timings))) => {
                self.snapshot.write().timings = timings;
                s.started(pg).into()
            }
            Ok(Err(e)) => s.fail(format!("{e:#}")).into(),
            Err(mode) => s.terminate(mode).into(),
        }
    }

    async fn on_configuration(&mut self, mut s: Configuration<Ctx>) -> State {
        if let Some(pg) = s.take_postgres() {
            // Reconfiguration of a running compute is not accepted yet
            // (Running refuses /configure), so this cannot happen; keep serving.
            return s.configured(pg).into();
        }
        let work = start_compute(self.env.clone(), s.spec().clone(), self.timings());
        let started = interruptible(&mut self.events, Status::Configuration, work).await;
        match started {
            Ok(Ok((pg, timings))) => {
                self.snapshot.write().timings = timings;
                let running: Running<Ctx> = s.configured(pg);
                if let Some(reply) = self.waiting_configure.take() {
                    let mut snap = self.snapshot();
                    snap.status = Status::Running;
                    let _ = reply.send(Ok(snap));
                }
                running.into()
            }
            Ok(Err(e)) => s.fail(format!("{e:#}")).into(),
            Err(mode) => s.terminate(mode).into(),
        }
    }

    fn snapshot(&self) -> Snapshot {
        self.snapshot.read().clone()
    }

    fn timings(&self) -> Timings {
        self.snapshot.read().timings.clone()
    }

    async fn on_running(&mut self, mut s: Running<Ctx>) -> State {
        loop {
            tokio::select! {
                status = s.postgres_mut().wait() => {
                    let why = match status {
                        Ok(st) => format!("postgres exited unexpectedly ({st}); its last log lines:\n{}", s.postgres().log_tail()),
                        Err(e) => format!("lost track of postgres: {e:#}"),
                    };
                    return s.postgres_exited(why).into();
                }
                ev = self.events.recv() => match ev {
                    None => continue,
                    Some(Event::Signal(mode)) => return s.terminate(mode).into(),
                    Some(Event::Request(Request::Terminate { mode, reply })) => {
                        self.waiting_terminate.push(reply);
                        return s.terminate(mode).into();
                    }
                    Some(Event::Request(r)) => self.reject(r, Status::Running),
                },
            }
        }
    }

    async fn on_termination(&mut self, mut s: TerminationPending<Ctx>) -> State {
        let mode = s.mode();
        let lsn = match s.take_postgres() {
            Some(pg) => match pg.stop(mode, &self.env.params.pgbin).await {
                Ok(lsn) => lsn,
                Err(e) => {
                    tracing::error!("stopping postgres: {e:#}");
                    None
                }
            },
            None => None,
        };
        s.terminated(lsn).into()
    }
}

/// From a clean slate to a running, reconciled postgres.
async fn start_compute(
    env: Arc<Env>,
    spec: Arc<ComputeSpec>,
    mut timings: Timings,
) -> Result<(Postgres, Timings)> {
    let began = Instant::now();
    let params = &env.params;
    let owner = params.run_as.as_ref();

    let (checked, template) = tokio::join!(
        env.check_spec(&spec),
        pgdata::ensure_template(
            &params.pgbin,
            &params.superuser,
            &params.template_cache,
            owner
        )
    );
    checked?;
    let template = template.context("preparing the initdb template")?;
    tracing::debug!(
        ms = began.elapsed().as_millis() as u64,
        "spec checked, template ready"
    );
    {
        let env = env.clone();
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let params = &env.params;
            let owner = params.run_as.as_ref();
            pgdata::wipe(&params.pgdata, owner)?;
            pgdata::copy_template(&template, &params.pgdata, owner)?;
            config::write(&params.pgdata, &spec, &config_params(params))
        })
        .await
        .context("preparing PGDATA")??;
    }
    tracing::info!(ms = began.elapsed().as_millis() as u64, "PGDATA prepared");
    let pg = Postgres::start(&params.pgbin, &params.pgdata, owner)
        .instrument(tracing::info_span!("start_postgres"))
        .await?;
    timings.start_postgres_ms = began.elapsed().as_millis() as u64;

    let config_began = Instant::now();
    let connector = Connector::new(params.connstr.clone());
    let concurrency = startup_concurrency(&connector).await;
    if let Err(e) = catalog::reconcile(&connector, &spec, concurrency)
        .instrument(tracing::info_span!("apply_catalog"))
        .await
    {
        let _ = pg.stop(TerminationMode::Immediate, &params.pgbin).await;
        return Err(e.context("applying the spec to the catalog"));
    }
    timings.config_ms = config_began.elapsed().as_millis() as u64;
    timings.total_startup_ms = began.elapsed().as_millis() as u64;
    tracing::info!(?timings, "compute is running");
    Ok((pg, timings))
}

/// Parallel connections for the startup apply: a share of `max_connections`.
async fn startup_concurrency(connector: &Connector) -> usize {
    let max = async {
        let client = connector.connect(connector.maintenance_db()).await?;
        let row = client.query_one("SHOW max_connections", &[]).await?;
        anyhow::Ok(row.get::<_, String>(0).parse::<usize>()?)
    };
    match max.await {
        Ok(max) => (max / 10).clamp(1, 16),
        Err(_) => 1,
    }
}

fn config_params(params: &Params) -> ConfigParams<'_> {
    ConfigParams {
        port: params.port,
        superuser: &params.superuser,
        socket_dir: &params.socket_dir,
    }
}
