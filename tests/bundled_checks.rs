//! The bundled runbook's SQL and shell checks of the verify, tables, performance and validation
//! sections (the probes have their own files): each passes on the sample database and fails, or
//! warns when it is optional, once the test breaks its own copy.

mod common;

use std::collections::BTreeMap;

use common::*;
use cutover::outcome::Status;

fn step(url: &str, id: &str) -> cutover::check::StepReport {
    block_on(bundled_step(url, id))
}

#[test]
fn verify_applied_fails_on_an_empty_history() {
    let url = fresh_database();
    assert_status(&step(&url, "verify.applied"), Status::Pass);
    psql(&url, "DELETE FROM _prisma_migrations");
    let applied = step(&url, "verify.applied");
    assert_status(&applied, Status::Fail);
    assert!(
        applied.message.contains("0 is not ≥ 1"),
        "{}",
        applied.message
    );
}

#[test]
fn verify_recent_fails_on_a_migration_that_never_finished() {
    let url = fresh_database();
    assert_status(&step(&url, "verify.recent"), Status::Pass);
    psql(
        &url,
        "INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at)
         VALUES ('x', 'x', '20260301000000_broken', now())",
    );
    let recent = step(&url, "verify.recent");
    assert_status(&recent, Status::Fail);
    assert!(
        recent.message.contains("20260301000000_broken"),
        "{}",
        recent.message
    );
}

#[test]
fn tables_foreign_keys_fails_when_a_relation_has_no_foreign_key() {
    let url = fresh_database();
    assert_status(&step(&url, "tables.foreign_keys"), Status::Pass);
    psql(
        &url,
        r#"ALTER TABLE "ShareLink" DROP CONSTRAINT "ShareLink_userId_fkey""#,
    );
    let keys = step(&url, "tables.foreign_keys");
    assert_status(&keys, Status::Fail);
    assert!(
        keys.message.contains("table=ShareLink") && keys.message.contains("column=userId"),
        "{}",
        keys.message
    );
}

