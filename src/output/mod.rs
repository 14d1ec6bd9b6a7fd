//! Printers of a headless run: text for a person, JSON per the contract, JUnit XML for CI.

mod junit;
mod text;

pub use junit::junit;
pub use text::text;

use crate::check::CheckReport;

/// The JSON contract of `check --format json`: one object.
pub fn json(report: &CheckReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|err| {
        serde_json::json!({ "error": format!("cannot serialise the report: {err}") }).to_string()
    })
}
