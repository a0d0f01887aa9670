//! The work the driver does in its states: start a compute from a clean
//! slate (local template, Neon storage, or a vanilla replica's primary), and
//! reconfigure a running one.

use super::bulk::FsyncLift;
use super::{Env, Timings};
use crate::catalog;
use crate::config;
use crate::pgdata;
use crate::postgres::Postgres;
use crate::secret::Secret;
use crate::spec::{ComputeMode, Storage, ValidSpec};
use crate::storage;
use anyhow::{Context, Result};
use compute_states::TerminationMode;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// From a clean slate to a running, reconciled postgres. The spec was
/// checked for this postgres when it was accepted (`Env::check_spec`).
pub(super) async fn start_compute(
    env: Arc<Env>,
    spec: Arc<ValidSpec>,
    mut timings: Timings,
) -> Result<(Postgres, Timings)> {
    let began = Instant::now();
    let params = &env.params;
    let owner = params.run_as.as_ref();
    let mut next_spare = None;
    // Beside PGDATA: remote extensions' control files and preload libraries.
    let extensions = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
        params.remote_extensions.clone().before_start(spec.clone()),
    ));
    match spec.storage() {
        Storage::Local => next_spare = prepare_local(&env, &spec).await?,
        Storage::Neon {
            pageserver,
            tenant,
            timeline,
        } => {
            let remote = Remote {
                pageserver,
                tenant,
                timeline,
            };
            prepare_neon(&env, &spec, remote, &mut timings).await?
        }
        Storage::Primary(primary) => prepare_replica_of(&env, &spec, primary, &mut timings).await?,
    }
    tracing::info!(ms = began.elapsed().as_millis() as u64, "PGDATA prepared");
    let ext = extensions.await.context("remote extensions")??;
    (timings.load_ext_ms, timings.num_ext_downloaded) = (ext.load_ms, ext.downloaded);
    (timings.largest_ext_size, timings.total_ext_download_size) = (ext.largest, ext.total);
    let size_limit_lifted = lifts_size_limit(&spec);
    if size_limit_lifted {
        // In the files postgres starts with: no reload before the apply.
        config::lift_size_limit(&params.pgdata)?;
    }
    let pg_began = Instant::now();
    let mut pg = Postgres::start(
        &params.pgbin,
        &params.pgdata,
        owner,
        params.start_timeout,
        spec.storage_auth_token.as_ref(),
    )
    .instrument(tracing::info_span!("start_postgres"))
    .await?
    .with_stop_timeout(params.stop_timeout);
    timings.start_postgres_ms = pg_began.elapsed().as_millis() as u64;

    let config_began = Instant::now();
    if spec.mode == ComputeMode::Primary {
        let connector = env.connector();
        // A local start's PGDATA is a fresh copy of the finished template.
        let origin = match spec.storage() {
            Storage::Local => catalog::Origin::FinishedTemplate,
            _ => catalog::Origin::Unknown,
        };
        let concurrency = catalog::Concurrency::ShareOfMaxConnections;
        let lift = FsyncLift::on_local(&spec, &params.pgdata, &connector, pg.pid());
        let bulk = lift.as_ref().map(|l| l as &dyn catalog::BulkApply);
        // The connection the catalog step ran on serves what follows it.
        let idle = match catalog::start_on(&connector, None, &spec, concurrency, origin, bulk)
            .instrument(tracing::info_span!("apply_catalog"))
            .await
        {
            Ok((_, idle)) => idle,
            Err(e) => {
                let e = e.context("applying the spec to the catalog");
                if let Some(why) = super::death_of(&mut pg).await {
                    return Err(anyhow::anyhow!("{e:#}; {why}"));
                }
                let _ = pg.stop(TerminationMode::Immediate, &params.pgbin).await;
                return Err(e);
            }
        };
        let after = after_catalog(&env, &spec, &connector, idle, pg.pid(), size_limit_lifted);
        after.await?;
        catalog::spawn_extension_count(&connector);
    } else {
        tracing::info!(mode = ?spec.mode, "read-only compute: the catalog follows the primary");
    }
    timings.config_ms = config_began.elapsed().as_millis() as u64;
    timings.total_startup_ms = began.elapsed().as_millis() as u64;
    tracing::info!(?timings, "compute is running");
    // Now that the start is done: the copy no longer competes with it. Not
    // waited for; at exit, given up to a second (see launch).
    if let Some(next) = next_spare {
        let _maker = next.make_in_background();
    }
    Ok((pg, timings))
}

