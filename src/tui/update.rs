//! The pure part of the wizard: a message comes in, the state changes, requests go out.

use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind};
use ratatui_textarea::TextArea;

use super::app::{
    App, Connection, InputPurpose, METRICS_HISTORY, Overlay, Pane, Screen, StepStatus,
};
use super::keymap::{self, Action};
use crate::engine::Event;
use crate::engine::plan::{self, is_destructive};
use crate::journal::Entry;
use crate::monitor::{self, MonitorEvent};
use crate::outcome::Status;
use crate::runbook::{Action as StepAction, Kind, Step};

/// Output lines a page key moves.
const PAGE: usize = 10;

/// Something that happened: a key, a tick, an engine event, news of the connection.
#[derive(Debug, Clone)]
pub enum Message {
    /// A key was pressed.
    Key(KeyEvent),
    /// Time passed (timers on screen move).
    Tick,
    /// The engine reports.
    Engine(Event),
    /// The database answers again (or for the first time).
    ConnectionUp,
    /// The database does not answer.
    ConnectionDown(String),
    /// The live panels' sampler reports.
    Monitor(MonitorEvent),
    /// The process was told to end (SIGTERM, SIGHUP, SIGINT): running steps are cancelled
    /// with this reason, recorded, and the wizard ends.
    Terminate(String),
    /// Watching: what the run's holder recorded since the last look, in order.
    Followed(Vec<crate::journal::Recorded>),
    /// Watching: the journal could not be read.
    FollowFailed(String),
    /// Watching: who holds the run now (`None`: nobody, the wizard that ran it is gone).
    Holder(Option<String>),
}

/// A request for the event loop to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run these steps.
    RunSteps {
        /// Full step ids.
        ids: Vec<String>,
        /// The database name typed to confirm a destructive step.
        confirmed_database: Option<String>,
    },
    /// Tell the engine what a step ended with outside it (a tick, a skip, a signature), for
    /// the dependency rule.
    NoteStatus {
        /// Full step id.
        id: String,
        /// What it ended with.
        status: Status,
    },
    /// Cancel a running step.
    CancelStep {
        /// Full step id.
        id: String,
    },
    /// Give a variable a value.
    SetVariable {
        /// Its name.
        name: String,
        /// Its value.
        value: String,
    },
    /// Write this to the journal before the screen shows it.
    Record {
        /// The step it is about.
        step: Option<String>,
        /// What happened.
        entry: Entry,
    },
    /// End these process groups (survivors of an earlier session): TERM, then KILL.
    EndProcessGroups {
        /// Group ids.
        pids: Vec<u32>,
    },
    /// Answer an approval request, as the observer (the two-person rule).
    Answer {
        /// The step waiting.
        step: String,
        /// Its request.
        request: crate::approval::Request,
        /// Approve or reject.
        verdict: crate::approval::Verdict,
    },
    /// Leave the wizard.
    Quit,
}

fn record(step: &str, entry: Entry) -> Command {
    Command::Record {
        step: Some(step.to_string()),
        entry,
    }
}

fn note(step: &str, status: Status) -> Command {
    Command::NoteStatus {
        id: step.to_string(),
        status,
    }
}

