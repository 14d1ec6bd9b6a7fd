//! The live panels' samplers against real servers: metrics that move when the test makes the
//! server busy, index states as the test breaks or builds indexes, and a monitor that keeps
//! going when the server goes away.

mod common;

use std::time::Duration;

use common::*;
use cutover::cluster::ClusterOptions;
use cutover::db::{Db, DbSettings};
use cutover::monitor::{
    self, IndexLiveState, IndexStatus, MetricsSample, MonitorConfig, MonitorEvent, Sampler,
};
use cutover::probes::index_match::ExpectedIndex;
use cutover::runbook::Thresholds;
use cutover::target::Target;
use tokio::sync::mpsc::error::TryRecvError;
use tokio_util::sync::CancellationToken;

/// A handle on the database at `url` with the runtime it lives in: pooled connections belong
/// to the runtime that opened them, so every call of a test goes through the same one.
struct Monitored {
    runtime: tokio::runtime::Runtime,
    db: Db,
}

fn monitored(url: &str) -> Monitored {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let target = Target::from_url(url).expect("url");
    let db = {
        let _inside = runtime.enter();
        Db::connect_lazy(&target, DbSettings::default())
    };
    Monitored { runtime, db }
}

impl Monitored {
    fn sample(&self, sampler: &mut Sampler) -> MetricsSample {
        self.runtime
            .block_on(sampler.sample(&self.db))
            .expect("metrics sample")
    }

    fn statuses(&self, expected: &[ExpectedIndex]) -> Vec<IndexStatus> {
        self.runtime
            .block_on(monitor::index_statuses(&self.db, "public", expected))
            .expect("index statuses")
    }

    fn state_of(&self, expected: ExpectedIndex) -> IndexLiveState {
        self.statuses(&[expected]).remove(0).state
    }

    fn spawn(&self, expected_indexes: Vec<ExpectedIndex>) -> Spawned {
        let config = MonitorConfig {
            interval: Duration::from_millis(100),
            schema: "public".to_string(),
            expected_indexes,
            thresholds: Thresholds::default(),
            storage_limit_bytes: Some(1 << 40),
        };
        let cancel = CancellationToken::new();
        let _inside = self.runtime.enter();
        let events = monitor::spawn(self.db.clone(), config, cancel.clone());
        Spawned { events, cancel }
    }
}

struct Spawned {
    events: tokio::sync::mpsc::Receiver<MonitorEvent>,
    cancel: CancellationToken,
}

impl Spawned {
    /// Waits for the next event that `wanted` accepts, discarding the others.
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&MonitorEvent) -> bool) -> MonitorEvent {
        let mut found = None;
        wait_until(what, 30, || {
            while let Ok(event) = self.events.try_recv() {
                if wanted(&event) {
                    found = Some(event);
                    return true;
                }
            }
            false
        });
        found.expect("found")
    }
}

fn index(table: &str, columns: &[&str], unique: bool) -> ExpectedIndex {
    ExpectedIndex {
        table: table.to_string(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        unique,
        name: None,
    }
}

#[test]
fn a_metrics_sample_of_a_fresh_database_has_sane_values() {
    let target = monitored(&fresh_database());
    let sample = target.sample(&mut Sampler::new());
    assert_eq!(sample.max_connections, 100, "{sample:#?}");
    assert!(
        (0..sample.max_connections).contains(&sample.connections_used),
        "{sample:#?}"
    );
    assert!(sample.database_bytes > 1 << 20, "{sample:#?}");
    assert_eq!(sample.blocked_sessions, 0, "{sample:#?}");
    assert_eq!((sample.commits_per_s, sample.rollbacks_per_s), (0.0, 0.0));
    assert!(sample.round_trip > Duration::ZERO, "{sample:#?}");
    assert!(sample.latency_p50 <= sample.latency_p95, "{sample:#?}");
    assert!(sample.latency_p95 <= sample.latency_p99, "{sample:#?}");
}

#[test]
fn connections_used_counts_other_sessions_but_not_cutovers_own() {
    // Connections are counted server-wide: a cluster of its own keeps other tests out.
    let (cluster, url) = own_cluster(ClusterOptions::default());
    let target = monitored(&url);
    let mut sampler = Sampler::new();
    // The sampler's own pooled session is open while it counts.
    assert_eq!(target.sample(&mut sampler).connections_used, 0);
    let _sessions: Vec<Session> = (0..3)
        .map(|_| background_psql_on(&cluster, &database_of(&url), "SELECT pg_sleep(60)"))
        .collect();
    wait_until("three more sessions are counted", 30, || {
        target.sample(&mut sampler).connections_used == 3
    });
}

#[test]
fn the_panels_sessions_are_named_apart_and_left_out_of_the_connections() {
    let (cluster, url) = own_cluster(ClusterOptions::default());
    let target = monitored(&url);
    let panels = {
        let _inside = target.runtime.enter();
        target.db.for_panels()
    };
    let mut sampler = Sampler::new();
    let sample = target.runtime.block_on(sampler.sample(&panels)).unwrap();
    assert_eq!(sample.connections_used, 0, "{sample:#?}");
    let named = cluster
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cutover-monitor'",
        )
        .unwrap();
    assert_eq!(named.trim(), "1");
    target.runtime.block_on(panels.close());
}

