//! `rollback.time_budget`: the restore measured by the rehearsal (`backup.restore_tested`,
//! `cutover rehearse`) against the checklist's budget for an immediate rollback.

use serde::Deserialize;

use super::{ProbeContext, ProbeResult};
use crate::db::Db;
use crate::outcome::Outcome;

/// Parameters of the `rollback_budget` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The step whose measurement holds the restore's time.
    #[serde(default = "default_step")]
    pub restore_step: String,
    /// The budget, in seconds (the checklist: under 5 minutes).
    #[serde(default = "default_budget")]
    pub budget_secs: f64,
}

fn default_step() -> String {
    "backup.restore_tested".to_string()
}

fn default_budget() -> f64 {
    300.0
}

/// Runs the probe: passes when the measured restore fits the budget, fails when it does not,
/// and cannot run before a restore was measured.
pub async fn run(_db: &Db, params: Params, context: &ProbeContext) -> ProbeResult {
    let Some(measured) = context.measured.get(&params.restore_step) else {
        return Ok(Outcome::error(format!(
            "no restore measured yet: run {} (or `cutover rehearse`) first",
            params.restore_step
        )));
    };
    let Some(ms) = measured.data.get("restore_ms").and_then(|v| v.as_f64()) else {
        return Ok(Outcome::error(format!(
            "{} recorded no restore time",
            params.restore_step
        )));
    };
    let secs = ms / 1000.0;
    let budget = params.budget_secs;
    let message = format!(
        "a full restore took {secs:.1} s ({}), against a budget of {budget:.0} s for the whole rollback",
        measured.source
    );
    Ok(if secs <= budget {
        Outcome::pass(message)
    } else {
        Outcome::fail(format!(
            "{message}: a full restore does not fit; plan fix-forward or PITR, and say so"
        ))
    })
}
