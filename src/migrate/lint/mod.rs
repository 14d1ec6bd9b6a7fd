//! `cutover lint`: the review of migration files. squawk's rules find the risky statements;
//! cutover adds what a linter alone cannot know: the lock each statement takes and on which
//! tables ([`locks`]), the live size of those tables on the target (one catalog round trip for
//! the whole run), the severity graded by that size, and Prisma's way of running a file (one
//! implicit transaction for a file of several statements).
//!
//! Severity policy (the documented default): what can hurt production is graded by the size
//! of the tables it locks (a note below `lint_warn_rows`/`lint_warn_mb`, a warning above, an
//! error above `lint_error_rows`/`lint_error_mb`; a warning when the size is unknown); what
//! fails outright (25001, rows that violate a new NOT NULL) is an error; what breaks the running
//! app (a rename, a drop) is a warning; style is a note.

pub mod locks;
pub mod output;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use squawk_linter::{Linter, Rule, Version};
use squawk_syntax::SourceFile;
use squawk_syntax::ast::AstNode;

use self::locks::{Effect, LockMode, Relation};
use super::script;
use crate::db::{Db, DbError, text_array};
use crate::runbook::Thresholds;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; not a reason to stop.
    Note,
    /// Review it before production.
    Warning,
    /// It will hurt production, or fail.
    Error,
}

impl Severity {
    /// `note`, `warning`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Which rules run.
#[derive(Debug, Clone, Default)]
pub struct RuleChoice {
    /// Rules added to squawk's defaults (`--rule`).
    pub include: Vec<Rule>,
    /// Rules taken out (`--exclude`).
    pub exclude: Vec<Rule>,
}

impl RuleChoice {
    /// Reads rule names as squawk spells them; an unknown one is an error naming the close ones.
    pub fn parse(include: &[String], exclude: &[String]) -> Result<RuleChoice, String> {
        let read = |names: &[String]| -> Result<Vec<Rule>, String> {
            names
                .iter()
                .map(|name| {
                    name.parse::<Rule>().map_err(|_| {
                        let known: Vec<String> =
                            enum_rules().into_iter().map(|r| r.to_string()).collect();
                        let mut scored: Vec<(f64, &String)> = known
                            .iter()
                            .map(|k| (strsim::jaro_winkler(name, k), k))
                            .filter(|(score, _)| *score > 0.85)
                            .collect();
                        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                        let close: Vec<&String> = scored.into_iter().take(3).map(|(_, k)| k).collect();
                        if close.is_empty() {
                            format!("unknown rule `{name}`: `cutover lint --help` lists squawk's rules (e.g. require-concurrent-index-creation)")
                        } else {
                            format!(
                                "unknown rule `{name}`: did you mean {}?",
                                close
                                    .iter()
                                    .map(|c| format!("`{c}`"))
                                    .collect::<Vec<_>>()
                                    .join(" or ")
                            )
                        }
                    })
                })
                .collect()
        };
        Ok(RuleChoice {
            include: read(include)?,
            exclude: read(exclude)?,
        })
    }

    fn linter(&self) -> Linter {
        Linter::with_rules(&self.include, &self.exclude)
    }
}

fn enum_rules() -> Vec<Rule> {
    // squawk lists its rules through `enum_iterator`; the default linter holds most of them.
    let mut rules: Vec<Rule> = Linter::with_rules(&[], &[]).rules.into_iter().collect();
    rules.sort_by_key(|r| r.to_string());
    rules
}

/// What kind of harm a rule's finding means, which decides its severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Harm {
    /// A lock or a long read/rewrite on the tables the statement touches: graded by their size.
    Lock,
    /// It fails on a table that has rows (a NOT NULL column without a default).
    FailsOnRows,
    /// It fails, whatever the data.
    Fails,
    /// The running app breaks (a rename, a drop).
    Breaks,
    /// A timeout the file should set (Prisma sets none).
    Timeout,
    /// Style and habits.
    Style,
}

