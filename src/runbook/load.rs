//! Reading a runbook from TOML and validating it, with errors that point at a line and column.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::model::{
    Action, Expectation, HttpAction, Kind, MigrateAction, MigrateOp, Runbook, Section, ShellAction,
    Step, Variable,
};
use super::raw::{RawExpectation, RawRunbook, RawStep};
use super::vars;

/// Knows which probes exist and whether their parameters make sense. The probes layer
/// implements it; the runbook layer only asks.
pub trait ProbeCatalog {
    /// `Err(message)` when `name` is not a probe or `params` do not fit it.
    fn check(&self, name: &str, params: &serde_json::Value) -> Result<(), String>;
}

/// One problem in a runbook file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What to do about it (may be empty).
    pub hint: String,
}

/// Why a runbook could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RunbookError {
    /// The file could not be read.
    #[error(
        "cannot read runbook {path}: {source} (check the path, or omit --runbook to use the bundled one)"
    )]
    Read {
        /// The path as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid runbook.
    #[error("{}", render_invalid(.path, .diagnostics))]
    Invalid {
        /// The path (or `<bundled>`).
        path: String,
        /// Every problem found, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

fn render_invalid(path: &str, diagnostics: &[Diagnostic]) -> String {
    let Some(first) = diagnostics.first() else {
        return format!("{path}: invalid runbook");
    };
    let more = match diagnostics.len() - 1 {
        0 => String::new(),
        1 => " (and 1 more problem: run `cutover runbook validate`)".to_string(),
        n => format!(" (and {n} more problems: run `cutover runbook validate`)"),
    };
    format!("{path}:{first}{more}")
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)?;
        if !self.hint.is_empty() {
            write!(f, " ({})", self.hint)?;
        }
        Ok(())
    }
}

/// Reads and validates the runbook at `path`.
pub fn load_file(path: &Path, catalog: &dyn ProbeCatalog) -> Result<Runbook, RunbookError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunbookError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_str(&text, &path.display().to_string(), catalog)
}

/// Parses and validates runbook `text`; `label` names it in errors.
pub fn load_str(
    text: &str,
    label: &str,
    catalog: &dyn ProbeCatalog,
) -> Result<Runbook, RunbookError> {
    let invalid = |diagnostics| RunbookError::Invalid {
        path: label.to_string(),
        diagnostics,
    };
    let raw: RawRunbook = toml::from_str(text).map_err(|err| {
        let span = err.span().unwrap_or(0..0);
        let message = err.message().trim().replace('\n', " ");
        invalid(vec![diagnostic(
            text,
            span,
            message,
            hint_for_parse(err.message()),
        )])
    })?;
    let mut checker = Checker {
        text,
        catalog,
        diagnostics: Vec::new(),
        thresholds: raw.thresholds.clone(),
    };
    let mut runbook = checker.runbook(raw);
    runbook.source = text.to_string();
    if checker.diagnostics.is_empty() {
        Ok(runbook)
    } else {
        checker.diagnostics.sort_by_key(|d| (d.line, d.column));
        Err(invalid(checker.diagnostics))
    }
}

fn hint_for_parse(message: &str) -> String {
    if message.contains("unknown field") {
        "see the runbook format in the README".to_string()
    } else if message.contains("unknown variant") {
        "check the spelling against the README's runbook format".to_string()
    } else if message.contains("missing field") {
        "add the field".to_string()
    } else {
        String::new()
    }
}

fn diagnostic(
    text: &str,
    span: Range<usize>,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> Diagnostic {
    let offset = span.start.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    Diagnostic {
        line,
        column,
        message: message.into(),
        hint: hint.into(),
    }
}

struct Checker<'a> {
    text: &'a str,
    catalog: &'a dyn ProbeCatalog,
    diagnostics: Vec<Diagnostic>,
    /// The runbook's `[thresholds]`, which SQL expectations may name.
    thresholds: crate::runbook::Thresholds,
}

