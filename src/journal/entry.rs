//! What the journal records about a run: one variant per kind of event.

use serde::{Deserialize, Serialize};

use crate::engine::OutputStream;
use crate::outcome::Status;

/// A recorded event (stored as JSON with a `kind` tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A step began.
    StepStarted,
    /// A shell step's process started; its pid is its process group's id. A run resumed after
    /// cutover was killed looks for survivors of it.
    StepProcess {
        /// The group leader's pid.
        pid: u32,
        /// The command, redacted.
        command: String,
    },
    /// A step's output, in order (kept in full, written in batches).
    StepOutput {
        /// Which pipe.
        stream: OutputStream,
        /// Whole lines, each ending with `\n` (`engine::output_lines` splits them). Stored as
        /// it is in the event's own column, not inside its JSON, so that the journal is no
        /// bigger than the output.
        #[serde(skip)]
        text: String,
    },
    /// A step ended.
    StepFinished {
        /// How.
        status: Status,
        /// One line.
        message: String,
        /// Further lines.
        details: Vec<String>,
        /// How long it ran.
        duration_ms: u64,
        /// What it measured, for later steps (absent in most).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<serde_json::Value>,
    },
    /// A person ticked a manual step.
    Ticked {
        /// Their note (may be empty).
        note: String,
    },
    /// A person skipped a step.
    Skipped {
        /// Why.
        reason: String,
    },
    /// A person signed off.
    Signed {
        /// Who.
        name: String,
        /// In which role.
        role: String,
    },
    /// A migration step applied one migration (recorded as it happens).
    MigrationApplied(crate::migrate::deploy::Applied),
    /// A destructive step waits for a second person's approval (the two-person rule).
    ApprovalRequested(crate::approval::Request),
    /// A second person approved it.
    Approved(crate::approval::Decision),
    /// A second person rejected it, with a reason.
    Rejected(crate::approval::Decision),
    /// Nobody answered in time.
    ApprovalTimedOut {
        /// The request.
        request: String,
        /// How long it waited, in seconds.
        waited_s: u64,
    },
    /// A variable was given a value (masked when secret).
    VariableSet {
        /// Its name.
        name: String,
        /// Its value, or `***`.
        value: String,
    },
}

impl Entry {
    /// The `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::StepStarted => "step_started",
            Entry::StepProcess { .. } => "step_process",
            Entry::StepOutput { .. } => "step_output",
            Entry::StepFinished { .. } => "step_finished",
            Entry::Ticked { .. } => "ticked",
            Entry::Skipped { .. } => "skipped",
            Entry::Signed { .. } => "signed",
            Entry::VariableSet { .. } => "variable_set",
            Entry::MigrationApplied(_) => "migration_applied",
            Entry::ApprovalRequested(_) => "approval_requested",
            Entry::Approved(_) => "approved",
            Entry::Rejected(_) => "rejected",
            Entry::ApprovalTimedOut { .. } => "approval_timed_out",
        }
    }
}
