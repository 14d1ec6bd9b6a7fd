//! The wizard as pure state: `update` specifications, and `render` snapshots on ratatui's
//! TestBackend (review the `.snap` files under tests/snapshots like code).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use cutover::engine::{Event, OutputStream};
use cutover::journal::{Entry, Recorded};
use cutover::outcome::{Outcome, Status};
use cutover::probes::Catalog;
use cutover::runbook;
use cutover::tui::app::{
    App, Connection, InputPurpose, OUTPUT_LINES_KEPT, Overlay, Pane, RunMode, Screen, StepStatus,
};
use cutover::tui::update::{Command, Message, update};
use cutover::tui::view;

fn app() -> App {
    let runbook = Arc::new(runbook::bundled(&Catalog).unwrap());
    let variables = cutover::engine::resolve_variables(&runbook, &BTreeMap::new());
    let mut app = App::new(
        runbook,
        "postgresql://app:***@db.internal:5432/sightline?sslmode=require".to_string(),
        "sightline".to_string(),
        RunMode::Production,
        variables,
    );
    app.connection = Connection::Connected;
    app.color = false;
    app
}

fn key(code: KeyCode) -> Message {
    Message::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn press(app: &mut App, codes: &[KeyCode]) -> Vec<Command> {
    codes
        .iter()
        .flat_map(|code| update(app, key(*code)))
        .collect()
}

fn type_text(app: &mut App, text: &str) -> Vec<Command> {
    let codes: Vec<KeyCode> = text.chars().map(KeyCode::Char).collect();
    press(app, &codes)
}

/// The engine reports that each of `ids` passed.
fn passed(app: &mut App, ids: &[&str]) {
    for id in ids {
        update(
            app,
            Message::Engine(Event::StepFinished {
                id: id.to_string(),
                outcome: Outcome::pass("ok"),
                duration: Duration::from_millis(1),
            }),
        );
    }
}

/// Everything `id` depends on, transitively, has passed (ticked, signed or run).
fn dependencies_passed(app: &mut App, id: &str) {
    let depends_on = app.runbook.step(id).unwrap().depends_on.clone();
    for dependency in depends_on {
        dependencies_passed(app, &dependency);
        passed(app, &[dependency.as_str()]);
    }
}

/// Opens the section with this id and selects the step with this full id.
fn select(app: &mut App, step: &str) {
    let section = step.split('.').next().unwrap();
    let index = app
        .runbook
        .sections
        .iter()
        .position(|s| s.id == section)
        .unwrap();
    press(app, &[KeyCode::Char('o')]);
    app.section = index;
    press(app, &[KeyCode::Enter]);
    let position = app
        .section_steps()
        .iter()
        .position(|s| s.id == step)
        .unwrap();
    for _ in 0..position {
        press(app, &[KeyCode::Char('j')]);
    }
    assert_eq!(app.selected_step().unwrap().id, step);
}

fn finish(app: &mut App, id: &str, outcome: Outcome, ms: u64) {
    update(
        app,
        Message::Engine(Event::StepFinished {
            id: id.to_string(),
            outcome,
            duration: Duration::from_millis(ms),
        }),
    );
}

#[test]
fn enter_opens_a_section_and_keys_move_between_steps_and_sections() {
    let mut app = app();
    assert_eq!(app.screen, Screen::Overview);
    press(&mut app, &[KeyCode::Char('j'), KeyCode::Enter]);
    assert_eq!(app.screen, Screen::Section(1));
    press(&mut app, &[KeyCode::Down, KeyCode::Down, KeyCode::Up]);
    assert_eq!(app.selected, 1);
    press(&mut app, &[KeyCode::Char('l')]);
    assert_eq!(app.screen, Screen::Section(2));
    assert_eq!(app.selected, 0, "a new section starts at its first step");
    press(&mut app, &[KeyCode::Left, KeyCode::Esc]);
    assert_eq!(app.screen, Screen::Overview);
    for _ in 0..50 {
        press(&mut app, &[KeyCode::Char('k')]);
    }
    assert_eq!(app.section, 0, "selection stops at the first section");
}

#[test]
fn running_an_automated_step_asks_the_engine_and_marks_it_running() {
    let mut app = app();
    select(&mut app, "environment.connection");
    let commands = press(&mut app, &[KeyCode::Enter]);
    assert_eq!(
        commands,
        [Command::RunSteps {
            ids: vec!["environment.connection".into()],
            confirmed_database: None
        }]
    );
    assert!(matches!(
        app.state("environment.connection").unwrap().status,
        StepStatus::Running { .. }
    ));
    assert!(press(&mut app, &[KeyCode::Enter]).is_empty(), "not twice");
}

#[test]
fn run_all_holds_back_steps_that_need_a_person() {
    let mut app = app();
    dependencies_passed(&mut app, "apply.no_failed");
    select(&mut app, "apply.window_open");
    let commands = press(&mut app, &[KeyCode::Char('a')]);
    let [Command::RunSteps { ids, .. }] = commands.as_slice() else {
        panic!("{commands:?}")
    };
    assert!(ids.contains(&"apply.no_failed".to_string()));
    assert!(
        !ids.contains(&"apply.deploy".to_string()),
        "destructive: asks first"
    );
    assert!(!ids.contains(&"apply.window_open".to_string()), "manual");
    assert!(
        !ids.contains(&"apply.post_status".to_string()),
        "after the deploy, which has not run"
    );
    let notice = app.notice.as_deref().unwrap();
    assert!(notice.contains("need you first"), "{notice}");
    assert!(notice.contains("held back"), "{notice}");
}

#[test]
fn a_destructive_step_runs_only_after_the_database_name_is_typed() {
    let mut app = app();
    dependencies_passed(&mut app, "apply.deploy");
    select(&mut app, "apply.deploy");
    assert!(press(&mut app, &[KeyCode::Enter]).is_empty());
    assert!(matches!(
        app.overlay,
        Some(Overlay::Input {
            purpose: InputPurpose::ConfirmDestructive { .. },
            ..
        })
    ));
    type_text(&mut app, "production");
    assert!(press(&mut app, &[KeyCode::Enter]).is_empty());
    let Some(Overlay::Input { error, .. }) = &app.overlay else {
        panic!("the dialog stays open")
    };
    assert!(error.as_deref().unwrap().contains("type sightline"));
    for _ in 0.."production".len() {
        press(&mut app, &[KeyCode::Backspace]);
    }
    type_text(&mut app, "sightline");
    let commands = press(&mut app, &[KeyCode::Enter]);
    assert_eq!(
        commands,
        [Command::RunSteps {
            ids: vec!["apply.deploy".into()],
            confirmed_database: Some("sightline".into())
        }]
    );
    assert!(app.overlay.is_none());
}

#[test]
fn escape_backs_out_of_a_destructive_confirmation_without_running() {
    let mut app = app();
    dependencies_passed(&mut app, "apply.deploy");
    select(&mut app, "apply.deploy");
    press(&mut app, &[KeyCode::Enter]);
    type_text(&mut app, "sightline");
    assert!(press(&mut app, &[KeyCode::Esc]).is_empty());
    assert!(app.overlay.is_none());
    assert_eq!(
        app.state("apply.deploy").unwrap().status,
        StepStatus::Pending
    );
}

#[test]
fn a_missing_variable_is_asked_for_then_the_step_runs() {
    let mut app = app();
    select(&mut app, "golive.health");
    press(&mut app, &[KeyCode::Enter]);
    assert!(matches!(
        &app.overlay,
        Some(Overlay::Input { purpose: InputPurpose::VariableValue { name, .. }, .. }) if name == "app_base_url"
    ));
    type_text(&mut app, "http://127.0.0.1:1");
    let commands = press(&mut app, &[KeyCode::Enter]);
    assert_eq!(
        commands,
        [
            Command::Record {
                step: Some("golive.health".into()),
                entry: Entry::VariableSet {
                    name: "app_base_url".into(),
                    value: "http://127.0.0.1:1".into()
                }
            },
            Command::SetVariable {
                name: "app_base_url".into(),
                value: "http://127.0.0.1:1".into()
            },
            Command::RunSteps {
                ids: vec!["golive.health".into()],
                confirmed_database: None
            }
        ]
    );
}

#[test]
fn cancel_asks_the_engine_only_for_a_running_step() {
    let mut app = app();
    select(&mut app, "backup.dump");
    assert!(press(&mut app, &[KeyCode::Char('c')]).is_empty());
    update(
        &mut app,
        Message::Engine(Event::StepStarted {
            id: "backup.dump".into(),
        }),
    );
    assert_eq!(
        press(&mut app, &[KeyCode::Char('c')]),
        [Command::CancelStep {
            id: "backup.dump".into()
        }]
    );
}

#[test]
fn manual_steps_are_ticked_with_a_note_and_skips_need_a_reason() {
    let mut app = app();
    select(&mut app, "environment.database_url");
    press(&mut app, &[KeyCode::Enter]);
    type_text(&mut app, "checked in the deploy config");
    press(&mut app, &[KeyCode::Enter]);
    assert_eq!(
        app.state("environment.database_url").unwrap().status,
        StepStatus::Ticked {
            note: "checked in the deploy config".into()
        }
    );

    press(
        &mut app,
        &[KeyCode::Char('j'), KeyCode::Char('s'), KeyCode::Enter],
    );
    assert!(app.overlay.is_some(), "an empty reason is refused");
    type_text(&mut app, "done by the platform team");
    press(&mut app, &[KeyCode::Enter]);
    assert!(matches!(
        &app.state("environment.tls").unwrap().status,
        StepStatus::Skipped { reason } if reason == "done by the platform team"
    ));
}

#[test]
fn a_sign_off_records_the_name() {
    let mut app = app();
    select(&mut app, "golive.signoff_engineering_lead");
    press(&mut app, &[KeyCode::Enter]);
    type_text(&mut app, "Ada Lovelace");
    press(&mut app, &[KeyCode::Enter]);
    assert!(matches!(
        &app.state("golive.signoff_engineering_lead").unwrap().status,
        StepStatus::Signed { name, .. } if name == "Ada Lovelace"
    ));
}

#[test]
fn quitting_asks_while_a_step_runs() {
    let mut app = app();
    update(
        &mut app,
        Message::Engine(Event::StepStarted {
            id: "backup.dump".into(),
        }),
    );
    assert!(press(&mut app, &[KeyCode::Char('q')]).is_empty());
    assert!(matches!(app.overlay, Some(Overlay::ConfirmQuit)));
    press(&mut app, &[KeyCode::Char('n')]);
    assert!(app.overlay.is_none() && !app.quitting);
    press(&mut app, &[KeyCode::Char('q')]);
    assert_eq!(press(&mut app, &[KeyCode::Char('y')]), [Command::Quit]);
    assert!(app.quitting);
}

#[test]
fn output_is_kept_bounded_and_the_pane_scrolls() {
    let mut app = app();
    select(&mut app, "backup.dump");
    for n in 0..OUTPUT_LINES_KEPT + 10 {
        update(
            &mut app,
            Message::Engine(Event::StepOutput {
                id: "backup.dump".into(),
                stream: OutputStream::Stdout,
                text: format!("line {n}\n"),
            }),
        );
    }
    let state = app.state("backup.dump").unwrap();
    assert_eq!(state.output.len(), OUTPUT_LINES_KEPT);
    assert_eq!(state.output_dropped, 10);
    assert_eq!(state.output.front().unwrap().1, "line 10");
    // One chunk with more lines than are kept: only its newest are, and the rest are counted.
    let mut flood = app.state("backup.dump").unwrap().clone();
    let chunk: String = (0..OUTPUT_LINES_KEPT + 5)
        .map(|n| format!("chunk {n}\r\n"))
        .collect();
    flood.push_output(OutputStream::Stdout, &chunk);
    assert_eq!(flood.output.len(), OUTPUT_LINES_KEPT);
    assert_eq!(flood.output_dropped, 10 + OUTPUT_LINES_KEPT + 5);
    assert_eq!(flood.output.front().unwrap().1, "chunk 5");
    assert_eq!(
        flood.output.back().unwrap().1,
        format!("chunk {}", OUTPUT_LINES_KEPT + 4)
    );
    press(&mut app, &[KeyCode::Tab]);
    assert_eq!(app.pane, Pane::Output);
    press(&mut app, &[KeyCode::Up, KeyCode::Up, KeyCode::PageUp]);
    assert_eq!(app.output_scroll, 12);
    press(&mut app, &[KeyCode::Char('f')]);
    assert_eq!(app.output_scroll, 0);
}

#[test]
fn the_connection_state_follows_the_watcher() {
    let mut app = app();
    update(
        &mut app,
        Message::ConnectionDown("connection refused".into()),
    );
    assert!(matches!(app.connection, Connection::Lost { .. }));
    update(&mut app, Message::ConnectionUp);
    assert_eq!(app.connection, Connection::Connected);
    assert_eq!(app.notice.as_deref(), Some("connection restored"));
}

// ─── snapshots ───────────────────────────────────────────────────────────────────────────────

fn draw(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| view::render(app, frame)).unwrap();
    terminal.backend().to_string()
}

