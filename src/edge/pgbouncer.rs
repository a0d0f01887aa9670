//! pgbouncer, tuned from the spec, and run by compute_ctl with
//! `--pgbouncer`.
//!
//! Each spec that reaches the compute (and each TLS rotation) is applied
//! once: its `pgbouncer_settings`, and the TLS keys when TLS is on (even
//! without `pgbouncer_settings`, where the reference does nothing), are set
//! in the `[pgbouncer]` section of the ini, its comments and order kept
//! (`ini.rs`), and pgbouncer reloads. A pgbouncer the deployment runs is
//! told `RELOAD` on its admin console (`PGBOUNCER_PASSWORD`, never logged),
//! with a bounded retry; a failure is logged and counted, and tried again
//! at the next change. With `--pgbouncer`, compute_ctl writes the ini itself
//! from the image's defaults (`--pgbouncer-defaults`) with the pool pointed
//! at postgres' socket, runs pgbouncer as postgres' user, reloads it with
//! SIGHUP, restarts it when it exits (with a backoff), and stops it when
//! compute_ctl ends.

use super::{ini, Edge};
use crate::driver::Handle;
use crate::process::{Child, LogAs, Options, RunAs};
use crate::safe_fs::Dir;
use crate::secret::Secret;
use crate::spec::ValidSpec;
use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the spec in effect is looked at.
const POLL: Duration = Duration::from_millis(250);
/// Attempts on the admin console, one second apart (the reference's 4).
const ADMIN_ATTEMPTS: u32 = 4;
/// The longest wait before a restart of an exited pgbouncer.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// A pgbouncer that ran this long had a good run: the backoff starts over.
const GOOD_RUN: Duration = Duration::from_secs(30);

/// Where pgbouncer's ini is and who runs pgbouncer.
#[derive(Debug, Clone, Default)]
pub struct PgbouncerConfig {
    /// The ini file the settings go into.
    pub ini: PathBuf,
    /// Run by compute_ctl (`--pgbouncer`).
    pub supervised: Option<Supervised>,
    /// The admin console's password of a pgbouncer the deployment runs.
    pub admin_password: Option<Secret>,
}

/// What running pgbouncer needs.
#[derive(Debug, Clone)]
pub struct Supervised {
    /// The image's defaults, the ini is written from.
    pub defaults: PathBuf,
    /// The program.
    pub bin: PathBuf,
    /// Postgres' user, which pgbouncer runs as.
    pub run_as: Option<RunAs>,
    /// Postgres' socket directory and port: where the pool connects.
    pub socket_dir: PathBuf,
    /// Postgres' port.
    pub port: u16,
    /// The superuser, pgbouncer's `auth_user` (trusted on the socket).
    pub superuser: String,
}

/// What `/status` shows of pgbouncer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PgbouncerStatus {
    /// Run by compute_ctl.
    pub supervised: bool,
    /// The pid of the pgbouncer compute_ctl runs, while it runs.
    pub pid: Option<i32>,
    /// Restarts after it exited on its own.
    pub restarts: u64,
    /// Configurations applied (written and reloaded).
    pub applied: u64,
    /// Configurations that failed to apply.
    pub failures: u64,
    /// Why the last one failed; null once one applies.
    pub last_error: Option<String>,
}

/// The running task; [`Pgbouncer::stop`] ends it (and the pgbouncer it runs).
pub struct Pgbouncer {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Pgbouncer {
    /// Stops the task and the pgbouncer it runs, within `budget`.
    pub async fn stop(self, budget: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(budget + Duration::from_secs(1), self.task)
            .await
            .is_err()
        {
            tracing::warn!("pgbouncer's task did not end in time");
        }
    }
}

/// Starts the task: none when there is nothing to do (no `--pgbouncer`
/// and a spec never names pgbouncer: each spec is still looked at).
pub fn spawn(edge: Arc<Edge>, pgdata: PathBuf, handle: Handle, budget: Duration) -> Pgbouncer {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut run = Run {
            edge,
            pgdata,
            child: None,
            started: Instant::now(),
            backoff: Duration::from_millis(250),
            restart_at: None,
        };
        let mut applied: Option<(usize, u64)> = None;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                status = wait_child(&mut run.child) => run.exited(status),
                _ = tick.tick() => {
                    let Some(spec) = handle.snapshot().spec else { continue };
                    let rotations = run.edge.status().tls.map_or(0, |t| t.rotations);
                    let now = (Arc::as_ptr(&spec) as usize, rotations);
                    let restart_due = run.restart_at.is_some_and(|t| Instant::now() >= t);
                    if applied == Some(now) && !restart_due {
                        continue;
                    }
                    match run.apply(&spec).await {
                        Ok(true) => applied = Some(now),
                        Ok(false) => {}
                        Err(e) => {
                            // Tried again at the next change.
                            applied = Some(now);
                            run.failed(&e);
                        }
                    }
                }
            }
        }
        run.shutdown(budget).await;
    });
    Pgbouncer { stop, task }
}