fn harm(rule: Rule) -> Harm {
    use Rule::*;
    match rule {
        RequireConcurrentIndexCreation
        | RequireConcurrentIndexDeletion
        | ConstraintMissingNotValid
        | AddingFieldWithDefault
        | AddingForeignKeyConstraint
        | ChangingColumnType
        | AddingNotNullableField
        | AddingSerialPrimaryKeyField
        | DisallowedUniqueConstraint
        | RequireConcurrentReindex
        | RequireConcurrentPartitionDetach
        | PreferRepack => Harm::Lock,
        AddingRequiredField => Harm::FailsOnRows,
        BanConcurrentIndexCreationInTransaction
        | TransactionNesting
        | BanUncommittedTransaction
        | BanDuplicateColumnAssignments => Harm::Fails,
        RequireLockTimeout | RequireStatementTimeout | RequireTimeoutSettings => Harm::Timeout,
        PreferBigintOverInt
        | PreferBigintOverSmallint
        | PreferIdentity
        | PreferRobustStmts
        | PreferTextField
        | PreferTimestampTz
        | BanCharField
        | IdentifierTooLong
        | RequireEnumValueOrdering
        | RequireTableSchema
        | UnusedIgnore => Harm::Style,
        _ => Harm::Breaks,
    }
}

/// What to write instead, for the rules whose finding has a known safe form.
fn safer(rule: Rule) -> Option<&'static str> {
    use Rule::*;
    Some(match rule {
        RequireConcurrentIndexCreation => {
            "CREATE INDEX CONCURRENTLY, alone in a migration file of its own (Prisma runs a file of several statements in one transaction, where CONCURRENTLY fails with 25001); writes go on while it builds"
        }
        RequireConcurrentIndexDeletion => {
            "DROP INDEX CONCURRENTLY, alone in a migration file of its own"
        }
        RequireConcurrentReindex => "REINDEX … CONCURRENTLY, alone in a migration file of its own",
        RequireConcurrentPartitionDetach => {
            "DETACH PARTITION … CONCURRENTLY, alone in a migration file of its own"
        }
        ConstraintMissingNotValid | AddingForeignKeyConstraint => {
            "add the constraint NOT VALID (a brief lock, no scan), then ALTER TABLE … VALIDATE CONSTRAINT … in a later migration (SHARE UPDATE EXCLUSIVE: reads and writes go on while it scans)"
        }
        AddingNotNullableField => {
            "ALTER TABLE … ADD CONSTRAINT … CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT in a later migration; then SET NOT NULL, which uses the valid check and skips the scan (PostgreSQL 12+); then drop the check"
        }
        AddingRequiredField => {
            "add the column nullable (or with a constant DEFAULT, stored once since PostgreSQL 11), backfill it in batches, then make it NOT NULL with a validated CHECK first"
        }
        ChangingColumnType => {
            "add a new column of the new type, backfill it in batches, switch the app to it, drop the old one later (varchar(n) to a larger n, or to text, needs no rewrite)"
        }
        AddingFieldWithDefault => {
            "add the column without the volatile default, then SET DEFAULT (new rows), then backfill existing rows in batches"
        }
        AddingSerialPrimaryKeyField | DisallowedUniqueConstraint => {
            "CREATE UNIQUE INDEX CONCURRENTLY in a migration of its own, then ADD CONSTRAINT … UNIQUE USING INDEX (or PRIMARY KEY USING INDEX): a brief lock, no build"
        }
        RenamingColumn | RenamingTable | RenamingObject => {
            "expand and contract: add the new name beside the old (a column written by both, or a view), move the app over, drop the old name in a later release; the running app still uses the old one"
        }
        BanDropColumn | BanDropTable => {
            "drop it only once the deployed app no longer reads it (a release earlier), with its data in the dump"
        }
        BanConcurrentIndexCreationInTransaction => {
            "move the CONCURRENTLY statement to a migration file of its own, one statement per file"
        }
        _ => return None,
    })
}

