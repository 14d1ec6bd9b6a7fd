//! The engine as the wizard will drive it: commands in, events out, real processes.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use common::*;
use cutover::db::{Db, DbSettings};
use cutover::engine::{self, Command, EngineConfig, Event, OutputStream, output_lines};
use cutover::outcome::{Outcome, Status};
use cutover::target::Target;

/// Sends one batch and gathers its events up to `BatchFinished`.
async fn batch(
    handle: &mut engine::EngineHandle,
    ids: &[&str],
    confirmed: Option<&str>,
) -> Vec<Event> {
    handle
        .commands
        .send(Command::RunSteps {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            confirmed_database: confirmed.map(str::to_string),
        })
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(60), handle.events.recv())
        .await
        .expect("the engine answers")
    {
        let done = matches!(event, Event::BatchFinished);
        events.push(event);
        if done {
            break;
        }
    }
    events
}

/// Runs `ids` of `runbook_text` through a fresh engine and returns every event in order.
async fn events_of(runbook_text: &str, ids: &[&str], config: EngineConfig) -> Vec<Event> {
    let url = fresh_database();
    let target = Target::from_url(&url).unwrap();
    let db = Db::connect_lazy(&target, DbSettings::default());
    let mut handle = engine::spawn(runbook_from(runbook_text), db, config);
    let events = batch(&mut handle, ids, None).await;
    handle.shutdown().await;
    events
}

fn shell_config(dir: &Path) -> EngineConfig {
    EngineConfig {
        allow_shell: true,
        workdir: dir.to_path_buf(),
        ..EngineConfig::default()
    }
}

