//! `performance.invalid`: no invalid or not-ready index; one still being built by
//! CREATE INDEX CONCURRENTLY is reported as building, not broken.

use serde::Deserialize;

use super::{ProbeResult, index_match};
use crate::db::Db;
use crate::outcome::Outcome;

/// The `invalid_indexes` probe takes no parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}

/// Indexes that queries cannot use. The scan of pg_index is the whole cost (it has no index on
/// these flags): nothing is joined to it, so the planner has nothing to weigh, and the names of
/// the few rows found are looked up one by one. Objects made by initdb (pg_catalog,
/// information_schema) have oids below 16384 and are left out.
pub(crate) const UNUSABLE_INDEXES: &str = "
    SELECT (SELECT relnamespace::regnamespace::text || '.' || quote_ident(relname)
              FROM pg_class WHERE oid = x.indexrelid),
           (SELECT relnamespace::regnamespace::text || '.' || quote_ident(relname)
              FROM pg_class WHERE oid = x.indrelid),
           x.indisready,
           x.indexrelid::int8
      FROM pg_index x
     WHERE (NOT x.indisvalid OR NOT x.indisready)
       AND x.indexrelid >= 16384
     ORDER BY 1";

/// Runs the probe.
pub async fn run(db: &Db, _params: Params) -> ProbeResult {
    let mut answers = db
        .read_batch(&[
            UNUSABLE_INDEXES.to_string(),
            index_match::BUILDS.to_string(),
        ])
        .await?;
    let rows: Vec<(String, String, bool, i64)> = answers.rows(0)?;
    let builds: Vec<index_match::Build> = answers.rows(1)?;
    let mut broken = Vec::new();
    let mut building = Vec::new();
    for (index, table, ready, oid) in rows {
        if let Some((_, phase, percent)) = builds.iter().find(|(build, ..)| *build == oid) {
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
