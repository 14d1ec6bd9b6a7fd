//! Faults injected on purpose into the real binary: bad input that must not be silently
//! accepted, messages that must not mislead, a frozen server, signals, secrets in step output.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;

use common::*;

#[test]
fn a_var_the_runbook_does_not_declare_is_an_error_naming_the_close_match() {
    let output = run(&[
        "check",
        "--var",
        "app_dri=/srv/app",
        "--database-url",
        "postgres://x@127.0.0.1:1/x",
    ]);
    assert_one_line_error(&output, 2, "no variable `app_dri`");
    assert!(stderr(&output).contains("did you mean `app_dir`"));
}

#[test]
fn a_runbook_without_steps_is_invalid_and_check_on_it_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_runbook(
        dir.path(),
        "name = \"empty\"\n[[sections]]\nid = \"s\"\ntitle = \"S\"\n",
    );
    let output = run(&["runbook", "validate", &path]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("the runbook has no steps"));
    let output = run(&[
        "check",
        "--runbook",
        &path,
        "--database-url",
        "postgres://x@127.0.0.1:1/x",
    ]);
    assert_one_line_error(&output, 2, "the runbook has no steps");
}

#[test]
fn verify_full_against_a_server_without_tls_names_verify_full() {
    let url = format!("{}?sslmode=verify-full", fresh_database());
    let output = run(&["check", "--database-url", &url]);
    assert_one_line_error(&output, 2, "(sslmode=verify-full)");
}

#[test]
fn a_bogus_sslmode_is_named_once_with_the_values_it_takes() {
    let output = run(&[
        "check",
        "--database-url",
        "postgres://x@127.0.0.1:1/x?sslmode=bogus",
    ]);
    assert_one_line_error(&output, 2, "sslmode takes disable, allow, prefer");
    assert_eq!(
        stderr(&output).matches("error with configuration").count(),
        0
    );
}

#[test]
fn an_os_error_is_printed_once() {
    let output = run(&["check", "--runbook", "/nonexistent/runbook.toml"]);
    assert_one_line_error(&output, 2, "cannot read runbook /nonexistent/runbook.toml");
    assert_eq!(stderr(&output).matches("os error 2").count(), 1);
}

