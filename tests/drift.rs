//! Schema drift: the applied migrations replayed into a throwaway cluster and compared with the
//! target's catalog, through `verify.drift` and `cutover drift`.

mod common;

use std::collections::BTreeMap;

use common::*;
use cutover::outcome::Status;

/// The sample app's folder (prisma/migrations) for the sample database.
fn app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    cutover::demo::write_app(dir.path()).unwrap();
    dir
}

fn drift_step(url: &str, app: &std::path::Path) -> cutover::check::StepReport {
    let variables: BTreeMap<String, String> =
        [("app_dir".to_string(), app.display().to_string())].into();
    block_on(step_of(bundled(), url, "verify.drift", variables))
}

#[test]
fn verify_drift_passes_on_the_sample_and_names_each_change_made_by_hand() {
    let url = fresh_database();
    let app = app();
    let clean = drift_step(&url, app.path());
    assert_status(&clean, Status::Pass);
    assert!(
        clean
            .message
            .starts_with("no drift: the schema is what its 8 applied migration(s) make"),
        "{}",
        clean.message
    );

    psql(
        &url,
        "ALTER TABLE \"User\" ADD COLUMN age int;
         DROP INDEX \"Summary_userId_idx\";
         ALTER TABLE \"Summary\" ALTER COLUMN \"content\" DROP NOT NULL;
         ALTER TABLE \"Tag\" ADD CONSTRAINT \"Tag_name_short\" CHECK (length(name) < 100) NOT VALID;",
    );
    let drifted = drift_step(&url, app.path());
    assert_status(&drifted, Status::Fail);
    for line in [
        "column `User.age` exists in the database but no migration creates it (integer)",
        "index `Summary_userId_idx` is missing from the database (the migrations make `CREATE INDEX \"Summary_userId_idx\" ON public.\"Summary\" USING btree (\"userId\")`)",
        "column `Summary.content` differs: the database has `text`, the migrations make `text, NOT NULL`",
        "constraint `Tag.Tag_name_short` exists in the database but no migration creates it (CHECK ((length(name) < 100)) NOT VALID)",
    ] {
        assert!(
            drifted.details.iter().any(|d| d == line),
            "{line} in {:#?}",
            drifted.details
        );
    }
    assert_eq!(drifted.details.len(), 4, "{:#?}", drifted.details);
}

#[test]
fn the_drift_command_exits_by_what_it_found_and_refuses_what_it_cannot_replay() {
    let url = fresh_database();
    let app = app();
    let migrations = app.path().join("prisma/migrations");
    let migrations = migrations.to_str().unwrap();
    let same = run(&["drift", "--database-url", &url, "--migrations", migrations]);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));

    psql(&url, "CREATE TYPE mood AS ENUM ('sad', 'ok')");
    let different = run(&["drift", "--database-url", &url, "--migrations", migrations]);
    assert_eq!(different.status.code(), Some(1), "{}", stderr(&different));
    assert!(
        stdout(&different)
            .contains("enum `mood` exists in the database but no migration creates it (sad, ok)"),
        "{}",
        stdout(&different)
    );

    // A migration the history records that the folder lacks cannot be replayed.
    let partial = tempfile::tempdir().unwrap();
    assert_one_line_error(
        &run(&[
            "drift",
            "--database-url",
            &url,
            "--migrations",
            partial.path().to_str().unwrap(),
        ]),
        2,
        "is recorded as applied but is not in the migrations folder",
    );
    // No history at all: nothing to replay.
    let empty = empty_database();
    assert_one_line_error(
        &run(&[
            "drift",
            "--database-url",
            &empty,
            "--migrations",
            migrations,
        ]),
        2,
        "no _prisma_migrations table",
    );
}

/// Without local server binaries, a scratch server takes the replay: a database is created
/// there and dropped at the end; the target's own database is refused.
#[test]
fn drift_replays_on_a_scratch_server_when_given_one() {
    let url = fresh_database();
    let app = app();
    let migrations = app.path().join("prisma/migrations");
    let scratch = shared().url("postgres");
    let drift_on = |scratch: &str| {
        run(&[
            "drift",
            "--database-url",
            &url,
            "--migrations",
            migrations.to_str().unwrap(),
            "--scratch-url",
            scratch,
        ])
    };
    let same = drift_on(&scratch);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    assert!(stdout(&same).starts_with("no drift"), "{}", stdout(&same));
    assert_eq!(
        shared()
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_database WHERE datname LIKE 'cutover_rehearsal_%'",
            )
            .unwrap(),
        "0",
        "the scratch database was dropped"
    );
    assert_one_line_error(
        &drift_on(&url),
        2,
        "the scratch URL names the target database itself",
    );
}
