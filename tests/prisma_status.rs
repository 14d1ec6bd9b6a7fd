//! `verify.status` and `cutover status`: Prisma's migration status, natively, against a real
//! `_prisma_migrations` table and a real migrations folder the tests change.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use cutover::outcome::Status;

/// A copy of the sample app's folder (with `prisma/migrations`) the test may change.
fn app_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    cutover::demo::write_app(dir.path()).expect("write the app folder");
    dir
}

fn migrations(app: &Path) -> std::path::PathBuf {
    app.join("prisma").join("migrations")
}

fn status_step(url: &str, app: &Path) -> cutover::check::StepReport {
    let variables = BTreeMap::from([("app_dir".to_string(), app.display().to_string())]);
    block_on(step_of(bundled(), url, "verify.status", variables))
}

fn line_with<'a>(details: &'a [String], text: &str) -> &'a str {
    details
        .iter()
        .find(|d| d.contains(text))
        .unwrap_or_else(|| panic!("no detail line with `{text}`: {details:#?}"))
}

const FIRST: &str = "20260105090000_init";

#[test]
fn status_passes_when_every_migration_is_applied_unchanged() {
    let url = fresh_database();
    // The repository's own copy of the sample app, as a user's checkout would have it.
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
    let step = status_step(&url, &app);
    assert_status(&step, Status::Pass);
    assert!(
        step.message.contains("all 8 migration(s)"),
        "{}",
        step.message
    );
}

#[test]
fn status_fails_on_a_pending_migration() {
    let url = fresh_database();
    let app = app_copy();
    let folder = migrations(app.path()).join("20260301000000_add_rating");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("migration.sql"),
        "ALTER TABLE \"Summary\" ADD COLUMN \"rating\" INTEGER;\n",
    )
    .unwrap();
    let step = status_step(&url, app.path());
    assert_status(&step, Status::Fail);
    assert!(step.message.contains("1 pending"), "{}", step.message);
    line_with(&step.details, "pending          20260301000000_add_rating");
}

#[test]
fn status_fails_on_a_failed_migration_and_names_the_way_out() {
    let url = fresh_database();
    psql(
        &url,
        "INSERT INTO _prisma_migrations (id, checksum, migration_name, logs, started_at, applied_steps_count)
         VALUES ('f1', 'x', '20260301000000_add_rating', E'Database error code: 42P07\\nmore', now(), 0)",
    );
    let app = app_copy();
    let folder = migrations(app.path()).join("20260301000000_add_rating");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("migration.sql"), "SELECT 1;\n").unwrap();
    let step = status_step(&url, app.path());
    assert_status(&step, Status::Fail);
    assert!(step.message.contains("1 failed"), "{}", step.message);
    let line = line_with(&step.details, "failed           20260301000000_add_rating");
    assert!(line.contains("42P07"), "{line}");
    assert!(line.contains("cutover resolve --rolled-back"), "{line}");
}

#[test]
fn status_fails_on_a_migration_edited_after_it_was_applied() {
    let url = fresh_database();
    let app = app_copy();
    let script = migrations(app.path()).join(FIRST).join("migration.sql");
    let text = std::fs::read_to_string(&script).unwrap();
    std::fs::write(&script, format!("{text}\n-- edited later\n")).unwrap();
    let step = status_step(&url, app.path());
    assert_status(&step, Status::Fail);
    assert!(step.message.contains("1 modified"), "{}", step.message);
    line_with(&step.details, &format!("modified         {FIRST}"));
}

#[test]
fn status_treats_crlf_line_endings_as_the_same_script() {
    let url = fresh_database();
    let app = app_copy();
    let script = migrations(app.path()).join(FIRST).join("migration.sql");
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(!text.contains('\r'));
    std::fs::write(&script, text.replace('\n', "\r\n")).unwrap();
    let step = status_step(&url, app.path());
    assert_status(&step, Status::Pass);
}

#[test]
fn status_fails_on_a_rolled_back_migration_and_one_missing_locally() {
    let url = fresh_database();
    psql(
        &url,
        "INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, rolled_back_at)
         VALUES ('r1', 'x', '20260301000000_add_rating', now(), now())",
    );
    let app = app_copy();
    let folder = migrations(app.path()).join("20260301000000_add_rating");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("migration.sql"), "SELECT 1;\n").unwrap();
    std::fs::remove_dir_all(
        migrations(app.path()).join("20261130100500_usage_event_user_type_created_idx"),
    )
    .unwrap();
    let step = status_step(&url, app.path());
    assert_status(&step, Status::Fail);
    assert!(
        step.message.contains("1 rolled back") && step.message.contains("1 missing locally"),
        "{}",
        step.message
    );
    line_with(
        &step.details,
        "missing locally  20261130100500_usage_event_user_type_created_idx",
    );
}

