//! `monitoring.error_rates`: the checklist's error-rate key metrics, watched over a short
//! window: connection errors (sessions that ended fatally, were killed or abandoned, out of the
//! sessions begun) and query errors (rolled-back transactions out of all; cutover's own
//! read-only checks commit, so they are never among them, whichever cutover made them).

use std::time::Duration;

use serde::Deserialize;

use super::{ProbeContext, ProbeResult};
use crate::db::Db;
use crate::outcome::Outcome;

/// Parameters of the `error_rates` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// How long to watch the counters (seconds).
    #[serde(default = "default_window")]
    pub window_secs: f64,
    /// Connection errors above this percentage fail (default: `[thresholds]
    /// connection_error_pct`).
    #[serde(default)]
    pub connection_error_pct: Option<f64>,
    /// Query errors above this percentage fail (default: `[thresholds] query_error_pct`).
    #[serde(default)]
    pub query_error_pct: Option<f64>,
}

fn default_window() -> f64 {
    10.0
}

/// This database's cumulative transaction and session counters, as the select list of a query
/// over `pg_stat_database d`: what a query error and a connection error are, for this probe and
/// for the live panel alike. The session counters exist from PostgreSQL 14 on; read through
/// to_jsonb they are NULL before, instead of an error.
pub const DATABASE_COUNTERS: &str = "
           coalesce(d.xact_commit, 0)::int8 AS commits,
           coalesce(d.xact_rollback, 0)::int8 AS rollbacks,
           (to_jsonb(d) ->> 'sessions')::int8 AS sessions,
           ((to_jsonb(d) ->> 'sessions_abandoned')::int8
              + (to_jsonb(d) ->> 'sessions_fatal')::int8
              + (to_jsonb(d) ->> 'sessions_killed')::int8) AS session_errors";

/// One reading of [`DATABASE_COUNTERS`].
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
struct Counters {
    commits: i64,
    rollbacks: i64,
    sessions: Option<i64>,
    session_errors: Option<i64>,
}

async fn read(db: &Db) -> Result<Counters, super::ProbeError> {
    // A transaction of its own each time: statistics are a snapshot per transaction.
    let mut tx = db.read_only().await?;
    let query = format!(
        "SELECT {DATABASE_COUNTERS} FROM pg_stat_database d WHERE d.datname = current_database()"
    );
    let row: Option<(i64, i64, Option<i64>, Option<i64>)> =
        sqlx::query_as(sqlx::AssertSqlSafe(query))
            .fetch_optional(&mut *tx)
            .await?;
    Ok(row
        .map(|(commits, rollbacks, sessions, session_errors)| Counters {
            commits,
            rollbacks,
            sessions,
            session_errors,
        })
        .unwrap_or_default())
}

/// A percentage of `part` in `whole`, as text with the counts.
fn rate(part: i64, whole: i64) -> (f64, String) {
    let pct = if whole > 0 {
        100.0 * part as f64 / whole as f64
    } else {
        0.0
    };
    (pct, format!("{pct:.3} % ({part} of {whole})"))
}

/// Runs the probe.
pub async fn run(db: &Db, params: Params, context: &ProbeContext) -> ProbeResult {
    let connection_limit = params
        .connection_error_pct
        .unwrap_or(context.thresholds.connection_error_pct);
    let query_limit = params
        .query_error_pct
        .unwrap_or(context.thresholds.query_error_pct);
    let before = read(db).await?;
    let window = Duration::from_secs_f64(params.window_secs.clamp(0.0, 3600.0));
    tokio::time::sleep(window).await;
    let after = read(db).await?;
    let commits = (after.commits - before.commits).max(0);
    let rollbacks = (after.rollbacks - before.rollbacks).max(0);
    let (query_pct, query_text) = rate(rollbacks, commits + rollbacks);
    let mut details = vec![format!(
        "query errors: {query_text} of the transactions in {}s were rolled back (limit {query_limit} %)",
        params.window_secs
    )];
    let mut problems = Vec::new();
    if query_pct > query_limit {
        problems.push(format!("query errors {query_pct:.3} % > {query_limit} %"));
    }
    match (
        before.sessions.zip(before.session_errors),
        after.sessions.zip(after.session_errors),
    ) {
        (Some((sessions_0, errors_0)), Some((sessions_1, errors_1))) => {
            let sessions = (sessions_1 - sessions_0).max(0);
            let errors = (errors_1 - errors_0).max(0);
            let (pct, text) = rate(errors, sessions);
            details.push(format!(
                "connection errors: {text} of the sessions that ended in {}s ended fatally, killed or abandoned (limit {connection_limit} %)",
                params.window_secs
            ));
            if pct > connection_limit {
                problems.push(format!(
                    "connection errors {pct:.3} % > {connection_limit} %"
                ));
            }
        }
        _ => details.push(
            "connection errors: not counted (pg_stat_database has session counters from PostgreSQL 14)"
                .to_string(),
        ),
    }
    let outcome = if problems.is_empty() {
        Outcome::pass(format!(
            "query errors {query_pct:.3} % (≤ {query_limit} %), {} transactions in {}s",
            commits + rollbacks,
            params.window_secs
        ))
    } else {
        Outcome::fail(problems.join("; "))
    };
    Ok(outcome.with_details(details))
}
