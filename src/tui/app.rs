//! All the wizard's state. `update` changes it, `render` only reads it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui_textarea::TextArea;

use crate::engine::OutputStream;
use crate::engine::plan::{Blocker, Known};
use crate::monitor::{Alert, IndexStatus, MetricsSample};
use crate::outcome::{Outcome, Status};
use crate::runbook::{Kind, Runbook, Step};

/// Metrics samples kept for the sparklines (5 minutes at the default 2 s).
pub const METRICS_HISTORY: usize = 150;

/// Lines of shell output kept per step; older ones are dropped (and counted), so memory stays
/// bounded whatever a step prints.
pub const OUTPUT_LINES_KEPT: usize = 5_000;

/// Whether this run rehearses or is the real thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Staging or a dry run.
    Rehearsal,
    /// The go-live.
    Production,
}

/// Where the wizard stands with the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Not answered yet.
    Connecting,
    /// Answering.
    Connected,
    /// Lost; the wizard keeps trying.
    Lost {
        /// Why, in one line.
        error: String,
    },
}

/// What became of a step in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepStatus {
    /// Not run yet.
    Pending,
    /// Running since then.
    Running {
        /// When it began.
        since: Instant,
    },
    /// The engine finished it.
    Finished(Outcome),
    /// A person ticked it, with a note.
    Ticked {
        /// The note (may be empty).
        note: String,
    },
    /// A person skipped it, with a reason.
    Skipped {
        /// Why.
        reason: String,
    },
    /// It was running when an earlier session of this run ended (a crash, a lost SSH
    /// link): what it did is unknown, and it is not re-run by itself.
    Interrupted,
    /// Signed by a person in a role.
    Signed {
        /// Who signed.
        name: String,
        /// When (local clock, RFC 3339).
        at: String,
    },
}

impl StepStatus {
    /// What it ended with, for the dependency rule (a tick or a signature is a pass).
    pub fn ended(&self) -> Option<Status> {
        match self {
            StepStatus::Finished(outcome) => Some(outcome.status),
            StepStatus::Ticked { .. } | StepStatus::Signed { .. } => Some(Status::Pass),
            StepStatus::Skipped { .. } => Some(Status::Skip),
            StepStatus::Pending | StepStatus::Running { .. } | StepStatus::Interrupted => None,
        }
    }
}

/// One step's state in this run.
#[derive(Debug, Clone)]
pub struct StepState {
    /// What became of it.
    pub status: StepStatus,
    /// How long its last run took.
    pub duration: Option<Duration>,
    /// Its shell output, the newest last.
    pub output: VecDeque<(OutputStream, String)>,
    /// Output lines dropped from the front to keep memory bounded.
    pub output_dropped: usize,
    /// Its shell process (pid, which is its group's id, and command) while it runs.
    pub process: Option<(u32, String)>,
    /// The approval it waits for (the two-person rule), until it is answered.
    pub awaiting: Option<crate::approval::Request>,
}

impl StepState {
    fn new() -> StepState {
        StepState {
            status: StepStatus::Pending,
            duration: None,
            output: VecDeque::new(),
            output_dropped: 0,
            process: None,
            awaiting: None,
        }
    }

    /// What an approval event does to the step, whether the operator's engine reports it or a
    /// watcher reads it from the journal: a request makes it wait, showing what it will run;
    /// an answer or a timeout ends the wait. Returns what to say of an answer or a timeout.
    pub fn approval(&mut self, step: &str, entry: &crate::journal::Entry) -> Option<String> {
        use crate::journal::Entry;
        match entry {
            Entry::ApprovalRequested(request) => {
                self.status = StepStatus::Running {
                    since: Instant::now(),
                };
                self.await_approval(request);
                None
            }
            Entry::Approved(decision) => {
                self.awaiting = None;
                Some(format!("{step}: approved by {}", decision.who()))
            }
            Entry::Rejected(decision) => {
                self.awaiting = None;
                Some(format!(
                    "{step}: rejected by {}: {}",
                    decision.who(),
                    decision.reason.as_deref().unwrap_or_default()
                ))
            }
            Entry::ApprovalTimedOut { waited_s, .. } => {
                self.awaiting = None;
                Some(format!("{step}: nobody approved it in {waited_s} s"))
            }
            _ => None,
        }
    }

    /// A request for approval came: the step waits, and its output pane shows what it will
    /// run, on which target, for the approver to read.
    fn await_approval(&mut self, request: &crate::approval::Request) {
        self.output.clear();
        self.output_dropped = 0;
        let mut text = format!(
            "waiting for a second person's approval (requested by {})\ntarget: {}\n{}\n",
            request.operator, request.target, request.action
        );
        for line in &request.detail {
            text.push_str(line);
            text.push('\n');
        }
        self.push_output(OutputStream::Stdout, &text);
        self.awaiting = Some(request.clone());
    }