/// A table locked by a statement, with its live size when the target was read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Locked {
    /// The table (for an index: its table, when the target knows it).
    pub table: String,
    /// The lock.
    pub mode: LockMode,
    /// Estimated rows (`reltuples`); `None` when unknown (no target, never analyzed, new).
    pub rows: Option<f64>,
    /// Table, indexes and TOAST, in bytes; `None` when unknown.
    pub bytes: Option<i64>,
    /// The table is not in the target yet (created by an earlier migration of this run).
    pub new: bool,
}

/// One statement of a file and what it does to existing tables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    /// 1-based line where it starts.
    pub line: usize,
    /// Its first line, shortened.
    pub text: String,
    /// `ALTER TABLE … ADD COLUMN`.
    pub what: String,
    /// The tables it locks.
    pub locks: Vec<Locked>,
    /// It rewrites a table.
    pub rewrite: bool,
    /// It reads a table whole under its lock.
    pub scan: bool,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// squawk's rule name, or cutover's own (`prisma-lock-held-to-end-of-file`).
    pub rule: String,
    /// Graded.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// Why the severity (the lock and the size).
    pub grade: String,
    /// What to write instead.
    pub fix: Option<String>,
    /// 1-based position of the start and end.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
    /// End line.
    pub end_line: usize,
    /// End column.
    pub end_column: usize,
    /// The statement's index in [`FileReport::statements`].
    pub statement: Option<usize>,
}

/// A parse error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The parser's message.
    pub message: String,
}

/// The review of one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileReport {
    /// The file.
    pub path: String,
    /// The migration's folder name, for a `migration.sql`.
    pub migration: Option<String>,
    /// Parse errors (the file is still linted as far as it parses).
    pub parse_errors: Vec<ParseError>,
    /// Findings, in order of position.
    pub findings: Vec<Finding>,
    /// Every statement that locks an existing table.
    pub statements: Vec<Statement>,
    /// The file's text (for showing the lines), not serialized.
    #[serde(skip)]
    pub text: String,
}

impl FileReport {
    /// The worst severity, parse errors counting as errors.
    pub fn worst(&self) -> Option<Severity> {
        let worst = self.findings.iter().map(|f| f.severity).max();
        if self.parse_errors.is_empty() {
            worst
        } else {
            Some(Severity::Error)
        }
    }
}

/// The live sizes of the tables a run's statements lock, read in one round trip.
#[derive(Debug, Clone, Default)]
pub struct Sizes {
    /// The schema of unqualified names (the URL's).
    pub schema: String,
    /// `server_version_num` (150004).
    pub server_version_num: Option<i32>,
    /// By (schema, name) as the statement names it (an index name resolves to its table).
    found: HashMap<(String, String), (String, Option<f64>, i64)>,
    /// Whether the target was read at all.
    pub read: bool,
}

impl Sizes {
    /// squawk's version setting from the server's (15 without a target).
    pub fn version(&self) -> Version {
        let text = match self.server_version_num {
            Some(num) => format!("{}.{}", num / 10_000, num % 10_000),
            None => "15.0".to_string(),
        };
        text.parse().unwrap_or_default()
    }

    fn key(&self, relation: &Relation) -> (String, String) {
        (
            relation
                .schema
                .clone()
                .unwrap_or_else(|| self.schema.clone()),
            relation.name.clone(),
        )
    }

    fn locked(&self, relation: &Relation, mode: LockMode, created: &[(String, String)]) -> Locked {
        let shown = relation.to_string();
        if created.contains(&self.key(relation)) {
            return Locked {
                table: shown,
                mode,
                rows: None,
                bytes: None,
                new: true,
            };
        }
        match self.found.get(&self.key(relation)) {
            Some((table, rows, bytes)) => Locked {
                table: table.clone(),
                mode,
                rows: *rows,
                bytes: Some(*bytes),
                new: false,
            },
            None => Locked {
                table: shown,
                mode,
                rows: None,
                bytes: None,
                new: self.read,
            },
        }
    }
}