#[test]
fn the_database_size_is_sampled_apart_once_a_minute_not_with_every_round_trip() {
    let url = fresh_database();
    let target = monitored(&url);
    let mut sampler = Sampler::new();
    let before = target.sample(&mut sampler).database_bytes;
    psql(
        &url,
        "CREATE TABLE grown AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 50000) g",
    );
    assert_eq!(
        target.sample(&mut sampler).database_bytes,
        before,
        "not read again within the minute"
    );
    sampler.refresh_size();
    let after = target.sample(&mut sampler).database_bytes;
    assert!(after > before + (5 << 20), "{before} then {after}");
}

#[test]
fn commits_per_s_rises_after_writes_between_two_samples() {
    let url = fresh_database();
    let target = monitored(&url);
    let mut sampler = Sampler::new();
    target.sample(&mut sampler);
    for i in 0..3 {
        psql(
            &url,
            &format!(
                r#"INSERT INTO "Tag" (id, name, type) VALUES ('write{i}', 'write{i}', 'TOPIC')"#
            ),
        );
    }
    wait_until("the commits show in a sample", 30, || {
        target.sample(&mut sampler).commits_per_s > 0.0
    });
}

/// cutover's reads commit: the server counts none of them as a rollback, so no cutover on the
/// database (an observer's, a `check` beside the wizard) reads another's checks as the
/// application's errors. A read that fails still counts, as the error it is.
#[test]
fn cutovers_read_only_transactions_are_never_counted_as_rollbacks() {
    let url = fresh_database();
    let target = monitored(&url);
    let expected = [index("Tag", &["id"], true)];
    // Each look is a psql session of its own, one transaction that commits.
    let looks = std::cell::Cell::new(0);
    let counters = || {
        looks.set(looks.get() + 1);
        let row = psql(
            &url,
            "SELECT xact_commit || ' ' || xact_rollback FROM pg_stat_database WHERE datname = current_database()",
        );
        let (commits, rollbacks) = row.split_once(' ').unwrap();
        (
            commits.parse::<i64>().unwrap(),
            rollbacks.parse::<i64>().unwrap(),
        )
    };
    let (commits_before, rollbacks_before) = counters();
    let mut sampler = Sampler::new();
    let mut samples = Vec::new();
    for _ in 0..5 {
        samples.push(target.sample(&mut sampler));
        target.statuses(&expected);
    }
    // A server process counts its transactions when it ends, at the latest.
    target.runtime.block_on(target.db.close());
    wait_until("the server has counted our ten reads", 30, || {
        // The looks before this one are counted too (this one is still open).
        let earlier_looks = looks.get();
        counters().0 >= commits_before + 10 + earlier_looks
    });
    assert_eq!(counters().1, rollbacks_before, "no rollback counted");
    let rollbacks: Vec<f64> = samples.iter().map(|s| s.rollbacks_per_s).collect();
    assert!(rollbacks.iter().all(|r| *r == 0.0), "{rollbacks:?}");

    // A read that fails (here past its statement timeout) is a rollback.
    let again = monitored(&url);
    let db = again
        .db
        .with_statement_timeout(std::time::Duration::from_millis(50));
    let failed = again.runtime.block_on(async {
        let mut read = db.read_only().await.unwrap();
        sqlx::raw_sql("SELECT pg_sleep(1)")
            .execute(&mut *read)
            .await
    });
    assert!(failed.is_err(), "the read was cancelled by its timeout");
    again.runtime.block_on(again.db.close());
    wait_until("the failed read is counted as a rollback", 30, || {
        counters().1 > rollbacks_before
    });
}

#[test]
fn blocked_sessions_counts_a_session_waiting_behind_lock_table() {
    let url = fresh_database();
    let target = monitored(&url);
    let _holder = hold_table_lock(&url);
    let _waiter = background_psql(&url, r#"SELECT count(*) FROM "Tag""#);
    let mut sampler = Sampler::new();
    wait_until("the waiting session is counted", 30, || {
        target.sample(&mut sampler).blocked_sessions == 1
    });
}

#[test]
fn expected_indexes_lists_the_bundled_runbooks_indexes_once_each() {
    let expected = monitor::expected_indexes(&bundled());
    let described: Vec<String> = expected.iter().map(ExpectedIndex::describe).collect();
    for wanted in [
        "Summary(userId, uploadDate)",
        "UNIQUE User(email)",
        "Progress(expiresAt)",
    ] {
        assert!(described.iter().any(|d| d == wanted), "{described:#?}");
    }
    let mut unique = described.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), described.len(), "{described:#?}");
}

