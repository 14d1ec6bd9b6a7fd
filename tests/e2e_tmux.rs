//! The paths a person takes, in a real terminal: the binary runs in tmux against a real
//! database; keys go in with send-keys, the screen comes back with capture-pane.

mod common;

use std::process::Command;

use common::*;

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(width: u16, height: u16, command: &str) -> Tmux {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = format!("cutover-e2e-{}-{n}", std::process::id());
        let tmux = Tmux { socket };
        let status = tmux
            .command()
            .args(["new-session", "-d", "-s", "e2e", "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .arg(command)
            .status()
            .expect("tmux is installed (CI installs it; locally: apt-get install tmux)");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket]);
        command
    }

    fn screen(&self) -> String {
        let output = self
            .command()
            .args(["capture-pane", "-p", "-t", "e2e"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let status = self
            .command()
            .args(["send-keys", "-t", "e2e"])
            .args(keys)
            .status()
            .expect("send-keys");
        assert!(status.success());
    }

    fn resize(&self, width: u16, height: u16) {
        let status = self
            .command()
            .args(["resize-window", "-t", "e2e", "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .status()
            .expect("resize-window");
        assert!(status.success());
    }

    #[track_caller]
    fn wait_for(&self, text: &str) {
        self.wait_for_within(text, 30);
    }

    #[track_caller]
    fn wait_for_within(&self, text: &str, seconds: u64) {
        let mut last = String::new();
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until(&format!("the screen shows {text:?}"), seconds, || {
                last = self.screen();
                last.contains(text)
            })
        }));
        if found.is_err() {
            panic!("the screen never showed {text:?}; it shows:\n{last}");
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
    }
}

#[test]
fn a_person_opens_the_wizard_runs_a_step_reads_help_resizes_and_quits() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let after = home.path().join("after-exit.txt");
    // After the wizard exits, the shell records the terminal's modes: they must be sane again.
    let command = format!(
        "CUTOVER_HOME={home} {bin} run --rehearsal --database-url '{url}'; stty -a > {after}; echo WIZARD-EXITED; sleep 60",
        home = home.path().display(),
        bin = env!("CARGO_BIN_EXE_cutover"),
        after = after.display(),
    );
    let tmux = Tmux::start(100, 30, &command);

    tmux.wait_for("● connected");
    tmux.wait_for("Overview");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Environment");
    tmux.keys(&["Enter"]);
    tmux.wait_for("pass — PostgreSQL");
    tmux.wait_for("✓ connection");

    // The live panels, one key away on a 100-column screen: the monitor's figures arrive.
    tmux.keys(&["m"]);
    tmux.wait_for("connections");
    tmux.wait_for("Indexes · all");
    tmux.keys(&["m"]);
    tmux.wait_for("Database is reachable");

    tmux.keys(&["?"]);
    tmux.wait_for("this help");
    tmux.keys(&["Escape"]);
    wait_until("help closes", 30, || !tmux.screen().contains("this help"));

    tmux.resize(60, 20);
    tmux.wait_for("cutover");
    wait_until("the 60x20 frame", 30, || {
        tmux.screen().lines().all(|line| line.chars().count() <= 60)
    });
    tmux.resize(40, 12);
    tmux.wait_for("Terminal too small");
    tmux.resize(100, 30);
    tmux.wait_for("Environment");

    tmux.keys(&["q"]);
    tmux.wait_for("WIZARD-EXITED");
    let modes = std::fs::read_to_string(&after).unwrap();
    assert!(
        modes.contains(" icanon") && modes.contains(" echo"),
        "raw mode was left on: {modes}"
    );
    assert!(
        !tmux.screen().contains("Sections"),
        "the alternate screen was left"
    );
}

#[test]
fn the_header_shows_a_lost_connection_and_the_wizard_reconnects_by_itself() {
    let (mut cluster, url) = own_cluster(cutover::cluster::ClusterOptions::default());
    let home = tempfile::tempdir().unwrap();
    let command = format!(
        "CUTOVER_HOME={home} {bin} run --rehearsal --refresh 0.5 --database-url '{url}'; sleep 60",
        home = home.path().display(),
        bin = env!("CARGO_BIN_EXE_cutover"),
    );
    let tmux = Tmux::start(130, 30, &command);
    tmux.wait_for("● connected");
    tmux.wait_for("connections");

    cluster.stop();
    tmux.wait_for("✗ not connected, retrying");
    tmux.wait_for("connection refused");

    cluster.start_again().expect("the server starts again");
    tmux.wait_for("● connected");
    wait_until("the panels recover", 30, || {
        !tmux.screen().contains("stale")
    });
    tmux.keys(&["q"]);
}

