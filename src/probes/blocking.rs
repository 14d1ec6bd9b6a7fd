//! `validation.blocking`: no session waits on a lock held by another.

use serde::Deserialize;

use super::ProbeResult;
use crate::db::Db;
use crate::outcome::Outcome;

/// The `blocking` probe takes no parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}

/// Sessions on this database blocked by others, with who blocks them and for how long they
/// have waited.
const BLOCKED_SESSIONS: &str = "
    SELECT a.pid,
           pg_blocking_pids(a.pid)::int4[],
           coalesce(a.usename::text, ''),
           coalesce(a.application_name, ''),
           coalesce(extract(epoch FROM now() - a.query_start), 0)::float8,
           left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 120)
      FROM pg_stat_activity a
     WHERE a.pid <> pg_backend_pid()
       AND a.datname = current_database()
       AND cardinality(pg_blocking_pids(a.pid)) > 0
     ORDER BY a.query_start";

/// Runs the probe.
pub async fn run(db: &Db, _params: Params) -> ProbeResult {
    let rows: Vec<(i32, Vec<i32>, String, String, f64, String)> = db
        .read_batch(&[BLOCKED_SESSIONS.to_string()])
        .await?
        .rows(0)?;
    if rows.is_empty() {
        return Ok(Outcome::pass("no blocked or blocking sessions"));
    }
    let mut blockers: Vec<i32> = rows.iter().flat_map(|r| r.1.clone()).collect();
    blockers.sort_unstable();
    blockers.dedup();
    let details = rows.iter().map(|(pid, by, user, app, waited, query)| {
        format!("pid {pid} ({user}, {app}) waiting {waited:.0}s on pid(s) {by:?}: {query}")
    });
    Ok(Outcome::fail(format!(
        "{} session(s) blocked by {} blocker(s) (pids {:?})",
        rows.len(),
        blockers.len(),
        blockers
    ))
    .with_details(details))
}