#[test]
fn tables_progress_warns_when_its_expires_at_index_is_missing() {
    let url = fresh_database();
    assert_status(&step(&url, "tables.progress"), Status::Pass);
    psql(&url, r#"DROP INDEX "Progress_expiresAt_idx""#);
    let progress = step(&url, "tables.progress");
    assert_status(&progress, Status::Warn);
    assert!(
        progress
            .details
            .iter()
            .any(|d| d.contains("Progress(expiresAt)")),
        "{:#?}",
        progress.details
    );
}

#[test]
fn performance_duplicate_indexes_warns_on_an_index_twice() {
    let url = fresh_database();
    assert_status(&step(&url, "performance.duplicate_indexes"), Status::Pass);
    psql(&url, r#"CREATE INDEX tag_name_again ON "Tag" (name)"#);
    let duplicates = step(&url, "performance.duplicate_indexes");
    assert_status(&duplicates, Status::Warn);
    assert!(
        duplicates
            .message
            .contains("\"Tag_name_key\", tag_name_again"),
        "{}",
        duplicates.message
    );
    // Same expression and predicate: duplicates; another predicate: not one.
    psql(
        &url,
        r#"DROP INDEX tag_name_again;
           CREATE INDEX tag_lower_a ON "Tag" (lower(name)) WHERE name <> '';
           CREATE INDEX tag_lower_b ON "Tag" (lower(name)) WHERE name <> '';
           CREATE INDEX tag_lower_c ON "Tag" (lower(name)) WHERE name <> 'x'"#,
    );
    let duplicates = step(&url, "performance.duplicate_indexes");
    assert_status(&duplicates, Status::Warn);
    let found = format!("{} {:?}", duplicates.message, duplicates.details);
    assert!(found.contains("tag_lower_a, tag_lower_b"), "{found}");
    assert!(!found.contains("tag_lower_c"), "{found}");
    assert!(!found.contains("tag_name_again"), "{found}");
}

#[test]
fn performance_statistics_warns_on_a_table_never_analyzed() {
    let url = fresh_database();
    psql(&url, "ANALYZE");
    assert_status(&step(&url, "performance.statistics"), Status::Pass);
    psql(
        &url,
        "CREATE TABLE backfill AS SELECT g AS id FROM generate_series(1, 5000) g",
    );
    let statistics = step(&url, "performance.statistics");
    assert_status(&statistics, Status::Warn);
    assert!(
        statistics.message.contains("table=backfill"),
        "{}",
        statistics.message
    );
}

#[test]
fn validation_email_case_warns_on_addresses_that_differ_only_in_case() {
    let url = fresh_database();
    assert_status(&step(&url, "validation.email_case"), Status::Pass);
    psql(
        &url,
        r#"UPDATE "User" SET email = 'USER00001@example.com' WHERE email = 'user00002@example.com'"#,
    );
    let emails = step(&url, "validation.email_case");
    assert_status(&emails, Status::Warn);
    assert!(
        emails.message.contains("user00001@example.com"),
        "{}",
        emails.message
    );
}

#[test]
fn validation_schema_diff_shows_what_changed_since_the_snapshot_and_warns_without_one() {
    let url = fresh_database();
    let backups = tempfile::tempdir().unwrap();
    let variables = BTreeMap::from([(
        "backup_dir".to_string(),
        backups.path().display().to_string(),
    )]);
    let run = |ids: &[&str]| {
        let options = cutover::check::CheckOptions {
            only: ids.iter().map(|s| s.to_string()).collect(),
            allow_shell: true,
            variables: variables.clone(),
            ..Default::default()
        };
        block_on(check_with(bundled(), &url, options))
    };
    // No snapshot yet: the optional step warns and says why.
    let report = run(&["validation.schema_diff"]);
    assert_status(&report.steps[0], Status::Warn);
    assert!(
        report.steps[0]
            .details
            .iter()
            .any(|d| d.contains("no schema_before_*.sql")),
        "{:#?}",
        report.steps[0].details
    );

    // The snapshot is taken before the deploy, the diff after it: two runs.
    let report = run(&["baseline.schema_snapshot"]);
    assert_status(&report.steps[0], Status::Pass);
    let report = run(&["validation.schema_diff"]);
    assert_status(&report.steps[0], Status::Pass);
    assert!(
        report.steps[0]
            .details
            .iter()
            .any(|d| d.contains("no schema change since")),
        "{:#?}",
        report.steps[0].details
    );

    psql(&url, r#"ALTER TABLE "Summary" ADD COLUMN rating integer"#);
    let report = run(&["validation.schema_diff"]);
    assert_status(&report.steps[0], Status::Pass);
    assert!(
        report.steps[0]
            .details
            .iter()
            .any(|d| d.contains("+    rating integer")),
        "{:#?}",
        report.steps[0].details
    );
}

fn with_variables(
    url: &str,
    ids: &[&str],
    variables: &[(&str, &str)],
    allow_shell: bool,
) -> Vec<cutover::check::StepReport> {
    let options = cutover::check::CheckOptions {
        only: ids.iter().map(|s| s.to_string()).collect(),
        allow_shell,
        variables: variables
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        confirm: Some(url.rsplit('/').next().unwrap().to_string()),
        ..Default::default()
    };
    block_on(check_with(bundled(), url, options)).steps
}

#[test]
fn monitoring_connection_wait_fails_while_a_session_waits_on_a_lock() {
    let url = fresh_database();
    assert_status(&step(&url, "monitoring.connection_wait"), Status::Pass);
    let _holder = hold_table_lock(&url);
    let _waiter = background_psql(&url, r#"SELECT count(*) FROM "Tag""#);
    wait_until("the waiter has waited 200 ms", 30, || {
        psql(
            &url,
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND waitstart < now() - interval '200 ms'",
        ) == "1"
    });
    let wait = step(&url, "monitoring.connection_wait");
    assert_status(&wait, Status::Fail);
    assert!(wait.message.contains("is not ≤ 100"), "{}", wait.message);
}

#[test]
fn monitoring_storage_holds_the_size_against_the_plans_limit_and_is_skipped_without_one() {
    let url = fresh_database();
    let skipped = with_variables(&url, &["monitoring.storage"], &[], false);
    assert_status(&skipped[0], Status::Skip);
    assert!(
        skipped[0].message.contains("storage_limit_mb"),
        "{}",
        skipped[0].message
    );
    let roomy = with_variables(
        &url,
        &["monitoring.storage"],
        &[("storage_limit_mb", "1000000")],
        false,
    );
    assert_status(&roomy[0], Status::Pass);
    let full = with_variables(
        &url,
        &["monitoring.storage"],
        &[("storage_limit_mb", "1")],
        false,
    );
    assert_status(&full[0], Status::Fail);
}

#[test]
fn rollback_actions_never_run_headless_because_the_decision_is_a_persons() {
    let url = fresh_database();
    let marker = tempfile::tempdir().unwrap();
    let stopped = marker.path().join("stopped");
    let command = format!("touch {}", stopped.display());
    let steps = with_variables(
        &url,
        &["rollback"],
        &[
            ("stop_app_command", &command),
            ("start_app_command", &command),
            ("rollback_migration", "20261130100000_add_progress"),
        ],
        true,
    );
    for id in [
        "rollback.stop_app",
        "rollback.mark_rolled_back",
        "rollback.restore",
        "rollback.start_app",
    ] {
        let report = steps.iter().find(|s| s.id == id).expect(id);
        assert_status(report, Status::Skip);
        assert!(
            report.message.contains("decided"),
            "{id}: {}",
            report.message
        );
    }
    assert!(!stopped.exists(), "the app was stopped by a headless check");
}

#[test]
fn phase_three_scripts_are_skipped_without_scripts_dir_and_fail_when_the_script_fails() {
    let url = fresh_database();
    let skipped = with_variables(&url, &["verify.validate_database"], &[], true);
    assert_status(&skipped[0], Status::Skip);
    assert!(
        skipped[0].message.contains("scripts_dir"),
        "{}",
        skipped[0].message
    );

    let scripts = tempfile::tempdir().unwrap();
    let dir = scripts.path().display().to_string();
    let run = || {
        with_variables(
            &url,
            &["verify.validate_database", "verify.api_surfaces"],
            &[("scripts_dir", &dir)],
            true,
        )
    };
    let missing = run();
    assert_status(&missing[0], Status::Fail);
    assert_status(&missing[1], Status::Fail);
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok()
    {
        assert!(
            missing[0].message.contains("no validate-database.js in"),
            "{}",
            missing[0].message
        );
        std::fs::write(
            scripts.path().join("validate-database.js"),
            "if (!process.env.DATABASE_URL) process.exit(3); console.log('schema valid');",
        )
        .unwrap();
        std::fs::write(
            scripts.path().join("test-api-surfaces.js"),
            "console.error('tRPC summary.list: 500'); process.exit(1);",
        )
        .unwrap();
        let ran = run();
        assert_status(&ran[0], Status::Pass);
        assert_status(&ran[1], Status::Fail);
    } else {
        assert!(
            missing[0].message.contains("Node.js is not installed"),
            "{}",
            missing[0].message
        );
    }
}

#[test]
fn a_prisma_step_without_the_prisma_cli_says_so_in_one_line() {
    let url = fresh_database();
    let app = tempfile::tempdir().unwrap();
    cutover::demo::write_app(app.path()).unwrap();
    let dir = app.path().display().to_string();
    let status = with_variables(&url, &["verify.prisma_status"], &[("app_dir", &dir)], true);
    assert_status(&status[0], Status::Fail);
    let message = &status[0].message;
    assert!(
        message.contains("no Prisma CLI in") || message.contains("Node.js is not installed"),
        "{message}"
    );
    assert!(
        !message.contains("npm ERR") && !message.contains("npm error"),
        "{message}"
    );
}

#[test]
fn rollback_marks_a_failed_migration_rolled_back_as_prisma_does_without_node() {
    use cutover::engine::{self, Command, EngineConfig, Event};
    let url = fresh_database();
    let database = url.rsplit('/').next().unwrap().to_string();
    psql(
        &url,
        "INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, logs)
         VALUES ('f', 'x', '20261201000000_broken', now(), 'it failed')",
    );
    let outcome = block_on(async {
        let target = cutover::target::Target::from_url(&url).unwrap();
        let db = cutover::db::Db::connect_lazy(&target, cutover::db::DbSettings::default());
        let runbook = bundled();
        let overrides = [(
            "rollback_migration".to_string(),
            "20261201000000_broken".to_string(),
        )]
        .into();
        let config = EngineConfig {
            allow_shell: true,
            variables: engine::resolve_variables(&runbook, &overrides),
            ..EngineConfig::default()
        };
        let mut handle = engine::spawn(runbook, db, config);
        // The decision and the stopped app are a person's ticks.
        for id in ["rollback.decided", "rollback.stop_app"] {
            handle
                .commands
                .send(Command::NoteStatus {
                    id: id.into(),
                    status: Status::Pass,
                })
                .await
                .unwrap();
        }
        handle
            .commands
            .send(Command::RunSteps {
                ids: vec!["rollback.mark_rolled_back".into()],
                confirmed_database: Some(database),
            })
            .await
            .unwrap();
        let mut outcome = None;
        while let Some(event) = handle.events.recv().await {
            match event {
                Event::StepFinished { outcome: o, .. } => outcome = Some(o),
                Event::BatchFinished => break,
                _ => {}
            }
        }
        handle.shutdown().await;
        outcome.expect("the step finished")
    });
    assert_eq!(outcome.status, Status::Pass, "{outcome:?}");
    assert_eq!(
        psql(
            &url,
            "SELECT (rolled_back_at IS NOT NULL)::text || ' ' || (finished_at IS NULL)::text
               FROM _prisma_migrations WHERE migration_name = '20261201000000_broken'"
        ),
        "true true",
        "only rolled_back_at is set, as `prisma migrate resolve --rolled-back` sets it"
    );
}
