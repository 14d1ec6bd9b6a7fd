//! `cutover lint`: reviews migration SQL, graded by the live size of each table it locks.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use cutover::db::{Db, DbSettings};
use cutover::migrate::lint::{self, Limits, RuleChoice, output};
use cutover::runbook::Thresholds;
use cutover::target::{Target, TargetError};

/// Options of `cutover lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Migration files or folders (a Prisma migrations folder: each migration's
    /// `migration.sql`). None: the pending migrations of --migrations (with a target), or all
    /// of them (without one).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The Prisma migrations folder, when no PATH is given.
    #[arg(long, value_name = "DIR", default_value = "prisma/migrations")]
    migrations: PathBuf,
    /// Turn on one of squawk's rules beyond the defaults (repeatable), e.g.
    /// `require-table-schema`.
    #[arg(long = "rule", value_name = "RULE")]
    rules: Vec<String>,
    /// Turn off a rule (repeatable), e.g. `prefer-robust-stmts`.
    #[arg(long = "exclude", value_name = "RULE")]
    excludes: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = LintFormat::Text)]
    format: LintFormat,
    /// Show notes too in the text output (JSON and SARIF always have them).
    #[arg(long)]
    notes: bool,
    /// Lint without reading the target, even when one is configured (sizes unknown).
    #[arg(long)]
    offline: bool,
}

/// `--format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LintFormat {
    /// Like a compiler's messages.
    Text,
    /// One JSON object.
    Json,
    /// SARIF 2.1.0, for code-review tools.
    Sarif,
}

/// Runs `cutover lint`: 0 clean (notes allowed), 1 a warning or an error, 2 usage or an
/// unreadable file.
pub async fn run(
    database_url: Option<&str>,
    thresholds: &Thresholds,
    args: LintArgs,
) -> anyhow::Result<ExitCode> {
    let rules = RuleChoice::parse(&args.rules, &args.excludes).map_err(anyhow::Error::msg)?;
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let target = if args.offline {
        None
    } else {
        match Target::resolve(database_url, &cwd) {
            Ok(target) => Some(target),
            Err(TargetError::Missing) => None,
            Err(err) => return Err(err.into()),
        }
    };
    let db = match &target {
        Some(target) => Some(Db::connect(target, DbSettings::default()).await?),
        None => None,
    };

    let files = if args.paths.is_empty() {
        lint::pending_files(&args.migrations, db.as_ref()).await?
    } else {
        let mut files = Vec::new();
        for path in &args.paths {
            for file in lint::files_under(path).map_err(anyhow::Error::msg)? {
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot read {}: {e} (a migration file must be UTF-8 text)",
                        file.display()
                    )
                })?;
                files.push((file, text));
            }
        }
        files
    };
    let limits = Limits::from(thresholds);
    let reports = lint::lint(&files, db.as_ref(), &rules, &limits).await?;
    if let Some(db) = db {
        db.close().await;
    }
    match args.format {
        LintFormat::Text => {
            if files.is_empty() {
                say!("nothing to lint: no pending migration");
            } else {
                if target.is_none() {
                    say!(
                        "no target: sizes unknown, so locks are graded as warnings (pass --database-url to grade them by the live sizes)\n"
                    );
                }
                crate::write_out(format_args!("{}", output::text(&reports, args.notes)));
            }
        }
        LintFormat::Json => say!("{}", output::json(&reports)),
        LintFormat::Sarif => say!("{}", output::sarif(&reports)),
    }
    let counts = output::counts(&reports);
    Ok(if counts.error + counts.warning > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
