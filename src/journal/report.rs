//! Reports of a journaled run: Markdown for a reviewer (failures first, every step with who and
//! when, notes, sign-offs), and the JSON and JUnit of `check`.

use std::collections::HashMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::{Entry, Recorded, Rehearsal, Run};
use crate::check::{CheckReport, StepReport, Summary};
use crate::outcome::Status;
use crate::runbook::Runbook;

/// What became of one step in a run, from its events.
#[derive(Debug, Clone, Default)]
struct StepRecord {
    status: Option<Status>,
    message: String,
    details: Vec<String>,
    duration_ms: u64,
    when: Option<DateTime<Utc>>,
}

/// Builds the `check`-shaped report of a run (JSON and JUnit reuse its printers). Steps never
/// touched are left out; a step that started and never ended is an error, "interrupted".
pub fn check_report(run: &Run, runbook: Option<&Runbook>, events: &[Recorded]) -> CheckReport {
    let records = replay(events);
    let mut summary = Summary::default();
    let order: Vec<(String, String, String, &'static str)> = match runbook {
        Some(runbook) => runbook
            .steps()
            .map(|s| {
                (
                    s.id.clone(),
                    s.section.clone(),
                    s.title.clone(),
                    s.kind().as_str(),
                )
            })
            .collect(),
        None => {
            let mut ids: Vec<String> = Vec::new();
            for event in events {
                if let Some(id) = &event.step_id
                    && !ids.contains(id)
                {
                    ids.push(id.clone());
                }
            }
            ids.into_iter()
                .map(|id| {
                    let section = id.split('.').next().unwrap_or("").to_string();
                    (id.clone(), section, id, "manual")
                })
                .collect()
        }
    };
    let steps: Vec<StepReport> = order
        .into_iter()
        .filter_map(|(id, section, title, kind)| {
            let record = records.get(&id)?;
            let status = record.status.unwrap_or(Status::Error);
            summary_count(&mut summary, status);
            Some(StepReport {
                id,
                section,
                title,
                kind,
                status,
                message: record.message.clone(),
                details: record.details.clone(),
                duration_ms: record.duration_ms,
            })
        })
        .collect();
    let started_at = DateTime::parse_from_rfc3339(&run.started_at)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default();
    let ended = run
        .finished_at
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| events.last().map(|e| e.at))
        .unwrap_or(started_at);
    CheckReport {
        runbook: run.runbook_name.clone(),
        target: run.target.clone(),
        run_id: run.id.clone(),
        started_at,
        duration_ms: (ended - started_at).num_milliseconds().max(0) as u64,
        steps,
        summary,
    }
}

fn summary_count(summary: &mut Summary, status: Status) {
    match status {
        Status::Pass => summary.pass += 1,
        Status::Fail => summary.fail += 1,
        Status::Warn => summary.warn += 1,
        Status::Skip => summary.skip += 1,
        Status::Error => summary.error += 1,
    }
}

/// The last word on each step, from its events in order.
fn replay(events: &[Recorded]) -> HashMap<String, StepRecord> {
    let mut records: HashMap<String, StepRecord> = HashMap::new();
    for event in events {
        let Some(id) = &event.step_id else { continue };
        // The step's own outcome says what became of it; the approvals have their part.
        if matches!(
            event.entry,
            Entry::VariableSet { .. }
                | Entry::MigrationApplied(_)
                | Entry::ApprovalRequested(_)
                | Entry::Approved(_)
                | Entry::Rejected(_)
                | Entry::ApprovalTimedOut { .. }
        ) {
            continue;
        }
        let record = records.entry(id.clone()).or_default();
        match &event.entry {
            Entry::StepStarted => {
                *record = StepRecord {
                    when: Some(event.at),
                    status: Some(Status::Error),
                    message: "interrupted: outcome unknown (the run stopped while it ran)"
                        .to_string(),
                    ..StepRecord::default()
                };
            }
            Entry::StepOutput { .. } | Entry::StepProcess { .. } => {}
            Entry::StepFinished {
                status,
                message,
                details,
                duration_ms,
                ..
            } => {
                record.status = Some(*status);
                record.message = message.clone();
                record.details = details.clone();
                record.duration_ms = *duration_ms;
                record.when = Some(event.at);
            }
            Entry::Ticked { note } => {
                record.status = Some(Status::Pass);
                record.message = if note.is_empty() {
                    "ticked".to_string()
                } else {
                    format!("ticked: {note}")
                };
                record.when = Some(event.at);
            }
            Entry::Skipped { reason } => {
                record.status = Some(Status::Skip);
                record.message = format!("skipped: {reason}");
                record.when = Some(event.at);
            }
            Entry::Signed { name, role } => {
                record.status = Some(Status::Pass);
                record.message = format!("signed by {name} as {role}");
                record.when = Some(event.at);
            }
            Entry::VariableSet { .. }
            | Entry::MigrationApplied(_)
            | Entry::ApprovalRequested(_)
            | Entry::Approved(_)
            | Entry::Rejected(_)
            | Entry::ApprovalTimedOut { .. } => {}
        }
    }
    records
}