/// The query that reads the sizes of `relations` (with the server's version first).
pub fn sizes_queries(schema: &str, relations: &[Relation]) -> Vec<String> {
    let schemas: Vec<String> = relations
        .iter()
        .map(|r| r.schema.clone().unwrap_or_else(|| schema.to_string()))
        .collect();
    let names: Vec<&str> = relations.iter().map(|r| r.name.as_str()).collect();
    vec![
        "SELECT current_setting('server_version_num')::int4".to_string(),
        format!(
            "SELECT w.schema, w.name,
                    format('%I.%I', tn.nspname, t.relname),
                    CASE WHEN t.reltuples < 0 THEN NULL ELSE t.reltuples END::float8,
                    pg_total_relation_size(t.oid)
               FROM unnest({}, {}) AS w(schema, name)
               JOIN pg_namespace n ON n.nspname = w.schema
               JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.name
               LEFT JOIN pg_index i ON i.indexrelid = c.oid
               JOIN pg_class t ON t.oid = coalesce(i.indrelid, c.oid)
               JOIN pg_namespace tn ON tn.oid = t.relnamespace",
            text_array(&schemas),
            text_array(&names)
        ),
    ]
}

/// Reads the sizes of every relation the analyses lock, and the server's version, in one
/// round trip on `db`.
pub async fn read_sizes(db: &Db, analyses: &[Analysis]) -> Result<Sizes, DbError> {
    let mut relations: Vec<Relation> = analyses
        .iter()
        .flat_map(|a| a.effects.iter())
        .flat_map(|(_, e)| e.locks.iter().map(|l| l.relation.clone()))
        .collect();
    relations.sort();
    relations.dedup();
    let schema = db.target().schema().to_string();
    let mut answers = db.read_batch(&sizes_queries(&schema, &relations)).await?;
    let (version,): (i32,) = answers.one(0).map_err(|e| db.error(e))?;
    let rows: Vec<(String, String, String, Option<f64>, i64)> =
        answers.rows(1).map_err(|e| db.error(e))?;
    Ok(Sizes {
        schema,
        server_version_num: Some(version),
        found: rows
            .into_iter()
            .map(|(schema, name, table, rows, bytes)| ((schema, name), (table, rows, bytes)))
            .collect(),
        read: true,
    })
}

/// A file read and parsed, before the sizes (and the server's version, which the rules take)
/// are known.
pub struct Analysis {
    path: PathBuf,
    migration: Option<String>,
    text: String,
    parse: squawk_syntax::Parse<SourceFile>,
    parse_errors: Vec<ParseError>,
    /// Each statement that locks an existing table: its range and effect.
    effects: Vec<((usize, usize), Effect)>,
    /// Ranges of every statement, in order.
    statements: Vec<(usize, usize)>,
    /// Tables it creates, with the offset of the statement that does.
    creates: Vec<(usize, Relation)>,
    /// The file is one CONCURRENTLY index statement.
    lone_concurrent_index: bool,
    /// The file has several statements: Prisma runs them in one transaction.
    several: bool,
}

