//! The async worker that the wizard and headless `check` share. Commands come in over a channel;
//! it runs steps (SQL, probes, shell, HTTP) with timeouts and cancellation, independent ones
//! concurrently, and sends back `Event`s. It knows nothing of the screen.

mod http;
mod migrate;
pub use migrate::{finding_warning, rehearsal_findings, standing_findings};
pub mod plan;
mod shell;

pub use shell::{SUPERVISOR_GRACE, end_group, group_alive, output_lines};

/// Ends with the name of the first SIGTERM, SIGHUP (the SSH session or the tmux pane went
/// away) or SIGINT this process receives; never, when they cannot be watched. Once called,
/// these signals no longer end the process by themselves: the caller cancels its steps
/// (`Command::CancelAll`), records them, and exits.
pub async fn termination_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
        _ = int.recv() => "SIGINT",
    }
}
mod slots;
mod sql;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::approval;
use crate::db::Db;
use crate::outcome::{Outcome, Status};
use crate::probes;
use crate::redact::Redactor;
use crate::runbook::{Action, Runbook, Severity, Step, vars};

/// A request to the engine.
#[derive(Debug, Clone)]
pub enum Command {
    /// Run these steps (full ids), respecting their dependencies; ends with `BatchFinished`.
    RunSteps {
        /// Full step ids, in any order; they run in runbook order as dependencies allow.
        ids: Vec<String>,
        /// The database name the person typed to confirm destructive steps, for this run
        /// (headless runs give it once, as `--confirm`, in the config instead).
        confirmed_database: Option<String>,
    },
    /// Give a variable a value for the steps that run from now on.
    SetVariable {
        /// Variable name.
        name: String,
        /// Its value.
        value: String,
    },
    /// What a step ended with outside the engine: a person's tick, signature or skip in the
    /// wizard, or a journaled result of a resumed run. Dependencies are decided on it.
    NoteStatus {
        /// Full step id.
        id: String,
        /// What it ended with (a tick or a signature is a pass).
        status: Status,
    },
    /// Cancel a running step (kills a shell step's process group).
    CancelStep {
        /// Full step id.
        id: String,
    },
    /// Cancel every running and waiting step, saying why (a signal, the person quitting); the
    /// batches end with the steps as errors, "cancelled: REASON".
    CancelAll {
        /// Why, for each step's message.
        reason: String,
    },
    /// Cancel everything and stop.
    Shutdown,
}

/// Which pipe a line of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Something that happened in the engine.
#[derive(Debug, Clone)]
pub enum Event {
    /// A step began.
    StepStarted {
        /// Full step id.
        id: String,
    },
    /// A shell step's process started: its pid, which is also its process group.
    StepProcess {
        /// Full step id.
        id: String,
        /// The group leader's pid (the group's id).
        pid: u32,
        /// The command, redacted.
        command: String,
    },
    /// Output of a shell step, as the pipe delivered it: whole lines, each ending with `\n`
    /// ([`output_lines`] splits them), secrets masked.
    StepOutput {
        /// Full step id.
        id: String,
        /// stdout or stderr.
        stream: OutputStream,
        /// One or more lines.
        text: String,
    },
    /// A step ended.
    StepFinished {
        /// Full step id.
        id: String,
        /// What it found (severity already applied).
        outcome: Outcome,
        /// How long it ran.
        duration: Duration,
    },
    /// A `migrate` step applied one migration (its output says so too).
    MigrationApplied {
        /// Full step id.
        id: String,
        /// The migration, as recorded in `_prisma_migrations`, with its timings.
        migration: crate::migrate::deploy::Applied,
    },
    /// A confirmed destructive step waits for a second person (the two-person rule), or
    /// was answered.
    Approval {
        /// Full step id.
        id: String,
        /// The request, or what became of it.
        approval: crate::approval::Approval,
    },
    /// Every step of a `RunSteps` has finished.
    BatchFinished,
}

