//! The command line as a user meets it: output contracts, exit codes, and one clear line for
//! each kind of bad input.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Output;

use common::*;
use cutover::cluster::ClusterOptions;

#[test]
fn json_output_follows_the_contract() {
    let url = fresh_database();
    let output = run(&["check", "--format", "json", "--database-url", &url]);
    // The sample database has no TLS and no WAL archiving: some required steps fail.
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report: serde_json::Value =
        serde_json::from_str(&stdout(&output)).expect("one JSON object");
    let top = report.as_object().unwrap();
    let mut keys: Vec<&str> = top.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "duration_ms",
            "run_id",
            "runbook",
            "started_at",
            "steps",
            "summary",
            "target"
        ]
    );
    assert!(report["runbook"].is_string());
    assert!(report["run_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(report["duration_ms"].is_u64());
    chrono::DateTime::parse_from_rfc3339(report["started_at"].as_str().unwrap())
        .expect("started_at is RFC 3339");
    assert_eq!(report["target"], url.as_str());

    let steps = report["steps"].as_array().unwrap();
    assert!(steps.len() > 40, "every step of the bundled runbook");
    let mut counted = std::collections::BTreeMap::new();
    for step in steps {
        let object = step.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "details",
                "duration_ms",
                "id",
                "kind",
                "message",
                "section",
                "status",
                "title"
            ]
        );
        let id = step["id"].as_str().unwrap();
        let section = step["section"].as_str().unwrap();
        assert!(id.starts_with(&format!("{section}.")), "{id}");
        assert!(
            [
                "manual", "sql", "probe", "shell", "http", "signoff", "migrate"
            ]
            .contains(&step["kind"].as_str().unwrap())
        );
        let status = step["status"].as_str().unwrap();
        assert!(
            ["pass", "fail", "warn", "skip", "error"].contains(&status),
            "{status}"
        );
        assert!(!step["message"].as_str().unwrap().contains('\n'));
        assert!(
            step["details"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d.is_string())
        );
        assert!(step["duration_ms"].is_u64());
        *counted.entry(status.to_string()).or_insert(0u64) += 1;
        if matches!(step["kind"].as_str().unwrap(), "manual" | "signoff") {
            assert_eq!(status, "skip", "{id}: manual steps are skipped headless");
        }
    }
    for status in ["pass", "fail", "warn", "skip", "error"] {
        assert_eq!(
            report["summary"][status].as_u64().unwrap(),
            counted.get(status).copied().unwrap_or(0),
            "summary.{status}"
        );
    }
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    for id in [
        "environment.tls",
        "backup.pitr",
        "tables.required",
        "validation.blocking",
    ] {
        assert!(ids.contains(&id), "{id}");
    }
    let by_id = |id: &str| steps.iter().find(|s| s["id"] == id).unwrap();
    assert_eq!(by_id("tables.required")["status"], "pass");
    assert_eq!(by_id("environment.tls")["status"], "fail");
}

#[test]
fn only_selects_sections_and_steps_and_passes_on_a_healthy_database() {
    let url = fresh_database();
    let output = run(&[
        "check",
        "--format",
        "json",
        "--database-url",
        &url,
        "--only",
        "tables",
        "--only",
        "performance.indexes",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let ids: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"tables.required") && ids.contains(&"tables.progress"));
    assert!(ids.contains(&"performance.indexes"));
    assert!(!ids.contains(&"performance.invalid"));
    assert!(
        ids.iter()
            .all(|id| id.starts_with("tables.") || *id == "performance.indexes")
    );
}

