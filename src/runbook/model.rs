//! The runbook as data: what the TOML file says, after validation.
//!
//! The raw, serde-facing shapes live in `raw.rs`; these are the checked types the engine runs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// A whole runbook: variables, thresholds and sections in order.
#[derive(Debug, Clone, Serialize)]
pub struct Runbook {
    /// Human name, shown in reports and the header.
    pub name: String,
    /// Optional longer description.
    pub description: String,
    /// Declared variables, by name.
    pub variables: BTreeMap<String, Variable>,
    /// The two-person rule on production runs: each confirmed destructive step waits for a
    /// second person's approval (as `--require-approval`).
    pub require_approval: bool,
    /// Alert thresholds for monitoring and probes.
    pub thresholds: Thresholds,
    /// Sections in order; each is one screen of the wizard.
    pub sections: Vec<Section>,
    /// The TOML it was read from (journaled with each run, hashed to notice edits).
    #[serde(skip)]
    pub source: String,
}

/// A declared `{{variable}}`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Variable {
    /// Value used when nobody sets one; `None` means it must be asked for.
    pub default: Option<String>,
    /// What the variable is for, shown when it is asked for.
    pub description: String,
    /// Masked on screen and in the journal.
    pub secret: bool,
}

/// Monitoring and alert thresholds (`[thresholds]`): the checklist's key metrics and alerts.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Connections in use, percent of `max_connections`, that raise a warning (key metric).
    pub connections_warn_pct: f64,
    /// Connections in use, percent of `max_connections`, that raise a critical alert.
    pub connections_crit_pct: f64,
    /// Bound on the critical queries' execution time.
    pub query_latency_ms: f64,
    /// p95 query time above which the key metric is missed (a warning).
    pub p95_latency_ms: f64,
    /// p95 query time above which the high-query-time alert fires (a warning).
    pub p95_alert_ms: f64,
    /// p99 query time above which the key metric is missed (a warning).
    pub p99_latency_ms: f64,
    /// The longest wait of a waiting session above which the key metric is missed.
    pub connection_wait_ms: f64,
    /// Storage, percent of the plan's limit, above which the key metric is missed.
    pub storage_warn_pct: f64,
    /// Storage, percent of the plan's limit, above which the storage alert fires.
    pub storage_alert_pct: f64,
    /// Sessions ending in an error (fatal, killed, abandoned), percent of sessions.
    pub connection_error_pct: f64,
    /// Rolled-back transactions, percent of all (also read as `error_rate_pct`, its earlier name).
    #[serde(alias = "error_rate_pct")]
    pub query_error_pct: f64,
    /// Replica lag above which the replica check fails.
    pub replica_lag_s: f64,
    /// Rows of a table from which a migration's lock on it is a warning (`cutover lint`).
    pub lint_warn_rows: f64,
    /// Rows from which it is an error.
    pub lint_error_rows: f64,
    /// Size of a table (with its indexes and TOAST), in MiB, from which a lock is a warning.
    pub lint_warn_mb: f64,
    /// Size from which it is an error.
    pub lint_error_mb: f64,
}

impl Default for Thresholds {
    /// The source checklist's numbers.
    fn default() -> Self {
        Thresholds {
            connections_warn_pct: 80.0,
            connections_crit_pct: 90.0,
            query_latency_ms: 100.0,
            p95_latency_ms: 200.0,
            p95_alert_ms: 500.0,
            p99_latency_ms: 500.0,
            connection_wait_ms: 100.0,
            storage_warn_pct: 80.0,
            storage_alert_pct: 90.0,
            connection_error_pct: 0.1,
            query_error_pct: 0.01,
            replica_lag_s: 30.0,
            // Not the checklist's: where a lock held for an index build or a scan starts to be
            // felt (about 100k rows is around a second of work) and where it is an outage.
            lint_warn_rows: 100_000.0,
            lint_error_rows: 1_000_000.0,
            lint_warn_mb: 100.0,
            lint_error_mb: 1024.0,
        }
    }
}

/// One checklist section: one screen.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// Stable id (`environment`, `backup`, ...).
    pub id: String,
    /// Screen title.
    pub title: String,
    /// What this section is about.
    pub description: String,
    /// Steps in order.
    pub steps: Vec<Step>,
}

/// How much a failing step matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A failure fails the run.
    #[default]
    Required,
    /// A failure fails the run too, but the help says why it may be waived.
    Recommended,
    /// A failure is reported as a warning.
    Optional,
}

