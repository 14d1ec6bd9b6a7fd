//! Periodic samplers behind the wizard's two live panels (server metrics, expected indexes),
//! and alert evaluation against the runbook's thresholds. It knows nothing of the screen: a
//! task samples the target and sends [`MonitorEvent`]s over a channel.

pub mod alerts;
pub mod indexes;
pub mod metrics;

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::db::{Db, DbError};
use crate::probes::index_match::ExpectedIndex;
use crate::probes::{indexes as indexes_probe, tables as tables_probe};
use crate::runbook::{Action, Runbook, Thresholds};

pub use alerts::{Alert, AlertLevel, alerts};
pub use indexes::{IndexLiveState, IndexStatus, index_statuses};
pub use metrics::{MetricsSample, Sampler};

/// How often the panels refresh unless told otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);

/// A monitor query runs at most this long on the server: a panel is not worth more.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(3);

/// A refresh that takes longer than this is abandoned and reported.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(5);

/// Events a slow screen has not taken yet; beyond this, new ones are dropped (see [`spawn`]).
const CHANNEL_CAPACITY: usize = 8;

/// What the monitor samples and how often.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Time between refreshes (default 2 s).
    pub interval: Duration,
    /// Schema the expected indexes' tables live in.
    pub schema: String,
    /// The indexes the index panel follows, in display order.
    pub expected_indexes: Vec<ExpectedIndex>,
    /// The runbook's thresholds: the screen holds each sample against them with [`alerts`]
    /// (the task itself only samples).
    pub thresholds: Thresholds,
    /// The plan's storage limit (the runbook's `storage_limit_mb` variable), copied into every
    /// sample so that storage is held against it.
    pub storage_limit_bytes: Option<i64>,
}

impl MonitorConfig {
    /// The runbook's expected indexes and thresholds in `schema`, refreshed every 2 s.
    pub fn for_runbook(runbook: &Runbook, schema: &str) -> MonitorConfig {
        MonitorConfig {
            interval: DEFAULT_INTERVAL,
            schema: schema.to_string(),
            expected_indexes: expected_indexes(runbook),
            thresholds: runbook.thresholds.clone(),
            storage_limit_bytes: None,
        }
    }

    /// The plan's storage limit from the value of the `storage_limit_mb` variable (MiB);
    /// anything but a positive number leaves storage unbounded.
    pub fn with_storage_limit_mb(mut self, value: Option<&str>) -> MonitorConfig {
        self.storage_limit_bytes = value
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|mb| *mb > 0.0 && mb.is_finite())
            .map(|mb| (mb * 1024.0 * 1024.0) as i64);
        self
    }
}

/// The variable that gives the plan's storage limit, in MiB.
pub const STORAGE_LIMIT_VARIABLE: &str = "storage_limit_mb";

/// What the monitor reports to the screen.
#[derive(Debug, Clone, PartialEq)]
pub enum MonitorEvent {
    /// A fresh metrics sample; after [`MonitorEvent::Unavailable`], it means the target is
    /// back.
    Metrics(MetricsSample),
    /// The live state of every expected index, in the config's order.
    Indexes(Vec<IndexStatus>),
    /// A refresh failed (connection lost, server stopped, timeout); sampling goes on.
    Unavailable {
        /// One line, without the password.
        error: String,
    },
}

