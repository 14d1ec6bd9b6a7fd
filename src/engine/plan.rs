//! What may run: the one decision about dependencies that the wizard and headless `check`
//! share. The engine applies it when a step is about to start; the wizard asks it before it
//! offers a confirmation, so that a destructive step is never confirmed past a dependency
//! that did not pass.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::outcome::Status;
use crate::runbook::{Action, Runbook, Step};

/// What this run knows of each step: the status it ended with. A ticked manual step and a
/// signed sign-off count as passed; a step a person skipped, as skipped.
pub type Known = HashMap<String, Status>;

/// Steps that passed before this run: the measurements an earlier run of this target
/// journaled (the row-count baseline) are what their dependents need.
pub fn passed<'a>(ids: impl IntoIterator<Item = &'a String>) -> Known {
    ids.into_iter()
        .map(|id| (id.clone(), Status::Pass))
        .collect()
}

/// A dependency that holds a step back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// The dependency's full id.
    pub dependency: String,
    /// What it ended with; `None` when it has not run in this run.
    pub ended: Option<Status>,
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ended {
            None => write!(f, "{}, which has not run", self.dependency),
            Some(status) => write!(f, "{}, which ended {}", self.dependency, status.as_str()),
        }
    }
}

/// Whether a dependency that ended so lets its dependents start: only pass and warn do.
pub fn lets_dependents_run(ended: Option<Status>) -> bool {
    matches!(ended, Some(Status::Pass | Status::Warn))
}

/// The dependencies of `step` that hold it back: each one that failed, erred, was skipped or
/// has not run.
pub fn blockers(step: &Step, known: &Known) -> Vec<Blocker> {
    step.depends_on
        .iter()
        .map(|dependency| Blocker {
            dependency: dependency.clone(),
            ended: known.get(dependency).copied(),
        })
        .filter(|blocker| !lets_dependents_run(blocker.ended))
        .collect()
}

/// Whether the step changes the target, and so asks for the database name to be typed.
pub fn is_destructive(step: &Step) -> bool {
    match &step.action {
        Action::Shell(shell) => shell.destructive,
        Action::Migrate(migrate) => migrate.writes_to_target(),
        _ => false,
    }
}

/// Which dependencies [`with_dependencies`] may add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Any: the wizard lists them and the person chooses.
    Any,
    /// Only those of the step's own section (headless `--only`): a section is one phase,
    /// run together; a dependency on another phase (a baseline taken before the deploy) is
    /// a precondition to meet, not something to redo on the way, which would compare the
    /// database with itself.
    SameSection,
}

/// `ids` and, before them, every dependency they need that has not passed and that a machine
/// can run, transitively, in runbook order. A manual dependency is not added (a person must
/// tick it), nor a destructive one (it is confirmed on its own, never on the way to another);
/// until then the step stays held back.
pub fn with_dependencies(
    runbook: &Runbook,
    ids: &[String],
    known: &Known,
    reach: Reach,
) -> Vec<String> {
    let mut wanted: HashSet<String> = ids.iter().cloned().collect();
    let mut queue: Vec<String> = ids.to_vec();
    while let Some(id) = queue.pop() {
        let Some(step) = runbook.step(&id) else {
            continue;
        };
        for blocker in blockers(step, known) {
            let automated = runbook.step(&blocker.dependency).is_some_and(|dependency| {
                dependency.kind().is_automated()
                    && !is_destructive(dependency)
                    && (reach == Reach::Any || dependency.section == step.section)
            });
            if automated && wanted.insert(blocker.dependency.clone()) {
                queue.push(blocker.dependency);
            }
        }
    }
    runbook
        .steps()
        .filter(|step| wanted.contains(&step.id))
        .map(|step| step.id.clone())
        .collect()
}

/// Splits `ids` (in runbook order) into the steps that may start together now, each after
/// the ones of this batch it depends on, and those held back, each with the first
/// dependency that holds it back.
pub fn runnable(
    runbook: &Runbook,
    ids: &[String],
    known: &Known,
) -> (Vec<String>, Vec<(String, Blocker)>) {
    let mut run: Vec<String> = Vec::new();
    let mut held = Vec::new();
    for step in runbook.steps().filter(|step| ids.contains(&step.id)) {
        let first_blocker = blockers(step, known)
            .into_iter()
            .find(|blocker| !run.contains(&blocker.dependency));
        match first_blocker {
            None => run.push(step.id.clone()),
            Some(blocker) => held.push((step.id.clone(), blocker)),
        }
    }
    (run, held)
}

/// Probes that read the tables' data (their time grows with the rows), as opposed to the
/// catalog probes, which answer in milliseconds.
const DATA_PROBES: &[&str] = &["orphans", "row_counts", "unique", "query_latency"];

/// Probes that wait out a window between two short reads, and hold no connection meanwhile.
const WINDOW_PROBES: &[&str] = &["error_rates"];

/// How long `step` is expected to take, in milliseconds: what it took when it last ran
/// against this target (`journaled`), else a guess from its kind (a shell step longest, then a
/// probe that waits out a window or reads the data, then the catalog checks). Longest first is
/// the order in which waiting steps get a slot.
pub fn expected_ms(step: &Step, journaled: &HashMap<String, u64>) -> u64 {
    if let Some(ms) = journaled.get(&step.id) {
        return *ms;
    }
    match &step.action {
        Action::Shell(_) | Action::Migrate(_) => 60_000,
        Action::Probe { probe, params } if WINDOW_PROBES.contains(&probe.as_str()) => params
            .get("window_secs")
            .and_then(|secs| secs.as_f64())
            .map_or(30_000, |secs| (secs * 1000.0) as u64),
        Action::Probe { probe, .. } if DATA_PROBES.contains(&probe.as_str()) => 10_000,
        Action::Http(_) => 1_000,
        Action::Sql { .. } | Action::Probe { .. } => 100,
        Action::Manual | Action::Signoff { .. } => 0,
    }
}

/// Whether `step` holds one of the pool's connections while it runs (and so waits for one
/// before it starts): SQL steps and probes, but not a probe that waits out a window between
/// two short reads.
pub fn holds_a_connection(step: &Step) -> bool {
    match &step.action {
        Action::Sql { .. } => true,
        Action::Probe { probe, .. } => !WINDOW_PROBES.contains(&probe.as_str()),
        _ => false,
    }
}
