//! Replication status, as an operator of a replica or a primary wants it:
//! what a replica has received and replayed, how far behind it is (bytes and
//! seconds) and whether its WAL receiver streams; which standbys a primary
//! streams to, with their lags. The monitor reads it into the snapshot
//! (`/status`, `/metrics`); `/readyz?lag=` reads it live.

use compute_states::Lsn;
use serde::Serialize;

/// Replication as seen from this compute.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Replication {
    /// Postgres is in recovery (a replica, or a static compute).
    Standby(StandbyStatus),
    /// Postgres is a primary.
    Primary {
        /// The standbys streaming from it (`pg_stat_replication`).
        standbys: Vec<Standby>,
    },
}

/// A standby's own view of its replication.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StandbyStatus {
    /// The last WAL position received and flushed by the WAL receiver
    /// (null when nothing was ever streamed).
    pub receive_lsn: Option<Lsn>,
    /// The last WAL position replayed.
    pub replay_lsn: Option<Lsn>,
    /// The primary's end of WAL as its walsender last reported it (null when
    /// not streaming).
    pub primary_lsn: Option<Lsn>,
    /// WAL not replayed yet: from the furthest of `primary_lsn` and
    /// `receive_lsn` to `replay_lsn`, in bytes (null when neither is known).
    pub lag_bytes: Option<u64>,
    /// 0 when everything received is replayed, else the age of the last
    /// replayed transaction, in seconds (null when nothing was received).
    pub lag_seconds: Option<f64>,
    /// Whether the WAL receiver is streaming from the primary.
    pub streaming: bool,
}

/// A standby connected to this primary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standby {
    /// Its `application_name`.
    pub application_name: String,
    /// Its address (null over a Unix socket).
    pub client_addr: Option<String>,
    /// The walsender's state (`streaming`, `catchup`, ...).
    pub state: Option<String>,
    /// `async`, `sync`, `potential` or `quorum`.
    pub sync_state: Option<String>,
    /// WAL sent to it.
    pub sent_lsn: Option<Lsn>,
    /// WAL it has flushed.
    pub flush_lsn: Option<Lsn>,
    /// WAL it has replayed.
    pub replay_lsn: Option<Lsn>,
    /// From this primary's current WAL position to its replay, in bytes.
    pub lag_bytes: Option<u64>,
    /// `replay_lag`, in seconds (null when it has nothing to catch up on).
    pub replay_lag_seconds: Option<f64>,
}

const STANDBY: &str = "\
SELECT pg_catalog.pg_last_wal_receive_lsn()::pg_catalog.text,
       pg_catalog.pg_last_wal_replay_lsn()::pg_catalog.text,
       r.latest_end_lsn::pg_catalog.text,
       COALESCE(r.status = 'streaming', false),
       CASE WHEN pg_catalog.pg_last_wal_receive_lsn() IS NULL THEN NULL
            WHEN pg_catalog.pg_last_wal_receive_lsn() <= pg_catalog.pg_last_wal_replay_lsn() THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM pg_catalog.now()
                                  - pg_catalog.pg_last_xact_replay_timestamp()), 0)
       END::pg_catalog.float8
FROM (SELECT 1) AS one
LEFT JOIN pg_catalog.pg_stat_wal_receiver r ON true";

const PRIMARY: &str = "\
SELECT COALESCE(application_name, ''), pg_catalog.host(client_addr), state, sync_state,
       sent_lsn::pg_catalog.text, flush_lsn::pg_catalog.text, replay_lsn::pg_catalog.text,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), replay_lsn)::pg_catalog.float8,
       EXTRACT(EPOCH FROM replay_lag)::pg_catalog.float8
FROM pg_catalog.pg_stat_replication
ORDER BY application_name, client_addr";

fn lsn(text: Option<String>) -> Option<Lsn> {
    text.and_then(|t| t.parse().ok())
}

impl StandbyStatus {
    /// Fills `lag_bytes` from the positions.
    fn with_lag(mut self) -> Self {
        let target = self.primary_lsn.max(self.receive_lsn);
        self.lag_bytes = target.map(|t| t.0.saturating_sub(self.replay_lsn.unwrap_or_default().0));
        self
    }
}

/// Reads the replication status through `client` (a superuser's: the
/// statistics views hide other users' rows).
pub async fn read(client: &tokio_postgres::Client) -> Result<Replication, tokio_postgres::Error> {
    let recovering: bool = client
        .query_one("SELECT pg_catalog.pg_is_in_recovery()", &[])
        .await?
        .get(0);
    if recovering {
        let row = client.query_one(STANDBY, &[]).await?;
        return Ok(Replication::Standby(
            StandbyStatus {
                receive_lsn: lsn(row.get(0)),
                replay_lsn: lsn(row.get(1)),
                primary_lsn: lsn(row.get(2)),
                streaming: row.get(3),
                lag_seconds: row.get(4),
                lag_bytes: None,
            }
            .with_lag(),
        ));
    }
    let standbys = client
        .query(PRIMARY, &[])
        .await?
        .into_iter()
        .map(|row| Standby {
            application_name: row.get(0),
            client_addr: row.get(1),
            state: row.get(2),
            sync_state: row.get(3),
            sent_lsn: lsn(row.get(4)),
            flush_lsn: lsn(row.get(5)),
            replay_lsn: lsn(row.get(6)),
            lag_bytes: row.get::<_, Option<f64>>(7).map(|b| b.max(0.0) as u64),
            replay_lag_seconds: row.get(8),
        })
        .collect();
    Ok(Replication::Primary { standbys })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_from_the_furthest_known_position() {
        let s = |recv: Option<u64>, replay: Option<u64>, primary: Option<u64>| {
            StandbyStatus {
                receive_lsn: recv.map(Lsn),
                replay_lsn: replay.map(Lsn),
                primary_lsn: primary.map(Lsn),
                lag_bytes: None,
                lag_seconds: None,
                streaming: true,
            }
            .with_lag()
            .lag_bytes
        };
        assert_eq!(s(Some(100), Some(40), None), Some(60));
        assert_eq!(s(Some(100), Some(40), Some(300)), Some(260));
        assert_eq!(s(Some(100), Some(100), Some(90)), Some(0));
        assert_eq!(s(None, Some(40), None), None);
        assert_eq!(s(Some(10), None, None), Some(10));
    }

    #[test]
    fn json_names_the_role() {
        let v = serde_json::to_value(Replication::Primary { standbys: vec![] }).unwrap();
        assert_eq!(v, serde_json::json!({"role": "primary", "standbys": []}));
        let v = serde_json::to_value(Replication::Standby(StandbyStatus {
            receive_lsn: Some(Lsn(0x1_0000_0010)),
            replay_lsn: Some(Lsn(0x10)),
            primary_lsn: None,
            lag_bytes: Some(0x1_0000_0000),
            lag_seconds: Some(0.5),
            streaming: true,
        }))
        .unwrap();
        assert_eq!(v["role"], "standby");
        assert_eq!(v["receive_lsn"], "1/10");
        assert_eq!(v["streaming"], true);
    }
}
