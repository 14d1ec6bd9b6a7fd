//! `cutover resolve`: Prisma's `migrate resolve`, natively, behind the typed confirmation.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use cutover::migrate::resolve::{self, Resolution};
use cutover::target::Target;

/// Options of `cutover resolve`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("resolution").required(true).args(["applied", "rolled_back"])))]
pub struct ResolveArgs {
    /// Record migration NAME as applied, without running it (a baseline, or a failed migration
    /// completed by hand).
    #[arg(long, value_name = "NAME")]
    applied: Option<String>,
    /// Record the failed attempts of migration NAME as rolled back (undone by hand), so that
    /// deploy runs it again.
    #[arg(long, value_name = "NAME")]
    rolled_back: Option<String>,
    /// The Prisma migrations folder.
    #[arg(long, value_name = "DIR", default_value = "prisma/migrations")]
    migrations: PathBuf,
    /// Seconds to wait for Prisma's migration lock while a deploy holds it.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = super::deploy::parse_seconds)]
    lock_wait: f64,
    /// Confirm by typing the target database's name (required when stdin is not a terminal).
    #[arg(long, value_name = "DATABASE")]
    confirm: Option<String>,
}

/// Runs `cutover resolve`.
pub async fn run(database_url: Option<&str>, args: ResolveArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let target = Target::resolve(database_url, &cwd)?;
    let (name, resolution, question) = match (args.applied, args.rolled_back) {
        (Some(name), _) => (
            name,
            Resolution::Applied,
            "record as applied, without running it",
        ),
        (None, Some(name)) => (
            name,
            Resolution::RolledBack,
            "record the failed attempts as rolled back",
        ),
        (None, None) => anyhow::bail!("say --applied NAME or --rolled-back NAME"),
    };
    if !super::confirmed(
        &target,
        args.confirm.as_deref(),
        question,
        std::slice::from_ref(&name),
    )? {
        eprintln!("error: not confirmed: nothing was changed");
        return Ok(ExitCode::from(2));
    }
    let result = resolve::resolve(
        &target,
        &args.migrations,
        &name,
        resolution,
        Duration::from_secs_f64(args.lock_wait),
        super::deploy::print_progress,
    )
    .await;
    match result {
        Ok(resolved) => {
            say!("{resolved}");
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("error: {err}");
            Ok(ExitCode::from(err.exit_code()))
        }
    }
}
