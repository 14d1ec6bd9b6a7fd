//! The journal: runs survive the process, reports read them back, and a journal that cannot be
//! used stops cutover before anything runs, leaving the file as it was.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn cutover(home: &Path, args: &[&str]) -> Command {
    cutover_in(home, args)
}

fn run(home: &Path, args: &[&str]) -> Output {
    cutover(home, args).output().expect("cutover runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_check_is_journaled_and_its_report_reads_back_the_same() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let checked = run(
        home.path(),
        &[
            "check",
            "--format",
            "json",
            "--database-url",
            &url,
            "--only",
            "environment",
            "--rehearsal",
        ],
    );
    assert_eq!(
        checked.status.code(),
        Some(1),
        "TLS fails on the sample database"
    );
    let live: serde_json::Value = serde_json::from_str(&text(&checked.stdout)).unwrap();

    let listed = run(home.path(), &["runs"]);
    assert_eq!(listed.status.code(), Some(0));
    let listing = text(&listed.stdout);
    assert!(
        listing.contains(live["run_id"].as_str().unwrap()),
        "{listing}"
    );
    assert!(
        listing.contains("rehearsal") && listing.contains("check"),
        "{listing}"
    );

    let reported = run(home.path(), &["report", "--last", "--format", "json"]);
    let again: serde_json::Value = serde_json::from_str(&text(&reported.stdout)).unwrap();
    assert_eq!(again["run_id"], live["run_id"]);
    assert_eq!(again["summary"], live["summary"]);
    let statuses = |report: &serde_json::Value| -> Vec<(String, String)> {
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].to_string(), s["status"].to_string()))
            .collect()
    };
    assert_eq!(statuses(&again), statuses(&live));

    let markdown = text(&run(home.path(), &["report", "--last"]).stdout);
    let failures = markdown.find("## Failures").expect("failures section");
    let environment = markdown.find("## environment").expect("section");
    assert!(failures < environment, "failures come first:\n{markdown}");
    assert!(markdown.contains("environment.tls"), "{markdown}");
    assert!(!markdown.contains("password"));

    let junit = text(&run(home.path(), &["report", "--last", "--format", "junit"]).stdout);
    assert!(junit.contains("<testsuites"), "{junit}");
}

#[test]
fn data_files_are_private() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    run(
        &data,
        &["check", "--database-url", &url, "--only", "tables.required"],
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("journal.sqlite3")), 0o600);
    assert_eq!(mode(&data.join("logs")), 0o700);
    assert_eq!(mode(&data.join("logs/cutover.log")), 0o600);
}

#[test]
fn a_damaged_journal_is_reported_and_left_untouched() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("journal.sqlite3");
    let junk = b"this is not a database, it is a shopping list: eggs, flour".repeat(100);
    std::fs::write(&file, &junk).unwrap();
    let output = run(home.path(), &["runs"]);
    assert_eq!(output.status.code(), Some(2));
    let err = text(&output.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("is damaged or not a cutover journal"), "{err}");
    assert!(err.contains("left untouched"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), junk);
}

#[test]
fn a_journal_from_a_newer_cutover_is_refused_and_left_untouched() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    run(
        home.path(),
        &["check", "--database-url", &url, "--only", "tables.required"],
    );
    let file = home.path().join("journal.sqlite3");
    block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'from the future', true, x'00', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    });
    let before = std::fs::read(&file).unwrap();
    let output = run(home.path(), &["runs"]);
    assert_eq!(output.status.code(), Some(2));
    let err = text(&output.stderr);
    assert!(
        err.contains("written by a newer cutover (schema version 99990101000000)"),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

#[test]
fn a_read_only_data_directory_stops_check_before_it_connects() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o500)).unwrap();
    // As root, permissions do not stop writes: make the folder's parent a file instead.
    let blocked = home.path().join("not-a-folder");
    std::fs::write(&blocked, "").unwrap();
    let output = run(
        &blocked.join("home"),
        &["check", "--database-url", "postgresql://x@127.0.0.1:1/x"],
    );
    assert_eq!(output.status.code(), Some(2));
    let err = text(&output.stderr);
    assert!(err.contains("cannot use the data directory"), "{err}");
    assert!(!err.contains("connection refused"), "nothing ran: {err}");
}

