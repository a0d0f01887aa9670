//! The reload barrier: SIGHUP to the postmaster, then a backend asked until
//! it has the new files, so that what follows (a reconfiguration's answer,
//! its catalog check) sees the configuration just written. Apart from the
//! files' rendering in `config` because it is the one part that talks to a
//! running postgres.

use crate::connect::Connector;
use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};

/// How long to wait for postgres to take a reload into account.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// What a backend says of the configuration, in one round trip: when its
/// postmaster last loaded the files (microseconds since the epoch), the
/// settings pending a restart, the lines that keep postgres from loading the
/// files at all (syntax errors, then unknown settings: postgres then keeps
/// the old configuration and its load time stays), and the lines it
/// rejected (a value a setting cannot take: the rest is applied).
/// `pg_file_settings` parses the files as they are on disk now.
const RELOAD_STATE: &str = "\
    WITH pending AS (SELECT name FROM pg_catalog.pg_settings WHERE pending_restart), \
         errors AS (SELECT sourcefile, sourceline, name, error \
                    FROM pg_catalog.pg_file_settings \
                    WHERE error IS NOT NULL AND sourcefile IS NOT NULL \
                      AND (name IS NULL OR pg_catalog.lower(name) NOT IN (SELECT name FROM pending))) \
    SELECT (EXTRACT(epoch FROM pg_catalog.pg_conf_load_time()) * 1000000)::pg_catalog.int8, \
           ARRAY(SELECT name FROM pending ORDER BY name), \
           ARRAY(SELECT pg_catalog.format('%s:%s: %s', sourcefile, sourceline, error) \
                 FROM errors WHERE name IS NULL ORDER BY sourcefile, sourceline), \
           ARRAY(SELECT pg_catalog.format('%s (%s:%s)', name, sourcefile, sourceline) \
                 FROM errors WHERE error = 'unrecognized configuration parameter' \
                 ORDER BY sourcefile, sourceline), \
           ARRAY(SELECT pg_catalog.format('%s (%s:%s): %s', name, sourcefile, sourceline, error) \
                 FROM errors WHERE name IS NOT NULL \
                   AND error <> 'unrecognized configuration parameter' \
                 ORDER BY sourcefile, sourceline)";

/// Reloads postgres, then returns once a backend sees the new
/// configuration; lines postgres rejected are an error, and the settings
/// that need a restart are returned.
///
/// The reload is sent first, as `pg_ctl reload` does (SIGHUP to the
/// postmaster), and only then is a connection opened: on Neon storage a new
/// backend needs the pageserver its postmaster has loaded, so a connection
/// opened before the reload would wait for the pageserver the new
/// configuration moves away from (which may be gone). The reload is confirmed
/// when a new backend's `pg_conf_load_time()` is later than the moment
/// before the signal; a file postgres cannot load at all is reported at once,
/// naming its lines, instead of waiting for a reload that will not come.
pub async fn reload_and_wait(
    connector: &Connector,
    db: &str,
    postmaster: i32,
) -> Result<Vec<String>> {
    reload_and_wait_on(connector, db, postmaster, None).await
}

/// [`reload_and_wait`], confirmed on `idle` when given: an idle session of
/// this postmaster to `db` (say, the one a start's catalog step ran on),
/// asked as a kept [`ReloadSession`] is, instead of a new backend; closed
/// after.
pub(crate) async fn reload_and_wait_on(
    connector: &Connector,
    db: &str,
    postmaster: i32,
    idle: Option<crate::connect::Connection>,
) -> Result<Vec<String>> {
    let reloaded = reload_confirmed_on(connector, db, postmaster, idle).await?;
    reloaded.session.connection.close().await;
    Ok(reloaded.pending_restart)
}

/// [`reload_and_confirm`], confirmed on `idle` when given (an idle session
/// of this postmaster to `db`, asked as a kept [`ReloadSession`] is), on a
/// backend opened after the signal otherwise; the session that confirmed
/// it stays open, in the answer.
pub(crate) async fn reload_confirmed_on(
    connector: &Connector,
    db: &str,
    postmaster: i32,
    idle: Option<crate::connect::Connection>,
) -> Result<Reloaded> {
    let kept = match idle {
        Some(connection) => ReloadSession::of(connection, postmaster).await,
        None => None,
    };
    reload_and_confirm(connector, db, postmaster, kept).await
}

/// A reload [`reload_and_wait`] confirmed, with the session that saw it.
pub(crate) struct Reloaded {
    /// The settings that need a restart to take effect.
    pub(crate) pending_restart: Vec<String>,
    /// The backend that saw the new configuration, so the next SQL (a
    /// reconfiguration's catalog check) can run on it instead of paying for
    /// a connection of its own, and the next reload can be confirmed on it.
    pub(crate) session: ReloadSession,
    /// When the SIGHUP was sent (what follows is the wait for a backend
    /// that sees the new files).
    pub(crate) signalled: Instant,
    /// Whether a kept session confirmed it (rather than a new backend).
    pub(crate) on_kept_session: bool,
}

