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
pub fn alerts(sample: &MetricsSample, thresholds: &Thresholds) -> Vec<Alert> {
    let mut alerts = Vec::new();
    let mut alert = |level, message: String| alerts.push(Alert { level, message });

    if sample.max_connections > 0 {
        let used_pct = 100.0 * sample.connections_used as f64 / sample.max_connections as f64;
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
    if p95_ms > thresholds.p95_latency_ms {
        alert(
            AlertLevel::Warning,
            format!(
                "latency: p95 round trip {p95_ms:.0} ms > {} ms",
                thresholds.p95_latency_ms
            ),
        );
    }

    let transactions_per_s = sample.commits_per_s + sample.rollbacks_per_s;
    if transactions_per_s > 0.0 {
        let error_pct = 100.0 * sample.rollbacks_per_s / transactions_per_s;
        if error_pct > thresholds.error_rate_pct {
            alert(
                AlertLevel::Critical,
                format!(
                    "errors: {error_pct:.1}% of transactions rolled back ({:.1}/s) > {}%",
                    sample.rollbacks_per_s, thresholds.error_rate_pct
                ),
            );
        }
    }

    if sample.blocked_sessions > 0 {
        alert(
            AlertLevel::Warning,
            format!(
                "locks: {} session(s) waiting on another session's lock",
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
    fn an_error_rate_above_the_threshold_is_critical_but_only_with_transactions() {
        let at = |commits_per_s, rollbacks_per_s| {
            levels(&MetricsSample {
                commits_per_s,
                rollbacks_per_s,
                ..sample()
            })
        };
        assert_eq!(at(0.0, 0.0), []);
        assert_eq!(at(99.0, 1.0), []);
        assert_eq!(
            at(95.0, 5.0),
            [(
                AlertLevel::Critical,
                "errors: 5.0% of transactions rolled back (5.0/s) > 1%".to_string()
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
