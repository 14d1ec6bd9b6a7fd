//! Data-integrity probes (orphans, unique keys, row counts, query latency): each passes on the
//! sample database and fails once the test breaks its own copy of it.

mod common;

use common::*;
use cutover::outcome::Status;

fn has_detail(step: &cutover::check::StepReport, text: &str) -> bool {
    step.details.iter().any(|d| d.contains(text))
}

// ── validation.orphans ──────────────────────────────────────────────────────────────────────

#[test]
fn orphans_pass_on_the_sample_database() {
    let url = fresh_database();
    let step = block_on(bundled_step(&url, "validation.orphans"));
    assert_status(&step, Status::Pass);
    assert!(
        step.message
            .contains("8 foreign key(s) of public (0 NOT VALID)"),
        "{}",
        step.message
    );
}

#[test]
fn orphans_fail_on_rows_behind_a_not_valid_foreign_key() {
    let url = fresh_database();
    psql(
        &url,
        r#"ALTER TABLE "UsageEvent" DROP CONSTRAINT "UsageEvent_userId_fkey";
           INSERT INTO "UsageEvent" (id, "userId", type, "createdAt")
           SELECT 'orphan-' || i, 'no-such-user', 'summary.view', now() FROM generate_series(1, 3) i;
           ALTER TABLE "UsageEvent" ADD CONSTRAINT "UsageEvent_userId_fkey"
                 FOREIGN KEY ("userId") REFERENCES "User"(id) NOT VALID"#,
    );
    let step = block_on(bundled_step(&url, "validation.orphans"));
    assert_status(&step, Status::Fail);
    assert!(
        has_detail(
            &step,
            r#"3 orphaned row(s): "UsageEvent"(userId) -> "User" [UsageEvent_userId_fkey, NOT VALID]"#
        ),
        "{:#?}",
        step.details
    );
}

#[test]
fn orphans_are_found_behind_a_validated_key_bypassed_by_replication_role_and_capped() {
    let url = fresh_database();
    psql(
        &url,
        r#"SET session_replication_role = replica;
           INSERT INTO "ShareLink" (id, slug, "summaryId", "createdAt")
           SELECT 'orphan-' || i, 'orphan-' || i, 'no-such-summary', now() FROM generate_series(1, 5) i"#,
    );
    let runbook = probe_runbook("orphans", "{ cap = 3 }");
    let step = block_on(step_of(runbook, &url, "s.p", Default::default()));
    assert_status(&step, Status::Fail);
    assert!(
        has_detail(
            &step,
            "at least 3 orphaned row(s): \"ShareLink\"(summaryId)"
        ),
        "{:#?}",
        step.details
    );
}

#[test]
fn orphans_exempt_null_keys_under_match_simple() {
    let url = fresh_database();
    psql(
        &url,
        r#"UPDATE "Summary" SET "categoryId" = NULL WHERE id IN (SELECT id FROM "Summary" LIMIT 10)"#,
    );
    let step = block_on(bundled_step(&url, "validation.orphans"));
    assert_status(&step, Status::Pass);
}

#[test]
fn orphans_report_a_key_they_could_not_count_while_its_table_is_locked() {
    let url = fresh_database();
    let _lock = hold_table_lock(&url);
    let step = block_on(bundled_step(&url, "validation.orphans"));
    assert_status(&step, Status::Warn);
    assert!(
        has_detail(&step, "not checked: \"_SummaryToTag\"(B) -> \"Tag\""),
        "{:#?}",
        step.details
    );
}

// ── validation.unique ───────────────────────────────────────────────────────────────────────

#[test]
fn unique_passes_when_every_key_is_enforced() {
    let url = fresh_database();
    let step = block_on(bundled_step(&url, "validation.unique"));
    assert_status(&step, Status::Pass);
}

#[test]
fn unique_fails_on_duplicates_under_a_missing_unique_index() {
    let url = fresh_database();
    psql(
        &url,
        r#"DROP INDEX "User_email_key";
           UPDATE "User" SET email = 'user0001@example.com' WHERE email IN ('user0002@example.com', 'user0003@example.com')"#,
    );
    let step = block_on(bundled_step(&url, "validation.unique"));
    assert_status(&step, Status::Fail);
    assert!(
        has_detail(
            &step,
            "UNIQUE User(email): no unique index or constraint has these columns; 1 value(s) already duplicated (up to 3 copies, e.g. (user0001@example.com)): creating it would fail"
        ),
        "{:#?}",
        step.details
    );
}

#[test]
fn unique_fails_on_a_missing_key_and_shows_how_to_create_it_when_the_data_allows() {
    let url = fresh_database();
    psql(
        &url,
        r#"ALTER TABLE "ShareLink" DROP CONSTRAINT IF EXISTS "ShareLink_slug_key"; DROP INDEX IF EXISTS "ShareLink_slug_key""#,
    );
    let step = block_on(bundled_step(&url, "validation.unique"));
    assert_status(&step, Status::Fail);
    assert!(
        has_detail(
            &step,
            r#"no duplicates yet: create it with CREATE UNIQUE INDEX CONCURRENTLY ON "public"."ShareLink" ("slug")"#
        ),
        "{:#?}",
        step.details
    );
}

#[test]
fn unique_fails_on_an_invalid_unique_index_left_by_a_failed_concurrent_build() {
    let url = fresh_database();
    psql(
        &url,
        r#"DROP INDEX "Tag_name_key";
           UPDATE "Tag" SET name = 'rust' WHERE name = 'python'"#,
    );
    // Fails on the duplicate and leaves the index behind, INVALID.
    let database = url.rsplit('/').next().unwrap();
    let failed = shared().psql(
        database,
        r#"CREATE UNIQUE INDEX CONCURRENTLY "Tag_name_key" ON "Tag" (name)"#,
    );
    assert!(failed.is_err(), "the build must fail on the duplicate");
    let step = block_on(bundled_step(&url, "validation.unique"));
    assert_status(&step, Status::Fail);
    assert!(
        has_detail(
            &step,
            "UNIQUE Tag(name): exists as `Tag_name_key` but is INVALID, so it enforces nothing; 1 value(s) already duplicated"
        ),
        "{:#?}",
        step.details
    );
}

#[test]
fn unique_notes_a_key_enforced_under_another_name() {
    let url = fresh_database();
    psql(&url, r#"ALTER INDEX "Tag_name_key" RENAME TO tag_name_uq"#);
    let step = block_on(bundled_step(&url, "validation.unique"));
    assert_status(&step, Status::Pass);
    assert!(
        has_detail(&step, "note: UNIQUE Tag(name) is enforced by `tag_name_uq`"),
        "{:#?}",
        step.details
    );
}