/// "Approvals": each destructive step that waited for a second person (the two-person rule),
/// when it asked, and who answered, from where, when (or that nobody did).
fn approvals(out: &mut String, events: &[Recorded]) {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut asked: HashMap<String, (String, String)> = HashMap::new();
    for event in events {
        let step = event.step_id.clone().unwrap_or_default();
        let at = event.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let answer = match &event.entry {
            Entry::ApprovalRequested(request) => {
                asked.insert(request.request.clone(), (step, at));
                continue;
            }
            Entry::Approved(decision) => (
                &decision.request,
                format!("approved by {} at {}", decision.who(), decision.decided_at),
            ),
            Entry::Rejected(decision) => (
                &decision.request,
                format!(
                    "rejected by {} at {}: {}",
                    decision.who(),
                    decision.decided_at,
                    decision.reason.as_deref().unwrap_or_default()
                ),
            ),
            Entry::ApprovalTimedOut { request, waited_s } => {
                (request, format!("nobody answered in {waited_s} s"))
            }
            _ => continue,
        };
        let (step, at) = asked.remove(answer.0).unwrap_or((step, at));
        rows.push((step, at, answer.1));
    }
    for (step, at) in asked.into_values() {
        rows.push((
            step,
            at,
            "not answered (the run stopped while it waited)".to_string(),
        ));
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n## Approvals\n");
    let _ = writeln!(out, "| Step | Asked | Answer |");
    let _ = writeln!(out, "| --- | --- | --- |");
    for (step, at, answer) in rows {
        let _ = writeln!(out, "| `{step}` | {at} | {} |", md(&answer));
    }
}

/// The Markdown go-live record of a run; `rehearsal` holds each step's and each migration's
/// duration in the rehearsal before it (empty for none), shown beside this run's.
pub fn markdown(
    run: &Run,
    runbook: Option<&Runbook>,
    events: &[Recorded],
    rehearsal: &Rehearsal,
) -> String {
    let report = check_report(run, runbook, events);
    let records = replay(events);
    let mut out = String::new();
    let _ = writeln!(out, "# {} — {}\n", report.runbook, run.mode);
    let _ = writeln!(out, "| | |\n| --- | --- |");
    let _ = writeln!(out, "| Run | `{}` |", run.id);
    let _ = writeln!(out, "| Target | `{}` |", run.target);
    let _ = writeln!(out, "| Mode | {} |", run.mode);
    let _ = writeln!(out, "| Operator | {} |", run.operator);
    let _ = writeln!(out, "| Started | {} |", run.started_at);
    let _ = writeln!(
        out,
        "| Finished | {} |",
        run.finished_at.as_deref().unwrap_or("not finished")
    );
    let _ = writeln!(
        out,
        "| Runbook | {} (sha256 `{}`) |",
        run.runbook_name, &run.runbook_hash
    );
    let s = &report.summary;
    let _ = writeln!(
        out,
        "\n**{} passed, {} failed, {} warnings, {} skipped, {} errors.**\n",
        s.pass, s.fail, s.warn, s.skip, s.error
    );

    let failures: Vec<&StepReport> = report
        .steps
        .iter()
        .filter(|s| s.status.is_failure())
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "## Failures\n");
        for step in failures {
            let _ = writeln!(
                out,
                "- **{}** {} — {}",
                step.id,
                step.title,
                md(&step.message)
            );
            for detail in &step.details {
                let _ = writeln!(out, "  - {}", md(detail));
            }
        }
        out.push('\n');
    }

    let mut section = "";
    for step in &report.steps {
        if step.section != section {
            section = &step.section;
            let _ = writeln!(out, "## {section}\n");
            let _ = writeln!(out, "| | Step | Result | Duration | Rehearsal | When |");
            let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
        }
        let when = records
            .get(&step.id)
            .and_then(|r| r.when)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let rehearsed = rehearsal
            .steps
            .get(&step.id)
            .map(|ms| format!("{ms} ms"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} {} | `{}` {} | {} | {} ms | {rehearsed} | {} |",
            step.status.symbol(),
            step.status.as_str(),
            step.id,
            md(&step.title),
            md(&step.message),
            step.duration_ms,
            when
        );
    }

    migrations(&mut out, events, rehearsal);
    rehearsed(&mut out, rehearsal);
    approvals(&mut out, events);

    // The signatures, and the second person's approval of each destructive step.
    let signoffs: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::Signed { name, role } => Some((
                format!("{name} ({role})"),
                e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )),
            Entry::Approved(decision) => Some((
                format!(
                    "{}: approved `{}` as the second person",
                    decision.who(),
                    e.step_id.as_deref().unwrap_or_default()
                ),
                e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )),
            _ => None,
        })
        .collect();
    let _ = writeln!(out, "\n## Sign-offs\n");
    if signoffs.is_empty() {
        let _ = writeln!(out, "None recorded.");
    }
    for (who, at) in signoffs {
        let _ = writeln!(out, "- {who}, {at}");
    }
    out
}

