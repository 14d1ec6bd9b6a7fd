//! `cutover lint` against a real server: the lock table verified statement by statement, the
//! grading by live size, squawk's rules on Prisma-style files, and the command's outputs.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::*;
use cutover::migrate::lint::locks::{self, LockMode};
use cutover::migrate::lint::{self, Limits, RuleChoice, Severity};
use sqlx::{Connection, Row};

const SETUP: &str = "
CREATE TABLE u (id int PRIMARY KEY);
INSERT INTO u SELECT g FROM generate_series(1, 100) g;
CREATE TABLE t (id int PRIMARY KEY, a int, b text);
INSERT INTO t SELECT g, g, 'x' FROM generate_series(1, 100) g;
CREATE INDEX t_b_idx ON t (b);
ALTER TABLE t ADD CONSTRAINT t_a_positive CHECK (a > 0) NOT VALID;
CREATE TABLE w (id int PRIMARY KEY, a int NOT NULL);
";

/// What the server does when `statement` runs in a transaction that is then rolled back: the
/// strongest lock this session holds on each of the setup's tables, and the tables whose
/// `relfilenode` changed (a rewrite).
async fn observe(url: &str, statement: &str) -> (HashMap<String, LockMode>, Vec<String>) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
    let before: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT relname::text, oid::int8, relfilenode::int8 FROM pg_class
          WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_string()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    let held: Vec<(i64, String)> = sqlx::query_as(
        "SELECT relation::int8, mode FROM pg_locks WHERE pid = pg_backend_pid() AND relation IS NOT NULL",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let after: HashMap<i64, i64> = sqlx::query(
        "SELECT oid::int8, relfilenode::int8 FROM pg_class WHERE relnamespace = 'public'::regnamespace",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect();
    sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
    let mut locks = HashMap::new();
    let mut rewritten = Vec::new();
    for (name, oid, filenode) in before {
        for (relation, mode) in &held {
            if *relation == oid {
                let mode = LockMode::from_pg_locks(mode).unwrap();
                let strongest = locks.entry(name.clone()).or_insert(mode);
                *strongest = (*strongest).max(mode);
            }
        }
        if after.get(&oid).is_some_and(|now| *now != filenode) {
            rewritten.push(name);
        }
    }
    (locks, rewritten)
}

/// The lock table, row by row: for each statement, the locks cutover says it takes are the
/// strongest the server shows on those tables, no other table is locked against the app, and
/// a rewrite is claimed exactly when the table's file changes.
#[test]
fn each_statement_takes_the_lock_the_table_says() {
    let url = empty_database();
    psql(&url, SETUP);
    let cases: &[&str] = &[
        "CREATE INDEX t_a_idx ON t (a)",
        "CREATE UNIQUE INDEX t_a_key ON t (a)",
        "DROP INDEX t_b_idx",
        "ALTER TABLE t ADD COLUMN c int",
        "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0",
        "ALTER TABLE t ADD COLUMN c uuid DEFAULT gen_random_uuid()",
        "ALTER TABLE t ADD COLUMN c serial",
        "ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS IDENTITY",
        "ALTER TABLE t ADD COLUMN c int REFERENCES u (id)",
        "ALTER TABLE t ALTER COLUMN a TYPE bigint",
        "ALTER TABLE t ALTER COLUMN a SET NOT NULL",
        "ALTER TABLE w ALTER COLUMN a DROP NOT NULL",
        "ALTER TABLE t ALTER COLUMN a SET DEFAULT 1",
        "ALTER TABLE t ALTER COLUMN a DROP DEFAULT",
        "ALTER TABLE t ALTER COLUMN a SET STATISTICS 500",
        "ALTER TABLE t ADD CONSTRAINT t_a_fkey FOREIGN KEY (a) REFERENCES u (id)",
        "ALTER TABLE t ADD CONSTRAINT t_a_fkey FOREIGN KEY (a) REFERENCES u (id) NOT VALID",
        "ALTER TABLE t ADD CONSTRAINT t_a_check CHECK (a < 1000)",
        "ALTER TABLE t ADD CONSTRAINT t_a_check CHECK (a < 1000) NOT VALID",
        "ALTER TABLE t ADD CONSTRAINT t_a_unique UNIQUE (a)",
        "ALTER TABLE t VALIDATE CONSTRAINT t_a_positive",
        "ALTER TABLE t DROP CONSTRAINT t_a_positive",
        "ALTER TABLE t DROP COLUMN b",
        "ALTER TABLE t RENAME COLUMN b TO c",
        "ALTER TABLE t RENAME CONSTRAINT t_a_positive TO t_a_over_zero",
        "ALTER TABLE t RENAME TO t2",
        "ALTER TABLE t SET (fillfactor = 70)",
        "ALTER TABLE t DISABLE TRIGGER ALL",
        "ALTER TABLE t SET UNLOGGED",
        "DROP TABLE t",
        "UPDATE t SET a = a + 1",
        "DELETE FROM t WHERE id = 1",
        "INSERT INTO t (id, a) VALUES (1000, 1)",
        "CREATE TABLE v (id int PRIMARY KEY, u_id int REFERENCES u (id))",
        "CREATE TABLE v (id int PRIMARY KEY, u_id int, CONSTRAINT v_fkey FOREIGN KEY (u_id) REFERENCES u (id))",
        "TRUNCATE t",
    ];
    let mut wrong = Vec::new();
    for statement in cases {
        let parsed = squawk_syntax::SourceFile::parse(statement);
        let stmt = parsed.tree().stmts().next().unwrap();
        let effect = locks::effect(&stmt).unwrap_or_else(|| panic!("no effect for {statement}"));
        let (observed, rewritten) = block_on(observe(&url, statement));
        for lock in &effect.locks {
            // An index's lock falls on its table.
            let table = if lock.relation.index {
                "t"
            } else {
                lock.relation.name.as_str()
            };
            if observed.get(table) != Some(&lock.mode) {
                wrong.push(format!(
                    "{statement}: says {} on {table}, the server holds {:?}",
                    lock.mode,
                    observed.get(table)
                ));
            }
        }
        for (table, mode) in &observed {
            let claimed = effect
                .locks
                .iter()
                .any(|l| l.relation.name == *table || (l.relation.index && table == "t"));
            if !claimed && mode.blocks_the_app() {
                wrong.push(format!("{statement}: misses {mode} on {table}"));
            }
        }
        // TRUNCATE gives the table a new, empty file: no copy of the rows.
        let rewrites = !rewritten.is_empty() && !statement.starts_with("TRUNCATE");
        if rewrites != effect.rewrite {
            wrong.push(format!(
                "{statement}: says rewrite={}, the server rewrote {rewritten:?}",
                effect.rewrite
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A concurrent build cannot run in a transaction: its lock is read while it waits.
#[test]
fn a_concurrent_index_build_takes_share_update_exclusive() {
    let url = fresh_database();
    let _held = hold_create_index_concurrently(&url);
    let held = psql(
        &url,
        "SELECT l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
          JOIN pg_stat_progress_create_index p ON p.pid = l.pid
         WHERE c.relname = 'Tag'",
    );
    let statement = "CREATE INDEX CONCURRENTLY \"Tag_createdAt_idx\" ON \"Tag\" (\"createdAt\")";
    let parsed = squawk_syntax::SourceFile::parse(statement);
    let effect = locks::effect(&parsed.tree().stmts().next().unwrap()).unwrap();
    assert_eq!(held, effect.locks[0].mode.pg_locks_mode());
    assert_eq!(effect.locks[0].mode, LockMode::ShareUpdateExclusive);
}

fn write(dir: &std::path::Path, name: &str, sql: &str) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join("migration.sql");
    std::fs::write(&path, sql).unwrap();
    path
}

fn lint_offline(sql: &str) -> lint::FileReport {
    let files = vec![(PathBuf::from("m/migration.sql"), sql.to_string())];
    let limits = Limits::from(&cutover::runbook::Thresholds::default());
    block_on(lint::lint(&files, None, &RuleChoice::default(), &limits))
        .unwrap()
        .remove(0)
}

fn rules_at_or_above(report: &lint::FileReport, at_least: Severity) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|f| f.severity >= at_least)
        .map(|f| f.rule.clone())
        .collect()
}

/// squawk's rules that cutover relies on, each on the SQL `prisma migrate dev` writes, and
/// the safe form that must not be flagged.
#[test]
fn each_rule_flags_the_prisma_statement_and_not_its_safe_form() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "require-concurrent-index-creation",
            "-- CreateIndex\nCREATE INDEX \"Summary_userId_idx\" ON \"Summary\"(\"userId\");\n",
            "-- CreateIndex\nCREATE INDEX CONCURRENTLY \"Summary_userId_idx\" ON \"Summary\"(\"userId\");\n",
        ),
        (
            "adding-foreign-key-constraint",
            "-- AddForeignKey\nALTER TABLE \"Summary\" ADD CONSTRAINT \"Summary_userId_fkey\" FOREIGN KEY (\"userId\") REFERENCES \"User\"(\"id\") ON DELETE RESTRICT ON UPDATE CASCADE;\n",
            "-- AddForeignKey\nALTER TABLE \"Summary\" ADD CONSTRAINT \"Summary_userId_fkey\" FOREIGN KEY (\"userId\") REFERENCES \"User\"(\"id\") ON DELETE RESTRICT ON UPDATE CASCADE NOT VALID;\n",
        ),
        (
            "changing-column-type",
            "-- AlterTable\nALTER TABLE \"User\" ALTER COLUMN \"plan\" SET DATA TYPE VARCHAR(20);\n",
            "-- AlterTable\nALTER TABLE \"User\" ADD COLUMN \"plan2\" VARCHAR(20);\n",
        ),
        (
            "adding-required-field",
            "-- AlterTable\nALTER TABLE \"User\" ADD COLUMN \"tier\" TEXT NOT NULL;\n",
            "-- AlterTable\nALTER TABLE \"User\" ADD COLUMN \"tier\" TEXT NOT NULL DEFAULT 'free';\n",
        ),
        (
            "adding-not-nullable-field",
            "-- AlterTable\nALTER TABLE \"User\" ALTER COLUMN \"name\" SET NOT NULL;\n",
            "-- AlterTable\nALTER TABLE \"User\" ADD CONSTRAINT \"User_name_not_null\" CHECK (\"name\" IS NOT NULL) NOT VALID;\n",
        ),
        (
            "renaming-column",
            "-- AlterTable\nALTER TABLE \"Summary\" RENAME COLUMN \"title\" TO \"name\";\n",
            "-- AlterTable\nALTER TABLE \"Summary\" ADD COLUMN \"name\" TEXT;\n",
        ),
        (
            "ban-drop-column",
            "-- AlterTable\nALTER TABLE \"Summary\" DROP COLUMN \"title\";\n",
            "-- AlterTable\nALTER TABLE \"Summary\" ALTER COLUMN \"title\" DROP NOT NULL;\n",
        ),
        (
            "ban-concurrent-index-creation-in-transaction",
            "-- AlterTable\nALTER TABLE \"Summary\" ADD COLUMN \"rank\" INTEGER;\n\n-- CreateIndex\nCREATE INDEX CONCURRENTLY \"Summary_rank_idx\" ON \"Summary\"(\"rank\");\n",
            "-- CreateIndex\nCREATE INDEX CONCURRENTLY \"Summary_rank_idx\" ON \"Summary\"(\"rank\");\n",
        ),
    ];
    for (rule, unsafe_sql, safe_sql) in cases {
        let flagged = lint_offline(unsafe_sql);
        assert!(
            rules_at_or_above(&flagged, Severity::Warning).contains(&rule.to_string()),
            "{rule} not flagged at warning or above: {:#?}",
            flagged.findings
        );
        let safe = lint_offline(safe_sql);
        assert!(
            !safe.findings.iter().any(|f| f.rule == *rule),
            "{rule} flagged the safe form: {:#?}",
            safe.findings
        );
        // Every finding at warning or above says what to write instead.
        for finding in flagged
            .findings
            .iter()
            .filter(|f| f.severity >= Severity::Warning)
        {
            assert!(finding.fix.is_some(), "{finding:?}");
        }
    }
}