/// Parses `text` (the file at `path`) and finds what each statement locks.
pub fn analyze(path: &Path, text: &str) -> Analysis {
    let parse = SourceFile::parse(text);
    let parse_errors = parse
        .errors()
        .iter()
        .map(|e| {
            let (line, column) = position(text, e.range().start().into());
            ParseError {
                line,
                column,
                message: e.message().to_string(),
            }
        })
        .collect();
    let shape = script::shape(text);
    let several = shape.statements > 1;
    let mut effects = Vec::new();
    let mut statements = Vec::new();
    let mut creates = Vec::new();
    for stmt in parse.tree().stmts() {
        let range = stmt.syntax().text_range();
        let range = (usize::from(range.start()), usize::from(range.end()));
        statements.push(range);
        if let squawk_syntax::ast::Stmt::CreateTable(create) = &stmt
            && let Some(name) = create.table_name()
            && let Some(table) = locks::relation(&name.syntax().text().to_string(), false)
        {
            creates.push((range.0, table));
        }
        if let Some(effect) = locks::effect(&stmt) {
            effects.push((range, effect));
        }
    }
    let migration = (path.file_name().and_then(|n| n.to_str()) == Some("migration.sql"))
        .then(|| {
            path.parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .map(str::to_string)
        })
        .flatten();
    Analysis {
        path: path.to_path_buf(),
        migration,
        text: text.to_string(),
        parse,
        parse_errors,
        effects,
        statements,
        creates,
        lone_concurrent_index: shape.only_concurrent_index(),
        several,
    }
}

impl Analysis {
    /// The relations its statements lock (for [`read_sizes`]).
    pub fn relations(&self) -> impl Iterator<Item = &Relation> {
        self.effects
            .iter()
            .flat_map(|(_, e)| e.locks.iter().map(|l| &l.relation))
    }
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
pub fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The grading limits, from the runbook's thresholds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rows from which a lock is a warning.
    pub warn_rows: f64,
    /// Rows from which it is an error.
    pub error_rows: f64,
    /// Bytes from which it is a warning.
    pub warn_bytes: f64,
    /// Bytes from which it is an error.
    pub error_bytes: f64,
}

impl From<&Thresholds> for Limits {
    fn from(t: &Thresholds) -> Limits {
        Limits {
            warn_rows: t.lint_warn_rows,
            error_rows: t.lint_error_rows,
            warn_bytes: t.lint_warn_mb * 1024.0 * 1024.0,
            error_bytes: t.lint_error_mb * 1024.0 * 1024.0,
        }
    }
}

/// `1.2M rows, 340 MB`.
pub fn size_text(locked: &Locked) -> String {
    if locked.new {
        return "new: not in the database yet".to_string();
    }
    match (locked.rows, locked.bytes) {
        (None, None) => "size unknown".to_string(),
        (rows, bytes) => {
            let rows = rows.map_or("rows unknown (never analyzed)".to_string(), |r| {
                format!("{} rows", human_count(r))
            });
            let bytes = bytes
                .map(|b| format!(", {}", human_bytes(b)))
                .unwrap_or_default();
            format!("{rows}{bytes}")
        }
    }
}

fn human_count(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.1}G", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.0}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

fn human_bytes(n: i64) -> String {
    let n = n as f64;
    if n >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GiB", n / 1024.0 / 1024.0 / 1024.0)
    } else if n >= 1024.0 * 1024.0 {
        format!("{:.0} MiB", n / 1024.0 / 1024.0)
    } else {
        format!("{:.0} kiB", n / 1024.0)
    }
}

/// The severity a lock on `locked` tables deserves, and why: each table's size against the
/// limits.
pub fn grade_lock(locked: &[Locked], limits: &Limits) -> (Severity, String) {
    if locked.is_empty() {
        return (Severity::Warning, "size unknown".to_string());
    }
    let mut worst = Severity::Note;
    let mut reasons = Vec::new();
    for table in locked {
        let (severity, why) = if table.new {
            (Severity::Note, "new, so empty when this runs".to_string())
        } else {
            match (table.rows, table.bytes) {
                (None, None) => (
                    Severity::Warning,
                    "size unknown (no target to read it from)".to_string(),
                ),
                (rows, bytes) => {
                    let r = rows.unwrap_or(0.0);
                    let b = bytes.unwrap_or(0) as f64;
                    let size = size_text(table);
                    if r >= limits.error_rows || b >= limits.error_bytes {
                        (
                            Severity::Error,
                            format!(
                                "{size}: at or over the error line ({} rows or {})",
                                human_count(limits.error_rows),
                                human_bytes(limits.error_bytes as i64)
                            ),
                        )
                    } else if r >= limits.warn_rows || b >= limits.warn_bytes {
                        (
                            Severity::Warning,
                            format!(
                                "{size}: over the warning line ({} rows or {}; an error from {} rows or {})",
                                human_count(limits.warn_rows),
                                human_bytes(limits.warn_bytes as i64),
                                human_count(limits.error_rows),
                                human_bytes(limits.error_bytes as i64)
                            ),
                        )
                    } else {
                        (
                            Severity::Note,
                            format!(
                                "{size}: under the warning line ({} rows, {})",
                                human_count(limits.warn_rows),
                                human_bytes(limits.warn_bytes as i64)
                            ),
                        )
                    }
                }
            }
        };
        worst = worst.max(severity);
        reasons.push(format!("{} {why}", table.table));
    }
    (worst, reasons.join("; "))
}

