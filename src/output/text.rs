//! The text report: one line per step, details under failures, a summary line.

use std::fmt::Write;

use crate::check::CheckReport;
use crate::outcome::Status;

/// Detail lines shown under a step that did not pass.
const DETAILS_SHOWN: usize = 12;

/// Renders the report; `color` adds ANSI colours (symbols carry the status without them).
pub fn text(report: &CheckReport, color: bool) -> String {
    let paint = |status: Status, text: &str| {
        if !color {
            return text.to_string();
        }
        let code = match status {
            Status::Pass => "32",
            Status::Warn => "33",
            Status::Skip => "2",
            Status::Fail => "31",
            Status::Error => "35",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    };
    let mut out = String::new();
    let _ = writeln!(out, "{} · {}", report.runbook, report.target);
    let width = report.steps.iter().map(|s| s.id.len()).max().unwrap_or(0);
    let mut section = "";
    for step in &report.steps {
        if step.section != section {
            section = &step.section;
            let _ = writeln!(out, "\n{section}");
        }
        let status = format!("{} {:<5}", step.status.symbol(), step.status.as_str());
        let _ = writeln!(
            out,
            "  {}  {:<width$}  {}{}",
            paint(step.status, &status),
            step.id,
            step.message,
            if step.duration_ms >= 1 && step.status != Status::Skip {
                format!(" ({} ms)", step.duration_ms)
            } else {
                String::new()
            }
        );
        if matches!(step.status, Status::Fail | Status::Warn | Status::Error) {
            for line in step.details.iter().take(DETAILS_SHOWN) {
                let _ = writeln!(out, "  {:10}  {:<width$}    {line}", "", "");
            }
            if step.details.len() > DETAILS_SHOWN {
                let _ = writeln!(
                    out,
                    "  {:10}  {:<width$}    … {} more (see --format json)",
                    "",
                    "",
                    step.details.len() - DETAILS_SHOWN
                );
            }
        }
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "\n{} passed, {} failed, {} warnings, {} skipped, {} errors in {:.1}s (run {})",
        s.pass,
        s.fail,
        s.warn,
        s.skip,
        s.error,
        report.duration_ms as f64 / 1000.0,
        report.run_id
    );
    out
}
