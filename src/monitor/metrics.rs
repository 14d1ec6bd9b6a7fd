//! The metrics panel: the round trip of an empty query as the latency sample, one query per
//! refresh for the server's load, the database's size once a minute, and rates from counter
//! deltas.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sqlx::{FromRow, Row};

use crate::db::{Db, DbError};
use crate::probes::error_rates::DATABASE_COUNTERS;

/// The load on the server and on this database, other than cutover's own sessions (the
/// checks' and the panels', by their `application_name`), in one row. Connections count
/// client sessions server-wide, as `max_connections` does. A blocked session is one waiting
/// for a lock (row locks included: they wait on the holder's transaction id); one snapshot of
/// pg_locks costs the lock manager less than pg_blocking_pids for every session, and unlike
/// wait_event_type in pg_stat_activity it is visible to a role without pg_read_all_stats; the
/// longest wait comes from pg_locks' waitstart (PostgreSQL 14+, read through to_jsonb), or the
/// waiting query's start on older servers. Rollbacks and sessions that ended in an error
/// (fatal, killed, abandoned by their client) are counted as the `error_rates` probe counts
/// them ([`DATABASE_COUNTERS`]). Every number is cast to int8 or float8 so that it decodes the
/// same on every server version.
static METRICS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "
    SELECT (SELECT count(*)
              FROM pg_stat_activity
             WHERE backend_type = 'client backend'
               AND coalesce(application_name, '') NOT IN ('{own}', '{panels}'))::int8
               AS connections_used,
           current_setting('max_connections')::int8 AS max_connections,
           {DATABASE_COUNTERS},
           w.blocked_sessions,
           w.longest_wait_ms
      FROM (SELECT 1) AS always_one_row
      LEFT JOIN pg_stat_database d ON d.datname = current_database()
      CROSS JOIN LATERAL (
            SELECT count(DISTINCT l.pid)::int8 AS blocked_sessions,
                   coalesce(max(extract(epoch FROM clock_timestamp()
                                        - coalesce((to_jsonb(l) ->> 'waitstart')::timestamptz,
                                                   a.query_start))) * 1000,
                            0)::float8 AS longest_wait_ms
              FROM pg_locks l
              JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE NOT l.granted
               AND a.datname = current_database()) AS w",
        own = crate::db::APPLICATION_NAME,
        panels = crate::db::MONITOR_APPLICATION_NAME,
    )
});

/// The database's size: `pg_database_size` stats every file of the database, which takes tens
/// of milliseconds with thousands of relations, so it is sampled apart from the rest, once
/// every [`SIZE_INTERVAL`], and never inside the latency measurement.
const DATABASE_SIZE: &str = "SELECT pg_database_size(current_database())::int8";

/// How often the database's size is sampled.
pub const SIZE_INTERVAL: Duration = Duration::from_secs(60);

/// How far back the latency percentiles and the error rates look.
const LATENCY_WINDOW: Duration = Duration::from_secs(5 * 60);
/// The window is kept as this many histograms, each covering a fifth of it.
const LATENCY_SLICES: u32 = 5;
/// Round trips above a minute are recorded as a minute.
const LATENCY_MAX_MICROS: u64 = 60_000_000;

/// One refresh of the metrics panel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSample {
    /// Client connections open on the server, other than cutover's own.
    pub connections_used: i64,
    /// The server's `max_connections`.
    pub max_connections: i64,
    /// Wall-clock round trip of an empty query on the panels' connection: the network and
    /// the server's front end, nothing of the metrics query's own work.
    pub round_trip: Duration,
    /// Median round trip over the last 5 minutes.
    pub latency_p50: Duration,
    /// 95th percentile round trip over the last 5 minutes.
    pub latency_p95: Duration,
    /// 99th percentile round trip over the last 5 minutes.
    pub latency_p99: Duration,
    /// Committed transactions per second on this database since the previous sample.
    pub commits_per_s: f64,
    /// Rolled-back transactions per second on this database (cutover's own reads commit).
    pub rollbacks_per_s: f64,
    /// Size of this database on disk, as last sampled (every [`SIZE_INTERVAL`]).
    pub database_bytes: i64,
    /// Sessions on this database waiting on a lock that another session holds.
    pub blocked_sessions: i64,
    /// The longest current wait of such a session, in milliseconds (0 when none waits).
    pub longest_wait_ms: f64,
    /// Rolled-back transactions, percent of all, over the last 5 minutes; `None` without
    /// transactions.
    pub query_error_pct: Option<f64>,
    /// Sessions that ended in an error (fatal, killed, abandoned), percent of the sessions
    /// that ended, over the last 5 minutes; `None` without sessions or before PostgreSQL 14.
    pub connection_error_pct: Option<f64>,
    /// The plan's storage limit, when the runbook's `storage_limit_mb` variable gives it.
    pub storage_limit_bytes: Option<i64>,
}