/// A typical set of safe Prisma migrations raises nothing at warning or above: squawk's
/// defaults alone would flag every file.
#[test]
fn safe_prisma_migrations_raise_only_notes() {
    for sql in [
        "-- CreateTable\nCREATE TABLE \"Progress\" (\n    \"id\" TEXT NOT NULL,\n    \"userId\" TEXT NOT NULL,\n    \"createdAt\" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,\n\n    CONSTRAINT \"Progress_pkey\" PRIMARY KEY (\"id\")\n);\n\n-- CreateIndex\nCREATE INDEX \"Progress_userId_idx\" ON \"Progress\"(\"userId\");\n",
        "-- AlterTable\nALTER TABLE \"User\" ADD COLUMN \"bio\" TEXT;\n",
        "-- CreateIndex\nCREATE INDEX CONCURRENTLY \"Summary_userId_idx\" ON \"Summary\"(\"userId\");\n",
    ] {
        let report = lint_offline(sql);
        assert!(
            rules_at_or_above(&report, Severity::Warning).is_empty(),
            "{sql}: {:#?}",
            report.findings
        );
        assert!(!report.findings.is_empty(), "squawk still has its notes");
    }
    // The lone CONCURRENTLY is not told to set a lock_timeout, which would break it.
    let lone = lint_offline(
        "CREATE INDEX CONCURRENTLY \"Summary_userId_idx\" ON \"Summary\"(\"userId\");\n",
    );
    let timeout = lone
        .findings
        .iter()
        .find(|f| f.rule == "require-lock-timeout")
        .unwrap();
    assert!(timeout.fix.as_deref().unwrap().starts_with("nothing"));
}

