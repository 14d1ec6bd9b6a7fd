//! The wizard: state (`app`), a pure `update`, a pure `render` (`view`), the keymap, and one
//! event loop that feeds terminal keys, ticks and engine events in as messages and carries the
//! resulting commands out to the engine.

pub mod app;
pub mod keymap;
pub mod update;
pub mod view;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::db::{Db, DbSettings};
use crate::engine::{self, EngineConfig, EngineHandle};
use crate::journal::{Journal, JournalError, Mode, NewRun, Recorder};
use crate::monitor;
use crate::runbook::Runbook;
use crate::target::Target;
use app::{App, RunMode};
use update::{Command, Message, update};

/// How often the screen's timers move.
const TICK: Duration = Duration::from_secs(1);
/// How often the connection is looked at while it answers (a ping, which must come back
/// within `CONNECTION_DEADLINE`), and retried while it does not.
const CONNECTION_CHECK: Duration = Duration::from_secs(2);
const CONNECTION_DEADLINE: Duration = Duration::from_secs(2);
const CONNECTION_RETRY: Duration = Duration::from_secs(1);
/// Engine events taken in one go before the next frame, so a flood of output costs one frame
/// per batch rather than one per line.
const EVENTS_PER_FRAME: usize = 4096;

/// Why the wizard stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// The terminal could not be set up or drawn on.
    #[error("terminal: {0} (is this an interactive terminal? for CI use `cutover check`)")]
    Terminal(#[from] std::io::Error),
    /// The journal cannot record or resume the run.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// How the wizard runs.
#[derive(Debug, Clone)]
pub struct WizardOptions {
    /// Rehearsal or production.
    pub mode: RunMode,
    /// Variable values (defaults and `--var`).
    pub variables: BTreeMap<String, String>,
    /// Where shell steps run.
    pub workdir: PathBuf,
    /// Colours (off with `NO_COLOR`).
    pub color: bool,
    /// How often the live panels refresh.
    pub refresh: Duration,
    /// Where the run is recorded (none: not recorded).
    pub journal: Option<Journal>,
    /// The journaled run to pick up again (none: a new run).
    pub resume: Option<String>,
    /// Watch the resumed run read-only: another wizard (this one) holds it.
    pub watch: Option<String>,
    /// With a journal in PostgreSQL, the embedded journal that records the run first.
    pub mirror: Option<Journal>,
    /// The two-person rule for this run ([`crate::approval::Gate::for_run`]).
    pub approval: Option<crate::approval::Gate>,
    /// Watching: the name this observer approves under when sharing the operator's account
    /// (`--as`).
    pub approver: Option<String>,
}

/// Opens the wizard on the real terminal and runs it until the person quits. The terminal is
/// restored on every way out, panics included (`ratatui::init` installs that hook).
pub async fn run(
    runbook: Arc<Runbook>,
    target: &Target,
    options: WizardOptions,
) -> Result<(), TuiError> {
    let mut terminal = ratatui::try_init()?;
    let (input_tx, input_rx) = mpsc::channel(256);
    let keys = tokio::spawn(forward_terminal_events(input_tx.clone()));
    let signals = input_tx.clone();
    let watch_signals = tokio::spawn(async move {
        let signal = engine::termination_signal().await;
        let _ = signals.send(Message::Terminate(signal.to_string())).await;
    });
    let result = run_with(&mut terminal, runbook, target, options, input_tx, input_rx).await;
    keys.abort();
    watch_signals.abort();
    ratatui::restore();
    result
}

/// The event loop on any backend, with messages from `inputs` (terminal keys, or a test).
pub async fn run_with<B: Backend>(
    terminal: &mut Terminal<B>,
    runbook: Arc<Runbook>,
    target: &Target,
    options: WizardOptions,
    input_tx: mpsc::Sender<Message>,
    mut inputs: mpsc::Receiver<Message>,
) -> Result<(), TuiError>
where
    std::io::Error: From<B::Error>,
{
    // Two connections for the steps and one for the live panels: three in all, and a busy
    // engine never starves the panels.
    let db = Db::connect_lazy(
        target,
        DbSettings {
            max_connections: 2,
            ..DbSettings::default()
        },
    );
    // Its own pool, one view of the link: a failure the panels see is in the header at once.
    let monitor_db = db.for_panels();
    // The steps' connections open now, not when the first step needs one.
    tokio::spawn({
        let db = db.clone();
        async move { db.warm(&crate::probes::warm_up()).await }
    });
    let config = EngineConfig {
        allow_shell: true,
        allow_http: true,
        variables: options.variables.clone(),
        workdir: options.workdir.clone(),
        measured: match &options.journal {
            Some(journal) => journal.measurements(&target.to_string()).await?,
            None => Default::default(),
        },
        durations: match &options.journal {
            Some(journal) => journal.durations(&target.to_string()).await?,
            None => Default::default(),
        },
        approval: options.approval.clone(),
        operator: crate::journal::operator(),
        ..EngineConfig::default()
    };
    let measured = config.measured.clone();
    let mut engine = engine::spawn(runbook.clone(), db.clone(), config);
    let stop = CancellationToken::new();
    tokio::spawn(watch_connection(db.clone(), input_tx.clone(), stop.clone()));
    let monitor_config = monitor::MonitorConfig {
        interval: options.refresh,
        ..monitor::MonitorConfig::for_runbook(&runbook, target.schema()).with_storage_limit_mb(
            options
                .variables
                .get(monitor::STORAGE_LIMIT_VARIABLE)
                .map(String::as_str),
        )
    };
    let mut samples = monitor::spawn(monitor_db.clone(), monitor_config, stop.clone());

    let mut app = App::new(
        runbook.clone(),
        target.to_string(),
        target.database().to_string(),
        options.mode,
        options.variables.clone(),
    );
    app.color = options.color;
    app.measured = measured;
    app.workdir = options.workdir.clone();
    let run_id = match (&options.journal, &options.resume) {
        (Some(journal), Some(id)) => {
            let run = journal.run(id).await?;
            if options.watch.is_none() {
                app.restore(&journal.events(&run.id).await?);
                // The engine decides dependencies on what the run already knows.
                for (id, status) in app.known() {
                    let _ = engine
                        .commands
                        .send(engine::Command::NoteStatus { id, status })
                        .await;
                }
                offer_to_end_survivors(&mut app).await;
            }
            let recorded = journal.runbook_text(&run.id).await?;
            app.notice = Some(match runbook_changes(&recorded, &runbook) {
                None => format!("resumed run {}", run.id),
                Some(changed) => format!(
                    "resumed run {}; the runbook changed since it began: {changed}",
                    run.id
                ),
            });
            run.id
        }
        (Some(journal), None) => {
            let mode = match options.mode {
                RunMode::Rehearsal => Mode::Rehearsal,
                RunMode::Production => Mode::Production,
            };
            let new = NewRun {
                runbook_name: runbook.name.clone(),
                runbook_text: runbook.source.clone(),
                target: target.to_string(),
                mode,
                origin: "wizard",
            };
            let run = journal.create_run(new).await?;
            if let Some(mirror) = &options.mirror {
                mirror.mirror_run(&run, &runbook.source).await?;
            }
            run.id
        }
        (None, _) => uuid::Uuid::now_v7().to_string(),
    };
    // A new run is ours alone from the start (a resumed one was taken before the screen).
    let _lock = match (&options.journal, &options.resume) {
        (Some(journal), None) => Some(journal.lock_run(&run_id).await?),
        _ => None,
    };
    if let (Some(journal), RunMode::Production) = (&options.journal, options.mode) {
        // What the rehearsal took tells the engineer what to expect of each step.
        match journal.rehearsal(&runbook.name, &now_rfc3339()).await {
            Ok(rehearsal) => {
                app.rehearsal = rehearsal
                    .steps
                    .into_iter()
                    .map(|(step, ms)| (step, Duration::from_millis(ms)))
                    .collect();
            }
            Err(err) => tracing::warn!(%err, "no rehearsal timings"),
        }
    }
    app.read_only = options.watch.clone();
    app.run_id = run_id.clone();
    if let (Some(journal), Some(_)) = (&options.journal, &app.read_only) {
        app.approving = Some(app::Approving {
            answers: crate::approval::Answers::of(journal),
            run: journal.run(&run_id).await?,
            name: options.approver.clone(),
        });
    }
    // A watcher writes nothing: it follows what the holder records.
    let recording = if app.read_only.is_some() {
        None
    } else {
        options.journal.clone()
    };
    let watching = match (&options.journal, &app.read_only) {
        (Some(journal), Some(_)) => Some((journal.clone(), run_id.clone())),
        _ => None,
    };
    let mirror = if app.read_only.is_some() || options.resume.is_some() {
        None
    } else {
        options.mirror.clone()
    };
    let mut recorder = Recorder::new(recording, run_id).mirrored(mirror);
    let follower =
        watching.map(|(journal, run_id)| tokio::spawn(follow(journal, run_id, input_tx.clone())));
    let result = event_loop(
        terminal,
        &mut app,
        &mut inputs,
        &mut engine,
        &mut samples,
        &mut recorder,
    )
    .await;
    if let Some(follower) = follower {
        follower.abort();
    }
    // Leaving with steps still running (quit anyway, a signal, a terminal gone): they are
    // cancelled, their process groups killed, and how they ended recorded, before we go.
    if app.anything_running() && app.read_only.is_none() {
        if app.stop_reason.is_none()
            && let Err(err) = &result
        {
            // The terminal failed: when the SSH session or the pane went away, SIGHUP is
            // on its way; name it if it comes in a moment, else the terminal's error.
            let hangup = tokio::time::timeout(Duration::from_millis(500), async {
                while let Some(message) = inputs.recv().await {
                    if let Message::Terminate(signal) = message {
                        return Some(signal);
                    }
                }
                None
            });
            app.stop_reason = Some(match hangup.await {
                Ok(Some(signal)) => format!("cutover received {signal}"),
                _ => format!("the terminal failed: {err}"),
            });
        }
        let reason = app
            .stop_reason
            .clone()
            .unwrap_or_else(|| "the wizard was closed".to_string());
        let _ = engine
            .commands
            .send(engine::Command::CancelAll { reason })
            .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while app.anything_running() {
            match tokio::time::timeout_at(deadline, engine.events.recv()).await {
                Ok(Some(event)) => {
                    journal_event(&mut app, &mut recorder, &event).await;
                    update(&mut app, Message::Engine(event));
                }
                _ => break,
            }
        }
    }
    let all_done = app.steps.values().all(|state| state.is_done());
    if let Err(err) = recorder.close(all_done).await {
        tracing::warn!(%err, "could not close the run in the journal");
    }
    stop.cancel();
    engine.shutdown().await;
    db.close().await;
    monitor_db.close().await;
    result
}

async fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    inputs: &mut mpsc::Receiver<Message>,
    engine: &mut EngineHandle,
    samples: &mut mpsc::Receiver<monitor::MonitorEvent>,
    recorder: &mut Recorder,
) -> Result<(), TuiError>
where
    std::io::Error: From<B::Error>,
{
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !app.quitting {
        terminal
            .draw(|frame| view::render(app, frame))
            .map_err(std::io::Error::from)?;
        let message = tokio::select! {
            message = inputs.recv() => match message {
                Some(message) => message,
                None => break,
            },
            _ = tick.tick() => Message::Tick,
            Some(event) = engine.events.recv() => Message::Engine(event),
            Some(event) = samples.recv() => Message::Monitor(event),
            () = recorder.due() => {
                if let Err(err) = recorder.flush_due().await {
                    app.notice = Some(format!("NOT RECORDED: {err}"));
                }
                continue;
            }
        };
        // Engine events reach the journal before the screen.
        if let Message::Engine(event) = &message {
            journal_event(app, recorder, event).await;
        }
        let mut commands = update(app, message);
        // Take what else the engine has ready before drawing again.
        for _ in 0..EVENTS_PER_FRAME {
            match engine.events.try_recv() {
                Ok(event) => {
                    journal_event(app, recorder, &event).await;
                    commands.extend(update(app, Message::Engine(event)));
                }
                Err(_) => break,
            }
        }
        for command in commands {
            let request = match command {
                Command::Quit => break,
                Command::Record { step, entry } => {
                    if let Err(err) = recorder.record(step.as_deref(), entry).await {
                        app.notice = Some(format!("NOT RECORDED: {err}"));
                    }
                    continue;
                }
                Command::RunSteps {
                    ids,
                    confirmed_database,
                } => engine::Command::RunSteps {
                    ids,
                    confirmed_database,
                },
                Command::NoteStatus { id, status } => engine::Command::NoteStatus { id, status },
                Command::EndProcessGroups { pids } => {
                    for pid in pids {
                        engine::end_group(pid).await;
                    }
                    continue;
                }
                Command::CancelStep { id } => engine::Command::CancelStep { id },
                Command::Answer {
                    step,
                    request,
                    verdict,
                } => {
                    app.notice = Some(answer(app, &step, &request, verdict).await);
                    continue;
                }
                Command::SetVariable { name, value } => {
                    engine::Command::SetVariable { name, value }
                }
            };
            if engine.commands.send(request).await.is_err() {
                app.notice = Some("the engine stopped: quit and start again".to_string());
            }
        }
    }
    Ok(())
}

