//! Records an engine run into the journal as it happens: each event is on disk before the
//! caller goes on to show it. Output is written in batches, in full.

use std::collections::HashMap;

use super::{Entry, Journal, JournalError};
use crate::engine::OutputStream;
use crate::outcome::Outcome;

/// Lines of output gathered before they are written as one event.
const OUTPUT_BATCH: usize = 256;

/// A run being recorded (or not, without a journal).
#[derive(Debug)]
pub struct Recorder {
    journal: Option<Journal>,
    run_id: String,
    pending: HashMap<String, (OutputStream, Vec<String>)>,
}

impl Recorder {
    /// Records into `journal` under `run_id`; with `None`, records nothing.
    pub fn new(journal: Option<Journal>, run_id: String) -> Recorder {
        Recorder {
            journal,
            run_id,
            pending: HashMap::new(),
        }
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Appends one entry now.
    pub async fn record(&mut self, step: Option<&str>, entry: Entry) -> Result<(), JournalError> {
        if let Some(step) = step {
            self.flush(step).await?;
        }
        match &self.journal {
            Some(journal) => journal.append(&self.run_id, step, &entry).await.map(|_| ()),
            None => Ok(()),
        }
    }

    /// A line of output; written with the next batch.
    pub async fn output(
        &mut self,
        step: &str,
        stream: OutputStream,
        line: String,
    ) -> Result<(), JournalError> {
        if self.journal.is_none() {
            return Ok(());
        }
        let full = match self.pending.get_mut(step) {
            Some((pending_stream, lines)) if *pending_stream == stream => {
                lines.push(line);
                lines.len() >= OUTPUT_BATCH
            }
            Some(_) => {
                self.flush(step).await?;
                self.pending.insert(step.to_string(), (stream, vec![line]));
                false
            }
            None => {
                self.pending.insert(step.to_string(), (stream, vec![line]));
                false
            }
        };
        if full {
            self.flush(step).await?;
        }
        Ok(())
    }

    /// A step's outcome (its pending output first).
    pub async fn finished(
        &mut self,
        step: &str,
        outcome: &Outcome,
        duration_ms: u64,
    ) -> Result<(), JournalError> {
        let entry = Entry::StepFinished {
            status: outcome.status,
            message: outcome.message.clone(),
            details: outcome.details.clone(),
            duration_ms,
        };
        self.record(Some(step), entry).await
    }

    async fn flush(&mut self, step: &str) -> Result<(), JournalError> {
        let (Some(journal), Some((stream, lines))) = (&self.journal, self.pending.remove(step))
        else {
            return Ok(());
        };
        journal
            .append(
                &self.run_id,
                Some(step),
                &Entry::StepOutput { stream, lines },
            )
            .await
            .map(|_| ())
    }

    /// Writes what is pending and marks the run finished.
    pub async fn finish(self) -> Result<(), JournalError> {
        self.close(true).await
    }

    /// Writes what is pending; marks the run finished only if `finished` (a wizard left in the
    /// middle of a run leaves it open, to be resumed).
    pub async fn close(mut self, finished: bool) -> Result<(), JournalError> {
        let steps: Vec<String> = self.pending.keys().cloned().collect();
        for step in steps {
            self.flush(&step).await?;
        }
        if finished && let Some(journal) = &self.journal {
            journal.finish_run(&self.run_id).await?;
        }
        Ok(())
    }
}
