//! Why a local compute's catalog creates databases in bulk with `fsync`
//! lifted, and how it is put back.
//!
//! On local storage PGDATA lives as long as this process: every start
//! removes it and makes it again from the template, so no file postgres
//! writes there is read by a later compute. An fsync protects data from a
//! crash of the machine (the page cache lost); a crash of postgres alone
//! loses no page cache, and after a crash of the machine the next start
//! begins from a clean slate anyway. The syncs of a bulk creation (each
//! copy of template1 and its checkpoints with `STRATEGY FILE_COPY`, the
//! WAL flush of each creation's commit, the commits in each new database
//! after it) therefore keep nothing that would otherwise be lost, and they
//! are most of its time: measured on a journaled ext4, 1000 roles and 50
//! databases at a start took 1500 ms with them and 346 ms without
//! (`cargo bench --bench catalog`).
//!
//! So around an apply that creates at least `catalog::BULK_CREATIONS`
//! databases the override file (included last in `postgresql.conf`) says
//! `fsync=off`, by a reload confirmed before the first statement; after the
//! apply, failed or not, the override is emptied and a second reload
//! confirmed, so the compute serves with the `fsync` it had. A running
//! compute's bulk creations are then file copies (`STRATEGY FILE_COPY`,
//! whose checkpoints sync nothing with `fsync` off), as a start's are. A spec (or its
//! `postgresql_conf`) that sets `fsync` itself keeps it as it says: the lift
//! is only for a compute on postgres' default. Neon storage is never
//! lifted: there the durability is the safekeepers', and `fsync` is the
//! control plane's to set (its computes run with it off).

use crate::catalog::BulkApply;
use crate::config;
use crate::connect::{Connection, Connector};
use crate::spec::{Storage, ValidSpec};
use anyhow::Context as _;
use futures_util::future::BoxFuture;
use std::path::Path;
use tokio_postgres::Client;

/// Whether postgres runs on its default `fsync` (on, set by no file): one
/// round trip, no page read.
const FSYNC_ON_BY_DEFAULT: &str = "SELECT setting = 'on' AND source = 'default' \
     FROM pg_catalog.pg_settings WHERE name = 'fsync'";

/// The lift of `fsync` around a local compute's bulk apply (see the module
/// doc), for the postmaster `postmaster` on `pgdata`.
pub(super) struct FsyncLift<'a> {
    pgdata: &'a Path,
    connector: &'a Connector,
    postmaster: i32,
}

impl<'a> FsyncLift<'a> {
    /// The lift for a compute on local storage; None on any other (see the
    /// module doc).
    pub(super) fn on_local(
        spec: &ValidSpec,
        pgdata: &'a Path,
        connector: &'a Connector,
        postmaster: i32,
    ) -> Option<Self> {
        matches!(spec.storage(), Storage::Local).then_some(FsyncLift {
            pgdata,
            connector,
            postmaster,
        })
    }

    /// A reload confirmed on `conn`, given back; without one, on a backend
    /// opened after the signal (as every reload is: see
    /// `config::reload_and_wait`), closed after.
    async fn reload(&self, conn: Option<Connection>) -> anyhow::Result<Option<Connection>> {
        let given = conn.is_some();
        let db = self.connector.maintenance_db();
        let reloaded =
            config::reload_confirmed_on(self.connector, db, self.postmaster, conn).await?;
        let conn = reloaded.session.connection;
        if given {
            Ok(Some(conn))
        } else {
            conn.close().await;
            Ok(None)
        }
    }
}

impl BulkApply for FsyncLift<'_> {
    fn lifts<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            let row = client
                .query_one(FSYNC_ON_BY_DEFAULT, &[])
                .await
                .context("reading postgres' fsync")?;
            let default = row.get::<_, bool>(0);
            if !default {
                tracing::debug!("fsync is set by the configuration: a bulk apply keeps it");
            }
            Ok(default)
        })
    }

    fn lift(&self, conn: Option<Connection>) -> BoxFuture<'_, anyhow::Result<Option<Connection>>> {
        Box::pin(async move {
            if let Err(e) = config::lift_fsync(self.pgdata) {
                if let Some(conn) = conn {
                    conn.close().await;
                }
                return Err(e);
            }
            match self.reload(conn).await {
                Ok(conn) => {
                    tracing::info!(
                        "fsync lifted for the apply: its databases are made on a PGDATA \
                         that does not outlive this compute"
                    );
                    Ok(conn)
                }
                Err(e) => {
                    // Not lifted after all: the file as it was, and postgres
                    // told so if it took it.
                    let e = e.context("reloading with fsync lifted");
                    if let Err(again) = self.put_back(None).await {
                        tracing::warn!("{again:#}");
                    }
                    Err(e)
                }
            }
        })
    }

    fn restore(
        &self,
        conn: Option<Connection>,
    ) -> BoxFuture<'_, anyhow::Result<Option<Connection>>> {
        Box::pin(self.put_back(conn))
    }
}

impl FsyncLift<'_> {
    /// The override emptied and its reload confirmed (on `conn`, given back,
    /// when there is one).
    async fn put_back(&self, conn: Option<Connection>) -> anyhow::Result<Option<Connection>> {
        let put_back = async {
            if let Err(e) = config::empty_override(self.pgdata) {
                if let Some(conn) = conn {
                    conn.close().await;
                }
                return Err(e);
            }
            let conn = self.reload(conn).await?;
            tracing::info!("fsync put back after the apply");
            anyhow::Ok(conn)
        };
        put_back.await.context("putting fsync back after the apply")
    }
}
