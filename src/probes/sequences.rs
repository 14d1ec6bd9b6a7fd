//! Sequence headroom: integer sequences that have used most of their type's range stop the
//! application's inserts when they run out (`nextval: reached maximum value`).

use serde::Deserialize;

use super::ProbeResult;
use crate::db::Db;
use crate::outcome::Outcome;

/// Parameters of the `sequences` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// A sequence past this percent of its maximum fails.
    pub max_used_pct: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params { max_used_pct: 75.0 }
    }
}

/// Every sequence outside the system schemas, with the share of its range it has used
/// (`last_value` is NULL before the first `nextval`, or without the privilege to read it).
const SEQUENCE_USE: &str = "
    SELECT format('%I.%I', schemaname, sequencename),
           data_type::text,
           coalesce(last_value, start_value)::float8,
           max_value::float8,
           (100.0 * coalesce(last_value, start_value)::numeric / max_value::numeric)::float8
      FROM pg_sequences
     WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
     ORDER BY 5 DESC";

/// Runs the probe.
pub async fn run(db: &Db, params: Params) -> ProbeResult {
    let rows: Vec<(String, String, f64, f64, f64)> =
        db.read_batch(&[SEQUENCE_USE.to_string()]).await?.rows(0)?;
    let full: Vec<String> = rows
        .iter()
        .filter(|row| row.4 >= params.max_used_pct)
        .map(|(name, kind, last, max, pct)| {
            format!(
                "{name} ({kind}) at {last:.0} of {max:.0}: {pct:.1}% used; ALTER SEQUENCE {name} AS bigint (and the column it feeds)"
            )
        })
        .collect();
    Ok(if full.is_empty() {
        let top = rows
            .first()
            .map(|row| format!("; the fullest is {} at {:.1}%", row.0, row.4))
            .unwrap_or_default();
        Outcome::pass(format!(
            "{} sequence(s), none past {}%{top}",
            rows.len(),
            params.max_used_pct
        ))
    } else {
        Outcome::fail(format!(
            "{} sequence(s) past {}% of their range",
            full.len(),
            params.max_used_pct
        ))
        .with_details(full)
    })
}
