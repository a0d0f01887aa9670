//! Why an apply that creates databases in bulk may be wrapped: what its
//! caller lifts for it and puts back after it, without the catalog knowing
//! what that is.
//!
//! A database creation is dominated by postgres writing and syncing files
//! (a copy of template1, then its commit's WAL flush), and so are the
//! connections and commits in each new database after it. On local
//! storage those syncs protect nothing (PGDATA is made again at every
//! start, see `driver::bulk`), so the driver lifts `fsync` around such an
//! apply; on Neon storage the compute's files are a cache and its durability
//! is the safekeepers', whose spec says what `fsync` is. The catalog only
//! decides *when* (a plan that creates at least [`BULK_CREATIONS`]
//! databases) and calls the hooks on the maintenance connection it holds,
//! so that the lift and its restore cost no backend of their own. It asks
//! before it plans whether such an apply would be lifted ([`lifting`]), so
//! that a running compute's creations are planned for it (file copies:
//! see `PlanContext::ReconcileUnsynced`).

use super::plan::Plan;
use crate::connect::Connection;
use crate::spec::ValidSpec;
use futures_util::future::BoxFuture;
use tokio_postgres::Client;

/// The fewest database creations in one plan for which the apply is
/// wrapped in the caller's [`BulkApply`]: one creation's syncs cost less
/// than the two reloads a lift and its restore take (a few milliseconds
/// each).
pub const BULK_CREATIONS: usize = 2;

/// What a caller does around an apply that creates databases in bulk.
///
/// Each hook takes the apply's idle maintenance connection when there is
/// one (to confirm a reload on, say) and gives back what it was given:
/// the same connection, or none. The restore runs after a failed apply
/// too; the apply's error is then the one reported.
pub(crate) trait BulkApply: Send + Sync {
    /// Whether an apply that creates databases in bulk would be lifted,
    /// asked on the maintenance connection before the plan (say, no when
    /// the configuration sets what would be lifted).
    fn lifts<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, anyhow::Result<bool>>;

    /// Before the apply, when [`BulkApply::lifts`] said so: lifts.
    fn lift(&self, conn: Option<Connection>) -> BoxFuture<'_, anyhow::Result<Option<Connection>>>;

    /// After the apply (when it was lifted): puts it back.
    fn restore(
        &self,
        conn: Option<Connection>,
    ) -> BoxFuture<'_, anyhow::Result<Option<Connection>>>;
}

/// Whether `plan` is a bulk apply: it creates at least [`BULK_CREATIONS`]
/// databases.
pub(super) fn is_bulk(plan: &Plan) -> bool {
    plan.steps.iter().filter(|s| s.creates_database()).count() >= BULK_CREATIONS
}

/// `bulk`, if an apply of `spec` that creates databases in bulk would be
/// lifted by it (asked on `client`); none when the spec names too few
/// databases to create that many, without asking.
pub(super) async fn lifting<'a>(
    bulk: Option<&'a dyn BulkApply>,
    client: &Client,
    spec: &ValidSpec,
) -> anyhow::Result<Option<&'a dyn BulkApply>> {
    match bulk {
        Some(hooks) if spec.cluster.databases.len() >= BULK_CREATIONS => {
            Ok(hooks.lifts(client).await?.then_some(hooks))
        }
        _ => Ok(None),
    }
}