/// An environment section part-way through: passes, a failure with details, a warning.
fn environment_in_progress() -> App {
    let mut app = app();
    finish(
        &mut app,
        "environment.connection",
        Outcome::pass(
            "PostgreSQL 16.4 (primary), database `sightline` as `app`; round trip 0.8 ms",
        ),
        14,
    );
    finish(
        &mut app,
        "environment.tls",
        Outcome::fail("this connection is not encrypted: add sslmode=require to the URL")
            .with_details(["ssl: off".to_string()]),
        3,
    );
    finish(
        &mut app,
        "environment.replica",
        Outcome::warn("optional: no replica streams from this server"),
        5,
    );
    select(&mut app, "environment.tls");
    app
}

#[test]
fn snapshot_overview_80x24() {
    insta::assert_snapshot!(draw(&environment_in_progress_overview(), 80, 24));
}

#[test]
fn snapshot_overview_120x40() {
    insta::assert_snapshot!(draw(&environment_in_progress_overview(), 120, 40));
}

fn environment_in_progress_overview() -> App {
    let mut app = environment_in_progress();
    press(&mut app, &[KeyCode::Char('o')]);
    app
}

#[test]
fn snapshot_section_with_a_failed_step_80x24() {
    insta::assert_snapshot!(draw(&environment_in_progress(), 80, 24));
}

