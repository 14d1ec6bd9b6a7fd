//! `migrate` steps: deploy, baseline and resolve, run natively by the engine (no Node), with
//! their progress streamed as output lines, as a shell step's would be.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Event, OutputStream};
use crate::migrate::baseline::{self, BaselineError, BaselineOptions};
use crate::migrate::deploy::{self, DeployOptions, Progress};
use crate::migrate::rehearse::{self, FailedStatement, RehearseOptions};
use crate::migrate::resolve::{self, Resolution};
use crate::outcome::Outcome;
use crate::redact::Redactor;
use crate::runbook::{MigrateAction, MigrateOp, Runbook};
use crate::target::Target;

/// One `migrate` step, its templates substituted.
pub(super) struct MigrateJob<'a> {
    pub step_id: &'a str,
    pub action: &'a MigrateAction,
    /// The migrations folder.
    pub folder: PathBuf,
    /// The migration it names (baseline, resolve).
    pub migration: Option<String>,
    /// Where the dumps are (rehearse).
    pub backup_dir: Option<PathBuf>,
    /// The step's timeout: past it the deploy is cancelled (the running script too).
    pub timeout: Duration,
    /// The runbook and its variables: a rehearsal runs its validation section on the copy.
    pub runbook: Arc<Runbook>,
    /// The variables of the run.
    pub variables: BTreeMap<String, String>,
    /// What rehearsals journaled for the target found failing (deploy warns of them), with
    /// where each was measured.
    pub rehearsed: Vec<(FailedStatement, String)>,
}

/// What a baseline or resolve cancelled part-way did: its one write may have landed.
const CANCELLED_WRITE: &str = "cancelled before it finished: its record may or may not have been written; run `cutover status`";

/// How long a cancelled deploy may take to cancel its script and record the failure before it
/// is dropped (a server that no longer answers).
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// Runs the step; its progress goes out as output lines of the step (secrets masked), and its
/// result is the step's outcome: pass when it did what it should (or had nothing to do), fail
/// when a migration failed or was refused, error when it could not run (folder, connection).
pub(super) async fn run(
    job: MigrateJob<'_>,
    target: &Target,
    events: &mpsc::Sender<Event>,
    redactor: &Redactor,
    cancel: &CancellationToken,
) -> Outcome {
    // The migration code reports synchronously; the lines reach the bounded event channel
    // through an unbounded one, in order, while the action runs.
    let (said_tx, mut said_rx) = mpsc::unbounded_channel::<Said>();
    let rehearsal_tx = said_tx.clone();
    let warning_tx = said_tx.clone();
    let warn = move |line: String| {
        let _ = warning_tx.send(Said::Line(line));
    };
    let say = move |progress: Progress| {
        // Taking a free lock is not news; waiting for it was.
        if !matches!(progress, Progress::LockTaken { waited_ms } if waited_ms < 1000) {
            let _ = said_tx.send(Said::Line(progress.to_string()));
            if let Progress::Finished(applied) = progress {
                let _ = said_tx.send(Said::Applied(applied));
            }
        }
    };
    // A rehearsal's migrations ran on a copy: lines only, never a record of the target's.
    let say_rehearsal = move |progress: rehearse::Progress| {
        let _ = rehearsal_tx.send(Said::Line(progress.to_string()));
    };
    let forward = async {
        while let Some(said) = said_rx.recv().await {
            let event = match said {
                Said::Line(line) => Event::StepOutput {
                    id: job.step_id.to_string(),
                    stream: OutputStream::Stdout,
                    text: format!("{}\n", redactor.redact(&line)),
                },
                Said::Applied(applied) => Event::MigrationApplied {
                    id: job.step_id.to_string(),
                    migration: applied,
                },
            };
            let _ = events.send(event).await;
        }
    };
    let action = job.action;
    let work = async move {
        match action.op {
            MigrateOp::Deploy => deploy_step(&job, target, cancel, say, warn).await,
            MigrateOp::Rehearse => {
                drop((say, warn));
                let scratch = match rehearse::scratch_from(None, Some(target)) {
                    Ok(scratch) => scratch,
                    Err(err) => return Outcome::error(err.to_string()),
                };
                let options = RehearseOptions {
                    scratch,
                    dump: None,
                    backup_dir: job.backup_dir.clone().unwrap_or_else(|| "backups".into()),
                    migrations: job.folder.clone(),
                    jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
                    schema: target.schema().to_string(),
                };
                let rehearsal = rehearse::rehearse(&options, say_rehearsal);
                tokio::select! {
                    result = tokio::time::timeout(job.timeout, rehearsal) => match result {
                        Ok(result) => rehearsal_outcome(result, &job).await,
                        Err(_) => Outcome::error(format!("timed out after {}s; the throwaway cluster was removed", job.timeout.as_secs())),
                    },
                    _ = cancel.cancelled() => Outcome::error("cancelled; the throwaway cluster was removed"),
                }
            }
            MigrateOp::Baseline => {
                let options = BaselineOptions {
                    migrations: job.folder.clone(),
                    name: job.migration.clone().unwrap_or_else(|| "0_init".into()),
                    lock_wait: action.lock_wait,
                };
                let baseline = baseline::baseline(target, &options, say);
                tokio::select! {
                    result = tokio::time::timeout(job.timeout, baseline) => match result {
                        Ok(result) => baseline_outcome(result),
                        Err(_) => Outcome::error(format!("timed out after {}s", job.timeout.as_secs())),
                    },
                    _ = cancel.cancelled() => Outcome::error(CANCELLED_WRITE),
                }
            }
            MigrateOp::ResolveApplied | MigrateOp::ResolveRolledBack => {
                let resolution = if action.op == MigrateOp::ResolveApplied {
                    Resolution::Applied
                } else {
                    Resolution::RolledBack
                };
                let name = job.migration.clone().unwrap_or_default();
                let resolve = resolve::resolve(
                    target,
                    &job.folder,
                    &name,
                    resolution,
                    action.lock_wait,
                    say,
                );
                tokio::select! {
                    result = tokio::time::timeout(job.timeout, resolve) => match result {
                        Ok(Ok(resolved)) => Outcome::pass(format!("{resolved}")),
                        Ok(Err(err)) => failed(err.to_string(), err.exit_code()),
                        Err(_) => Outcome::error(format!("timed out after {}s", job.timeout.as_secs())),
                    },
                    _ = cancel.cancelled() => Outcome::error(CANCELLED_WRITE),
                }
            }
        }
    };
    // `work` owns the sender: when it ends, the forwarder drains what is left and ends too.
    let (outcome, ()) = tokio::join!(work, forward);
    outcome
}

