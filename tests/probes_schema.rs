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

#[test]
fn names_that_need_quoting_reach_the_catalog_as_they_are() {
    let url = fresh_database();
    psql(
        &url,
        r#"CREATE SCHEMA "odd's \schema";
           CREATE TABLE "odd's \schema"."Tab'le\x" ("co""l" int NOT NULL, "E'x" text);
           CREATE UNIQUE INDEX ON "odd's \schema"."Tab'le\x" ("co""l", "E'x")"#,
    );
    let runbook = |table: &str| {
        probe_runbook(
            "tables",
            &format!(
                r#"{{ schema = "odd's \\schema", tables = [{{ name = "{}", columns = [{{ name = 'co"l', type = 'int4' }}], indexes = [{{ columns = ['co"l', "E'x"], unique = true }}] }}] }}"#,
                table.replace('\\', "\\\\")
            ),
        )
    };
    let step = block_on(step_of(
        runbook(r"Tab'le\x"),
        &url,
        "s.p",
        Default::default(),
    ));
    assert_status(&step, Status::Pass);
    let step = block_on(step_of(
        runbook(r"Tab'le\y"),
        &url,
        "s.p",
        Default::default(),
    ));
    assert_status(&step, Status::Fail);
    assert!(
        step.message
            .contains(r"missing table: odd's \schema.Tab'le\y"),
        "{}",
        step.message
    );
}

#[test]
fn a_catalog_read_is_read_only_bounded_and_leaves_its_connection_clean() {
    use cutover::db::{Db, DbError, DbSettings};
    let url = fresh_database();
    let target = cutover::target::Target::from_url(&url).expect("url");
    let settings = DbSettings {
        max_connections: 1,
        ..DbSettings::default()
    };
    block_on(async {
        let db = Db::connect_lazy(&target, settings);
        let refused = db
            .read_batch(&["CREATE TABLE written_by_a_check ()".to_string()])
            .await
            .expect_err("a catalog read cannot write");
        assert!(refused.to_string().contains("read-only"), "{refused}");
        let cut = db
            .read_batch_with(
                std::time::Duration::from_millis(50),
                &["SELECT pg_sleep(5)".to_string()],
            )
            .await
            .expect_err("the statement timeout bounds it");
        assert!(matches!(cut, DbError::Timeout(_)), "{cut:?}");
        // The one connection of the pool is back, out of any transaction.
        let mut answers = db
            .read_batch(&[
                "SELECT 1::int8, 'a'::text".to_string(),
                "SELECT x::int8 FROM generate_series(1, 3) x".to_string(),
                "SELECT current_setting('transaction_read_only') || ' ' || current_setting('statement_timeout')".to_string(),
            ])
            .await
            .expect("reads again");
        assert_eq!(
            answers.one::<(i64, String)>(0).unwrap(),
            (1, "a".to_string())
        );
        assert_eq!(answers.column::<i64>(1).unwrap(), vec![1, 2, 3]);
        // Read-only again, with its own timeout: nothing was left over by the reads that failed.
        assert_eq!(
            answers.column::<String>(2).unwrap(),
            vec!["on 30s".to_string()]
        );
    });
    assert_eq!(
        psql(
            &url,
            "SELECT count(*) FROM pg_class WHERE relname = 'written_by_a_check'"
        )
        .trim(),
        "0"
    );
}