    /// Keeps the lines of a chunk of output, dropping the oldest beyond [`OUTPUT_LINES_KEPT`]
    /// (a chunk's own lines too, without copying those it would drop at once).
    pub fn push_output(&mut self, stream: OutputStream, text: &str) {
        let lines = crate::engine::output_lines(text);
        let count = lines.clone().count();
        let skipped = count.saturating_sub(OUTPUT_LINES_KEPT);
        self.output_dropped += skipped;
        for line in lines.skip(skipped) {
            if self.output.len() == OUTPUT_LINES_KEPT {
                self.output.pop_front();
                self.output_dropped += 1;
            }
            self.output.push_back((stream, line.to_string()));
        }
    }

    /// Whether the step counts as done for progress (passed, warned, ticked, skipped, signed).
    pub fn is_done(&self) -> bool {
        match &self.status {
            StepStatus::Pending | StepStatus::Running { .. } => false,
            StepStatus::Finished(outcome) => !outcome.status.is_failure(),
            StepStatus::Interrupted => false,
            StepStatus::Ticked { .. } | StepStatus::Skipped { .. } | StepStatus::Signed { .. } => {
                true
            }
        }
    }

    /// Whether it failed, errored, or was interrupted (all need a person's look).
    pub fn is_failed(&self) -> bool {
        matches!(&self.status, StepStatus::Finished(o) if o.status.is_failure())
            || self.status == StepStatus::Interrupted
    }
}

/// Which screen the main area shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Every section with its progress.
    Overview,
    /// One section (index into the runbook's sections).
    Section(usize),
}

/// Which pane of a section screen has the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    /// The step list.
    Steps,
    /// The output of the selected step.
    Output,
}

/// What a text dialog is asking for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputPurpose {
    /// A note for ticking a manual step.
    TickNote {
        /// Step id.
        step: String,
    },
    /// Why a step is skipped.
    SkipReason {
        /// Step id.
        step: String,
    },
    /// The signer's name for a sign-off.
    SignOffName {
        /// Step id.
        step: String,
    },
    /// A variable's value; the step then runs.
    VariableValue {
        /// Variable name.
        name: String,
        /// The step that asked for it.
        step: String,
    },
    /// The database name, typed to confirm a destructive step.
    ConfirmDestructive {
        /// Step id.
        step: String,
        /// What runs on this confirmation: the step, after the dependencies the person
        /// chose to run first.
        ids: Vec<String>,
        /// What to know before typing: a rehearsal found that a migration this deploy will
        /// apply fails.
        warnings: Vec<String>,
    },
    /// Watching: the database name, typed to approve a step that waits for a second person.
    Approve {
        /// Step id.
        step: String,
        /// Its request.
        request: crate::approval::Request,
    },
    /// Watching: why a step that waits for a second person is rejected.
    RejectReason {
        /// Step id.
        step: String,
        /// Its request.
        request: crate::approval::Request,
    },
}

impl InputPurpose {
    /// The step an observer's answer to a request for approval is about.
    pub fn approval_step(&self) -> Option<&str> {
        match self {
            InputPurpose::Approve { step, .. } | InputPurpose::RejectReason { step, .. } => {
                Some(step)
            }
            _ => None,
        }
    }
}

/// A step's process group that outlived the session that started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survivor {
    /// The step.
    pub step: String,
    /// The group's id (its leader's pid).
    pub pid: u32,
    /// The command as journaled (redacted).
    pub command: String,
}

/// A small window over the screen.
#[derive(Debug)]
pub enum Overlay {
    /// Every key.
    Help,
    /// Leave while something runs?
    ConfirmQuit,
    /// Processes of steps that were running when an earlier session of this run ended,
    /// still alive: end them?
    Survivors {
        /// Each one found.
        survivors: Vec<Survivor>,
    },
    /// A step is held back by dependencies a machine can run: run them first?
    RunDependencies {
        /// The step asked for.
        step: String,
        /// What holds it back.
        blockers: Vec<Blocker>,
        /// What would run: the dependencies, then the step, in runbook order.
        ids: Vec<String>,
    },
    /// A line of text to type.
    Input {
        /// What it is for.
        purpose: InputPurpose,
        /// The text field.
        field: Box<TextArea<'static>>,
        /// A problem with what was typed (shown under the field).
        error: Option<String>,
    },
}