#[test]
fn a_check_killed_mid_step_keeps_what_was_recorded_and_shows_the_step_interrupted() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runbook = dir.path().join("runbook.toml");
    let marker = dir.path().join("started");
    std::fs::write(
        &runbook,
        format!(
            r#"name = "killed"
[[sections]]
id = "s"
title = "S"
[[sections.steps]]
id = "quick"
title = "Quick"
kind = "probe"
probe = "fk_valid"
[[sections.steps]]
id = "slow"
title = "Slow"
kind = "shell"
command = "echo first line; echo $$ > {}; sleep 300"
depends_on = ["quick"]
severity = "optional"
"#,
            marker.display()
        ),
    )
    .unwrap();
    let mut child = cutover(
        home.path(),
        &[
            "check",
            "--runbook",
            runbook.to_str().unwrap(),
            "--database-url",
            &url,
            "--allow-shell",
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    wait_until("the shell step runs", 30, || marker.exists());
    // Its start is on disk before the kill (the engine does not wait for the journal).
    wait_until("the journal has the shell step's start", 30, || {
        text(&run(home.path(), &["report", "--last", "--format", "json"]).stdout).contains("s.slow")
    });
    child.kill().unwrap(); // SIGKILL: nothing gets to tidy up
    child.wait().unwrap();
    // The step's own processes outlive a SIGKILL of cutover: end them (its group).
    wait_until("the step wrote its pid", 10, || {
        std::fs::read_to_string(&marker).is_ok_and(|s| s.ends_with('\n'))
    });
    let group: i32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(group),
        nix::sys::signal::Signal::SIGKILL,
    );

    let reported = run(home.path(), &["report", "--last", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&text(&reported.stdout)).unwrap();
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{report}");
    assert_eq!(steps[0]["id"], "s.quick");
    assert_eq!(steps[0]["status"], "pass", "recorded before the kill");
    assert_eq!(steps[1]["id"], "s.slow");
    assert_eq!(steps[1]["status"], "error");
    assert!(
        steps[1]["message"]
            .as_str()
            .unwrap()
            .starts_with("interrupted: outcome unknown"),
        "{report}"
    );
    let listing = text(&run(home.path(), &["runs"]).stdout);
    assert!(listing.contains("(unfinished)"), "{listing}");
}

#[test]
fn a_production_report_shows_how_long_each_step_took_in_the_rehearsal_before_it() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let only = ["--only", "tables.required"];
    let rehearsal = run(
        home.path(),
        &[&["check", "--database-url", &url, "--rehearsal"][..], &only].concat(),
    );
    assert_eq!(
        rehearsal.status.code(),
        Some(0),
        "{}",
        text(&rehearsal.stderr)
    );
    let rehearsed_ms = {
        let json = text(&run(home.path(), &["report", "--last", "--format", "json"]).stdout);
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        report["steps"][0]["duration_ms"].as_u64().unwrap()
    };
    run(
        home.path(),
        &[&["check", "--database-url", &url][..], &only].concat(),
    );
    let markdown = text(&run(home.path(), &["report", "--last"]).stdout);
    let row = markdown
        .lines()
        .find(|l| l.contains("`tables.required`"))
        .unwrap_or_else(|| panic!("{markdown}"));
    assert!(markdown.contains("— production"), "{markdown}");
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(
        cells[5],
        format!("{rehearsed_ms} ms"),
        "the Rehearsal column: {row}"
    );
}

#[test]
fn output_is_kept_as_it_is_the_journal_is_no_bigger_and_its_log_is_emptied_when_the_run_ends() {
    use cutover::engine::OutputStream;
    use cutover::journal::{Entry, Journal, Mode, NewRun, Recorder};
    let home = tempfile::tempdir().unwrap();
    let lines = 400_000;
    let output: String = (1..=lines).map(|n| format!("{n}\n")).collect();
    block_on(async {
        let journal = Journal::open(home.path(), true).await.unwrap();
        let run = journal
            .create_run(NewRun {
                runbook_name: "flood".into(),
                runbook_text: "name = \"flood\"".into(),
                target: "postgresql://u@h/db".into(),
                mode: Mode::Rehearsal,
                origin: "check",
            })
            .await
            .unwrap();
        let mut recorder = Recorder::new(Some(journal.clone()), run.id.clone());
        // In chunks of whole lines, as the engine delivers them.
        let mut rest = output.as_str();
        while !rest.is_empty() {
            let cut = rest[..rest.len().min(65_536)].rfind('\n').unwrap() + 1;
            recorder
                .output("s.print", OutputStream::Stdout, &rest[..cut])
                .await
                .unwrap();
            rest = &rest[cut..];
        }
        recorder.finish().await.unwrap();

        let wal = home.path().join("journal.sqlite3-wal");
        let wal_bytes = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert_eq!(
            wal_bytes, 0,
            "the write-ahead log is emptied when the run ends"
        );
        let file_bytes = std::fs::metadata(home.path().join("journal.sqlite3"))
            .unwrap()
            .len();
        // Beside the output: a page or two of each table and index (64 KiB each).
        let schema_pages = 1024 * 1024;
        assert!(
            (file_bytes as f64) < output.len() as f64 * 1.1 + schema_pages as f64,
            "journal {file_bytes} bytes for {} bytes of output",
            output.len()
        );

        let mut read = String::new();
        for event in journal.events(&run.id).await.unwrap() {
            if let Entry::StepOutput { text, .. } = event.entry {
                read.push_str(&text);
            }
        }
        assert_eq!(read, output, "every byte read back, in order");

        // An event written before output had its own column still reads.
        let pool = sqlx::SqlitePool::connect(&format!(
            "sqlite://{}",
            home.path().join("journal.sqlite3").display()
        ))
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO events (run_id, seq, at, step_id, kind, data)
             VALUES ($1, 99999, '2026-11-30T00:00:00.000Z', 's.old', 'step_output',
                     '{\"kind\":\"step_output\",\"stream\":\"stderr\",\"lines\":[\"x\",\"y\"]}')",
        )
        .bind(&run.id)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
        let last = journal.events(&run.id).await.unwrap().pop().unwrap();
        assert_eq!(
            last.entry,
            Entry::StepOutput {
                stream: OutputStream::Stderr,
                text: "x\ny\n".into()
            }
        );
        journal.close().await;
    });
}

