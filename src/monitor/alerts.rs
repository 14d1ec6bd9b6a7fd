//! Alerts: the runbook's thresholds held against a metrics sample.

use super::MetricsSample;
use crate::runbook::Thresholds;

/// How much an alert matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertLevel {
    /// Worth a look.
    Warning,
    /// Act now (or stop the migration).
    Critical,
}

/// A threshold crossed by a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// How much it matters.
    pub level: AlertLevel,
    /// One line saying what was crossed, by how much.
    pub message: String,
}

/// The thresholds `sample` crosses: at most one alert per metric, at its most serious level.
///
/// The levels are the checklist's: its alerts (p95 query time above 500 ms: warning; active
/// connections above 90 %: critical; storage above 90 %: warning), and a warning for each key
/// metric missed (p95 < 200 ms, p99 < 500 ms, connections < 80 %, connection wait < 100 ms,
/// storage < 80 %, connection errors < 0.1 %, query errors < 0.01 %).
pub fn alerts(sample: &MetricsSample, thresholds: &Thresholds) -> Vec<Alert> {
    let mut alerts = Vec::new();
    let mut alert = |level, message: String| alerts.push(Alert { level, message });

    if sample.max_connections > 0 {
        let used_pct = sample.connections_pct();
        let crossed = if used_pct >= thresholds.connections_crit_pct {
            Some((AlertLevel::Critical, thresholds.connections_crit_pct))
        } else if used_pct >= thresholds.connections_warn_pct {
            Some((AlertLevel::Warning, thresholds.connections_warn_pct))
        } else {
            None
        };
        if let Some((level, limit)) = crossed {
            alert(
                level,
                format!(
                    "connections: {} of {} in use ({used_pct:.0}% ≥ {limit}%)",
                    sample.connections_used, sample.max_connections
                ),
            );
        }
    }

    let p95_ms = sample.latency_p95.as_secs_f64() * 1000.0;
    let p99_ms = sample.latency_p99.as_secs_f64() * 1000.0;
    if p95_ms > thresholds.p95_alert_ms {
        alert(
            AlertLevel::Warning,
            format!(
                "high query time: p95 round trip {p95_ms:.0} ms > {} ms",
                thresholds.p95_alert_ms
            ),
        );
    } else if p95_ms > thresholds.p95_latency_ms {
        alert(
            AlertLevel::Warning,
            format!(
                "latency: p95 round trip {p95_ms:.0} ms > {} ms",
                thresholds.p95_latency_ms
            ),
        );
    } else if p99_ms > thresholds.p99_latency_ms {
        alert(
            AlertLevel::Warning,
            format!(
                "latency: p99 round trip {p99_ms:.0} ms > {} ms",
                thresholds.p99_latency_ms
            ),
        );
    }

    if let Some(storage_pct) = sample.storage_pct() {
        let crossed = if storage_pct > thresholds.storage_alert_pct {
            Some(("storage nearly full", thresholds.storage_alert_pct))
        } else if storage_pct > thresholds.storage_warn_pct {
            Some(("storage", thresholds.storage_warn_pct))
        } else {
            None
        };
        if let Some((what, limit)) = crossed {
            alert(
                AlertLevel::Warning,
                format!("{what}: {storage_pct:.0}% of the plan's limit > {limit}%"),
            );
        }
    }

    if let Some(error_pct) = sample.query_error_pct
        && error_pct > thresholds.query_error_pct
    {
        alert(
            AlertLevel::Warning,
            format!(
                "query errors: {error_pct:.2}% of transactions rolled back in 5 min > {}%",
                thresholds.query_error_pct
            ),
        );
    }
    if let Some(error_pct) = sample.connection_error_pct
        && error_pct > thresholds.connection_error_pct
    {
        alert(
            AlertLevel::Warning,
            format!(
                "connection errors: {error_pct:.2}% of sessions ended in an error in 5 min > {}%",
                thresholds.connection_error_pct
            ),
        );
    }

    if sample.blocked_sessions > 0 {
        let waited = if sample.longest_wait_ms > thresholds.connection_wait_ms {
            format!(
                ", the longest for {:.0} ms > {} ms",
                sample.longest_wait_ms, thresholds.connection_wait_ms
            )
        } else {
            String::new()
        };
        alert(
            AlertLevel::Warning,
            format!(
                "locks: {} session(s) waiting on another session's lock{waited}",
                sample.blocked_sessions
            ),
        );
    }
    alerts
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sample() -> MetricsSample {
        MetricsSample {
            connections_used: 10,
            max_connections: 100,
            latency_p95: Duration::from_millis(20),
            commits_per_s: 100.0,
            ..MetricsSample::default()
        }
    }

    fn levels(sample: &MetricsSample) -> Vec<(AlertLevel, String)> {
        alerts(sample, &Thresholds::default())
            .into_iter()
            .map(|alert| (alert.level, alert.message))
            .collect()
    }

    #[test]
    fn a_quiet_sample_raises_no_alert() {
        assert_eq!(levels(&sample()), []);
    }

    #[test]
    fn connections_warn_at_the_warning_percentage_and_are_critical_at_the_critical_one() {
        let at = |connections_used| {
            levels(&MetricsSample {
                connections_used,
                ..sample()
            })
        };
        assert_eq!(at(79), []);
        assert_eq!(
            at(80),
            [(
                AlertLevel::Warning,
                "connections: 80 of 100 in use (80% ≥ 80%)".to_string()
            )]
        );
        assert_eq!(
            at(95),
            [(
                AlertLevel::Critical,
                "connections: 95 of 100 in use (95% ≥ 90%)".to_string()
            )]
        );
    }

    #[test]
    fn p95_latency_above_the_threshold_warns() {
        let at = |ms| {
            levels(&MetricsSample {
                latency_p95: Duration::from_millis(ms),
                ..sample()
            })
        };
        assert_eq!(at(200), []);
        assert_eq!(
            at(250),
            [(
                AlertLevel::Warning,
                "latency: p95 round trip 250 ms > 200 ms".to_string()
            )]
        );
    }

    #[test]
    fn p95_above_500_ms_is_the_high_query_time_alert_and_p99_above_500_ms_a_missed_target() {
        let at = |p95, p99| {
            levels(&MetricsSample {
                latency_p95: Duration::from_millis(p95),
                latency_p99: Duration::from_millis(p99),
                ..sample()
            })
        };
        assert_eq!(
            at(600, 700),
            [(
                AlertLevel::Warning,
                "high query time: p95 round trip 600 ms > 500 ms".to_string()
            )]
        );
        assert_eq!(at(100, 500), []);
        assert_eq!(
            at(100, 501),
            [(
                AlertLevel::Warning,
                "latency: p99 round trip 501 ms > 500 ms".to_string()
            )]
        );
    }

    #[test]
    fn query_errors_above_a_hundredth_of_a_percent_warn_and_none_without_transactions() {
        let at = |query_error_pct| {
            levels(&MetricsSample {
                query_error_pct,
                ..sample()
            })
        };
        assert_eq!(at(None), []);
        assert_eq!(at(Some(0.01)), []);
        assert_eq!(
            at(Some(0.5)),
            [(
                AlertLevel::Warning,
                "query errors: 0.50% of transactions rolled back in 5 min > 0.01%".to_string()
            )]
        );
    }

    #[test]
    fn connection_errors_above_a_tenth_of_a_percent_warn() {
        let at = |connection_error_pct| {
            levels(&MetricsSample {
                connection_error_pct,
                ..sample()
            })
        };
        assert_eq!(at(Some(0.1)), []);
        assert_eq!(
            at(Some(2.0)),
            [(
                AlertLevel::Warning,
                "connection errors: 2.00% of sessions ended in an error in 5 min > 0.1%"
                    .to_string()
            )]
        );
    }

    #[test]
    fn storage_warns_above_80_percent_of_the_limit_and_alerts_above_90_but_only_with_a_limit() {
        let at = |database_bytes, storage_limit_bytes| {
            levels(&MetricsSample {
                database_bytes,
                storage_limit_bytes,
                ..sample()
            })
        };
        assert_eq!(at(95, None), []);
        assert_eq!(at(80, Some(100)), []);
        assert_eq!(
            at(85, Some(100)),
            [(
                AlertLevel::Warning,
                "storage: 85% of the plan's limit > 80%".to_string()
            )]
        );
        assert_eq!(
            at(95, Some(100)),
            [(
                AlertLevel::Warning,
                "storage nearly full: 95% of the plan's limit > 90%".to_string()
            )]
        );
    }

    #[test]
    fn a_wait_over_100_ms_is_named_with_the_blocked_sessions() {
        let alerts = levels(&MetricsSample {
            blocked_sessions: 1,
            longest_wait_ms: 2500.0,
            ..sample()
        });
        assert_eq!(
            alerts,
            [(
                AlertLevel::Warning,
                "locks: 1 session(s) waiting on another session's lock, the longest for 2500 ms > 100 ms"
                    .to_string()
            )]
        );
    }

    #[test]
    fn blocked_sessions_warn() {
        let alerts = levels(&MetricsSample {
            blocked_sessions: 2,
            ..sample()
        });
        assert_eq!(
            alerts,
            [(
                AlertLevel::Warning,
                "locks: 2 session(s) waiting on another session's lock".to_string()
            )]
        );
    }
}