impl MetricsSample {
    /// Connections in use, percent of `max_connections`.
    pub fn connections_pct(&self) -> f64 {
        if self.max_connections > 0 {
            100.0 * self.connections_used as f64 / self.max_connections as f64
        } else {
            0.0
        }
    }

    /// Database size, percent of the plan's storage limit, when it is known.
    pub fn storage_pct(&self) -> Option<f64> {
        self.storage_limit_bytes
            .filter(|limit| *limit > 0)
            .map(|limit| 100.0 * self.database_bytes as f64 / limit as f64)
    }
}

/// One row of [`METRICS`].
#[derive(Debug, Clone, Copy, FromRow)]
struct ServerCounters {
    connections_used: i64,
    max_connections: i64,
    commits: i64,
    rollbacks: i64,
    sessions: Option<i64>,
    session_errors: Option<i64>,
    blocked_sessions: i64,
    longest_wait_ms: f64,
}

/// Cumulative transaction counters as read at one moment.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    commits: i64,
    rollbacks: i64,
    sessions: Option<i64>,
    session_errors: Option<i64>,
}

/// What happened between two readings: the application's transactions and sessions.
#[derive(Debug, Clone, Copy)]
struct Interval {
    ended: Instant,
    commits: i64,
    rollbacks: i64,
    /// Sessions and the ones that ended in an error, when the server counts them.
    sessions: Option<(i64, i64)>,
}

/// Turns successive queries into samples: keeps the previous counters for rates and a
/// sliding window of round trips for percentiles.
#[derive(Debug)]
pub struct Sampler {
    previous: Option<Reading>,
    latency: LatencyWindow,
    /// The intervals of the last [`LATENCY_WINDOW`], for the error rates.
    intervals: VecDeque<Interval>,
    /// The database's size and when it was read.
    size: Option<(Instant, i64)>,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler::new()
    }
}

impl Sampler {
    /// A sampler with no history: its first sample reports rates of zero.
    pub fn new() -> Sampler {
        Sampler {
            previous: None,
            latency: LatencyWindow::new(),
            intervals: VecDeque::new(),
            size: None,
        }
    }

    /// Whether the database's size is due to be read again at `now`.
    fn size_due(&self, now: Instant) -> bool {
        self.size
            .is_none_or(|(read, _)| now.saturating_duration_since(read) >= SIZE_INTERVAL)
    }

    /// Reads the database's size again with the next sample, whatever its age.
    pub fn refresh_size(&mut self) {
        self.size = None;
    }

    /// Runs the metrics query once, in a read-only transaction with `db`'s timeouts, and
    /// turns it into a sample.
    pub async fn sample(&mut self, db: &Db) -> Result<MetricsSample, DbError> {
        // It commits: cutover's reads are never counted as the application's rollbacks.
        let mut transaction = db.read_only().await?;
        // The round trip: an empty query, which the server answers without parsing,
        // planning or reading anything, in the simple protocol (one message each way).
        let started = Instant::now();
        sqlx::raw_sql("")
            .execute(&mut *transaction)
            .await
            .map_err(|e| db.error(e))?;
        let round_trip = started.elapsed();
        // Built from constants of this crate only.
        let row = sqlx::raw_sql(sqlx::AssertSqlSafe(METRICS.as_str()))
            .fetch_one(&mut *transaction)
            .await
            .map_err(|e| db.error(e))?;
        let counters = ServerCounters::from_row(&row).map_err(|e| db.error(e))?;
        if self.size_due(started) {
            let bytes: i64 = sqlx::raw_sql(DATABASE_SIZE)
                .fetch_one(&mut *transaction)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(|e| db.error(e))?;
            self.size = Some((started, bytes));
        }
        Ok(self.record(started, counters, round_trip))
    }

    /// Turns counters read at `at` into a sample.
    fn record(
        &mut self,
        at: Instant,
        counters: ServerCounters,
        round_trip: Duration,
    ) -> MetricsSample {
        self.latency.record(at, round_trip);
        let [latency_p50, latency_p95, latency_p99] = self.latency.percentiles([0.50, 0.95, 0.99]);
        let (commits_per_s, rollbacks_per_s) = self.rates(Reading {
            at,
            commits: counters.commits,
            rollbacks: counters.rollbacks,
            sessions: counters.sessions,
            session_errors: counters.session_errors,
        });
        let (query_error_pct, connection_error_pct) = self.error_rates(at);
        MetricsSample {
            connections_used: counters.connections_used,
            max_connections: counters.max_connections,
            round_trip,
            latency_p50,
            latency_p95,
            latency_p99,
            commits_per_s,
            rollbacks_per_s,
            database_bytes: self.size.map_or(0, |(_, bytes)| bytes),
            blocked_sessions: counters.blocked_sessions,
            longest_wait_ms: counters.longest_wait_ms,
            query_error_pct,
            connection_error_pct,
            storage_limit_bytes: None,
        }
    }

