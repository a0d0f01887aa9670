//! Operations on a running compute (`POST /restart`): kept apart from the
//! start and termination paths so each operation is one small, typed step.

use super::{interruptible, Ctx, Driver, Env, Here, State};
use crate::catalog;
use crate::postgres::Postgres;
use crate::spec::{ComputeMode, ValidSpec};
use anyhow::{Context, Result};
use compute_states::{Kind, RestartPending, TerminationMode};
use std::sync::Arc;
use tracing::Instrument;

impl Driver {
    /// Takes the serving postgres over, stops it fast, starts it again on
    /// the same PGDATA with the configuration on disk, re-checks the
    /// catalog; Running again, or Failed with postgres' last log lines.
    pub(super) async fn on_restarting(&mut self, s: RestartPending<Ctx>) -> State {
        let (pg, s) = s.begin();
        let spec = s.spec().clone();
        let stop = pg.stop(TerminationMode::Fast, &self.env.params.pgbin);
        let here = Here::new(Kind::Restarting, None);
        let stopped =
            match interruptible(&mut self.events, &mut self.facts.refresh, here, stop).await {
                Ok(Ok(stopped)) => stopped,
                Ok(Err(e)) => {
                    return s
                        .fail(format!("stopping postgres to restart: {e:#}"))
                        .into()
                }
                // The stop was dropped half-way: the postgres it held is
                // abandoned (immediate shutdown); nothing is left to stop.
                Err(termination) => return s.terminate(termination).into(),
            };
        let work = restart_postgres(self.env.clone(), spec);
        match interruptible(&mut self.events, &mut self.facts.refresh, here, work).await {
            Ok(Ok(pg)) => {
                self.facts.pending_restart.clear();
                s.restarted(stopped, pg).into()
            }
            Ok(Err(e)) => s.fail(format!("{e:#}")).into(),
            Err(termination) => s.terminate(termination).into(),
        }
    }
}

/// Starts postgres on the existing PGDATA and reconciles the catalog.
async fn restart_postgres(env: Arc<Env>, spec: Arc<ValidSpec>) -> Result<Postgres> {
    let params = &env.params;
    let pg = Postgres::start(
        &params.pgbin,
        &params.pgdata,
        params.run_as.as_ref(),
        params.start_timeout,
        spec.storage_auth_token.as_ref(),
    )
    .instrument(tracing::info_span!("restart_postgres"))
    .await
    .context("restarting postgres")?;
    if spec.mode == ComputeMode::Primary {
        let concurrency = catalog::Concurrency::Fixed(spec.reconfigure_concurrency);
        // The same data, which anything may have changed since its start.
        let origin = catalog::Origin::Unknown;
        if let Err(e) = catalog::start(&env.connector(), &spec, concurrency, origin)
            .instrument(tracing::info_span!("apply_catalog"))
            .await
        {
            let _ = pg.stop(TerminationMode::Immediate, &params.pgbin).await;
            return Err(e.context("applying the spec to the catalog after the restart"));
        }
    }
    Ok(pg)
}