/// The deploy: cancelled by the step's token or its timeout, it stops before the next
/// migration, or cancels the running script on the server and records that failure.
async fn deploy_step(
    job: &MigrateJob<'_>,
    target: &Target,
    cancel: &CancellationToken,
    say: impl FnMut(Progress),
    warn: impl Fn(String),
) -> Outcome {
    let findings = standing_findings(&job.folder, &job.rehearsed);
    for (finding, source) in &findings {
        warn(finding_warning(finding, source));
    }
    let stop = cancel.child_token();
    let options = DeployOptions {
        migrations: job.folder.clone(),
        lock_wait: job.action.lock_wait,
        lock_timeout: job.action.lock_timeout,
        retries: job.action.retries,
        cancel: stop.clone(),
    };
    let deploy = deploy::deploy(target, &options, say);
    tokio::pin!(deploy);
    let mut timed_out = false;
    let result = tokio::select! {
        result = &mut deploy => Some(result),
        _ = tokio::time::sleep(job.timeout) => None,
        _ = stop.cancelled() => None,
    };
    let result = match result {
        Some(result) => result,
        None => {
            timed_out = !cancel.is_cancelled();
            stop.cancel();
            match tokio::time::timeout(CANCEL_GRACE, &mut deploy).await {
                Ok(result) => result,
                Err(_) => {
                    return Outcome::error(format!(
                        "{}, and the server did not answer the cancellation within {}s: the migration in flight may be recorded as started and never finished; run `cutover status`",
                        if timed_out {
                            format!("timed out after {}s", job.timeout.as_secs())
                        } else {
                            "cancelled".to_string()
                        },
                        CANCEL_GRACE.as_secs()
                    ));
                }
            }
        }
    };
    // A migration the rehearsal saw fail went through here: production's data differs from
    // the copy's (a newer dump would tell); one that fails here again, the rehearsal foretold.
    let foretold = |names: &[&str]| -> Vec<String> {
        findings
            .iter()
            .filter(|(f, _)| names.contains(&f.migration.as_str()))
            .map(|(f, source)| format!("the rehearsal of {source} had found that {f}"))
            .collect()
    };
    match result {
        Ok(report) => {
            let applied: Vec<&str> = report.applied.iter().map(|a| a.name.as_str()).collect();
            let surprises = foretold(&applied);
            if !surprises.is_empty() {
                return Outcome::warn(format!(
                    "applied {} migration(s), but {}: production's data differs from the rehearsal's copy; rehearse on a newer dump",
                    report.applied.len(),
                    surprises.join("; ")
                ));
            }
            if report.applied.is_empty() {
                Outcome::pass(format!(
                    "no pending migrations: all {} are applied",
                    report.already_applied
                ))
            } else {
                let total: u64 = report.applied.iter().map(|a| a.duration_ms).sum();
                Outcome::pass(format!(
                    "applied {} migration(s) in {total} ms ({} were applied before)",
                    report.applied.len(),
                    report.already_applied
                ))
                .with_details(report.applied.iter().map(|applied| {
                    let retries = match applied.retries {
                        0 => String::new(),
                        n => format!(
                            ", {n} retr{} ({} ms lost to lock timeouts)",
                            if n == 1 { "y" } else { "ies" },
                            applied.lost_ms
                        ),
                    };
                    format!(
                        "{}: {} ms{retries}, checksum {}",
                        applied.name,
                        applied.duration_ms,
                        &applied.checksum[..applied.checksum.len().min(12)]
                    )
                }))
            }
        }
        Err(err) => {
            let mut message = match (&err, timed_out) {
                (_, true) => format!("timed out after {}s: {err}", job.timeout.as_secs()),
                _ => err.to_string(),
            };
            if let deploy::DeployError::Failed { name, .. } = &err {
                for line in foretold(&[name.as_str()]) {
                    message.push_str(&format!(" ({line})"));
                }
            }
            match err {
                // Stopped from outside (a timeout, a cancel): the step could not run to its end.
                _ if timed_out || cancel.is_cancelled() => Outcome::error(message),
                err => failed(message, err.exit_code()),
            }
        }
    }
}

