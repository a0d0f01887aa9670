//! What `/terminate` answers, and the linger after it.
//!
//! The LSN, as the reference's control plane expects it: on Neon storage a
//! primary syncs the safekeepers once more after postgres stopped (fast and
//! immediate alike) and answers that commit LSN; read-only computes answer
//! `null`. On local storage a primary answers its last WAL flush LSN: the
//! shutdown checkpoint after a fast stop, the flush LSN read just before an
//! immediate one (never less than what a client saw before the terminate).
//!
//! The final sync is bounded: each attempt has a time limit and the attempts
//! are those of the storage steps; after the last the compute terminates
//! anyway, with the error logged and `lsn: null`.

use super::{admitted, not_taken, Ctx, Driver, Env, Event, Here, Request, RequestError, State};
use crate::postgres::Postgres;
use crate::spec::{ComputeMode, Storage, ValidSpec};
use crate::storage;
use compute_states::{
    Exited, Kind, Lsn, Origin, Stopping, Terminated, Terminating, TerminationMode,
};
use std::time::Duration;
use tracing::Instrument;

/// How long one final `--sync-safekeepers` may take before it is killed
/// and counted as a failed attempt.
pub(super) const FINAL_SYNC_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for postgres to tell its flush LSN before an immediate stop.
const FLUSH_LSN_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the terminate LSN comes from, by the spec in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LsnSource {
    /// A primary on Neon storage: the safekeepers, after the stop.
    Safekeepers,
    /// A primary on local storage: postgres' own WAL.
    LocalWal,
    /// A read-only compute, or no spec: `null`.
    None,
}

impl LsnSource {
    /// The source for a compute running `spec` (None: never started).
    pub(super) fn of(spec: Option<&ValidSpec>) -> Self {
        match spec {
            Some(s) if s.mode == ComputeMode::Primary => match s.storage() {
                Storage::Neon { .. } => Self::Safekeepers,
                Storage::Local => Self::LocalWal,
                Storage::Primary(_) => Self::None,
            },
            _ => Self::None,
        }
    }
}

/// The flush LSN of a running local primary, read just before it is
/// stopped (None if it does not answer in time).
pub(super) async fn flush_lsn_before_stop(env: &Env, source: LsnSource) -> Option<Lsn> {
    if source != LsnSource::LocalWal {
        return None;
    }
    let connector = env.connector();
    let read = async {
        let client = connector.connect(connector.maintenance_db()).await?;
        let row = client
            .query_one(
                "SELECT pg_catalog.pg_current_wal_flush_lsn()::pg_catalog.text",
                &[],
            )
            .await?;
        let text: String = row.get(0);
        anyhow::Ok(text.parse::<Lsn>()?)
    };
    match tokio::time::timeout(FLUSH_LSN_TIMEOUT, read).await {
        Ok(Ok(lsn)) => Some(lsn),
        Ok(Err(e)) => {
            tracing::warn!("cannot read the flush LSN before stopping: {e:#}");
            None
        }
        Err(_) => {
            tracing::warn!("postgres did not tell its flush LSN within {FLUSH_LSN_TIMEOUT:?}");
            None
        }
    }
}

/// The LSN `/terminate` answers once postgres has stopped: `stopped` is
/// what the stop returned (the shutdown checkpoint after a fast stop),
/// `before` the flush LSN read before the stop.
pub(super) async fn final_lsn(
    env: &Env,
    spec: Option<&ValidSpec>,
    source: LsnSource,
    stopped: Option<Lsn>,
    before: Option<Lsn>,
) -> Option<Lsn> {
    match source {
        LsnSource::None => None,
        LsnSource::LocalWal => stopped.max(before),
        LsnSource::Safekeepers => {
            let params = &env.params;
            let token = spec.and_then(|s| s.storage_auth_token.as_ref().map(|t| t.expose()));
            let synced = storage::sync_safekeepers_bounded(
                &params.pgbin,
                &params.pgdata,
                token,
                params.run_as.as_ref(),
                &params.storage_backoff,
                FINAL_SYNC_ATTEMPT_TIMEOUT,
            )
            .instrument(tracing::info_span!("final_sync_safekeepers"))
            .await;
            match synced {
                Ok(lsn) => {
                    tracing::info!(%lsn, "safekeepers synced after the stop");
                    Some(lsn)
                }
                Err(e) => {
                    tracing::error!(
                        "the final safekeeper sync failed; terminating without an LSN: {e:#}"
                    );
                    None
                }
            }
        }
    }
}

/// The linger after a termination asked for over HTTP (the reference's
/// defaults: 30 s after a fast one, 300 ms after an immediate one).
pub(super) fn linger_for(configured: Option<Duration>, mode: TerminationMode) -> Duration {
    configured.unwrap_or(match mode {
        TerminationMode::Fast => Duration::from_secs(30),
        TerminationMode::Immediate => Duration::from_millis(300),
    })
}