#[test]
fn text_output_is_one_line_per_step_with_a_summary() {
    let url = fresh_database();
    let output = run(&["check", "--database-url", &url, "--only", "tables"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.contains("✓ pass   tables.required"), "{text}");
    let steps = bundled().section("tables").unwrap().steps.len();
    let step_lines = text.lines().filter(|l| l.contains(" tables.")).count();
    assert_eq!(step_lines, steps, "{text}");
    let last = text.trim_end().lines().last().unwrap();
    let summary = format!("{steps} passed, 0 failed, 0 warnings, 0 skipped, 0 errors");
    assert!(last.starts_with(&summary), "{last}");
}

#[test]
fn junit_output_is_well_formed_with_a_case_per_step() {
    let url = fresh_database();
    let output = run(&[
        "check",
        "--format",
        "junit",
        "--database-url",
        &url,
        "--only",
        "environment",
    ]);
    let xml = stdout(&output);
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures) = (0, 0);
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                match e.name().as_ref() {
                    b"testcase" => cases += 1,
                    b"failure" => failures += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let runbook = bundled();
    let expected = runbook.section("environment").unwrap().steps.len();
    assert_eq!(cases, expected, "{xml}");
    assert!(failures >= 1, "TLS fails on the sample database: {xml}");
}

#[test]
fn an_unknown_step_id_is_a_usage_error_with_a_suggestion() {
    let url = fresh_database();
    let output = run(&["check", "--database-url", &url, "--only", "environment.tsl"]);
    assert_one_line_error(&output, 2, "unknown step or section `environment.tsl`");
    assert!(stderr(&output).contains("did you mean `environment.tls`?"));
}

#[test]
fn a_bad_url_is_a_usage_error_without_the_password() {
    let output = run(&[
        "check",
        "--database-url",
        "postgres://app:hunter2@db:notaport/x",
    ]);
    assert_one_line_error(&output, 2, "invalid database URL");
    assert!(!stderr(&output).contains("hunter2"));
}

#[test]
fn no_target_at_all_says_how_to_give_one() {
    let output = run(&["check"]);
    assert_one_line_error(&output, 2, "no target database");
}

#[test]
fn an_unreachable_host_is_a_connection_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgresql://app:hunter2@127.0.0.1:{port}/db");
    let output = run(&["check", "--database-url", &url]);
    assert_one_line_error(&output, 2, "connection refused — is the server running?");
    assert!(!stderr(&output).contains("hunter2"));
}

