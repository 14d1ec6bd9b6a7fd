//! Journal append throughput while a shell step floods output, and what recording costs the
//! step: the same step run through the engine with and without the journal.
//!
//! `cargo bench --bench journal_append`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use cutover::db::{Db, DbSettings};
use cutover::engine::{self, Command, EngineConfig, Event};
use cutover::journal::{Journal, Mode, NewRun, Recorder};
use cutover::probes::Catalog;
use cutover::runbook;
use cutover::target::Target;

async fn flood(lines: u64, journal: Option<Journal>) -> (f64, u64) {
    let text = format!(
        "name = \"flood\"\n[[sections]]\nid = \"s\"\ntitle = \"S\"\n[[sections.steps]]\nid = \"print\"\ntitle = \"Prints\"\nkind = \"shell\"\ncommand = \"seq 1 {lines}\"\n"
    );
    let runbook = Arc::new(runbook::load_str(&text, "flood.toml", &Catalog).expect("runbook"));
    let target = Target::from_url("postgresql://bench@127.0.0.1:1/bench").expect("url");
    let db = Db::connect_lazy(&target, DbSettings::default());
    let config = EngineConfig {
        allow_shell: true,
        variables: BTreeMap::new(),
        ..EngineConfig::default()
    };
    let run_id = match &journal {
        Some(journal) => {
            let new = NewRun {
                runbook_name: "flood".into(),
                runbook_text: text.clone(),
                target: target.to_string(),
                mode: Mode::Rehearsal,
                origin: "check",
            };
            journal.create_run(new).await.expect("run").id
        }
        None => "none".to_string(),
    };
    let mut recorder = Recorder::new(journal.clone(), run_id);
    let mut engine = engine::spawn(runbook, db, config);
    let start = Instant::now();
    engine
        .commands
        .send(Command::RunSteps {
            ids: vec!["s.print".into()],
            confirmed_database: None,
        })
        .await
        .expect("engine");
    let mut events = 0u64;
    while let Some(event) = engine.events.recv().await {
        events += 1;
        if matches!(event, Event::BatchFinished) {
            break;
        }
        recorder.event(&event).await.expect("journal write");
    }
    recorder.finish().await.expect("finish");
    let elapsed = start.elapsed().as_secs_f64();
    engine.shutdown().await;
    (elapsed, events)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let lines = 500_000;
        let (bare, _) = flood(lines, None).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(dir.path(), true).await.expect("journal");
        let (journaled, events) = flood(lines, Some(journal.clone())).await;
        let size = std::fs::metadata(dir.path().join("journal.sqlite3"))
            .map(|m| m.len())
            .unwrap_or(0)
            + std::fs::metadata(dir.path().join("journal.sqlite3-wal"))
                .map(|m| m.len())
                .unwrap_or(0);
        let stored: usize = {
            let runs = journal.runs().await.expect("runs");
            journal.events(&runs[0].id).await.expect("events").len()
        };
        println!(
            "{lines} lines: step without journal {bare:.2}s, with journal {journaled:.2}s (+{:.0}%); \
             {events} engine events in, {stored} journal rows written ({:.0} lines/s recorded, {:.0} rows/s), {} KiB on disk",
            100.0 * (journaled - bare) / bare,
            lines as f64 / journaled,
            stored as f64 / journaled,
            size / 1024
        );
    });
}