    /// Query and connection error percentages over the intervals of the last window.
    fn error_rates(&mut self, now: Instant) -> (Option<f64>, Option<f64>) {
        while let Some(oldest) = self.intervals.front()
            && now.saturating_duration_since(oldest.ended) > LATENCY_WINDOW
        {
            self.intervals.pop_front();
        }
        let (mut commits, mut rollbacks, mut sessions, mut errors) = (0, 0, 0, 0);
        for interval in &self.intervals {
            commits += interval.commits;
            rollbacks += interval.rollbacks;
            if let Some((begun, failed)) = interval.sessions {
                sessions += begun;
                errors += failed;
            }
        }
        let pct = |part: i64, whole: i64| (whole > 0).then(|| 100.0 * part as f64 / whole as f64);
        (pct(rollbacks, commits + rollbacks), pct(errors, sessions))
    }

    /// Commits and rollbacks per second since the previous reading.
    fn rates(&mut self, now: Reading) -> (f64, f64) {
        let Some(previous) = self.previous.replace(now) else {
            return (0.0, 0.0);
        };
        let commits = now.commits - previous.commits;
        let rollbacks = now.rollbacks - previous.rollbacks;
        if commits < 0 || rollbacks < 0 {
            // Statistics were reset (pg_stat_reset, or a crash): no rate this time.
            self.intervals.clear();
            return (0.0, 0.0);
        }
        let sessions = match (
            previous.sessions,
            previous.session_errors,
            now.sessions,
            now.session_errors,
        ) {
            (Some(s0), Some(e0), Some(s1), Some(e1)) if s1 >= s0 && e1 >= e0 => {
                Some((s1 - s0, e1 - e0))
            }
            _ => None,
        };
        self.intervals.push_back(Interval {
            ended: now.at,
            commits,
            rollbacks,
            sessions,
        });
        let seconds = now.at.saturating_duration_since(previous.at).as_secs_f64();
        if seconds <= 0.0 {
            return (0.0, 0.0);
        }
        (commits as f64 / seconds, rollbacks as f64 / seconds)
    }
}

/// Round trips of the last [`LATENCY_WINDOW`], as one histogram per slice of it: a new slice
/// starts when the newest is a slice old, and a slice is dropped once it lies wholly outside
/// the window. Percentiles so cover between 5 and 6 minutes, and memory stays at
/// [`LATENCY_SLICES`] + 1 histograms (about 20 KiB each at two significant digits) whatever
/// the interval.
#[derive(Debug)]
struct LatencyWindow {
    slices: VecDeque<(Instant, Histogram<u64>)>,
}

impl LatencyWindow {
    fn new() -> LatencyWindow {
        LatencyWindow {
            slices: VecDeque::new(),
        }
    }

    fn record(&mut self, at: Instant, round_trip: Duration) {
        let slice_length = LATENCY_WINDOW / LATENCY_SLICES;
        while let Some((started, _)) = self.slices.front()
            && at.saturating_duration_since(*started) >= LATENCY_WINDOW + slice_length
        {
            self.slices.pop_front();
        }
        let slice_is_full = self
            .slices
            .back()
            .is_none_or(|(started, _)| at.saturating_duration_since(*started) >= slice_length);
        if slice_is_full {
            self.slices.push_back((at, empty_histogram()));
        }
        let micros = u64::try_from(round_trip.as_micros()).unwrap_or(u64::MAX);
        if let Some((_, current)) = self.slices.back_mut() {
            current.saturating_record(micros.clamp(1, LATENCY_MAX_MICROS));
        }
    }

    fn percentiles<const N: usize>(&self, quantiles: [f64; N]) -> [Duration; N] {
        let mut merged = empty_histogram();
        for (_, slice) in &self.slices {
            // Same bounds on both sides: adding cannot fail.
            let _ = merged.add(slice);
        }
        quantiles.map(|q| Duration::from_micros(merged.value_at_quantile(q)))
    }
}

fn empty_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_MICROS, 2).expect("constant bounds are valid")
}

#[cfg(test)]
mod tests;
