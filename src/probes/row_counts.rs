//! `baseline.row_counts` and `validation.row_counts`: the row count of every table of the app's
//! schema, captured before the migration (journaled with the step's outcome) and compared after
//! it. Tables up to a size threshold are counted exactly; larger ones use the planner's
//! estimate (`reltuples`), so the probe stays cheap on huge tables. Tables the live app keeps
//! writing get a tolerance.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ProbeContext, ProbeResult, spread_counts};
use crate::db::Db;
use crate::outcome::Outcome;

/// Capture now, or compare with a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Record the counts (before the migration).
    Capture,
    /// Compare with the counts a capture step recorded.
    Compare,
}

/// Parameters of the `row_counts` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Capture or compare.
    pub mode: Mode,
    /// The capture step to compare with (full id).
    #[serde(default = "default_baseline")]
    pub baseline: String,
    /// Schema (default: the URL's Prisma `schema`, else `public`).
    #[serde(default)]
    pub schema: Option<String>,
    /// Tables up to this size (MiB, heap only) are counted exactly; larger ones are estimated.
    #[serde(default = "default_exact_max_mb")]
    pub exact_max_mb: f64,
    /// How far an estimated count may move before it counts as a change (percent).
    #[serde(default = "default_estimate_tolerance")]
    pub estimate_tolerance_pct: f64,
    /// Tables the running app writes during the window (events, sessions, progress).
    #[serde(default)]
    pub live_tables: Vec<String>,
    /// How far a live table's count may move (percent of its baseline).
    #[serde(default = "default_live_tolerance")]
    pub live_tolerance_pct: f64,
    /// Tables left out: Prisma's own history grows by one row per migration applied.
    #[serde(default = "default_exclude")]
    pub exclude_tables: Vec<String>,
    /// Longest one batch of exact counts may run.
    #[serde(default = "default_timeout")]
    pub query_timeout_secs: f64,
}

fn default_baseline() -> String {
    "baseline.row_counts".into()
}
fn default_exclude() -> Vec<String> {
    vec!["_prisma_migrations".into()]
}
fn default_exact_max_mb() -> f64 {
    512.0
}
fn default_estimate_tolerance() -> f64 {
    10.0
}
fn default_live_tolerance() -> f64 {
    5.0
}
fn default_timeout() -> f64 {
    60.0
}

/// One table's count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Count {
    /// Rows (exact, or the planner's estimate).
    pub rows: i64,
    /// Whether `rows` is exact.
    pub exact: bool,
}

/// What a capture records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Counts {
    /// The schema counted.
    pub schema: String,
    /// Table name → count.
    pub tables: BTreeMap<String, Count>,
}

/// Every table of the schema (partitioned tables as one, their partitions summed), its heap
/// size and the planner's estimate (-1 when never analyzed).
const TABLES: &str = "
    SELECT c.oid::regclass::text,
           c.relname::text,
           CASE WHEN c.relkind = 'p'
                THEN (SELECT coalesce(sum(pg_relation_size(t.relid)), 0) FROM pg_partition_tree(c.oid) t)
                ELSE pg_relation_size(c.oid) END::float8,
           CASE WHEN c.relkind = 'p'
                THEN (SELECT coalesce(sum(greatest(p.reltuples, 0)), -1)
                        FROM pg_partition_tree(c.oid) t JOIN pg_class p ON p.oid = t.relid
                       WHERE t.isleaf)
                ELSE c.reltuples END::float8
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1
       AND c.relkind IN ('r', 'p')
       AND NOT c.relispartition
     ORDER BY c.relname";

/// Counts every table of `schema` now.
async fn count(
    db: &Db,
    schema: &str,
    params: &Params,
) -> Result<(Counts, Vec<String>), super::ProbeError> {
    let timeout = Duration::from_secs_f64(params.query_timeout_secs.max(0.001));
    let mut tx = db.read_only_with(timeout).await?;
    let tables: Vec<(String, String, f64, f64)> = sqlx::query_as(TABLES)
        .bind(schema)
        .fetch_all(&mut *tx)
        .await?;
    let exact_max = params.exact_max_mb * 1024.0 * 1024.0;
    let mut counts = BTreeMap::new();
    let mut problems = Vec::new();
    let mut exact = Vec::new();
    for (qualified, name, size, estimate) in tables {
        if params.exclude_tables.contains(&name) {
            continue;
        }
        if size <= exact_max {
            exact.push((qualified, name));
        } else if estimate >= 0.0 {
            counts.insert(
                name,
                Count {
                    rows: estimate.round() as i64,
                    exact: false,
                },
            );
        } else {
            problems.push(format!(
                "{name}: too large to count exactly ({:.0} MiB) and never analyzed: run ANALYZE {qualified}",
                size / 1024.0 / 1024.0
            ));
        }
    }
    let queries: Vec<String> = exact
        .iter()
        .map(|(qualified, _)| format!("SELECT count(*) FROM {qualified}"))
        .collect();
    let exact_counts = spread_counts(db, &mut tx, timeout, &queries).await?;
    for ((_, name), count) in exact.into_iter().zip(exact_counts) {
        match count {
            Some(rows) => {
                counts.insert(name, Count { rows, exact: true });
            }
            None => problems.push(format!(
                "{name}: not counted within {}s (or its table is locked)",
                params.query_timeout_secs
            )),
        }
    }
    Ok((
        Counts {
            schema: schema.to_string(),
            tables: counts,
        },
        problems,
    ))
}