/// What a primary's start does after its catalog step, on `idle` (the
/// connection the step ran on, if it gave one back): the neon extension on
/// Neon storage; then the subscribers the step held back released and the
/// size limit put back, in one reload confirmed on that connection (a
/// backend forked for it when there is none).
async fn after_catalog(
    env: &Env,
    spec: &ValidSpec,
    connector: &crate::connect::Connector,
    mut idle: Option<crate::connect::Connection>,
    postmaster: i32,
    size_limit_lifted: bool,
) -> anyhow::Result<()> {
    async fn close(idle: Option<crate::connect::Connection>) {
        if let Some(conn) = idle {
            conn.close().await;
        }
    }
    if matches!(spec.storage(), Storage::Neon { .. }) {
        let conn = match idle.take() {
            Some(conn) => conn,
            None => connector.open(connector.maintenance_db()).await?,
        };
        let create = !spec.skip_pg_catalog_updates;
        if let Err(e) = catalog::neon_extension::handle_on(&conn.client, create).await {
            conn.close().await;
            return Err(e.context("the neon extension"));
        }
        idle = Some(conn);
    }
    let pgdata = &env.params.pgdata;
    // The copied subscriptions are gone: their workers may run now.
    // (With `skip_pg_catalog_updates` they were not dropped: still held.)
    let held = env.config_params(spec).hold_subscribers && !spec.skip_pg_catalog_updates;
    if held {
        env.subscribers_released
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = config::write(pgdata, spec, &env.config_params(spec)) {
            close(idle).await;
            return Err(e);
        }
    }
    if size_limit_lifted {
        // Its reload takes the released subscribers too.
        config::restore_size_limit_on(pgdata, connector, postmaster, idle).await?;
    } else if held {
        let db = connector.maintenance_db();
        config::reload_and_wait_on(connector, db, postmaster, idle).await?;
    } else {
        close(idle).await;
    }
    Ok(())
}

/// Whether the catalog's apply runs with Neon's size limit lifted (see
/// [`config::SIZE_LIMIT_LIFTED`]): a primary on Neon storage that updates
/// its catalog. Local and vanilla computes have no such limit.
fn lifts_size_limit(spec: &ValidSpec) -> bool {
    spec.mode == ComputeMode::Primary
        && !spec.skip_pg_catalog_updates
        && matches!(spec.storage(), Storage::Neon { .. })
}

/// Local storage: a copy of the cached initdb template (a spare copy made
/// ahead of time and renamed into place, when there is one). Returns the
/// next spare to make, when spares are on.
async fn prepare_local(
    env: &Arc<Env>,
    spec: &Arc<ValidSpec>,
) -> Result<Option<pgdata::spare::NextSpare>> {
    let params = &env.params;
    let template = super::template::ensure(params)
        .await
        .context("preparing the initdb template")?;
    let (env, spec) = (env.clone(), spec.clone());
    tokio::task::spawn_blocking(move || {
        let params = &env.params;
        let owner = params.run_as.as_ref();
        let (_, next) =
            pgdata::from_template(&template, &params.pgdata, owner, params.spare_pgdata)?;
        config::write(&params.pgdata, &spec, &env.config_params(&spec))?;
        Ok(next)
    })
    .await
    .context("preparing PGDATA")?
}

/// Where a Neon compute's data is.
#[derive(Clone, Copy)]
struct Remote<'a> {
    pageserver: &'a str,
    tenant: &'a str,
    timeline: &'a str,
}