#[test]
fn a_frozen_server_is_shown_as_not_answering_and_the_wizard_reconnects_when_it_resumes() {
    let cluster = cutover::cluster::Cluster::start(Default::default()).unwrap();
    let url = cluster.url("postgres");
    let home = tempfile::tempdir().unwrap();
    let command = format!(
        "CUTOVER_HOME={home} {bin} run --rehearsal --refresh 0.5 --database-url '{url}'; sleep 60",
        home = home.path().display(),
        bin = env!("CARGO_BIN_EXE_cutover"),
    );
    let tmux = Tmux::start(130, 30, &command);
    tmux.wait_for("● connected");
    let frozen = Frozen::server(&cluster);
    // The panels' refresh or the header's own ping gets no answer: said as such, not as a
    // firewall or a refused port.
    tmux.wait_for("✗ not connected, retrying");
    tmux.wait_for(&format!("no answer from 127.0.0.1:{}", cluster.port()));
    drop(frozen);
    tmux.wait_for("● connected");
    tmux.keys(&["q"]);
}

#[test]
fn a_person_quits_in_the_middle_comes_back_and_finds_the_run_as_it_was() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let wizard = format!(
        "CUTOVER_HOME={home} {bin} run --rehearsal --database-url '{url}'",
        home = home.path().display(),
        bin = env!("CARGO_BIN_EXE_cutover"),
    );
    let tmux = Tmux::start(
        110,
        32,
        &format!("{wizard}; {wizard}; echo BOTH-DONE; sleep 60"),
    );

    tmux.wait_for("● connected");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Environment");
    // Tick the third step (a manual one) with a note.
    tmux.keys(&["j", "j", "Enter"]);
    tmux.wait_for("A note for the record");
    tmux.keys(&["-l", "seen in the deploy config"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("environment.database_url: ticked");
    tmux.keys(&["q"]);

    tmux.wait_for("Resume it? [Y/n]");
    tmux.keys(&["Enter"]);
    tmux.wait_for("resumed run");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Environment");
    tmux.wait_for("✓ database_url");
    tmux.keys(&["q"]);
    tmux.wait_for("BOTH-DONE");

    let runs = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .arg("runs")
        .env("CUTOVER_HOME", home.path())
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&runs.stdout);
    assert_eq!(listing.lines().count(), 1, "one run, resumed: {listing}");
    assert!(
        listing.contains("wizard") && listing.contains("(unfinished)"),
        "{listing}"
    );
}

#[test]
fn a_second_wizard_is_told_who_holds_the_run_and_can_watch_it_live() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_cutover");
    let holder = Tmux::start(
        110,
        32,
        &format!(
            "CUTOVER_HOME={} {bin} run --rehearsal --database-url '{url}'; sleep 60",
            home.path().display()
        ),
    );
    holder.wait_for("● connected");
    let runs = Command::new(bin)
        .arg("runs")
        .env("CUTOVER_HOME", home.path())
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&runs.stdout).into_owned();
    let run_id = listing
        .split_whitespace()
        .next()
        .expect("a run")
        .to_string();

    let second = Command::new(bin)
        .args(["run", "--resume", &run_id, "--database-url", &url])
        .env("CUTOVER_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("is open in another wizard"), "{err}");
    assert!(err.contains("pid"), "says who: {err}");

    let watcher = Tmux::start(
        110,
        32,
        &format!(
            "CUTOVER_HOME={} {bin} run --resume {run_id} --read-only --database-url '{url}'; sleep 60",
            home.path().display()
        ),
    );
    watcher.wait_for("WATCHING");
    watcher.keys(&["Enter"]);
    watcher.wait_for("Environment");

    ticked_while_watched(&holder, &watcher);

    watcher.keys(&["Enter"]);
    watcher.wait_for("read-only");
    watcher.keys(&["q"]);
    holder.keys(&["q"]);
}

