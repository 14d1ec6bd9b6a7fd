//! The one result type of every step: a status, a one-line message and detail lines.

use serde::{Deserialize, Serialize};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The database is as the checklist wants.
    Pass,
    /// Not quite, but not blocking (or an optional step failed).
    Warn,
    /// Not run (manual, not allowed headless, a variable without a value, a dependency failed).
    Skip,
    /// The database is not as the checklist wants.
    Fail,
    /// The step could not be run (no connection, timeout, bad SQL).
    Error,
}

impl Status {
    /// Lowercase name, as in the JSON contract.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Skip => "skip",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }

    /// A glyph that carries the status without colour.
    pub fn symbol(self) -> &'static str {
        match self {
            Status::Pass => "✓",
            Status::Warn => "!",
            Status::Skip => "-",
            Status::Fail => "✗",
            Status::Error => "E",
        }
    }

    /// Whether a run with this status has failed.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Fail | Status::Error)
    }
}

/// What a step found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// How it ended.
    pub status: Status,
    /// One line for lists.
    pub message: String,
    /// Further lines: what is missing, the rows that broke the rule, the output tail.
    pub details: Vec<String>,
    /// What a step measured, for a later step to compare against (the row-count baseline);
    /// journaled with the outcome, never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Outcome {
    /// An outcome with no details.
    pub fn new(status: Status, message: impl Into<String>) -> Outcome {
        Outcome {
            status,
            message: one_line(&message.into()),
            details: Vec::new(),
            data: None,
        }
    }

    /// Passed.
    pub fn pass(message: impl Into<String>) -> Outcome {
        Outcome::new(Status::Pass, message)
    }

    /// Failed: the database is not as wanted.
    pub fn fail(message: impl Into<String>) -> Outcome {
        Outcome::new(Status::Fail, message)
    }

    /// A warning.
    pub fn warn(message: impl Into<String>) -> Outcome {
        Outcome::new(Status::Warn, message)
    }

    /// Not run.
    pub fn skip(message: impl Into<String>) -> Outcome {
        Outcome::new(Status::Skip, message)
    }

    /// Could not be run.
    pub fn error(message: impl Into<String>) -> Outcome {
        Outcome::new(Status::Error, message)
    }

    /// Attaches measured data for later steps.
    pub fn with_data(mut self, data: serde_json::Value) -> Outcome {
        self.data = Some(data);
        self
    }

    /// Adds detail lines.
    pub fn with_details(mut self, details: impl IntoIterator<Item = String>) -> Outcome {
        self.details.extend(details);
        self
    }
}

/// Folds a message onto one line, as the contract asks.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
