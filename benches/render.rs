//! Render time of one full frame at 200x60 with every panel, on ratatui's TestBackend.
//!
//! `cargo bench --bench render`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use cutover::engine::{Event, OutputStream};
use cutover::outcome::Outcome;
use cutover::probes::Catalog;
use cutover::runbook;
use cutover::tui::app::{App, Connection, RunMode};
use cutover::tui::update::{Message, update};
use cutover::tui::view;

/// A busy wizard: every step finished, a section open, its output full.
fn busy_app() -> App {
    let runbook = Arc::new(runbook::bundled(&Catalog).expect("bundled runbook"));
    let mut app = App::new(
        runbook.clone(),
        "postgresql://app:***@db.internal:5432/sightline".to_string(),
        "sightline".to_string(),
        RunMode::Production,
        BTreeMap::new(),
    );
    app.connection = Connection::Connected;
    for step in runbook.steps() {
        let outcome = Outcome::pass("fine").with_details(vec!["detail".to_string(); 3]);
        update(
            &mut app,
            Message::Engine(Event::StepFinished {
                id: step.id.clone(),
                outcome,
                duration: Duration::from_millis(12),
            }),
        );
    }
    for n in 0..5_000 {
        update(
            &mut app,
            Message::Engine(Event::StepOutput {
                id: "backup.dump".to_string(),
                stream: OutputStream::Stdout,
                text: format!("pg_dump: dumping contents of table \"public.Summary\" part {n}\n"),
            }),
        );
    }
    // Full panels: five minutes of samples and every expected index.
    for n in 0..150u64 {
        let sample = cutover::monitor::MetricsSample {
            connections_used: 20 + (n % 40) as i64,
            max_connections: 100,
            round_trip: Duration::from_micros(500 + n * 10),
            latency_p50: Duration::from_micros(600),
            latency_p95: Duration::from_micros(900 + n * 50),
            latency_p99: Duration::from_millis(3),
            commits_per_s: 100.0 + n as f64,
            rollbacks_per_s: 1.0,
            database_bytes: 5 << 30,
            blocked_sessions: (n % 3) as i64,
            longest_wait_ms: (n % 3) as f64 * 40.0,
            query_error_pct: Some(0.005),
            connection_error_pct: Some(0.0),
            storage_limit_bytes: Some(8 << 30),
        };
        update(
            &mut app,
            Message::Monitor(cutover::monitor::MonitorEvent::Metrics(sample)),
        );
    }
    let statuses = cutover::monitor::expected_indexes(&runbook)
        .into_iter()
        .map(|expected| cutover::monitor::IndexStatus {
            expected,
            state: cutover::monitor::IndexLiveState::Present { name: "idx".into() },
        })
        .collect();
    update(
        &mut app,
        Message::Monitor(cutover::monitor::MonitorEvent::Indexes(statuses)),
    );
    app.section = 1;
    app.screen = cutover::tui::app::Screen::Section(1);
    app.selected = 1;
    app
}

fn render(c: &mut Criterion) {
    let app = busy_app();
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("test backend");
    c.bench_function("render 200x60 section with output and panels", |b| {
        b.iter(|| {
            terminal
                .draw(|frame| view::render(&app, frame))
                .expect("draw");
        })
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