/// The kind of a step, as written in `kind = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The engineer ticks it.
    Manual,
    /// A read-only query with an expectation.
    Sql,
    /// A built-in check.
    Probe,
    /// A process.
    Shell,
    /// An HTTP request.
    Http,
    /// A named role signs.
    Signoff,
    /// A built-in migration action (deploy, baseline, resolve): it writes to the target.
    Migrate,
}

impl Kind {
    /// The name used in the runbook and the JSON contract.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Manual => "manual",
            Kind::Sql => "sql",
            Kind::Probe => "probe",
            Kind::Shell => "shell",
            Kind::Http => "http",
            Kind::Signoff => "signoff",
            Kind::Migrate => "migrate",
        }
    }

    /// Whether a machine can run it (manual ticks and sign-offs need a person).
    pub fn is_automated(self) -> bool {
        !matches!(self, Kind::Manual | Kind::Signoff)
    }
}

/// One checklist item.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Full id, `section.step`.
    pub id: String,
    /// Id of its section.
    pub section: String,
    /// One line shown in lists.
    pub title: String,
    /// How much a failure matters.
    pub severity: Severity,
    /// Help text: why, how, and where the source checklist was wrong.
    pub help: String,
    /// Full ids of steps that must pass before this one runs.
    pub depends_on: Vec<String>,
    /// Overrides the engine's default timeout.
    pub timeout: Option<Duration>,
    /// What to do.
    pub action: Action,
}

impl Step {
    /// The step's kind.
    pub fn kind(&self) -> Kind {
        match &self.action {
            Action::Manual => Kind::Manual,
            Action::Sql { .. } => Kind::Sql,
            Action::Probe { .. } => Kind::Probe,
            Action::Shell(_) => Kind::Shell,
            Action::Http(_) => Kind::Http,
            Action::Signoff { .. } => Kind::Signoff,
            Action::Migrate(_) => Kind::Migrate,
        }
    }

    /// Every `{{var}}` the step's templates mention, in order of appearance.
    pub fn variables(&self) -> Vec<String> {
        let mut names = Vec::new();
        for text in self.templates() {
            for name in super::vars::names_in(text) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// The texts in which `{{var}}` is substituted.
    fn templates(&self) -> Vec<&str> {
        match &self.action {
            Action::Manual | Action::Signoff { .. } => vec![],
            Action::Sql { query, .. } => vec![query.as_str()],
            Action::Probe { params, .. } => {
                let mut texts = Vec::new();
                json_strings(params, &mut texts);
                texts
            }
            Action::Shell(shell) => {
                let mut texts = vec![shell.command.as_str()];
                texts.extend(shell.workdir.as_deref());
                texts.extend(shell.env.values().map(String::as_str));
                texts
            }
            Action::Http(http) => vec![http.url.as_str()],
            Action::Migrate(migrate) => {
                let mut texts = vec![migrate.migrations.as_str()];
                texts.extend(migrate.migration.as_deref());
                texts.extend(migrate.backup_dir.as_deref());
                texts
            }
        }
    }
}

/// Every string inside a probe's parameters (where `{{var}}` is substituted too).
fn json_strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(text) => out.push(text),
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| json_strings(v, out)),
        _ => {}
    }
}

/// What a step does, by kind.
#[derive(Debug, Clone, Serialize)]
pub enum Action {
    /// Ticked by a person.
    Manual,
    /// A read-only query and what its result must look like.
    Sql {
        /// A `SELECT`, `WITH` or `VALUES` statement.
        query: String,
        /// The expectation on its rows.
        expect: Expectation,
    },
    /// A built-in check by name.
    Probe {
        /// Probe name (see `probes::KNOWN`).
        probe: String,
        /// Its parameters, as JSON.
        params: serde_json::Value,
    },
    /// A process.
    Shell(ShellAction),
    /// An HTTP request.
    Http(HttpAction),
    /// A role signs off.
    Signoff {
        /// The role that signs (e.g. "DBA").
        role: String,
    },
    /// A built-in migration action, run natively (no Node): it writes to the target, so it
    /// always asks for the typed confirmation.
    Migrate(MigrateAction),
}

/// Which migration action a `migrate` step runs (`migrate = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrateOp {
    /// Apply the pending migrations (`cutover deploy`, Prisma's `migrate deploy`).
    Deploy,
    /// The checklist's Phase 1, only on a database without a history: write (or take) the
    /// baseline migration from the live schema and record it as applied (`cutover baseline`).
    /// With a history it has nothing to do, and passes.
    Baseline,
    /// Record `migration` as applied without running it (`cutover resolve --applied`).
    ResolveApplied,
    /// Record `migration`'s failed run as rolled back (`cutover resolve --rolled-back`).
    ResolveRolledBack,
    /// Restore the newest dump of `backup_dir` into a throwaway cluster, timed, and apply the
    /// pending migrations to the copy statement by statement (`cutover rehearse`). It never
    /// writes to the target.
    Rehearse,
}

