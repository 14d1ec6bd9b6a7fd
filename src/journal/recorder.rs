//! Records an engine run into the journal as it happens: each event is on disk before the
//! caller goes on to show it. Output is written in batches, in full.

use std::collections::{HashMap, VecDeque};

use super::{Entry, Journal, JournalError};
use crate::engine::{Event, OutputStream};
use crate::outcome::Outcome;

/// Output is gathered and written as one event (one fsync) when it reaches this many bytes or
/// this age: a flood of output costs a few writes a second, not one per line, and a `kill -9`
/// loses at most `OUTPUT_BATCH_AGE` of it. The age is kept by the event loops, which call
/// [`Recorder::flush_due`] at [`Recorder::next_due`] even when no output comes. The size bounds
/// the memory a step's unwritten output takes.
const OUTPUT_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// The output at risk on `kill -9`.
/// Half the 100 ms promised: the pipe, the engine and the write itself take some too.
pub const OUTPUT_BATCH_AGE: std::time::Duration = std::time::Duration::from_millis(50);

/// A run being recorded (or not, without a journal).
#[derive(Debug)]
pub struct Recorder {
    journal: Option<Journal>,
    run_id: String,
    pending: HashMap<String, Pending>,
    /// For a journal in PostgreSQL: the embedded journal, which records every event first, so
    /// that a control database that stops answering loses nothing.
    mirror: Option<Journal>,
    /// Events recorded locally and not yet in the control database, oldest first, with when
    /// they were recorded and their number in the local journal (the same as in the control
    /// database, which gets each one after it, in order).
    backlog: VecDeque<(Option<String>, Entry, String, i64)>,
    /// The run held in the local journal while this records it: a later cutover sends what
    /// the control database missed of a run nobody records (`Journal::catch_up_from`).
    _recording: Option<super::RunLock>,
    /// When the control database last failed, and why.
    offline: Option<(std::time::Instant, String)>,
    /// What the front door should say (the control database lost or back), once.
    news: Option<String>,
}

/// How long a recorder waits before it tries a control database that failed again.
const RETRY_OFFLINE_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a write to the control database may take before it counts as not answering. A
/// server that hangs (a stopped host, a network that drops packets) would otherwise hold the
/// event loop that waits on the recorder, the wizard's screen and the steps' events with it,
/// until the kernel gives up on the connection, many minutes later.
const CONTROL_ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// `work` on the control database `journal`, as not answering after [`CONTROL_ANSWER_WITHIN`].
async fn answered<T>(
    journal: &Journal,
    work: impl std::future::Future<Output = Result<T, JournalError>>,
) -> Result<T, JournalError> {
    tokio::time::timeout(CONTROL_ANSWER_WITHIN, work)
        .await
        .unwrap_or_else(|_| {
            Err(JournalError::Unreachable {
                url: journal.location().to_string(),
                detail: format!("no answer within {} s", CONTROL_ANSWER_WITHIN.as_secs()),
            })
        })
}

/// A step's output not written yet.
#[derive(Debug)]
struct Pending {
    stream: OutputStream,
    text: String,
    since: std::time::Instant,
}

impl Pending {
    fn new(stream: OutputStream, first: &str) -> Pending {
        let mut text = String::with_capacity(first.len().max(64 * 1024));
        text.push_str(first);
        Pending {
            stream,
            text,
            since: std::time::Instant::now(),
        }
    }

    fn is_due(&self) -> bool {
        self.text.len() >= OUTPUT_BATCH_BYTES || self.since.elapsed() >= OUTPUT_BATCH_AGE
    }
}

impl Recorder {
    /// Records into `journal` under `run_id`; with `None`, records nothing.
    pub fn new(journal: Option<Journal>, run_id: String) -> Recorder {
        Recorder {
            journal,
            run_id,
            pending: HashMap::new(),
            mirror: None,
            backlog: VecDeque::new(),
            _recording: None,
            offline: None,
            news: None,
        }
    }

    /// Records into the embedded journal `mirror` too, first (for a journal in PostgreSQL):
    /// while the control database does not answer, the run goes on, recorded there, and what
    /// it missed is sent, in order, when it answers again.
    pub fn mirrored(mut self, mirror: Option<Journal>) -> Recorder {
        self._recording = mirror
            .as_ref()
            .and_then(|mirror| mirror.lock_file(&self.run_id).ok());
        self.mirror = mirror;
        self
    }

    /// What to tell the person about the control database since the last call: it stopped
    /// answering (and where the run is recorded meanwhile), or it answers again.
    pub fn news(&mut self) -> Option<String> {
        self.news.take()
    }

