//! `cutover rehearse`: a dump restored into a throwaway cluster, counted, and the pending
//! migrations applied to it; and every way it can be refused.

mod common;

use std::path::Path;

use common::*;

/// A custom-format dump of the database at `url` in `dir/backups`.
fn dump_of(url: &str, dir: &Path) -> std::path::PathBuf {
    let backups = dir.join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let file = backups.join("sightline_20270101_000000.dump");
    let status = std::process::Command::new("pg_dump")
        .args(["--format=custom", "--file"])
        .arg(&file)
        .arg(url)
        .status()
        .unwrap();
    assert!(status.success());
    file
}

/// The sample app's folder plus one pending migration.
fn app_with_pending(dir: &Path, script: &str) -> std::path::PathBuf {
    cutover::demo::write_app(dir).unwrap();
    let migrations = dir.join("prisma/migrations");
    let pending = migrations.join("20270101000000_tag_note");
    std::fs::create_dir_all(&pending).unwrap();
    std::fs::write(pending.join("migration.sql"), script).unwrap();
    migrations
}

fn rehearse(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut command = cutover(&[&["rehearse"][..], args].concat());
    command.current_dir(dir);
    command.output().unwrap()
}

#[test]
fn the_newest_dump_is_restored_counted_and_the_pending_migrations_rehearsed_on_it() {
    let url = fresh_database();
    let dir = tempfile::tempdir().unwrap();
    dump_of(&url, dir.path());
    let migrations = app_with_pending(
        dir.path(),
        "-- AlterTable\nALTER TABLE \"Tag\" ADD COLUMN \"note\" TEXT;\n\n-- AlterTable\nALTER TABLE \"Tag\" ALTER COLUMN \"note\" SET DATA TYPE VARCHAR(200);\n",
    );
    let output = rehearse(
        dir.path(),
        &["--migrations", migrations.to_str().unwrap(), "--jobs", "2"],
    );
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(
        out.contains("restoring backups/sightline_20270101_000000.dump"),
        "{out}"
    );
    assert!(out.contains("restored and analyzed in "), "{out}");
    // Analyzed after the restore, the copy plans the critical queries as production does.
    assert!(out.contains("✓ validation.query_latency"), "{out}");
    assert!(
        out.contains("applied 20270101000000_tag_note to the copy in"),
        "{out}"
    );
    assert!(out.contains("rehearsed 1 pending migration(s)"), "{out}");
    // Statement by statement, in Prisma's one transaction: the lock the first statement takes
    // is held to the end of the file, and the second rewrites the table.
    assert!(
        out.contains("    line 2: ALTER TABLE \"Tag\" ADD COLUMN \"note\" TEXT; ("),
        "{out}"
    );
    assert!(
        out.contains("      AccessExclusive on public.\"Tag\" ("),
        "{out}"
    );
    assert!(
        out.contains("reads and writes of the app wait that long"),
        "{out}"
    );
    assert!(
        out.contains("    line 5: ALTER TABLE \"Tag\" ALTER COLUMN"),
        "{out}"
    );
    assert!(out.contains("      rewrote public.\"Tag\""), "{out}");
    assert!(out.contains("removed the throwaway cluster"), "{out}");
    // Every row of the source, counted on the copy.
    let rows: i64 = psql(
        &url,
        "SELECT sum(n) FROM (SELECT count(*) AS n FROM \"User\" UNION ALL SELECT count(*) FROM \"Summary\"
           UNION ALL SELECT count(*) FROM \"ShareLink\" UNION ALL SELECT count(*) FROM \"UsageEvent\"
           UNION ALL SELECT count(*) FROM \"Category\" UNION ALL SELECT count(*) FROM \"Tag\"
           UNION ALL SELECT count(*) FROM \"_CategoryToSummary\" UNION ALL SELECT count(*) FROM \"_SummaryToTag\"
           UNION ALL SELECT count(*) FROM \"Progress\" UNION ALL SELECT count(*) FROM _prisma_migrations) s",
    )
    .parse()
    .unwrap();
    assert!(
        out.contains(&format!("{rows} row(s) counted on the copy")),
        "{rows} in {out}"
    );
    // The source is untouched: the migration ran on the copy only.
    assert_eq!(
        psql(
            &url,
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'Tag' AND column_name = 'note'"
        ),
        "0"
    );
}