/// "Migrations applied": what the run's migration steps changed, and when, one row per
/// migration in the order applied, beside the rehearsal's time for the same migration.
fn migrations(out: &mut String, events: &[Recorded], rehearsal: &Rehearsal) {
    let applied: Vec<(&str, &crate::migrate::deploy::Applied)> = events
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::MigrationApplied(applied) => Some((e.step_id.as_deref().unwrap_or(""), applied)),
            _ => None,
        })
        .collect();
    if applied.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n## Migrations applied\n");
    if let Some(run) = &rehearsal.run_id {
        let short: String = run.chars().take(13).collect();
        let _ = writeln!(out, "Rehearsal: run `{short}`.\n");
    }
    let _ = writeln!(
        out,
        "| Migration | Step | Started | Duration | Rehearsal | Retries | Waited for locks | Checksum |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (step, migration) in applied {
        let rehearsed = rehearsal
            .migrations
            .get(&migration.name)
            .map(|ms| format!("{ms} ms"))
            .unwrap_or_default();
        let waited = migration.lost_ms + migration.blocked_ms;
        let _ = writeln!(
            out,
            "| `{}` | `{step}` | {} | {} ms | {rehearsed} | {} | {waited} ms | `{}` |",
            md(&migration.name),
            migration.started_at,
            migration.duration_ms,
            migration.retries,
            &migration.checksum[..migration.checksum.len().min(12)]
        );
    }
}

/// "Rehearsal": what the newest rehearsal before this run found, step by step (the restore and
/// its time, each statement's time, locks and rewrites, the validation on the copy).
fn rehearsed(out: &mut String, rehearsal: &Rehearsal) {
    let Some(run) = &rehearsal.run_id else { return };
    if rehearsal.outcomes.is_empty() {
        return;
    }
    let short: String = run.chars().take(13).collect();
    let _ = writeln!(out, "\n## Rehearsal\n");
    let _ = writeln!(out, "The newest rehearsal before this run: `{short}`.\n");
    for (step, status, message, details) in &rehearsal.outcomes {
        let symbol = match status.as_str() {
            "pass" => "✓",
            "fail" => "✗",
            "warn" => "!",
            "skip" => "-",
            _ => "E",
        };
        let _ = writeln!(out, "- {symbol} `{step}` {}", md(message));
        for line in details {
            let _ = writeln!(out, "  - {}", md(line.trim()));
        }
    }
}

/// Escapes the characters that would break a Markdown table cell.
fn md(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
