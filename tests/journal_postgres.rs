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
    assert!(
        !std::fs::exists(home.path().join("journal.sqlite3")).unwrap(),
        "nothing in the local journal"
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