#[test]
fn a_silent_line_based_server_is_named_as_not_postgres_before_the_login_times_out() {
    // Like an HTTP server: nothing until it has read a whole line, then an answer.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut socket) = stream else { return };
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut buf = [0u8; 512];
                while let Ok(n) = socket.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if seen.contains(&b'\n') {
                        let _ = socket.write_all(b"HTTP/1.0 400 Bad request\r\n\r\n");
                        return;
                    }
                }
            });
        }
    });
    // With a 30 s login timeout, only the protocol probe can say this.
    let url = format!("postgresql://app@127.0.0.1:{port}/db?connect_timeout=30");
    let output = run(&["check", "--database-url", &url]);
    assert_one_line_error(&output, 2, "not as a PostgreSQL server");
    assert!(
        stderr(&output).contains("HTTP/1.0 400"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_wizard_refuses_a_stdout_that_is_not_a_terminal() {
    let output = cutover(&["run", "--database-url", "postgres://x@127.0.0.1:1/x"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert_one_line_error(&output, 2, "the wizard needs a terminal");
    assert!(output.stdout.is_empty(), "nothing drawn into the pipe");
}

#[test]
fn check_only_a_rollback_action_does_not_run_it_without_the_persons_decision() {
    let url = fresh_database();
    let database = url.rsplit('/').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("stopped");
    let output = run(&[
        "check",
        "--format",
        "json",
        "--only",
        "rollback.stop_app",
        "--allow-shell",
        "--confirm",
        &database,
        "--var",
        &format!("stop_app_command=touch {}", marker.display()),
        "--database-url",
        &url,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let step = &report["steps"][0];
    assert_eq!(step["id"], "rollback.stop_app");
    assert_eq!(step["status"], "error");
    assert_eq!(
        step["message"],
        "not run: it depends on rollback.decided, which has not run"
    );
    assert!(!marker.exists(), "the app was not stopped");
}

#[test]
fn step_output_never_carries_the_password_to_the_screen_the_journal_or_the_reports() {
    let password = "horse+battery@staple";
    let cluster = cutover::cluster::Cluster::start(cutover::cluster::ClusterOptions {
        password: Some(password.to_string()),
        ..Default::default()
    })
    .unwrap();
    let url = cluster.url("postgres");
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_runbook(
        dir.path(),
        r#"name = "leaky"
[variables]
deploy_token = { description = "a secret by its name" }
[[sections]]
id = "s"
title = "S"
[[sections.steps]]
id = "leak"
title = "Prints what it should not"
kind = "shell"
env = { API_SECRET = "{{deploy_token}}" }
command = '''
echo "url: $DATABASE_URL"
echo "password: $PGPASSWORD"
echo "token: $API_SECRET"
echo "encoded: $(printf %s "$PGPASSWORD" | sed 's/+/%2B/g; s/@/%40/g')" >&2
exit 3
'''
"#,
    );
    let output = cutover_in(
        home.path(),
        &[
            "check",
            "--format",
            "json",
            "--runbook",
            &path,
            "--allow-shell",
            "--var",
            "deploy_token=tok-1234-5678",
            "--database-url",
            &url,
        ],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let json = stdout(&output);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let details = report["steps"][0]["details"].to_string();
    assert!(details.contains("password: ***"), "{details}");
    assert!(details.contains("token: ***"), "{details}");
    assert!(details.contains("encoded: ***"), "{details}");
    assert!(
        details.contains("url: postgresql://postgres:***@127.0.0.1"),
        "{details}"
    );
    let run_id = report["run_id"].as_str().unwrap().to_string();

    let mut everything = json.clone() + &stderr(&output);
    for format in ["md", "json", "junit"] {
        let exported = cutover_in(home.path(), &["report", &run_id, "--format", format])
            .output()
            .unwrap();
        assert_eq!(exported.status.code(), Some(0), "{}", stderr(&exported));
        everything += &stdout(&exported);
    }
    assert!(everything.contains("password: ***"));
    // The journal's files, byte for byte (its write-ahead log included).
    for entry in std::fs::read_dir(home.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            everything += &String::from_utf8_lossy(&std::fs::read(&path).unwrap());
        }
    }
    for secret in [
        "horse+battery@staple",
        "horse%2Bbattery%40staple",
        "tok-1234-5678",
    ] {
        if let Some(at) = everything.find(secret) {
            let start = everything.floor_char_boundary(at.saturating_sub(200));
            panic!(
                "{secret} leaked: …{}",
                &everything[start..at + secret.len()]
            );
        }
    }
}

#[test]
fn a_frozen_server_ends_check_with_the_steps_in_flight_as_no_answer() {
    let cluster = cutover::cluster::Cluster::start(Default::default()).unwrap();
    let url = cluster.url("postgres");
    let dir = tempfile::tempdir().unwrap();
    let mut steps = String::new();
    for id in ["a", "b", "c", "d", "e"] {
        steps += &format!(
            "[[sections.steps]]\nid = \"{id}\"\ntitle = \"{id}\"\nkind = \"sql\"\n\
             query = \"SELECT pg_sleep(30) IS NULL\"\nexpect = \"all_true\"\ntimeout_secs = 3\n"
        );
    }
    let path = write_runbook(
        dir.path(),
        &format!("name = \"frozen\"\n[[sections]]\nid = \"s\"\ntitle = \"S\"\n{steps}"),
    );
    let child = cutover(&[
        "check",
        "--format",
        "json",
        "--runbook",
        &path,
        "--database-url",
        &url,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_until("the first steps' queries run", 30, || {
        cluster
            .psql(
                "postgres",
                "SELECT count(*) >= 2 FROM pg_stat_activity \
                 WHERE query LIKE '%pg_sleep(30)%' AND application_name = 'cutover'",
            )
            .unwrap()
            == "t"
    });
    let frozen = Frozen::server(&cluster);
    // Without a client-side deadline this never returns (the test would hang, not fail).
    let output = child.wait_with_output().unwrap();
    drop(frozen);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let address = format!("127.0.0.1:{}", cluster.port());
    for step in report["steps"].as_array().unwrap() {
        assert_eq!(step["status"], "error", "{step}");
        let message = step["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("no answer from {address} within 5s")),
            "{message}"
        );
    }
}

#[test]
fn every_connection_to_the_target_has_tcp_keepalives() {
    use nix::sys::socket::{SockaddrStorage, getpeername, getsockopt, sockopt};
    use std::os::fd::BorrowedFd;
    let url = fresh_database();
    let port = url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    let target = cutover::target::Target::from_url(&url).unwrap();
    block_on(async {
        let db = cutover::db::Db::connect(&target, Default::default())
            .await
            .unwrap();
        let _tx = db.read_only().await.unwrap();
        let mut to_target = 0;
        for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let peer_port = getpeername::<SockaddrStorage>(fd)
                .ok()
                .and_then(|peer| peer.as_sockaddr_in().map(|a| a.port()));
            if peer_port != Some(port) {
                continue;
            }
            to_target += 1;
            // SAFETY: open in this process while the pool holds it.
            let socket = unsafe { BorrowedFd::borrow_raw(fd) };
            assert!(getsockopt(&socket, sockopt::KeepAlive).unwrap(), "fd {fd}");
            assert_eq!(getsockopt(&socket, sockopt::TcpKeepIdle).unwrap(), 10);
        }
        assert!(to_target >= 1, "the pool's connection is there");
        drop(_tx);
        db.close().await;
    });
}

/// The output lines a run's journal holds.
fn journaled_output(home: &Path) -> Vec<String> {
    block_on(async {
        let journal = cutover::journal::Journal::open(home, true).await.unwrap();
        let mut lines = Vec::new();
        for run in journal.runs().await.unwrap() {
            for event in journal.events(&run.id).await.unwrap() {
                if let cutover::journal::Entry::StepOutput { text, .. } = event.entry {
                    lines.extend(cutover::engine::output_lines(&text).map(str::to_string));
                }
            }
        }
        journal.close().await;
        lines
    })
}

/// A check running one shell step that prints 65 lines, then starts a grandchild that would
/// outlive an unsupervised run, then waits; returns the child, the home, and the folder
/// where the step writes its pids.
fn check_with_a_long_step(
    url: &str,
) -> (std::process::Child, tempfile::TempDir, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_runbook(
        dir.path(),
        &format!(
            r#"name = "long"
[[sections]]
id = "s"
title = "S"
[[sections.steps]]
id = "deploy"
title = "A long deploy"
kind = "shell"
command = '''
seq 1 65
sleep 300 &
echo $! > {dir}/grandchild.pid
echo $$ > {dir}/shell.pid
wait
'''
"#,
            dir = dir.path().display()
        ),
    );
    let child = cutover_in(
        home.path(),
        &[
            "check",
            "--runbook",
            &path,
            "--allow-shell",
            "--database-url",
            url,
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_until("the step runs its grandchild", 30, || {
        dir.path().join("shell.pid").exists()
    });
    (child, home, dir)
}

#[test]
fn output_is_journaled_within_a_moment_even_when_the_step_goes_quiet() {
    let url = fresh_database();
    let (mut child, home, _dir) = check_with_a_long_step(&url);
    // The 65 lines come, then nothing: a batch waiting for its next line would hold them
    // until the step ends, and a kill -9 meanwhile would lose them.
    wait_until("the quiet step's output is on disk", 10, || {
        journaled_output(home.path()).len() == 65
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(journaled_output(home.path()).last().unwrap(), "65");
}

#[test]
fn kill_9_of_cutover_ends_the_steps_process_group() {
    let url = fresh_database();
    let (mut child, _home, dir) = check_with_a_long_step(&url);
    let grandchild = read_pid(&dir.path().join("grandchild.pid"));
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();
    wait_until("the step's grandchild is gone", 10, || {
        process_gone(grandchild)
    });
}

#[test]
fn sigterm_sighup_and_sigint_cancel_the_running_step_record_why_and_exit() {
    let url = fresh_database();
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
        nix::sys::signal::Signal::SIGINT,
    ] {
        let (child, home, dir) = check_with_a_long_step(&url);
        let grandchild = read_pid(&dir.path().join("grandchild.pid"));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "{signal}: {}",
            stderr(&output)
        );
        assert!(
            process_gone(grandchild),
            "{signal}: the group was killed before exit"
        );
        let finished = block_on(async {
            let journal = cutover::journal::Journal::open(home.path(), true)
                .await
                .unwrap();
            let run = journal.runs().await.unwrap().remove(0);
            let events = journal.events(&run.id).await.unwrap();
            journal.close().await;
            events
                .into_iter()
                .find_map(|event| match event.entry {
                    cutover::journal::Entry::StepFinished {
                        status, message, ..
                    } => Some((status, message)),
                    _ => None,
                })
                .expect("the step's end is recorded")
        });
        assert_eq!(finished.0, cutover::outcome::Status::Error, "{signal}");
        assert!(
            finished
                .1
                .contains(&format!("cancelled: cutover received {signal}")),
            "{signal}: {}",
            finished.1
        );
    }
}
