//! Shared test fixtures: real PostgreSQL clusters from the project's cluster module.
//!
//! One cluster per test binary holds the sample Sightline database as a template; every test
//! that may change its database gets its own copy (`CREATE DATABASE ... TEMPLATE`), so tests
//! run in parallel without seeing each other's damage. Tests that need other server settings
//! (TLS, passwords, archiving, small max_connections) start their own cluster.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use cutover::check::{self, CheckOptions, CheckReport, StepReport};
use cutover::cluster::{Cluster, ClusterOptions};
use cutover::demo::{self, DemoContents};
use cutover::outcome::Status;
use cutover::probes::Catalog;
use cutover::runbook::{self, Runbook};
use cutover::target::Target;

const TEMPLATE: &str = "sightline_template";

/// The shared cluster with the loaded template database.
pub fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(|| {
        let cluster = Cluster::start(ClusterOptions::default()).expect("start shared cluster");
        cluster.create_database(TEMPLATE).expect("create template");
        let url = cluster.url(TEMPLATE);
        // On a thread of its own: the first caller may be inside a tokio test's runtime.
        std::thread::spawn(move || block_on(demo::load(&url, DemoContents::default())))
            .join()
            .expect("loader thread")
            .expect("load demo");
        cluster
    })
}

/// A fresh copy of the sample database on the shared cluster; returns its URL.
pub fn fresh_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let cluster = shared();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    cluster
        .psql(
            "postgres",
            &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{TEMPLATE}\""),
        )
        .expect("clone template");
    cluster.url(&name)
}

/// A new empty database on the shared cluster; returns its URL.
pub fn empty_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "e{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    shared()
        .psql("postgres", &format!("CREATE DATABASE \"{name}\""))
        .expect("create database");
    shared().url(&name)
}

/// Runs SQL on the database at `url` as the superuser (the test breaking things).
pub fn psql(url: &str, sql: &str) -> String {
    let database = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    shared().psql(database, sql).expect("psql")
}

/// A cluster of its own, loaded with the sample database; returns it and the URL.
pub fn own_cluster(options: ClusterOptions) -> (Cluster, String) {
    block_on(demo::start(options, DemoContents::default())).expect("start own cluster")
}

/// Runs a future to completion on a fresh runtime (usable from any thread).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// The bundled runbook.
pub fn bundled() -> Arc<Runbook> {
    Arc::new(runbook::bundled(&Catalog).expect("bundled runbook loads"))
}

/// A runbook from TOML text.
pub fn runbook_from(text: &str) -> Arc<Runbook> {
    Arc::new(runbook::load_str(text, "test.toml", &Catalog).expect("test runbook loads"))
}

/// Runs `check` with `options` and returns the report.
pub async fn check_with(runbook: Arc<Runbook>, url: &str, options: CheckOptions) -> CheckReport {
    let target = Target::from_url(url).expect("url");
    check::run_check(runbook, &target, &options)
        .await
        .expect("check runs")
}

/// Runs one step of the bundled runbook against `url`.
pub async fn bundled_step(url: &str, id: &str) -> StepReport {
    step_of(bundled(), url, id, BTreeMap::new()).await
}

/// Runs one step of `runbook` against `url`.
pub async fn step_of(
    runbook: Arc<Runbook>,
    url: &str,
    id: &str,
    variables: BTreeMap<String, String>,
) -> StepReport {
    let options = CheckOptions {
        only: vec![id.to_string()],
        variables,
        ..CheckOptions::default()
    };
    let report = check_with(runbook, url, options).await;
    // `--only` runs the step after what it needs of its own section.
    report
        .steps
        .into_iter()
        .find(|step| step.id == id)
        .unwrap_or_else(|| panic!("step {id} selected"))
}

/// Asserts a status, printing the whole step when it differs.
#[track_caller]
pub fn assert_status(step: &StepReport, status: Status) {
    assert_eq!(
        step.status, status,
        "{}: {} — {:#?}",
        step.id, step.message, step.details
    );
}

/// A runbook of one probe step with params (TOML inline table text, may be empty).
pub fn probe_runbook(probe: &str, params: &str) -> Arc<Runbook> {
    let params = if params.is_empty() {
        String::new()
    } else {
        format!("params = {params}\n")
    };
    runbook_from(&format!(
        "name = \"probe\"\n[[sections]]\nid = \"s\"\ntitle = \"S\"\n[[sections.steps]]\nid = \"p\"\ntitle = \"P\"\nkind = \"probe\"\nprobe = \"{probe}\"\n{params}"
    ))
}

