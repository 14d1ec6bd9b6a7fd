//! `verify.drift`: the target's schema against what its applied migrations produce, replayed
//! into a throwaway cluster (see [`crate::migrate::drift`]).

use std::path::Path;

use serde::Deserialize;

use super::ProbeResult;
use crate::db::Db;
use crate::migrate::drift::{self, DriftError};
use crate::outcome::Outcome;

/// Parameters of the `drift` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The Prisma migrations folder (relative to where cutover runs).
    pub dir: String,
}

/// Runs the probe: passes when the schema is what the migrations make, fails with one line per
/// difference.
pub async fn run(db: &Db, params: Params) -> ProbeResult {
    // SHADOW_DATABASE_URL, when set, names a scratch server instead of a throwaway cluster.
    let scratch = match crate::migrate::rehearse::scratch_from(None, Some(db.target())) {
        Ok(scratch) => scratch,
        Err(err) => return Ok(Outcome::error(err.to_string())),
    };
    match drift::drift(db, Path::new(&params.dir), scratch.as_ref()).await {
        Ok(report) if report.differences.is_empty() => Ok(Outcome::pass(format!(
            "no drift: the schema is what its {} applied migration(s) make",
            report.replayed.len()
        ))),
        Ok(report) => Ok(Outcome::fail(format!(
            "{} difference(s) between the database and its {} applied migration(s): {}",
            report.differences.len(),
            report.replayed.len(),
            report.differences[0]
        ))
        .with_details(report.differences)),
        Err(DriftError::Db(err)) => Err(err.into()),
        Err(DriftError::NoHistory) => Ok(Outcome::fail(DriftError::NoHistory.to_string())),
        Err(err) => Ok(Outcome::error(err.to_string())),
    }
}