#[test]
fn snapshot_section_with_a_failed_step_120x40() {
    insta::assert_snapshot!(draw(&environment_in_progress(), 120, 40));
}

#[test]
fn snapshot_shell_output_80x24() {
    let mut app = app();
    select(&mut app, "backup.dump");
    for line in [
        "pg_dump: dumping contents of table \"public.User\"",
        "pg_dump: warning: slow",
    ] {
        update(
            &mut app,
            Message::Engine(Event::StepOutput {
                id: "backup.dump".into(),
                stream: OutputStream::Stderr,
                text: format!("{line}\n"),
            }),
        );
    }
    finish(
        &mut app,
        "backup.dump",
        Outcome::pass("exited with 0"),
        2350,
    );
    insta::assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_help_80x24() {
    let mut app = app();
    press(&mut app, &[KeyCode::Char('?')]);
    insta::assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_destructive_confirmation_80x24() {
    let mut app = app();
    dependencies_passed(&mut app, "apply.deploy");
    select(&mut app, "apply.deploy");
    press(&mut app, &[KeyCode::Enter]);
    type_text(&mut app, "sightlin");
    insta::assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_connection_lost_80x24() {
    let mut app = app();
    update(
        &mut app,
        Message::ConnectionDown("cannot connect to db.internal:5432: connection refused".into()),
    );
    insta::assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn a_tiny_terminal_gets_a_message_and_nothing_panics_at_any_size() {
    let app = environment_in_progress();
    let tiny = draw(&app, 40, 10);
    assert!(tiny.contains("Terminal too small"), "{tiny}");
    for width in 1..=130 {
        for height in [1, 2, 5, 15, 16, 17, 24, 41] {
            draw(&app, width, height);
        }
    }
}

fn sample(connections_used: i64, p95_ms: u64) -> cutover::monitor::MetricsSample {
    cutover::monitor::MetricsSample {
        connections_used,
        max_connections: 100,
        round_trip: Duration::from_micros(800),
        latency_p50: Duration::from_micros(700),
        latency_p95: Duration::from_millis(p95_ms),
        latency_p99: Duration::from_millis(p95_ms + 40),
        commits_per_s: 120.5,
        rollbacks_per_s: 0.5,
        database_bytes: 5 * 1024 * 1024 * 1024,
        blocked_sessions: 2,
        longest_wait_ms: 40.0,
        query_error_pct: Some(0.0),
        connection_error_pct: Some(0.0),
        storage_limit_bytes: Some(8 * 1024 * 1024 * 1024),
    }
}

#[test]
fn metrics_raise_alerts_from_the_runbook_thresholds_and_a_failed_refresh_is_shown() {
    use cutover::monitor::{AlertLevel, MonitorEvent};
    let mut app = app();
    update(
        &mut app,
        Message::Monitor(MonitorEvent::Metrics(sample(10, 1))),
    );
    let quiet: Vec<_> = app.alerts.iter().map(|a| a.level).collect();
    assert_eq!(
        quiet,
        [AlertLevel::Warning],
        "two blocked sessions: {:?}",
        app.alerts
    );
    update(
        &mut app,
        Message::Monitor(MonitorEvent::Metrics(sample(92, 450))),
    );
    assert!(app.alerts.iter().any(|a| a.level == AlertLevel::Critical));
    assert_eq!(app.metrics_history.len(), 2);
    update(
        &mut app,
        Message::Monitor(MonitorEvent::Unavailable {
            error: "connection refused".into(),
        }),
    );
    assert_eq!(app.monitor_error.as_deref(), Some("connection refused"));
    update(
        &mut app,
        Message::Monitor(MonitorEvent::Metrics(sample(10, 1))),
    );
    assert_eq!(app.monitor_error, None);
}

#[test]
fn snapshot_live_panels_with_alerts_and_index_problems_120x40() {
    use cutover::monitor::{IndexLiveState, IndexStatus, MonitorEvent};
    let mut app = environment_in_progress();
    for (used, p95) in [(40, 3), (55, 5), (70, 9), (81, 60), (88, 240), (92, 450)] {
        update(
            &mut app,
            Message::Monitor(MonitorEvent::Metrics(sample(used, p95))),
        );
    }
    let expected = cutover::monitor::expected_indexes(&app.runbook);
    let statuses: Vec<IndexStatus> = expected
        .into_iter()
        .enumerate()
        .map(|(n, expected)| {
            let state = match n {
                1 => IndexLiveState::Missing,
                2 => IndexLiveState::Building {
                    name: "Summary_videoId_idx".into(),
                    phase: "building index: scanning table".into(),
                    percent: 42.0,
                },
                3 => IndexLiveState::Invalid {
                    name: "Summary_userId_videoId_key".into(),
                },
                _ => IndexLiveState::Present {
                    name: "some_index".into(),
                },
            };
            IndexStatus { expected, state }
        })
        .collect();
    update(&mut app, Message::Monitor(MonitorEvent::Indexes(statuses)));
    insta::assert_snapshot!(draw(&app, 120, 40));
}

#[test]
fn snapshot_panels_opened_on_a_narrow_screen_80x24() {
    use cutover::monitor::MonitorEvent;
    let mut app = app();
    update(
        &mut app,
        Message::Monitor(MonitorEvent::Metrics(sample(12, 2))),
    );
    press(&mut app, &[KeyCode::Char('m')]);
    insta::assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn ticks_skips_and_sign_offs_are_sent_to_the_journal() {
    let mut app = app();
    select(&mut app, "environment.database_url");
    press(&mut app, &[KeyCode::Enter]);
    type_text(&mut app, "ok");
    assert_eq!(
        press(&mut app, &[KeyCode::Enter]),
        [
            Command::Record {
                step: Some("environment.database_url".into()),
                entry: Entry::Ticked { note: "ok".into() }
            },
            Command::NoteStatus {
                id: "environment.database_url".into(),
                status: Status::Pass
            }
        ]
    );
    select(&mut app, "golive.signoff_engineering_lead");
    press(&mut app, &[KeyCode::Enter]);
    type_text(&mut app, "Ada");
    let commands = press(&mut app, &[KeyCode::Enter]);
    assert!(
        matches!(&commands[..], [Command::Record { entry: Entry::Signed { name, role }, .. }, Command::NoteStatus { .. }] if name == "Ada" && !role.is_empty()),
        "{commands:?}"
    );
}

#[test]
fn a_resumed_run_shows_what_was_recorded_and_running_steps_as_interrupted() {
    let mut app = app();
    let at = chrono::Utc::now();
    let event = |seq, step: &str, entry| Recorded {
        seq,
        at,
        step_id: Some(step.to_string()),
        entry,
    };
    app.restore(&[
        event(1, "environment.connection", Entry::StepStarted),
        event(
            2,
            "environment.connection",
            Entry::StepFinished {
                status: cutover::outcome::Status::Pass,
                message: "fine".into(),
                details: vec![],
                duration_ms: 12,
                data: None,
            },
        ),
        event(
            3,
            "environment.database_url",
            Entry::Ticked {
                note: "seen".into(),
            },
        ),
        event(4, "backup.dump", Entry::StepStarted),
        event(
            5,
            "backup.dump",
            Entry::StepOutput {
                stream: OutputStream::Stdout,
                text: "half way\n".into(),
            },
        ),
    ]);
    assert!(matches!(
        app.state("environment.connection").unwrap().status,
        StepStatus::Finished(_)
    ));
    assert_eq!(
        app.state("environment.database_url").unwrap().status,
        StepStatus::Ticked {
            note: "seen".into()
        }
    );
    let dump = app.state("backup.dump").unwrap();
    assert_eq!(dump.status, StepStatus::Interrupted);
    assert_eq!(dump.output.back().unwrap().1, "half way");
    assert!(dump.is_failed(), "an interrupted step needs a look");
}

#[test]
fn a_secret_looking_variable_is_masked_on_screen_and_in_the_journal() {
    let text = "name = \"t\"\n[variables.api_token]\ndescription = \"token\"\n[[sections]]\nid = \"s\"\ntitle = \"S\"\n[[sections.steps]]\nid = \"h\"\ntitle = \"H\"\nkind = \"http\"\nurl = \"https://example.invalid/{{api_token}}\"\n";
    let runbook = Arc::new(runbook::load_str(text, "t.toml", &Catalog).unwrap());
    let mut app = App::new(
        runbook,
        "t".into(),
        "db".into(),
        RunMode::Rehearsal,
        BTreeMap::new(),
    );
    app.color = false;
    press(&mut app, &[KeyCode::Enter, KeyCode::Enter]);
    type_text(&mut app, "s3cr3t-value");
    let screen = draw(&app, 80, 24);
    assert!(!screen.contains("s3cr3t"), "{screen}");
    let commands = press(&mut app, &[KeyCode::Enter]);
    assert!(
        commands.contains(&Command::Record {
            step: Some("s.h".into()),
            entry: Entry::VariableSet {
                name: "api_token".into(),
                value: "***".into()
            }
        }),
        "{commands:?}"
    );
}

#[test]
fn a_destructive_step_past_a_failed_dependency_cannot_be_confirmed() {
    let mut app = app();
    dependencies_passed(&mut app, "apply.deploy");
    update(
        &mut app,
        Message::Engine(Event::StepFinished {
            id: "apply.no_failed".into(),
            outcome: Outcome::error("relation \"_prisma_migrations\" does not exist"),
            duration: Duration::from_millis(1),
        }),
    );
    select(&mut app, "apply.deploy");
    assert!(press(&mut app, &[KeyCode::Enter]).is_empty());
    let Some(Overlay::RunDependencies { blockers, ids, .. }) = &app.overlay else {
        panic!(
            "no confirmation: the dependency is offered first: {:?}",
            app.overlay
        )
    };
    assert_eq!(blockers.len(), 1);
    assert_eq!(
        blockers[0].to_string(),
        "apply.no_failed, which ended error"
    );
    assert_eq!(ids, &["apply.no_failed", "apply.deploy"]);
    // Accepting runs the dependency first, under the same typed confirmation; the engine
    // starts the deploy only if it passes.
    assert!(press(&mut app, &[KeyCode::Enter]).is_empty());
    type_text(&mut app, "sightline");
    assert_eq!(
        press(&mut app, &[KeyCode::Enter]),
        [Command::RunSteps {
            ids: vec!["apply.no_failed".into(), "apply.deploy".into()],
            confirmed_database: Some("sightline".into())
        }]
    );
}

#[test]
fn a_step_waiting_for_a_persons_tick_is_held_back_with_the_reason() {
    let mut app = app();
    select(&mut app, "rollback.stop_app");
    assert!(press(&mut app, &[KeyCode::Enter]).is_empty());
    assert!(app.overlay.is_none(), "nothing to confirm");
    let notice = app.notice.clone().unwrap();
    assert!(
        notice.contains(
            "rollback.stop_app is held back: it depends on rollback.decided, which has not run: tick it first"
        ),
        "{notice}"
    );
    // Ticked, the step asks for its confirmation.
    select(&mut app, "rollback.decided");
    press(&mut app, &[KeyCode::Enter]);
    type_text(&mut app, "restore");
    press(&mut app, &[KeyCode::Enter]);
    select(&mut app, "rollback.stop_app");
    press(&mut app, &[KeyCode::Enter]);
    assert!(matches!(
        app.overlay,
        Some(Overlay::Input {
            purpose: InputPurpose::ConfirmDestructive { .. },
            ..
        })
    ));
}

#[test]
fn snapshot_run_dependencies_first_80x24() {
    let mut app = app();
    select(&mut app, "environment.tls");
    press(&mut app, &[KeyCode::Enter]);
    insta::assert_snapshot!(draw(&app, 80, 24));
}

/// The review's lint step in the wizard: the findings with their source lines, the lock and
/// size, and what to write instead (offline here, so the size is unknown).
#[test]
fn snapshot_lint_findings_with_their_source_lines_120x40() {
    let folder = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/unsafe_prisma_migrations/20270101000000_summary_channel_idx"
    );
    let path = std::path::PathBuf::from(folder).join("migration.sql");
    let text = std::fs::read_to_string(&path).unwrap();
    let files = vec![(
        std::path::PathBuf::from("20270101000000_summary_channel_idx/migration.sql"),
        text,
    )];
    let limits = cutover::migrate::lint::Limits::from(&cutover::runbook::Thresholds::default());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let reports = runtime
        .block_on(cutover::migrate::lint::lint(
            &files,
            None,
            &cutover::migrate::lint::RuleChoice::default(),
            &limits,
        ))
        .unwrap();
    let outcome =
        cutover::probes::lint::outcome(cutover::probes::lint::Report::Findings, &reports, &limits);
    let mut app = app();
    select(&mut app, "review.lint");
    finish(&mut app, "review.lint", outcome, 12);
    insta::assert_snapshot!(draw(&app, 120, 40));
}

/// A rehearsal that found a pending migration failing is said in the deploy's confirmation,
/// before the name is typed; once the script is edited the finding no longer stands.
#[test]
fn the_deploy_confirmation_says_what_the_rehearsal_found_while_the_script_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    cutover::demo::write_app(dir.path()).unwrap();
    let script = dir
        .path()
        .join("prisma/migrations/20261130100000_add_progress/migration.sql");
    let checksum = cutover::migrate::history::checksum_bytes(&std::fs::read(&script).unwrap());
    let confirmation = |app: &App| match &app.overlay {
        Some(Overlay::Input {
            purpose: InputPurpose::ConfirmDestructive { warnings, .. },
            ..
        }) => warnings.clone(),
        other => panic!("{other:?}"),
    };
    let mut app = app();
    app.variables
        .insert("app_dir".into(), dir.path().display().to_string());
    app.measured.insert(
        "backup.restore_tested".into(),
        cutover::probes::Measured {
            data: serde_json::json!({
                "restore_ms": 1200,
                "failed": {
                    "migration": "20261130100000_add_progress",
                    "checksum": checksum,
                    "line": 2,
                    "text": "CREATE TABLE \"Progress\" (",
                    "error": "ERROR 42P07: relation \"Progress\" already exists"
                }
            }),
            source: "run 01a2 at 2026-12-02 11:57 UTC".into(),
            fresh: false,
        },
    );
    dependencies_passed(&mut app, "apply.deploy");
    select(&mut app, "apply.deploy");
    press(&mut app, &[KeyCode::Enter]);
    assert_eq!(
        confirmation(&app),
        [
            "warning: the rehearsal of run 01a2 at 2026-12-02 11:57 UTC found that migration 20261130100000_add_progress fails at line 2 (CREATE TABLE \"Progress\" (): ERROR 42P07: relation \"Progress\" already exists; the script is unchanged since"
        ]
    );
    let screen = draw(&app, 100, 30);
    assert!(
        screen.contains("warning: the rehearsal of run 01a2"),
        "{screen}"
    );

    press(&mut app, &[KeyCode::Esc]);
    std::fs::write(
        &script,
        "-- fixed\nCREATE TABLE IF NOT EXISTS \"Progress\" (id TEXT);\n",
    )
    .unwrap();
    press(&mut app, &[KeyCode::Enter]);
    assert!(confirmation(&app).is_empty());
}

/// An observer who may approve, watching a production run in which the deploy asks for a
/// second person's approval.
fn observer_asked_for_the_deploy() -> (App, Vec<Command>) {
    let mut app = app();
    app.read_only =
        Some("alice@bastion pid 4242 over SSH from 10.0.0.7 since 2026-12-02T09:00:00Z".into());
    app.approving = Some(cutover::tui::app::Approving {
        answers: cutover::approval::Answers::Folder(
            std::env::temp_dir().join("cutover-tui-test-approvals"),
        ),
        run: cutover::journal::Run {
            id: "01a2373e-2ed3-7587-8535-72632a3e922d".into(),
            runbook_name: "Sightline".into(),
            runbook_hash: String::new(),
            target: app.target.clone(),
            mode: "production".into(),
            operator: "alice@bastion".into(),
            origin: "wizard".into(),
            started_at: "2026-12-02T09:00:00Z".into(),
            finished_at: None,
        },
        name: None,
    });
    let request = cutover::approval::Request {
        request: "01a2373e-0000-7000-8000-000000000001".into(),
        action: "deploy: 1 pending migration(s) of prisma/migrations: 20261130100000_add_progress"
            .into(),
        detail: vec![
            "-- 20261130100000_add_progress".into(),
            "ALTER TABLE \"Summary\" ADD COLUMN \"progress\" INTEGER;".into(),
        ],
        target: app.target.clone(),
        database: "sightline".into(),
        operator: "alice@bastion".into(),
        operator_role: None,
    };
    let commands = update(
        &mut app,
        Message::Followed(vec![Recorded {
            seq: 7,
            at: chrono::DateTime::parse_from_rfc3339("2026-12-02T09:05:00Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
            step_id: Some("apply.deploy".into()),
            entry: Entry::ApprovalRequested(request),
        }]),
    );
    (app, commands)
}

#[test]
fn snapshot_an_observer_asked_to_approve_the_deploy_120x40() {
    let (mut app, commands) = observer_asked_for_the_deploy();
    assert!(commands.is_empty(), "{commands:?}");
    type_text(&mut app, "sightlin");
    insta::assert_snapshot!(draw(&app, 120, 40));
}

#[test]
fn the_observer_approves_with_the_database_name_or_rejects_with_a_reason() {
    use cutover::approval::Verdict;
    let (mut approving, _) = observer_asked_for_the_deploy();
    type_text(&mut approving, "sightlin");
    let commands = update(&mut approving, key(KeyCode::Enter));
    assert!(
        commands.is_empty(),
        "a wrong name answers nothing: {commands:?}"
    );
    type_text(&mut approving, "e");
    let commands = update(&mut approving, key(KeyCode::Enter));
    assert!(
        matches!(
            commands.as_slice(),
            [Command::Answer { step, verdict: Verdict::Approve { typed }, .. }]
                if step == "apply.deploy" && typed == "sightline"
        ),
        "{commands:?}"
    );

    let (mut rejecting, _) = observer_asked_for_the_deploy();
    press(&mut rejecting, &[KeyCode::Esc, KeyCode::Char('n')]);
    assert!(
        update(&mut rejecting, key(KeyCode::Enter)).is_empty(),
        "a reason is needed"
    );
    type_text(&mut rejecting, "not before the backup is verified");
    let commands = update(&mut rejecting, key(KeyCode::Enter));
    assert!(
        matches!(
            commands.as_slice(),
            [Command::Answer { verdict: Verdict::Reject { reason }, .. }]
                if reason == "not before the backup is verified"
        ),
        "{commands:?}"
    );

    // Someone else answered first: the question closes, and says why.
    let (mut late, _) = observer_asked_for_the_deploy();
    update(
        &mut late,
        Message::Followed(vec![Recorded {
            seq: 8,
            at: chrono::Utc::now(),
            step_id: Some("apply.deploy".into()),
            entry: Entry::Approved(cutover::approval::Decision {
                request: "01a2373e-0000-7000-8000-000000000001".into(),
                by: "carol".into(),
                account: "carol@bastion".into(),
                from: None,
                reason: None,
                decided_at: "2026-12-02T09:06:00Z".into(),
            }),
        }]),
    );
    assert!(late.overlay.is_none());
    assert_eq!(
        late.notice.as_deref(),
        Some(
            "apply.deploy no longer waits for approval (apply.deploy: approved by carol (carol@bastion))"
        )
    );

    // The operator's cutover goes away: the question closes, the step is interrupted.
    let (mut gone, _) = observer_asked_for_the_deploy();
    update(&mut gone, Message::Holder(None));
    assert!(gone.overlay.is_none());
    assert_eq!(
        gone.state("apply.deploy").unwrap().status,
        StepStatus::Interrupted
    );
    // Only an observer is asked: the operator's own `y` says who approves.
    let mut operator = app();
    select(&mut operator, "apply.deploy");
    press(&mut operator, &[KeyCode::Char('y')]);
    assert!(operator.overlay.is_none());
    assert!(
        operator
            .notice
            .as_deref()
            .unwrap_or_default()
            .contains("cutover watch"),
        "{:?}",
        operator.notice
    );
}