/// The wizard.
#[derive(Debug)]
pub struct App {
    /// The runbook being walked.
    pub runbook: Arc<Runbook>,
    /// Redacted target URL.
    pub target: String,
    /// The target database's name (typed to confirm destructive steps).
    pub database: String,
    /// Rehearsal or production.
    pub mode: RunMode,
    /// Where we stand with the database.
    pub connection: Connection,
    /// Per step, by full id.
    pub steps: HashMap<String, StepState>,
    /// The screen shown.
    pub screen: Screen,
    /// The last section screen shown (where Enter on the overview goes back to).
    pub section: usize,
    /// Selected step within the current section.
    pub selected: usize,
    /// Which pane has the keys.
    pub pane: Pane,
    /// Output scroll: lines up from the bottom; 0 follows new output.
    pub output_scroll: usize,
    /// Live panels shown on a narrow screen (on a wide one they always are).
    pub panels_open: bool,
    /// An open dialog.
    pub overlay: Option<Overlay>,
    /// Variables known to the wizard (defaults and what was typed); secrets are masked on screen.
    pub variables: BTreeMap<String, String>,
    /// A one-line notice in the status bar (the last thing that happened, or went wrong).
    pub notice: Option<String>,
    /// Set when the wizard should end.
    pub quitting: bool,
    /// Why it ends with steps running (a signal), for their records.
    pub stop_reason: Option<String>,
    /// Colours on screen (off with `NO_COLOR`; glyphs carry every status without them).
    pub color: bool,
    /// The latest metrics sample.
    pub metrics: Option<MetricsSample>,
    /// Recent samples, oldest first, for the sparklines.
    pub metrics_history: VecDeque<MetricsSample>,
    /// Thresholds the latest sample crosses.
    pub alerts: Vec<Alert>,
    /// The live state of every index the runbook expects.
    pub indexes: Vec<IndexStatus>,
    /// Why the last refresh of the live panels failed (cleared by the next success).
    pub monitor_error: Option<String>,
    /// How long each step took in the last rehearsal of this runbook (production runs only).
    pub rehearsal: HashMap<String, Duration>,
    /// Watching a run another wizard holds (who): nothing can be run, ticked or signed here.
    pub read_only: Option<String>,
    /// What steps measured, by step id: from the journal for this target at the start (a
    /// rehearsal's restore, the row-count baseline), then as this run's steps measure. A step
    /// measured counts as passed for what depends on it, as in `check`, until it runs in this
    /// run; a rehearsal's finding is shown when a deploy asks for its confirmation.
    pub measured: HashMap<String, crate::probes::Measured>,
    /// Where the steps run (a runbook's relative folders are read from here).
    pub workdir: std::path::PathBuf,
    /// Watching as a possible approver: where answers go, the run, and the name given when
    /// sharing the operator's account (`--as`).
    pub approving: Option<Approving>,
    /// The run's id in the journal.
    pub run_id: String,
}

/// An observer's means to answer approval requests.
#[derive(Debug, Clone)]
pub struct Approving {
    /// Where answers go.
    pub answers: crate::approval::Answers,
    /// The run watched.
    pub run: crate::journal::Run,
    /// The name given with `--as`.
    pub name: Option<String>,
}

impl App {
    /// A fresh run of `runbook` against `target` (redacted) on database `database`.
    pub fn new(
        runbook: Arc<Runbook>,
        target: String,
        database: String,
        mode: RunMode,
        variables: BTreeMap<String, String>,
    ) -> App {
        let steps = runbook
            .steps()
            .map(|step| (step.id.clone(), StepState::new()))
            .collect();
        App {
            runbook,
            target,
            database,
            mode,
            connection: Connection::Connecting,
            steps,
            screen: Screen::Overview,
            section: 0,
            selected: 0,
            pane: Pane::Steps,
            output_scroll: 0,
            panels_open: false,
            overlay: None,
            variables,
            notice: None,
            quitting: false,
            stop_reason: None,
            color: true,
            metrics: None,
            metrics_history: VecDeque::new(),
            alerts: Vec::new(),
            indexes: Vec::new(),
            monitor_error: None,
            rehearsal: HashMap::new(),
            read_only: None,
            measured: HashMap::new(),
            workdir: std::path::PathBuf::from("."),
            approving: None,
            run_id: String::new(),
        }
    }

    /// The steps of the current section (empty on the overview).
    pub fn section_steps(&self) -> &[Step] {
        match self.screen {
            Screen::Section(index) => self
                .runbook
                .sections
                .get(index)
                .map_or(&[][..], |s| &s.steps[..]),
            Screen::Overview => &[],
        }
    }

    /// The selected step, on a section screen.
    pub fn selected_step(&self) -> Option<&Step> {
        self.section_steps().get(self.selected)
    }

    /// A step's state.
    pub fn state(&self, id: &str) -> Option<&StepState> {
        self.steps.get(id)
    }