/// Writes this observer's answer to an approval request; what to say of it.
async fn answer(
    app: &App,
    step: &str,
    request: &crate::approval::Request,
    verdict: crate::approval::Verdict,
) -> String {
    let Some(approving) = &app.approving else {
        return "only an observer approves (`cutover watch`)".to_string();
    };
    let approve = matches!(verdict, crate::approval::Verdict::Approve { .. });
    match crate::approval::answer(
        &approving.answers,
        &approving.run,
        step,
        request,
        verdict,
        approving.name.as_deref(),
    )
    .await
    {
        Ok(_) if approve => {
            format!("{step}: your approval is sent; the operator's cutover takes it")
        }
        Ok(_) => format!("{step}: your rejection is sent; the operator's cutover takes it"),
        Err(err) => err.to_string(),
    }
}

/// Writes an engine event to the journal; a failure is shown, and the run goes on.
async fn journal_event(app: &mut App, recorder: &mut Recorder, event: &engine::Event) {
    let written = recorder.event(event).await;
    if let Err(err) = written {
        app.notice = Some(format!("NOT RECORDED: {err}"));
    } else if let Some(news) = recorder.news() {
        app.notice = Some(news);
    }
}

/// Steps that were running when the earlier session ended may have left processes (cutover
/// killed hard, or a process that escaped its group's end): name each by pid and command,
/// and offer to end them.
async fn offer_to_end_survivors(app: &mut App) {
    let find = |app: &App| -> Vec<app::Survivor> {
        app.steps
            .iter()
            .filter(|(_, state)| matches!(state.status, app::StepStatus::Interrupted))
            .filter_map(|(step, state)| {
                // The journaled command, redacted; what /proc shows is not.
                let (pid, command) = state.process.clone()?;
                engine::group_alive(pid).then(|| app::Survivor {
                    step: step.clone(),
                    pid,
                    command,
                })
            })
            .collect()
    };
    // A group whose supervisor learned of the crash is ending itself (TERM, then KILL after
    // its grace): give it that long before calling it a survivor.
    let deadline = tokio::time::Instant::now() + engine::SUPERVISOR_GRACE + Duration::from_secs(1);
    let mut survivors = find(app);
    while !survivors.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        survivors = find(app);
    }
    survivors.sort_by(|a, b| a.step.cmp(&b.step));
    if !survivors.is_empty() {
        app.overlay = Some(app::Overlay::Survivors { survivors });
    }
}