/// Applies `message` to `app` and says what should be done about it.
pub fn update(app: &mut App, message: Message) -> Vec<Command> {
    match message {
        Message::Key(key) if key.kind == KeyEventKind::Release => vec![],
        Message::Key(key) => match app.overlay.take() {
            Some(overlay) => overlay_key(app, overlay, key),
            None => match keymap::action_for(key, app.pane == Pane::Output) {
                Some(action) => act(app, action),
                None => vec![],
            },
        },
        Message::Tick => vec![],
        Message::Followed(events) => {
            app.follow(&events);
            // A question whose step no longer waits (answered by someone else, timed out,
            // cancelled) closes.
            if let Some(step) = close_stale_question(app) {
                app.notice = Some(format!(
                    "{step} no longer waits for approval{}",
                    app.notice
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                ));
            }
            // An observer who may approve is asked at once, on the step's own screen.
            let asked = events
                .iter()
                .any(|e| matches!(e.entry, Entry::ApprovalRequested(_)));
            if asked && app.approving.is_some() && app.overlay.is_none() {
                return ask_for_approval(app, true);
            }
            vec![]
        }
        Message::Holder(holder) => {
            if holder.is_none() {
                // The operator's cutover is gone: what it had in flight is interrupted, and
                // nothing waits for an answer any more.
                for state in app.steps.values_mut() {
                    if matches!(state.status, StepStatus::Running { .. }) {
                        state.status = StepStatus::Interrupted;
                        state.awaiting = None;
                    }
                }
                close_stale_question(app);
            }
            app.read_only = Some(holder.unwrap_or_else(|| crate::journal::nobody_holds(None)));
            vec![]
        }
        Message::FollowFailed(err) => {
            app.notice = Some(format!("cannot read the journal: {err}"));
            vec![]
        }
        Message::Terminate(signal) => {
            app.stop_reason = Some(format!("cutover received {signal}"));
            app.quitting = true;
            vec![Command::Quit]
        }
        Message::Engine(event) => {
            engine_event(app, event);
            vec![]
        }
        Message::ConnectionUp => {
            if matches!(app.connection, Connection::Lost { .. }) {
                app.notice = Some("connection restored".to_string());
            }
            app.connection = Connection::Connected;
            vec![]
        }
        Message::ConnectionDown(error) => {
            app.connection = Connection::Lost { error };
            vec![]
        }
        Message::Monitor(event) => {
            monitor_event(app, event);
            vec![]
        }
    }
}

fn monitor_event(app: &mut App, event: MonitorEvent) {
    match event {
        MonitorEvent::Metrics(sample) => {
            app.alerts = monitor::alerts(&sample, &app.runbook.thresholds);
            if app.metrics_history.len() == METRICS_HISTORY {
                app.metrics_history.pop_front();
            }
            app.metrics_history.push_back(sample.clone());
            app.metrics = Some(sample);
            app.monitor_error = None;
        }
        MonitorEvent::Indexes(statuses) => app.indexes = statuses,
        MonitorEvent::Unavailable { error } => app.monitor_error = Some(error),
    }
}

fn engine_event(app: &mut App, event: Event) {
    match event {
        Event::StepStarted { id } => {
            if let Some(state) = app.steps.get_mut(&id) {
                state.status = StepStatus::Running {
                    since: Instant::now(),
                };
                state.output.clear();
                state.output_dropped = 0;
            }
        }
        Event::StepProcess { id, pid, command } => {
            if let Some(state) = app.steps.get_mut(&id) {
                state.process = Some((pid, command));
            }
        }
        Event::StepOutput { id, stream, text } => {
            if let Some(state) = app.steps.get_mut(&id) {
                state.push_output(stream, &text);
            }
        }
        Event::StepFinished {
            id,
            outcome,
            duration,
        } => {
            if let Some(data) = &outcome.data {
                app.measured
                    .insert(id.clone(), crate::probes::Measured::this_run(data.clone()));
            }
            if let Some(state) = app.steps.get_mut(&id) {
                app.notice = Some(format!(
                    "{id}: {} — {}",
                    outcome.status.as_str(),
                    outcome.message
                ));
                state.status = StepStatus::Finished(outcome);
                state.duration = Some(duration);
                state.process = None;
            }
        }
        Event::Approval { id, approval } => {
            let Some(state) = app.steps.get_mut(&id) else {
                return;
            };
            let said = state.approval(&id, &approval.entry());
            // The operator is told where the second person answers.
            app.notice = match &approval {
                crate::approval::Approval::Requested(request) => Some(format!(
                    "{id} waits for a second person's approval: in `cutover watch`, or `cutover approve {} {id} --confirm {}`",
                    app.run_id, request.database
                )),
                _ => said,
            };
        }
        // Its output line says so; the journal keeps the record.
        Event::MigrationApplied { .. } | Event::BatchFinished => {}
    }
}