#[test]
fn a_production_report_lists_each_migration_applied_beside_its_rehearsal() {
    let staging = empty_database();
    let production = empty_database();
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    for (name, script) in [
        ("1_init", "CREATE TABLE \"Item\" (id text PRIMARY KEY);\n"),
        ("2_name", "ALTER TABLE \"Item\" ADD COLUMN name text;\n"),
    ] {
        std::fs::create_dir_all(migrations.join(name)).unwrap();
        std::fs::write(migrations.join(name).join("migration.sql"), script).unwrap();
    }
    let runbook = write_runbook(
        dir.path(),
        &format!(
            "name = \"deploy\"\n[[sections]]\nid = \"apply\"\ntitle = \"Apply\"\n[[sections.steps]]\nid = \"deploy\"\ntitle = \"Deploy\"\nkind = \"migrate\"\nmigrate = \"deploy\"\nmigrations = \"{}\"\n",
            migrations.display()
        ),
    );
    let deploy = |url: &str, rehearsal: bool| {
        let database = url.rsplit('/').next().unwrap();
        let mut args = vec![
            "--runbook",
            &runbook,
            "check",
            "--database-url",
            url,
            "--confirm",
            database,
        ];
        if rehearsal {
            args.push("--rehearsal");
        }
        let output = run(home.path(), &args);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
        text(&run(home.path(), &["report", "--last"]).stdout)
    };
    // The table's row for `name`, split into cells.
    let row = |markdown: &str, name: &str| -> Vec<String> {
        markdown
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}`")))
            .unwrap_or_else(|| panic!("no row for {name}: {markdown}"))
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };

    let rehearsed = deploy(&staging, true);
    assert!(rehearsed.contains("## Migrations applied"), "{rehearsed}");
    let produced = deploy(&production, false);
    assert!(produced.contains("— production"), "{produced}");
    for name in ["1_init", "2_name"] {
        let (before, now) = (row(&rehearsed, name), row(&produced, name));
        // | Migration | Step | Started | Duration | Rehearsal | Retries | Waited | Checksum |
        assert_eq!(now[2], "`apply.deploy`");
        assert!(now[4].ends_with(" ms"), "{now:?}");
        assert_eq!(
            now[5], before[4],
            "the rehearsal's duration beside: {now:?} {rehearsed} {produced}"
        );
        assert_eq!(now[6], "0");
        assert_eq!(now[7], "0 ms");
        assert_eq!(now[8].len(), 14, "a short checksum: {now:?}");
        // The start, as recorded in the production database's history.
        let started = psql(
            &production,
            &format!(
                "SELECT to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') FROM _prisma_migrations WHERE migration_name = '{name}'"
            ),
        );
        assert!(now[3].starts_with(&started), "{} vs {started}", now[3]);
    }
}

/// Commands started together on a data directory with no journal yet (a check, and a `runs`
/// beside it) each open it: one sets it up and migrates it, the others wait for it, and none
/// fails ("database is locked", "table runs already exists" before).
#[test]
fn commands_that_open_a_new_journal_at_once_all_succeed() {
    for _ in 0..5 {
        let home = tempfile::tempdir().unwrap();
        let children: Vec<_> = (0..6)
            .map(|_| {
                cutover_in(home.path(), &["runs"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        }
    }
}
