//! Which spec the driver takes: a spec is checked for this postgres (its
//! settings), for the compute it would change (what a running compute cannot
//! change) and, for a running primary, planned on its catalog (a dry run),
//! all before it is accepted, so that a bad spec is a 400 that changes nothing.

use super::{Driver, RequestError, Snapshot};
use crate::spec::ValidSpec;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long the dry-run plan of a spec for a running compute may take
/// before the spec is accepted unchecked (the driver answers only pings
/// meanwhile).
const PLAN_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

impl Driver {
    /// Validates a spec for this postgres (and, for a running compute, against
    /// the spec it runs: `running`); a bad one is answered 400 and changes nothing.
    pub(super) async fn accept_spec(
        &mut self,
        spec: &ValidSpec,
        running: Option<&ValidSpec>,
        applied: bool,
        reply: oneshot::Sender<Result<Snapshot, RequestError>>,
    ) -> Option<oneshot::Sender<Result<Snapshot, RequestError>>> {
        let checked = match running {
            Some(current) => spec.check_change_from(current),
            None => Ok(()),
        };
        let checked = match checked {
            Ok(()) => {
                let env = self.env.clone();
                let check = env.check_spec(spec);
                self.events
                    .answering_pings(check)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        let checked = match (checked, running) {
            (Ok(()), Some(current)) => self.planner_refusal(spec, current, applied).await,
            (checked, _) => checked,
        };
        match checked {
            Ok(()) => Some(reply),
            Err(e) => {
                let _ = reply.send(Err(RequestError::BadSpec(e)));
                None
            }
        }
    }

    /// A spec for a running primary is planned on its catalog before it is
    /// accepted (a dry run), so a spec the planner refuses (a protected
    /// role, an unknown owner, a delta on template1) is a 400 before anything
    /// is written, and the compute keeps running as it was.
    ///
    /// Not when the spec moves the compute to other storage: on Neon storage
    /// no SQL may precede the reload of a new pageserver (the old one may be
    /// gone), so that spec is planned after its reload, as every spec also is.
    /// A catalog that cannot be read in time is not the spec's fault: the
    /// spec is accepted, and the reconfiguration reports what happens.
    ///
    /// Nor when the catalog's part of the spec (roles, databases, delta
    /// operations) is the one `current` was `applied` with: the planner took
    /// it on this catalog already, so a settings-only change costs no dry
    /// run (a connection and a read of the catalog). Its catalog check
    /// after the reload still reports a catalog changed by hand since.
    async fn planner_refusal(
        &mut self,
        spec: &ValidSpec,
        current: &ValidSpec,
        applied: bool,
    ) -> Result<(), String> {
        let moves = spec.pageserver_connstring != current.pageserver_connstring
            || spec.safekeeper_connstrings != current.safekeeper_connstrings;
        if spec.mode != crate::spec::ComputeMode::Primary || spec.skip_pg_catalog_updates || moves {
            return Ok(());
        }
        if applied && !current.skip_pg_catalog_updates && spec.same_catalog_as(current) {
            return Ok(());
        }
        let connector = self.env.connector();
        let dry_run = tokio::time::timeout(
            PLAN_CHECK_TIMEOUT,
            crate::catalog::refusal(&connector, spec),
        );
        // Pings are answered meanwhile; everything else waits its turn.
        match self.events.answering_pings(dry_run).await {
            Ok(Ok(Some(why))) => Err(format!("the catalog cannot take this spec: {why}")),
            Ok(Ok(None)) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!("planning the new spec before accepting it: {e:#}");
                Ok(())
            }
            Err(_) => {
                tracing::warn!(
                    "planning the new spec took over {PLAN_CHECK_TIMEOUT:?}: accepted unchecked"
                );
                Ok(())
            }
        }
    }
}
