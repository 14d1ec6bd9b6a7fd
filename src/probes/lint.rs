//! `review.lint`, `review.locks`, `review.rewrites`: `cutover lint` over the pending
//! migrations, graded by the live sizes of the tables they lock.
//!
//! - `findings`: fails on an error-level finding, warns on a warning; each finding with its
//!   source line, its lock and size, and what to write instead.
//! - `locks`: every statement that locks an existing table, at which level, with the table's
//!   size; a statement that blocks the app while it reads or rewrites a table is graded by size.
//! - `rewrites`: every statement that rewrites a table, graded by size.

use std::path::Path;

use serde::Deserialize;

use super::{ProbeContext, ProbeResult};
use crate::db::Db;
use crate::migrate::lint::{self, FileReport, Limits, PendingError, RuleChoice, Severity};
use crate::outcome::Outcome;

/// What the probe reports.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// The findings.
    #[default]
    Findings,
    /// The locks each statement takes.
    Locks,
    /// The rewrites.
    Rewrites,
}

/// Parameters of the `lint` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The Prisma migrations folder (relative to where cutover runs).
    pub dir: String,
    /// What to report.
    #[serde(default)]
    pub report: Report,
    /// squawk rules to add to the defaults.
    #[serde(default)]
    pub rules: Vec<String>,
    /// squawk rules to turn off.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// Runs the probe.
pub async fn run(db: &Db, params: Params, context: &ProbeContext) -> ProbeResult {
    let rules = match RuleChoice::parse(&params.rules, &params.exclude) {
        Ok(rules) => rules,
        Err(message) => return Ok(Outcome::error(message)),
    };
    let files = match lint::pending_files(Path::new(&params.dir), Some(db)).await {
        Ok(files) => files,
        Err(PendingError::Db(err)) => return Err(err.into()),
        Err(err) => return Ok(Outcome::error(err.to_string())),
    };
    if files.is_empty() {
        return Ok(Outcome::pass(format!(
            "no pending migration in {}: nothing to review",
            params.dir
        )));
    }
    let limits = Limits::from(&context.thresholds);
    let reports = lint::lint(&files, Some(db), &rules, &limits).await?;
    Ok(outcome(params.report, &reports, &limits))
}

/// The step's outcome from the lint's `reports`.
pub fn outcome(report: Report, reports: &[FileReport], limits: &Limits) -> Outcome {
    match report {
        Report::Findings => findings(reports),
        Report::Locks => locks(reports, limits),
        Report::Rewrites => rewrites(reports, limits),
    }
}

fn name_of(report: &FileReport) -> &str {
    report.migration.as_deref().unwrap_or(&report.path)
}

fn findings(reports: &[FileReport]) -> Outcome {
    let counts = lint::output::counts(reports);
    let mut details = Vec::new();
    for report in reports {
        let lines: Vec<&str> = report.text.lines().collect();
        for error in &report.parse_errors {
            details.push(format!(
                "✗ {}:{}:{} syntax: {}",
                name_of(report),
                error.line,
                error.column,
                error.message
            ));
        }
        for finding in report
            .findings
            .iter()
            .filter(|f| f.severity >= Severity::Warning)
        {
            let mark = if finding.severity == Severity::Error {
                "✗"
            } else {
                "!"
            };
            details.push(format!(
                "{mark} {}:{}:{} {}[{}]: {}",
                name_of(report),
                finding.line,
                finding.column,
                finding.severity.as_str(),
                finding.rule,
                finding.message
            ));
            if let Some(source) = lines.get(finding.line.saturating_sub(1)) {
                details.push(format!("    {:>4} | {}", finding.line, source.trim_end()));
            }
            if let Some(statement) = finding.statement.and_then(|i| report.statements.get(i)) {
                for lock in &statement.locks {
                    details.push(format!(
                        "    lock: {} on {}: blocks {}{}",
                        lock.mode,
                        lock.table,
                        lock.mode.blocks(),
                        match (statement.rewrite, statement.scan) {
                            (true, _) => ", while it rewrites the table",
                            (false, true) => ", while it reads every row",
                            _ => "",
                        }
                    ));
                }
            }
            details.push(format!(
                "    {}: {}",
                finding.severity.as_str(),
                finding.grade
            ));
            if let Some(fix) = &finding.fix {
                details.push(format!("    instead: {fix}"));
            }
        }
    }
    let reviewed = format!(
        "{} pending migration(s): {} error(s), {} warning(s), {} note(s) (`cutover lint --notes` shows them)",
        reports.len(),
        counts.error,
        counts.warning,
        counts.note
    );
    let outcome = if counts.error > 0 {
        Outcome::fail(reviewed)
    } else if counts.warning > 0 {
        Outcome::warn(reviewed)
    } else {
        Outcome::pass(reviewed)
    };
    outcome.with_details(details)
}

