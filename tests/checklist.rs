//! The bundled runbook against a database built from the source checklist alone
//! (`tests/fixtures/checklist_schema.sql`, not the demo's migrations): every automated step of
//! `tables`, `performance` and `validation` passes on it (or warns, when optional), and the
//! checks fail once a critical column, a critical index or a unique key is removed.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use cutover::check::{CheckOptions, StepReport};
use cutover::outcome::Status;

const CHECKLIST_SCHEMA: &str = include_str!("fixtures/checklist_schema.sql");

/// A fresh database on the shared cluster built from the checklist's tables; returns its URL.
fn checklist_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "checklist{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let cluster = shared();
    cluster.create_database(&name).expect("create database");
    cluster.psql(&name, CHECKLIST_SCHEMA).expect("load schema");
    cluster.url(&name)
}

fn step(url: &str, id: &str) -> StepReport {
    block_on(bundled_step(url, id))
}

fn detail_with(step: &StepReport, text: &str) -> bool {
    step.message.contains(text) || step.details.iter().any(|d| d.contains(text))
}

#[test]
fn every_automated_step_of_tables_performance_and_validation_passes_on_the_checklists_database() {
    let url = checklist_database();
    let options = CheckOptions {
        // The row-count comparison needs its capture; both run in this one check.
        only: ["baseline.row_counts", "tables", "performance", "validation"]
            .map(String::from)
            .to_vec(),
        ..CheckOptions::default()
    };
    let report = block_on(check_with(bundled(), &url, options));
    let mut ran = 0;
    for step in &report.steps {
        match step.status {
            Status::Pass => ran += 1,
            // Shell and HTTP steps are not run headless without --allow-shell/--allow-http.
            Status::Skip => {}
            _ => panic!(
                "{} is {:?} on the checklist's database: {} — {:#?}",
                step.id, step.status, step.message, step.details
            ),
        }
    }
    assert!(ran >= 15, "{ran} steps passed: {:#?}", report.steps);
}

#[test]
fn the_checklists_critical_steps_pass_each_on_its_own() {
    let url = checklist_database();
    for id in [
        "tables.required",
        "tables.progress",
        "tables.foreign_keys",
        "performance.indexes",
        "validation.unique",
        "validation.query_latency",
    ] {
        assert_status(&step(&url, id), Status::Pass);
    }
}

#[test]
fn without_the_progress_table_the_optional_checks_warn_and_query_latency_still_passes() {
    let url = checklist_database();
    psql(&url, r#"DROP TABLE "Progress""#);
    let progress = step(&url, "tables.progress");
    assert_status(&progress, Status::Warn);
    assert!(detail_with(&progress, "Progress"), "{progress:#?}");
    let latency = step(&url, "validation.query_latency");
    assert_status(&latency, Status::Pass);
    assert!(
        detail_with(&latency, "table Progress does not exist (optional)"),
        "{latency:#?}"
    );
    assert_status(&step(&url, "tables.required"), Status::Pass);
}

#[test]
fn tables_required_fails_when_a_critical_column_is_removed() {
    let url = checklist_database();
    psql(&url, r#"ALTER TABLE "User" DROP COLUMN "summariesLimit""#);
    let required = step(&url, "tables.required");
    assert_status(&required, Status::Fail);
    assert!(
        detail_with(&required, "missing column: User.summariesLimit"),
        "{required:#?}"
    );
}

#[test]
fn tables_required_fails_when_a_json_field_is_not_jsonb() {
    let url = checklist_database();
    psql(
        &url,
        r#"ALTER TABLE "Summary" ALTER COLUMN "flashcards" TYPE text"#,
    );
    let required = step(&url, "tables.required");
    assert_status(&required, Status::Fail);
    assert!(
        detail_with(
            &required,
            "wrong type: Summary.flashcards is text, expected jsonb"
        ),
        "{required:#?}"
    );
}

#[test]
fn a_removed_performance_index_fails_tables_performance_and_query_latency() {
    let url = checklist_database();
    psql(
        &url,
        r#"DROP INDEX "UsageEvent_userId_eventType_createdAt_idx""#,
    );
    for id in [
        "tables.required",
        "performance.indexes",
        "validation.query_latency",
    ] {
        let report = step(&url, id);
        assert_status(&report, Status::Fail);
        assert!(
            detail_with(&report, "UsageEvent(userId, eventType, createdAt)"),
            "{report:#?}"
        );
    }
}

#[test]
fn a_removed_unique_key_fails_validation_unique_and_tables_required() {
    let url = checklist_database();
    psql(&url, r#"DROP INDEX "ShareLink_slug_key""#);
    let unique = step(&url, "validation.unique");
    assert_status(&unique, Status::Fail);
    assert!(detail_with(&unique, "ShareLink(slug)"), "{unique:#?}");
    let required = step(&url, "tables.required");
    assert_status(&required, Status::Fail);
    assert!(detail_with(&required, "ShareLink(slug)"), "{required:#?}");
}

#[test]
fn no_step_of_the_bundled_runbook_errs_on_the_checklists_database() {
    // A query naming a column the checklist does not have ends in `error` ("column … does not
    // exist"): every SQL step and probe runs here, against the checklist's tables plus the
    // history table Prisma Migrate keeps.
    let url = checklist_database();
    let history_only = cutover::demo::DemoContents {
        migrations: 0,
        seed: false,
        scale: cutover::demo::Scale::TEST,
    };
    block_on(cutover::demo::load(&url, history_only)).expect("history table");
    let app = tempfile::tempdir().unwrap();
    cutover::demo::write_app(app.path()).unwrap();
    let options = CheckOptions {
        variables: [
            ("app_dir".to_string(), app.path().display().to_string()),
            ("storage_limit_mb".to_string(), "100000".to_string()),
        ]
        .into(),
        ..CheckOptions::default()
    };
    let report = block_on(check_with(bundled(), &url, options));
    let errors: Vec<String> = report
        .steps
        .iter()
        .filter(|s| s.status == Status::Error)
        .map(|s| format!("{}: {}", s.id, s.message))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
