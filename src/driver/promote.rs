//! Promoting a vanilla replica (`POST /promote {spec, wal_flush_lsn}`), in
//! the reference's three timed phases: wait until the replica has the old
//! primary's WAL up to `wal_flush_lsn`, received or replayed (bounded by
//! `--promote-timeout`), `pg_promote()`, then apply the new spec as a primary
//! (configuration, reload, and the catalog step a primary's start runs).
//!
//! What is left when it goes wrong is typed: before `pg_promote()` nothing
//! has changed and the compute is Running as the replica it was; after it,
//! the compute is Failed with postgres serving (a new spec recovers it).

use super::{interruptible, start, Ctx, Driver, Env, Here, RequestError, State};
use crate::spec::{ComputeMode, Storage, ValidSpec};
use anyhow::{anyhow, Context};
use compute_states::{Kind, Lsn, Promoting};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::Instrument;

/// How often the replay position is read while waiting for it.
const POLL: Duration = Duration::from_millis(20);

/// How long postgres may take to leave recovery once promoted (as
/// `pg_promote()`'s own default wait).
const PG_PROMOTE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often postgres is asked whether it has left recovery.
const PROMOTE_POLL: Duration = Duration::from_millis(2);

/// What a completed promotion answers: the reference's
/// `{"status": "completed", "lsn_wait_time_ms", "pg_promote_time_ms",
/// "reconfigure_time_ms"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename = "completed")]
pub struct PromoteTimings {
    /// Waiting for the replay to reach `wal_flush_lsn`.
    pub lsn_wait_time_ms: u64,
    /// `pg_promote()`, until postgres left recovery.
    pub pg_promote_time_ms: u64,
    /// Writing the primary's configuration, reloading, the catalog step.
    pub reconfigure_time_ms: u64,
}

/// Why the first phases did not promote.
enum NotPromoted {
    /// The replay did not reach the LSN in time; nothing changed.
    NotReached(String),
    /// Something failed before `pg_promote()`; nothing changed.
    Before(anyhow::Error),
    /// `pg_promote()` was called and failed: postgres may be promoted.
    After(anyhow::Error),
}

impl Driver {
    /// Decides what a `/promote` asks of a Running compute: a primary
    /// answers the last promotion's figures (completed, nothing done); a
    /// compute that cannot be promoted, or a spec that is not a primary's,
    /// is refused; otherwise the spec to promote with (the reply is parked).
    pub(super) async fn accept_promotion(
        &mut self,
        running: &ValidSpec,
        spec: Arc<ValidSpec>,
        reply: oneshot::Sender<Result<PromoteTimings, RequestError>>,
    ) -> Option<Arc<ValidSpec>> {
        let refused = match (&running.mode, running.storage()) {
            (ComputeMode::Primary, _) => {
                tracing::info!("/promote on a primary: already promoted, nothing to do");
                let _ = reply.send(Ok(self.facts.last_promotion.clone().unwrap_or_default()));
                return None;
            }
            (ComputeMode::Static(lsn), _) => Some(RequestError::CannotPromote(format!(
                "a static compute (stopped at {lsn}) cannot be promoted; only a replica can"
            ))),
            (ComputeMode::Replica, Storage::Neon { .. }) => Some(RequestError::CannotPromote(
                "promoting a replica on Neon storage is not supported; only a vanilla replica \
                 (primary_connstring) can be promoted"
                    .into(),
            )),
            (ComputeMode::Replica, _) => None,
        };
        let refused = refused.or_else(|| {
            if spec.mode != ComputeMode::Primary {
                Some(RequestError::BadSpec(
                    "invalid compute spec: mode: a promotion's spec must be \"Primary\"".into(),
                ))
            } else if !matches!(spec.storage(), Storage::Local) {
                Some(RequestError::BadSpec(
                    "invalid compute spec: pageserver_connstring: a promoted vanilla replica \
                     keeps its own PGDATA; the spec must not name a pageserver"
                        .into(),
                ))
            } else {
                None
            }
        });
        let refused = match refused {
            Some(e) => Some(e),
            None => self
                .env
                .check_spec(&spec)
                .await
                .err()
                .map(|e| RequestError::BadSpec(e.to_string())),
        };
        if let Some(e) = refused {
            let _ = reply.send(Err(e));
            return None;
        }
        self.replies.park_promote(reply);
        Some(spec)
    }