fn act(app: &mut App, action: Action) -> Vec<Command> {
    let sections = app.runbook.sections.len();
    let changes_the_run = matches!(
        action,
        Action::RunStep
            | Action::RunSection
            | Action::CancelStep
            | Action::TickStep
            | Action::SkipStep
            | Action::SignOff
    );
    if changes_the_run
        && app.screen != Screen::Overview
        && let Some(holder) = &app.read_only
    {
        app.notice = Some(format!("read-only: {holder} has this run"));
        return vec![];
    }
    match action {
        Action::Quit => {
            // A watcher runs nothing: leaving cancels nothing.
            if app.anything_running() && app.read_only.is_none() {
                app.overlay = Some(Overlay::ConfirmQuit);
                return vec![];
            }
            app.quitting = true;
            return vec![Command::Quit];
        }
        Action::ToggleHelp => app.overlay = Some(Overlay::Help),
        Action::Back => app.screen = Screen::Overview,
        Action::ShowOverview => app.screen = Screen::Overview,
        Action::SelectNext | Action::SelectPrevious => {
            let forward = action == Action::SelectNext;
            match app.screen {
                Screen::Overview => app.section = step_index(app.section, sections, forward),
                Screen::Section(_) => {
                    let count = app.section_steps().len();
                    app.selected = step_index(app.selected, count, forward);
                    app.output_scroll = 0;
                }
            }
        }
        Action::ShowNextSection | Action::ShowPreviousSection => {
            let forward = action == Action::ShowNextSection;
            let next = match app.screen {
                Screen::Overview => app.section,
                Screen::Section(index) => step_index(index, sections, forward),
            };
            open_section(app, next);
        }
        Action::FocusNextPane => {
            if matches!(app.screen, Screen::Section(_)) {
                app.pane = match app.pane {
                    Pane::Steps => Pane::Output,
                    Pane::Output => Pane::Steps,
                };
            }
        }
        Action::RunStep => {
            if app.screen == Screen::Overview {
                open_section(app, app.section);
                return vec![];
            }
            let Some(step) = app.selected_step().cloned() else {
                return vec![];
            };
            return match step.kind() {
                Kind::Manual => ask(app, InputPurpose::TickNote { step: step.id }),
                Kind::Signoff => ask(app, InputPurpose::SignOffName { step: step.id }),
                _ => run(app, &step),
            };
        }
        Action::RunSection => return run_section(app),
        Action::CancelStep => {
            if let Some(id) = app.selected_step().map(|s| s.id.clone())
                && matches!(
                    app.state(&id).map(|s| &s.status),
                    Some(StepStatus::Running { .. })
                )
            {
                app.notice = Some(format!("cancelling {id}…"));
                return vec![Command::CancelStep { id }];
            }
            app.notice = Some("nothing to cancel: the selected step is not running".to_string());
        }
        Action::TickStep => {
            if let Some(step) = app.selected_step().cloned() {
                if step.kind() == Kind::Manual {
                    return ask(app, InputPurpose::TickNote { step: step.id });
                }
                app.notice = Some(format!(
                    "{} is a {} step: run it (Enter) or skip it (s)",
                    step.id,
                    step.kind().as_str()
                ));
            }
        }
        Action::SkipStep => {
            if let Some(step) = app.selected_step().cloned() {
                return ask(app, InputPurpose::SkipReason { step: step.id });
            }
        }
        Action::SignOff => {
            if let Some(step) = app.selected_step().cloned() {
                if step.kind() == Kind::Signoff {
                    return ask(app, InputPurpose::SignOffName { step: step.id });
                }
                app.notice = Some(format!("{} is not a sign-off", step.id));
            }
        }
        Action::Approve => return ask_for_approval(app, true),
        Action::Reject => return ask_for_approval(app, false),
        Action::ScrollOutputUp => app.output_scroll += 1,
        Action::ScrollOutputDown => app.output_scroll = app.output_scroll.saturating_sub(1),
        Action::ScrollOutputPageUp => app.output_scroll += PAGE,
        Action::ScrollOutputPageDown => app.output_scroll = app.output_scroll.saturating_sub(PAGE),
        Action::FollowOutput => app.output_scroll = 0,
        Action::TogglePanels => app.panels_open = !app.panels_open,
    }
    vec![]
}

/// Closes the observer's question about a step that no longer waits for approval (answered
/// by someone else, timed out, ended, its operator gone); returns that step.
fn close_stale_question(app: &mut App) -> Option<String> {
    let Some(Overlay::Input { purpose, .. }) = &app.overlay else {
        return None;
    };
    let step = purpose.approval_step()?.to_string();
    if app
        .steps
        .get(&step)
        .is_some_and(|state| state.awaiting.is_some())
    {
        return None;
    }
    app.overlay = None;
    Some(step)
}