fn outcome_of<'a>(events: &'a [Event], id: &str) -> &'a Outcome {
    events
        .iter()
        .find_map(|e| match e {
            Event::StepFinished {
                id: done, outcome, ..
            } if done == id => Some(outcome),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{id} never finished: {events:#?}"))
}

const SHELL_HEAD: &str = "name = \"t\"\n[[sections]]\nid = \"s\"\ntitle = \"S\"\n";

fn shell_step(id: &str, command: &str, extra: &str) -> String {
    format!(
        "[[sections.steps]]\nid = \"{id}\"\ntitle = \"{id}\"\nkind = \"shell\"\ncommand = '''{command}'''\n{extra}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_output_streams_line_by_line_before_the_step_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{SHELL_HEAD}{}",
        shell_step("talk", "echo one; echo two >&2; printf 'three'", "")
    );
    let events = events_of(&text, &["s.talk"], shell_config(dir.path())).await;
    let lines: Vec<(OutputStream, &str)> = events
        .iter()
        .flat_map(|e| match e {
            Event::StepOutput { stream, text, .. } => output_lines(text)
                .map(|line| (*stream, line))
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect();
    assert!(lines.contains(&(OutputStream::Stdout, "one")), "{lines:?}");
    assert!(lines.contains(&(OutputStream::Stderr, "two")), "{lines:?}");
    assert!(
        lines.contains(&(OutputStream::Stdout, "three")),
        "{lines:?}"
    );
    let started = events
        .iter()
        .position(|e| matches!(e, Event::StepStarted { .. }))
        .unwrap();
    let first_line = events
        .iter()
        .position(|e| matches!(e, Event::StepOutput { .. }))
        .unwrap();
    let finished = events
        .iter()
        .position(|e| matches!(e, Event::StepFinished { .. }))
        .unwrap();
    assert!(started < first_line && first_line < finished);
    assert_eq!(outcome_of(&events, "s.talk").status, Status::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonzero_exit_fails_unless_it_is_the_expected_one() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{SHELL_HEAD}{}{}",
        shell_step("bad", "exit 3", ""),
        shell_step("expected", "exit 3", "expect_exit = 3")
    );
    let events = events_of(&text, &["s.bad", "s.expected"], shell_config(dir.path())).await;
    let bad = outcome_of(&events, "s.bad");
    assert_eq!(bad.status, Status::Fail);
    assert_eq!(bad.message, "exited with 3, expected 0");
    assert_eq!(outcome_of(&events, "s.expected").status, Status::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_step_kills_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let text = format!(
        "{SHELL_HEAD}{}",
        shell_step(
            "long",
            &format!(
                "sleep 300 & echo $! > {}; echo ready; wait",
                pidfile.display()
            ),
            ""
        )
    );
    let url = fresh_database();
    let target = Target::from_url(&url).unwrap();
    let db = Db::connect_lazy(&target, DbSettings::default());
    let mut handle = engine::spawn(runbook_from(&text), db, shell_config(dir.path()));
    handle
        .commands
        .send(Command::RunSteps {
            ids: vec!["s.long".into()],
            confirmed_database: None,
        })
        .await
        .unwrap();
    loop {
        match handle.events.recv().await.unwrap() {
            Event::StepOutput { text, .. } if output_lines(&text).any(|l| l == "ready") => break,
            _ => {}
        }
    }
    handle
        .commands
        .send(Command::CancelStep {
            id: "s.long".into(),
        })
        .await
        .unwrap();
    let outcome = loop {
        if let Event::StepFinished { outcome, .. } = handle.events.recv().await.unwrap() {
            break outcome;
        }
    };
    assert_eq!(outcome.status, Status::Error);
    assert!(
        outcome.message.starts_with("cancelled"),
        "{}",
        outcome.message
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until("the background child is gone", 10, || process_gone(pid));
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_steps_run_concurrently() {
    // Each step waits for the other's mark: they can only both pass if they overlap.
    let dir = tempfile::tempdir().unwrap();
    let wait_for = |mine: &str, theirs: &str| {
        format!(
            "touch {mine}; i=0; while [ ! -f {theirs} ]; do i=$((i+1)); [ $i -gt 400 ] && exit 1; sleep 0.05; done"
        )
    };
    let text = format!(
        "{SHELL_HEAD}{}{}",
        shell_step("a", &wait_for("a", "b"), ""),
        shell_step("b", &wait_for("b", "a"), "")
    );
    let events = events_of(&text, &["s.a", "s.b"], shell_config(dir.path())).await;
    assert_eq!(outcome_of(&events, "s.a").status, Status::Pass);
    assert_eq!(outcome_of(&events, "s.b").status, Status::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destructive_step_waits_for_earlier_steps_and_holds_back_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{SHELL_HEAD}{}{}{}",
        shell_step("before", "sleep 0.5; echo before >> order", ""),
        shell_step("change", "echo change >> order", "destructive = true"),
        shell_step("after", "echo after >> order", "")
    );
    let url = fresh_database();
    let name = url.rsplit('/').next().unwrap().to_string();
    let target = Target::from_url(&url).unwrap();
    let db = Db::connect_lazy(&target, DbSettings::default());
    let config = EngineConfig {
        confirmed_database: Some(name),
        ..shell_config(dir.path())
    };
    let mut handle = engine::spawn(runbook_from(&text), db, config);
    handle
        .commands
        .send(Command::RunSteps {
            ids: vec!["s.before".into(), "s.change".into(), "s.after".into()],
            confirmed_database: None,
        })
        .await
        .unwrap();
    while !matches!(handle.events.recv().await.unwrap(), Event::BatchFinished) {}
    handle.shutdown().await;
    let order = std::fs::read_to_string(dir.path().join("order")).unwrap();
    assert_eq!(order, "before\nchange\nafter\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destructive_step_that_will_be_skipped_holds_nothing_back() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{SHELL_HEAD}{}{}{}",
        shell_step("before", "sleep 0.5; echo before >> order", ""),
        shell_step("change", "echo change >> order", "destructive = true"),
        shell_step("after", "echo after >> order", "")
    );
    // Not confirmed: the change is skipped, and the step after it need not wait.
    let events = events_of(
        &text,
        &["s.before", "s.change", "s.after"],
        shell_config(dir.path()),
    )
    .await;
    assert_eq!(outcome_of(&events, "s.change").status, Status::Skip);
    let order = std::fs::read_to_string(dir.path().join("order")).unwrap();
    assert_eq!(order, "after\nbefore\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_whose_dependency_failed_is_skipped_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{SHELL_HEAD}{}{}",
        shell_step("first", "exit 1", ""),
        shell_step("second", "echo never", "depends_on = [\"first\"]")
    );
    let events = events_of(&text, &["s.first", "s.second"], shell_config(dir.path())).await;
    let second = outcome_of(&events, "s.second");
    assert_eq!(second.status, Status::Skip);
    assert_eq!(
        second.message,
        "not run: it depends on s.first, which ended fail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_destructive_step_never_runs_past_a_dependency_of_another_batch() {
    // The wizard runs one step at a time: each is its own batch. The dependency rule must
    // hold across batches, on what the run knows, not only within one.
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let text = format!(
        "{SHELL_HEAD}{}{}{}",
        shell_step("gate", "exit 1", ""),
        "[[sections.steps]]\nid = \"decided\"\ntitle = \"decided\"\nkind = \"manual\"\n",
        shell_step(
            "change",
            &format!("touch {}", marker.display()),
            "destructive = true\ndepends_on = [\"gate\", \"decided\"]"
        ),
    );
    let url = fresh_database();
    let target = Target::from_url(&url).unwrap();
    let database = target.database().to_string();
    let db = Db::connect_lazy(&target, DbSettings::default());
    let mut handle = engine::spawn(runbook_from(&text), db, shell_config(dir.path()));

    // Nothing has run: held back, and an error (it could not be run), not a silent skip.
    let events = batch(&mut handle, &["s.change"], Some(&database)).await;
    let change = outcome_of(&events, "s.change");
    assert_eq!(change.status, Status::Error);
    assert_eq!(
        change.message,
        "not run: it depends on s.gate, which has not run"
    );

    // The gate fails in its own batch; the person ticks the manual step.
    let events = batch(&mut handle, &["s.gate"], None).await;
    assert_eq!(outcome_of(&events, "s.gate").status, Status::Fail);
    handle
        .commands
        .send(Command::NoteStatus {
            id: "s.decided".into(),
            status: Status::Pass,
        })
        .await
        .unwrap();
    let events = batch(&mut handle, &["s.change"], Some(&database)).await;
    let change = outcome_of(&events, "s.change");
    assert_eq!(change.status, Status::Skip);
    assert_eq!(
        change.message,
        "not run: it depends on s.gate, which ended fail"
    );
    assert!(!marker.exists(), "the destructive command never ran");
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_step_that_fails_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{SHELL_HEAD}{}",
        shell_step("opt", "exit 1", "severity = \"optional\"")
    );
    let events = events_of(&text, &["s.opt"], shell_config(dir.path())).await;
    let outcome = outcome_of(&events, "s.opt");
    assert_eq!(outcome.status, Status::Warn);
    assert!(outcome.message.starts_with("optional: "));
}

/// A one-request-at-a-time HTTP server on loopback answering with `status` after `delay`.
fn http_server(status: u16, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut socket) = stream else { return };
            let mut buf = [0u8; 2048];
            let _ = socket.read(&mut buf);
            std::thread::sleep(delay);
            let _ = write!(
                socket,
                "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    format!("http://127.0.0.1:{port}/health")
}

fn http_runbook(extra: &str) -> String {
    format!(
        "{SHELL_HEAD}[variables.url]\n[[sections.steps]]\nid = \"health\"\ntitle = \"H\"\nkind = \"http\"\nurl = \"{{{{url}}}}\"\n{extra}\n"
    )
}

async fn http_outcome(url: String, extra: &str, allow: bool) -> Outcome {
    let config = EngineConfig {
        allow_http: allow,
        variables: BTreeMap::from([("url".to_string(), url)]),
        ..EngineConfig::default()
    };
    let events = events_of(&http_runbook(extra), &["s.health"], config).await;
    outcome_of(&events, "s.health").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_steps_pass_on_the_expected_status_within_the_bound() {
    let url = http_server(200, Duration::ZERO);
    let outcome = http_outcome(url, "max_latency_ms = 5000", true).await;
    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_steps_fail_on_another_status() {
    let url = http_server(503, Duration::ZERO);
    let outcome = http_outcome(url, "", true).await;
    assert_eq!(outcome.status, Status::Fail);
    assert!(outcome.message.contains("→ 503"), "{}", outcome.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_steps_fail_when_slower_than_their_bound() {
    let url = http_server(200, Duration::from_millis(300));
    let outcome = http_outcome(url, "max_latency_ms = 50", true).await;
    assert_eq!(outcome.status, Status::Fail);
    assert!(
        outcome.message.contains("slower than 50 ms"),
        "{}",
        outcome.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_steps_error_when_nothing_listens_and_skip_without_permission() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let outcome = http_outcome(format!("http://127.0.0.1:{port}/"), "", true).await;
    assert_eq!(outcome.status, Status::Error);
    let outcome = http_outcome(format!("http://127.0.0.1:{port}/"), "", false).await;
    assert_eq!(outcome.status, Status::Skip);
    assert!(outcome.message.contains("--allow-http"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_steps_start_first_by_their_journaled_durations() {
    let step = |id: &str| {
        format!(
            "[[sections.steps]]\nid = \"{id}\"\ntitle = \"{id}\"\nkind = \"sql\"\nquery = \"SELECT true FROM pg_sleep(0.05)\"\nexpect = \"all_true\"\n"
        )
    };
    let text = format!(
        "{SHELL_HEAD}{}{}{}{}",
        step("short"),
        step("long"),
        step("unknown"),
        step("middle")
    );
    let url = fresh_database();
    let target = Target::from_url(&url).unwrap();
    // One connection: the steps run one at a time, in the order they get it.
    let db = Db::connect_lazy(
        &target,
        DbSettings {
            max_connections: 1,
            ..DbSettings::default()
        },
    );
    let config = EngineConfig {
        durations: [("s.short", 5), ("s.long", 9_000), ("s.middle", 400)]
            .into_iter()
            .map(|(id, ms)| (id.to_string(), ms))
            .collect(),
        ..EngineConfig::default()
    };
    let mut handle = engine::spawn(runbook_from(&text), db, config);
    let events = batch(
        &mut handle,
        &["s.short", "s.long", "s.unknown", "s.middle"],
        None,
    )
    .await;
    handle.shutdown().await;
    let started: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::StepStarted { id } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    // Never run before, an SQL step is guessed at 100 ms.
    assert_eq!(started, ["s.long", "s.middle", "s.unknown", "s.short"]);
    for id in ["s.short", "s.long", "s.unknown", "s.middle"] {
        assert_eq!(outcome_of(&events, id).status, Status::Pass, "{events:#?}");
    }
}
