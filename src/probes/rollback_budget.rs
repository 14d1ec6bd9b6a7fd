//! `rollback.time_budget`: the restore measured by the rehearsal (`backup.restore_tested`,
//! `cutover rehearse`) against the checklist's budget for an immediate rollback.

use serde::Deserialize;

use super::{ProbeContext, ProbeResult};
use crate::db::Db;
use crate::migrate::rehearse::{self, FailedStatement, StatementTiming};
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
    let (locks, details) = rehearsed_locks(&measured.data);
    let outcome = if secs <= budget {
        Outcome::pass(format!("{message}{locks}"))
    } else {
        Outcome::fail(format!(
            "{message}: a full restore does not fit; plan fix-forward or PITR, and say so{locks}"
        ))
    };
    Ok(outcome.with_details(details))
}

/// What the same rehearsal measured of the migrations: every lock it held on a table that
/// existed, those that made the app wait first, longest first (the window the deploy, and a down script taking the same locks, will hold
/// production's tables), and the statement that failed, if one did.
fn rehearsed_locks(data: &serde_json::Value) -> (String, Vec<String>) {
    let statements: Vec<StatementTiming> = data
        .get("statements")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    let mut locks: Vec<(&StatementTiming, &rehearse::HeldLock)> = statements
        .iter()
        .flat_map(|s| s.locks.iter().map(move |l| (s, l)))
        .collect();
    // Those that make the app wait first, each group longest first.
    locks.sort_by_key(|(_, l)| (!l.blocks_the_app(), std::cmp::Reverse(l.held_ms)));
    let mut details: Vec<String> = locks
        .iter()
        .map(|(s, l)| format!("rehearsed: {} line {}: {l}", s.migration, s.line))
        .collect();
    let failed: Option<FailedStatement> = data
        .get("failed")
        .and_then(|f| serde_json::from_value(f.clone()).ok());
    if let Some(failed) = failed {
        details.push(format!("the rehearsal found that {failed}"));
    }
    let summary = match locks.first().filter(|(_, l)| l.blocks_the_app()) {
        Some((_, longest)) => format!(
            "; the rehearsed migrations made the app wait up to {:.1} s ({} on {})",
            longest.held_ms as f64 / 1000.0,
            longest.mode.trim_end_matches("Lock"),
            longest.table
        ),
        None if data.get("statements").is_some() => {
            "; the rehearsed migrations took no lock that makes the app wait".to_string()
        }
        None => String::new(),
    };
    (summary, details)
}
