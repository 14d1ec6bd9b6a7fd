//! The journal kept in PostgreSQL (`--journal-url`, `CUTOVER_JOURNAL_URL`): a team's control
//! database, for engineers on different machines. Runs and events land there (schema
//! `cutover`), the commands read them back, the target's own database is refused, and a
//! database without a journal is said to have none.

mod common;

use common::*;

/// A check of the destructive runbook against `url`, journaled in `control`.
fn check_into(
    home: &std::path::Path,
    work: &std::path::Path,
    control: &str,
    url: &str,
) -> std::process::Output {
    let runbook = write_runbook(work, DESTRUCTIVE_RUNBOOK);
    cutover_in(
        home,
        &[
            "--journal-url",
            control,
            "check",
            "--runbook",
            &runbook,
            "--database-url",
            url,
            "--allow-shell",
            "--confirm",
            &database_of(url),
        ],
    )
    .current_dir(work)
    .output()
    .unwrap()
}

#[test]
fn a_run_journaled_in_postgres_is_listed_and_reported_from_another_home() {
    let control = empty_database();
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let output = check_into(home.path(), work.path(), &control, &url);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(work.path().join("changed.txt").exists());

    // In the control database, schema `cutover`: the run and its events.
    let events = shared().psql(
        &database_of(&control),
        "SELECT count(*) FROM cutover.events e JOIN cutover.runs r ON r.id = e.run_id \
         WHERE e.kind = 'step_finished' AND e.step_id = 'apply.change'",
    );
    assert_eq!(events.unwrap().trim(), "1");
    // The local journal records the run first, under the same id.
    let local = cutover_in(home.path(), &["runs"]).output().unwrap();
    let in_control = shared().psql(&database_of(&control), "SELECT id FROM cutover.runs");
    assert!(
        stdout(&local).contains(in_control.unwrap().trim()),
        "{}",
        stdout(&local)
    );

    // Another machine (another home, nothing shared but the database) reads it back.
    let elsewhere = tempfile::tempdir().unwrap();
    let runs = cutover_in(elsewhere.path(), &["runs"])
        .env("CUTOVER_JOURNAL_URL", &control)
        .output()
        .unwrap();
    assert_eq!(runs.status.code(), Some(0), "{}", stderr(&runs));
    assert!(
        stdout(&runs).contains("two-person rule"),
        "{}",
        stdout(&runs)
    );
    let report = cutover_in(
        elsewhere.path(),
        &["--journal-url", &control, "report", "--last"],
    )
    .output()
    .unwrap();
    assert!(
        stdout(&report).contains("| ✓ pass | `apply.change` Change the database | exited with 0"),
        "{}",
        stdout(&report)
    );
}

#[test]
fn the_targets_own_database_an_empty_one_and_an_unreachable_one_are_refused_on_one_line() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let on_target = check_into(home.path(), work.path(), &url, &url);
    assert_one_line_error(&on_target, 2, "is the migration's target");
    assert!(!work.path().join("changed.txt").exists(), "nothing ran");
    let untouched = shared().psql(
        &database_of(&url),
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'cutover'",
    );
    assert_eq!(untouched.unwrap().trim(), "0", "nothing made in the target");

    // A command that only reads makes nothing, and says there is no journal.
    let empty = empty_database();
    let runs = cutover_in(home.path(), &["--journal-url", &empty, "runs"])
        .output()
        .unwrap();
    assert_one_line_error(&runs, 2, "no cutover journal in ");

    let unreachable = cutover_in(
        home.path(),
        &[
            "--journal-url",
            "postgresql://cutover@127.0.0.1:1/control",
            "runs",
        ],
    )
    .output()
    .unwrap();
    assert_one_line_error(&unreachable, 2, "cannot reach the journal database");
}

/// The control database stops answering while the run goes on: the run finishes, every event
/// is in the local journal, and the person is told, with what the control database missed.
#[test]
fn a_journal_database_that_stops_mid_run_loses_nothing() {
    lost_mid_run(
        |control| {
            control.stop();
            None
        },
        |control, _| control.start_again().unwrap(),
    );
}

/// The control database hangs (its processes stopped: connections open, nothing answers, as
/// with a host gone or a network that drops packets): the run does not wait on it. Each write
/// gives up after a moment, and the run ends as when the server is gone.
#[test]
fn a_journal_database_that_hangs_mid_run_holds_nothing_up() {
    lost_mid_run(
        |control| Some(Frozen::server(control)),
        |_, frozen| drop(frozen),
    );
}