fn kind(count: &Count) -> &'static str {
    if count.exact { "exact" } else { "estimated" }
}

/// Runs the probe.
pub async fn run(db: &Db, params: Params, context: &ProbeContext) -> ProbeResult {
    let schema = params
        .schema
        .clone()
        .unwrap_or_else(|| db.target().schema().to_string());
    if params.mode == Mode::Compare {
        // Look before counting: without a baseline there is nothing to compare.
        let Some(measured) = context.measured.get(&params.baseline) else {
            return Ok(Outcome::error(format!(
                "no row-count baseline for this target in the journal: run {} before the migration",
                params.baseline
            )));
        };
        let before: Counts = match serde_json::from_value(measured.data.clone()) {
            Ok(counts) => counts,
            Err(err) => {
                return Ok(Outcome::error(format!(
                    "the baseline of {} ({}) is not a row-count capture: {err}",
                    params.baseline, measured.source
                )));
            }
        };
        if measured.fresh && before.schema == schema {
            // Counted moments ago in this run and nothing has changed the database since:
            // counting every table again would find the same.
            let outcome = compare(&before, &before, Vec::new(), &params, &measured.source);
            return Ok(Outcome {
                message: format!(
                    "{} (counted once in this run: no migration has run since {})",
                    outcome.message, params.baseline
                ),
                ..outcome
            });
        }
        let (after, problems) = count(db, &schema, &params).await?;
        return Ok(compare(
            &before,
            &after,
            problems,
            &params,
            &measured.source,
        ));
    }
    let (counts, problems) = count(db, &schema, &params).await?;
    let exact = counts.tables.values().filter(|c| c.exact).count();
    let total: i64 = counts.tables.values().map(|c| c.rows).sum();
    let details: Vec<String> = problems
        .iter()
        .cloned()
        .chain(
            counts
                .tables
                .iter()
                .map(|(name, c)| format!("{name:<28} {:>14} rows ({})", group(c.rows), kind(c))),
        )
        .collect();
    let message = format!(
        "captured {} table(s) of {schema}: {} rows ({exact} exact, {} estimated)",
        counts.tables.len(),
        group(total),
        counts.tables.len() - exact
    );
    let outcome = if problems.is_empty() {
        Outcome::pass(message)
    } else {
        Outcome::warn(format!("{message}; {} not captured", problems.len()))
    };
    let data = serde_json::to_value(&counts).unwrap_or_default();
    Ok(outcome.with_details(details).with_data(data))
}

/// Compares two captures table by table.
fn compare(
    before: &Counts,
    after: &Counts,
    mut problems: Vec<String>,
    params: &Params,
    source: &str,
) -> Outcome {
    let mut changed = Vec::new();
    let mut lines = Vec::new();
    for (name, old) in &before.tables {
        if params.exclude_tables.contains(name) {
            continue;
        }
        let Some(new) = after.tables.get(name) else {
            let line = format!(
                "{name:<28} before {:>12}  after {:>12}  gone: the table no longer exists",
                group(old.rows),
                "-"
            );
            changed.push(line);
            continue;
        };
        let diff = new.rows - old.rows;
        let pct = if old.rows == 0 {
            if diff == 0 { 0.0 } else { 100.0 }
        } else {
            100.0 * diff.unsigned_abs() as f64 / old.rows as f64
        };
        let live = params.live_tables.iter().any(|t| t == name);
        let (ok, rule) = if live {
            (
                pct <= params.live_tolerance_pct,
                format!("live table, within {}%", params.live_tolerance_pct),
            )
        } else if !(old.exact && new.exact) {
            (
                pct <= params.estimate_tolerance_pct,
                format!("estimated, within {}%", params.estimate_tolerance_pct),
            )
        } else {
            (diff == 0, "exact".to_string())
        };
        let line = format!(
            "{name:<28} before {:>12}  after {:>12}  diff {:>+10}  ({rule}{})",
            group(old.rows),
            group(new.rows),
            diff,
            if ok { "" } else { ": CHANGED" }
        );
        if ok {
            lines.push(line);
        } else {
            changed.push(line);
        }
    }
    for (name, new) in &after.tables {
        if !before.tables.contains_key(name) {
            lines.push(format!(
                "{name:<28} before {:>12}  after {:>12}  new table since the baseline",
                "-",
                group(new.rows)
            ));
        }
    }
    let scope = format!(
        "{} table(s) against the baseline from {source}",
        before.tables.len()
    );
    let outcome = if !changed.is_empty() {
        Outcome::fail(format!(
            "{} of {scope} changed: {}",
            changed.len(),
            changed[0].split_whitespace().next().unwrap_or_default()
        ))
    } else if !problems.is_empty() {
        Outcome::warn(format!(
            "{} table(s) not counted; the others match",
            problems.len()
        ))
    } else {
        Outcome::pass(format!("row counts match: {scope}"))
    };
    problems.splice(0..0, changed);
    outcome.with_details(problems.into_iter().chain(lines))
}

/// `1234567` as `1,234,567`.
fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}