async fn wait_child(child: &mut Option<Child>) -> Result<std::process::ExitStatus> {
    match child {
        Some(c) => c.wait().await,
        None => std::future::pending().await,
    }
}

struct Run {
    edge: Arc<Edge>,
    pgdata: PathBuf,
    child: Option<Child>,
    started: Instant,
    backoff: Duration,
    restart_at: Option<Instant>,
}

impl Run {
    fn config(&self) -> &PgbouncerConfig {
        &self.edge.pgbouncer
    }

    /// Applies `spec`; false when there was nothing to do yet.
    async fn apply(&mut self, spec: &ValidSpec) -> Result<bool> {
        let mut settings = spec
            .pgbouncer_settings
            .as_ref()
            .map(|s| s.0.clone())
            .unwrap_or_default();
        if self.edge.tls_for(&spec.features).is_some() {
            // The copies in PGDATA: postgres' user reads them, and they
            // follow each rotation.
            let path = |name: &str| self.pgdata.join(name).display().to_string();
            settings.push(("client_tls_cert_file".into(), path(super::tls::CERT_NAME)));
            settings.push(("client_tls_key_file".into(), path(super::tls::KEY_NAME)));
            settings.push(("client_tls_sslmode".into(), "allow".into()));
        }
        let config = self.config().clone();
        match &config.supervised {
            Some(sup) => {
                if self.child.is_none() && self.restart_at.is_some_and(|t| Instant::now() < t) {
                    return Ok(false);
                }
                let text = std::fs::read_to_string(&sup.defaults)
                    .with_context(|| format!("reading {}", sup.defaults.display()))?;
                let pool = format!(
                    "host={} port={} auth_user={} application_name=pgbouncer",
                    sup.socket_dir.display(),
                    sup.port,
                    sup.superuser
                );
                let text = ini::set(&text, "databases", &[("*".into(), pool)])?;
                let text = ini::set(&text, "pgbouncer", &settings).context("pgbouncer_settings")?;
                write_ini(&config.ini, &text, Some((0o644, (0, 0))))?;
                match &self.child {
                    Some(child) => child.signal(Signal::SIGHUP),
                    None => self.start(sup, &config.ini)?,
                }
            }
            None => {
                if settings.is_empty() {
                    return Ok(true);
                }
                let text = read_ini(&config.ini)?;
                let text = ini::set(&text, "pgbouncer", &settings).context("pgbouncer_settings")?;
                write_ini(&config.ini, &text, None)?;
                reload_over_admin(&text, config.admin_password.as_ref()).await?;
            }
        }
        let mut status = self.edge.status.write();
        let p = status.pgbouncer.get_or_insert_with(Default::default);
        p.applied += 1;
        p.last_error = None;
        Ok(true)
    }

    fn start(&mut self, sup: &Supervised, ini: &Path) -> Result<()> {
        let mut cmd = tokio::process::Command::new(&sup.bin);
        cmd.arg(ini);
        crate::process::run_as(&mut cmd, sup.run_as.as_ref());
        let mut child = Child::spawn(&mut cmd, Options::HELPER, LogAs(log_line))
            .context("starting pgbouncer")?;
        child.follow_stdout(LogAs(log_line));
        tracing::info!(pid = child.pid(), "pgbouncer started");
        self.set_pid(Some(child.pid()));
        self.child = Some(child);
        self.started = Instant::now();
        self.restart_at = None;
        Ok(())
    }