/// Opens the observer's approval (or rejection) of the step that waits for a second person,
/// on that step's screen, with what it will run in its output pane.
fn ask_for_approval(app: &mut App, approve: bool) -> Vec<Command> {
    if app.approving.is_none() {
        app.notice = Some(
            "a second person approves from their own terminal: `cutover watch` (or `cutover approve RUN STEP`)"
                .to_string(),
        );
        return vec![];
    }
    let Some((step, request)) = app.awaiting_approval() else {
        app.notice = Some("no step is waiting for approval".to_string());
        return vec![];
    };
    if let Some(index) = app
        .runbook
        .sections
        .iter()
        .position(|s| s.steps.iter().any(|s| s.id == step))
    {
        open_section(app, index);
        let position = app.section_steps().iter().position(|s| s.id == step);
        app.selected = position.unwrap_or(0);
        app.output_scroll = 0;
    }
    let purpose = if approve {
        InputPurpose::Approve { step, request }
    } else {
        InputPurpose::RejectReason { step, request }
    };
    ask(app, purpose)
}

fn step_index(current: usize, count: usize, forward: bool) -> usize {
    if count == 0 {
        0
    } else if forward {
        (current + 1).min(count - 1)
    } else {
        current.saturating_sub(1)
    }
}

fn open_section(app: &mut App, index: usize) {
    if index < app.runbook.sections.len() {
        if app.screen != Screen::Section(index) {
            app.selected = 0;
            app.output_scroll = 0;
        }
        app.section = index;
        app.screen = Screen::Section(index);
    }
}

/// Runs an automated step, first asking for what it still needs (a variable, a confirmation).
fn run(app: &mut App, step: &Step) -> Vec<Command> {
    if matches!(
        app.state(&step.id).map(|s| &s.status),
        Some(StepStatus::Running { .. })
    ) {
        app.notice = Some(format!("{} is already running", step.id));
        return vec![];
    }
    if let Some(name) = app.missing_variable(step) {
        return ask(
            app,
            InputPurpose::VariableValue {
                name,
                step: step.id.clone(),
            },
        );
    }
    let known = app.known();
    let blockers = plan::blockers(step, &known);
    if !blockers.is_empty() {
        let ids = plan::with_dependencies(
            &app.runbook,
            std::slice::from_ref(&step.id),
            &known,
            plan::Reach::Any,
        );
        let (_, held) = plan::runnable(&app.runbook, &ids, &known);
        if let Some((_, blocker)) = held.iter().find(|(id, _)| *id == step.id) {
            // A person's tick, a destructive step confirmed on its own, or a failed
            // dependency of a dependency: nothing the wizard may run on the way.
            let hint = match app.runbook.step(&blocker.dependency) {
                Some(dependency) if !App::is_automated(dependency) => ": tick it first",
                Some(dependency) if is_destructive(dependency) => {
                    ": run it first (it asks for its own confirmation)"
                }
                _ => "",
            };
            app.notice = Some(format!(
                "{} is held back: it depends on {blocker}{hint}",
                step.id
            ));
            return vec![];
        }
        app.overlay = Some(Overlay::RunDependencies {
            step: step.id.clone(),
            blockers,
            ids,
        });
        return vec![];
    }
    confirm_and_start(app, step, vec![step.id.clone()])
}

/// Starts `ids` (ending with `step`), after the typed confirmation when `step` is destructive.
fn confirm_and_start(app: &mut App, step: &Step, ids: Vec<String>) -> Vec<Command> {
    if is_destructive(step) {
        let warnings = rehearsal_warnings(app, step);
        return ask(
            app,
            InputPurpose::ConfirmDestructive {
                step: step.id.clone(),
                ids,
                warnings,
            },
        );
    }
    start(app, ids, None)
}

/// For a deploy step: the rehearsals' findings that still stand for its migrations, as the
/// step itself will warn of them when it starts.
fn rehearsal_warnings(app: &App, step: &Step) -> Vec<String> {
    let crate::runbook::Action::Migrate(action) = &step.action else {
        return Vec::new();
    };
    if action.op != crate::runbook::MigrateOp::Deploy {
        return Vec::new();
    }
    let Ok(folder) = crate::runbook::vars::substitute(
        &action.migrations,
        &app.variables,
        crate::runbook::vars::Quoting::Verbatim,
    ) else {
        return Vec::new();
    };
    let findings = crate::engine::rehearsal_findings(&app.measured);
    crate::engine::standing_findings(&app.workdir.join(folder), &findings)
        .into_iter()
        .map(|(finding, source)| crate::engine::finding_warning(finding, source))
        .collect()
}