/// Which steps differ between the runbook a run began with and the one loaded now, in words,
/// or `None` when they are the same.
fn runbook_changes(recorded: &str, current: &Runbook) -> Option<String> {
    if recorded == current.source {
        return None;
    }
    let Ok(old) = crate::runbook::load_str(recorded, "journal", &crate::probes::Catalog) else {
        return Some("the recorded runbook no longer loads".to_string());
    };
    let describe = |runbook: &Runbook| -> Vec<(String, String)> {
        runbook
            .steps()
            .map(|s| (s.id.clone(), serde_json::to_string(s).unwrap_or_default()))
            .collect()
    };
    let (before, after) = (describe(&old), describe(current));
    let mut changed: Vec<String> = after
        .iter()
        .filter(|(id, text)| before.iter().find(|(b, _)| b == id).map(|(_, t)| t) != Some(text))
        .map(|(id, _)| id.clone())
        .collect();
    changed.extend(
        before
            .iter()
            .filter(|(id, _)| !after.iter().any(|(a, _)| a == id))
            .map(|(id, _)| format!("{id} (removed)")),
    );
    Some(if changed.is_empty() {
        "no step changed (only names, variables or layout)".to_string()
    } else {
        format!("steps {}", changed.join(", "))
    })
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// How often a watcher looks at the journal's files for a change: a `stat` of two files; the
/// journal is read only when they changed.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// How often a watcher asks who holds the run.
const HOLDER_EVERY: Duration = Duration::from_secs(2);

/// How long a watcher goes at most without reading the journal, whatever its files say.
const READ_AT_LEAST_EVERY: Duration = Duration::from_secs(1);
/// Reads of the journal that fail in a row before the observer is told (a tick apart).
const FAILURES_TOLD: u32 = 3;

/// Follows what the run's holder records: the events after the last one seen, read when the
/// journal's files change, sent to the event loop. Each batch's lag (from the newest event's
/// recording, and the oldest's, to now) goes to the log, for the watch benchmark.
async fn follow(mut journal: Journal, run_id: String, messages: mpsc::Sender<Message>) {
    let mut seen = 0;
    let mut stamp = None;
    let mut every = tokio::time::interval(FOLLOW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A journal in PostgreSQL says when the run records something (LISTEN/NOTIFY); the
    // embedded one is watched through its files.
    let mut notified = journal.listen(&run_id).await;
    let mut holder = journal.holder(&run_id).await;
    let mut holder_looked = std::time::Instant::now();
    let mut last_read = std::time::Instant::now();
    let mut first = true;
    let mut failures = 0;
    loop {
        let woken = match &mut notified {
            Some(notices) => tokio::select! {
                _ = every.tick() => false,
                notice = notices.recv() => notice.is_some(),
            },
            None => {
                every.tick().await;
                false
            }
        };
        // Who holds the run, every 2 s: the header says when the operator's cutover is gone.
        if holder_looked.elapsed() >= HOLDER_EVERY {
            holder_looked = std::time::Instant::now();
            // Another account's journal that nobody wrote when it was opened, now written
            // again (the operator resumed the run): read afresh, or its news would stay hidden.
            if let Some(thawed) = journal.thawed().await {
                journal = thawed;
            }
            let now = journal.holder(&run_id).await;
            if now != holder {
                holder = now.clone();
                if messages.send(Message::Holder(now)).await.is_err() {
                    return;
                }
            }
        }
        // Once a second the journal is read regardless, so that nothing waits longer than
        // that: a notification lost while its connection came back, or, for the embedded
        // journal, a file's times that move in the kernel's coarse ticks and a write into a
        // reused WAL that keeps its size (an unchanged stamp can hide a write).
        let due = first || woken || failures > 0 || last_read.elapsed() >= READ_AT_LEAST_EVERY;
        let now = if notified.is_some() {
            None
        } else {
            journal.change_stamp()
        };
        if !due && (notified.is_some() || (now.is_some() && now == stamp)) {
            continue;
        }
        last_read = std::time::Instant::now();
        let new = match journal.events_after(&run_id, seen).await {
            Ok(new) => {
                failures = 0;
                new
            }
            Err(err) => {
                // Once is the operator's write caught half-way (another account reads the WAL
                // index read-only and may find it being changed): read again at the next tick;
                // the observer is told when it lasts.
                failures += 1;
                if failures == FAILURES_TOLD
                    && messages
                        .send(Message::FollowFailed(err.to_string()))
                        .await
                        .is_err()
                {
                    return;
                }
                continue;
            }
        };
        stamp = now;
        if let Some(last) = new.last() {
            seen = last.seq;
            let lag = |at: chrono::DateTime<chrono::Utc>| {
                (chrono::Utc::now() - at)
                    .num_microseconds()
                    .unwrap_or(i64::MAX)
            };
            tracing::debug!(
                events = new.len(),
                seq = seen,
                oldest_lag_us = lag(new[0].at),
                newest_lag_us = lag(last.at),
                "followed"
            );
            if messages.send(Message::Followed(new)).await.is_err() {
                return;
            }
        }
        // A run nobody held from the start: said once its events are in, so that what it had
        // in flight shows as interrupted.
        if std::mem::take(&mut first)
            && holder.is_none()
            && messages.send(Message::Holder(None)).await.is_err()
        {
            return;
        }
    }
}

/// Terminal keys and resizes, as messages.
async fn forward_terminal_events(messages: mpsc::Sender<Message>) {
    let mut events = crossterm::event::EventStream::new();
    while let Some(Ok(event)) = events.next().await {
        let message = match event {
            crossterm::event::Event::Key(key) => Message::Key(key),
            crossterm::event::Event::Resize(..) => Message::Tick,
            _ => continue,
        };
        if messages.send(message).await.is_err() {
            break;
        }
    }
}

/// Keeps the header true. Every change of the link that any connection notices (a step's, the
/// live panels', this loop's own) becomes a message at once; a ping every `CONNECTION_CHECK`
/// while the server answers, and a direct attempt every `CONNECTION_RETRY` while it does not,
/// find the changes nobody else would. The first frame never waits for this.
async fn watch_connection(db: Db, messages: mpsc::Sender<Message>, stop: CancellationToken) {
    let mut link = db.link();
    // Another connection (the warm-up, the live panels) may have found the link up before
    // this subscribed: the state as it stands is news too, or the header would wait for a
    // change that already happened.
    link.mark_changed();
    let mut probe_now = true;
    loop {
        if probe_now {
            // Noted in the link by the calls themselves; the change arrives below.
            let up = matches!(*link.borrow(), crate::db::Link::Up);
            // While down, a direct attempt first: it names the reason at once.
            if up || db.reachable().await.is_ok() {
                let _ = db.ping_within(CONNECTION_DEADLINE).await;
            }
        }
        let wait = match *link.borrow() {
            crate::db::Link::Up => CONNECTION_CHECK,
            _ => CONNECTION_RETRY,
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = link.changed() => {
                if changed.is_err() {
                    return;
                }
                let message = match &*link.borrow_and_update() {
                    crate::db::Link::Up => Message::ConnectionUp,
                    crate::db::Link::Down { reason, .. } => Message::ConnectionDown(reason.clone()),
                    crate::db::Link::Unknown => continue,
                };
                if messages.send(message).await.is_err() {
                    return;
                }
                probe_now = false;
            }
            _ = tokio::time::sleep(wait) => probe_now = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Cluster, ClusterOptions};

    /// The warm-up (or the live panels) may find the link up before the watcher subscribes:
    /// the header must still hear of it, not stay "connecting" for good.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_header_hears_of_a_link_found_up_before_the_watcher_started() {
        let cluster = Cluster::start(ClusterOptions::default()).expect("cluster");
        let target = Target::from_url(&cluster.url("postgres")).expect("url");
        let db = Db::connect_lazy(&target, DbSettings::default());
        db.ping().await.expect("the server answers");
        assert_eq!(*db.link().borrow(), crate::db::Link::Up);
        let (tx, mut rx) = mpsc::channel(8);
        let stop = CancellationToken::new();
        let watcher = tokio::spawn(watch_connection(db.clone(), tx, stop.clone()));
        let heard = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        stop.cancel();
        let _ = watcher.await;
        db.close().await;
        assert!(
            matches!(heard, Ok(Some(Message::ConnectionUp))),
            "{heard:?}"
        );
    }
}