/// How the engine runs steps.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Run shell steps (headless needs `--allow-shell`).
    pub allow_shell: bool,
    /// Run HTTP steps (headless needs `--allow-http`).
    pub allow_http: bool,
    /// The database name typed to confirm destructive steps (`--confirm`).
    pub confirmed_database: Option<String>,
    /// How many steps run at once.
    pub concurrency: usize,
    /// Default timeout of SQL and probe steps.
    pub check_timeout: Duration,
    /// Default timeout of shell steps.
    pub shell_timeout: Duration,
    /// Default timeout of HTTP steps.
    pub http_timeout: Duration,
    /// Variable values (defaults with overrides applied); a missing one skips its steps.
    pub variables: BTreeMap<String, String>,
    /// Where shell steps run (their `workdir` is relative to it).
    pub workdir: PathBuf,
    /// What steps measured before, by step id (from the journal): the row-count baseline.
    pub measured: HashMap<String, probes::Measured>,
    /// How long steps took when they last ran against this target, in milliseconds (from the
    /// journal): the longest start first.
    pub durations: HashMap<String, u64>,
    /// The two-person rule: a confirmed destructive step waits for a second person's
    /// approval (a production run that requires it).
    pub approval: Option<crate::approval::Gate>,
    /// user@host of the operator, for the approval request.
    pub operator: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            allow_shell: false,
            allow_http: false,
            confirmed_database: None,
            concurrency: 4,
            check_timeout: Duration::from_secs(30),
            shell_timeout: Duration::from_secs(600),
            http_timeout: Duration::from_secs(10),
            variables: BTreeMap::new(),
            workdir: PathBuf::from("."),
            measured: HashMap::new(),
            durations: HashMap::new(),
            approval: None,
            operator: String::new(),
        }
    }
}

/// The defaults of a runbook's variables with `overrides` on top.
pub fn resolve_variables(
    runbook: &Runbook,
    overrides: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = runbook
        .variables
        .iter()
        .filter_map(|(name, var)| var.default.clone().map(|value| (name.clone(), value)))
        .collect();
    values.extend(overrides.clone());
    values
}

/// The two ends of a running engine.
pub struct EngineHandle {
    /// Send commands here.
    pub commands: mpsc::Sender<Command>,
    /// Events arrive here.
    pub events: mpsc::Receiver<Event>,
    task: tokio::task::JoinHandle<()>,
}

impl EngineHandle {
    /// Asks the engine to stop and waits for it.
    pub async fn shutdown(self) {
        let _ = self.commands.send(Command::Shutdown).await;
        drop(self.events);
        let _ = self.task.await;
    }
}

struct Context {
    runbook: Arc<Runbook>,
    db: Db,
    config: EngineConfig,
    events: mpsc::Sender<Event>,
    /// Steps that hold no connection (shell, HTTP, a held-back step) running at once
    /// (`config.concurrency`).
    slots: slots::Slots,
    /// Steps holding a connection at once: the pool's size, so that a step's time does not
    /// include waiting for a connection.
    connections: slots::Slots,
    /// Variable values: the config's, then `SetVariable`s.
    variables: RwLock<BTreeMap<String, String>>,
    running: Mutex<HashMap<String, CancellationToken>>,
    root: CancellationToken,
    /// The config's measurements, then those of this run's steps.
    measured: RwLock<HashMap<String, probes::Measured>>,
    /// What each step of this run ended with: the decision of what may run rests on it.
    known: RwLock<plan::Known>,
    /// Masks secrets in every event that leaves the engine (it learns the secret variables
    /// as they are set).
    redactor: RwLock<Redactor>,
    /// Why everything was cancelled (`CancelAll`), for the steps' messages.
    cancelled_because: RwLock<Option<String>>,
}