    fn exited(&mut self, status: Result<std::process::ExitStatus>) {
        let tail = self
            .child
            .take()
            .map(|c| c.tail().text())
            .unwrap_or_default();
        if self.started.elapsed() > GOOD_RUN {
            self.backoff = Duration::from_millis(250);
        }
        tracing::warn!(
            restart_in_ms = self.backoff.as_millis() as u64,
            "pgbouncer exited ({}); its last lines: {tail}",
            match status {
                Ok(s) => s.to_string(),
                Err(e) => format!("{e:#}"),
            }
        );
        self.restart_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.set_pid(None);
        let mut status = self.edge.status.write();
        status
            .pgbouncer
            .get_or_insert_with(Default::default)
            .restarts += 1;
    }

    fn failed(&self, e: &anyhow::Error) {
        tracing::error!("pgbouncer's configuration not applied: {e:#}");
        let mut status = self.edge.status.write();
        let p = status.pgbouncer.get_or_insert_with(Default::default);
        p.failures += 1;
        p.last_error = Some(format!("{e:#}"));
    }

    fn set_pid(&self, pid: Option<i32>) {
        let mut status = self.edge.status.write();
        let p = status.pgbouncer.get_or_insert_with(Default::default);
        p.supervised = true;
        p.pid = pid;
    }

    /// SIGTERM (pgbouncer's immediate shutdown), then the group killed at
    /// the end of `budget`.
    async fn shutdown(&mut self, budget: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        child.signal(Signal::SIGTERM);
        if tokio::time::timeout(budget, child.wait()).await.is_err() {
            tracing::warn!("pgbouncer did not stop in {budget:?}: killed");
            child.kill_group();
            let _ = child.wait().await;
        }
        tracing::info!("pgbouncer stopped");
        self.set_pid(None);
    }
}

fn log_line(line: &str) {
    tracing::info!(target: "pgbouncer", "{line}");
}

/// The ini of a pgbouncer the deployment runs, read without following a
/// symlink (its directory may be a volume postgres' user writes).
fn read_ini(path: &Path) -> Result<String> {
    let (dir, name) = split(path)?;
    Dir::open(dir)?
        .read_string(name)?
        .with_context(|| format!("{} does not exist", path.display()))
}

/// Replaces the ini: with `mode_owner`, or else the mode and owner the
/// file has (the reference leaves both as they are).
fn write_ini(path: &Path, text: &str, mode_owner: Option<(u32, (u32, u32))>) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (dir, name) = split(path)?;
    let dir = Dir::open(dir)?;
    let (mode, owner) = match mode_owner {
        Some(m) => m,
        None => {
            let meta = std::fs::symlink_metadata(path)
                .with_context(|| format!("stat of {}", path.display()))?;
            (meta.mode() & 0o777, (meta.uid(), meta.gid()))
        }
    };
    dir.replace(name, text.as_bytes(), mode, Some(owner))
        .with_context(|| format!("writing {}", path.display()))
}

fn split(path: &Path) -> Result<(&Path, &str)> {
    match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(dir), Some(name)) => Ok((dir, name)),
        _ => bail!("{} names no file", path.display()),
    }
}

/// `RELOAD` on the admin console of a pgbouncer the deployment runs (the
/// reference's connection: `postgres@localhost` with `PGBOUNCER_PASSWORD`,
/// on the ini's `listen_port`), [`ADMIN_ATTEMPTS`] times a second apart.
async fn reload_over_admin(ini_text: &str, password: Option<&Secret>) -> Result<()> {
    let port = ini::get(ini_text, "pgbouncer", "listen_port")
        .and_then(|p| p.trim_matches('"').parse().ok())
        .unwrap_or(6432u16);
    let mut config = tokio_postgres::Config::new();
    config
        .host("localhost")
        .port(port)
        .dbname("pgbouncer")
        .user("postgres")
        .connect_timeout(Duration::from_secs(5));
    if let Some(p) = password {
        config.password(p.expose());
    }
    let mut last = None;
    for attempt in 1..=ADMIN_ATTEMPTS {
        match config.connect(tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                let driver = tokio::spawn(conn);
                let reloaded = client.simple_query("RELOAD").await;
                drop(client);
                let _ = driver.await;
                return reloaded
                    .map(|_| ())
                    .context("RELOAD on pgbouncer's admin console");
            }
            Err(e) => {
                tracing::warn!(
                    attempt,
                    "connecting to pgbouncer's admin console (localhost:{port}): {e}"
                );
                last = Some(e);
            }
        }
        if attempt < ADMIN_ATTEMPTS {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Err(anyhow::anyhow!(
        "pgbouncer's admin console on localhost:{port} did not answer: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}
