//! `cutover drift`: the target's schema against what its applied migrations make.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use cutover::db::{Db, DbSettings};
use cutover::migrate::drift::{self, DriftError};
use cutover::target::Target;

/// Options of `cutover drift`.
#[derive(Debug, Args)]
pub struct DriftArgs {
    /// The Prisma migrations folder.
    #[arg(long, value_name = "DIR", default_value = "prisma/migrations")]
    migrations: PathBuf,
    /// Replay into a database created (and dropped) on this existing server instead of a
    /// throwaway local cluster; default `SHADOW_DATABASE_URL`. Never the target's database.
    #[arg(long, value_name = "URL")]
    scratch_url: Option<String>,
}

/// Runs `cutover drift`: 0 same, 1 differences, 2 error.
pub async fn run(database_url: Option<&str>, args: DriftArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let target = Target::resolve(database_url, &cwd)?;
    let scratch =
        cutover::migrate::rehearse::scratch_from(args.scratch_url.as_deref(), Some(&target))?;
    let db = Db::connect(&target, DbSettings::default()).await?;
    let result = drift::drift(&db, &args.migrations, scratch.as_ref()).await;
    db.close().await;
    match result {
        Ok(report) if report.differences.is_empty() => {
            say!(
                "no drift: the schema is what its {} applied migration(s) make",
                report.replayed.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(report) => {
            say!(
                "{} difference(s) between the database and its {} applied migration(s):",
                report.differences.len(),
                report.replayed.len()
            );
            for line in &report.differences {
                say!("  {line}");
            }
            Ok(ExitCode::from(1))
        }
        Err(DriftError::NoHistory) => {
            eprintln!("error: {}", DriftError::NoHistory);
            Ok(ExitCode::from(2))
        }
        Err(err) => Err(err.into()),
    }
}
