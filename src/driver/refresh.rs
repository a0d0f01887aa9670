//! `/refresh_configuration`: the spec read again from where it came from
//! (the control plane, or the `-c`/`-S` file) and, if it changed, applied to
//! the serving postgres in place.
//!
//! Neon's postgres asks for it when its pageserver stops answering (a shard
//! moved): the control plane's spec has the new address. The request is
//! answered at once; the compute moves through `refresh_configuration_pending`
//! and `refresh_configuration` (the reference's names) back to `running`.
//! As the reference: a failed attempt (the source unreachable, a spec that
//! does not parse or apply) is retried until it succeeds or the compute is
//! terminated, and the source is read at most every [`PAUSE`]; a source
//! that has no spec for this compute (the control plane's `"empty"`, a
//! config file with `"spec": null`) means the compute is attached to no
//! storage any more: postgres is stopped at once and the process exits 1.
//!
//! Beyond the reference: the whole spec is compared, not only the
//! pageservers, so a refresh applies every change; a refresh asked for
//! while other work is under way (a start, a reconfiguration) is taken up
//! once that is done instead of being dropped; the spec is checked as a
//! `/configure` is before anything is applied.

use super::{interruptible, start, Ctx, Driver, Here, Keys, RequestError, State};
use crate::auth::{Authenticator, Gate};
use crate::control_plane::SpecSource;
use crate::spec::ValidSpec;
use anyhow::{Context, Result};
use compute_states::{Kind, Refreshing};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The least time between two reads of the spec source, and so the pause
/// before a failed refresh is tried again (the reference's 5 s).
pub const PAUSE: Duration = Duration::from_secs(5);

/// Where a refresh reads the spec again, and what it needs to take the
/// keys that come with it.
pub struct RefreshSource {
    /// The control plane or the launch file.
    pub source: SpecSource,
    /// The gate of the authenticated routes: the keys of the new
    /// `compute_ctl_config` go there once the spec is accepted.
    pub gate: Arc<Gate>,
    /// This compute's id (`--compute-id`), which the keys' tokens name.
    pub compute_id: Option<String>,
}

/// Whether a refresh can be asked for, and whether one is waiting for the
/// work under way to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum RefreshAsk {
    /// No spec source: a refresh is refused (409).
    Impossible,
    /// None asked for.
    #[default]
    Idle,
    /// Asked for during work; taken up when postgres serves again.
    Asked,
}

impl RefreshAsk {
    /// Whether a refresh can be taken: Ok unless there is no source.
    pub(super) fn check(self) -> Result<(), RequestError> {
        match self {
            RefreshAsk::Impossible => Err(RequestError::NoSpecSource),
            RefreshAsk::Idle | RefreshAsk::Asked => Ok(()),
        }
    }

    /// Notes a refresh asked for during work, for when it is done: Ok
    /// unless there is no source.
    pub(super) fn defer(&mut self) -> Result<(), RequestError> {
        self.check()?;
        *self = RefreshAsk::Asked;
        Ok(())
    }

    /// Takes the refresh waiting, if any.
    pub(super) fn take(&mut self) -> bool {
        if *self == RefreshAsk::Asked {
            *self = RefreshAsk::Idle;
            return true;
        }
        false
    }
}

/// What one read of the source brought.
enum Read {
    /// The source has no spec for this compute.
    Detached,
    /// A spec, checked for this compute, and the keys that came with it.
    Spec(Arc<ValidSpec>, Option<Authenticator>),
}