/// A migration that fails on the copy is the rehearsal's finding: it names the statement and
/// the server's error, the restore's time is still journaled, and the production deploy of the
/// same script warns before it runs and says the rehearsal foretold its failure.
#[test]
fn a_migration_that_fails_on_the_copy_is_the_rehearsals_finding_and_the_deploy_warns_of_it() {
    let url = fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    dump_of(&url, dir.path());
    // A NOT NULL column without a default on a table with rows fails.
    let migrations = app_with_pending(
        dir.path(),
        "-- AlterTable\nALTER TABLE \"Tag\" ADD COLUMN \"note\" TEXT NOT NULL;\n",
    );
    let runbook = write_runbook(
        dir.path(),
        &format!(
            "name = \"release\"\n[[sections]]\nid = \"apply\"\ntitle = \"Apply\"\n[[sections.steps]]\nid = \"deploy\"\ntitle = \"Deploy\"\nkind = \"migrate\"\nmigrate = \"deploy\"\nmigrations = \"{}\"\n",
            migrations.display()
        ),
    );
    let output = cutover_in(
        home.path(),
        &[
            "--runbook",
            &runbook,
            "rehearse",
            "--database-url",
            &url,
            "--migrations",
            migrations.to_str().unwrap(),
        ],
    )
    .current_dir(dir.path())
    .output()
    .unwrap();
    assert_one_line_error(
        &output,
        1,
        "the rehearsal found that migration 20270101000000_tag_note fails at line 2 (ALTER TABLE \"Tag\" ADD COLUMN \"note\" TEXT NOT NULL;): ERROR 23502",
    );
    let out = stdout(&output);
    assert!(
        out.contains("  ✗ migration 20270101000000_tag_note fails at line 2"),
        "{out}"
    );
    assert!(!out.contains("validation on the migrated copy"), "{out}");

    // The production deploy of the same script: warned before, told after.
    let database = url.rsplit('/').next().unwrap();
    // The deploy step's report, from `check --confirm` on the target.
    let deploy = || -> serde_json::Value {
        let deployed = cutover_in(
            home.path(),
            &[
                "--runbook",
                &runbook,
                "check",
                "--database-url",
                &url,
                "--confirm",
                database,
                "--format",
                "json",
            ],
        )
        .output()
        .unwrap();
        let report: serde_json::Value = serde_json::from_str(&stdout(&deployed)).unwrap();
        report["steps"][0].clone()
    };
    let step = &deploy();
    assert_eq!(step["status"], "fail", "{step}");
    let message = step["message"].as_str().unwrap();
    assert!(
        message.contains("(the rehearsal of run ")
            && message.contains("had found that migration 20270101000000_tag_note fails at line 2"),
        "{message}"
    );

    // Marked rolled back and deployed again where the table has no rows: it goes through, and
    // the step warns that production's data differs from the rehearsal's copy.
    let resolved = cutover(&[
        "resolve",
        "--rolled-back",
        "20270101000000_tag_note",
        "--migrations",
        migrations.to_str().unwrap(),
        "--database-url",
        &url,
        "--confirm",
        database,
    ])
    .output()
    .unwrap();
    assert_eq!(resolved.status.code(), Some(0), "{}", stderr(&resolved));
    psql(&url, "TRUNCATE \"Tag\" CASCADE");
    let step = &deploy();
    assert_eq!(step["status"], "warn", "{step}");
    let message = step["message"].as_str().unwrap();
    assert!(
        message.starts_with("applied 1 migration(s), but the rehearsal of run ")
            && message.contains("production's data differs from the rehearsal's copy"),
        "{message}"
    );
}

#[test]
fn no_dump_or_a_broken_one_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("backups")).unwrap();
    assert_one_line_error(
        &rehearse(dir.path(), &[]),
        2,
        "backups holds no .dump file (run backup.dump, or pass --dump FILE)",
    );
    // A plain SQL file, and a truncated dump.
    let plain = dir.path().join("plain.dump");
    std::fs::write(&plain, "CREATE TABLE t (id int);\n").unwrap();
    assert_one_line_error(
        &rehearse(dir.path(), &["--dump", plain.to_str().unwrap()]),
        2,
        "is not a complete custom-format dump",
    );
    let url = fresh_database();
    let full = dump_of(&url, dir.path());
    let bytes = std::fs::read(&full).unwrap();
    let truncated = dir.path().join("truncated.dump");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let output = rehearse(dir.path(), &["--dump", truncated.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("truncated.dump"),
        "{}",
        stderr(&output)
    );
}

