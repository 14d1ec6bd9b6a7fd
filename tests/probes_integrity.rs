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
           INSERT INTO "UsageEvent" (id, "userId", "eventType", "createdAt")
           SELECT 'orphan-' || i, 'no-such-user', 'SUMMARY_VIEWED', now() FROM generate_series(1, 3) i;
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
           INSERT INTO "ShareLink" (id, slug, "summaryId", "userId", "createdAt")
           SELECT 'orphan-' || i, 'orphan-' || i, 'no-such-summary', (SELECT min(id) FROM "User"), now()
             FROM generate_series(1, 5) i"#,
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
        r#"ALTER TABLE "UsageEvent" ALTER COLUMN "userId" DROP NOT NULL;
           UPDATE "UsageEvent" SET "userId" = NULL WHERE id IN (SELECT id FROM "UsageEvent" LIMIT 10)"#,
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

#[test]
fn orphans_spread_over_the_pool_still_find_a_key_in_the_last_batch() {
    let url = fresh_database();
    // 120 more keys: three batches of counts, shared among the pool's connections.
    let mut sql = String::new();
    for i in 0..120 {
        sql += &format!(
            "CREATE TABLE zz_child_{i:03} (id int PRIMARY KEY, user_id text REFERENCES \"User\"(id));"
        );
    }
    sql += "SET session_replication_role = replica;
            INSERT INTO zz_child_119 (id, user_id) VALUES (1, 'no-such-user'), (2, 'nor-this-one');";
    psql(&url, &sql);
    let step = block_on(bundled_step(&url, "validation.orphans"));
    assert_status(&step, Status::Fail);
    assert!(
        step.message.contains("behind 1 of 128 foreign key(s)"),
        "{}",
        step.message
    );
    assert!(
        has_detail(
            &step,
            "2 orphaned row(s): zz_child_119(user_id) -> \"User\""
        ),
        "{:#?}",
        step.details
    );
    assert_eq!(
        step.details
            .iter()
            .filter(|d| d.starts_with("ok: "))
            .count(),
        127,
        "every other key counted"
    );
}