fn start(app: &mut App, ids: Vec<String>, confirmed_database: Option<String>) -> Vec<Command> {
    for id in &ids {
        if let Some(state) = app.steps.get_mut(id) {
            state.status = StepStatus::Running {
                since: Instant::now(),
            };
        }
    }
    vec![Command::RunSteps {
        ids,
        confirmed_database,
    }]
}

fn run_section(app: &mut App) -> Vec<Command> {
    let steps: Vec<Step> = app.section_steps().to_vec();
    let mut candidates = Vec::new();
    let mut need_you = 0;
    for step in steps.iter().filter(|s| App::is_automated(s)) {
        let running = matches!(
            app.state(&step.id).map(|s| &s.status),
            Some(StepStatus::Running { .. })
        );
        if running {
            continue;
        }
        if is_destructive(step) || app.missing_variable(step).is_some() {
            need_you += 1;
        } else {
            candidates.push(step.id.clone());
        }
    }
    // In dependency order: what depends on a step of this batch waits for it in the engine;
    // what depends on anything else that has not passed stays here, and says why.
    let (ids, held) = plan::runnable(&app.runbook, &candidates, &app.known());
    let mut notice = match (ids.len(), need_you) {
        (0, 0) if held.is_empty() => "nothing to run here: no automated step".to_string(),
        (n, 0) => format!("running {n} step(s)"),
        (n, need) => format!(
            "running {n} step(s); {need} need you first (a value or a confirmation): run them with Enter"
        ),
    };
    if let Some((id, blocker)) = held.first() {
        notice.push_str(&format!(
            "; {} held back ({id} depends on {blocker})",
            held.len()
        ));
    }
    app.notice = Some(notice);
    if ids.is_empty() {
        return vec![];
    }
    start(app, ids, None)
}

fn ask(app: &mut App, purpose: InputPurpose) -> Vec<Command> {
    let mut field = TextArea::default();
    if let InputPurpose::VariableValue { name, .. } = &purpose
        && app.runbook.is_secret(name)
    {
        field.set_mask_char('•');
    }
    app.overlay = Some(Overlay::Input {
        purpose,
        field: Box::new(field),
        error: None,
    });
    vec![]
}

