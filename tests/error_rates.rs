//! `monitoring.error_rates` (probe `error_rates`) on a real server: quiet traffic passes,
//! rolled-back transactions and killed sessions in the window fail it, and cutover's own
//! read-only checks (which roll back) never count. A test binary of its own: the probe leaves
//! out every read-only transaction of this process, so no other test may run checks beside it.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use cutover::outcome::Status;

/// The probe leaves out every read-only transaction this process began: the tests here take
/// turns, so that one's checks do not hide the other's.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `work` over and over on another thread until the returned guard drops.
struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn keep_doing(work: impl Fn() + Send + 'static) -> Background {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            work();
        }
    });
    Background {
        stop,
        thread: Some(thread),
    }
}

fn error_rates(url: &str) -> cutover::check::StepReport {
    let runbook = probe_runbook("error_rates", "{ window_secs = 2 }");
    block_on(step_of(runbook, url, "s.p", Default::default()))
}

#[test]
fn error_rates_pass_on_quiet_traffic_and_fail_on_rollbacks_and_killed_sessions() {
    let _turn = one_at_a_time();
    let url = fresh_database();
    // cutover's own checks in the window roll back: they are not the application's errors.
    let checks = {
        let url = url.clone();
        keep_doing(move || {
            block_on(bundled_step(&url, "tables.required"));
        })
    };
    let quiet = error_rates(&url);
    drop(checks);
    assert_status(&quiet, Status::Pass);

    // Hundreds of rollbacks per round: far more than the probe may take for cutover's own
    // (every read-only transaction this process began from 11 s before the window, the
    // checks above included).
    let rollbacks = {
        let url = url.clone();
        let burst = "BEGIN; SELECT 1; ROLLBACK; ".repeat(200);
        keep_doing(move || {
            psql(&url, &burst);
        })
    };
    let failing = error_rates(&url);
    drop(rollbacks);
    assert_status(&failing, Status::Fail);
    assert!(
        failing.message.contains("query errors"),
        "{}",
        failing.message
    );

    let killed = {
        let url = url.clone();
        let database = url.rsplit('/').next().unwrap().to_string();
        keep_doing(move || {
            // A plain psql process, not a `Session`: dropping one of those ends every session
            // of the database, the probe's own connection included.
            let cluster = shared();
            let mut sleeper = std::process::Command::new(cluster.bin_dir().join("psql"))
                .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(cluster.port().to_string())
                .args(["-d", &database, "-c", "SELECT pg_sleep(60)"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("psql starts");
            wait_until("the session sleeps", 30, || {
                psql(
                    &url,
                    "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'",
                ) != "0"
            });
            psql(
                &url,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'",
            );
            // Its server session was killed: psql exits by itself.
            let _ = sleeper.wait();
        })
    };
    let failing = error_rates(&url);
    drop(killed);
    assert_status(&failing, Status::Fail);
    assert!(
        failing.message.contains("connection errors"),
        "{}: {:#?}",
        failing.message,
        failing.details
    );
}

#[test]
fn a_full_checks_own_rollbacks_reported_late_by_the_server_are_not_errors() {
    let _turn = one_at_a_time();
    let url = fresh_database();
    // Every step before monitoring.error_rates ends in a rollback that the server may count
    // seconds later, inside the probe's window.
    let report = block_on(check_with(bundled(), &url, Default::default()));
    let rates = report
        .steps
        .iter()
        .find(|s| s.id == "monitoring.error_rates")
        .expect("the rates step ran");
    assert_status(rates, Status::Pass);
}
