//! `environment.replica`: a replica streams from this server, and how far behind it is.

use serde::Deserialize;

use super::ProbeResult;
use crate::db::Db;
use crate::outcome::Outcome;

/// Parameters of the `replica` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Replay lag above this fails.
    pub max_lag_seconds: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            max_lag_seconds: 30.0,
        }
    }
}

/// Whether we are on a standby, and if so how stale its replay is.
const ROLE: &str = "
    SELECT pg_is_in_recovery(),
           coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)::float8";

/// Every standby streaming from this primary, with its replay lag in seconds (NULL lag means
/// it is idle and caught up).
const STANDBYS: &str = "
    SELECT coalesce(application_name, ''),
           coalesce(host(client_addr), 'local'),
           coalesce(state, ''),
           coalesce(sync_state, ''),
           coalesce(extract(epoch FROM replay_lag), 0)::float8,
           coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::int8
      FROM pg_stat_replication
     ORDER BY application_name";

/// Runs the probe.
pub async fn run(db: &Db, params: Params) -> ProbeResult {
    let mut answers = db
        .read_batch(&[ROLE.to_string(), STANDBYS.to_string()])
        .await?;
    let (in_recovery, replay_age): (bool, f64) = answers.one(0)?;
    if in_recovery {
        return Ok(Outcome::warn(format!(
            "connected to a standby (last replayed transaction {replay_age:.0}s ago): point the wizard at the primary"
        )));
    }
    let standbys: Vec<(String, String, String, String, f64, i64)> = answers.rows(1)?;
    if standbys.is_empty() {
        return Ok(Outcome::fail(
            "no replica streams from this server (managed providers: confirm read replicas in the console)",
        ));
    }
    let details: Vec<String> = standbys
        .iter()
        .map(|(name, addr, state, sync, lag, bytes)| {
            format!(
                "{name} at {addr}: {state}, {sync}, replay lag {lag:.1}s ({bytes} bytes behind)"
            )
        })
        .collect();
    let streaming = standbys.iter().filter(|s| s.2 == "streaming").count();
    let worst_lag = standbys.iter().map(|s| s.4).fold(0.0, f64::max);
    let outcome = if streaming == 0 {
        Outcome::fail(format!(
            "{} replica(s) connected, none streaming",
            standbys.len()
        ))
    } else if worst_lag > params.max_lag_seconds {
        Outcome::fail(format!(
            "replica lag {worst_lag:.1}s exceeds {}s",
            params.max_lag_seconds
        ))
    } else {
        Outcome::pass(format!(
            "{streaming} replica(s) streaming, worst replay lag {worst_lag:.1}s"
        ))
    };
    Ok(outcome.with_details(details))
}