/// Neon storage, in the reference's order: wipe PGDATA, write
/// `postgresql.conf` (Neon's `postgres --sync-safekeepers` reads the
/// safekeepers, tenant and timeline from it), sync the safekeepers for the
/// commit LSN (primary), stream the basebackup into PGDATA, and write the
/// configuration again over the archive's.
///
/// The basebackup unpacks into an empty directory only (it refuses to write
/// a cluster over anything), so the configuration the sync read is removed
/// just before it.
async fn prepare_neon(
    env: &Arc<Env>,
    spec: &ValidSpec,
    remote: Remote<'_>,
    timings: &mut Timings,
) -> Result<()> {
    let params = &env.params;
    let owner = params.run_as.as_ref();
    let token = spec.storage_auth_token.clone();
    wipe(env).await?;
    config::write(&params.pgdata, spec, &env.config_params(spec))
        .context("writing the configuration for sync-safekeepers")?;
    let lsn = match spec.mode {
        ComputeMode::Primary => {
            let t = Instant::now();
            let synced = storage::sync_safekeepers(
                &params.pgbin,
                &params.pgdata,
                token.as_ref().map(Secret::expose),
                owner,
                &params.storage_backoff,
            )
            .instrument(tracing::info_span!("sync_safekeepers"))
            .await;
            let lsn = match synced {
                Ok(lsn) => lsn,
                Err(e) => {
                    // A failed start leaves an empty PGDATA, as a failed basebackup does.
                    if let Err(w) = wipe(env).await {
                        tracing::warn!("emptying PGDATA after the failed sync: {w:#}");
                    }
                    return Err(e.context("syncing safekeepers"));
                }
            };
            timings.sync_safekeepers_ms = t.elapsed().as_millis() as u64;
            tracing::info!(%lsn, ms = timings.sync_safekeepers_ms, "safekeepers synced");
            Some(lsn)
        }
        ComputeMode::Static(lsn) => Some(lsn),
        ComputeMode::Replica => None,
    };

    // The archive is unpacked path by path: PGDATA stays ours (postgres'
    // user cannot reach into it) until it is full, then it is handed over.
    // PGDATA's name sits in a directory postgres may write: the archive goes
    // in through the handle of the directory just made (`pinned_path`).
    let target = params.pgdata.clone();
    let dir = tokio::task::spawn_blocking(move || pgdata::wipe(&target, None))
        .await
        .context("wiping PGDATA")??;
    let request = storage::BasebackupRequest {
        pageserver_connstring: Secret::new(remote.pageserver),
        auth_token: token,
        tenant_id: remote.tenant,
        timeline_id: remote.timeline,
        lsn,
        replica: spec.mode != ComputeMode::Primary,
    };
    let stats = storage::basebackup(&request, &dir.pinned_path(), owner, &params.storage_backoff)
        .instrument(tracing::info_span!("basebackup"))
        .await
        .with_context(|| format!("getting the basebackup into {}", params.pgdata.display()))?;
    pgdata::hand_over(&dir, &params.pgdata, owner)?;
    timings.basebackup_ms = stats.duration.as_millis() as u64;
    timings.basebackup_bytes = stats.bytes;
    timings.pageserver_connect_micros = stats.connect_micros;
    tracing::info!(
        bytes = stats.bytes,
        ms = timings.basebackup_ms,
        attempts = stats.attempts,
        connect_micros = stats.connect_micros,
        "basebackup received"
    );
    config::write(&params.pgdata, spec, &env.config_params(spec))?;
    if spec.mode != ComputeMode::Primary {
        storage::create_standby_signal(&params.pgdata, owner)?;
    }
    Ok(())
}

/// A vanilla replica: `pg_basebackup` from the primary (which also writes
/// `standby.signal` and `primary_conninfo`).
async fn prepare_replica_of(
    env: &Arc<Env>,
    spec: &ValidSpec,
    primary: &str,
    timings: &mut Timings,
) -> Result<()> {
    let params = &env.params;
    let owner = params.run_as.as_ref();
    wipe(env).await?;
    let stats = storage::pg_basebackup(
        &params.pgbin,
        primary,
        &params.pgdata,
        owner,
        &params.storage_backoff,
    )
    .instrument(tracing::info_span!("pg_basebackup"))
    .await
    .context("copying the primary with pg_basebackup")?;
    timings.basebackup_ms = stats.duration.as_millis() as u64;
    timings.basebackup_bytes = stats.bytes;
    config::write(&params.pgdata, spec, &env.config_params(spec))
}