#[test]
fn a_wizard_killed_mid_step_loses_nothing_recorded_and_shows_the_steps_interrupted() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runbook = dir.path().join("runbook.toml");
    let group_file = dir.path().join("group");
    std::fs::write(
        &runbook,
        format!(
            r#"name = "killed"
[[sections]]
id = "s"
title = "S"
[[sections.steps]]
id = "note"
title = "A manual step"
kind = "manual"
[[sections.steps]]
id = "shell"
title = "A long shell step"
kind = "shell"
command = "echo $$ > {}; echo shell-started; sleep 300"
[[sections.steps]]
id = "query"
title = "A long query"
kind = "sql"
query = "SELECT pg_sleep(300) IS NULL"
expect = "all_true"
"#,
            group_file.display()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_cutover");
    let wizard = format!(
        "CUTOVER_HOME={} {bin} --runbook {} run --rehearsal --database-url '{url}'",
        home.path().display(),
        runbook.display()
    );
    let tmux = Tmux::start(110, 32, &format!("{wizard}; echo KILLED; sleep 60"));
    tmux.wait_for("● connected");
    tmux.keys(&["Enter"]);
    tmux.wait_for("A manual step");
    tmux.keys(&["Enter"]);
    tmux.wait_for("A note for the record");
    tmux.keys(&["-l", "before the crash"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("s.note: ticked");
    tmux.keys(&["a", "j"]);
    tmux.wait_for("shell-started");
    wait_until("the query runs", 30, || {
        psql(
            &url,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(300)%' AND application_name = 'cutover'",
        ) == "1"
    });

    let report = |home: &std::path::Path| -> serde_json::Value {
        let output = Command::new(bin)
            .args(["report", "--last", "--format", "json"])
            .env("CUTOVER_HOME", home)
            .output()
            .unwrap();
        serde_json::from_str(&String::from_utf8_lossy(&output.stdout)).unwrap()
    };
    let before = report(home.path());
    assert_eq!(before["steps"].as_array().unwrap().len(), 3, "{before}");

    // kill -9 the wizard: nothing gets to tidy up.
    let wizard_pid = Command::new("pgrep")
        // The wizard itself, not the shell that started it (whose command line holds the same).
        .args(["-f", &format!("^{bin} --runbook {} run", runbook.display())])
        .output()
        .unwrap();

    for pid in String::from_utf8_lossy(&wizard_pid.stdout).split_whitespace() {
        let pid: i32 = pid.parse().unwrap();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    tmux.wait_for("KILLED");
    let group: i32 = std::fs::read_to_string(&group_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(group),
        nix::sys::signal::Signal::SIGKILL,
    );

    let after = report(home.path());
    assert_eq!(after["steps"], before["steps"], "nothing recorded was lost");
    let status = |id: &str| {
        after["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| (s["status"].clone(), s["message"].clone()))
            .unwrap()
    };
    assert_eq!(status("s.note").0, "pass");
    for id in ["s.shell", "s.query"] {
        let (state, message) = status(id);
        assert_eq!(state, "error");
        assert!(
            message.as_str().unwrap().starts_with("interrupted"),
            "{id}: {message}"
        );
    }

    // The wizard comes back to the run as it was, the two steps shown as interrupted.
    let run_id = after["run_id"].as_str().unwrap();
    let back = Tmux::start(
        110,
        32,
        &format!(
            "CUTOVER_HOME={} {bin} --runbook {} run --resume {run_id} --database-url '{url}'; sleep 60",
            home.path().display(),
            runbook.display()
        ),
    );
    back.wait_for("resumed run");
    back.keys(&["Enter"]);
    back.wait_for("? shell");
    back.wait_for("? query");
    back.wait_for("✓ note");
    back.keys(&["q"]);
}

/// The issue's "done when": on a machine without Node, a new user opens the demo, finds the
/// release pending, walks to Apply, types the database name, and watches the migrations apply
/// and the indexes arrive in the panel; Verify then says up to date.
#[test]
fn a_person_opens_the_demo_finds_the_release_pending_and_deploys_it_natively() {
    let home = tempfile::tempdir().unwrap();
    let command = format!(
        "CUTOVER_HOME={home} {bin} demo; echo DEMO-EXITED; sleep 60",
        home = home.path().display(),
        bin = env!("CARGO_BIN_EXE_cutover"),
    );
    let tmux = Tmux::start(160, 45, &command);
    // The previous release's 200,000 summaries load first (about 12 s on 2 cores).
    tmux.wait_for_within("Overview", 120);
    tmux.wait_for("✗ Summary(userId)              MISSING");
    tmux.wait_for("✗ UsageEvent(userId, eventTyp… MISSING");

    // Apply: the native status lists what the deploy will apply.
    tmux.keys(&["Down", "Down", "Down", "Down", "Enter"]);
    tmux.wait_for("┌ Apply");
    tmux.keys(&["Down", "Down", "Enter"]);
    tmux.wait_for("6 migration(s) to deploy (2 applied)");
    tmux.wait_for("pending          20261130100000_add_progress");

    // Verify: not up to date until they are.
    tmux.keys(&["Right"]);
    tmux.wait_for("┌ Verify");
    tmux.keys(&["Enter"]);
    tmux.wait_for("not up to date: 6 pending (2 applied)");

    // Baseline: the database has a history, so Phase 1 has nothing to do (once confirmed).
    tmux.keys(&["Left", "Left"]);
    tmux.wait_for("┌ Baseline");
    tmux.keys(&["Down", "Enter"]);
    tmux.wait_for("Type the database name, sightline");
    tmux.keys(&["-l", "sightline"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("the database is baselined, nothing to do");

    // Apply: the deploy offers what it needs first (the dump, its check, the baseline
    // captures, the pre-migration checks), then asks for the name, then deploys.
    tmux.keys(&["Right"]);
    tmux.wait_for("┌ Apply");
    tmux.keys(&["Down"; 7]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("Run what it needs first?");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Type the database name, sightline");
    tmux.keys(&["-l", "sightline"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for_within("applying 20261130100000_add_progress", 120);
    tmux.wait_for_within("applied 6 migration(s)", 120);
    tmux.wait_for("Indexes · all 14 present");

    // Verify: up to date, natively.
    tmux.keys(&["Right"]);
    tmux.wait_for("┌ Verify");
    tmux.keys(&["Enter"]);
    tmux.wait_for("up to date: all 8 migration(s)");

    tmux.keys(&["q"]);
    tmux.wait_for("DEMO-EXITED");
}

/// A runbook whose one shell step starts a grandchild and waits; its pids go to `dir`.
fn long_step_runbook(dir: &std::path::Path) -> std::path::PathBuf {
    let runbook = dir.join("runbook.toml");
    std::fs::write(
        &runbook,
        format!(
            r#"name = "long"
[[sections]]
id = "s"
title = "S"
[[sections.steps]]
id = "deploy"
title = "A long deploy"
kind = "shell"
command = '''
sleep 300 &
echo $! > {dir}/grandchild.pid
echo $$ > {dir}/shell.pid
echo deploy-$((1 + 1))-started
wait
'''
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    runbook
}

fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // pid (comm) state ppid ...: the command may hold spaces, so read after its `)`.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn last_report(home: &std::path::Path) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["report", "--last", "--format", "json"])
        .env("CUTOVER_HOME", home)
        .output()
        .unwrap();
    serde_json::from_str(&String::from_utf8_lossy(&output.stdout)).unwrap()
}

#[test]
fn closing_the_terminal_cancels_the_running_step_kills_its_group_and_records_why() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runbook = long_step_runbook(dir.path());
    let tmux = Tmux::start(
        110,
        32,
        &format!(
            "CUTOVER_HOME={} {} --runbook {} run --rehearsal --database-url '{url}'",
            home.path().display(),
            env!("CARGO_BIN_EXE_cutover"),
            runbook.display()
        ),
    );
    tmux.wait_for("● connected");
    tmux.keys(&["Enter"]);
    tmux.wait_for("A long deploy");
    tmux.keys(&["Enter"]);
    tmux.wait_for("deploy-2-started");
    let grandchild = read_pid(&dir.path().join("grandchild.pid"));
    // The pane goes away, as when the SSH session drops: the wizard gets SIGHUP.
    drop(tmux);
    wait_until("the step's grandchild is gone", 15, || {
        process_gone(grandchild)
    });
    let mut last = serde_json::Value::Null;
    let recorded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until("the step's end is recorded", 15, || {
            last = last_report(home.path());
            last["steps"][0]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("cancelled: cutover received SIGHUP"))
        })
    }));
    assert!(recorded.is_ok(), "recorded: {last:#}");
}

#[test]
fn a_resumed_run_names_the_processes_a_killed_session_left_and_ends_them() {
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runbook = long_step_runbook(dir.path());
    let bin = env!("CARGO_BIN_EXE_cutover");
    let wizard = |extra: &str| {
        format!(
            "CUTOVER_HOME={} {bin} --runbook {} run --rehearsal {extra} --database-url '{url}'; echo ENDED; sleep 60",
            home.path().display(),
            runbook.display()
        )
    };
    let first = Tmux::start(110, 32, &wizard(""));
    first.wait_for("● connected");
    first.keys(&["Enter"]);
    first.wait_for("A long deploy");
    first.keys(&["Enter"]);
    // The line as output, not the command's text in the help pane: once it is on screen, the
    // step's process group (sent before any output) is journaled.
    first.wait_for("deploy-2-started");
    let grandchild = read_pid(&dir.path().join("grandchild.pid"));
    // The step's supervisor killed, then cutover: nothing is left to end the group.
    let supervisor = parent_of(read_pid(&dir.path().join("shell.pid")));
    let cutover = parent_of(supervisor);
    for pid in [supervisor, cutover] {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    first.wait_for("ENDED");
    assert!(!process_gone(grandchild), "the grandchild survived");

    let run_id = last_report(home.path())["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = Tmux::start(110, 32, &wizard(&format!("--resume {run_id}")));
    let shown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        second.wait_for("Processes left running")
    }));
    if shown.is_err() {
        let ps = Command::new("ps")
            .args(["-eo", "pid,pgid,ppid,stat,cmd"])
            .output()
            .unwrap();
        let journal = Command::new(bin)
            .args(["report", "--last", "--format", "md"])
            .env("CUTOVER_HOME", home.path())
            .output()
            .unwrap();
        panic!(
            "no survivors offered; supervisor {supervisor}, grandchild {grandchild} (gone: {})\n{}\n{}",
            process_gone(grandchild),
            String::from_utf8_lossy(&ps.stdout)
                .lines()
                .filter(|l| l.contains("sleep 300") || l.contains("cutover"))
                .collect::<Vec<_>>()
                .join("\n"),
            String::from_utf8_lossy(&journal.stdout)
        );
    }
    second.wait_for(&format!("s.deploy: pid {supervisor}"));
    second.keys(&["Enter"]);
    wait_until("the survivors are ended", 15, || process_gone(grandchild));
    second.wait_for("ending 1 process group(s)");
    second.keys(&["q"]);
}

/// The demo rehearsed, then walked for real: `cutover rehearse --fresh-dump` restores a fresh
/// dump of the demo into a throwaway cluster, verifies every count against the dump's own
/// snapshot, rehearses the six pending migrations with their locks, and validates the copy; the
/// production wizard that follows shows each step's rehearsed time, and its rollback section
/// the measured restore beside the locks that will make the app wait.
#[test]
fn the_demo_rehearsed_on_a_fresh_dump_shows_its_timings_in_the_production_walk() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (_demo, url, app_dir) = demo_database(home.path(), work.path());

    let migrations = work.path().join("prisma/migrations");
    let rehearsed = cutover_in(
        home.path(),
        &[
            "rehearse",
            "--fresh-dump",
            "--database-url",
            &url,
            "--migrations",
            migrations.to_str().unwrap(),
        ],
    )
    .current_dir(work.path())
    .output()
    .unwrap();
    let out = stdout(&rehearsed);
    assert_eq!(
        rehearsed.status.code(),
        Some(0),
        "{out}{}",
        stderr(&rehearsed)
    );
    assert!(
        out.contains("every count equal to the dump's snapshot"),
        "{out}"
    );
    // The release builds its indexes CONCURRENTLY: each holds SHARE UPDATE EXCLUSIVE on its
    // table while it builds, which the app does not wait for.
    assert!(
        out.lines().any(|l| l
            .contains("ShareUpdateExclusive on public.\"Summary\" (200000 rows) held ")
            && l.ends_with("the app's reads and writes go on")),
        "each statement with its locks: {out}"
    );
    assert!(out.contains("validation on the migrated copy:"), "{out}");
    assert!(
        out.contains("rehearsed 6 pending migration(s) in "),
        "{out}"
    );

    // The production walk on the same database.
    let command = format!(
        "CUTOVER_HOME={home} {bin} run --database-url '{url}' --var app_dir={app_dir}; echo WIZARD-EXITED; sleep 60",
        home = home.path().display(),
        bin = env!("CARGO_BIN_EXE_cutover"),
    );
    let tmux = Tmux::start(160, 45, &command);
    tmux.wait_for_within("Overview", 60);
    // Apply: the deploy's row shows what it took in the rehearsal.
    tmux.keys(&["Down", "Down", "Down", "Down", "Enter"]);
    tmux.wait_for("┌ Apply");
    let screen = tmux.screen();
    assert!(
        screen
            .lines()
            .any(|l| l.contains(" deploy ") && l.contains(" ~")),
        "the deploy's rehearsed time on its row:\n{screen}"
    );
    // Rollback: the time budget reads the rehearsal's restore and its locks.
    tmux.keys(&["Right"; 4]);
    tmux.wait_for("┌ Rollback");
    tmux.keys(&["Down", "Down", "Down", "Enter"]);
    tmux.wait_for_within("a full restore took ", 60);
    tmux.wait_for("the rehearsed migrations took no lock");

    tmux.keys(&["q"]);
    tmux.wait_for("WIZARD-EXITED");
}

/// A demo stopped as Ctrl-C stops it (its cluster and files removed) when the test ends, even
/// when it fails.
/// `cutover demo --print-url` with the sample app written to `work`: the demo (stopped on
/// drop), its URL, and the app's folder.
fn demo_database(home: &std::path::Path, work: &std::path::Path) -> (Stopped, String, String) {
    cutover::demo::write_app(work).unwrap();
    let app_dir = work.display().to_string();
    let mut demo = Stopped(
        cutover_in(
            home,
            &[
                "demo",
                "--print-url",
                "--var",
                &format!("app_dir={app_dir}"),
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap(),
    );
    let mut reader = std::io::BufReader::new(demo.0.stdout.take().unwrap());
    let mut url = String::new();
    std::io::BufRead::read_line(&mut reader, &mut url).unwrap();
    let url = url.trim().to_string();
    assert!(
        url.starts_with("postgres"),
        "the demo prints its URL: {url:?}"
    );
    (demo, url, app_dir)
}

struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// The operator, on the destructive runbook's wizard, runs its step and confirms it with the
/// database's name; under the two-person rule it then waits for approval.
fn confirmed_and_waiting(operator: &Tmux, database: &str) {
    operator.wait_for("● connected");
    operator.keys(&["Enter"]);
    operator.wait_for("┌ Apply");
    operator.keys(&["Enter"]);
    operator.wait_for("┌ Destructive step");
    operator.keys(&["-l", database]);
    operator.keys(&["Enter"]);
    operator.wait_for("awaits approval");
}

/// The watcher's header says it watches, and whom (their pid); it opens the Environment
/// section.
fn watching_the_holder(observer: &Tmux) {
    observer.wait_for("WATCHING");
    observer.wait_for(" pid ");
    observer.keys(&["Enter"]);
    observer.wait_for("Environment");
}

/// The operator opens Environment and ticks its third step (a manual one, no note), and the
/// watcher sees it ticked.
fn ticked_while_watched(operator: &Tmux, observer: &Tmux) {
    operator.keys(&["Enter"]);
    operator.wait_for("Environment");
    operator.keys(&["j", "j", "Enter"]);
    operator.wait_for("A note for the record");
    operator.keys(&["Enter"]);
    operator.wait_for("✓ database_url");
    observer.wait_for("✓ database_url");
}

/// `cutover watch` with no run named follows the newest unfinished one, on the observer's own
/// terminal size, from the URL the run recorded; the operator's step shows up on its screen.
#[test]
fn an_observer_watches_the_newest_run_on_a_terminal_of_their_own() {
    let home = tempfile::tempdir().unwrap();
    let shared = format!("CUTOVER_HOME={}", home.path().display());
    followed_until_the_operator_leaves(&shared, &shared);

    // A journal with no run: nothing to watch, said on one line.
    let empty = tempfile::tempdir().unwrap();
    let output = cutover_in(empty.path(), &["watch"]).output().unwrap();
    assert_one_line_error(&output, 2, "no unfinished run to watch in ");
}

/// Two engineers, two OS accounts on one machine: the operator shares the journal with a
/// group (`--share-group`), and an account of that group watches the run live from its own
/// terminal (`--journal PATH watch`). A journal not shared is refused, naming what is missing.
/// The test makes the group and the account (CI runs as root).
#[test]
fn another_account_of_the_shared_group_watches_the_run_live() {
    let Some(watcher) = second_account() else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_cutover");

    // Not shared: refused on one line, naming the permission missing.
    let private = tempfile::tempdir().unwrap();
    assert!(
        cutover_in(private.path(), &["runs"])
            .status()
            .unwrap()
            .success()
    );
    let refused = watcher.cutover(private.path(), &["runs"]).output().unwrap();
    assert_one_line_error(
        &refused,
        2,
        "this account cannot read it (it is 600, owner root, group root); the operator shares it with `--share-group GROUP`",
    );

    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let operator = Tmux::start(
        110,
        32,
        &format!(
            "CUTOVER_HOME={} {bin} --share-group {PAIR_GROUP} run --rehearsal --database-url '{url}'; sleep 60",
            home.path().display()
        ),
    );
    operator.wait_for("● connected");
    let observer = Tmux::start(
        140,
        40,
        &format!(
            "{} --journal {}/journal.sqlite3 watch; echo WATCH-EXITED; sleep 60",
            watcher.shell_prefix(""),
            home.path().display()
        ),
    );
    watching_the_holder(&observer);

    ticked_while_watched(&operator, &observer);
    observer.keys(&["q"]);
    observer.wait_for("WATCH-EXITED");
    operator.keys(&["q"]);
}

/// Another account watches a run its operator has left (the journal then read as it stands:
/// nothing writes it), and the operator comes back to it: the observer sees them return and
/// what they do next, without opening the run again.
#[test]
fn another_account_watching_a_left_run_sees_its_operator_resume_it() {
    let Some(watcher) = second_account() else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_cutover");
    let url = fresh_database();
    let home = tempfile::tempdir().unwrap();
    let wizard = format!(
        "CUTOVER_HOME={} {bin} --share-group {PAIR_GROUP} run --rehearsal --database-url '{url}'",
        home.path().display()
    );
    // Run, leave, and (once the observer watches) run again, which offers to resume the run
    // left.
    let operator = Tmux::start(
        110,
        32,
        &format!("{wizard}; echo LEFT; read again; {wizard}; sleep 60"),
    );
    operator.wait_for("● connected");
    operator.keys(&["q"]);
    operator.wait_for("LEFT");
    let observer = Tmux::start(
        140,
        40,
        &format!(
            "{} --journal {}/journal.sqlite3 watch; echo WATCH-EXITED; sleep 60",
            watcher.shell_prefix(""),
            home.path().display()
        ),
    );
    observer.wait_for("nobody holds the run: the operator is gone");
    observer.keys(&["Enter"]);
    observer.wait_for("Environment");

    operator.keys(&["Enter"]);
    operator.wait_for("Resume it? [Y/n]");
    operator.keys(&["Enter"]);
    observer.wait_for(" pid ");
    ticked_while_watched(&operator, &observer);
    observer.keys(&["q"]);
    observer.wait_for("WATCH-EXITED");
    operator.keys(&["q"]);
}

/// The two-person rule on one shared account: the operator confirms a destructive step and it
/// waits; an observer who gave no name of their own is the operator for the rule, and is told
/// so; one who did (`watch --as alice`) rejects it with a reason, and the operator's step fails
/// with it, nothing run.
#[test]
fn an_observer_sharing_the_operators_account_rejects_a_destructive_step_with_a_reason() {
    let url = fresh_database();
    let database = database_of(&url);
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let runbook = write_runbook(work.path(), DESTRUCTIVE_RUNBOOK);
    let bin = env!("CARGO_BIN_EXE_cutover");
    let operator = Tmux::start(
        170,
        32,
        &format!(
            "cd {} && CUTOVER_HOME={} {bin} run --runbook {runbook} --database-url '{url}' --require-approval; sleep 60",
            work.path().display(),
            home.path().display()
        ),
    );
    confirmed_and_waiting(&operator, &database);
    operator.wait_for("waiting for a second person's approval");

    let watch = |name: &str| {
        let observer = Tmux::start(
            130,
            40,
            &format!(
                "CUTOVER_HOME={} {bin} watch {name}; echo WATCH-EXITED; sleep 60",
                home.path().display()
            ),
        );
        // Asked at once, on the step's screen, with what it runs and where.
        observer.wait_for("Approve a destructive step");
        observer.wait_for("shell: echo changed > changed.txt");
        observer.wait_for(&format!("/{database}"));
        observer
    };
    let unnamed = watch("");
    unnamed.keys(&["-l", &database]);
    unnamed.keys(&["Enter"]);
    unnamed.wait_for("you are the operator of run");
    unnamed.keys(&["q"]);
    unnamed.wait_for("WATCH-EXITED");

    let alice = watch("--as alice");
    alice.keys(&["Escape"]);
    alice.keys(&["n"]);
    alice.wait_for("Why do you reject it?");
    alice.keys(&["-l", "the backup is not verified"]);
    alice.keys(&["Enter"]);
    operator.wait_for("✗ change");
    operator.wait_for("rejected by alice (");
    alice.wait_for("✗ change");
    assert!(!work.path().join("changed.txt").exists(), "nothing ran");
    alice.keys(&["q"]);
    operator.keys(&["q"]);

    let report = cutover_in(home.path(), &["report", "--last"])
        .output()
        .unwrap();
    let md = stdout(&report);
    assert!(
        md.contains("rejected by alice (") && md.contains("the operator's own account"),
        "the record says the account was shared: {md}"
    );
    assert!(md.contains("the backup is not verified"), "{md}");
}

/// Done when: two engineers, each on their own terminal and OS account, run and watch the
/// demo's migration in production under the two-person rule. The baseline and the deploy
/// each wait until the observer approves them in their own terminal, the deploy's scripts on
/// the observer's screen; the report names the operator and the approver.
#[test]
fn the_demo_deploy_waits_for_the_approval_of_an_observer_on_another_account() {
    demo_deploy_approved_by_an_observer(None);
}

/// The same, with the journal in PostgreSQL (`--journal-url`) instead of a shared file.
#[test]
fn the_demo_deploy_waits_for_an_observer_through_a_journal_in_postgres() {
    demo_deploy_approved_by_an_observer(Some(empty_database()));
}

fn demo_deploy_approved_by_an_observer(control: Option<String>) {
    let Some(watcher) = second_account() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (_demo, url, app_dir) = demo_database(home.path(), work.path());
    let bin = env!("CARGO_BIN_EXE_cutover");
    // Shared through a group and a file, or through the control database.
    let (operators, observers) = match &control {
        None => (
            format!("--share-group {PAIR_GROUP}"),
            format!("--journal {}/journal.sqlite3", home.path().display()),
        ),
        Some(control) => (
            format!("--journal-url '{control}'"),
            format!("--journal-url '{control}'"),
        ),
    };
    let operator = Tmux::start(
        160,
        45,
        &format!(
            "CUTOVER_HOME={} {bin} {operators} run --database-url '{url}' --var app_dir={app_dir} --require-approval; echo WIZARD-EXITED; sleep 60",
            home.path().display()
        ),
    );
    operator.wait_for_within("Overview", 60);
    let observer = Tmux::start(
        140,
        45,
        &format!(
            "{} {observers} watch; echo WATCH-EXITED; sleep 60",
            watcher.shell_prefix("SSH_CONNECTION='203.0.113.9 50022 10.0.0.1 22'"),
        ),
    );
    observer.wait_for("WATCHING");

    // Baseline: confirmed by the operator, approved by the observer.
    operator.keys(&["Down", "Down", "Down", "Enter"]);
    operator.wait_for("┌ Baseline");
    operator.keys(&["Down", "Enter"]);
    operator.wait_for("Type the database name, sightline");
    operator.keys(&["-l", "sightline"]);
    operator.keys(&["Enter"]);
    operator.wait_for("awaits approval");
    observer.wait_for("Approve a destructive step");
    observer.wait_for("baseline: record the live schema");
    observer.keys(&["-l", "sightline"]);
    observer.keys(&["Enter"]);
    operator.wait_for("the database is baselined, nothing to do");

    // Apply: what the deploy needs runs first; the deploy itself waits for the observer,
    // whose screen shows the six pending migrations.
    operator.keys(&["Right"]);
    operator.wait_for("┌ Apply");
    operator.keys(&["Down"; 7]);
    operator.keys(&["Enter"]);
    operator.wait_for("Run what it needs first?");
    operator.keys(&["Enter"]);
    operator.wait_for("Type the database name, sightline");
    operator.keys(&["-l", "sightline"]);
    operator.keys(&["Enter"]);
    operator.wait_for_within("awaits approval", 180);
    observer.wait_for("Approve a destructive step");
    observer.wait_for("deploy: 6 pending migration(s)");
    assert!(
        !operator.screen().contains("applying "),
        "nothing is applied before the approval"
    );
    observer.keys(&["-l", "sightline"]);
    observer.keys(&["Enter"]);
    operator.wait_for_within("applied 6 migration(s)", 120);
    observer.wait_for(&format!("approved by {WATCHER} ({WATCHER}@"));
    observer.keys(&["q"]);
    observer.wait_for("WATCH-EXITED");
    operator.keys(&["q"]);
    operator.wait_for("WIZARD-EXITED");

    let mut report = cutover_in(home.path(), &["report", "--last"]);
    if let Some(control) = &control {
        report.env("CUTOVER_JOURNAL_URL", control);
    }
    let md = stdout(&report.output().unwrap());
    let operator_name = cutover::journal::operator();
    assert!(
        md.contains(&format!("| Operator | {operator_name} |")),
        "{md}"
    );
    let approvals: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with("## Sign-offs"))
        .filter(|l| l.contains("as the second person"))
        .collect();
    assert_eq!(approvals.len(), 2, "the baseline's and the deploy's: {md}");
    assert!(
        approvals
            .iter()
            .all(|l| l.contains(&format!("{WATCHER} ({WATCHER}@"))
                && l.contains("over SSH from 203.0.113.9")),
        "{md}"
    );
}

/// Across machines: the journal in a control database (`--journal-url`), the operator and the
/// observer with nothing else in common (two data directories). The observer follows through
/// LISTEN/NOTIFY, sees who holds the run (a session advisory lock), and is told when the
/// operator is gone.
#[test]
fn an_observer_elsewhere_follows_the_run_through_a_journal_in_postgres() {
    let control = empty_database();
    let operator_home = tempfile::tempdir().unwrap();
    let observer_home = tempfile::tempdir().unwrap();
    followed_until_the_operator_leaves(
        &format!(
            "CUTOVER_HOME={} CUTOVER_JOURNAL_URL='{control}'",
            operator_home.path().display()
        ),
        &format!(
            "CUTOVER_HOME={} CUTOVER_JOURNAL_URL='{control}'",
            observer_home.path().display()
        ),
    );
}

/// The operator (`operator_env` set) opens a rehearsal run on a fresh database; the observer
/// (`observer_env` set) watches the newest run on a terminal of another size, sees the
/// operator's step ticked, and is told when the operator leaves.
fn followed_until_the_operator_leaves(operator_env: &str, observer_env: &str) {
    let url = fresh_database();
    let bin = env!("CARGO_BIN_EXE_cutover");
    let operator = Tmux::start(
        110,
        32,
        &format!("{operator_env} {bin} run --rehearsal --database-url '{url}'; sleep 60"),
    );
    operator.wait_for("● connected");
    let observer = Tmux::start(
        150,
        40,
        &format!("{observer_env} {bin} watch; echo WATCH-EXITED; sleep 60"),
    );
    watching_the_holder(&observer);
    ticked_while_watched(&operator, &observer);
    // The operator leaves: the observer is told.
    operator.keys(&["q"]);
    observer.wait_for("nobody holds the run: the operator is gone (their cutover ended)");
    observer.keys(&["q"]);
    observer.wait_for("WATCH-EXITED");
}

/// The two-person rule across machines: the journal in PostgreSQL, the observer with a
/// database role of their own and a data directory of their own. The operator's destructive
/// step waits until the observer approves it on their screen; the record names the role.
#[test]
fn an_observer_elsewhere_approves_through_a_journal_in_postgres() {
    let url = fresh_database();
    let database = database_of(&url);
    let control = empty_database();
    let operator_home = tempfile::tempdir().unwrap();
    let observer_home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let runbook = write_runbook(work.path(), DESTRUCTIVE_RUNBOOK);
    let bin = env!("CARGO_BIN_EXE_cutover");
    let operator = Tmux::start(
        170,
        32,
        &format!(
            "cd {} && CUTOVER_HOME={} CUTOVER_JOURNAL_URL='{control}' {bin} run --runbook {runbook} --database-url '{url}' --require-approval; sleep 60",
            work.path().display(),
            operator_home.path().display()
        ),
    );
    // The schema is the operator's cutover's to make.
    operator.wait_for("● connected");
    let (role, observers_url) = journal_role(&control, "observer");
    confirmed_and_waiting(&operator, &database);

    let observer = Tmux::start(
        130,
        40,
        &format!(
            "CUTOVER_HOME={} {bin} --journal-url '{}' watch --database-url '{url}'; echo WATCH-EXITED; sleep 60",
            observer_home.path().display(),
            observers_url
        ),
    );
    observer.wait_for("Approve a destructive step");
    observer.wait_for("shell: echo changed > changed.txt");
    observer.keys(&["-l", &database]);
    observer.keys(&["Enter"]);
    operator.wait_for("✓ change");
    observer.wait_for(&format!("approved by {role} ("));
    assert!(work.path().join("changed.txt").exists());
    observer.keys(&["q"]);
    observer.wait_for("WATCH-EXITED");
    operator.keys(&["q"]);

    let report = cutover_in(
        operator_home.path(),
        &["--journal-url", &control, "report", "--last"],
    )
    .output()
    .unwrap();
    let md = stdout(&report);
    assert!(
        md.contains(&format!("{role} (")) && md.contains(&format!("database role {role}")),
        "{md}"
    );
}
