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
fn tables_summary_tags_fails_without_the_relation_index() {
    let url = fresh_database();
    assert_status(&step(&url, "tables.summary_tags"), Status::Pass);
    psql(&url, r#"DROP INDEX "_SummaryToTag_B_index""#);
    let tags = step(&url, "tables.summary_tags");
    assert_status(&tags, Status::Fail);
    assert!(
        tags.message.contains("missing: _SummaryToTag(B)"),
        "{}",
        tags.message
    );
}

#[test]
fn tables_foreign_keys_fails_when_a_relation_has_another_delete_rule() {
    let url = fresh_database();
    assert_status(&step(&url, "tables.foreign_keys"), Status::Pass);
    psql(
        &url,
        r#"ALTER TABLE "Summary" DROP CONSTRAINT "Summary_categoryId_fkey";
           ALTER TABLE "Summary" ADD CONSTRAINT "Summary_categoryId_fkey"
                 FOREIGN KEY ("categoryId") REFERENCES "Category"(id) ON DELETE CASCADE"#,
    );
    let keys = step(&url, "tables.foreign_keys");
    assert_status(&keys, Status::Fail);
    assert!(
        keys.message.contains("column=categoryId") && keys.message.contains("SET NULL"),
        "{}",
        keys.message
    );
}

#[test]
fn performance_progress_index_warns_when_missing() {
    let url = fresh_database();
    assert_status(&step(&url, "performance.progress_index"), Status::Pass);
    psql(&url, r#"DROP INDEX "Progress_userId_idx""#);
    assert_status(&step(&url, "performance.progress_index"), Status::Warn);
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
        r#"UPDATE "User" SET email = 'USER0001@example.com' WHERE email = 'user0002@example.com'"#,
    );
    let emails = step(&url, "validation.email_case");
    assert_status(&emails, Status::Warn);
    assert!(
        emails.message.contains("user0001@example.com"),
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

    let report = run(&["baseline.schema_snapshot", "validation.schema_diff"]);
    assert_status(&report.steps[0], Status::Pass);
    assert_status(&report.steps[1], Status::Pass);
    assert!(
        report.steps[1]
            .details
            .iter()
            .any(|d| d.contains("no schema change since")),
        "{:#?}",
        report.steps[1].details
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