    /// (done, total, failed) for a section.
    pub fn progress(&self, section: usize) -> (usize, usize, usize) {
        let Some(section) = self.runbook.sections.get(section) else {
            return (0, 0, 0);
        };
        let states = section.steps.iter().filter_map(|s| self.steps.get(&s.id));
        let (mut done, mut failed) = (0, 0);
        for state in states {
            done += usize::from(state.is_done());
            failed += usize::from(state.is_failed());
        }
        (done, section.steps.len(), failed)
    }

    /// Whether any step is running.
    pub fn anything_running(&self) -> bool {
        self.steps
            .values()
            .any(|s| matches!(s.status, StepStatus::Running { .. }))
    }

    /// Whether `step` can be run by the engine (as opposed to ticked or signed by a person).
    pub fn is_automated(step: &Step) -> bool {
        step.kind().is_automated()
    }

    /// What each step of this run ended with, as the engine's dependency rule reads it: a
    /// tick or a signature is a pass, a skip by hand a skip; running, interrupted and pending
    /// steps have no status.
    pub fn known(&self) -> Known {
        let mut known = crate::engine::plan::passed(self.measured.keys());
        known.extend(
            self.steps
                .iter()
                .filter_map(|(id, state)| state.status.ended().map(|status| (id.clone(), status))),
        );
        known
    }

    /// The first variable `step` needs that has no value yet.
    pub fn missing_variable(&self, step: &Step) -> Option<String> {
        step.variables()
            .into_iter()
            .find(|name| !self.variables.contains_key(name))
    }

    /// Replays a journaled run's events into this state (resuming it): outcomes, ticks, skips,
    /// sign-offs, variables and output as they were; a step that started and never ended is
    /// interrupted.
    pub fn restore(&mut self, events: &[crate::journal::Recorded]) {
        self.replay(events, false);
    }

    /// Applies events another wizard is recording now (watching read-only): a step that
    /// started is running, not interrupted.
    pub fn follow(&mut self, events: &[crate::journal::Recorded]) {
        self.replay(events, true);
    }

    fn replay(&mut self, events: &[crate::journal::Recorded], live: bool) {
        use crate::journal::Entry;
        for event in events {
            if let Entry::VariableSet { name, value } = &event.entry
                && value != "***"
            {
                self.variables.insert(name.clone(), value.clone());
            }
            let Some(step) = event.step_id.as_deref() else {
                continue;
            };
            let Some(state) = self.steps.get_mut(step) else {
                continue;
            };
            let at = event
                .at
                .with_timezone(&chrono::Local)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
            match &event.entry {
                Entry::StepStarted => {
                    state.awaiting = None;
                    state.status = if live {
                        StepStatus::Running {
                            since: Instant::now(),
                        }
                    } else {
                        StepStatus::Interrupted
                    };
                    state.output.clear();
                    state.output_dropped = 0;
                }
                Entry::StepOutput { stream, text } => state.push_output(*stream, text),
                Entry::StepProcess { pid, command } => {
                    state.process = Some((*pid, command.clone()));
                }
                Entry::StepFinished {
                    status,
                    message,
                    details,
                    duration_ms,
                    data,
                } => {
                    state.process = None;
                    state.awaiting = None;
                    state.status = StepStatus::Finished(Outcome {
                        status: *status,
                        message: message.clone(),
                        details: details.clone(),
                        data: data.clone(),
                    });
                    state.duration = Some(Duration::from_millis(*duration_ms));
                }
                Entry::Ticked { note } => state.status = StepStatus::Ticked { note: note.clone() },
                Entry::Skipped { reason } => {
                    state.status = StepStatus::Skipped {
                        reason: reason.clone(),
                    }
                }
                Entry::Signed { name, .. } => {
                    state.status = StepStatus::Signed {
                        name: name.clone(),
                        at,
                    }
                }
                // A request of an earlier session: nothing waits for it any more.
                Entry::ApprovalRequested(_) if !live => {}
                Entry::ApprovalRequested(_)
                | Entry::Approved(_)
                | Entry::Rejected(_)
                | Entry::ApprovalTimedOut { .. } => {
                    if let Some(said) = state.approval(step, &event.entry)
                        && live
                    {
                        self.notice = Some(said);
                    }
                }
                Entry::VariableSet { .. } | Entry::MigrationApplied(_) => {}
            }
        }
    }

    /// The first step waiting for a second person's approval: the selected one if it waits,
    /// else any, in runbook order.
    pub fn awaiting_approval(&self) -> Option<(String, crate::approval::Request)> {
        let waiting = |id: &str| {
            self.steps
                .get(id)
                .and_then(|state| state.awaiting.clone())
                .map(|request| (id.to_string(), request))
        };
        self.selected_step()
            .and_then(|step| waiting(&step.id))
            .or_else(|| self.runbook.steps().find_map(|step| waiting(&step.id)))
    }

    /// Whether a step is a sign-off.
    pub fn is_signoff(step: &Step) -> bool {
        step.kind() == Kind::Signoff
    }
}