/// Starts the engine on `db` for `runbook`.
pub fn spawn(runbook: Arc<Runbook>, db: Db, config: EngineConfig) -> EngineHandle {
    let (command_tx, mut command_rx) = mpsc::channel::<Command>(64);
    // Bounded: when the consumer falls behind, shell steps wait on their pipes (see shell.rs).
    let (event_tx, event_rx) = mpsc::channel::<Event>(1024);
    let mut redactor = Redactor::for_target(db.target());
    redactor.add_secret_variables(&config.variables, |name| runbook.is_secret(name));
    let pool_size = db.pool_size();
    let context = Arc::new(Context {
        redactor: RwLock::new(redactor),
        cancelled_because: RwLock::new(None),
        runbook,
        db,
        slots: slots::Slots::new(config.concurrency),
        connections: slots::Slots::new(pool_size),
        variables: RwLock::new(config.variables.clone()),
        measured: RwLock::new(config.measured.clone()),
        known: RwLock::new(plan::passed(config.measured.keys())),
        config,
        events: event_tx,
        running: Mutex::new(HashMap::new()),
        root: CancellationToken::new(),
    });
    let task = tokio::spawn(async move {
        let mut batches = JoinSet::new();
        while let Some(command) = command_rx.recv().await {
            match command {
                Command::RunSteps {
                    ids,
                    confirmed_database,
                } => {
                    tracing::info!(steps = ids.len(), "running steps");
                    batches.spawn(run_batch(context.clone(), ids, confirmed_database));
                }
                Command::SetVariable { name, value } => {
                    tracing::info!(variable = %name, "variable set");
                    if context.runbook.is_secret(&name) {
                        write(&context.redactor).add([value.clone()]);
                    }
                    write(&context.variables).insert(name, value);
                }
                Command::NoteStatus { id, status } => {
                    write(&context.known).insert(id, status);
                }
                Command::CancelStep { id } => {
                    tracing::info!(step = %id, "cancel requested");
                    if let Some(token) = lock(&context.running).get(&id) {
                        token.cancel();
                    }
                }
                Command::CancelAll { reason } => {
                    tracing::warn!(%reason, "cancelling every step");
                    *write(&context.cancelled_because) = Some(reason);
                    context.root.cancel();
                }
                Command::Shutdown => break,
            }
        }
        context.root.cancel();
        while batches.join_next().await.is_some() {}
    });
    EngineHandle {
        commands: command_tx,
        events: event_rx,
        task,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn run_batch(context: Arc<Context>, ids: Vec<String>, confirmed: Option<String>) {
    let confirmed = Arc::new(confirmed);
    let steps: Vec<Step> = context
        .runbook
        .steps()
        .filter(|step| ids.contains(&step.id))
        .cloned()
        .collect();
    // Each step's "it has ended" signal; what it ended with is in `context.known`.
    let mut finished: Vec<(String, watch::Receiver<bool>)> = Vec::new();
    // A destructive step changes the database: it waits for every earlier step, and every
    // later step waits for it, so no check runs against a schema that is being changed.
    let mut barrier: Option<watch::Receiver<bool>> = None;
    let mut ready = Vec::new();
    for step in steps {
        let (done_tx, done_rx) = watch::channel(false);
        // Only one that will run: a destructive step that is only going to be skipped (not
        // confirmed) holds nothing back.
        let destructive = context.will_change(&step, confirmed.as_deref());
        // What it waits for: its dependencies in this batch, and the order around
        // destructive steps. Whether it may then start is decided on what the run knows.
        let mut waits_for: Vec<watch::Receiver<bool>> = finished
            .iter()
            .filter(|(id, _)| destructive || step.depends_on.contains(id))
            .map(|(_, rx)| rx.clone())
            .collect();
        waits_for.extend(barrier.clone());
        if destructive {
            barrier = Some(done_rx.clone());
        }
        finished.push((step.id.clone(), done_rx));
        ready.push((step, waits_for, done_tx));
    }
    // The longest first: they ask for their slots first (and when slots are short, the
    // slots themselves go to the longest waiting).
    ready.sort_by_key(|(step, _, _)| {
        std::cmp::Reverse(plan::expected_ms(step, &context.config.durations))
    });
    // Every step that can ask for a slot at once does before any is given one, so that the
    // slots go by priority rather than by which task the runtime happened to poll first.
    let holds = (context.slots.hold(), context.connections.hold());
    let asking_at_once = ready
        .iter()
        .filter(|(_, waits, _)| waits.is_empty())
        .count();
    let mut tasks = JoinSet::new();
    for (step, waits_for, done_tx) in ready {
        let context = context.clone();
        let confirmed = confirmed.clone();
        tasks.spawn(async move {
            run_one(&context, &step, waits_for, confirmed.as_deref()).await;
            let _ = done_tx.send(true);
        });
    }
    let all_asked = async {
        while context.slots.waiting() + context.connections.waiting() < asking_at_once {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    // Bounded: other batches' steps may be asking too (the wizard's).
    let _ = tokio::time::timeout(Duration::from_millis(200), all_asked).await;
    drop(holds);
    while tasks.join_next().await.is_some() {}
    let _ = context.events.send(Event::BatchFinished).await;
}

async fn run_one(
    context: &Context,
    step: &Step,
    waits_for: Vec<watch::Receiver<bool>>,
    confirmed: Option<&str>,
) {
    for mut rx in waits_for {
        let _ = rx.wait_for(|done| *done).await;
    }
    let blocked_by = plan::blockers(step, &read(&context.known))
        .into_iter()
        .next();
    // Longest first: among the steps waiting for a slot, the one expected to take longest
    // gets it (a held-back step takes no time, and goes first to say so).
    let priority = match blocked_by {
        Some(_) => u64::MAX,
        None => plan::expected_ms(step, &context.config.durations),
    };
    let token = context.root.child_token();
    lock(&context.running).insert(step.id.clone(), token.clone());
    // The two-person rule: a confirmed destructive step waits here for a second person, before
    // it takes a slot (past a destructive barrier nothing else runs meanwhile).
    let approval = match &context.config.approval {
        Some(gate) if blocked_by.is_none() && context.will_change(step, confirmed) => {
            wait_for_approval(context, step, gate, &token).await
        }
        _ => Ok(None),
    };
    let _slot = match blocked_by {
        None if plan::holds_a_connection(step) => context.connections.acquire(priority).await,
        _ => context.slots.acquire(priority).await,
    };
    let _ = context
        .events
        .send(Event::StepStarted {
            id: step.id.clone(),
        })
        .await;
    let started = Instant::now();
    let outcome = match blocked_by {
        // Held back by a dependency that ended otherwise: that one carries the failure. By
        // one that never ran (not selected, or not ticked): this step could not be run.
        Some(blocker) if blocker.ended.is_some() => {
            Outcome::skip(format!("not run: it depends on {blocker}"))
        }
        Some(blocker) => Outcome::error(format!("not run: it depends on {blocker}")),
        None => match approval {
            Err(refused) => refused,
            Ok(approved) => {
                let mut outcome = execute(context, step, &token, confirmed).await;
                if let Some(decision) = approved {
                    outcome.details.push(format!(
                        "approved by {} at {}",
                        decision.who(),
                        decision.decided_at
                    ));
                }
                outcome
            }
        },
    };
    let outcome = redact_outcome(
        &read(&context.redactor),
        apply_severity(step.severity, outcome),
    );
    tracing::info!(
        step = %step.id,
        status = outcome.status.as_str(),
        ms = started.elapsed().as_millis() as u64,
        message = %outcome.message,
        "step finished"
    );
    lock(&context.running).remove(&step.id);
    if context.will_change(step, confirmed) && outcome.status != Status::Skip {
        // It may have changed the database: what was measured before it must be measured
        // again.
        for measured in write(&context.measured).values_mut() {
            measured.fresh = false;
        }
    }
    if let Some(data) = &outcome.data {
        write(&context.measured).insert(step.id.clone(), probes::Measured::this_run(data.clone()));
    }
    write(&context.known).insert(step.id.clone(), outcome.status);
    let _ = context
        .events
        .send(Event::StepFinished {
            id: step.id.clone(),
            outcome,
            duration: started.elapsed(),
        })
        .await;
}

/// The outcome with every secret masked, in its message and its details.
fn redact_outcome(redactor: &Redactor, outcome: Outcome) -> Outcome {
    Outcome {
        message: redactor.redact(&outcome.message).into_owned(),
        details: outcome
            .details
            .iter()
            .map(|line| redactor.redact(line).into_owned())
            .collect(),
        ..outcome
    }
}

/// A failing optional step is a warning.
fn apply_severity(severity: Severity, outcome: Outcome) -> Outcome {
    if severity == Severity::Optional && outcome.status == Status::Fail {
        Outcome {
            status: Status::Warn,
            message: format!("optional: {}", outcome.message),
            details: outcome.details,
            data: outcome.data,
        }
    } else {
        outcome
    }
}

async fn execute(
    context: &Context,
    step: &Step,
    cancel: &CancellationToken,
    confirmed: Option<&str>,
) -> Outcome {
    let config = &context.config;
    let variables = read(&context.variables).clone();
    let substitute = |text: &str, quoting| vars::substitute(text, &variables, quoting);
    let missing = |name: String| {
        Outcome::skip(format!(
            "variable `{name}` has no value: pass --var {name}=VALUE (or set it in the wizard)"
        ))
    };
    match &step.action {
        Action::Manual => Outcome::skip("manual step: tick it in the wizard"),
        Action::Signoff { role } => {
            Outcome::skip(format!("sign-off by {role}: sign in the wizard"))
        }
        Action::Sql { query, expect } => {
            let query = match substitute(query, vars::Quoting::SqlLiteral) {
                Ok(query) => query,
                Err(name) => return missing(name),
            };
            let timeout = step.timeout.unwrap_or(config.check_timeout);
            let check = sql::run(&context.db, &query, expect, timeout);
            database_step(context, timeout, cancel, check).await
        }
        Action::Probe { probe, params } => {
            let timeout = step.timeout.unwrap_or(config.check_timeout);
            let params = match vars::substitute_json(params, &variables) {
                Ok(params) => params,
                Err(name) => return missing(name),
            };
            let db = context.db.with_statement_timeout(timeout);
            let probe_context = probes::ProbeContext {
                measured: read(&context.measured).clone(),
                thresholds: context.runbook.thresholds.clone(),
            };
            let check = probes::run(probe, &db, &params, &probe_context);
            database_step(context, timeout, cancel, check).await
        }
        Action::Shell(shell) => {
            if !config.allow_shell {
                return Outcome::skip("shell step: not run without --allow-shell");
            }
            if shell.destructive && !context.confirmed(confirmed) {
                return Outcome::skip(format!(
                    "destructive step: not run without --confirm {}",
                    context.db.target().database()
                ));
            }
            let command = match substitute(&shell.command, vars::Quoting::Shell) {
                Ok(command) => command,
                Err(name) => return missing(name),
            };
            let workdir = match &shell.workdir {
                Some(dir) => match substitute(dir, vars::Quoting::Verbatim) {
                    Ok(dir) => config.workdir.join(dir),
                    Err(name) => return missing(name),
                },
                None => config.workdir.clone(),
            };
            let mut env = context.db.target().child_env();
            for (key, value) in &shell.env {
                match substitute(value, vars::Quoting::Verbatim) {
                    Ok(value) => {
                        if crate::redact::looks_secret(key) {
                            write(&context.redactor).add([value.clone()]);
                        }
                        env.insert(key.clone(), value)
                    }
                    Err(name) => return missing(name),
                };
            }
            let job = shell::ShellJob {
                step_id: &step.id,
                command: &command,
                workdir: &workdir,
                env,
                expect_exit: shell.expect_exit,
                timeout: step.timeout.unwrap_or(config.shell_timeout),
            };
            let redactor = read(&context.redactor).clone();
            shell::run(job, &context.events, &redactor, cancel, || {
                context.cancel_reason()
            })
            .await
        }
        Action::Http(action) => {
            if !config.allow_http {
                return Outcome::skip("http step: not run without --allow-http");
            }
            let url = match substitute(&action.url, vars::Quoting::Verbatim) {
                Ok(url) => url,
                Err(name) => return missing(name),
            };
            http::run(action, &url, step.timeout.unwrap_or(config.http_timeout)).await
        }
        Action::Migrate(action) => {
            if action.writes_to_target() && !context.confirmed(confirmed) {
                return Outcome::skip(format!(
                    "destructive step: not run without --confirm {}",
                    context.db.target().database()
                ));
            }
            let folder = match substitute(&action.migrations, vars::Quoting::Verbatim) {
                Ok(dir) => config.workdir.join(dir),
                Err(name) => return missing(name),
            };
            let migration = match action.migration.as_deref() {
                Some(name) => match substitute(name, vars::Quoting::Verbatim) {
                    Ok(name) => Some(name),
                    Err(name) => return missing(name),
                },
                None => None,
            };
            let backup_dir = match action.backup_dir.as_deref() {
                Some(dir) => match substitute(dir, vars::Quoting::Verbatim) {
                    Ok(dir) => Some(config.workdir.join(dir)),
                    Err(name) => return missing(name),
                },
                None => None,
            };
            let job = migrate::MigrateJob {
                step_id: &step.id,
                action,
                folder,
                migration,
                backup_dir,
                timeout: step.timeout.unwrap_or(config.shell_timeout),
                runbook: context.runbook.clone(),
                variables: variables.clone(),
                rehearsed: migrate::rehearsal_findings(&read(&context.measured)),
            };
            let redactor = read(&context.redactor).clone();
            let outcome =
                migrate::run(job, context.db.target(), &context.events, &redactor, cancel).await;
            // Cancelled: the reason goes first ("cancelled: cutover received SIGHUP ...").
            match outcome.message.strip_prefix("cancelled") {
                _ if !cancel.is_cancelled() || outcome.status != Status::Error => outcome,
                Some(rest) => Outcome {
                    message: format!("{}{rest}", context.cancel_reason()),
                    ..outcome
                },
                None => Outcome {
                    message: format!("{}: {}", context.cancel_reason(), outcome.message),
                    ..outcome
                },
            }
        }
    }
}

/// Asks for a second person's approval of `step` and waits for the answer (the two-person
/// rule): `Ok(Some(decision))` approved, `Ok(None)` nothing to approve (a variable has no
/// value: the step skips itself), `Err(outcome)` rejected, timed out or cancelled: the step
/// does not run.
async fn wait_for_approval(
    context: &Context,
    step: &Step,
    gate: &approval::Gate,
    cancel: &CancellationToken,
) -> Result<Option<approval::Decision>, Outcome> {
    let Some((action, detail)) = describe(context, step).await else {
        return Ok(None);
    };
    let redactor = read(&context.redactor).clone();
    let target = context.db.target();
    let request = approval::Request {
        request: uuid::Uuid::now_v7().to_string(),
        action: redactor.redact(&action).into_owned(),
        detail: detail
            .iter()
            .map(|line| redactor.redact(line).into_owned())
            .collect(),
        target: target.to_string(),
        database: target.database().to_string(),
        operator: context.config.operator.clone(),
        operator_role: gate.answers.role().await,
    };
    let id = step.id.clone();
    let send = |approval: approval::Approval| {
        context.events.send(Event::Approval {
            id: id.clone(),
            approval,
        })
    };
    tracing::info!(step = %step.id, request = %request.request, "waiting for approval");
    let _ = send(approval::Approval::Requested(request.clone())).await;
    let asked = Instant::now();
    loop {
        match gate
            .answers
            .decision(&request.request, |typed| target.confirms(typed))
            .await
        {
            Some(Ok((true, decision))) => {
                tracing::info!(step = %step.id, by = %decision.by, "approved");
                let _ = send(approval::Approval::Approved(decision.clone())).await;
                return Ok(Some(decision));
            }
            Some(Ok((false, decision))) => {
                tracing::info!(step = %step.id, by = %decision.by, "rejected");
                let _ = send(approval::Approval::Rejected(decision.clone())).await;
                let reason = decision.reason.clone().unwrap_or_default();
                return Err(Outcome::fail(format!(
                    "rejected by {}: {reason}; nothing was run",
                    decision.who()
                )));
            }
            Some(Err(why)) => {
                // Not an answer that counts: said, set aside, and the step waits on.
                tracing::warn!(step = %step.id, %why, "answer not taken");
                gate.answers.refuse(&request.request).await;
                let _ = context
                    .events
                    .send(Event::StepOutput {
                        id: step.id.clone(),
                        stream: OutputStream::Stderr,
                        text: format!("an answer to the approval request was not taken: {why}\n"),
                    })
                    .await;
            }
            None => {}
        }
        if asked.elapsed() >= gate.timeout {
            let waited_s = asked.elapsed().as_secs();
            let _ = send(approval::Approval::TimedOut {
                request: request.request.clone(),
                waited_s,
            })
            .await;
            return Err(Outcome::fail(format!(
                "nobody approved it within {waited_s} s: nothing was run"
            )));
        }
        tokio::select! {
            () = tokio::time::sleep(approval::POLL) => {}
            () = cancel.cancelled() => return Err(Outcome::error(context.cancel_reason())),
        }
    }
}

/// What a destructive step will run, for its approver: one line, and the SQL or the command
/// (for a deploy, the pending migrations' scripts). `None` when a variable it needs has no
/// value (the step then skips itself, and there is nothing to approve).
async fn describe(context: &Context, step: &Step) -> Option<(String, Vec<String>)> {
    const MOST_LINES: usize = 400;
    let variables = read(&context.variables).clone();
    let verbatim = |text: &str| vars::substitute(text, &variables, vars::Quoting::Verbatim).ok();
    match &step.action {
        Action::Shell(shell) => {
            let command =
                vars::substitute(&shell.command, &variables, vars::Quoting::Shell).ok()?;
            // One line is said in full; a script is shown below its first line.
            let lines: Vec<String> = command.trim().lines().map(str::to_string).collect();
            match lines.as_slice() {
                [one] => Some((format!("shell: {one}"), Vec::new())),
                _ => Some((format!("shell script of {} lines:", lines.len()), lines)),
            }
        }
        Action::Migrate(action) => {
            let folder = context.config.workdir.join(verbatim(&action.migrations)?);
            let named = match &action.migration {
                Some(name) => Some(verbatim(name)?),
                None => None,
            };
            let shown = folder.display();
            let line = match action.op {
                crate::runbook::MigrateOp::Deploy => {
                    return Some(pending_scripts(context, &folder, MOST_LINES).await);
                }
                crate::runbook::MigrateOp::Baseline => {
                    format!("baseline: record the live schema as 0_init of {shown}")
                }
                crate::runbook::MigrateOp::ResolveApplied => format!(
                    "resolve: record {} as applied without running it",
                    named.unwrap_or_default()
                ),
                crate::runbook::MigrateOp::ResolveRolledBack => format!(
                    "resolve: record the failed {} as rolled back",
                    named.unwrap_or_default()
                ),
                crate::runbook::MigrateOp::Rehearse => return None,
            };
            Some((line, Vec::new()))
        }
        _ => None,
    }
}

/// "deploy: N pending migration(s) of FOLDER", and their scripts, each after a `-- name` line,
/// at most `most` lines in all.
async fn pending_scripts(
    context: &Context,
    folder: &std::path::Path,
    most: usize,
) -> (String, Vec<String>) {
    let target = context.db.target();
    let shown = folder.display();
    let pending = match crate::migrate::deploy::connect(target).await {
        Ok(mut conn) => crate::migrate::deploy::pending(&mut conn, target, folder)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let names = match pending {
        Ok(names) => names,
        Err(err) => {
            return (
                format!("deploy the pending migrations of {shown} (cannot list them: {err})"),
                Vec::new(),
            );
        }
    };
    let mut lines = Vec::new();
    for name in &names {
        lines.push(format!("-- {name}"));
        let script =
            std::fs::read_to_string(folder.join(name).join("migration.sql")).unwrap_or_default();
        lines.extend(script.lines().map(str::to_string));
    }
    if lines.len() > most {
        let more = lines.len() - most;
        lines.truncate(most);
        lines.push(format!("… {more} more line(s)"));
    }
    (
        format!(
            "deploy: {} pending migration(s) of {shown}: {}",
            names.len(),
            names.join(", ")
        ),
        lines,
    )
}

/// Runs a database check, unless the server is known down (then it fails at once, with the
/// reason). The check ends when it ends, is cancelled (dropping it rolls its transaction back
/// and lets go of the connection), or outlives its timeout plus a grace: the client-side
/// deadline over the server-side timeouts, for a server or a network that does not answer.
async fn database_step(
    context: &Context,
    timeout: Duration,
    cancel: &CancellationToken,
    check: impl Future<Output = Outcome>,
) -> Outcome {
    if let Err(err) = context.db.ready().await {
        return Outcome::error(format!("not run: {err}"));
    }
    let deadline = timeout + DEADLINE_GRACE;
    tokio::select! {
        outcome = tokio::time::timeout(deadline, check) => outcome.unwrap_or_else(|_| {
            Outcome::error(context.db.no_answer(deadline).to_string())
        }),
        _ = cancel.cancelled() => Outcome::error(context.cancel_reason()),
    }
}

impl Context {
    /// Whether the database's name was typed to confirm destructive steps (for this batch, or
    /// for the run with `--confirm`).
    fn confirmed(&self, confirmed: Option<&str>) -> bool {
        confirmed
            .or(self.config.confirmed_database.as_deref())
            .is_some_and(|typed| self.db.target().confirms(typed))
    }

    /// Whether `step` will change the database if it runs: a destructive step that may run
    /// (confirmed; a shell step, only with shell allowed). One that will only be skipped
    /// changes nothing.
    fn will_change(&self, step: &Step, confirmed: Option<&str>) -> bool {
        let allowed = match &step.action {
            Action::Shell(_) => self.config.allow_shell,
            _ => true,
        };
        plan::is_destructive(step) && allowed && self.confirmed(confirmed)
    }

    /// "cancelled", with the reason when everything was cancelled for one.
    fn cancel_reason(&self) -> String {
        match &*read(&self.cancelled_because) {
            Some(reason) => format!("cancelled: {reason}"),
            None => "cancelled".to_string(),
        }
    }
}

/// How long past its timeout a database step may run before the client gives up on it: the
/// server's own `statement_timeout` should have ended it by then.
const DEADLINE_GRACE: Duration = Duration::from_secs(2);
