//! JUnit XML, as CI systems read it: a test suite per section, a test case per step. Warnings
//! pass with their message in `system-out`; skips are `skipped`.

use std::fmt::Write;

use quick_xml::escape::escape;

use crate::check::{CheckReport, StepReport};
use crate::outcome::Status;

/// Renders the report as JUnit XML.
pub fn junit(report: &CheckReport) -> String {
    let mut sections: Vec<(&str, Vec<&StepReport>)> = Vec::new();
    for step in &report.steps {
        match sections.last_mut() {
            Some((id, steps)) if *id == step.section => steps.push(step),
            _ => sections.push((&step.section, vec![step])),
        }
    }
    let s = &report.summary;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        escape(format!("cutover: {}", report.runbook).as_str()),
        report.steps.len(),
        s.fail,
        s.error,
        s.skip,
        report.duration_ms as f64 / 1000.0
    );
    for (section, steps) in sections {
        let count = |status| steps.iter().filter(|st| st.status == status).count();
        let time: u64 = steps.iter().map(|st| st.duration_ms).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\" timestamp=\"{}\">",
            escape(section),
            steps.len(),
            count(Status::Fail),
            count(Status::Error),
            count(Status::Skip),
            time as f64 / 1000.0,
            report.started_at.format("%Y-%m-%dT%H:%M:%S")
        );
        for step in steps {
            testcase(&mut out, step);
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn testcase(out: &mut String, step: &StepReport) {
    let _ = write!(
        out,
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
        escape(step.section.as_str()),
        escape(format!("{}: {}", step.id, step.title).as_str()),
        step.duration_ms as f64 / 1000.0
    );
    let message = escape(step.message.as_str());
    let body = escape(step.details.join("\n").as_str()).into_owned();
    match step.status {
        Status::Pass => {}
        Status::Warn => {
            let _ = write!(out, "<system-out>warning: {message}\n{body}</system-out>");
        }
        Status::Skip => {
            let _ = write!(out, "<skipped message=\"{message}\"/>");
        }
        Status::Fail => {
            let _ = write!(
                out,
                "<failure message=\"{message}\" type=\"fail\">{body}</failure>"
            );
        }
        Status::Error => {
            let _ = write!(
                out,
                "<error message=\"{message}\" type=\"error\">{body}</error>"
            );
        }
    }
    out.push_str("</testcase>\n");
}