fn overlay_key(app: &mut App, overlay: Overlay, key: KeyEvent) -> Vec<Command> {
    match overlay {
        Overlay::Help => {
            if !matches!(
                key.code,
                KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q')
            ) {
                app.overlay = Some(Overlay::Help);
            }
            vec![]
        }
        Overlay::RunDependencies {
            step,
            blockers,
            ids,
        } => match key.code {
            KeyCode::Enter | KeyCode::Char('y') | KeyCode::Char('Y') => {
                match app.runbook.step(&step).cloned() {
                    Some(step) => confirm_and_start(app, &step, ids),
                    None => vec![],
                }
            }
            KeyCode::Esc | KeyCode::Char('n') | KeyCode::Char('N') => {
                app.notice = Some("cancelled".to_string());
                vec![]
            }
            _ => {
                app.overlay = Some(Overlay::RunDependencies {
                    step,
                    blockers,
                    ids,
                });
                vec![]
            }
        },
        Overlay::Survivors { survivors } => match key.code {
            KeyCode::Enter | KeyCode::Char('y') | KeyCode::Char('Y') => {
                app.notice = Some(format!(
                    "ending {} process group(s) left by the earlier session",
                    survivors.len()
                ));
                vec![Command::EndProcessGroups {
                    pids: survivors.iter().map(|s| s.pid).collect(),
                }]
            }
            KeyCode::Esc | KeyCode::Char('n') | KeyCode::Char('N') => {
                app.notice = Some(format!(
                    "left running: {}",
                    survivors
                        .iter()
                        .map(|s| format!("pid {} ({})", s.pid, s.step))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                vec![]
            }
            _ => {
                app.overlay = Some(Overlay::Survivors { survivors });
                vec![]
            }
        },
        Overlay::ConfirmQuit => match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => {
                app.quitting = true;
                vec![Command::Quit]
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => vec![],
            _ => {
                app.overlay = Some(Overlay::ConfirmQuit);
                vec![]
            }
        },
        Overlay::Input {
            purpose,
            mut field,
            error,
        } => match key.code {
            KeyCode::Esc => {
                app.notice = Some("cancelled".to_string());
                vec![]
            }
            KeyCode::Enter => {
                let text = field.lines().join(" ").trim().to_string();
                match submit(app, &purpose, text) {
                    Ok(commands) => commands,
                    Err(problem) => {
                        app.overlay = Some(Overlay::Input {
                            purpose,
                            field,
                            error: Some(problem),
                        });
                        vec![]
                    }
                }
            }
            _ => {
                field.input(key);
                app.overlay = Some(Overlay::Input {
                    purpose,
                    field,
                    error,
                });
                vec![]
            }
        },
    }
}

/// What the typed text does; `Err` keeps the dialog open with the problem shown.
fn submit(app: &mut App, purpose: &InputPurpose, text: String) -> Result<Vec<Command>, String> {
    let set = |app: &mut App, step: &str, status: StepStatus| {
        if let Some(state) = app.steps.get_mut(step) {
            state.status = status;
        }
    };
    match purpose {
        InputPurpose::TickNote { step } => {
            set(app, step, StepStatus::Ticked { note: text.clone() });
            app.notice = Some(format!("{step}: ticked"));
            Ok(vec![
                record(step, Entry::Ticked { note: text }),
                note(step, Status::Pass),
            ])
        }
        InputPurpose::SkipReason { step } => {
            if text.is_empty() {
                return Err("say why it is skipped (it goes into the record)".to_string());
            }
            set(
                app,
                step,
                StepStatus::Skipped {
                    reason: text.clone(),
                },
            );
            app.notice = Some(format!("{step}: skipped"));
            Ok(vec![
                record(step, Entry::Skipped { reason: text }),
                note(step, Status::Skip),
            ])
        }
        InputPurpose::SignOffName { step } => {
            if text.is_empty() {
                return Err("type the name of the person signing".to_string());
            }
            let at = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
            let role = match app.runbook.step(step).map(|s| &s.action) {
                Some(StepAction::Signoff { role }) => role.clone(),
                _ => String::new(),
            };
            set(
                app,
                step,
                StepStatus::Signed {
                    name: text.clone(),
                    at,
                },
            );
            app.notice = Some(format!("{step}: signed"));
            Ok(vec![
                record(step, Entry::Signed { name: text, role }),
                note(step, Status::Pass),
            ])
        }
        InputPurpose::VariableValue { name, step } => {
            if text.is_empty() {
                return Err(format!("`{name}` needs a value"));
            }
            app.variables.insert(name.clone(), text.clone());
            let secret = app.runbook.is_secret(name);
            let shown = if secret {
                "***".to_string()
            } else {
                text.clone()
            };
            let mut commands = vec![
                Command::Record {
                    step: Some(step.clone()),
                    entry: Entry::VariableSet {
                        name: name.clone(),
                        value: shown,
                    },
                },
                Command::SetVariable {
                    name: name.clone(),
                    value: text,
                },
            ];
            if let Some(step) = app.runbook.step(step).cloned() {
                commands.extend(run(app, &step));
            }
            Ok(commands)
        }
        InputPurpose::Approve { step, request } => {
            if text != request.database {
                return Err(format!(
                    "that is not the database name: type {} to approve, or Esc (n rejects)",
                    request.database
                ));
            }
            Ok(vec![Command::Answer {
                step: step.clone(),
                request: request.clone(),
                verdict: crate::approval::Verdict::Approve { typed: text },
            }])
        }
        InputPurpose::RejectReason { step, request } => {
            if text.is_empty() {
                return Err("say why it is rejected (the operator reads it)".to_string());
            }
            Ok(vec![Command::Answer {
                step: step.clone(),
                request: request.clone(),
                verdict: crate::approval::Verdict::Reject { reason: text },
            }])
        }
        InputPurpose::ConfirmDestructive { step, ids, .. } => {
            if text != app.database {
                return Err(format!(
                    "that is not the database name: type {} to run it, or Esc",
                    app.database
                ));
            }
            // Asked again on the state of now: a dependency may have failed while the dialog
            // was open. The engine decides once more when the step is about to start.
            let known = app.known();
            let (_, held) = plan::runnable(&app.runbook, ids, &known);
            if let Some((_, blocker)) = held.iter().find(|(id, _)| id == step) {
                app.notice = Some(format!("{step} is held back: it depends on {blocker}"));
                return Ok(vec![]);
            }
            Ok(start(app, ids.clone(), Some(text)))
        }
    }
}