#[test]
fn the_same_index_build_is_a_note_on_a_small_table_and_an_error_on_a_big_one() {
    let url = empty_database();
    psql(
        &url,
        "CREATE TABLE small (id int PRIMARY KEY, a int);
         INSERT INTO small SELECT g, g FROM generate_series(1, 10) g;
         CREATE TABLE big (id int PRIMARY KEY, a int);
         INSERT INTO big SELECT g, g FROM generate_series(1, 1000000) g;
         ANALYZE small; ANALYZE big;",
    );
    let target = cutover::target::Target::from_url(&url).unwrap();
    let limits = Limits::from(&cutover::runbook::Thresholds::default());
    let files = vec![
        (
            PathBuf::from("1_small/migration.sql"),
            "CREATE INDEX \"small_a_idx\" ON \"small\"(\"a\");\n".to_string(),
        ),
        (
            PathBuf::from("2_big/migration.sql"),
            "CREATE INDEX \"big_a_idx\" ON \"big\"(\"a\");\n".to_string(),
        ),
    ];
    let reports = block_on(async {
        let db = cutover::db::Db::connect(&target, cutover::db::DbSettings::default())
            .await
            .unwrap();
        lint::lint(&files, Some(&db), &RuleChoice::default(), &limits)
            .await
            .unwrap()
    });
    let grade_of = |report: &lint::FileReport| {
        report
            .findings
            .iter()
            .find(|f| f.rule == "require-concurrent-index-creation")
            .cloned()
            .unwrap()
    };
    let small = grade_of(&reports[0]);
    let big = grade_of(&reports[1]);
    assert_eq!(small.severity, Severity::Note, "{small:?}");
    assert_eq!(big.severity, Severity::Error, "{big:?}");
    assert!(
        big.grade.starts_with("public.big 1.0M rows"),
        "{}",
        big.grade
    );
    assert!(
        big.grade.contains("at or over the error line"),
        "{}",
        big.grade
    );
    assert!(
        small.grade.starts_with("public.small 10 rows"),
        "{}",
        small.grade
    );
    assert_eq!(reports[1].statements[0].locks[0].rows, Some(1_000_000.0));
}