/// Every index that the runbook's `tables` and `indexes` probe steps expect, in runbook order,
/// each once (by table, columns and uniqueness: indexes are matched by definition).
///
/// A step's own `schema` parameter is not kept: the panel follows one schema (the config's).
pub fn expected_indexes(runbook: &Runbook) -> Vec<ExpectedIndex> {
    let mut expected: Vec<ExpectedIndex> = Vec::new();
    for step in runbook.steps() {
        let Action::Probe { probe, params } = &step.action else {
            continue;
        };
        // The loader has checked these params against the probes' own types; a step that
        // somehow does not parse simply adds nothing to the panel.
        let found: Vec<ExpectedIndex> = match probe.as_str() {
            "tables" => serde_json::from_value::<tables_probe::Params>(params.clone())
                .map(|params| {
                    params
                        .tables
                        .into_iter()
                        .flat_map(|table| {
                            table.indexes.into_iter().map(move |index| ExpectedIndex {
                                table: table.name.clone(),
                                ..index
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            "indexes" => serde_json::from_value::<indexes_probe::Params>(params.clone())
                .map(|params| params.indexes)
                .unwrap_or_default(),
            _ => continue,
        };
        for index in found {
            let seen = expected.iter().any(|known| {
                known.table == index.table
                    && known.columns == index.columns
                    && known.unique == index.unique
            });
            if !seen {
                expected.push(index);
            }
        }
    }
    expected
}

/// Starts sampling `db` every `config.interval` until `cancel` fires or the receiver is
/// dropped; each refresh sends one [`MonitorEvent::Metrics`] and one
/// [`MonitorEvent::Indexes`], or one [`MonitorEvent::Unavailable`].
///
/// The monitor uses one pooled connection at a time, for one query per panel, in a read-only
/// transaction with a statement timeout of 3 s. Must be called within a tokio runtime.
pub fn spawn(
    db: Db,
    config: MonitorConfig,
    cancel: CancellationToken,
) -> mpsc::Receiver<MonitorEvent> {
    let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    let db = db.with_statement_timeout(STATEMENT_TIMEOUT);
    tokio::spawn(async move {
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = sample_forever(&db, &config, &sender) => {}
        }
    });
    receiver
}

/// The sampling loop; returns when the receiver is gone.
async fn sample_forever(db: &Db, config: &MonitorConfig, sender: &mpsc::Sender<MonitorEvent>) {
    let mut ticker = tokio::time::interval(config.interval);
    // A refresh that overran (slow server) pushes the next one back instead of firing a burst
    // of catch-up samples at a server that is already struggling.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sampler = Sampler::new();
    let mut available = true;
    loop {
        tokio::select! {
            _ = sender.closed() => return,
            _ = ticker.tick() => {}
        }
        let events = match refresh(db, config, &mut sampler, available).await {
            Ok(events) => {
                available = true;
                events
            }
            Err(err) => {
                available = false;
                vec![MonitorEvent::Unavailable {
                    error: one_line(&err.to_string()),
                }]
            }
        };
        for event in events {
            // The screen wants the latest state, not a backlog: when it has not taken the
            // last CHANNEL_CAPACITY events yet, this one is dropped and the next refresh
            // brings a newer one. Never block the sampler on a slow screen.
            match sender.try_send(event) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}

/// One refresh of both panels, or why there is none.
async fn refresh(
    db: &Db,
    config: &MonitorConfig,
    sampler: &mut Sampler,
    available: bool,
) -> Result<Vec<MonitorEvent>, DbError> {
    if !available {
        // One direct attempt says at once whether the target is back, and why not.
        db.reachable().await?;
    }
    match tokio::time::timeout(REFRESH_TIMEOUT, sample_panels(db, config, sampler)).await {
        Ok(Err(DbError::ConnectTimeout { .. })) | Err(_) => {
            // The pool retries a refused connection until its acquire timeout and then
            // blames the network; a direct attempt gives the real reason (server stopped,
            // password changed, ...), else the server is up but too slow.
            db.reachable().await?;
            Err(DbError::Timeout(format!(
                "the monitor got no answer within {}s: the server is slow, or cutover's few connections are all busy",
                REFRESH_TIMEOUT.as_secs()
            )))
        }
        Ok(result) => result,
    }
}

/// Samples the metrics, then the expected indexes.
async fn sample_panels(
    db: &Db,
    config: &MonitorConfig,
    sampler: &mut Sampler,
) -> Result<Vec<MonitorEvent>, DbError> {
    let mut sample = sampler.sample(db).await?;
    sample.storage_limit_bytes = config.storage_limit_bytes;
    let statuses = if config.expected_indexes.is_empty() {
        Vec::new()
    } else {
        index_statuses(db, &config.schema, &config.expected_indexes).await?
    };
    Ok(vec![
        MonitorEvent::Metrics(sample),
        MonitorEvent::Indexes(statuses),
    ])
}

/// Server messages may span lines (DETAIL, HINT); a panel shows one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::Catalog;

    const RUNBOOK: &str = r#"
name = "indexes"
[[sections]]
id = "s"
title = "S"

[[sections.steps]]
id = "tables"
title = "Tables"
kind = "probe"
probe = "tables"
[sections.steps.params]
tables = [
  { name = "User", indexes = [{ columns = ["id"], unique = true }, { columns = ["email"], unique = true }] },
]

[[sections.steps]]
id = "indexes"
title = "Indexes"
kind = "probe"
probe = "indexes"
[sections.steps.params]
indexes = [
  { table = "User", columns = ["email"], unique = true, name = "users_email_uq" },
  { table = "User", columns = ["email"], unique = false },
  { table = "Summary", columns = ["userId", "createdAt"] },
]
"#;

    #[test]
    fn expected_indexes_fills_in_the_table_and_keeps_runbook_order_without_duplicates() {
        let runbook = crate::runbook::load_str(RUNBOOK, "test.toml", &Catalog).unwrap();
        let described: Vec<String> = expected_indexes(&runbook)
            .iter()
            .map(ExpectedIndex::describe)
            .collect();
        assert_eq!(
            described,
            [
                "UNIQUE User(id)",
                "UNIQUE User(email)",
                "User(email)",
                "Summary(userId, createdAt)"
            ]
        );
    }

    #[test]
    fn error_text_is_put_on_one_line() {
        assert_eq!(
            one_line("lost the connection\nDETAIL:  server  closed"),
            "lost the connection DETAIL: server closed"
        );
    }
}