    /// Waits for the replay, promotes, applies the primary's spec.
    pub(super) async fn on_promoting(&mut self, s: Promoting<Ctx>) -> State {
        let status = Here::new(Kind::Promoting, None);
        let lsn = s.wal_flush_lsn();
        let timeout = self.env.params.promote_timeout;
        tracing::info!(wal_flush_lsn = %lsn, ?timeout, "promoting the replica");
        let work = catch_up_and_promote(self.env.clone(), lsn, timeout)
            .instrument(tracing::info_span!("promote", wal_flush_lsn = %lsn));
        let refresh = &mut self.facts.refresh;
        let (lsn_wait, pg_promote) =
            match interruptible(&mut self.events, refresh, status, work).await {
                Ok(Ok(times)) => times,
                Ok(Err(NotPromoted::NotReached(why))) => {
                    tracing::warn!("{why}");
                    self.answer_promote(Err(RequestError::PromoteTimeout(why)));
                    return s.not_promoted().into();
                }
                Ok(Err(NotPromoted::Before(e))) => {
                    let why = format!("promotion failed, nothing changed (still a replica): {e:#}");
                    tracing::error!("{why}");
                    self.answer_promote(Err(RequestError::PromoteFailed(why)));
                    return s.not_promoted().into();
                }
                Ok(Err(NotPromoted::After(e))) => {
                    // pg_promote() was called: postgres may be a primary now.
                    let why = format!("promotion failed: {e:#}");
                    self.answer_promote(Err(RequestError::PromoteFailed(why.clone())));
                    return s.pg_promoted().fail(why).into();
                }
                Err(termination) => {
                    self.answer_promote(Err(RequestError::PromoteFailed(
                        "a termination interrupted the promotion".into(),
                    )));
                    return s.terminate(termination).into();
                }
            };
        // Postgres is a primary now: a later failure or a new spec is judged
        // against the primary's spec.
        let s = s.pg_promoted();
        let status = Here::new(Kind::Promoted, None);
        let primary = s.primary_spec().clone();
        let began = Instant::now();
        let work = start::reconfigure(
            self.env.clone(),
            primary.clone(),
            start::Serving::of(s.postgres()),
            crate::catalog::PlanContext::Start(crate::catalog::Origin::Unknown),
        );
        match interruptible(&mut self.events, &mut self.facts.refresh, status, work).await {
            Ok(Ok(mut pending_restart)) => {
                // Dropped from the replica's configuration; it does nothing
                // on a primary, so no restart is wanted for it.
                pending_restart.retain(|name| name != "hot_standby");
                let timings = PromoteTimings {
                    lsn_wait_time_ms: lsn_wait.as_millis() as u64,
                    pg_promote_time_ms: pg_promote.as_millis() as u64,
                    reconfigure_time_ms: began.elapsed().as_millis() as u64,
                };
                tracing::info!(?timings, "promoted to primary");
                self.facts.pending_restart = pending_restart;
                self.spec_arrived(&primary);
                self.facts.last_promotion = Some(timings.clone());
                self.answer_promote(Ok(timings));
                s.promoted().into()
            }
            Ok(Err(e)) => {
                let why = format!("promoted, but applying the primary's spec failed: {e:#}");
                self.answer_promote(Err(RequestError::PromoteFailed(why.clone())));
                s.fail(why).into()
            }
            Err(termination) => {
                self.answer_promote(Err(RequestError::PromoteFailed(
                    "promoted, but a termination interrupted the reconfiguration".into(),
                )));
                s.terminate(termination).into()
            }
        }
    }

    /// Tells the parked `/promote` how the promotion ended: answered by
    /// `Replies::settle` once the state it returns is published.
    fn answer_promote(&mut self, answer: Result<PromoteTimings, RequestError>) {
        self.replies.promotion_ended(answer);
    }
}