/// A maintenance session that confirmed a reload, kept (idle) to confirm the
/// next one without forking a backend for it.
///
/// Why an idle session may confirm a reload although it was opened before
/// it: a backend takes a pending SIGHUP before it runs the next message it
/// reads (postgres' main loop reloads the files between reading a command
/// and executing it), so the answer to a query is either from the old
/// configuration, with the old load time (and is asked again), or from the
/// new one. The question is a statement prepared on the session, whose plan
/// reads no relation (the settings are the backend's memory and the files
/// on disk): asked before the backend has the new pageserver, it needs no
/// page, so on Neon storage it cannot wait for the old one. What does need
/// pages, the catalog check, runs only after the new load time is seen.
pub(crate) struct ReloadSession {
    /// The connection, to the maintenance database.
    pub(crate) connection: crate::connect::Connection,
    /// [`RELOAD_STATE`], prepared on it.
    state: tokio_postgres::Statement,
    /// The postmaster it is a backend of.
    postmaster: i32,
}

impl ReloadSession {
    /// `connection` (idle, to the maintenance database, a backend of
    /// `postmaster`) as a session that can confirm the next reload: the
    /// question prepared on it. None, the connection closed, if it cannot
    /// be prepared (the confirm then forks a backend, as without one).
    pub(crate) async fn of(
        connection: crate::connect::Connection,
        postmaster: i32,
    ) -> Option<ReloadSession> {
        match connection.client.prepare(RELOAD_STATE).await {
            Ok(state) => Some(ReloadSession {
                connection,
                state,
                postmaster,
            }),
            Err(e) => {
                tracing::debug!("the idle session cannot confirm a reload ({e}): a new one will");
                connection.close().await;
                None
            }
        }
    }

    /// Splits the connection off, for SQL that takes it by value.
    pub(crate) fn into_parts(self) -> (crate::connect::Connection, ReloadSessionKey) {
        let key = ReloadSessionKey {
            state: self.state,
            postmaster: self.postmaster,
        };
        (self.connection, key)
    }
}

/// What makes a [`ReloadSession`] besides its connection.
pub(crate) struct ReloadSessionKey {
    state: tokio_postgres::Statement,
    postmaster: i32,
}

impl ReloadSessionKey {
    /// The session of `connection` (the one split off it).
    pub(crate) fn join(self, connection: crate::connect::Connection) -> ReloadSession {
        ReloadSession {
            connection,
            state: self.state,
            postmaster: self.postmaster,
        }
    }
}

/// [`reload_and_wait`], keeping the session that confirmed the reload;
/// `kept`, an idle session of an earlier confirm, is asked instead of a new
/// backend (see [`ReloadSession`]) when it is of this postmaster and still
/// open; a kept session that fails is dropped for a new connection.
pub(crate) async fn reload_and_confirm(
    connector: &Connector,
    db: &str,
    postmaster: i32,
    kept: Option<ReloadSession>,
) -> Result<Reloaded> {
    let before = micros_since_epoch(std::time::SystemTime::now());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(postmaster),
        nix::sys::signal::Signal::SIGHUP,
    )
    .context("sending SIGHUP to postgres")?;
    let signalled = Instant::now();
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    let mut kept = kept.filter(|s| s.postmaster == postmaster && !s.connection.client.is_closed());
    let mut asked = 0u32;
    loop {
        let reused = kept.is_some();
        let session = match kept.take() {
            Some(session) => session,
            // A new backend inherits the postmaster's configuration and load time.
            None => {
                let connection = connector
                    .open(db)
                    .await
                    .context("connecting after the reload")?;
                let state = connection.client.prepare(RELOAD_STATE).await?;
                ReloadSession {
                    connection,
                    state,
                    postmaster,
                }
            }
        };
        let row = match session
            .connection
            .client
            .query_one(&session.state, &[])
            .await
        {
            Ok(row) => row,
            Err(e) if reused => {
                tracing::debug!("the kept session cannot confirm the reload ({e}): a new one will");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        asked += 1;
        let loaded: i64 = row.get(0);
        let pending: Vec<String> = row.get(1);
        let unparsable: Vec<String> = row.get(2);
        let unknown: Vec<String> = row.get(3);
        let rejected: Vec<String> = row.get(4);
        if !unparsable.is_empty() {
            bail!(
                "postgres cannot parse the configuration (it keeps the previous one): {}",
                unparsable.join("; ")
            );
        }
        if !unknown.is_empty() {
            bail!(
                "postgres has no such settings, so it keeps the previous configuration: {}",
                unknown.join("; ")
            );
        }
        if loaded >= before {
            if !rejected.is_empty() {
                bail!(
                    "postgres rejected the configuration: {}",
                    rejected.join("; ")
                );
            }
            return Ok(Reloaded {
                pending_restart: pending,
                session,
                signalled,
                on_kept_session: reused,
            });
        }
        if Instant::now() > deadline {
            bail!("postgres did not reload its configuration within {RELOAD_TIMEOUT:?}");
        }
        if reused {
            // The postmaster reloads, then signals its backends: asked again
            // at once (a round trip apart) for the first few times.
            kept = Some(session);
            if asked > SPIN_ASKS {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        } else {
            session.connection.close().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// How many times a kept session is asked without a pause between the
/// questions before the confirm waits a millisecond between them.
const SPIN_ASKS: u32 = 20;

/// `t` in microseconds since the Unix epoch, as postgres' timestamps.
fn micros_since_epoch(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
