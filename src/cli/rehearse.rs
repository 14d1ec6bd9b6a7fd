//! `cutover rehearse`: the newest dump restored into a throwaway cluster, the pending
//! migrations applied to it, each timed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use cutover::migrate::rehearse::{self, Progress, RehearseOptions};
use cutover::target::{Target, TargetError};

/// Options of `cutover rehearse`.
#[derive(Debug, Args)]
pub struct RehearseArgs {
    /// The custom-format dump to restore (default: the newest `*.dump` of --backup-dir).
    #[arg(long, value_name = "FILE")]
    dump: Option<PathBuf>,
    /// Where the dumps are (the runbook's backup_dir).
    #[arg(long, value_name = "DIR", default_value = "backups")]
    backup_dir: PathBuf,
    /// The Prisma migrations folder.
    #[arg(long, value_name = "DIR", default_value = "prisma/migrations")]
    migrations: PathBuf,
    /// Parallel restore jobs (default: the number of cores).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Leave the copy running and print its URL; Ctrl-C removes it.
    #[arg(long)]
    keep: bool,
}

/// Runs `cutover rehearse`: 0 rehearsed, 1 a migration failed on the copy, 2 could not run.
pub async fn run(database_url: Option<&str>, args: RehearseArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    // The target only names the schema the app uses; the rehearsal never connects to it.
    let schema = match Target::resolve(database_url, &cwd) {
        Ok(target) => target.schema().to_string(),
        Err(TargetError::Missing) => "public".to_string(),
        Err(err) => return Err(err.into()),
    };
    let options = RehearseOptions {
        dump: args.dump,
        backup_dir: args.backup_dir,
        migrations: args.migrations,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        schema,
    };
    let result = rehearse::rehearse(&options, |progress| match progress {
        Progress::Dump {
            path,
            bytes,
            from_version,
            tables,
        } => println!(
            "restoring {path} ({:.1} MiB, {tables} tables with data, from PostgreSQL {from_version}) into a throwaway cluster",
            bytes as f64 / 1024.0 / 1024.0
        ),
        Progress::Restored { done, total, table } => {
            println!("  [{done}/{total}] {table}")
        }
        Progress::RestoreFinished { ms } => println!(
            "restored in {:.1} s: the restore part of the rollback budget (the checklist's is 5 minutes)",
            ms as f64 / 1000.0
        ),
        Progress::Migration(applied) => println!(
            "  applied {} to the copy in {} ms",
            applied.name, applied.duration_ms
        ),
    })
    .await;
    match result {
        Ok((cluster, copy, rehearsal)) => {
            let rows: i64 = rehearsal.rows.iter().map(|(_, n)| n).sum();
            println!(
                "verified: {} table(s), {rows} row(s) counted on the copy",
                rehearsal.rows.len()
            );
            let total: u64 = rehearsal.migrations.iter().map(|m| m.duration_ms).sum();
            println!(
                "rehearsed {} pending migration(s) in {total} ms on production's data",
                rehearsal.migrations.len()
            );
            if args.keep {
                println!("the copy stays up until Ctrl-C: {copy}");
                let _ = tokio::signal::ctrl_c().await;
            }
            tokio::task::spawn_blocking(move || drop(cluster))
                .await
                .ok();
            println!("removed the throwaway cluster");
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("error: {err}");
            Ok(ExitCode::from(err.exit_code()))
        }
    }
}