impl Checker<'_> {
    fn report(&mut self, span: Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
        let located = diagnostic(self.text, span, message, hint);
        self.diagnostics.push(located);
    }

    fn runbook(&mut self, raw: RawRunbook) -> Runbook {
        let variables: BTreeMap<String, Variable> = raw
            .variables
            .into_iter()
            .map(|(name, var)| {
                (
                    name,
                    Variable {
                        default: var.default,
                        description: var.description,
                        secret: var.secret,
                    },
                )
            })
            .collect();
        for name in variables.keys() {
            if !vars::is_name(name) {
                self.report(
                    0..0,
                    format!("variable name `{name}` is not a valid name"),
                    "use letters, digits and underscores",
                );
            }
        }

        let mut section_ids = HashSet::new();
        let mut seen_steps: HashSet<String> = HashSet::new();
        let mut sections = Vec::new();
        for raw_section in raw.sections {
            let span = raw_section.id.span();
            let id = raw_section.id.into_inner();
            if !is_id(&id) {
                self.report(
                    span.clone(),
                    format!("section id `{id}` is not a valid id"),
                    "use lowercase letters, digits, `_` and `-`",
                );
            }
            if !section_ids.insert(id.clone()) {
                self.report(
                    span,
                    format!("duplicate section id `{id}`"),
                    "ids must be unique",
                );
            }
            let mut steps = Vec::new();
            for raw_step in raw_section.steps {
                if let Some(step) = self.step(&id, raw_step, &variables, &seen_steps) {
                    seen_steps.insert(step.id.clone());
                    steps.push(step);
                }
            }
            sections.push(Section {
                id,
                title: raw_section.title,
                description: raw_section.description,
                steps,
            });
        }

        if seen_steps.is_empty() && self.diagnostics.is_empty() {
            self.report(
                0..0,
                "the runbook has no steps",
                "add a [[sections]] with at least one [[sections.steps]] (see `cutover runbook export`)",
            );
        }

        Runbook {
            name: raw.name,
            description: raw.description,
            variables,
            require_approval: raw.require_approval,
            thresholds: raw.thresholds,
            sections,
            source: String::new(),
        }
    }

    fn step(
        &mut self,
        section: &str,
        raw: RawStep,
        variables: &BTreeMap<String, Variable>,
        earlier: &HashSet<String>,
    ) -> Option<Step> {
        let id_span = raw.id.span();
        let short_id = raw.id.get_ref().clone();
        let full_id = format!("{section}.{short_id}");
        if !is_id(&short_id) {
            self.report(
                id_span.clone(),
                format!("step id `{short_id}` is not a valid id"),
                "use lowercase letters, digits, `_` and `-`",
            );
        }
        if earlier.contains(&full_id) {
            self.report(
                id_span.clone(),
                format!("duplicate step id `{full_id}`"),
                "ids must be unique within a section",
            );
            return None;
        }

        let mut depends_on = Vec::new();
        for dep in &raw.depends_on {
            let target = if dep.get_ref().contains('.') {
                dep.get_ref().clone()
            } else {
                format!("{section}.{}", dep.get_ref())
            };
            if earlier.contains(&target) {
                depends_on.push(target);
            } else {
                self.report(
                    dep.span(),
                    format!("`{full_id}` depends on `{target}`, which is not an earlier step"),
                    "name a step that comes before it, as `step` or `section.step`",
                );
            }
        }

        let timeout = match &raw.timeout_secs {
            Some(secs) if !(*secs.get_ref() > 0.0 && secs.get_ref().is_finite()) => {
                self.report(secs.span(), "timeout_secs must be a positive number", "");
                None
            }
            Some(secs) => Some(Duration::from_secs_f64(*secs.get_ref())),
            None => None,
        };

        let kind = *raw.kind.get_ref();
        self.reject_foreign_fields(&raw, kind);
        let action = self.action(&full_id, &raw, kind)?;

        let step = Step {
            id: full_id,
            section: section.to_string(),
            title: raw.title.clone(),
            severity: raw.severity,
            help: raw.help.clone(),
            depends_on,
            timeout,
            action,
        };
        for name in step.variables() {
            if !variables.contains_key(&name) {
                self.report(
                    id_span.clone(),
                    format!(
                        "step `{}` uses variable `{{{{{name}}}}}`, which is not declared",
                        step.id
                    ),
                    format!("add [variables.{name}] with a default, or without one to ask for it"),
                );
            }
        }
        Some(step)
    }

    fn reject_foreign_fields(&mut self, raw: &RawStep, kind: Kind) {
        let present: [(&str, Kind, bool); 21] = [
            ("query", Kind::Sql, raw.query.is_some()),
            ("expect", Kind::Sql, raw.expect.is_some()),
            ("probe", Kind::Probe, raw.probe.is_some()),
            ("params", Kind::Probe, raw.params.is_some()),
            ("command", Kind::Shell, raw.command.is_some()),
            ("workdir", Kind::Shell, raw.workdir.is_some()),
            ("env", Kind::Shell, raw.env.is_some()),
            ("expect_exit", Kind::Shell, raw.expect_exit.is_some()),
            ("destructive", Kind::Shell, raw.destructive.is_some()),
            ("url", Kind::Http, raw.url.is_some()),
            ("method", Kind::Http, raw.method.is_some()),
            ("expect_status", Kind::Http, raw.expect_status.is_some()),
            ("max_latency_ms", Kind::Http, raw.max_latency_ms.is_some()),
            ("role", Kind::Signoff, raw.role.is_some()),
            ("migrate", Kind::Migrate, raw.migrate.is_some()),
            ("migrations", Kind::Migrate, raw.migrations.is_some()),
            ("migration", Kind::Migrate, raw.migration.is_some()),
            (
                "lock_wait_secs",
                Kind::Migrate,
                raw.lock_wait_secs.is_some(),
            ),
            (
                "lock_timeout_secs",
                Kind::Migrate,
                raw.lock_timeout_secs.is_some(),
            ),
            ("retries", Kind::Migrate, raw.retries.is_some()),
            ("backup_dir", Kind::Migrate, raw.backup_dir.is_some()),
        ];
        for (field, owner, is_present) in present {
            if is_present && owner != kind {
                self.report(
                    raw.kind.span(),
                    format!(
                        "step `{}`: field `{field}` belongs to `{}` steps, not `{}`",
                        raw.id.get_ref(),
                        owner.as_str(),
                        kind.as_str()
                    ),
                    "remove it or change the kind",
                );
            }
        }
    }

    /// The expectation as the engine holds it: a bound naming a threshold becomes its number.
    fn expectation(&mut self, raw: &toml::Spanned<RawExpectation>) -> Expectation {
        match raw.get_ref().clone() {
            RawExpectation::NoRows => Expectation::NoRows,
            RawExpectation::AllTrue => Expectation::AllTrue,
            RawExpectation::Equals(value) => Expectation::Equals(value),
            RawExpectation::AtLeast(bound) => Expectation::AtLeast(bound),
            RawExpectation::AtMost(bound) => Expectation::AtMost(bound),
            RawExpectation::AtLeastThreshold(name) => {
                Expectation::AtLeast(self.threshold(&name, raw.span()))
            }
            RawExpectation::AtMostThreshold(name) => {
                Expectation::AtMost(self.threshold(&name, raw.span()))
            }
        }
    }

    /// The value of threshold `name`, or a diagnostic at `span` naming the known ones.
    fn threshold(&mut self, name: &str, span: Range<usize>) -> f64 {
        let known = serde_json::to_value(&self.thresholds).unwrap_or_default();
        if let Some(value) = known.get(name).and_then(serde_json::Value::as_f64) {
            return value;
        }
        let names: Vec<String> = known
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        self.report(
            span,
            format!("unknown threshold `{name}`"),
            format!("known thresholds: {}", names.join(", ")),
        );
        0.0
    }

    /// The field's value, or a located "needs `name`" problem.
    fn require<'r, T>(&mut self, raw: &RawStep, field: &'r Option<T>, name: &str) -> Option<&'r T> {
        if field.is_none() {
            self.report(
                raw.kind.span(),
                format!(
                    "step `{}` of kind `{}` needs `{name}`",
                    raw.id.get_ref(),
                    raw.kind.get_ref().as_str()
                ),
                format!("add `{name} = ...`"),
            );
        }
        field.as_ref()
    }

    fn action(&mut self, full_id: &str, raw: &RawStep, kind: Kind) -> Option<Action> {
        match kind {
            Kind::Manual => Some(Action::Manual),
            Kind::Signoff => {
                let role = self.require(raw, &raw.role, "role")?.get_ref().clone();
                Some(Action::Signoff { role })
            }
            Kind::Sql => {
                let query = self.require(raw, &raw.query, "query")?;
                let text = strip_sql(query.get_ref());
                if !starts_read_only(&text) {
                    self.report(
                        query.span(),
                        format!("step `{full_id}`: a sql step must be one SELECT, WITH or VALUES statement"),
                        "checks never write; use a probe or a shell step for anything else",
                    );
                }
                let expect = match raw.expect.as_ref() {
                    Some(expect) => self.expectation(expect),
                    None => Expectation::NoRows,
                };
                Some(Action::Sql {
                    query: text,
                    expect,
                })
            }
            Kind::Probe => {
                let probe = self.require(raw, &raw.probe, "probe")?;
                let params = match &raw.params {
                    Some(table) => match serde_json::to_value(table.get_ref()) {
                        Ok(value) => value,
                        Err(err) => {
                            self.report(table.span(), format!("params: {err}"), "");
                            return None;
                        }
                    },
                    None => serde_json::Value::Object(Default::default()),
                };
                if let Err(message) = self.catalog.check(probe.get_ref(), &params) {
                    let span = raw.params.as_ref().map_or(probe.span(), |p| p.span());
                    self.report(span, format!("step `{full_id}`: {message}"), "");
                }
                Some(Action::Probe {
                    probe: probe.get_ref().clone(),
                    params,
                })
            }
            Kind::Shell => {
                let command = self
                    .require(raw, &raw.command, "command")?
                    .get_ref()
                    .clone();
                Some(Action::Shell(ShellAction {
                    command,
                    workdir: raw.workdir.clone(),
                    env: raw.env.clone().unwrap_or_default(),
                    expect_exit: raw.expect_exit.unwrap_or(0),
                    destructive: raw.destructive.unwrap_or(false),
                }))
            }
            Kind::Http => {
                let url = self.require(raw, &raw.url, "url")?;
                let method = raw.method.clone().unwrap_or_else(|| "GET".to_string());
                let known = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
                if !known.contains(&method.as_str()) {
                    self.report(
                        url.span(),
                        format!("step `{full_id}`: unknown HTTP method `{method}`"),
                        format!("use one of {}", known.join(", ")),
                    );
                }
                let max_latency = raw
                    .max_latency_ms
                    .as_ref()
                    .map(|ms| Duration::from_secs_f64(ms.get_ref().max(0.0) / 1000.0));
                Some(Action::Http(HttpAction {
                    url: url.get_ref().clone(),
                    method,
                    expect_status: raw.expect_status.unwrap_or(200),
                    max_latency,
                }))
            }
            Kind::Migrate => self.migrate_action(full_id, raw),
        }
    }

    /// A `migrate` step: the action, the folder, the migration it names (required to resolve,
    /// refused for a deploy), and the deploy's own settings (refused elsewhere).
    fn migrate_action(&mut self, full_id: &str, raw: &RawStep) -> Option<Action> {
        let op_field = self.require(raw, &raw.migrate, "migrate")?;
        let op = *op_field.get_ref();
        let op_span = op_field.span();
        let migration = match (&raw.migration, op) {
            (Some(name), MigrateOp::Deploy | MigrateOp::Rehearse) => {
                self.report(
                    name.span(),
                    format!("step `{full_id}`: a deploy applies every pending migration; `migration` names one"),
                    "remove `migration`",
                );
                None
            }
            (Some(name), _) => Some(name.get_ref().clone()),
            (None, MigrateOp::ResolveApplied | MigrateOp::ResolveRolledBack) => {
                self.report(
                    op_span.clone(),
                    format!(
                        "step `{full_id}`: `migrate = \"{}\"` needs `migration`, the folder name of the migration to resolve",
                        op.as_str()
                    ),
                    "add `migration = \"...\"`",
                );
                None
            }
            (None, MigrateOp::Baseline) => Some("0_init".to_string()),
            (None, MigrateOp::Deploy | MigrateOp::Rehearse) => None,
        };
        if let Some(dir) = &raw.backup_dir
            && op != MigrateOp::Rehearse
        {
            self.report(
                dir.span(),
                format!("step `{full_id}`: `backup_dir` belongs to `migrate = \"rehearse\"`"),
                "remove `backup_dir`",
            );
        }
        if op != MigrateOp::Deploy {
            let deploy_only = [
                (
                    "lock_timeout_secs",
                    raw.lock_timeout_secs.as_ref().map(|f| f.span()),
                ),
                ("retries", raw.retries.as_ref().map(|f| f.span())),
            ];
            for (field, span) in deploy_only {
                if let Some(span) = span {
                    self.report(
                        span,
                        format!(
                            "step `{full_id}`: `{field}` belongs to `migrate = \"deploy\"`, not `{}`",
                            op.as_str()
                        ),
                        format!("remove `{field}`"),
                    );
                }
            }
        }
        let mut seconds = |field: &Option<toml::Spanned<f64>>, name: &str, default: f64| {
            let Some(value) = field else {
                return Duration::from_secs_f64(default);
            };
            let secs = *value.get_ref();
            if !(secs.is_finite() && (0.0..=86_400.0).contains(&secs)) {
                self.report(
                    value.span(),
                    format!(
                        "step `{full_id}`: `{name}` must be a number of seconds between 0 and 86400"
                    ),
                    "",
                );
                return Duration::from_secs_f64(default);
            }
            Duration::from_secs_f64(secs)
        };
        let lock_wait = seconds(&raw.lock_wait_secs, "lock_wait_secs", 10.0);
        let lock_timeout = seconds(&raw.lock_timeout_secs, "lock_timeout_secs", 5.0);
        Some(Action::Migrate(MigrateAction {
            op,
            migrations: raw
                .migrations
                .clone()
                .unwrap_or_else(|| "prisma/migrations".to_string()),
            migration,
            lock_wait,
            lock_timeout,
            retries: raw.retries.as_ref().map_or(3, |r| *r.get_ref()),
            backup_dir: raw.backup_dir.as_ref().map(|d| d.get_ref().clone()),
        }))
    }
}

/// Lowercase letters, digits, `_` and `-`.
fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Trims whitespace and trailing semicolons, so the query can be wrapped in a subquery.
fn strip_sql(query: &str) -> String {
    query
        .trim()
        .trim_end_matches([';', ' ', '\n', '\t', '\r'])
        .to_string()
}

/// Whether the statement begins with SELECT, WITH or VALUES (after comments).
fn starts_read_only(query: &str) -> bool {
    let mut rest = query.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after
                .split_once('\n')
                .map_or("", |(_, tail)| tail)
                .trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after
                .split_once("*/")
                .map_or("", |(_, tail)| tail)
                .trim_start();
        } else {
            break;
        }
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    matches!(word.as_str(), "select" | "with" | "values") && !query.contains(';')
}
