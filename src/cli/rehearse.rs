//! `cutover rehearse`: the newest dump restored into a throwaway cluster, the pending
//! migrations applied to it, each timed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use cutover::check::{self, Summary};
use cutover::journal::{Entry, Journal, Mode, NewRun, Recorder};
use cutover::migrate::rehearse::{self, Rehearsal, RehearseOptions};
use cutover::outcome::Outcome;
use cutover::runbook::Runbook;
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
    /// Make a fresh dump of the target into --backup-dir first (as backup.dump does), counting
    /// every table's rows in the very snapshot it reads: the restored counts must then match
    /// exactly.
    #[arg(long, conflicts_with = "dump")]
    fresh_dump: bool,
    /// Restore into a database created (and dropped at the end) on this existing server,
    /// instead of a throwaway local cluster (a bastion without the server binaries); default
    /// `SHADOW_DATABASE_URL`. Never the target's database.
    #[arg(long, value_name = "URL")]
    scratch_url: Option<String>,
}

/// Runs `cutover rehearse`: 0 rehearsed, 1 a migration failed on the copy, 2 could not run.
/// The rehearsal is journaled as a rehearsal run of `runbook` (the restore as
/// `backup.restore_tested`, the migrations as `apply.deploy`), so that a production run shows
/// its timings beside its own.
pub async fn run(
    database_url: Option<&str>,
    runbook: &Runbook,
    args: RehearseArgs,
) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    // The target only names the schema the app uses (and the journal's run); the rehearsal
    // never connects to it.
    let target = match Target::resolve(database_url, &cwd) {
        Ok(target) => Some(target),
        Err(TargetError::Missing) => None,
        Err(err) => return Err(err.into()),
    };
    let schema = target
        .as_ref()
        .map_or("public".to_string(), |t| t.schema().to_string());
    let journal = crate::open_journal(target.as_ref()).await?;
    let run = journal
        .create_run(NewRun {
            runbook_name: runbook.name.clone(),
            runbook_text: runbook.source.clone(),
            target: target
                .as_ref()
                .map_or("a restored copy (no target given)".to_string(), |t| {
                    t.to_string()
                }),
            mode: Mode::Rehearsal,
            origin: "rehearse",
        })
        .await?;
    let mut recorder = Recorder::new(Some(journal.clone()), run.id.clone());
    let mut dump = args.dump;
    let mut snapshot_rows = None;
    if args.fresh_dump {
        let Some(target) = &target else {
            anyhow::bail!(
                "--fresh-dump needs the target to dump: pass --database-url or set DATABASE_URL"
            );
        };
        say!(
            "dumping {target} into {} (rows counted in the dump's snapshot)",
            args.backup_dir.display()
        );
        match rehearse::dump_with_counts(target, &args.backup_dir).await {
            Ok(made) => {
                dump = Some(made.path);
                snapshot_rows = Some(made.rows);
            }
            Err(err) => {
                recorder.finish().await?;
                eprintln!("error: {err}");
                return Ok(ExitCode::from(err.exit_code()));
            }
        }
    }
    let scratch = match rehearse::scratch_from(args.scratch_url.as_deref(), target.as_ref()) {
        Ok(scratch) => scratch,
        Err(err) => {
            recorder.finish().await?;
            eprintln!("error: {err}");
            return Ok(ExitCode::from(err.exit_code()));
        }
    };
    let options = RehearseOptions {
        scratch,
        dump,
        backup_dir: args.backup_dir,
        migrations: args.migrations,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        schema,
    };
    let rehearsal = rehearse::rehearse(&options, |progress| say!("{progress}"));
    // Ctrl-C, SIGTERM or a lost terminal stop the rehearsal: dropping it kills pg_restore and
    // removes the throwaway cluster and its files.
    let result = tokio::select! {
        result = rehearsal => result,
        signal = cutover::engine::termination_signal() => {
            recorder.finish().await?;
            eprintln!("error: interrupted by {signal}: the throwaway cluster and its files (or the scratch database) were removed");
            return Ok(ExitCode::from(2));
        }
    };
    match result {
        Ok((scratch, copy, rehearsal)) => {
            record(&mut recorder, &rehearsal).await?;
            // A copy a migration failed on is not what production would be: nothing to
            // validate.
            let validation = match &rehearsal.failed {
                None => validate(runbook, &copy, &mut recorder).await?,
                Some(_) => Summary::default(),
            };
            recorder.finish().await?;
            let rows: i64 = rehearsal.rows.iter().map(|(_, n)| n).sum();
            let mut verified = true;
            match &snapshot_rows {
                Some(expected) => {
                    let differences = rehearse::count_differences(expected, &rehearsal.rows);
                    if differences.is_empty() {
                        say!(
                            "verified: {} table(s), {rows} row(s), every count equal to the dump's snapshot",
                            rehearsal.rows.len()
                        );
                    } else {
                        verified = false;
                        say!("the restore does not match the dump's snapshot:");
                        for line in &differences {
                            say!("  ✗ {line}");
                        }
                    }
                }
                None => {
                    say!(
                        "verified: {} table(s), {rows} row(s) counted on the copy",
                        rehearsal.rows.len()
                    );
                    if let Some(target) = &target {
                        compare_with_baseline(&journal, target, &rehearsal).await;
                    }
                }
            }
            let total: u64 = rehearsal.migrations.iter().map(|m| m.duration_ms).sum();
            match &rehearsal.failed {
                None => say!(
                    "rehearsed {} pending migration(s) in {total} ms on production's data",
                    rehearsal.migrations.len()
                ),
                Some(failed) => {
                    verified = false;
                    eprintln!(
                        "error: the rehearsal found that {failed}: the production deploy would fail there; fix the migration and rehearse again"
                    );
                }
            }
            if args.keep {
                say!("the copy stays up until Ctrl-C: {copy}");
                let _ = tokio::signal::ctrl_c().await;
            }
            let removed = match &scratch {
                rehearse::Scratch::Cluster(_) => "removed the throwaway cluster".to_string(),
                rehearse::Scratch::Database(_) => {
                    format!("dropped the scratch database {}", copy.database())
                }
            };
            tokio::task::spawn_blocking(move || drop(scratch))
                .await
                .ok();
            say!("{removed}");
            Ok(if validation.fail + validation.error > 0 || !verified {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(err) => {
            recorder.finish().await?;
            eprintln!("error: {err}");
            Ok(ExitCode::from(err.exit_code()))
        }
    }
}

/// The rehearsal's run: the restore (`backup.restore_tested`, whose data holds what the
/// rollback section and the production deploy read) and the migrations (`apply.deploy`, one
/// record per migration, failed when one failed on the copy), with their times.
async fn record(recorder: &mut Recorder, rehearsal: &Rehearsal) -> anyhow::Result<()> {
    let rows: i64 = rehearsal.rows.iter().map(|(_, n)| n).sum();
    recorder
        .record(Some(RESTORE_STEP), Entry::StepStarted)
        .await?;
    let restored = Outcome::pass(format!(
        "rehearsal: {} restored into a throwaway cluster in {:.1} s; {} table(s), {rows} row(s) counted",
        rehearsal.dump,
        rehearsal.restore_ms as f64 / 1000.0,
        rehearsal.rows.len()
    ))
    .with_data(rehearsal.measurement());
    recorder
        .finished(RESTORE_STEP, &restored, rehearsal.restore_ms)
        .await?;
    recorder
        .record(Some(DEPLOY_STEP), Entry::StepStarted)
        .await?;
    for applied in &rehearsal.migrations {
        recorder
            .record(Some(DEPLOY_STEP), Entry::MigrationApplied(applied.clone()))
            .await?;
    }
    let total: u64 = rehearsal.migrations.iter().map(|m| m.duration_ms).sum();
    let deployed = match &rehearsal.failed {
        None => Outcome::pass(format!(
            "rehearsal: {} pending migration(s) applied to the restored copy in {total} ms",
            rehearsal.migrations.len()
        )),
        Some(failed) => Outcome::fail(format!(
            "rehearsal: {failed}; the production deploy would fail there"
        )),
    }
    .with_details(rehearsal.statement_lines());
    recorder.finished(DEPLOY_STEP, &deployed, total).await?;
    Ok(())
}

/// The bundled runbook's steps the rehearsal measures.
const RESTORE_STEP: &str = "backup.restore_tested";
const DEPLOY_STEP: &str = "apply.deploy";

/// Runs the runbook's post-migration validation section on the migrated copy
/// ([`check::validate_copy`]); records each step in the rehearsal's run and prints a line
/// each.
async fn validate(
    runbook: &Runbook,
    copy: &Target,
    recorder: &mut Recorder,
) -> anyhow::Result<Summary> {
    let variables = cutover::engine::resolve_variables(runbook, &Default::default());
    let Some(report) =
        check::validate_copy(std::sync::Arc::new(runbook.clone()), copy, variables).await?
    else {
        return Ok(Summary::default());
    };
    say!("validation on the migrated copy:");
    for step in &report.steps {
        say!(
            "  {} {:<28} {}",
            step.status.symbol(),
            step.id,
            step.message
        );
        recorder.record(Some(&step.id), Entry::StepStarted).await?;
        let outcome = Outcome::new(step.status, format!("rehearsal: {}", step.message))
            .with_details(step.details.clone());
        recorder
            .finished(&step.id, &outcome, step.duration_ms)
            .await?;
    }
    let s = &report.summary;
    say!(
        "  {} passed, {} failed, {} warnings, {} skipped, {} errors",
        s.pass,
        s.fail,
        s.warn,
        s.skip,
        s.error
    );
    Ok(report.summary.clone())
}

/// For a dump cutover did not make: the restored counts beside the row-count baseline
/// journaled for the target (`baseline.row_counts`), saying which one. The app may have
/// written between the two, so a difference is shown, not judged.
async fn compare_with_baseline(journal: &Journal, target: &Target, rehearsal: &Rehearsal) {
    let Ok(measured) = journal.measurements(&target.to_string()).await else {
        return;
    };
    let Some(baseline) = measured.get("baseline.row_counts") else {
        say!(
            "no row-count baseline journaled for this target to compare with (baseline.row_counts)"
        );
        return;
    };
    let Some(tables) = baseline.data.get("tables").and_then(|t| t.as_object()) else {
        return;
    };
    let restored: std::collections::HashMap<String, i64> = rehearsal
        .rows
        .iter()
        .filter_map(|(key, n)| {
            cutover::migrate::lint::locks::relation(key, false).map(|r| (r.name, *n))
        })
        .collect();
    let mut equal = 0;
    let mut differ = Vec::new();
    for (table, count) in tables {
        let Some(rows) = count.get("rows").and_then(|r| r.as_i64()) else {
            continue;
        };
        match restored.get(table) {
            Some(got) if *got == rows => equal += 1,
            Some(got) => differ.push(format!("{table}: {got} restored, {rows} in the baseline")),
            None => differ.push(format!("{table}: not in the dump ({rows} in the baseline)")),
        }
    }
    say!(
        "compared with the row-count baseline of {}: {equal} table(s) equal, {} differ{}",
        baseline.source,
        differ.len(),
        if differ.is_empty() {
            ""
        } else {
            " (the app may have written between the baseline and the dump)"
        }
    );
    for line in differ {
        say!("  {line}");
    }
}