/// The lock lines of a statement, and its grade when it blocks the app while it reads or
/// rewrites a table (the time that matters).
fn locks(reports: &[FileReport], limits: &Limits) -> Outcome {
    let mut details = Vec::new();
    let mut worst = Severity::Note;
    let mut count = 0;
    for report in reports {
        for statement in &report.statements {
            count += 1;
            let long = statement.scan || statement.rewrite;
            let blocking: Vec<lint::Locked> = statement
                .locks
                .iter()
                .filter(|l| l.mode.blocks_the_app())
                .cloned()
                .collect();
            let severity = if long && !blocking.is_empty() {
                lint::grade_lock(&blocking, limits).0
            } else {
                Severity::Note
            };
            worst = worst.max(severity);
            let mark = match severity {
                Severity::Error => "✗",
                Severity::Warning => "!",
                Severity::Note => "-",
            };
            let locked: Vec<String> = statement
                .locks
                .iter()
                .map(|l| format!("{} on {} ({})", l.mode, l.table, lint::size_text(l)))
                .collect();
            let work = match (statement.rewrite, statement.scan) {
                (true, _) => ", rewrites the table",
                (false, true) => ", reads every row under the lock",
                _ => ", brief",
            };
            details.push(format!(
                "{mark} {} line {}: {}: {}{work}",
                name_of(report),
                statement.line,
                statement.what,
                locked.join("; ")
            ));
        }
    }
    let message = if count == 0 {
        format!(
            "{} pending migration(s): no statement locks an existing table",
            reports.len()
        )
    } else {
        format!(
            "{count} statement(s) of {} pending migration(s) lock existing tables{}",
            reports.len(),
            match worst {
                Severity::Error => ": one blocks the app on a big table while it works",
                Severity::Warning => ": one blocks the app while it works on a sizeable table",
                Severity::Note => "; none blocks the app for long",
            }
        )
    };
    graded(worst, message).with_details(details)
}

fn rewrites(reports: &[FileReport], limits: &Limits) -> Outcome {
    let mut details = Vec::new();
    let mut worst = Severity::Note;
    for report in reports {
        for statement in report.statements.iter().filter(|s| s.rewrite) {
            let (severity, grade) = lint::grade_lock(&statement.locks, limits);
            worst = worst.max(severity);
            details.push(format!(
                "{} {} line {}: {}: {grade}",
                match severity {
                    Severity::Error => "✗",
                    Severity::Warning => "!",
                    Severity::Note => "-",
                },
                name_of(report),
                statement.line,
                statement.what
            ));
        }
    }
    let message = if details.is_empty() {
        format!(
            "no pending migration rewrites a table ({} reviewed)",
            reports.len()
        )
    } else {
        format!(
            "{} statement(s) rewrite a table under ACCESS EXCLUSIVE (its size on disk doubles meanwhile)",
            details.len()
        )
    };
    graded(worst, message).with_details(details)
}

fn graded(severity: Severity, message: String) -> Outcome {
    match severity {
        Severity::Error => Outcome::fail(message),
        Severity::Warning => Outcome::warn(message),
        Severity::Note => Outcome::pass(message),
    }
}
