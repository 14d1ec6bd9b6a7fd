//! Headless runs (`cutover check`): select steps, run them through the engine, collect a report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::{Db, DbError, DbSettings};
use crate::engine::{self, EngineConfig, Event};
use crate::journal::{Journal, JournalError, Mode, NewRun, Recorder};
use crate::outcome::Status;
use crate::runbook::{Action, Runbook};
use crate::target::Target;

/// What a headless run is allowed to do.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Sections or steps to run (empty: all).
    pub only: Vec<String>,
    /// Run shell steps.
    pub allow_shell: bool,
    /// Run HTTP steps.
    pub allow_http: bool,
    /// The database name that confirms destructive steps.
    pub confirm: Option<String>,
    /// `--var` overrides.
    pub variables: BTreeMap<String, String>,
    /// Where shell steps run.
    pub workdir: Option<PathBuf>,
    /// Where the run is recorded (none: not recorded).
    pub journal: Option<Journal>,
    /// With a journal in PostgreSQL, the embedded journal that records the run first (a
    /// control database that stops answering loses nothing).
    pub mirror: Option<Journal>,
    /// Whether this run is a rehearsal.
    pub rehearsal: bool,
    /// The two-person rule ([`crate::approval::Gate::for_run`]): a confirmed destructive step
    /// waits for a second person's `cutover approve`, said on standard error.
    pub approval: Option<crate::approval::Gate>,
    /// On SIGTERM, SIGHUP or SIGINT, cancel the running steps (killing their process groups),
    /// record why, and end with the report (the binary sets it; a library caller keeps its
    /// own signal handling).
    pub handle_signals: bool,
}

/// Why a headless run could not start.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// `--only` names nothing in the runbook.
    #[error(
        "unknown step or section `{id}` in --only{suggestion} (`cutover runbook export` shows every id)"
    )]
    UnknownStep {
        /// The id as given.
        id: String,
        /// ": did you mean `x`?" or empty.
        suggestion: String,
    },
    /// The target cannot be reached.
    #[error(transparent)]
    Connection(#[from] DbError),
    /// The journal cannot record the run.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// One step's line in the report (the JSON contract's `steps[]`).
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// `section.step`.
    pub id: String,
    /// Section id.
    pub section: String,
    /// Step title.
    pub title: String,
    /// Step kind.
    pub kind: &'static str,
    /// How it ended.
    pub status: Status,
    /// One line.
    pub message: String,
    /// Further lines.
    pub details: Vec<String>,
    /// How long it ran.
    pub duration_ms: u64,
}

/// Counts by status.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Passed.
    pub pass: usize,
    /// Failed.
    pub fail: usize,
    /// Warnings.
    pub warn: usize,
    /// Skipped.
    pub skip: usize,
    /// Errors.
    pub error: usize,
}

impl Summary {
    fn count(&mut self, status: Status) {
        match status {
            Status::Pass => self.pass += 1,
            Status::Fail => self.fail += 1,
            Status::Warn => self.warn += 1,
            Status::Skip => self.skip += 1,
            Status::Error => self.error += 1,
        }
    }
}

/// A finished headless run (the JSON contract's top level).
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Runbook name.
    pub runbook: String,
    /// Target URL, password redacted.
    pub target: String,
    /// Run id.
    pub run_id: String,
    /// When it began.
    #[serde(serialize_with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: u64,
    /// Every selected step, in runbook order.
    pub steps: Vec<StepReport>,
    /// Counts by status.
    pub summary: Summary,
}

fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

impl CheckReport {
    /// Whether any step failed or errored (exit code 1).
    pub fn failed(&self) -> bool {
        self.summary.fail + self.summary.error > 0
    }
}