/// Lints `analysis` with a fresh linter (a reused one keeps the offsets of the file before),
/// for the server's version, and grades each finding with the live `sizes`. `created` holds
/// the tables that migrations before this one create (empty, and new, when it runs).
pub fn grade(
    analysis: &Analysis,
    rules: &RuleChoice,
    sizes: &Sizes,
    limits: &Limits,
    created: &[(String, String)],
) -> FileReport {
    let text = &analysis.text;
    let mut linter = rules.linter();
    linter.settings.pg_version = sizes.version();
    // Prisma sends a file of several statements as one query: one implicit transaction.
    linter.settings.assume_in_transaction = analysis.several;
    let violations = linter.lint(&analysis.parse, text);
    let statement_of = |offset: usize| {
        analysis
            .statements
            .iter()
            .position(|(start, end)| *start <= offset && offset < *end)
    };
    let mut statements: Vec<Statement> = Vec::new();
    let mut index_of_range: HashMap<(usize, usize), usize> = HashMap::new();
    for ((start, end), effect) in &analysis.effects {
        let (line, _) = position(text, *start);
        let first_line = text[*start..*end]
            .lines()
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
            .unwrap_or("")
            .trim();
        index_of_range.insert((*start, *end), statements.len());
        statements.push(Statement {
            line,
            text: shorten(first_line, 100),
            what: effect.what.clone(),
            locks: {
                // Created before it (an earlier migration, or earlier in this file): empty.
                let mut new: Vec<(String, String)> = created.to_vec();
                new.extend(
                    analysis
                        .creates
                        .iter()
                        .filter(|(at, _)| at < start)
                        .map(|(_, r)| sizes.key(r)),
                );
                effect
                    .locks
                    .iter()
                    .map(|l| sizes.locked(&l.relation, l.mode, &new))
                    .collect()
            },
            rewrite: effect.rewrite,
            scan: effect.scan,
        });
    }
    let statement_for = |offset: usize| -> Option<usize> {
        let range = analysis.statements.get(statement_of(offset)?)?;
        index_of_range.get(range).copied()
    };

    let mut findings = Vec::new();
    for violation in &violations {
        let start = usize::from(violation.text_range.start());
        let end = usize::from(violation.text_range.end());
        let (line, column) = position(text, start);
        let (end_line, end_column) = position(text, end);
        let statement = statement_for(start);
        let locked: &[Locked] = statement.map_or(&[], |i| &statements[i].locks);
        let rule = violation.code;
        let mut fix = safer(rule)
            .map(str::to_string)
            .or_else(|| violation.help.clone());
        if rule == Rule::PreferRobustStmts {
            fix = Some(
                "nothing, under Prisma: a failed migration is resolved, not run again (and IF NOT EXISTS would keep an INVALID index that a failed CONCURRENTLY build left)".to_string(),
            );
        }
        let (severity, grade) = match harm(rule) {
            Harm::Lock => grade_lock(locked, limits),
            Harm::FailsOnRows => {
                let empty = locked.iter().all(|t| {
                    t.new || t.rows.is_some_and(|r| r < 1.0) && t.bytes.is_some_and(|b| b < 16384)
                });
                if !locked.is_empty() && empty {
                    (
                        Severity::Note,
                        "the table is empty, so it succeeds today".to_string(),
                    )
                } else {
                    (
                        Severity::Error,
                        format!(
                            "fails on a table with rows: {}",
                            locked.iter().map(size_text).collect::<Vec<_>>().join("; ")
                        ),
                    )
                }
            }
            Harm::Fails => (
                Severity::Error,
                if analysis.several {
                    "Prisma runs a file of several statements as one transaction".to_string()
                } else {
                    "it fails when it runs".to_string()
                },
            ),
            Harm::Breaks => (
                Severity::Warning,
                "the app deployed now may still use what it changes".to_string(),
            ),
            Harm::Style => (Severity::Note, "style".to_string()),
            Harm::Timeout if analysis.lone_concurrent_index => {
                fix = Some(
                    "nothing: keep this file one statement (a SET would put CONCURRENTLY in a transaction, where it fails), and give it no lock_timeout: it waits for older transactions without blocking reads or writes, and a lock_timeout would cut that wait short and leave an INVALID index".to_string(),
                );
                (
                    Severity::Note,
                    "a lone CONCURRENTLY index statement blocks no reads or writes".to_string(),
                )
            }
            Harm::Timeout => {
                fix = Some(match rule {
                    Rule::RequireStatementTimeout => "under `prisma migrate deploy`, put `SET statement_timeout = '…';` (longer than the migration should take) at the top of the file; Prisma sets none".to_string(),
                    _ => "under `prisma migrate deploy`, put `SET lock_timeout = '5s';` at the top of the file: Prisma sets none, and a statement queued for its lock stalls every query behind it; `cutover deploy` sets one itself (--lock-timeout)".to_string(),
                });
                let blocks = locked.iter().any(|t| t.mode.blocks_the_app() && !t.new);
                (
                    Severity::Note,
                    if blocks {
                        "while it waits for its lock behind a long transaction, the app's queries wait behind it".to_string()
                    } else {
                        "no lock that blocks the app on a table it already has".to_string()
                    },
                )
            }
        };
        findings.push(Finding {
            rule: rule.to_string(),
            severity,
            message: violation.message.clone(),
            grade,
            fix,
            line,
            column,
            end_line,
            end_column,
            statement,
        });
    }

    // Prisma's transaction: a lock taken by an early statement of the file is held until the
    // file ends, through every later statement that reads or rewrites a table.
    if analysis.several {
        let mut held: Vec<(usize, &Locked)> = Vec::new();
        for (index, statement) in statements.iter().enumerate() {
            if (statement.scan || statement.rewrite) && !held.is_empty() {
                let earlier: Vec<&(usize, &Locked)> = held
                    .iter()
                    .filter(|(_, l)| !statement.locks.iter().any(|s| s.table == l.table))
                    .collect();
                if !earlier.is_empty() {
                    let (severity, grade) = grade_lock(&statement.locks, limits);
                    let first = &analysis.effects[index].0;
                    let (line, column) = position(text, first.0);
                    let (end_line, end_column) = position(text, first.1);
                    findings.push(Finding {
                        rule: "prisma-lock-held-to-end-of-file".to_string(),
                        severity,
                        message: format!(
                            "{} stays locked while this statement {} (Prisma runs the whole file as one transaction)",
                            earlier
                                .iter()
                                .map(|(at, l)| format!("{} ({} since line {})", l.table, l.mode, statements[*at].line))
                                .collect::<Vec<_>>()
                                .join(", "),
                            if statement.rewrite { "rewrites its table" } else { "reads its table" }
                        ),
                        grade,
                        fix: Some(
                            "put the long statement in a migration file of its own, so that the earlier lock is let go first".to_string(),
                        ),
                        line,
                        column,
                        end_line,
                        end_column,
                        statement: Some(index),
                    });
                }
            }
            for lock in &statement.locks {
                if lock.mode.blocks_the_app() && !lock.new {
                    held.push((index, lock));
                }
            }
        }
    }
    findings.sort_by_key(|f| (f.line, f.column));
    FileReport {
        path: analysis.path.display().to_string(),
        migration: analysis.migration.clone(),
        parse_errors: analysis.parse_errors.clone(),
        findings,
        statements,
        text: text.clone(),
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}

/// The files to lint under `path`: the file itself; for a folder, its `migration.sql` if it
/// has one, else the `migration.sql` of each of its folders (a Prisma migrations folder, in
/// order), else its `.sql` files.
pub fn files_under(path: &Path) -> Result<Vec<PathBuf>, String> {
    let unreadable = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if path.join("migration.sql").is_file() {
        return Ok(vec![path.join("migration.sql")]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(unreadable)?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    let migrations: Vec<PathBuf> = entries
        .iter()
        .map(|e| e.join("migration.sql"))
        .filter(|m| m.is_file())
        .collect();
    if !migrations.is_empty() {
        return Ok(migrations);
    }
    let sql: Vec<PathBuf> = entries
        .into_iter()
        .filter(|e| e.is_file() && e.extension().is_some_and(|x| x == "sql"))
        .collect();
    if sql.is_empty() {
        return Err(format!(
            "{} holds no migration.sql and no .sql file: pass a migration file or a Prisma migrations folder",
            path.display()
        ));
    }
    Ok(sql)
}

/// Lints `files` (path and text): every file parsed, then the sizes of every table they lock
/// and the server's version read in one round trip (when there is a target), then each file
/// linted and graded.
pub async fn lint(
    files: &[(PathBuf, String)],
    db: Option<&Db>,
    rules: &RuleChoice,
    limits: &Limits,
) -> Result<Vec<FileReport>, DbError> {
    let analyses: Vec<Analysis> = files
        .iter()
        .map(|(path, text)| analyze(path, text))
        .collect();
    let sizes = match db {
        Some(db) => read_sizes(db, &analyses).await?,
        None => Sizes::default(),
    };
    let mut created: Vec<(String, String)> = Vec::new();
    let mut reports = Vec::new();
    for analysis in &analyses {
        reports.push(grade(analysis, rules, &sizes, limits, &created));
        created.extend(analysis.creates.iter().map(|(_, r)| sizes.key(r)));
    }
    Ok(reports)
}

/// The `migration.sql` of each migration of `folder` that the target has not applied (what is
/// about to run), with its text; all of them without a target.
pub async fn pending_files(
    folder: &Path,
    db: Option<&Db>,
) -> Result<Vec<(PathBuf, String)>, PendingError> {
    let local = super::history::migration_dirs(folder).map_err(PendingError::Folder)?;
    let applied = match db {
        Some(db) => super::history::read_table(db, db.target().schema())
            .await
            .map_err(PendingError::Db)?
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut files = Vec::new();
    for migration in local
        .into_iter()
        .filter(|m| !super::history::is_recorded(&applied, &m.name))
    {
        let path = migration.script_path;
        let text = match migration.script {
            Some(bytes) => String::from_utf8(bytes).map_err(|_| {
                PendingError::Unreadable(format!("{} is not UTF-8 text", path.display()))
            })?,
            None => {
                return Err(PendingError::Unreadable(format!(
                    "migration {} has no migration.sql ({})",
                    migration.name,
                    path.display()
                )));
            }
        };
        files.push((path, text));
    }
    Ok(files)
}

/// Why the pending migrations could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    /// The folder.
    #[error(transparent)]
    Folder(super::history::StatusError),
    /// The history table.
    #[error(transparent)]
    Db(DbError),
    /// A file.
    #[error("{0}")]
    Unreadable(String),
}