/// The rehearsal is journaled as a rehearsal run of the runbook: the production deploy that
/// follows shows each migration's rehearsed time beside its own, and the restore's time.
#[test]
fn a_production_deploy_after_a_rehearsal_shows_the_rehearsed_timings() {
    let source = fresh_database();
    let production = fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    dump_of(&source, dir.path());
    let migrations = app_with_pending(
        dir.path(),
        "-- AlterTable\nALTER TABLE \"Tag\" ADD COLUMN \"note\" TEXT;\n",
    );
    let runbook = write_runbook(
        dir.path(),
        &format!(
            "name = \"release\"\n[[sections]]\nid = \"backup\"\ntitle = \"Backup\"\n[[sections.steps]]\nid = \"restore_tested\"\ntitle = \"Restore tested\"\nkind = \"manual\"\n[[sections]]\nid = \"apply\"\ntitle = \"Apply\"\n[[sections.steps]]\nid = \"deploy\"\ntitle = \"Deploy\"\nkind = \"migrate\"\nmigrate = \"deploy\"\nmigrations = \"{}\"\n",
            migrations.display()
        ),
    );
    let rehearsed = cutover_in(
        home.path(),
        &[
            "--runbook",
            &runbook,
            "rehearse",
            "--migrations",
            migrations.to_str().unwrap(),
        ],
    )
    .current_dir(dir.path())
    .output()
    .unwrap();
    assert_eq!(rehearsed.status.code(), Some(0), "{}", stderr(&rehearsed));
    let database = production.rsplit('/').next().unwrap();
    let deployed = cutover_in(
        home.path(),
        &[
            "--runbook",
            &runbook,
            "check",
            "--database-url",
            &production,
            "--confirm",
            database,
        ],
    )
    .output()
    .unwrap();
    assert_eq!(deployed.status.code(), Some(0), "{}", stdout(&deployed));
    let report = cutover_in(home.path(), &["report", "--last"])
        .output()
        .unwrap();
    let markdown = stdout(&report);
    let row = markdown
        .lines()
        .find(|l| l.starts_with("| `20270101000000_tag_note`"))
        .unwrap_or_else(|| panic!("{markdown}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // | Migration | Step | Started | Duration | Rehearsal | …
    assert!(cells[5].ends_with(" ms"), "the rehearsal's time: {row}");
    assert!(markdown.contains("Rehearsal: run `"), "{markdown}");
    // The "Rehearsal" part: the restore and its time, each statement with its lock.
    assert!(markdown.contains("\n## Rehearsal\n"), "{markdown}");
    assert!(
        markdown.contains("- ✓ `backup.restore_tested` rehearsal: "),
        "{markdown}"
    );
    assert!(
        markdown.contains("  - 20270101000000_tag_note line 2: ")
            && markdown.contains("AccessExclusive on public.\"Tag\""),
        "{markdown}"
    );
    let runs = stdout(&cutover_in(home.path(), &["runs"]).output().unwrap());
    assert!(runs.contains("rehearse"), "{runs}");
}

/// The post-migration validation runs on the migrated copy: a migration that drops a unique
/// key the checklist requires is caught before production.
#[test]
fn validation_on_the_copy_catches_a_migration_that_breaks_a_unique_key() {
    let url = fresh_database();
    let dir = tempfile::tempdir().unwrap();
    dump_of(&url, dir.path());
    let migrations = app_with_pending(
        dir.path(),
        "-- DropIndex\nDROP INDEX \"ShareLink_slug_key\";\n",
    );
    let output = rehearse(dir.path(), &["--migrations", migrations.to_str().unwrap()]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}{}", stderr(&output));
    assert!(out.contains("validation on the migrated copy:"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("  ✗ validation.unique") && l.contains("ShareLink")),
        "{out}"
    );
}

/// A dump cutover makes itself is counted in its own snapshot: the restored counts match
/// exactly, even while the app writes.
#[test]
fn a_fresh_dump_is_counted_in_its_snapshot_and_the_restore_matches_it_while_the_app_writes() {
    let url = fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let migrations = app_with_pending(dir.path(), "SELECT 1;\n");
    let _writer = background_psql(
        &url,
        "DO $$ BEGIN FOR i IN 1..20000 LOOP INSERT INTO \"Category\" (id, name) VALUES ('w' || i, 'w' || i); COMMIT; END LOOP; END $$",
    );
    wait_until("the app writes", 30, || {
        psql(
            &url,
            "SELECT count(*) > 0 FROM \"Category\" WHERE id LIKE 'w%'",
        ) == "t"
    });
    let output = rehearse(
        dir.path(),
        &[
            "--database-url",
            &url,
            "--fresh-dump",
            "--migrations",
            migrations.to_str().unwrap(),
        ],
    );
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(
        out.contains("(rows counted in the dump's snapshot)"),
        "{out}"
    );
    assert!(
        out.contains("every count equal to the dump's snapshot"),
        "{out}"
    );
    let dumps: Vec<_> = std::fs::read_dir(dir.path().join("backups"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(dumps.len(), 1, "the dump is kept in --backup-dir");
}

/// Ctrl-C in the middle: pg_restore is stopped and the throwaway cluster removed.
#[test]
fn ctrl_c_mid_restore_leaves_no_cluster_behind() {
    use std::io::BufRead;
    let url = fresh_database();
    let dir = tempfile::tempdir().unwrap();
    dump_of(&url, dir.path());
    let mut child = cutover(&["rehearse", "--jobs", "1"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines.next().expect("output").unwrap();
        if let Some(port) = line.strip_prefix("throwaway cluster up on 127.0.0.1:") {
            break port.trim().parse().unwrap();
        }
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output)
            .contains("interrupted by SIGINT: the throwaway cluster and its files (or the scratch database) were removed"),
        "{}",
        stderr(&output)
    );
    wait_until("nothing listens on the cluster's port", 15, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
}

/// The runbook's restore test is the rehearsal, and the rollback budget reads its time: it
/// passes when the restore fits, and fails when it does not.
#[test]
fn the_restore_test_step_times_the_restore_and_the_rollback_budget_judges_it() {
    use cutover::outcome::Status;
    let url = fresh_database();
    let dir = tempfile::tempdir().unwrap();
    dump_of(&url, dir.path());
    app_with_pending(
        dir.path(),
        "-- AlterTable\nALTER TABLE \"Tag\" ADD COLUMN \"note\" TEXT;\n",
    );
    let variables: std::collections::BTreeMap<String, String> = [
        (
            "backup_dir".to_string(),
            dir.path().join("backups").display().to_string(),
        ),
        ("app_dir".to_string(), dir.path().display().to_string()),
    ]
    .into();
    let report = |runbook: std::sync::Arc<cutover::runbook::Runbook>| {
        let options = cutover::check::CheckOptions {
            only: vec![
                "backup.restore_tested".to_string(),
                "rollback.time_budget".to_string(),
            ],
            variables: variables.clone(),
            // The restore test follows the dump and its check (shell steps) in its section.
            allow_shell: true,
            ..Default::default()
        };
        let steps = block_on(check_with(runbook, &url, options)).steps;
        let of = |id: &str| steps.iter().find(|s| s.id == id).unwrap().clone();
        [of("backup.restore_tested"), of("rollback.time_budget")]
    };
    // No confirmation asked: a rehearsal never writes to the target.
    let steps = report(bundled());
    assert_status(&steps[0], Status::Pass);
    assert!(
        steps[0].message.starts_with("restored "),
        "{}",
        steps[0].message
    );
    // The validation section ran on the migrated copy.
    assert!(
        steps[0]
            .message
            .contains("; validation on the migrated copy: ")
            && steps[0].message.ends_with(" passed, 0 failed"),
        "{}",
        steps[0].message
    );
    assert!(
        steps[0]
            .details
            .iter()
            .any(|d| d.starts_with("validation on the copy: ✓ validation."))
            && steps[0]
                .details
                .iter()
                .any(|d| d.starts_with("validation on the copy: ✓ tables.required")),
        "{:?}",
        steps[0].details
    );
    assert_status(&steps[1], Status::Pass);
    assert!(
        steps[1].message.contains("against a budget of 300 s"),
        "{}",
        steps[1].message
    );
    // Beside the restore, the rehearsal's locks that make the app wait, longest first.
    assert!(
        steps[1]
            .message
            .contains("; the rehearsed migrations made the app wait up to "),
        "{}",
        steps[1].message
    );
    assert!(
        steps[1].details.iter().any(|d| d.starts_with("rehearsed: ")
            && d.contains("AccessExclusive on public.")
            && d.ends_with("reads and writes of the app wait that long")),
        "{:?}",
        steps[1].details
    );

    let tight = cutover::runbook::BUNDLED.replace("budget_secs = 300", "budget_secs = 0.001");
    let steps = report(runbook_from(&tight));
    assert_status(&steps[1], Status::Fail);
    assert!(
        steps[1].message.contains("does not fit"),
        "{}",
        steps[1].message
    );
}

/// A dump cutover did not make is compared with the row-count baseline journaled for the
/// target, which it names; a difference is shown (the app may have written in between).
#[test]
fn a_dump_made_elsewhere_is_compared_with_the_journaled_baseline() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let captured = cutover_in(
        home.path(),
        &[
            "check",
            "--database-url",
            &url,
            "--only",
            "baseline.row_counts",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(captured.status.code(), Some(0), "{}", stdout(&captured));
    psql(
        &url,
        "INSERT INTO \"Tag\" (id, name, type) VALUES ('later', 'later', 'TOPIC')",
    );
    let tags = psql(&url, "SELECT count(*) FROM \"Tag\"");
    dump_of(&url, dir.path());
    let migrations = app_with_pending(dir.path(), "SELECT 1;\n");
    let output = cutover_in(
        home.path(),
        &[
            "rehearse",
            "--database-url",
            &url,
            "--migrations",
            migrations.to_str().unwrap(),
        ],
    )
    .current_dir(dir.path())
    .output()
    .unwrap();
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(
        out.contains("compared with the row-count baseline of run "),
        "{out}"
    );
    assert!(
        out.contains(", 1 differ (the app may have written"),
        "{out}"
    );
    let before: i64 = tags.parse::<i64>().unwrap() - 1;
    assert!(
        out.contains(&format!("  Tag: {tags} restored, {before} in the baseline")),
        "{out}"
    );
}

/// Without local server binaries, an existing scratch server takes the copy: a database is
/// created there and dropped at the end; the target itself is refused.
#[test]
fn a_scratch_server_takes_the_copy_and_the_target_itself_is_refused() {
    let url = fresh_database();
    let dir = tempfile::tempdir().unwrap();
    dump_of(&url, dir.path());
    let migrations = app_with_pending(
        dir.path(),
        "-- AlterTable\nALTER TABLE \"Tag\" ADD COLUMN \"note\" TEXT;\n",
    );
    let scratch = shared().url("postgres");
    let output = rehearse(
        dir.path(),
        &[
            "--database-url",
            &url,
            "--scratch-url",
            &scratch,
            "--migrations",
            migrations.to_str().unwrap(),
        ],
    );
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(!out.contains("throwaway cluster up"), "{out}");
    assert!(
        out.contains("applied 20270101000000_tag_note to the copy"),
        "{out}"
    );
    let dropped = out
        .lines()
        .find_map(|l| l.strip_prefix("dropped the scratch database "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert!(dropped.starts_with("cutover_rehearsal_"), "{dropped}");
    assert_eq!(
        shared()
            .psql(
                "postgres",
                &format!("SELECT count(*) FROM pg_database WHERE datname = '{dropped}'")
            )
            .unwrap(),
        "0"
    );

    // SHADOW_DATABASE_URL, Prisma's name, naming the target: refused before anything runs.
    let mut refused = cutover(&[
        "rehearse",
        "--database-url",
        &url,
        "--migrations",
        migrations.to_str().unwrap(),
    ]);
    refused
        .current_dir(dir.path())
        .env("SHADOW_DATABASE_URL", &url);
    assert_one_line_error(
        &refused.output().unwrap(),
        2,
        "the scratch URL names the target database itself",
    );
}

/// The copy is verified for the checklist's critical tables, columns and indexes: a dump that
/// lost one (here a critical column dropped by hand before the dump) fails the rehearsal.
#[test]
fn a_restore_missing_a_critical_column_fails_the_checks_on_the_copy() {
    let url = fresh_database();
    psql(&url, "ALTER TABLE \"Tag\" DROP COLUMN \"type\" CASCADE");
    let dir = tempfile::tempdir().unwrap();
    dump_of(&url, dir.path());
    let migrations = app_with_pending(
        dir.path(),
        "-- AlterTable\nALTER TABLE \"Tag\" ADD COLUMN \"note\" TEXT;\n",
    );
    let output = rehearse(dir.path(), &["--migrations", migrations.to_str().unwrap()]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}{}", stderr(&output));
    assert!(
        out.lines()
            .any(|l| l.starts_with("  ✗ tables.required") && l.contains("Tag")),
        "{out}"
    );
}
