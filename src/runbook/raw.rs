//! The runbook file exactly as serde reads it: every field optional where the kind decides,
//! with spans kept so that validation errors point at a line and column.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::model::{Kind, MigrateOp, Severity, Thresholds};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRunbook {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    pub require_approval: bool,
    #[serde(default)]
    pub thresholds: Thresholds,
    #[serde(default)]
    pub sections: Vec<RawSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVariable {
    pub default: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSection {
    pub id: Spanned<String>,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub id: Spanned<String>,
    pub title: String,
    pub kind: Spanned<Kind>,
    #[serde(default)]
    pub severity: Severity,
    #[serde(default)]
    pub help: String,
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    pub timeout_secs: Option<Spanned<f64>>,

    // sql
    pub query: Option<Spanned<String>>,
    pub expect: Option<Spanned<RawExpectation>>,
    // probe
    pub probe: Option<Spanned<String>>,
    pub params: Option<Spanned<toml::Table>>,
    // shell
    pub command: Option<Spanned<String>>,
    pub workdir: Option<String>,
    pub env: Option<BTreeMap<String, String>>,
    pub expect_exit: Option<i32>,
    pub destructive: Option<bool>,
    // http
    pub url: Option<Spanned<String>>,
    pub method: Option<String>,
    pub expect_status: Option<u16>,
    pub max_latency_ms: Option<Spanned<f64>>,
    // signoff
    pub role: Option<Spanned<String>>,
    // migrate
    pub migrate: Option<Spanned<MigrateOp>>,
    pub migrations: Option<String>,
    pub migration: Option<Spanned<String>>,
    pub lock_wait_secs: Option<Spanned<f64>>,
    pub lock_timeout_secs: Option<Spanned<f64>>,
    pub retries: Option<Spanned<u32>>,
    pub backup_dir: Option<Spanned<String>>,
}

/// A SQL step's expectation as written: the model's, plus bounds that name one of the
/// runbook's `[thresholds]` (`{ at_most_threshold = "connections_warn_pct" }`), resolved to its
/// number when the runbook loads, so that a step and the live panel hold the same line.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawExpectation {
    NoRows,
    AllTrue,
    Equals(toml::Value),
    AtLeast(f64),
    AtMost(f64),
    AtLeastThreshold(String),
    AtMostThreshold(String),
}