/// Resolves `--only` (section ids or full step ids) to full step ids in runbook order.
pub fn select_steps(runbook: &Runbook, only: &[String]) -> Result<Vec<String>, CheckError> {
    if only.is_empty() {
        return Ok(runbook.steps().map(|s| s.id.clone()).collect());
    }
    for id in only {
        if runbook.section(id).is_none() && runbook.step(id).is_none() {
            let candidates = runbook
                .sections
                .iter()
                .map(|s| s.id.as_str())
                .chain(runbook.steps().map(|s| s.id.as_str()));
            let best = candidates
                .map(|c| (strsim::jaro_winkler(id, c), c))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .filter(|(score, _)| *score > 0.8);
            return Err(CheckError::UnknownStep {
                id: id.clone(),
                suggestion: best
                    .map(|(_, c)| format!(": did you mean `{c}`?"))
                    .unwrap_or_default(),
            });
        }
    }
    Ok(runbook
        .steps()
        .filter(|step| only.contains(&step.id) || only.contains(&step.section))
        .map(|step| step.id.clone())
        .collect())
}

/// Runs the selected steps against `target` and gathers the report.
pub async fn run_check(
    runbook: Arc<Runbook>,
    target: &Target,
    options: &CheckOptions,
) -> Result<CheckReport, CheckError> {
    let selected = select_steps(&runbook, &options.only)?;
    let (measured, durations) = match &options.journal {
        Some(journal) => (
            journal.measurements(&target.to_string()).await?,
            journal.durations(&target.to_string()).await?,
        ),
        None => Default::default(),
    };
    // `--only` runs the named steps after what they need of their own section; what they need
    // of another (a baseline) must already be met, or holds them back.
    let ids = engine::plan::with_dependencies(
        &runbook,
        &selected,
        &engine::plan::passed(measured.keys()),
        engine::plan::Reach::SameSection,
    );
    tracing::info!(runbook = %runbook.name, %target, steps = ids.len(), "check started");
    let started_at = Utc::now();
    let clock = Instant::now();
    let needs_database = ids.iter().any(|id| {
        runbook
            .step(id)
            .is_some_and(|s| matches!(s.action, Action::Sql { .. } | Action::Probe { .. }))
    });
    let db = if needs_database {
        let db = Db::connect(target, DbSettings::default()).await?;
        tracing::info!("connected");
        db.warm(&crate::probes::warm_up()).await;
        tracing::info!(connections = db.pool_size(), "connections warmed");
        db
    } else {
        Db::connect_lazy(target, DbSettings::default())
    };
    let config = EngineConfig {
        allow_shell: options.allow_shell,
        allow_http: options.allow_http,
        confirmed_database: options.confirm.clone(),
        variables: engine::resolve_variables(&runbook, &options.variables),
        workdir: options
            .workdir
            .clone()
            .unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))),
        measured,
        durations,
        approval: options.approval.clone(),
        operator: crate::journal::operator(),
        ..EngineConfig::default()
    };
    let run_id = match &options.journal {
        Some(journal) => {
            let new = NewRun {
                runbook_name: runbook.name.clone(),
                runbook_text: runbook.source.clone(),
                target: target.to_string(),
                mode: if options.rehearsal {
                    Mode::Rehearsal
                } else {
                    Mode::Production
                },
                origin: "check",
            };
            let run = journal.create_run(new).await?;
            if let Some(mirror) = &options.mirror {
                mirror.mirror_run(&run, &runbook.source).await?;
            }
            run.id
        }
        None => uuid::Uuid::now_v7().to_string(),
    };
    // The run is this process's while it runs: a watcher, or a second person asked for an
    // approval, sees who holds it.
    let _lock = match &options.journal {
        Some(journal) => Some(journal.lock_run(&run_id).await?),
        None => None,
    };
    let mut recorder =
        Recorder::new(options.journal.clone(), run_id.clone()).mirrored(options.mirror.clone());
    let mut handle = engine::spawn(runbook.clone(), db.clone(), config);
    let _ = handle
        .commands
        .send(engine::Command::RunSteps {
            ids: ids.clone(),
            confirmed_database: None,
        })
        .await;
    let mut finished: BTreeMap<String, StepReport> = BTreeMap::new();
    let signal = async {
        if options.handle_signals {
            engine::termination_signal().await
        } else {
            std::future::pending().await
        }
    };
    tokio::pin!(signal);
    let mut cancelling = false;
    loop {
        let event = tokio::select! {
            event = handle.events.recv() => match event {
                Some(event) => event,
                None => break,
            },
            signal = &mut signal, if !cancelling => {
                // The steps end as errors, "cancelled: cutover received SIGTERM", their
                // process groups killed; the report is made and printed as usual.
                cancelling = true;
                let reason = format!("cutover received {signal}");
                let _ = handle.commands.send(engine::Command::CancelAll { reason }).await;
                continue;
            }
            () = recorder.due() => {
                recorder.flush_due().await?;
                continue;
            }
        };
        recorder.event(&event).await?;
        if let Some(news) = recorder.news() {
            eprintln!("{news}");
        }
        match event {
            Event::StepFinished {
                id,
                outcome,
                duration,
            } => {
                let Some(step) = runbook.step(&id) else {
                    continue;
                };
                finished.insert(
                    id.clone(),
                    StepReport {
                        id,
                        section: step.section.clone(),
                        title: step.title.clone(),
                        kind: step.kind().as_str(),
                        status: outcome.status,
                        message: outcome.message,
                        details: outcome.details,
                        duration_ms: duration.as_millis() as u64,
                    },
                );
            }
            // Headless, the second person needs the run and the step: said at once.
            Event::Approval {
                id,
                approval: crate::approval::Approval::Requested(request),
            } => {
                eprintln!(
                    "{id} waits for a second person's approval ({}): from another account, `cutover approve {run_id} {id} --confirm {}`",
                    request.action, request.database
                );
            }
            Event::BatchFinished => break,
            _ => {}
        }
    }
    match recorder.finish().await {
        // The report is made all the same: the run is whole in the local journal.
        Err(err @ JournalError::Unsent { .. }) => eprintln!("warning: {err}"),
        other => other?,
    }
    handle.shutdown().await;
    db.close().await;

    let mut summary = Summary::default();
    let steps: Vec<StepReport> = ids
        .iter()
        .filter_map(|id| finished.remove(id))
        .inspect(|step| summary.count(step.status))
        .collect();
    Ok(CheckReport {
        runbook: runbook.name.clone(),
        target: target.to_string(),
        run_id,
        started_at,
        duration_ms: clock.elapsed().as_millis() as u64,
        steps,
        summary,
    })
}

