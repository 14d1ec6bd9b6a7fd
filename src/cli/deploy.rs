//! `cutover deploy`: Prisma's `migrate deploy`, natively, behind the typed confirmation.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use cutover::migrate::deploy::{self, DeployOptions, Progress};
use cutover::target::Target;

/// Options of `cutover deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The Prisma migrations folder.
    #[arg(long, value_name = "DIR", default_value = "prisma/migrations")]
    migrations: PathBuf,
    /// Seconds to wait for Prisma's migration lock while another deploy holds it.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_seconds)]
    lock_wait: f64,
    /// `lock_timeout` of each migration, in seconds: a statement that waits longer for a lock
    /// gives up instead of stalling the app's queries queued behind it.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = parse_seconds)]
    lock_timeout: f64,
    /// How many times a migration that timed out on a lock, and left nothing behind, runs again.
    #[arg(long, value_name = "N", default_value_t = 3)]
    retries: u32,
    /// Confirm by typing the target database's name (required when stdin is not a terminal).
    #[arg(long, value_name = "DATABASE")]
    confirm: Option<String>,
}

pub(super) fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && (0.0..=86_400.0).contains(&seconds) => Ok(seconds),
        _ => Err(format!(
            "`{text}` is not a number of seconds between 0 and 86400"
        )),
    }
}

/// Runs `cutover deploy`.
pub async fn run(database_url: Option<&str>, args: DeployArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let target = Target::resolve(database_url, &cwd)?;

    // What will run, read first on the deploy's own session (one connection for the whole
    // command), so that the confirmation names it; the lock is taken only once confirmed.
    let mut conn = match deploy::connect(&target).await {
        Ok(conn) => conn,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(ExitCode::from(2));
        }
    };
    let pending = match deploy::pending(&mut conn, &target, &args.migrations).await {
        Ok(pending) => pending,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(ExitCode::from(err.exit_code()));
        }
    };
    if pending.is_empty() {
        say!(
            "no pending migrations in {}: all are applied",
            args.migrations.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let question = format!("{} migration(s) to apply", pending.len());
    if !super::confirmed(&target, args.confirm.as_deref(), &question, &pending)? {
        eprintln!("error: not confirmed: nothing was applied");
        return Ok(ExitCode::from(2));
    }
    // Ctrl-C, SIGTERM or a lost terminal stop the deploy cleanly: before the next migration,
    // or by cancelling the running script on the server (its row then records the failure).
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        let signal = cutover::engine::termination_signal().await;
        eprintln!("{signal}: stopping the deploy");
        on_signal.cancel();
    });
    let options = DeployOptions {
        migrations: args.migrations,
        lock_wait: Duration::from_secs_f64(args.lock_wait),
        lock_timeout: Duration::from_secs_f64(args.lock_timeout),
        retries: args.retries,
        cancel,
    };
    let result = deploy::deploy_on(conn, &target, &options, print_progress).await;
    match result {
        Ok(report) => {
            say!(
                "applied {} migration(s); {} were applied before",
                report.applied.len(),
                report.already_applied
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("error: {err}");
            Ok(ExitCode::from(err.exit_code()))
        }
    }
}

pub(super) fn print_progress(progress: Progress) {
    // Taking a free lock is not news; waiting for it was.
    if !matches!(progress, Progress::LockTaken { waited_ms } if waited_ms < 1000) {
        say!("{progress}");
    }
}
