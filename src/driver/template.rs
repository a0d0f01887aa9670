//! The local template, finished once rather than at every start.
//!
//! A primary's start gives its cluster the privileged role, runs the
//! migrations and gives template1 the role's default privileges (see
//! `catalog::start`). On local storage every start copies the same initdb
//! template, so that work would be done again each time, on the start's
//! critical path (about 75 ms of a cold start). Instead the template gets it
//! when it is made: postgres is started on the fresh initdb tree, on a
//! private socket and no TCP, `catalog::finish_template` runs, postgres
//! stops with its shutdown checkpoint, and only then is the template
//! stamped and published (see `pgdata::ensure_template`). A start from it
//! still checks each step and finds it done. The template also gets empty
//! spare databases, which a start renames instead of creating databases
//! (see `catalog::spare_db`). The template's key names the privileged role,
//! a hash of every migration and the spares, so a new migration, another
//! `--privileged-role-name` or another count of spares makes a new template.

use super::Params;
use crate::catalog;
use crate::connect::Connector;
use crate::pgdata::{self, Finish};
use crate::postgres::Postgres;
use anyhow::{Context, Result};
use compute_states::TerminationMode;
use std::path::PathBuf;

/// The finished template for these parameters, made (and finished) when
/// the cache has none.
pub(crate) async fn ensure(params: &Params) -> Result<PathBuf> {
    let finish = Finish {
        key: format!(
            "{} {}",
            catalog::template_finish_key(&params.privileged_role),
            catalog::spare_db::template_key()
        ),
        run: |dir: PathBuf| finish(params, dir),
    };
    pgdata::ensure_template(
        &params.pgbin,
        &params.superuser,
        &params.template_cache,
        params.run_as.as_ref(),
        finish,
    )
    .await
}

/// Starts postgres on the fresh template `dir` (reachable only through a
/// socket in a private directory: initdb's authentication is `trust`),
/// finishes its catalog, and stops it cleanly.
async fn finish(params: &Params, dir: PathBuf) -> Result<()> {
    let owner = params.run_as.as_ref();
    let socket_dir = private_socket_dir(params)?;
    let socket = socket_dir.path().to_string_lossy().into_owned();
    let port = params.port.to_string();
    let settings = [
        ("listen_addresses", ""),
        ("unix_socket_directories", socket.as_str()),
        ("port", port.as_str()),
        // The template is made durable as a whole once stopped (syncfs).
        ("fsync", "off"),
        ("autovacuum", "off"),
    ];
    let pg = Postgres::start_with(&params.pgbin, &dir, owner, params.start_timeout, &settings)
        .await
        .context("starting postgres on the new template")?;
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(socket_dir.path())
        .port(params.port)
        .user(&params.superuser)
        .dbname("postgres");
    let connector = Connector::new(config).with_privileged_role(&params.privileged_role);
    let finished = async {
        catalog::finish_template(&connector).await?;
        catalog::spare_db::make_in_template(&connector).await
    }
    .await;
    let stopped = pg.stop(TerminationMode::Fast, &params.pgbin).await;
    finished?;
    let stopped = stopped.context("stopping postgres on the new template")?;
    anyhow::ensure!(
        stopped.checkpoint().is_some(),
        "postgres on the new template did not stop with a shutdown checkpoint"
    );
    // What that run leaves that a never-started cluster has not: its
    // command line and its statistics.
    // The tree is still postgres': names in it are not followed.
    let tree = crate::safe_fs::Dir::open(&dir)?;
    let _ = nix::unistd::unlinkat(
        tree.fd(),
        "postmaster.opts",
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    if let Some(stats) = tree.open_dir("pg_stat")? {
        stats.remove_files()?;
    }
    tracing::info!("template finished: privileged role, migrations, template1, spare databases");
    Ok(())
}

/// A fresh directory only postgres' user can enter (mode 0700, owned by
/// it), removed when dropped; under the temporary directory, a short path
/// (a socket's path is limited to about 100 bytes).
fn private_socket_dir(params: &Params) -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("cc-tpl-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .context("creating the socket directory of the template's postgres")?;
    if let Some(u) = params.run_as.as_ref() {
        u.chown(dir.path())?;
    }
    Ok(dir)
}
