//! `verify.status`: Prisma's migration status, natively: every migration of the folder applied,
//! none failed, none edited after it was applied, none applied that the folder lacks. With
//! `before_deploy` (`apply.pre_status`), pending migrations are what the deploy will apply.

use std::path::Path;

use serde::Deserialize;

use super::ProbeResult;
use crate::db::Db;
use crate::migrate::history::{self, StatusError};
use crate::outcome::Outcome;

/// Parameters of the `migrations` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The Prisma migrations folder (relative to where cutover runs).
    pub dir: String,
    /// Before the deploy: pending migrations are expected (listed, a pass); failed, modified
    /// and missing-locally ones still fail.
    #[serde(default)]
    pub before_deploy: bool,
}

/// Runs the probe.
pub async fn run(db: &Db, params: Params) -> ProbeResult {
    match history::status(db, Path::new(&params.dir)).await {
        Ok(report) if params.before_deploy => Ok(report.outcome_before_deploy()),
        Ok(report) => Ok(report.outcome()),
        Err(StatusError::Db(err)) => Err(err.into()),
        Err(err) => Ok(Outcome::error(err.to_string())),
    }
}