fn baseline_outcome(result: Result<baseline::Baselined, BaselineError>) -> Outcome {
    match result {
        Ok(done) => Outcome::pass(format!(
            "{} {} ({} lines) and recorded {} as applied",
            if done.written { "wrote" } else { "took" },
            done.script.display(),
            done.lines,
            done.resolved.name
        )),
        Err(BaselineError::HasHistory { rows, newest }) => Outcome::pass(format!(
            "_prisma_migrations already records {rows} migration(s) (the newest: {newest}): the database is baselined, nothing to do"
        )),
        Err(err) => failed(err.to_string(), err.exit_code()),
    }
}

/// What the engine's forwarder passes on: an output line, or a migration recorded.
enum Said {
    Line(String),
    Applied(deploy::Applied),
}

/// The rehearsal's outcome: the restore's time (its data, for the rollback budget), the rows,
/// each migration's time and each statement's locks, and the validation section's results on
/// the migrated copy. It fails when a migration fails on the copy or the copy fails its
/// validation. The throwaway cluster is removed.
async fn rehearsal_outcome(
    result: Result<(rehearse::Scratch, Target, rehearse::Rehearsal), rehearse::RehearseError>,
    job: &MigrateJob<'_>,
) -> Outcome {
    let (scratch, copy, rehearsal) = match result {
        Ok(done) => done,
        Err(err) => return failed(err.to_string(), err.exit_code()),
    };
    let mut details = rehearsal.statement_lines();
    let mut message = rehearsal.summary();
    let mut passed = rehearsal.failed.is_none();
    if passed {
        match crate::check::validate_copy(job.runbook.clone(), &copy, job.variables.clone()).await {
            Ok(Some(report)) => {
                let s = &report.summary;
                let bad = s.fail + s.error;
                message.push_str(&format!(
                    "; validation on the migrated copy: {} passed, {bad} failed",
                    s.pass
                ));
                passed = bad == 0;
                details.extend(report.steps.iter().map(|step| {
                    format!(
                        "validation on the copy: {} {} {}",
                        step.status.symbol(),
                        step.id,
                        step.message
                    )
                }));
            }
            Ok(None) => {}
            Err(err) => {
                passed = false;
                message.push_str(&format!("; validation on the copy could not run: {err}"));
            }
        }
    }
    tokio::task::spawn_blocking(move || drop(scratch))
        .await
        .ok();
    let outcome = if passed {
        Outcome::pass(message)
    } else {
        Outcome::fail(message)
    };
    outcome
        .with_details(details)
        .with_data(rehearsal.measurement())
}

/// The rehearsals' findings that still stand for the migrations of `folder`: the migration is
/// still there with the very script the rehearsal ran (an edited script makes the finding
/// stale). The deploy step and the wizard's confirmation both warn of them.
pub fn standing_findings<'r>(
    folder: &std::path::Path,
    rehearsed: &'r [(FailedStatement, String)],
) -> Vec<(&'r FailedStatement, &'r str)> {
    // Nothing to look for: the folder is not read.
    if rehearsed.is_empty() {
        return Vec::new();
    }
    let Ok(local) = crate::migrate::history::migration_dirs(folder) else {
        return Vec::new();
    };
    rehearsed
        .iter()
        .filter(|(finding, _)| {
            local.iter().any(|m| {
                m.name == finding.migration
                    && m.script.as_deref().is_some_and(|s| {
                        crate::migrate::history::checksum_bytes(s) == finding.checksum
                    })
            })
        })
        .map(|(finding, source)| (finding, source.as_str()))
        .collect()
}

/// What the rehearsals journaled (or run earlier in this run) found failing, with where each
/// was measured: a step whose data holds a failed statement.
pub fn rehearsal_findings(
    measured: &std::collections::HashMap<String, crate::probes::Measured>,
) -> Vec<(FailedStatement, String)> {
    measured
        .values()
        .filter_map(|measured| {
            let failed = measured.data.get("failed")?.clone();
            Some((
                serde_json::from_value(failed).ok()?,
                measured.source.clone(),
            ))
        })
        .collect()
}

/// The warning the deploy gives, before it runs, for a finding that stands.
pub fn finding_warning(finding: &FailedStatement, source: &str) -> String {
    format!(
        "warning: the rehearsal of {source} found that {finding}; the script is unchanged since"
    )
}

/// A refusal or a failed migration fails the step; what kept it from running (the folder, the
/// connection, a tool) is an error.
fn failed(message: String, exit_code: u8) -> Outcome {
    if exit_code == 1 {
        Outcome::fail(message)
    } else {
        Outcome::error(message)
    }
}