/// A check journaled in a control database of its own, which `lose` takes away once the first
/// step runs: the run finishes (within a minute), is said to have lost it, at once and at the
/// end, and the local journal has all of it. Once `restore` brings the control database back,
/// the next check sends it what it missed, and it reports the whole run too.
fn lost_mid_run(
    lose: impl FnOnce(&mut cutover::cluster::Cluster) -> Option<Frozen>,
    restore: impl FnOnce(&mut cutover::cluster::Cluster, Option<Frozen>),
) {
    let mut control_cluster =
        cutover::cluster::Cluster::start(cutover::cluster::ClusterOptions::default()).unwrap();
    control_cluster.create_database("control").unwrap();
    let control = control_cluster.url("control");
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let runbook = write_runbook(
        work.path(),
        r#"
name = "journal lost"

[[sections]]
id = "apply"
title = "Apply"

[[sections.steps]]
id = "first"
title = "First"
kind = "shell"
command = "touch started; while [ ! -e go ]; do sleep 0.1; done; echo first done"

[[sections.steps]]
id = "second"
title = "Second"
kind = "shell"
command = "echo second done"
depends_on = ["first"]
"#,
    );
    let check_args = [
        "--journal-url",
        &control,
        "check",
        "--runbook",
        &runbook,
        "--database-url",
        &url,
        "--allow-shell",
    ];
    let mut check = cutover_in(home.path(), &check_args)
        .current_dir(work.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the first step runs", 30, || {
        work.path().join("started").exists()
    });
    let frozen = lose(&mut control_cluster);
    std::fs::write(work.path().join("go"), "").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut ended = None;
    while ended.is_none() && std::time::Instant::now() < deadline {
        ended = check.try_wait().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if ended.is_none() {
        let _ = check.kill();
    }
    let output = check.wait_with_output().unwrap();
    let (out, err) = (stdout(&output), stderr(&output));
    assert!(
        ended.is_some(),
        "the check waited on the journal database: {out}{err}"
    );
    assert_eq!(output.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("2 passed"), "{out}");
    assert!(
        err.contains("the journal database does not answer")
            && err.contains("recorded in the local journal"),
        "said at once: {err}"
    );
    assert!(
        err.contains("are only in the local journal"),
        "said at the end: {err}"
    );

    // Nothing lost: the local journal has the whole run.
    let local = cutover_in(home.path(), &["report", "--last", "--format", "json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&local.stdout).unwrap();
    assert_eq!(
        step_statuses(&report),
        [("apply.first", "pass"), ("apply.second", "pass")],
        "{report}"
    );

    // The control database back, the next check sends it what it missed, with the run's end.
    restore(&mut control_cluster, frozen);
    let next = cutover_in(home.path(), &check_args)
        .current_dir(work.path())
        .output()
        .unwrap();
    assert_eq!(next.status.code(), Some(0), "{}", stderr(&next));
    assert!(
        stderr(&next).contains("sent the journal database"),
        "{}",
        stderr(&next)
    );
    let run = report["run_id"].as_str().unwrap();
    let there = cutover_in(
        home.path(),
        &["--journal-url", &control, "report", run, "--format", "json"],
    )
    .output()
    .unwrap();
    let there: serde_json::Value = serde_json::from_slice(&there.stdout).unwrap();
    assert_eq!(
        step_statuses(&there),
        [("apply.first", "pass"), ("apply.second", "pass")],
        "{there}"
    );
    // Each event kept its time, the run its end: the same run, the same length.
    assert_eq!(there["duration_ms"], report["duration_ms"], "{there}");
    let runs = cutover_in(home.path(), &["--journal-url", &control, "runs"])
        .output()
        .unwrap();
    let listed = stdout(&runs);
    let line = listed.lines().find(|l| l.contains(run)).unwrap();
    assert!(
        !line.contains("unfinished"),
        "the run's end is there too: {listed}"
    );
}

/// A write to the control database that went through while its answer was lost (the recorder
/// gave up on it) is not sent again when the database answers: the control database ends with
/// the local journal's events, each once.
#[test]
fn an_event_the_control_database_got_without_saying_so_is_not_sent_twice() {
    use cutover::journal::{Entry, Journal, Mode, NewRun, Recorder};
    // A commit is kept through the stop, as on a real server (the test clusters' default is
    // not to wait for the disk).
    let durable = cutover::cluster::ClusterOptions::default().setting("synchronous_commit", "on");
    let mut control_cluster = cutover::cluster::Cluster::start(durable).unwrap();
    control_cluster.create_database("control").unwrap();
    let control = control_cluster.url("control");
    let home = tempfile::tempdir().unwrap();
    let ticked = |note: &str| Entry::Ticked {
        note: note.to_string(),
    };
    block_on(async {
        let journal = Journal::open_postgres(&control, None, true).await.unwrap();
        let mirror = Journal::open(home.path(), true).await.unwrap();
        let run = journal
            .create_run(NewRun {
                runbook_name: "lost answers".into(),
                runbook_text: "name = \"lost answers\"".into(),
                target: "postgresql://app@db/app".into(),
                mode: Mode::Rehearsal,
                origin: "check",
            })
            .await
            .unwrap();
        mirror
            .mirror_run(&run, "name = \"lost answers\"")
            .await
            .unwrap();
        let mut recorder =
            Recorder::new(Some(journal.clone()), run.id.clone()).mirrored(Some(mirror.clone()));
        recorder.record(Some("s.one"), ticked("one")).await.unwrap();
        control_cluster.stop();
        recorder.record(Some("s.two"), ticked("two")).await.unwrap();
        recorder
            .record(Some("s.three"), ticked("three"))
            .await
            .unwrap();
        assert!(
            recorder.news().is_some(),
            "told the database does not answer"
        );
        control_cluster.start_again().unwrap();
        // The second event got there after all.
        journal
            .append(&run.id, Some("s.two"), &ticked("two"))
            .await
            .unwrap();
        recorder.close(false).await.unwrap();
        let steps = |events: Vec<cutover::journal::Recorded>| {
            events
                .into_iter()
                .map(|event| event.step_id.unwrap_or_default())
                .collect::<Vec<_>>()
        };
        let there = steps(journal.events(&run.id).await.unwrap());
        assert_eq!(there, ["s.one", "s.two", "s.three"]);
        assert_eq!(there, steps(mirror.events(&run.id).await.unwrap()));
    });
}