#[test]
fn a_parse_error_is_reported_with_its_position() {
    let report = lint_offline("ALTER TABLE \"User\" ADD COLUMN;\nSELECT 1;\n");
    let error = &report.parse_errors[0];
    assert_eq!((error.line, error.column), (1, 30), "{error:?}");
    assert_eq!(error.message, "expected name");
    assert_eq!(report.worst(), Some(Severity::Error));
}

#[test]
fn the_command_lints_a_folder_with_positions_locks_and_fixes_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    write(
        &migrations,
        "1_index",
        "-- CreateIndex\nCREATE INDEX \"Summary_userId_idx\" ON \"Summary\"(\"userId\");\n",
    );
    write(
        &migrations,
        "2_column",
        "-- AlterTable\nALTER TABLE \"User\" ADD COLUMN \"bio\" TEXT;\n",
    );
    let path = migrations.to_str().unwrap();

    let text = run(&["lint", "--offline", path]);
    assert_eq!(text.status.code(), Some(1), "{}", stderr(&text));
    let out = stdout(&text);
    assert!(
        out.contains("1_index/migration.sql:2:1: warning[require-concurrent-index-creation]"),
        "{out}"
    );
    assert!(
        out.contains("2 | CREATE INDEX \"Summary_userId_idx\""),
        "{out}"
    );
    assert!(
        out.contains("= lock: SHARE on \"Summary\" (size unknown): blocks writes"),
        "{out}"
    );
    assert!(
        out.contains("= instead: CREATE INDEX CONCURRENTLY"),
        "{out}"
    );

    let json = run(&["lint", "--offline", "--format", "json", path]);
    let report: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(report["summary"]["warning"], 1);
    assert_eq!(report["files"][0]["findings"][0]["line"], 2);

    let sarif = run(&["lint", "--offline", "--format", "sarif", path]);
    let log: serde_json::Value = serde_json::from_str(&stdout(&sarif)).unwrap();
    // SARIF 2.1.0's required fields: version, runs[].tool.driver.name, results[].message.text.
    assert_eq!(log["version"], "2.1.0");
    let run0 = &log["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "cutover");
    for result in run0["results"].as_array().unwrap() {
        assert!(result["message"]["text"].is_string(), "{result}");
        let region = &result["locations"][0]["physicalLocation"]["region"];
        assert!(region["startLine"].as_u64().unwrap() >= 1, "{result}");
        assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
    }

    // Clean (notes allowed) exits 0; a rule turned off is off; bad input exits 2.
    let clean = run(&[
        "lint",
        "--offline",
        migrations.join("2_column").to_str().unwrap(),
    ]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    let excluded = run(&[
        "lint",
        "--offline",
        "--exclude",
        "require-concurrent-index-creation",
        "--exclude",
        "require-lock-timeout",
        "--exclude",
        "require-statement-timeout",
        path,
    ]);
    assert_eq!(excluded.status.code(), Some(0), "{}", stdout(&excluded));
    assert_one_line_error(
        &run(&[
            "lint",
            "--offline",
            "--rule",
            "require-concurent-index-creation",
            path,
        ]),
        2,
        "did you mean `require-concurrent-index-creation`",
    );
    assert_one_line_error(
        &run(&["lint", "--offline", "/nonexistent/migrations"]),
        2,
        "cannot read /nonexistent/migrations",
    );
}

/// A runbook whose three steps are the bundled review's lint probes over `dir`, with its own
/// grading limits.
fn review_runbook(dir: &std::path::Path) -> std::sync::Arc<cutover::runbook::Runbook> {
    let step = |id: &str, report: &str| {
        format!(
            "[[sections.steps]]\nid = \"{id}\"\ntitle = \"{id}\"\nkind = \"probe\"\nprobe = \"lint\"\nparams = {{ dir = \"{}\", report = \"{report}\" }}\n",
            dir.display()
        )
    };
    runbook_from(&format!(
        "name = \"review\"\n[thresholds]\nlint_warn_rows = 50\nlint_error_rows = 5000\n[[sections]]\nid = \"review\"\ntitle = \"Review\"\n{}{}{}",
        step("lint", "findings"),
        step("locks", "locks"),
        step("rewrites", "rewrites")
    ))
}

fn review(url: &str, dir: &std::path::Path) -> Vec<cutover::check::StepReport> {
    let options = cutover::check::CheckOptions {
        only: vec!["review".to_string()],
        ..Default::default()
    };
    block_on(check_with(review_runbook(dir), url, options)).steps
}

/// The review steps pass on safe pending migrations and fail, with the statement, its lock,
/// the live size and the fix, once a pending migration would block the app on a big table.
#[test]
fn the_review_steps_pass_on_safe_migrations_and_fail_on_a_big_lock_or_rewrite() {
    use cutover::outcome::Status;
    let url = empty_database();
    psql(
        &url,
        "CREATE TABLE \"Item\" (id int PRIMARY KEY, name text);
         INSERT INTO \"Item\" SELECT g, 'x' FROM generate_series(1, 10000) g;
         ANALYZE \"Item\";",
    );
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path();
    std::fs::write(
        migrations.join("migration_lock.toml"),
        "provider = \"postgresql\"\n",
    )
    .unwrap();
    write(
        migrations,
        "1_index",
        "-- CreateIndex\nCREATE INDEX CONCURRENTLY \"Item_name_idx\" ON \"Item\"(\"name\");\n",
    );
    let steps = review(&url, migrations);
    for step in &steps {
        assert_status(step, Status::Pass);
    }
    assert!(
        steps[1].details[0].contains("SHARE UPDATE EXCLUSIVE on public.\"Item\" (10k rows"),
        "{:?}",
        steps[1].details
    );

    write(
        migrations,
        "2_type",
        "-- AlterTable\nALTER TABLE \"Item\" ALTER COLUMN \"name\" SET DATA TYPE VARCHAR(20);\n",
    );
    let steps = review(&url, migrations);
    for step in &steps {
        assert_status(step, Status::Fail);
    }
    let lint = &steps[0];
    assert!(lint.message.contains("1 error(s)"), "{}", lint.message);
    assert!(
        lint.details
            .iter()
            .any(|d| d.contains("2_type:2:40 error[changing-column-type]")),
        "{:?}",
        lint.details
    );
    assert!(
        lint.details
            .iter()
            .any(|d| d.contains("2 | ALTER TABLE \"Item\" ALTER COLUMN")),
        "the source line: {:?}",
        lint.details
    );
    assert!(
        lint.details
            .iter()
            .any(|d| d.starts_with("    instead: add a new column")),
        "{:?}",
        lint.details
    );
    assert!(
        steps[2].details[0].contains("public.\"Item\" 10k rows"),
        "{:?}",
        steps[2].details
    );

    // Applied, it is no longer pending: the review is about what is still to run.
    psql(
        &url,
        &format!(
            "CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL, finished_at timestamptz, migration_name varchar(255) NOT NULL, logs text, rolled_back_at timestamptz, started_at timestamptz NOT NULL DEFAULT now(), applied_steps_count integer NOT NULL DEFAULT 0);
             INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name) VALUES ('a', '{}', now(), '2_type');",
            cutover::migrate::history::checksum("x")
        ),
    );
    let steps = review(&url, migrations);
    assert_status(&steps[2], Status::Pass);
}