impl Driver {
    /// One attempt: pause if the source was read less than [`PAUSE`] ago,
    /// read it, and apply what changed; back to Running, or pending again
    /// with the error, or detached, or Failed if postgres died meanwhile.
    pub(super) async fn on_refreshing(&mut self, mut s: Refreshing<Ctx>) -> State {
        let here = Here::new(Kind::Refreshing, None);
        let Some(refresh) = self.env.params.refresh.as_ref() else {
            // RefreshAsk::Impossible keeps every refresh out: nothing to read.
            tracing::error!("a refresh without a spec source: nothing done");
            let spec = s.spec().clone();
            return s.refreshed(spec).into();
        };
        let pause = self
            .facts
            .last_refresh
            .map_or(Duration::ZERO, |at| PAUSE.saturating_sub(at.elapsed()));
        if !pause.is_zero() {
            tracing::info!(?pause, "the spec source was read moments ago: waiting");
            let pg = s.postgres_mut();
            let wait = async {
                tokio::select! {
                    status = pg.wait() => Some(status),
                    () = tokio::time::sleep(pause) => None,
                }
            };
            match interruptible(&mut self.events, &mut self.facts.refresh, here, wait).await {
                Ok(Some(status)) => return s.postgres_exited(status).into(),
                Ok(None) => {}
                Err(termination) => return s.terminate(termination).into(),
            }
        }
        self.facts.last_refresh = Some(Instant::now());
        let read = read(refresh, s.spec(), &self.env);
        let read = read.instrument(tracing::info_span!("refresh_configuration"));
        let (spec, auth) =
            match interruptible(&mut self.events, &mut self.facts.refresh, here, read).await {
                Err(termination) => return s.terminate(termination).into(),
                Ok(Err(e)) => {
                    let error = format!("refreshing the configuration: {e:#}");
                    tracing::error!("{error}; trying again in {PAUSE:?}");
                    return s.retry(error).into();
                }
                Ok(Ok(Read::Detached)) => {
                    tracing::error!(
                        "the spec source has no spec for this compute: it is attached to no \
                         storage any more; stopping postgres and exiting (code 1)"
                    );
                    return s.detach().into();
                }
                Ok(Ok(Read::Spec(spec, auth))) => (spec, auth),
            };
        if let Some(auth) = auth {
            Keys {
                gate: refresh.gate.clone(),
                auth,
            }
            .install();
        }
        if spec == *s.spec() {
            tracing::info!("the spec read again is the one in effect: nothing to apply");
            return s.refreshed(spec).into();
        }
        self.spec_arrived(&spec);
        let work = start::reconfigure(
            self.env.clone(),
            spec.clone(),
            start::Serving::of(s.postgres()),
            crate::catalog::PlanContext::Reconcile,
        );
        match interruptible(&mut self.events, &mut self.facts.refresh, here, work).await {
            Ok(Ok(pending_restart)) => {
                tracing::info!("the refreshed spec is applied");
                self.facts.pending_restart = pending_restart;
                s.refreshed(spec).into()
            }
            Ok(Err(e)) => {
                if let Some(status) = super::exit_of(s.postgres_mut()).await {
                    return s.postgres_exited(status).into();
                }
                let error = format!("applying the refreshed spec: {e:#}");
                tracing::error!("{error}; trying again in {PAUSE:?}");
                s.retry(error).into()
            }
            Err(termination) => s.terminate(termination).into(),
        }
    }
}

/// Reads the source and checks its spec as `/configure` would check it
/// for this running compute (`current`).
async fn read(refresh: &RefreshSource, current: &ValidSpec, env: &super::Env) -> Result<Read> {
    let pulled = refresh.source.fetch().await?;
    let Some(spec) = pulled.spec else {
        return Ok(Read::Detached);
    };
    spec.check_change_from(current)?;
    env.check_spec(&spec).await?;
    // A `tls` the launch did not have is taken (the first one stands).
    env.params
        .edge
        .adopt(pulled.compute_ctl_config.as_ref())
        .context("compute_ctl_config.tls")?;
    let auth = match &pulled.compute_ctl_config {
        Some(config) => Some(
            Authenticator::from_config(Some(config), refresh.compute_id.as_deref())
                .context("compute_ctl_config.jwks")?,
        ),
        None => None,
    };
    Ok(Read::Spec(Arc::new(spec), auth))
}