#[test]
fn orphans_over_many_keys_let_go_of_each_batchs_locks() {
    // A small shared lock table: holding every key's locks to the end of one transaction
    // ("out of shared memory") would not fit in it; one batch's locks at a time do.
    let (cluster, url) = own_cluster(
        cutover::cluster::ClusterOptions::default()
            .setting("max_locks_per_transaction", "10")
            .setting("max_connections", "10"),
    );
    let database = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    // Made 20 at a time: the lock table is small for the test's own DDL too.
    for group in 0..50 {
        let sql: String = (group * 20..group * 20 + 20)
            .map(|i| {
                format!(
                    "CREATE TABLE zz_child_{i:03} (id int PRIMARY KEY, user_id text REFERENCES \"User\"(id));"
                )
            })
            .collect();
        cluster.psql(database, &sql).unwrap();
    }
    let step = block_on(bundled_step(&url, "validation.orphans"));
    assert_status(&step, Status::Pass);
    assert!(
        step.message.contains("of 1008 foreign key(s)"),
        "{}",
        step.message
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
           UPDATE "User" SET email = 'user00001@example.com' WHERE email IN ('user00002@example.com', 'user00003@example.com')"#,
    );
    let step = block_on(bundled_step(&url, "validation.unique"));
    assert_status(&step, Status::Fail);
    assert!(
        has_detail(
            &step,
            "UNIQUE User(email): no unique index or constraint has these columns; 1 value(s) already duplicated (up to 3 copies, e.g. (user00001@example.com)): creating it would fail"
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

// ── baseline.row_counts / validation.row_counts ─────────────────────────────────────────────

/// Runs one bundled step through `check` with a journal in `home`, as two separate
/// `cutover check --only ...` invocations would (before and after the migration).
fn journaled_step(home: &std::path::Path, url: &str, id: &str) -> cutover::check::StepReport {
    journaled_step_of(bundled(), home, url, id)
}

/// The same for a step of `runbook`.
fn journaled_step_of(
    runbook: std::sync::Arc<cutover::runbook::Runbook>,
    home: &std::path::Path,
    url: &str,
    id: &str,
) -> cutover::check::StepReport {
    block_on(async {
        let journal = cutover::journal::Journal::open(home, true)
            .await
            .expect("journal opens");
        let options = cutover::check::CheckOptions {
            only: vec![id.to_string()],
            journal: Some(journal),
            ..Default::default()
        };
        let report = check_with(runbook, url, options).await;
        report.steps.into_iter().next().expect("one step")
    })
}

#[test]
fn row_counts_match_when_nothing_changed_between_capture_and_compare() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let capture = journaled_step(home.path(), &url, "baseline.row_counts");
    assert_status(&capture, Status::Pass);
    assert!(
        capture.message.contains("captured 9 table(s) of public")
            && capture.message.contains("9 exact"),
        "{}",
        capture.message
    );
    assert!(has_detail(&capture, "Summary"), "{:#?}", capture.details);
    // The deploy records its migrations: Prisma's own history is not app data.
    psql(
        &url,
        "INSERT INTO _prisma_migrations (id, checksum, migration_name, finished_at, applied_steps_count)
         VALUES ('n1', 'x', '20260301000000_next', now(), 1)",
    );
    let compare = journaled_step(home.path(), &url, "validation.row_counts");
    assert_status(&compare, Status::Pass);
    assert!(
        compare.message.contains("against the baseline from run "),
        "{}",
        compare.message
    );
}

/// A capture, a destructive step (or none) that adds rows, and a compare, in one run.
fn counted_in_one_run(url: &str, with_a_change: bool) -> cutover::check::StepReport {
    let change = if with_a_change {
        r#"
[[sections.steps]]
id = "change"
title = "Adds tags"
kind = "shell"
destructive = true
depends_on = ["capture"]
command = '''psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SET default_transaction_read_only = off; INSERT INTO \"Tag\" (id, name, type) SELECT 'new' || i, 'new' || i, 'TOPIC' FROM generate_series(1, 4) i"'''
"#
    } else {
        ""
    };
    let compare_after = if with_a_change { "change" } else { "capture" };
    let runbook = runbook_from(&format!(
        r#"name = "counts"
[[sections]]
id = "s"
title = "S"

[[sections.steps]]
id = "capture"
title = "Capture"
kind = "probe"
probe = "row_counts"
params = {{ mode = "capture" }}
{change}
[[sections.steps]]
id = "compare"
title = "Compare"
kind = "probe"
probe = "row_counts"
depends_on = ["{compare_after}"]
params = {{ mode = "compare", baseline = "s.capture" }}
"#
    ));
    let database = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let options = cutover::check::CheckOptions {
        allow_shell: true,
        confirm: Some(database.to_string()),
        ..Default::default()
    };
    let report = block_on(check_with(runbook, url, options));
    report
        .steps
        .into_iter()
        .find(|step| step.id == "s.compare")
        .expect("the compare step")
}

#[test]
fn row_counts_count_once_in_a_run_until_a_destructive_step_has_run() {
    let url = fresh_database();
    let unchanged = counted_in_one_run(&url, false);
    assert_status(&unchanged, Status::Pass);
    assert!(
        unchanged.message.contains("counted once in this run"),
        "{}",
        unchanged.message
    );
    let changed = counted_in_one_run(&url, true);
    assert_status(&changed, Status::Fail);
    assert!(
        !changed.message.contains("counted once") && has_detail(&changed, "Tag"),
        "{}: {:#?}",
        changed.message,
        changed.details
    );
}

#[test]
fn row_counts_fail_when_rows_were_lost_and_show_before_after_and_difference() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    assert_status(
        &journaled_step(home.path(), &url, "baseline.row_counts"),
        Status::Pass,
    );
    psql(
        &url,
        r#"DELETE FROM "ShareLink" WHERE id IN (SELECT id FROM "ShareLink" ORDER BY id LIMIT 7)"#,
    );
    let compare = journaled_step(home.path(), &url, "validation.row_counts");
    assert_status(&compare, Status::Fail);
    assert!(
        compare.message.contains("1 of 9 table(s)"),
        "{}",
        compare.message
    );
    let line = compare.details.first().expect("a detail line");
    assert!(
        line.starts_with("ShareLink")
            && line.contains("before        2,000")
            && line.contains("after        1,993")
            && line.contains("diff         -7")
            && line.contains("CHANGED"),
        "{line}"
    );
}

#[test]
fn row_counts_tolerate_live_tables_within_their_margin_only() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    assert_status(
        &journaled_step(home.path(), &url, "baseline.row_counts"),
        Status::Pass,
    );
    // The app keeps logging usage: 1% more events is traffic, not a migration problem.
    psql(
        &url,
        r#"INSERT INTO "UsageEvent" (id, "userId", "eventType", "createdAt")
           SELECT 'live-' || i, (SELECT id FROM "User" LIMIT 1), 'SUMMARY_VIEWED', now()
             FROM generate_series(1, 500) i"#,
    );
    let compare = journaled_step(home.path(), &url, "validation.row_counts");
    assert_status(&compare, Status::Pass);
    assert!(
        has_detail(&compare, "live table, within 5%"),
        "{:#?}",
        compare.details
    );
    // 20% fewer is not traffic.
    psql(
        &url,
        r#"DELETE FROM "UsageEvent" WHERE id IN (SELECT id FROM "UsageEvent" ORDER BY id LIMIT 10000)"#,
    );
    let compare = journaled_step(home.path(), &url, "validation.row_counts");
    assert_status(&compare, Status::Fail);
    assert!(
        compare.details[0].starts_with("UsageEvent"),
        "{:#?}",
        compare.details
    );
}