/// Waits until `condition` holds, looking every 50 ms; fails the test after `seconds`.
#[track_caller]
pub fn wait_until(what: &str, seconds: u64, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up after {seconds}s waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whether process `pid` has exited (gone, or a zombie that init has yet to reap).
pub fn process_gone(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty() || stat.contains(") Z ")
}

/// A psql session running `sql` in the background; killed, and its server session ended, on
/// drop.
pub struct Session {
    child: std::process::Child,
    psql: std::path::PathBuf,
    port: u16,
    database: String,
}

/// Starts a background psql session on the shared cluster's database of `url` (see
/// [`Session`]).
pub fn background_psql(url: &str, sql: &str) -> Session {
    let database = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    background_psql_on(shared(), database, sql)
}

/// Starts a background psql session on `database` of `cluster` (one without a password).
pub fn background_psql_on(cluster: &Cluster, database: &str, sql: &str) -> Session {
    let psql = cluster.bin_dir().join("psql");
    let child = std::process::Command::new(&psql)
        .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-p"])
        .arg(cluster.port().to_string())
        .args(["-d", database, "-c", sql])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("psql starts");
    Session {
        child,
        psql,
        port: cluster.port(),
        database: database.to_string(),
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The server notices a vanished client only when it next talks to it: end the
        // sessions so that nothing this test began holds locks on the cluster.
        let _ = std::process::Command::new(&self.psql)
            .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .args(["-d", &self.database, "-c"])
            .arg(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .output();
    }
}

/// Starts `CREATE INDEX CONCURRENTLY "Tag_createdAt_idx" ON "Tag" ("createdAt")` on the database
/// of `url` and holds it in its first phase, the index already in the catalog and not yet
/// valid, behind an open writing transaction. Both sessions end when the result drops.
pub fn hold_create_index_concurrently(url: &str) -> [Session; 2] {
    let holder = background_psql(
        url,
        r#"BEGIN; INSERT INTO "Tag" (id, name, type) VALUES ('held', 'held', 'TOPIC'); SELECT pg_sleep(60); COMMIT;"#,
    );
    // The build must start after the insert, or it would not wait for it.
    wait_until("the writing transaction holds its lock", 30, || {
        psql(
            url,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE '%pg_sleep(60)%' \
               AND wait_event = 'PgSleep'",
        ) == "1"
    });
    let builder = background_psql(
        url,
        r#"CREATE INDEX CONCURRENTLY "Tag_createdAt_idx" ON "Tag" ("createdAt")"#,
    );
    wait_until("the concurrent build has begun", 30, || {
        psql(
            url,
            "SELECT count(*) FROM pg_stat_progress_create_index WHERE datname = current_database()",
        ) == "1"
    });
    [holder, builder]
}

/// The real binary with `home` as its data directory, no target in its environment, no
/// colours, run from the temporary folder.
pub fn cutover_in(home: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"));
    command
        .args(args)
        .env("CUTOVER_HOME", home)
        .env("NO_COLOR", "1");
    for name in [
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
    ] {
        command.env_remove(name);
    }
    command.current_dir(std::env::temp_dir());
    command
}

/// Holds `LOCK TABLE "Tag" IN ACCESS EXCLUSIVE MODE` in an open transaction on the database of
/// `url`, returning once the lock is granted; the session ends when the result drops.
pub fn hold_table_lock(url: &str) -> Session {
    let holder = background_psql(
        url,
        r#"BEGIN; LOCK TABLE "Tag" IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;"#,
    );
    wait_until("the lock is held", 30, || {
        psql(
            url,
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = 'Tag' AND l.mode = 'AccessExclusiveLock' AND l.granted",
        ) == "1"
    });
    holder
}

/// Stops (SIGSTOP) a server and all its processes: what a partition or a hung host looks
/// like to a client. Resumed on drop, so the cluster can be stopped.
pub struct Frozen(Vec<i32>);

impl Frozen {
    pub fn server(cluster: &Cluster) -> Frozen {
        let postmaster = cluster.server_pid().expect("the server runs");
        let children = std::process::Command::new("pgrep")
            .args(["-P", &postmaster.to_string()])
            .output()
            .unwrap();
        let mut pids: Vec<i32> = String::from_utf8_lossy(&children.stdout)
            .split_whitespace()
            .filter_map(|pid| pid.parse().ok())
            .collect();
        pids.push(postmaster);
        for pid in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGSTOP,
            );
        }
        Frozen(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
    }
}

// The command line as a user meets it (cli.rs, faults.rs).

/// The real binary, with the tests' data directory and no target in the environment.
pub fn cutover(args: &[&str]) -> std::process::Command {
    cutover_in(&std::env::temp_dir().join("cutover-test-home"), args)
}

/// Runs the binary (see [`cutover`]) to its end.
pub fn run(args: &[&str]) -> std::process::Output {
    cutover(args).output().expect("run cutover")
}

/// What it printed on stdout.
pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What it printed on stderr.
pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exit `code` and one line on stderr, `error: ...` holding `needle`, no panic.
#[track_caller]
pub fn assert_one_line_error(output: &std::process::Output, code: i32, needle: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Writes `text` as `runbook.toml` in `dir`; returns its path.
pub fn write_runbook(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("runbook.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The pid a test's shell step wrote to `path`, once it is there.
pub fn read_pid(path: &std::path::Path) -> i32 {
    let mut pid = None;
    wait_until(&format!("{} holds a pid", path.display()), 30, || {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok());
        pid.is_some()
    });
    pid.unwrap()
}

/// A second OS account in a group shared with root, for the pairing tests: made once (CI runs
/// as root); `None` when this is not root, and the test says it skipped.
pub struct SecondAccount {
    /// Its data directory (its logs; it reads the operator's journal with `--journal`).
    pub home: std::path::PathBuf,
}

/// The group the operator shares the journal with.
pub const PAIR_GROUP: &str = "cutover-pair-test";
/// The second account, in [`PAIR_GROUP`].
pub const WATCHER: &str = "cutover-watcher-test";

pub fn second_account() -> Option<SecondAccount> {
    if !nix::unistd::getuid().is_root() {
        eprintln!("skipped: making a second OS account needs root (CI runs as root)");
        return None;
    }
    static MADE: OnceLock<()> = OnceLock::new();
    MADE.get_or_init(|| {
        let _ = std::process::Command::new("groupadd")
            .arg(PAIR_GROUP)
            .status();
        let _ = std::process::Command::new("useradd")
            .args(["-M", "-G", PAIR_GROUP, "-s", "/bin/sh", WATCHER])
            .status();
    });
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    Some(SecondAccount {
        home: std::env::temp_dir().join(format!(
            "{WATCHER}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        )),
    })
}

impl SecondAccount {
    /// The shell words that run cutover as this account (for tmux), with `env` set first.
    pub fn shell_prefix(&self, env: &str) -> String {
        format!(
            "runuser -u {WATCHER} -- env CUTOVER_HOME={} NO_COLOR=1 {env} {}",
            self.home.display(),
            env!("CARGO_BIN_EXE_cutover")
        )
    }

    /// cutover as this account, reading the journal of `operator_home`.
    pub fn cutover(&self, operator_home: &std::path::Path, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new("runuser");
        command
            .args(["-u", WATCHER, "--", "env"])
            .arg(format!("CUTOVER_HOME={}", self.home.display()))
            .arg("NO_COLOR=1")
            .arg(env!("CARGO_BIN_EXE_cutover"))
            .arg("--journal")
            .arg(operator_home.join("journal.sqlite3"))
            .args(args)
            .current_dir(std::env::temp_dir());
        command
    }
}

impl Drop for SecondAccount {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// The database name of a URL (what a destructive step's confirmation types).
pub fn database_of(url: &str) -> String {
    let path = url.rsplit('/').next().unwrap();
    path.split('?').next().unwrap().to_string()
}

/// A runbook whose one step is destructive: it writes `changed.txt` where it runs.
pub const DESTRUCTIVE_RUNBOOK: &str = r#"
name = "two-person rule"

[[sections]]
id = "apply"
title = "Apply"

[[sections.steps]]
id = "change"
title = "Change the database"
kind = "shell"
command = "echo changed > changed.txt"
destructive = true
"#;

/// Each step of a `check --format json` report (or a journaled run's JSON report) with its
/// status, in order.
pub fn step_statuses(report: &serde_json::Value) -> Vec<(&str, &str)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect()
}

/// A database role of a person's own on the journal in PostgreSQL at `control` (what a team
/// grants each engineer: read the journal, answer approval requests); returns the role and
/// the control database's URL as that role.
pub fn journal_role(control: &str, prefix: &str) -> (String, String) {
    let role = format!("{prefix}_{}", std::process::id());
    psql(
        control,
        &format!(
            "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA cutover TO {role}; \
             GRANT SELECT ON ALL TABLES IN SCHEMA cutover TO {role}; \
             GRANT INSERT ON cutover.approvals TO {role}"
        ),
    );
    let url = control.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(url, control, "the URL names its user: {control}");
    (role, url)
}