#[test]
fn status_without_a_history_table_suggests_baselining() {
    let url = fresh_database();
    psql(&url, "DROP TABLE _prisma_migrations");
    let app = app_copy();
    let step = status_step(&url, app.path());
    assert_status(&step, Status::Fail);
    assert!(
        step.message.contains("no _prisma_migrations table")
            && step.message.contains("cutover baseline"),
        "{}",
        step.message
    );
}

#[test]
fn status_errors_when_the_folder_is_not_there() {
    let url = fresh_database();
    let step = status_step(&url, Path::new("/nonexistent/app"));
    assert_status(&step, Status::Error);
    assert!(
        step.message
            .contains("migrations folder /nonexistent/app/prisma/migrations not found"),
        "{}",
        step.message
    );
}

#[test]
fn cutover_status_exits_0_when_up_to_date_1_when_not_and_2_without_a_folder() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let app = app_copy();
    let dir = migrations(app.path()).display().to_string();
    let run = |args: &[&str]| {
        let out = cutover_in(home.path(), args).output().expect("run cutover");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, _) = run(&["status", "--database-url", &url, "--migrations", &dir]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("up to date"), "{stdout}");
    assert!(
        stdout.contains(&format!("applied          {FIRST}")),
        "{stdout}"
    );

    let (code, stdout, _) = run(&[
        "status",
        "--database-url",
        &url,
        "--migrations",
        &dir,
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(0), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(json["migrations"][0]["name"], FIRST);
    assert_eq!(json["migrations"][0]["state"], "applied");

    psql(
        &url,
        &format!(
            "UPDATE _prisma_migrations SET checksum = repeat('0', 64) WHERE migration_name = '{FIRST}'"
        ),
    );
    let (code, stdout, _) = run(&["status", "--database-url", &url, "--migrations", &dir]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("1 modified"), "{stdout}");

    let (code, _, stderr) = run(&["status", "--database-url", &url, "--migrations", "/nope"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("migrations folder /nope not found"),
        "{stderr}"
    );
}

fn pre_status_step(url: &str, app: &Path) -> cutover::check::StepReport {
    let variables = BTreeMap::from([("app_dir".to_string(), app.display().to_string())]);
    block_on(step_of(bundled(), url, "apply.pre_status", variables))
}

#[test]
fn before_the_deploy_pending_migrations_pass_and_a_failed_one_still_fails() {
    let url = fresh_database();
    let app = app_copy();
    let folder = migrations(app.path()).join("20270101000000_add_rating");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("migration.sql"), "SELECT 1;\n").unwrap();
    let step = pre_status_step(&url, app.path());
    assert_status(&step, Status::Pass);
    assert!(
        step.message
            .contains("1 migration(s) to deploy (8 applied)"),
        "{}",
        step.message
    );
    line_with(&step.details, "pending          20270101000000_add_rating");

    psql(
        &url,
        "INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, applied_steps_count)
         VALUES ('f1', 'x', '20270101000000_add_rating', now(), 0)",
    );
    let step = pre_status_step(&url, app.path());
    assert_status(&step, Status::Fail);
    assert!(step.message.contains("1 failed"), "{}", step.message);
}

#[test]
fn the_demo_starts_with_the_release_pending() {
    let cluster = shared();
    cluster.create_database("before_release").unwrap();
    let url = cluster.url("before_release");
    let contents = cutover::demo::DemoContents {
        seed: false,
        ..cutover::demo::DemoContents::before_release()
    };
    block_on(cutover::demo::load(&url, contents)).unwrap();
    let app = app_copy();
    let step = pre_status_step(&url, app.path());
    assert_status(&step, Status::Pass);
    assert!(
        step.message
            .contains("6 migration(s) to deploy (2 applied)"),
        "{}",
        step.message
    );
    let status = status_step(&url, app.path());
    assert_status(&status, Status::Fail);
    assert!(status.message.contains("6 pending"), "{}", status.message);
    let indexes = block_on(bundled_step(&url, "performance.indexes"));
    assert_status(&indexes, Status::Fail);
    assert!(
        indexes.message.contains("5") || indexes.details.len() >= 5,
        "{indexes:#?}"
    );
}