#[test]
fn row_counts_estimate_large_tables_and_compare_them_with_a_tolerance() {
    let url = fresh_database();
    psql(&url, "ANALYZE");
    let runbook = runbook_from(
        r#"name = "estimates"
[[sections]]
id = "b"
title = "B"
[[sections.steps]]
id = "capture"
title = "Capture"
kind = "probe"
probe = "row_counts"
params = { mode = "capture", exact_max_mb = 0.1 }
[[sections]]
id = "v"
title = "V"
[[sections.steps]]
id = "compare"
title = "Compare"
kind = "probe"
probe = "row_counts"
params = { mode = "compare", baseline = "b.capture", exact_max_mb = 0.1, estimate_tolerance_pct = 10 }
"#,
    );
    let run = |id: &str, home: &std::path::Path| journaled_step_of(runbook.clone(), home, &url, id);
    let home = tempfile::tempdir().unwrap();
    let capture = run("b.capture", home.path());
    assert_status(&capture, Status::Pass);
    assert!(
        has_detail(&capture, "(estimated)"),
        "{:#?}",
        capture.details
    );
    psql(
        &url,
        r#"DELETE FROM "UsageEvent" WHERE id IN (SELECT id FROM "UsageEvent" ORDER BY id LIMIT 25000); ANALYZE "UsageEvent""#,
    );
    let compare = run("v.compare", home.path());
    assert_status(&compare, Status::Fail);
    assert!(
        compare.details[0].starts_with("UsageEvent")
            && compare.details[0].contains("estimated, within 10%"),
        "{:#?}",
        compare.details
    );
}

#[test]
fn row_counts_err_without_a_baseline() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let compare = journaled_step(home.path(), &url, "validation.row_counts");
    assert_status(&compare, Status::Error);
    assert!(
        compare
            .message
            .contains("not run: it depends on baseline.row_counts, which has not run"),
        "{}",
        compare.message
    );
}

// ── validation.query_latency ────────────────────────────────────────────────────────────────

#[test]
fn query_latency_passes_when_critical_queries_are_fast_and_on_their_indexes() {
    let url = fresh_database();
    psql(&url, "ANALYZE");
    let step = block_on(bundled_step(&url, "validation.query_latency"));
    assert_status(&step, Status::Pass);
    assert!(
        has_detail(&step, "✓ a share link by its slug:")
            && has_detail(
                &step,
                "Index Scan using ShareLink_slug_key on ShareLink (rows 1"
            ),
        "{:#?}",
        step.details
    );
}

