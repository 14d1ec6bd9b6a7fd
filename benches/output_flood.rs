//! A shell step that prints 1,000,000 lines, fed through the engine into the wizard's state and
//! drawn as the event loop draws (one frame per batch of events), on ratatui's TestBackend.
//! Prints throughput, the longest gap between two frames (how long the UI could not answer a
//! key), and peak memory, for 100,000 and for 1,000,000 lines: memory must not grow with them.
//!
//! `cargo bench --bench output_flood`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use cutover::db::{Db, DbSettings};
use cutover::engine::{self, Command, EngineConfig, Event};
use cutover::probes::Catalog;
use cutover::runbook;
use cutover::target::Target;
use cutover::tui::app::{App, RunMode, Screen};
use cutover::tui::update::{Message, update};
use cutover::tui::view;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn flood(lines: u64) {
    let text = format!(
        "name = \"flood\"\n[[sections]]\nid = \"s\"\ntitle = \"S\"\n[[sections.steps]]\nid = \"print\"\ntitle = \"Prints\"\nkind = \"shell\"\ncommand = \"seq 1 {lines}\"\n"
    );
    let runbook = Arc::new(runbook::load_str(&text, "flood.toml", &Catalog).expect("runbook"));
    // The step never touches the database; the pool connects lazily, so nothing listens here.
    let target = Target::from_url("postgresql://bench@127.0.0.1:1/bench").expect("url");
    let db = Db::connect_lazy(&target, DbSettings::default());
    let config = EngineConfig {
        allow_shell: true,
        ..EngineConfig::default()
    };
    let mut engine = engine::spawn(runbook.clone(), db, config);
    let mut app = App::new(
        runbook,
        target.to_string(),
        "bench".into(),
        RunMode::Rehearsal,
        BTreeMap::new(),
    );
    app.screen = Screen::Section(0);
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("backend");

    let start = Instant::now();
    engine
        .commands
        .send(Command::RunSteps {
            ids: vec!["s.print".into()],
            confirmed_database: None,
        })
        .await
        .expect("engine");
    let (mut frames, mut longest_gap, mut last_frame) = (0u64, Duration::ZERO, Instant::now());
    'outer: while let Some(event) = engine.events.recv().await {
        let mut batch = vec![event];
        while batch.len() < 4096 {
            match engine.events.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        let mut done = false;
        for event in batch {
            done |= matches!(event, Event::BatchFinished);
            update(&mut app, Message::Engine(event));
        }
        terminal
            .draw(|frame| view::render(&app, frame))
            .expect("draw");
        frames += 1;
        longest_gap = longest_gap.max(last_frame.elapsed());
        last_frame = Instant::now();
        if done {
            break 'outer;
        }
    }
    let elapsed = start.elapsed();
    let kept = app.state("s.print").map(|s| s.output.len()).unwrap_or(0);
    println!(
        "{lines:>9} lines: {:.2}s, {:.0} lines/s, {frames} frames, longest gap between frames {:.1} ms, {kept} lines kept, peak RSS {} KiB",
        elapsed.as_secs_f64(),
        lines as f64 / elapsed.as_secs_f64(),
        longest_gap.as_secs_f64() * 1000.0,
        peak_rss_kib()
    );
    engine.shutdown().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        flood(100_000).await;
        flood(1_000_000).await;
    });
}