#[test]
fn a_lock_taken_early_in_a_prisma_file_is_held_through_the_statements_after_it() {
    let report = lint_offline(
        "-- AlterTable\nALTER TABLE \"User\" ADD COLUMN \"bio\" TEXT;\n\n-- AlterTable\nALTER TABLE \"Summary\" ALTER COLUMN \"title\" SET DATA TYPE VARCHAR(200);\n",
    );
    let held = report
        .findings
        .iter()
        .find(|f| f.rule == "prisma-lock-held-to-end-of-file")
        .unwrap_or_else(|| panic!("{:#?}", report.findings));
    assert!(
        held.message.starts_with("\"User\" (ACCESS EXCLUSIVE since line 2) stays locked while this statement rewrites its table"),
        "{}",
        held.message
    );
    assert_eq!(held.line, 5);
    assert!(
        held.fix
            .as_deref()
            .unwrap()
            .contains("migration file of its own")
    );
    // One statement per file: nothing is held across.
    let alone = lint_offline(
        "ALTER TABLE \"Summary\" ALTER COLUMN \"title\" SET DATA TYPE VARCHAR(200);\n",
    );
    assert!(
        !alone
            .findings
            .iter()
            .any(|f| f.rule == "prisma-lock-held-to-end-of-file")
    );
}