#[test]
fn query_latency_fails_when_a_query_falls_back_to_a_sequential_scan() {
    let url = fresh_database();
    psql(&url, r#"DROP INDEX "Summary_videoId_idx"; ANALYZE"#);
    let runbook = probe_runbook(
        "query_latency",
        r#"{ queries = [{ name = "summaries of a video", sql = 'SELECT id FROM "Summary" WHERE "videoId" = $1', params_from = 'SELECT "videoId" FROM "Summary" LIMIT 1', index = { table = "Summary", columns = ["videoId"] } }] }"#,
    );
    let step = block_on(step_of(runbook, &url, "s.p", Default::default()));
    assert_status(&step, Status::Fail);
    assert!(
        step.message
            .contains("its index Summary(videoId) is not usable"),
        "{}",
        step.message
    );

    // Without an expected index, the scan itself is the finding.
    let runbook = probe_runbook(
        "query_latency",
        r#"{ queries = [{ name = "summaries of a video", sql = 'SELECT id FROM "Summary" WHERE "videoId" = $1', params_from = 'SELECT "videoId" FROM "Summary" LIMIT 1' }] }"#,
    );
    let step = block_on(step_of(runbook, &url, "s.p", Default::default()));
    assert_status(&step, Status::Fail);
    assert!(
        step.message
            .contains("sequential scan of Summary (~20000 rows)")
            || step
                .message
                .contains("walks all of index Summary_userId_videoId_key on Summary"),
        "{}",
        step.message
    );
}

#[test]
fn query_latency_fails_over_its_threshold() {
    let url = fresh_database();
    // The bound is the runbook's [thresholds] query_latency_ms ...
    let runbook = runbook_from(
        r#"name = "latency"
[thresholds]
query_latency_ms = 0.0001
[[sections]]
id = "s"
title = "S"
[[sections.steps]]
id = "p"
title = "P"
kind = "probe"
probe = "query_latency"
params = { queries = [{ name = "all tags", sql = 'SELECT count(*) FROM "Tag" WHERE name <> $1', params = ["x"] }] }
"#,
    );
    let step = block_on(step_of(runbook, &url, "s.p", Default::default()));
    assert_status(&step, Status::Fail);
    assert!(step.message.contains("over 0.0001 ms"), "{}", step.message);

    // ... unless the probe or the query sets its own.
    let runbook = probe_runbook(
        "query_latency",
        r#"{ max_ms = 10000, queries = [{ name = "all tags", sql = 'SELECT count(*) FROM "Tag" WHERE name <> $1', params = ["x"], max_ms = 0.0002 }] }"#,
    );
    let step = block_on(step_of(runbook, &url, "s.p", Default::default()));
    assert_status(&step, Status::Fail);
    assert!(step.message.contains("over 0.0002 ms"), "{}", step.message);
}

#[test]
fn query_latency_never_writes_even_when_a_runbook_asks_it_to() {
    let url = fresh_database();
    let runbook = probe_runbook(
        "query_latency",
        r#"{ queries = [{ name = "a write", sql = 'DELETE FROM "Tag" WHERE name <> $1', params = ["x"] }] }"#,
    );
    let step = block_on(step_of(runbook, &url, "s.p", Default::default()));
    assert_status(&step, Status::Error);
    assert!(
        step.message.contains("read-only transaction"),
        "{}",
        step.message
    );
    assert_eq!(psql(&url, r#"SELECT count(*) FROM "Tag""#), "40");

    // Nor can a second statement end the read-only transaction and write after it.
    let runbook = probe_runbook(
        "query_latency",
        r#"{ queries = [{ name = "smuggled", sql = 'SELECT $1; COMMIT; DELETE FROM "Tag"', params = ["x"] }] }"#,
    );
    let step = block_on(step_of(runbook, &url, "s.p", Default::default()));
    assert_status(&step, Status::Error);
    assert!(
        step.message.contains("multiple commands"),
        "{}",
        step.message
    );
    assert_eq!(psql(&url, r#"SELECT count(*) FROM "Tag""#), "40");
}

#[test]
fn query_latency_notes_a_query_without_rows_to_take_parameters_from() {
    let url = fresh_database();
    let runbook = probe_runbook(
        "query_latency",
        r#"{ queries = [{ name = "nobody", sql = 'SELECT 1 FROM "User" WHERE id = $1', params_from = 'SELECT id FROM "User" WHERE false' }] }"#,
    );
    let step = block_on(step_of(runbook, &url, "s.p", Default::default()));
    assert_status(&step, Status::Pass);
    assert!(
        has_detail(&step, "- nobody: not measured"),
        "{:#?}",
        step.details
    );
}

#[test]
fn row_counts_compare_with_a_capture_made_earlier_in_the_same_run() {
    let url = fresh_database();
    let options = cutover::check::CheckOptions {
        only: vec!["baseline.row_counts".into(), "validation.row_counts".into()],
        ..Default::default()
    };
    let report = block_on(check_with(bundled(), &url, options));
    let compare = report
        .steps
        .iter()
        .find(|s| s.id == "validation.row_counts")
        .unwrap();
    assert_status(compare, Status::Pass);
    assert!(
        compare
            .message
            .contains("against the baseline from earlier in this run"),
        "{}",
        compare.message
    );
}