    /// Appends an entry: to the journal; with a mirror, to the mirror first, then to the
    /// journal with what it missed before.
    async fn append(&mut self, step: Option<&str>, entry: Entry) -> Result<(), JournalError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let Some(mirror) = &self.mirror else {
            return journal.append(&self.run_id, step, &entry).await.map(|_| ());
        };
        let at = super::now();
        let seq = mirror.append_at(&self.run_id, step, &entry, &at).await?;
        self.backlog
            .push_back((step.map(str::to_string), entry, at, seq));
        self.send_backlog(false).await;
        Ok(())
    }

    /// Sends the events the control database missed, in order, unless it failed moments ago
    /// (`now` tries regardless).
    async fn send_backlog(&mut self, now: bool) {
        let (Some(journal), Some(mirror)) = (&self.journal, &self.mirror) else {
            return;
        };
        if !now
            && self
                .offline
                .as_ref()
                .is_some_and(|(at, _)| at.elapsed() < RETRY_OFFLINE_AFTER)
        {
            return;
        }
        // A write given up on may still have been committed (its answer was what got lost):
        // what the control database has is not sent again.
        if let Some((_, why)) = &self.offline {
            match answered(journal, journal.event_count(&self.run_id)).await {
                Ok(there) => {
                    while self.backlog.front().is_some_and(|event| event.3 <= there) {
                        self.backlog.pop_front();
                    }
                }
                Err(err) => {
                    tracing::debug!(%err, before = %why, "the journal database still does not answer");
                    self.offline = Some((std::time::Instant::now(), err.to_string()));
                    return;
                }
            }
        }
        while let Some((step, entry, at, _)) = self.backlog.front() {
            match answered(
                journal,
                journal.append_at(&self.run_id, step.as_deref(), entry, at),
            )
            .await
            {
                Ok(_) => {
                    self.backlog.pop_front();
                }
                Err(err) => {
                    if self.offline.is_none() {
                        self.news = Some(format!(
                            "the journal database does not answer ({err}): the run goes on, recorded in the local journal {}; what it misses is sent when it answers",
                            mirror.location()
                        ));
                    }
                    self.offline = Some((std::time::Instant::now(), err.to_string()));
                    return;
                }
            }
        }
        if self.offline.take().is_some() {
            self.news = Some(
                "the journal database answers again: every event recorded meanwhile was sent"
                    .to_string(),
            );
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
        self.append(step, entry).await
    }

    /// Records what the engine reported (output goes with the next batch).
    pub async fn event(&mut self, event: &Event) -> Result<(), JournalError> {
        match event {
            Event::StepStarted { id } => self.record(Some(id), Entry::StepStarted).await,
            Event::StepProcess { id, pid, command } => {
                let entry = Entry::StepProcess {
                    pid: *pid,
                    command: command.clone(),
                };
                self.record(Some(id), entry).await
            }
            Event::StepOutput { id, stream, text } => self.output(id, *stream, text).await,
            Event::StepFinished {
                id,
                outcome,
                duration,
            } => {
                self.finished(id, outcome, duration.as_millis() as u64)
                    .await
            }
            Event::MigrationApplied { id, migration } => {
                self.record(Some(id), Entry::MigrationApplied(migration.clone()))
                    .await
            }
            Event::Approval { id, approval } => self.record(Some(id), approval.entry()).await,
            Event::BatchFinished => Ok(()),
        }
    }

    /// Output (whole lines); written with the next batch.
    pub async fn output(
        &mut self,
        step: &str,
        stream: OutputStream,
        text: &str,
    ) -> Result<(), JournalError> {
        if self.journal.is_none() {
            return Ok(());
        }
        let due = match self.pending.get_mut(step) {
            Some(pending) if pending.stream == stream => {
                pending.text.push_str(text);
                pending.is_due()
            }
            Some(_) => {
                self.flush(step).await?;
                self.pending
                    .insert(step.to_string(), Pending::new(stream, text));
                false
            }
            None => {
                self.pending
                    .insert(step.to_string(), Pending::new(stream, text));
                false
            }
        };
        if due {
            self.flush(step).await?;
        }
        Ok(())
    }

    /// When the oldest pending output is due (none pending: `None`).
    pub fn next_due(&self) -> Option<tokio::time::Instant> {
        self.pending
            .values()
            .map(|pending| tokio::time::Instant::from_std(pending.since + OUTPUT_BATCH_AGE))
            .min()
    }

    /// Writes the pending output that has waited `OUTPUT_BATCH_AGE`.
    pub async fn flush_due(&mut self) -> Result<(), JournalError> {
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, pending)| pending.is_due())
            .map(|(step, _)| step.clone())
            .collect();
        for step in due {
            self.flush(&step).await?;
        }
        Ok(())
    }

    /// Sleeps until some pending output is due (forever when none is): for the event loops'
    /// `select!`.
    pub async fn due(&self) {
        match self.next_due() {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
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
            data: outcome.data.clone(),
        };
        self.record(Some(step), entry).await
    }

    async fn flush(&mut self, step: &str) -> Result<(), JournalError> {
        let Some(pending) = self.pending.remove(step) else {
            return Ok(());
        };
        let entry = Entry::StepOutput {
            stream: pending.stream,
            text: pending.text,
        };
        self.append(Some(step), entry).await
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
        if let Some(mirror) = self.mirror.clone() {
            if finished {
                mirror.finish_run(&self.run_id).await?;
            }
            mirror.checkpoint().await?;
            // The control database's last chance: what it still misses stays in the local
            // journal, and is said (the run's end counts as one more).
            self.send_backlog(true).await;
            let ended = match &self.journal {
                Some(journal) if finished => {
                    self.backlog.is_empty()
                        && answered(journal, journal.finish_run(&self.run_id))
                            .await
                            .is_ok()
                }
                _ => true,
            };
            let missed = self.backlog.len() + usize::from(!ended);
            if missed > 0 {
                return Err(JournalError::Unsent {
                    events: missed,
                    run: self.run_id.clone(),
                    local: mirror.location().to_string(),
                });
            }
            return Ok(());
        }
        if let Some(journal) = &self.journal {
            if finished {
                journal.finish_run(&self.run_id).await?;
            }
            journal.checkpoint().await?;
        }
        Ok(())
    }
}