/// Keeps answering requests from the final state for `linger`: a repeated
/// `/terminate` gets the same LSN (201), anything else the 412 of
/// `terminated`. A signal, or every sender gone, ends it at once.
pub(super) async fn linger(events: &mut super::request::Inbox, lsn: Option<Lsn>, linger: Duration) {
    tracing::info!(
        ?linger,
        "terminated; the API keeps answering before the exit"
    );
    let deadline = tokio::time::sleep(linger);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => return,
            ev = events.recv() => match ev {
                Some(Event::Suspend { .. }) => {}
                None | Some(Event::Signal(_)) => {
                    tracing::info!("signal during the linger: exiting now");
                    return;
                }
                Some(Event::Request(r)) => after_termination(r, lsn),
            },
        }
    }
}

impl Driver {
    /// Answers the requests that queued up while postgres was stopping;
    /// lingers after a termination asked over HTTP.
    pub(super) async fn on_terminated(&mut self, s: Terminated<Ctx>) -> Exited {
        match s.lsn() {
            Some(lsn) => tracing::info!(%lsn, "compute terminated"),
            None => tracing::info!("compute terminated (no LSN)"),
        }
        // The `/terminate` calls waiting were answered on the way in
        // (`Replies::settle`). Requests that queued up while postgres was stopping.
        while let Some(ev) = self.events.try_recv() {
            match ev {
                Event::Request(r) => after_termination(r, s.lsn()),
                // The linger is cut short before it began.
                Event::Signal(_) => {
                    tracing::info!("signal during the linger: exiting now");
                    return s.exit();
                }
                Event::Suspend { .. } => {}
            }
        }
        let termination = s.termination();
        if termination.origin == Origin::Api {
            let how_long = linger_for(self.env.params.terminate_linger, termination.mode);
            linger(&mut self.events, s.lsn(), how_long).await;
        }
        s.exit()
    }

    /// A termination with no postgres handed over: a start (or restart)
    /// it interrupted dropped its postgres, which is waited for; no LSN.
    pub(super) async fn nothing_to_stop(&mut self, s: Terminating<Ctx>) -> State {
        crate::postgres::wait_abandoned(self.env.params.stop_timeout).await;
        s.nothing_to_stop().into()
    }

    /// Stops the postgres handed over as asked (a repeated request or signal
    /// can make a fast stop immediate) and records the LSN `/terminate` answers.
    pub(super) async fn stop_and_terminate(&mut self, s: Stopping<Ctx>, pg: Postgres) -> State {
        let termination = s.termination();
        let mode = termination.mode;
        let here = Here::new(Kind::Stopping, Some(mode));
        // Whatever an earlier interrupted start dropped is gone first.
        crate::postgres::wait_abandoned(self.env.params.stop_timeout).await;
        let spec = s.spec().clone();
        // Detached from its storage, the compute has no LSN to tell (nor
        // safekeepers to sync with).
        let source = match termination.origin {
            Origin::Detached => LsnSource::None,
            _ => LsnSource::of(Some(&spec)),
        };
        let before = flush_lsn_before_stop(&self.env, source).await;
        let pid = nix::unistd::Pid::from_raw(pg.pid());
        let stop = pg.stop(mode, &self.env.params.pgbin);
        tokio::pin!(stop);
        let mut listening = true;
        let stopped = loop {
            tokio::select! {
                result = &mut stop => break result,
                ev = self.events.recv(), if listening => match ev {
                    None => listening = false,
                    // A fast shutdown that takes too long can be made immediate.
                    Some(Event::Signal(TerminationMode::Immediate)) => escalate(pid),
                    // A second SIGTERM/SIGINT: the sender is out of patience.
                    Some(Event::Signal(TerminationMode::Fast)) => escalate(pid),
                    // Already stopping.
                    Some(Event::Suspend { .. }) => {}
                    Some(Event::Request(r)) => match admitted(here, r) {
                        Some(Request::Terminate { mode, reply }) => {
                            self.replies.park_repeated_terminate(reply);
                            if mode == TerminationMode::Immediate {
                                escalate(pid);
                            }
                        }
                        Some(r) => not_taken(here, r),
                        None => {}
                    },
                },
            }
        };
        match stopped {
            Ok(proof) => {
                let lsn =
                    final_lsn(&self.env, Some(&spec), source, proof.checkpoint(), before).await;
                s.terminated(proof, lsn).into()
            }
            Err(e) => {
                // The stop dropped the postgres it could not wait for (an
                // immediate shutdown); make sure it is gone.
                let left = format!("stopping postgres failed, so it was abandoned: {e:#}");
                tracing::error!("{left}");
                crate::postgres::wait_abandoned(self.env.params.stop_timeout).await;
                s.abandoned(left).into()
            }
        }
    }
}

/// Answers a request that reached the driver once terminated: a repeated
/// `/terminate` gets the LSN (201), anything else what [`super::admit`] says.
fn after_termination(request: Request, lsn: Option<Lsn>) {
    let here = Here::new(Kind::Terminated, None);
    match admitted(here, request) {
        Some(Request::Terminate { reply, .. }) => {
            let _ = reply.send(Err(RequestError::AlreadyTerminated(lsn)));
        }
        Some(r) => not_taken(here, r),
        None => {}
    }
}

/// Turns a fast shutdown under way into an immediate one.
fn escalate(postmaster: nix::unistd::Pid) {
    tracing::warn!("immediate shutdown requested while stopping: sending SIGQUIT to postgres");
    let _ = nix::sys::signal::kill(postmaster, nix::sys::signal::Signal::SIGQUIT);
}