impl MigrateOp {
    /// The name used in the runbook.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrateOp::Deploy => "deploy",
            MigrateOp::Baseline => "baseline",
            MigrateOp::ResolveApplied => "resolve_applied",
            MigrateOp::ResolveRolledBack => "resolve_rolled_back",
            MigrateOp::Rehearse => "rehearse",
        }
    }

    /// The command line that does the same, for the step's description.
    pub fn command(self) -> &'static str {
        match self {
            MigrateOp::Deploy => "cutover deploy",
            MigrateOp::Baseline => "cutover baseline",
            MigrateOp::ResolveApplied => "cutover resolve --applied",
            MigrateOp::ResolveRolledBack => "cutover resolve --rolled-back",
            MigrateOp::Rehearse => "cutover rehearse",
        }
    }
}

/// A `migrate` step.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateAction {
    /// What it does.
    pub op: MigrateOp,
    /// The Prisma migrations folder (relative to where cutover runs).
    pub migrations: String,
    /// The migration it names: the baseline's folder (default `0_init`), the one resolved.
    pub migration: Option<String>,
    /// How long to wait for Prisma's advisory lock.
    pub lock_wait: Duration,
    /// `lock_timeout` of each migration (deploy).
    pub lock_timeout: Duration,
    /// Runs again of a migration that timed out on a lock and left nothing behind (deploy).
    pub retries: u32,
    /// Where the dumps are (rehearse).
    pub backup_dir: Option<String>,
}

impl MigrateAction {
    /// Whether it writes to the target (all but a rehearsal, which works on a copy).
    pub fn writes_to_target(&self) -> bool {
        self.op != MigrateOp::Rehearse
    }
}

/// What a SQL step's rows must look like.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// The query returns no rows (each row is a problem).
    NoRows,
    /// The first column of every row is true.
    AllTrue,
    /// One row, one column, equal to this value.
    Equals(toml::Value),
    /// One row, one numeric column, at least this.
    AtLeast(f64),
    /// One row, one numeric column, at most this.
    AtMost(f64),
}

/// A shell step.
#[derive(Debug, Clone, Serialize)]
pub struct ShellAction {
    /// Run with `/bin/sh -c`.
    pub command: String,
    /// Working directory (relative to where cutover runs).
    pub workdir: Option<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// The exit code that means success.
    pub expect_exit: i32,
    /// Asks for the target database's name before it runs.
    pub destructive: bool,
}

/// An HTTP step.
#[derive(Debug, Clone, Serialize)]
pub struct HttpAction {
    /// Where to send the request.
    pub url: String,
    /// `GET`, `HEAD`, `POST`, ...
    pub method: String,
    /// The status that means success.
    pub expect_status: u16,
    /// Slower than this is a failure.
    pub max_latency: Option<Duration>,
}

impl Runbook {
    /// Whether a variable's value must be masked: declared `secret`, or named like one
    /// (password, secret, token, key), whatever the runbook says.
    pub fn is_secret(&self, name: &str) -> bool {
        crate::redact::looks_secret(name) || self.variables.get(name).is_some_and(|v| v.secret)
    }

    /// Refuses a `--var` the runbook does not declare: a typo would otherwise be ignored
    /// and the step would run with the default. The error names the close matches.
    pub fn check_variable_names<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<(), String> {
        for name in names {
            if self.variables.contains_key(name) {
                continue;
            }
            let mut close: Vec<(f64, &str)> = self
                .variables
                .keys()
                .map(|known| (strsim::jaro_winkler(name, known), known.as_str()))
                .filter(|(score, _)| *score > 0.85)
                .collect();
            close.sort_by(|a, b| b.0.total_cmp(&a.0));
            let hint = match close.as_slice() {
                [] => format!(
                    "it declares {}",
                    if self.variables.is_empty() {
                        "no variables".to_string()
                    } else {
                        self.variables
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
                matches => format!(
                    "did you mean {}?",
                    matches
                        .iter()
                        .take(3)
                        .map(|(_, known)| format!("`{known}`"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            };
            return Err(format!(
                "--var {name}: the runbook `{}` has no variable `{name}`: {hint}",
                self.name
            ));
        }
        Ok(())
    }

    /// Every step in order, across sections.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.sections
            .iter()
            .flat_map(|section| section.steps.iter())
    }

    /// The step with this full id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps().find(|step| step.id == id)
    }

    /// The section with this id.
    pub fn section(&self, id: &str) -> Option<&Section> {
        self.sections.iter().find(|section| section.id == id)
    }
}
