//! Schema and validation probes: each passes on the sample database and fails once the test
//! breaks its own copy of it.

mod common;

use common::*;
use cutover::outcome::Status;

#[test]
fn tables_required_passes_on_the_sample_database() {
    let url = fresh_database();
    let step = block_on(bundled_step(&url, "tables.required"));
    assert_status(&step, Status::Pass);
}

#[test]
fn tables_required_fails_when_a_table_is_missing() {
    let url = fresh_database();
    psql(&url, r#"DROP TABLE "ShareLink""#);
    let step = block_on(bundled_step(&url, "tables.required"));
    assert_status(&step, Status::Fail);
    assert!(
        step.details
            .iter()
            .any(|d| d.contains("missing table: public.ShareLink")),
        "{:#?}",
        step.details
    );
}

#[test]
fn tables_required_fails_when_a_critical_column_is_missing_or_retyped() {
    let url = fresh_database();
    psql(
        &url,
        r#"ALTER TABLE "UsageEvent" DROP COLUMN "eventType" CASCADE;
           ALTER TABLE "Summary" ALTER COLUMN "glossary" TYPE text"#,
    );
    let step = block_on(bundled_step(&url, "tables.required"));
    assert_status(&step, Status::Fail);
    let details = step.details.join("\n");
    assert!(
        details.contains("missing column: UsageEvent.eventType"),
        "{details}"
    );
    assert!(
        details.contains("wrong type: Summary.glossary is text, expected jsonb"),
        "{details}"
    );
}

#[test]
fn tables_required_fails_when_a_unique_index_loses_uniqueness() {
    let url = fresh_database();
    psql(
        &url,
        r#"DROP INDEX "User_email_key"; CREATE INDEX "User_email_key" ON "User" ("email")"#,
    );
    let step = block_on(bundled_step(&url, "tables.required"));
    assert_status(&step, Status::Fail);
    assert!(
        step.details
            .iter()
            .any(|d| d.starts_with("not unique: UNIQUE User(email)")),
        "{:#?}",
        step.details
    );
}

#[test]
fn tables_required_matches_indexes_by_definition_not_by_name() {
    let url = fresh_database();
    psql(
        &url,
        r#"ALTER INDEX "User_email_key" RENAME TO "users_email_uq""#,
    );
    let step = block_on(bundled_step(&url, "tables.required"));
    assert_status(&step, Status::Pass);
    assert!(
        step.details
            .iter()
            .any(|d| d.contains("present as `users_email_uq`")),
        "{:#?}",
        step.details
    );
}

#[test]
fn tables_progress_passes_when_present_and_warns_when_missing() {
    let url = fresh_database();
    let step = block_on(bundled_step(&url, "tables.progress"));
    assert_status(&step, Status::Pass);
    psql(&url, r#"DROP TABLE "Progress""#);
    let step = block_on(bundled_step(&url, "tables.progress"));
    assert_status(&step, Status::Warn);
    assert!(step.message.contains("Progress"), "{}", step.message);
}

#[test]
fn performance_indexes_pass_on_the_sample_database() {
    let url = fresh_database();
    let step = block_on(bundled_step(&url, "performance.indexes"));
    assert_status(&step, Status::Pass);
}

#[test]
fn performance_indexes_fail_when_one_is_missing() {
    let url = fresh_database();
    psql(&url, r#"DROP INDEX "Summary_videoId_idx""#);
    let step = block_on(bundled_step(&url, "performance.indexes"));
    assert_status(&step, Status::Fail);
    assert!(
        step.details
            .iter()
            .any(|d| d.starts_with("missing: Summary(videoId)")),
        "{:#?}",
        step.details
    );
}

#[test]
fn performance_invalid_passes_without_invalid_indexes() {
    let url = fresh_database();
    let step = block_on(bundled_step(&url, "performance.invalid"));
    assert_status(&step, Status::Pass);
}

#[test]
fn performance_invalid_fails_on_an_index_left_invalid_by_a_failed_concurrent_build() {
    let url = fresh_database();
    // Every name maps to the same empty prefix: the unique build fails and leaves the index
    // behind, INVALID.
    let database = url.rsplit('/').next().unwrap();
    let failed = shared().psql(
        database,
        r#"CREATE UNIQUE INDEX CONCURRENTLY "Tag_name_prefix_idx" ON "Tag" (left(name, 0))"#,
    );
    assert!(failed.is_err(), "the unique build must fail");
    let step = block_on(bundled_step(&url, "performance.invalid"));
    assert_status(&step, Status::Fail);
    assert!(
        step.details
            .iter()
            .any(|d| d.contains("Tag_name_prefix_idx") && d.contains("REINDEX")),
        "{:#?}",
        step.details
    );
}

#[test]
fn performance_invalid_reports_building_not_invalid_during_create_index_concurrently() {
    let url = fresh_database();
    let _build = hold_create_index_concurrently(&url);
    let step = block_on(bundled_step(&url, "performance.invalid"));
    assert_status(&step, Status::Warn);
    assert!(
        step.message.contains("still being built"),
        "{}",
        step.message
    );
    assert!(
        step.details
            .iter()
            .any(|d| d.starts_with("building:") && d.contains("Tag_createdAt_idx")),
        "{:#?}",
        step.details
    );
}

#[test]
fn fk_valid_passes_when_every_foreign_key_is_validated() {
    let url = fresh_database();
    let step = block_on(bundled_step(&url, "validation.fk_valid"));
    assert_status(&step, Status::Pass);
}

#[test]
fn fk_valid_fails_on_a_not_valid_foreign_key_and_says_how_to_validate_it() {
    let url = fresh_database();
    psql(
        &url,
        r#"ALTER TABLE "ShareLink" DROP CONSTRAINT "ShareLink_userId_fkey";
           ALTER TABLE "ShareLink" ADD CONSTRAINT "ShareLink_userId_fkey"
                 FOREIGN KEY ("userId") REFERENCES "User"(id) NOT VALID"#,
    );
    let step = block_on(bundled_step(&url, "validation.fk_valid"));
    assert_status(&step, Status::Fail);
    assert!(
        step.details.iter().any(|d| d.starts_with(
            r#"ALTER TABLE "ShareLink" VALIDATE CONSTRAINT "ShareLink_userId_fkey";"#
        )),
        "{:#?}",
        step.details
    );
}

#[test]
fn blocking_passes_when_no_session_waits() {
    let url = fresh_database();
    let step = block_on(bundled_step(&url, "validation.blocking"));
    assert_status(&step, Status::Pass);
}

#[test]
fn blocking_fails_while_a_session_waits_on_another_ones_lock() {
    let url = fresh_database();
    let _holder = hold_table_lock(&url);
    let _waiter = background_psql(&url, r#"SELECT count(*) FROM "Tag""#);
    wait_until("the second session waits", 30, || {
        psql(
            &url,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND cardinality(pg_blocking_pids(pid)) > 0",
        ) == "1"
    });
    let step = block_on(bundled_step(&url, "validation.blocking"));
    assert_status(&step, Status::Fail);
    assert!(
        step.message.contains("1 session(s) blocked"),
        "{}",
        step.message
    );
}

#[test]
fn sequences_pass_with_headroom() {
    let url = fresh_database();
    psql(
        &url,
        "CREATE SEQUENCE fresh_seq AS integer; SELECT nextval('fresh_seq')",
    );
    let step = block_on(bundled_step(&url, "validation.sequences"));
    assert_status(&step, Status::Pass);
}

#[test]
fn sequences_fail_when_one_is_near_its_types_maximum() {
    let url = fresh_database();
    psql(
        &url,
        "CREATE SEQUENCE nearly_full AS integer; SELECT setval('nearly_full', 2000000000)",
    );
    let step = block_on(bundled_step(&url, "validation.sequences"));
    assert_status(&step, Status::Fail);
    assert!(
        step.details
            .iter()
            .any(|d| d.starts_with("public.nearly_full (integer)") && d.contains("AS bigint")),
        "{:#?}",
        step.details
    );
}

#[test]
fn wraparound_passes_on_a_young_database() {
    let url = fresh_database();
    let step = block_on(bundled_step(&url, "validation.wraparound"));
    assert_status(&step, Status::Pass);
    assert!(
        step.message.contains("transaction-ID age"),
        "{}",
        step.message
    );
}

#[test]
fn wraparound_fails_past_its_limit_and_warns_before_it() {
    // A database billions of transactions old cannot be made in a test; the bounds can.
    let url = fresh_database();
    let failing = probe_runbook("wraparound", "{ warn_age = 1, fail_age = 2 }");
    let step = block_on(step_of(failing, &url, "s.p", Default::default()));
    assert_status(&step, Status::Fail);
    let warning = probe_runbook("wraparound", "{ warn_age = 1, fail_age = 2000000000 }");
    let step = block_on(step_of(warning, &url, "s.p", Default::default()));
    assert_status(&step, Status::Warn);
}
