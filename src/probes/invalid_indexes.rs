//! `performance.invalid`: no invalid or not-ready index; one still being built by
//! CREATE INDEX CONCURRENTLY is reported as building, not broken.

use serde::Deserialize;

use super::ProbeResult;
use crate::db::Db;
use crate::outcome::Outcome;

/// The `invalid_indexes` probe takes no parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}

/// Indexes that queries cannot use, with the progress of a build that is still running on
/// them (pg_stat_progress_create_index is keyed by the index's oid once it exists).
const UNUSABLE_INDEXES: &str = "
    SELECT format('%I.%I', n.nspname, i.relname),
           format('%I.%I', n.nspname, t.relname),
           x.indisready,
           p.pid IS NOT NULL,
           coalesce(p.phase, ''),
           coalesce(CASE WHEN p.blocks_total > 0
                         THEN 100.0 * p.blocks_done / p.blocks_total
                         WHEN p.tuples_total > 0
                         THEN 100.0 * p.tuples_done / p.tuples_total
                    END, 0)::float8
      FROM pg_index x
      JOIN pg_class i ON i.oid = x.indexrelid
      JOIN pg_class t ON t.oid = x.indrelid
      JOIN pg_namespace n ON n.oid = i.relnamespace
      LEFT JOIN pg_stat_progress_create_index p ON p.index_relid = x.indexrelid
     WHERE (NOT x.indisvalid OR NOT x.indisready)
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     ORDER BY 1";

/// Runs the probe.
pub async fn run(db: &Db, _params: Params) -> ProbeResult {
    let mut tx = db.read_only().await?;
    let rows: Vec<(String, String, bool, bool, String, f64)> =
        sqlx::query_as(UNUSABLE_INDEXES).fetch_all(&mut *tx).await?;
    let mut broken = Vec::new();
    let mut building = Vec::new();
    for (index, table, ready, in_progress, phase, percent) in rows {
        if in_progress {
            building.push(format!(
                "building: {index} on {table}: {phase} ({percent:.0}%)"
            ));
        } else {
            let state = if ready { "INVALID" } else { "not ready" };
            broken.push(format!(
                "{state}: {index} on {table}: a concurrent build failed; run REINDEX INDEX CONCURRENTLY {index} (or DROP INDEX CONCURRENTLY and create it again)"
            ));
        }
    }
    let outcome = if !broken.is_empty() {
        Outcome::fail(format!(
            "{} invalid index(es){}",
            broken.len(),
            if building.is_empty() {
                String::new()
            } else {
                format!(", {} still building", building.len())
            }
        ))
    } else if !building.is_empty() {
        Outcome::warn(format!(
            "{} index(es) still being built concurrently; not broken, wait for them",
            building.len()
        ))
    } else {
        Outcome::pass("no invalid or unfinished index")
    };
    Ok(outcome.with_details(broken.into_iter().chain(building)))
}