/// The runbook sections run on a rehearsal's migrated copy: the critical tables, columns and
/// indexes (the restore verified, as the migrations leave it), then the post-migration
/// validation.
pub const COPY_SECTIONS: &[&str] = &["tables", "validation"];

/// Runs the runbook's critical-tables and post-migration validation sections
/// ([`COPY_SECTIONS`]) on a rehearsal's migrated copy, so that a restore that lost a critical
/// table or index, or a migration that breaks a critical query or a key, is caught before
/// production. Only the steps that stand on their own run: one that compares with a capture
/// taken in another section (the row-count baseline) has nothing to compare with on a copy.
/// `None` when the runbook has no such step.
pub async fn validate_copy(
    runbook: Arc<Runbook>,
    copy: &Target,
    variables: BTreeMap<String, String>,
) -> Result<Option<CheckReport>, CheckError> {
    let mut only = Vec::new();
    for id in COPY_SECTIONS {
        let Some(section) = runbook.section(id) else {
            continue;
        };
        let own = format!("{id}.");
        only.extend(
            section
                .steps
                .iter()
                .filter(|step| step.depends_on.iter().all(|d| d.starts_with(&own)))
                .map(|step| step.id.clone()),
        );
    }
    if only.is_empty() {
        return Ok(None);
    }
    let options = CheckOptions {
        only,
        variables,
        ..CheckOptions::default()
    };
    // Boxed: the engine runs this from a step of its own.
    Box::pin(run_check(runbook, copy, &options)).await.map(Some)
}
