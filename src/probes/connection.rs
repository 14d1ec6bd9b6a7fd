//! `environment.connection`: the server answers; its version; the round-trip time.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::ProbeResult;
use crate::db::Db;
use crate::outcome::Outcome;

/// Parameters of the `connection` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Oldest acceptable `server_version_num` (120000 = PostgreSQL 12).
    pub min_server_version: i64,
    /// Median round trip above this is a warning.
    pub max_round_trip_ms: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_server_version: 120000,
            max_round_trip_ms: 50.0,
        }
    }
}

/// Who and where we are, and which server this is.
const IDENTITY: &str = "
    SELECT current_setting('server_version'),
           current_setting('server_version_num')::int8,
           current_database()::text,
           current_user::text,
           pg_is_in_recovery()";

/// How many `SELECT 1` round trips the median is taken over.
const SAMPLES: usize = 5;

/// Runs the probe.
pub async fn run(db: &Db, params: Params) -> ProbeResult {
    let mut tx = db.read_only().await?;
    let (version, version_num, database, user, in_recovery): (String, i64, String, String, bool) =
        sqlx::query_as(IDENTITY).fetch_one(&mut *tx).await?;

    let mut round_trips = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let start = Instant::now();
        sqlx::query("SELECT 1").execute(&mut *tx).await?;
        round_trips.push(start.elapsed());
    }
    round_trips.sort();
    let median = round_trips[SAMPLES / 2];
    let median_ms = ms(median);

    let role = if in_recovery { "standby" } else { "primary" };
    let summary = format!(
        "PostgreSQL {version} ({role}), database `{database}` as `{user}`; round trip {median_ms:.1} ms"
    );
    let details = vec![
        format!("server_version_num: {version_num}"),
        format!(
            "round trips (ms): {}",
            round_trips
                .iter()
                .map(|d| format!("{:.2}", ms(*d)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    let outcome = if version_num < params.min_server_version {
        Outcome::fail(format!(
            "server is PostgreSQL {version}, older than the required {}",
            version_name(params.min_server_version)
        ))
    } else if median_ms > params.max_round_trip_ms {
        Outcome::warn(format!(
            "{summary}: slower than {} ms (is the wizard far from the database?)",
            params.max_round_trip_ms
        ))
    } else {
        Outcome::pass(summary)
    };
    Ok(outcome.with_details(details))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// 150004 → "15.4", 90624 → "9.6.24".
fn version_name(num: i64) -> String {
    if num >= 100000 {
        format!("{}.{}", num / 10000, num % 10000)
    } else {
        format!("{}.{}.{}", num / 10000, (num / 100) % 100, num % 100)
    }
}
