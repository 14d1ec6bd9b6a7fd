//! Rates, the latency window and alerts, without a server.

use super::*;

fn counters(commits: i64, rollbacks: i64) -> ServerCounters {
    ServerCounters {
        connections_used: 3,
        max_connections: 100,
        commits,
        rollbacks,
        sessions: Some(commits / 10),
        session_errors: Some(rollbacks / 10),
        blocked_sessions: 0,
        longest_wait_ms: 0.0,
    }
}

fn rates(sample: &MetricsSample) -> (f64, f64) {
    (sample.commits_per_s, sample.rollbacks_per_s)
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn the_metrics_query_leaves_out_sessions_named_as_cutovers_own() {
    assert!(METRICS.contains(&format!("'{}'", crate::db::APPLICATION_NAME)));
    assert!(METRICS.contains(&format!("'{}'", crate::db::MONITOR_APPLICATION_NAME)));
}

#[test]
fn the_database_size_is_read_once_a_minute_or_when_asked() {
    let mut sampler = Sampler::new();
    let start = Instant::now();
    assert!(sampler.size_due(start), "never read");
    sampler.size = Some((start, 1 << 20));
    assert!(!sampler.size_due(start + SIZE_INTERVAL - MS));
    assert!(sampler.size_due(start + SIZE_INTERVAL));
    sampler.refresh_size();
    assert!(sampler.size_due(start), "asked for");
}

#[test]
fn the_first_sample_has_rates_of_zero() {
    let mut sampler = Sampler::new();
    let sample = sampler.record(Instant::now(), counters(1_000, 10), MS);
    assert_eq!(rates(&sample), (0.0, 0.0));
    assert_eq!(sample.connections_used, 3);
    assert_eq!(sample.max_connections, 100);
}

#[test]
fn rates_are_counter_deltas_over_elapsed_time() {
    let mut sampler = Sampler::new();
    let start = Instant::now();
    sampler.record(start, counters(1_000, 10), MS);
    let sample = sampler.record(start + Duration::from_secs(2), counters(1_100, 14), MS);
    assert_eq!(rates(&sample), (50.0, 2.0));
}

#[test]
fn a_statistics_reset_gives_zero_rates() {
    let mut sampler = Sampler::new();
    let start = Instant::now();
    let second = Duration::from_secs(1);
    sampler.record(start, counters(500, 50), MS);
    let sample = sampler.record(start + second, counters(2, 0), MS);
    assert_eq!(rates(&sample), (0.0, 0.0));
    let sample = sampler.record(start + 2 * second, counters(4, 2), MS);
    assert_eq!(rates(&sample), (2.0, 2.0));
}

#[test]
fn latency_percentiles_come_from_the_window_and_old_round_trips_age_out() {
    let mut sampler = Sampler::new();
    let start = Instant::now();
    for i in 0..100u32 {
        sampler.record(
            start + i * MS,
            counters(0, 0),
            Duration::from_millis(u64::from(i) + 1),
        );
    }
    let sample = sampler.record(start + 100 * MS, counters(0, 0), Duration::from_millis(1));
    assert_eq!(sample.round_trip, Duration::from_millis(1));
    let close = |actual: Duration, expected_ms: f64| {
        (actual.as_secs_f64() * 1000.0 - expected_ms).abs() <= expected_ms * 0.02
    };
    assert!(close(sample.latency_p50, 50.0), "{:?}", sample.latency_p50);
    assert!(close(sample.latency_p95, 95.0), "{:?}", sample.latency_p95);
    assert!(close(sample.latency_p99, 99.0), "{:?}", sample.latency_p99);

    // Ten minutes later, only the new round trips count, and the window holds few slices.
    let later = start + Duration::from_secs(600);
    let sample = sampler.record(later, counters(0, 0), Duration::from_millis(7));
    assert!(close(sample.latency_p99, 7.0), "{:?}", sample.latency_p99);
    assert_eq!(sampler.latency.slices.len(), 1);
}

#[test]
fn the_latency_window_keeps_a_bounded_number_of_histograms() {
    let mut window = LatencyWindow::new();
    let start = Instant::now();
    for second in 0..3_600u64 {
        window.record(start + Duration::from_secs(second), MS);
    }
    assert!(window.slices.len() <= LATENCY_SLICES as usize + 1);
}

#[test]
fn error_rates_cover_the_last_five_minutes() {
    let mut sampler = Sampler::new();
    let start = Instant::now();
    let minute = Duration::from_secs(60);
    let first = sampler.record(start, counters(0, 0), MS);
    assert_eq!(
        (first.query_error_pct, first.connection_error_pct),
        (None, None)
    );
    // 1,000 transactions, 10 of them rolled back.
    let sample = sampler.record(start + minute, counters(990, 10), MS);
    assert_eq!(sample.query_error_pct, Some(1.0));
    // 99 sessions began, one of them ended in an error.
    assert_eq!(sample.connection_error_pct, Some(100.0 / 99.0));
    // Six minutes later that minute has left the window: only clean traffic is in it.
    let sample = sampler.record(start + 7 * minute, counters(2_990, 10), MS);
    assert_eq!(sample.query_error_pct, Some(0.0));
    assert_eq!(sample.connection_error_pct, Some(0.0));
}

#[test]
fn without_session_counters_there_is_no_connection_error_rate() {
    let mut sampler = Sampler::new();
    let start = Instant::now();
    let old_server = |commits| ServerCounters {
        sessions: None,
        session_errors: None,
        ..counters(commits, 0)
    };
    sampler.record(start, old_server(0), MS);
    let sample = sampler.record(start + Duration::from_secs(2), old_server(100), MS);
    assert_eq!(sample.connection_error_pct, None);
    assert_eq!(sample.query_error_pct, Some(0.0));
}