/// The shipped folder of unsafe Prisma migrations, against the sample database: everything a
/// reviewer needs, and a `-- squawk-ignore` respected.
#[test]
fn the_unsafe_sample_folder_gives_a_reviewer_the_statement_lock_size_and_fix() {
    let url = fresh_database();
    let folder = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/unsafe_prisma_migrations"
    );
    let output = run(&["lint", "--database-url", &url, "--format", "json", folder]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let files = report["files"].as_array().unwrap();
    let rules_of = |migration: &str| -> Vec<(String, String)> {
        files.iter().find(|f| f["migration"] == migration).unwrap()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["rule"].as_str().unwrap().to_string(),
                    f["severity"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let has = |migration: &str, rule: &str, severity: &str| {
        assert!(
            rules_of(migration).contains(&(rule.to_string(), severity.to_string())),
            "{migration}: {:?}",
            rules_of(migration)
        );
    };
    has("20270102000000_user_tier", "adding-required-field", "error");
    has(
        "20270103000000_sharelink_views",
        "ban-concurrent-index-creation-in-transaction",
        "error",
    );
    has(
        "20270104000000_summary_rename_title",
        "renaming-column",
        "warning",
    );
    // Graded by size: the sample's Summary is small here (the demo's 200,000 rows make it a
    // warning).
    has(
        "20270106000000_summary_content_type",
        "changing-column-type",
        "note",
    );
    // `-- squawk-ignore require-concurrent-index-creation` above the statement.
    assert!(
        !rules_of("20270107000000_summary_favorite_idx_ignored")
            .iter()
            .any(|(rule, _)| rule == "require-concurrent-index-creation")
    );
    assert!(
        rules_of("20270101000000_summary_channel_idx")
            .iter()
            .any(|(rule, _)| rule == "require-concurrent-index-creation")
    );
    // Every statement that locks a table knows the table's live size.
    for file in files {
        for statement in file["statements"].as_array().unwrap() {
            for lock in statement["locks"].as_array().unwrap() {
                assert!(lock["rows"].as_f64().is_some(), "{lock}");
                assert!(lock["bytes"].as_i64().unwrap() > 0, "{lock}");
            }
        }
        for finding in file["findings"].as_array().unwrap() {
            if finding["severity"] != "note" {
                assert!(finding["fix"].is_string(), "{finding}");
            }
        }
    }
}
