//! `performance.indexes`: the checklist's performance indexes exist and are valid.

use serde::Deserialize;

use super::ProbeResult;
use super::index_match::{self, ExpectedIndex};
use crate::db::Db;
use crate::outcome::Outcome;

/// Parameters of the `indexes` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Schema (default: the URL's Prisma `schema`, else `public`).
    #[serde(default)]
    pub schema: Option<String>,
    /// The indexes that must exist.
    pub indexes: Vec<ExpectedIndex>,
}

/// Runs the probe.
pub async fn run(db: &Db, params: Params) -> ProbeResult {
    let schema = params
        .schema
        .clone()
        .unwrap_or_else(|| db.target().schema().to_string());
    let mut tables: Vec<String> = params.indexes.iter().map(|i| i.table.clone()).collect();
    tables.dedup();
    let actual = index_match::actual_indexes(db, &schema, &tables).await?;
    let report = index_match::report(&params.indexes, &actual);
    let total = params.indexes.len();
    let outcome = if report.problems.is_empty() {
        Outcome::pass(format!("all {total} expected indexes present and valid"))
    } else {
        Outcome::fail(format!(
            "{} of {total} expected indexes missing or unusable",
            report.problems.len()
        ))
    };
    Ok(outcome.with_details(report.problems.into_iter().chain(report.notes)))
}