/// Empties PGDATA (0700, owned by the postgres user).
async fn wipe(env: &Arc<Env>) -> Result<()> {
    let env = env.clone();
    tokio::task::spawn_blocking(move || {
        pgdata::wipe(&env.params.pgdata, env.params.run_as.as_ref())
    })
    .await
    .context("wiping PGDATA")?
    .map(drop)
}

/// What a reconfiguration needs to know of the postgres it reconfigures.
pub(super) struct Serving {
    /// The postmaster's pid (the reload's SIGHUP goes to it).
    pub postmaster: i32,
    /// The storage token it was started with: postgres reads it only at start.
    pub storage_token: Option<Secret>,
}

impl Serving {
    pub(super) fn of(pg: &Postgres) -> Serving {
        Serving {
            postmaster: pg.pid(),
            storage_token: pg.storage_token().cloned(),
        }
    }
}

/// The name `pending_restart` gives a storage token postgres has not read.
pub(super) const STORAGE_TOKEN_PENDING: &str = "storage_auth_token";

/// Reconfigures a running postgres: new configuration files, the reload
/// (signalled before any SQL connection: see [`config::reload_and_wait`]),
/// then the catalog, as `context` says (a start's for a replica just
/// promoted: the whole catalog step of a primary's start; a dry run's plans
/// without applying). Returns the settings that need a
/// restart (with [`STORAGE_TOKEN_PENDING`] when the spec's storage token is
/// not the one postgres started with).
///
/// A configuration postgres rejects is replaced by the previous one, except
/// for the pageservers and safekeepers: those of the new spec stay (the old
/// ones may be gone; see [`config::keeping_storage_of`]).
pub(super) async fn reconfigure(
    env: Arc<Env>,
    spec: Arc<ValidSpec>,
    serving: Serving,
    context: catalog::PlanContext,
) -> Result<Vec<String>> {
    let began = Instant::now();
    let pgdata = &env.params.pgdata;
    let previous = ConfFiles::read(pgdata);
    config::write(pgdata, &spec, &env.config_params(&spec)).context("writing the configuration")?;
    // Lifted by the same reload as the new files, put back after the apply.
    let size_limit_lifted = lifts_size_limit(&spec);
    if size_limit_lifted {
        config::lift_size_limit(pgdata)?;
    }
    let written = Instant::now();
    let connector = env.connector();
    let db = connector.maintenance_db().to_string();
    let postmaster = serving.postmaster;
    let kept = env.reload_session.lock().take();
    let reloaded = config::reload_and_confirm(&connector, &db, postmaster, kept)
        .instrument(tracing::info_span!("reload"))
        .await;
    let confirmed = Instant::now();
    let (mut pending_restart, confirming, signalled, on_kept_session) = match reloaded {
        Ok(r) => (r.pending_restart, r.session, r.signalled, r.on_kept_session),
        Err(e) => {
            // A configuration postgres rejected must not stay on disk for a
            // later SIGHUP or restart to pick up: the previous one goes back
            // (with the new storage), and a reload takes back what postgres
            // applied of the rejected one.
            previous.restore(pgdata, &spec)?;
            if size_limit_lifted {
                config::empty_override(pgdata)?;
            }
            if let Err(again) = config::reload_and_wait(&connector, &db, postmaster).await {
                tracing::warn!("reloading the restored configuration: {again:#}");
            }
            return Err(e.context(
                "the previous configuration was restored, keeping the new spec's \
                 pageservers and safekeepers",
            ));
        }
    };
    if spec.storage_auth_token != serving.storage_token {
        pending_restart.push(STORAGE_TOKEN_PENDING.to_string());
        pending_restart.sort();
    }
    if !pending_restart.is_empty() {
        tracing::warn!(settings = ?pending_restart, "settings changed that need a restart to take effect");
    }
    // The session that confirmed the reload is kept for the next one unless
    // the catalog step sent DDL (then it was closed, to keep no database busy).
    let mut keep = None;
    if spec.mode == ComputeMode::Primary {
        let concurrency = spec.reconfigure_concurrency;
        let lift = FsyncLift::on_local(&spec, pgdata, &connector, postmaster);
        let bulk = lift.as_ref().map(|l| l as &dyn catalog::BulkApply);
        let applied = match context {
            // As at a start, on the backend that confirmed the reload.
            catalog::PlanContext::Start(origin) => {
                let concurrency = catalog::Concurrency::Fixed(concurrency);
                let conn = Some(confirming.connection);
                let applied = catalog::start_on(&connector, conn, &spec, concurrency, origin, bulk)
                    .instrument(tracing::info_span!("apply_catalog"))
                    .await;
                match applied {
                    Ok((report, conn)) => {
                        if let Some(conn) = conn {
                            conn.close().await;
                        }
                        catalog::spawn_extension_count(&connector);
                        Ok(report)
                    }
                    Err(e) => Err(e),
                }
            }
            // The backend that confirmed the reload reads the catalog (the
            // catalog itself tells a lifted bulk apply's plan apart).
            catalog::PlanContext::Reconcile | catalog::PlanContext::ReconcileUnsynced => {
                let (connection, key) = confirming.into_parts();
                catalog::reconcile_on(&connector, Some(connection), &spec, concurrency, bulk)
                    .instrument(tracing::info_span!("apply_catalog"))
                    .await
                    .map(|(report, back)| {
                        keep = back.map(|c| key.join(c));
                        report
                    })
            }
            // Planned, not applied: the catalog stays as it is.
            catalog::PlanContext::DryRun => {
                confirming.connection.close().await;
                catalog::dry_run(&connector, &spec)
                    .await
                    .map(|_| catalog::ApplyReport::default())
            }
        };
        if size_limit_lifted {
            // On a failed apply too; its error is the one to report.
            let restored = config::restore_size_limit(pgdata, &connector, postmaster).await;
            match restored {
                Err(e) if applied.is_err() => tracing::warn!("putting the size limit back: {e:#}"),
                restored => restored?,
            }
        }
        applied.context("applying the spec to the catalog")?;
    } else {
        keep = Some(confirming);
    }
    *env.reload_session.lock() = keep;
    let done = Instant::now();
    let ms = |from: Instant, to: Instant| (to - from).as_secs_f64() * 1e3;
    tracing::info!(
        ms = ms(began, done).round() as u64,
        write_ms = format_args!("{:.2}", ms(began, written)),
        signal_ms = format_args!("{:.2}", ms(written, signalled)),
        confirm_ms = format_args!("{:.2}", ms(signalled, confirmed)),
        catalog_ms = format_args!("{:.2}", ms(confirmed, done)),
        confirmed_on = %if on_kept_session { "kept_session" } else { "new_backend" },
        "compute reconfigured"
    );
    Ok(pending_restart)
}

/// The configuration files as they were before a reconfiguration.
struct ConfFiles(Vec<(&'static str, Option<String>)>);

impl ConfFiles {
    const NAMES: [&'static str; 2] = ["postgresql.conf", "pg_hba.conf"];

    fn read(pgdata: &std::path::Path) -> ConfFiles {
        // Never through a symlink postgres put there: its target would be restored into PGDATA.
        let dir = crate::safe_fs::Dir::open(pgdata).ok();
        let read = |n: &str| dir.as_ref()?.read_string(n).ok().flatten();
        ConfFiles(Self::NAMES.iter().map(|n| (*n, read(n))).collect())
    }

    /// Puts the files back as they were, but for the storage settings of
    /// postgresql.conf, which stay `spec`'s.
    fn restore(&self, pgdata: &std::path::Path, spec: &ValidSpec) -> Result<()> {
        for (name, text) in &self.0 {
            if let Some(text) = text {
                let text = match *name {
                    "postgresql.conf" => config::keeping_storage_of(text, spec),
                    _ => text.clone(),
                };
                config::write_atomic(&pgdata.join(name), &text)
                    .with_context(|| format!("restoring the previous {name}"))?;
            }
        }
        Ok(())
    }
}