#[test]
fn a_wrong_password_is_named_but_never_printed() {
    let (cluster, _url) = own_cluster(ClusterOptions {
        password: Some("right-horse-battery".to_string()),
        ..ClusterOptions::default()
    });
    let url = format!(
        "postgresql://postgres:wrong-staple@127.0.0.1:{}/sightline",
        cluster.port()
    );
    let output = run(&["check", "--database-url", &url]);
    assert_one_line_error(
        &output,
        2,
        "password authentication failed for user `postgres`",
    );
    let all = format!("{}{}", stdout(&output), stderr(&output));
    assert!(
        !all.contains("wrong-staple") && !all.contains("right-horse-battery"),
        "{all}"
    );

    // With the right password it connects, and the report shows it redacted.
    let url = cluster.url("sightline");
    let output = run(&[
        "check",
        "--format",
        "json",
        "--database-url",
        &url,
        "--only",
        "tables",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(!text.contains("right-horse-battery"));
    assert!(text.contains("postgres:***@127.0.0.1"), "{text}");
}

#[test]
fn sslmode_require_against_a_server_without_tls_is_refused_clearly() {
    let url = format!("{}?sslmode=require", fresh_database());
    let output = run(&["check", "--database-url", &url]);
    assert_one_line_error(&output, 2, "does not accept TLS, but the URL requires it");
}

#[test]
fn a_server_that_is_not_postgres_is_named_as_such() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        // Answer whatever comes as an HTTP server would, a few times over.
        for _ in 0..3 {
            let Ok((mut socket, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 512];
            let _ = socket.read(&mut buf);
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let url = format!("postgresql://app@127.0.0.1:{port}/db?sslmode=disable");
    let output = run(&["check", "--database-url", &url]);
    assert_one_line_error(&output, 2, "not as a PostgreSQL server");
    drop(server);
}

#[test]
fn a_malformed_runbook_is_reported_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_runbook(
        dir.path(),
        "name = \"broken\"\n[[sections]]\nid = \"s\"\ntitle = \"S\"\n[[sections.steps]]\nid = \"x\"\ntitle = \"X\"\nkind = \"probe\"\nprobe = \"nope\"\n",
    );
    let output = run(&["runbook", "validate", &path]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!("{path}:9:9: step `s.x`: unknown probe `nope`")),
        "{}",
        stderr(&output)
    );

    let path = write_runbook(
        dir.path(),
        "name = \"broken\"\n[[sections]]\nid = \"s\"\ntitle = 3\n",
    );
    let output = run(&[
        "check",
        "--runbook",
        &path,
        "--database-url",
        "postgres://x@127.0.0.1:1/x",
    ]);
    assert_one_line_error(&output, 2, &format!("{path}:4:9:"));
}

#[test]
fn the_bundled_runbook_exports_and_validates() {
    let output = run(&["runbook", "export"]);
    assert_eq!(output.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let path = write_runbook(dir.path(), &stdout(&output));
    let output = run(&["runbook", "validate", &path]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains(": ok"));
}

/// A reader that stops reading (`cutover runbook export | head`) ends the printing, not in a
/// panic: the command ends as it would have, and says nothing of it.
#[test]
fn a_reader_that_stops_reading_is_not_a_crash() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = cutover(&["runbook", "export"])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
}

#[test]
fn a_database_that_stops_mid_run_ends_the_steps_in_flight_as_errors() {
    let (mut cluster, url) = own_cluster(ClusterOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let path = write_runbook(
        dir.path(),
        r#"name = "dies"
[[sections]]
id = "s"
title = "S"
[[sections.steps]]
id = "slow"
title = "A slow query"
kind = "sql"
query = "SELECT pg_sleep(20)"
expect = "all_true"
[[sections.steps]]
id = "later"
title = "A probe after it"
kind = "probe"
probe = "tls"
depends_on = ["slow"]
[[sections.steps]]
id = "also"
title = "Another slow query"
kind = "sql"
query = "SELECT pg_sleep(20) IS NULL"
expect = "all_true"
[[sections.steps]]
id = "barrier"
title = "A destructive step (confirmed): what follows starts after the slow queries end"
kind = "shell"
command = "true"
destructive = true
[[sections.steps]]
id = "after"
title = "A probe once the server is gone"
kind = "probe"
probe = "pool"
"#,
    );
    let database = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let child = cutover(&[
        "check",
        "--format",
        "json",
        "--runbook",
        &path,
        "--database-url",
        &url,
        "--allow-shell",
        "--confirm",
        database,
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    wait_until("both slow queries run", 30, || {
        cluster
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE query LIKE '%pg_sleep(20)%' AND application_name = 'cutover'",
            )
            .unwrap()
            == "2"
    });
    cluster.stop();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        step_statuses(&report),
        [
            ("s.slow", "error"),
            ("s.later", "skip"),
            ("s.also", "error"),
            ("s.barrier", "pass"),
            ("s.after", "error")
        ]
    );
    // Told at once by a direct connection attempt, not after the pool's acquire timeout.
    let after = report["steps"][4]["message"].as_str().unwrap();
    assert!(after.starts_with("not run: "), "{after}");
    assert!(
        after.contains("connection refused") || after.contains("lost the connection"),
        "{after}"
    );
}

#[test]
fn a_hanging_shell_step_is_killed_with_its_whole_process_group() {
    let url = fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let path = write_runbook(
        dir.path(),
        &format!(
            r#"name = "hangs"
[[sections]]
id = "s"
title = "S"
[[sections.steps]]
id = "hang"
title = "Hangs"
kind = "shell"
command = "sleep 300 & echo $! > {}; echo started; wait"
timeout_secs = 1
"#,
            pidfile.display()
        ),
    );
    let output = run(&[
        "check",
        "--format",
        "json",
        "--runbook",
        &path,
        "--database-url",
        &url,
        "--allow-shell",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let step = &report["steps"][0];
    assert_eq!(step["status"], "error");
    assert!(
        step["message"]
            .as_str()
            .unwrap()
            .contains("timed out after 1s")
    );
    assert_eq!(step["details"][0], "started");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The grandchild is killed with the group (init reaps it).
    wait_until("the grandchild is gone", 10, || process_gone(pid));
}

#[test]
fn shell_steps_need_allow_shell_and_destructive_ones_a_confirmation() {
    let url = fresh_database();
    let database = url.rsplit('/').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = write_runbook(
        dir.path(),
        r#"name = "shell"
[[sections]]
id = "s"
title = "S"
[[sections.steps]]
id = "env"
title = "The target arrives through the environment"
kind = "shell"
command = "test -n \"$DATABASE_URL\" && test \"$PGDATABASE\" = \"$EXPECTED\" && echo ok"
env = { EXPECTED = "{{database}}" }
[[sections.steps]]
id = "drop"
title = "Destructive"
kind = "shell"
command = "echo would change the database"
destructive = true
[variables.database]
description = "the database name"
"#,
    );
    let base = [
        "check",
        "--format",
        "json",
        "--runbook",
        &path,
        "--database-url",
        &url,
    ];
    let statuses = |output: &Output| -> Vec<(String, String)> {
        let report: serde_json::Value = serde_json::from_str(&stdout(output)).unwrap();
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["status"].as_str().unwrap().to_string(),
                    s["message"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };

    let without = run(&base);
    let got = statuses(&without);
    assert_eq!(got[0].0, "skip");
    assert!(got[0].1.contains("--allow-shell"), "{got:?}");

    let var = format!("database={database}");
    let mut args = base.to_vec();
    args.extend(["--allow-shell", "--var", &var]);
    let allowed = run(&args);
    let got = statuses(&allowed);
    assert_eq!(got[0].0, "pass", "{got:?}");
    assert_eq!(got[1].0, "skip");
    assert!(
        got[1].1.contains(&format!("--confirm {database}")),
        "{got:?}"
    );

    args.extend(["--confirm", &database]);
    let confirmed = run(&args);
    let got = statuses(&confirmed);
    assert_eq!(got[1].0, "pass", "{got:?}");
    assert_eq!(confirmed.status.code(), Some(0));

    let missing_var = run(&[&base[..], &["--allow-shell"]].concat());
    let got = statuses(&missing_var);
    assert_eq!(got[0].0, "skip");
    assert!(
        got[0].1.contains("variable `database` has no value"),
        "{got:?}"
    );
}

#[test]
fn sql_steps_cannot_write_to_the_target() {
    let url = fresh_database();
    psql(&url, "CREATE SEQUENCE probe_seq");
    let dir = tempfile::tempdir().unwrap();
    let path = write_runbook(
        dir.path(),
        r#"name = "writes"
[[sections]]
id = "s"
title = "S"
[[sections.steps]]
id = "write"
title = "Tries to write"
kind = "sql"
query = "SELECT nextval('probe_seq')"
expect = { at_least = 1 }
"#,
    );
    let output = run(&[
        "check",
        "--format",
        "json",
        "--runbook",
        &path,
        "--database-url",
        &url,
    ]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["steps"][0]["status"], "error");
    assert!(
        report["steps"][0]["message"]
            .as_str()
            .unwrap()
            .contains("read-only transaction"),
        "{}",
        report["steps"][0]["message"]
    );
    assert_eq!(psql(&url, "SELECT is_called FROM probe_seq"), "f");
}

#[test]
fn the_target_comes_from_database_url_then_dotenv_then_pg_variables() {
    let url = fresh_database();
    let database = url.rsplit('/').next().unwrap().to_string();
    let port = url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let target_of = |output: &Output| -> String {
        assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
        let report: serde_json::Value = serde_json::from_str(&stdout(output)).unwrap();
        report["target"].as_str().unwrap().to_string()
    };
    let args = ["check", "--format", "json", "--only", "tables.required"];

    let from_env = cutover(&args).env("DATABASE_URL", &url).output().unwrap();
    assert_eq!(target_of(&from_env), url);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        format!("# app settings\nDATABASE_URL=\"{url}\"\n"),
    )
    .unwrap();
    let from_dotenv = cutover(&args).current_dir(dir.path()).output().unwrap();
    assert_eq!(target_of(&from_dotenv), url);

    let from_libpq = cutover(&args)
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", &port)
        .env("PGUSER", "postgres")
        .env("PGDATABASE", &database)
        .output()
        .unwrap();
    assert_eq!(
        target_of(&from_libpq),
        format!("postgresql://postgres@127.0.0.1:{port}/{database}")
    );
}

#[test]
fn a_killed_demo_leaves_no_server_behind() {
    let mut demo = cutover(&["demo", "--print-url"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(demo.stdout.take().unwrap());
    let mut url = String::new();
    std::io::BufRead::read_line(&mut reader, &mut url).unwrap();
    let port: u16 = url
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "the demo server listens"
    );
    demo.kill().unwrap(); // SIGKILL: no destructor runs
    demo.wait().unwrap();
    wait_until("the killed demo's server is gone", 20, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
}
