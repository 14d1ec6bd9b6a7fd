//! `cutover baseline`: the checklist's Phase 1, natively, behind the typed confirmation.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use cutover::migrate::baseline::{self, BaselineOptions};
use cutover::target::Target;

/// Options of `cutover baseline`.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// The Prisma migrations folder.
    #[arg(long, value_name = "DIR", default_value = "prisma/migrations")]
    migrations: PathBuf,
    /// The baseline migration's folder name.
    #[arg(long, value_name = "NAME", default_value = "0_init")]
    name: String,
    /// Seconds to wait for Prisma's migration lock while a deploy holds it.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = super::deploy::parse_seconds)]
    lock_wait: f64,
    /// Confirm by typing the target database's name (required when stdin is not a terminal).
    #[arg(long, value_name = "DATABASE")]
    confirm: Option<String>,
}

/// Runs `cutover baseline`.
pub async fn run(database_url: Option<&str>, args: BaselineArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let target = Target::resolve(database_url, &cwd)?;
    let script = args.migrations.join(&args.name).join("migration.sql");
    let question = if script.exists() {
        format!("record {} as applied, without running it", script.display())
    } else {
        format!(
            "write {} from the live schema (pg_dump), then record it as applied",
            script.display()
        )
    };
    if !super::confirmed(&target, args.confirm.as_deref(), &question, &[])? {
        eprintln!("error: not confirmed: nothing was changed");
        return Ok(ExitCode::from(2));
    }
    let options = BaselineOptions {
        migrations: args.migrations,
        name: args.name,
        lock_wait: Duration::from_secs_f64(args.lock_wait),
    };
    match baseline::baseline(&target, &options, super::deploy::print_progress).await {
        Ok(done) => {
            say!(
                "{} {} ({} lines); {} recorded as applied: deploy goes on from here",
                if done.written { "wrote" } else { "took" },
                done.script.display(),
                done.lines,
                done.resolved.name
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("error: {err}");
            Ok(ExitCode::from(err.exit_code()))
        }
    }
}