/// Waits until the replica has received or replayed up to `lsn` (at most
/// `timeout`), then promotes it and checks it replayed that far; the time of
/// each phase. A postgres already out of
/// recovery (promoted by hand) waits for nothing and is not promoted again.
async fn catch_up_and_promote(
    env: Arc<Env>,
    lsn: Lsn,
    timeout: Duration,
) -> Result<(Duration, Duration), NotPromoted> {
    let connector = env.connector();
    let client = connector
        .connect(connector.maintenance_db())
        .await
        .map_err(|e| NotPromoted::Before(e.context("connecting to postgres")))?;
    let began = Instant::now();
    let recovering = is_in_recovery(&client).await.map_err(NotPromoted::Before)?;
    if !recovering {
        tracing::info!("postgres is already out of recovery: nothing to wait for or promote");
        return Ok((Duration::ZERO, Duration::ZERO));
    }
    // WAL received and flushed is as good as replayed: promoted, the
    // startup process replays everything in pg_wal before it ends recovery
    // (and the promotion wakes it from its wal_retrieve_retry_interval sleep,
    // up to 5 s, which a wait for the replay alone would sit through).
    loop {
        let (received, replayed) = positions(&client).await.map_err(NotPromoted::Before)?;
        if received.max(replayed) >= lsn {
            tracing::info!(%received, %replayed, "the replica has wal_flush_lsn");
            break;
        }
        if began.elapsed() >= timeout {
            return Err(NotPromoted::NotReached(format!(
                "the replica received WAL up to {received} and replayed it up to {replayed} \
                 in {timeout:?}, not up to wal_flush_lsn {lsn}: not promoted, still a replica"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    let lsn_wait = began.elapsed();
    let began = Instant::now();
    // pg_promote(wait => true) looks every 100 ms whether recovery has
    // ended; asking without waiting and looking every few ms ourselves
    // answers as soon as postgres accepts writes.
    let signalled: bool = client
        .query_one("SELECT pg_catalog.pg_promote(false)", &[])
        .await
        .context("pg_promote()")
        .map_err(NotPromoted::After)?
        .get(0);
    if !signalled {
        return Err(NotPromoted::After(anyhow!(
            "pg_promote() could not signal the postmaster"
        )));
    }
    while is_in_recovery(&client).await.map_err(NotPromoted::After)? {
        if began.elapsed() >= PG_PROMOTE_TIMEOUT {
            return Err(NotPromoted::After(anyhow!(
                "postgres was still in recovery {PG_PROMOTE_TIMEOUT:?} after pg_promote()"
            )));
        }
        tokio::time::sleep(PROMOTE_POLL).await;
    }
    let (_, replayed) = positions(&client).await.map_err(NotPromoted::After)?;
    if replayed < lsn {
        return Err(NotPromoted::After(anyhow!(
            "promoted after replaying WAL up to {replayed} only, not up to wal_flush_lsn {lsn}"
        )));
    }
    Ok((lsn_wait, began.elapsed()))
}

async fn is_in_recovery(client: &tokio_postgres::Client) -> anyhow::Result<bool> {
    Ok(client
        .query_one("SELECT pg_catalog.pg_is_in_recovery()", &[])
        .await
        .context("asking whether postgres is in recovery")?
        .get(0))
}

/// The last WAL positions received (and flushed) and replayed (0/0 for
/// none: nothing received since the start, say).
async fn positions(client: &tokio_postgres::Client) -> anyhow::Result<(Lsn, Lsn)> {
    let row = client
        .query_one(
            "SELECT pg_catalog.pg_last_wal_receive_lsn()::pg_catalog.text, \
                    pg_catalog.pg_last_wal_replay_lsn()::pg_catalog.text",
            &[],
        )
        .await
        .context("reading the replica's WAL positions")?;
    let lsn = |i: usize| -> anyhow::Result<Lsn> {
        match row.get::<_, Option<String>>(i) {
            Some(t) => t.parse().context("parsing a WAL position"),
            None => Ok(Lsn::default()),
        }
    };
    Ok((lsn(0)?, lsn(1)?))
}