#[test]
fn every_expected_index_is_present_on_a_fresh_database() {
    let target = monitored(&fresh_database());
    let statuses = target.statuses(&monitor::expected_indexes(&bundled()));
    let not_present: Vec<&IndexStatus> = statuses
        .iter()
        .filter(|s| !matches!(s.state, IndexLiveState::Present { .. }))
        .collect();
    assert!(not_present.is_empty(), "{not_present:#?}");
}

#[test]
fn a_dropped_index_is_missing() {
    let url = fresh_database();
    psql(&url, r#"DROP INDEX "Summary_videoId_idx""#);
    let target = monitored(&url);
    assert_eq!(
        target.state_of(index("Summary", &["videoId"], false)),
        IndexLiveState::Missing
    );
}

#[test]
fn a_unique_index_replaced_by_a_plain_one_is_not_unique() {
    let url = fresh_database();
    psql(
        &url,
        r#"DROP INDEX "User_email_key"; CREATE INDEX "User_email_key" ON "User" ("email")"#,
    );
    let target = monitored(&url);
    assert_eq!(
        target.state_of(index("User", &["email"], true)),
        IndexLiveState::NotUnique {
            name: "User_email_key".to_string()
        }
    );
}

#[test]
fn an_index_left_by_a_failed_unique_concurrent_build_is_invalid() {
    let url = fresh_database();
    psql(
        &url,
        r#"INSERT INTO "Tag" (id, name, type, "createdAt")
           VALUES ('twin1', 'twin1', 'TOPIC', '2020-01-01'), ('twin2', 'twin2', 'TOPIC', '2020-01-01')"#,
    );
    let failed = shared().psql(
        &database_of(&url),
        r#"CREATE UNIQUE INDEX CONCURRENTLY "Tag_createdAt_key" ON "Tag" ("createdAt")"#,
    );
    assert!(failed.is_err(), "the unique build must fail on duplicates");
    let target = monitored(&url);
    assert_eq!(
        target.state_of(index("Tag", &["createdAt"], true)),
        IndexLiveState::Invalid {
            name: "Tag_createdAt_key".to_string()
        }
    );
}

#[test]
fn reports_building_not_invalid_during_create_index_concurrently() {
    let url = fresh_database();
    let _build = hold_create_index_concurrently(&url);
    let target = monitored(&url);
    match target.state_of(index("Tag", &["createdAt"], false)) {
        IndexLiveState::Building {
            name,
            phase,
            percent,
        } => {
            assert_eq!(name, "Tag_createdAt_idx");
            assert!(phase.starts_with("waiting for"), "{phase}");
            assert!((0.0..=100.0).contains(&percent), "{percent}");
        }
        other => panic!("expected Building, got {other:?}"),
    }
}

#[test]
fn the_monitor_sends_metrics_and_index_statuses_until_cancelled() {
    let target = monitored(&fresh_database());
    let mut spawned = target.spawn(vec![index("User", &["email"], true)]);
    spawned.wait_for("a metrics sample", |e| {
        matches!(e, MonitorEvent::Metrics(_))
    });
    let statuses = spawned.wait_for("index statuses", |e| matches!(e, MonitorEvent::Indexes(_)));
    assert_eq!(
        statuses,
        MonitorEvent::Indexes(vec![IndexStatus {
            expected: index("User", &["email"], true),
            state: IndexLiveState::Present {
                name: "User_email_key".to_string()
            },
        }])
    );
    spawned.cancel.cancel();
    wait_until("the monitor has stopped", 30, || {
        loop {
            match spawned.events.try_recv() {
                Ok(_) => continue,
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => return true,
            }
        }
    });
}

#[test]
fn reports_unavailable_when_the_server_stops_and_keeps_sampling() {
    let (mut cluster, url) = own_cluster(ClusterOptions::default());
    let target = monitored(&url);
    let mut spawned = target.spawn(vec![index("User", &["email"], true)]);
    spawned.wait_for("a metrics sample", |e| {
        matches!(e, MonitorEvent::Metrics(_))
    });
    cluster.stop();
    let MonitorEvent::Unavailable { error } = spawned.wait_for("the monitor notices", |e| {
        matches!(e, MonitorEvent::Unavailable { .. })
    }) else {
        unreachable!()
    };
    assert!(!error.contains('\n'), "{error}");
    assert!(error.contains("127.0.0.1"), "{error}");
    // Still sampling: another refresh fails in turn.
    spawned.wait_for("another refresh", |e| {
        matches!(e, MonitorEvent::Unavailable { error } if error.contains("connection refused"))
    });
}
