//! Built-in PostgreSQL checks, one file each. A probe reads its parameters, runs its catalog
//! queries in a read-only transaction through [`Db`], and says what it found as an [`Outcome`].

use std::collections::HashMap;

use serde::de::DeserializeOwned;

use crate::db::{Db, DbError};
use crate::outcome::Outcome;

pub mod blocking;
pub mod connection;
pub mod drift;
pub mod error_rates;
pub mod fk_valid;
pub mod index_match;
pub mod indexes;
pub mod invalid_indexes;
pub mod lint;
pub mod migrations;
pub mod orphans;
pub mod pitr;
pub mod pool;
pub mod query_latency;
pub mod replica;
pub mod rollback_budget;
pub mod row_counts;
pub mod sequences;
pub mod tables;
pub mod tls;
pub mod unique;
pub mod wraparound;

/// What stops a probe from answering.
#[derive(Debug)]
pub enum ProbeError {
    /// Could not get a read-only session.
    Db(DbError),
    /// A query failed.
    Sqlx(sqlx::Error),
}

impl From<DbError> for ProbeError {
    fn from(err: DbError) -> Self {
        ProbeError::Db(err)
    }
}

impl From<sqlx::Error> for ProbeError {
    fn from(err: sqlx::Error) -> Self {
        ProbeError::Sqlx(err)
    }
}

impl ProbeError {
    /// In `db`'s terms (a failed query read as the link's health too).
    pub fn into_db_error(self, db: &Db) -> DbError {
        match self {
            ProbeError::Db(err) => err,
            ProbeError::Sqlx(err) => db.error(err),
        }
    }
}

/// What every probe returns.
pub type ProbeResult = Result<Outcome, ProbeError>;

/// What a step measured earlier (its outcome's data), and where that came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The data.
    pub data: serde_json::Value,
    /// "run 0193… at 2026-11-24 10:02 UTC" or "earlier in this run".
    pub source: String,
    /// Measured earlier in this run, and nothing has changed the database since (no
    /// destructive step has run): measuring again would find the same, up to the app's own
    /// writes.
    pub fresh: bool,
}

impl Measured {
    /// What a step of this run has just measured.
    pub fn this_run(data: serde_json::Value) -> Measured {
        Measured {
            data,
            source: format!(
                "earlier in this run ({})",
                chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
            ),
            fresh: true,
        }
    }
}

/// What a probe may read besides the database: earlier measurements, by full step id (the
/// row-count baseline).
#[derive(Debug, Clone, Default)]
pub struct ProbeContext {
    /// The newest measurement of each step for this target.
    pub measured: HashMap<String, Measured>,
    /// The runbook's `[thresholds]` (the critical queries' latency bound).
    pub thresholds: crate::runbook::Thresholds,
}

macro_rules! catalog {
    ($($name:literal => $module:ident $([$with:ident])?),* $(,)?) => {
        /// Every probe name a runbook may use.
        pub const KNOWN: &[&str] = &[$($name),*];

        /// Runs probe `name` with `params` (already checked by [`Catalog`]).
        pub async fn run(
            name: &str,
            db: &Db,
            params: &serde_json::Value,
            context: &ProbeContext,
        ) -> Outcome {
            match name {
                $($name => catalog!(@call $module, db, params, context $(, $with)?),)*
                other => Outcome::error(format!("unknown probe `{other}`")),
            }
        }

        fn check_params(name: &str, params: &serde_json::Value) -> Result<(), String> {
            match name {
                $($name => parse::<$module::Params>(params).map(|_| ()),)*
                other => Err(format!(
                    "unknown probe `{other}` (known probes: {})",
                    KNOWN.join(", ")
                )),
            }
        }
    };
    (@call $module:ident, $db:ident, $params:ident, $context:ident) => {
        call($module::run, $db, $params).await
    };
    (@call $module:ident, $db:ident, $params:ident, $context:ident, context) => {
        call(
            async |db: &Db, params| $module::run(db, params, $context).await,
            $db,
            $params,
        )
        .await
    };
}

catalog! {
    "connection" => connection,
    "tls" => tls,
    "pool" => pool,
    "replica" => replica,
    "pitr" => pitr,
    "tables" => tables,
    "indexes" => indexes,
    "invalid_indexes" => invalid_indexes,
    "fk_valid" => fk_valid,
    "blocking" => blocking,
    "sequences" => sequences,
    "wraparound" => wraparound,
    "migrations" => migrations,
    "orphans" => orphans,
    "unique" => unique,
    "row_counts" => row_counts [context],
    "query_latency" => query_latency [context],
    "error_rates" => error_rates [context],
    "lint" => lint [context],
    "drift" => drift,
    "rollback_budget" => rollback_budget [context],
}

/// What [`Db::warm`] runs on each new connection before the steps need it: the catalog
/// probes' own queries on no tables (which loads the session's caches of the catalogs and
/// functions they use), their plans where they read a catalog whole, and a count over each
/// catalog read whole (which maps its pages into the session). Nothing of the target's own
/// tables is read.
pub fn warm_up() -> Vec<String> {
    let none = crate::db::text_array::<&str>(&[]);
    let schema = "current_schema()";
    let [indexes, builds] = index_match::queries("", &[]);
    vec![
        "EXPLAIN SELECT 1
           FROM pg_index x
           JOIN pg_class i ON i.oid = x.indexrelid
           JOIN pg_class t ON t.oid = x.indrelid
           JOIN pg_namespace n ON n.oid = t.relnamespace
           JOIN pg_attribute a ON a.attrelid = t.oid
           JOIN pg_constraint c ON c.conrelid = t.oid
           JOIN pg_type ty ON ty.oid = a.atttypid
          WHERE n.nspname = current_schema()"
            .to_string(),
        format!("EXPLAIN {}", invalid_indexes::UNUSABLE_INDEXES),
        format!("EXPLAIN {}", fk_valid::UNVALIDATED_FOREIGN_KEYS),
        "SELECT count(*) FROM pg_index WHERE NOT indisvalid".to_string(),
        "SELECT count(*) FROM pg_constraint WHERE NOT convalidated".to_string(),
        indexes,
        builds,
        tables::tables_query(schema, &none),
        tables::columns_query(schema, "'[]'::jsonb"),
    ]
}

/// The probes layer's answer to the runbook loader: which probes exist, which params fit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Catalog;

impl crate::runbook::ProbeCatalog for Catalog {
    fn check(&self, name: &str, params: &serde_json::Value) -> Result<(), String> {
        check_params(name, params)
    }
}

/// Runs one data query (SQL built from catalog names the server quoted) inside a savepoint, so
/// that the statement and lock timeouts bound it without ending the transaction: `Ok(None)` when
/// it was cut short, and the probe goes on with its other queries.
pub(crate) async fn bounded_row(
    conn: &mut sqlx::PgConnection,
    sql: String,
) -> Result<Option<sqlx::postgres::PgRow>, sqlx::Error> {
    Ok(bounded_rows(conn, sql)
        .await?
        .and_then(|rows| rows.into_iter().next()))
}

/// How many counts go to the server in one statement.
const COUNT_BATCH: usize = 50;

/// Runs `counts` (each a `SELECT count(*) ...` that cutover builds itself), 50 to a statement;
/// a batch cut short by the statement or lock timeout is counted again one by one, so that one
/// slow or locked table does not hide the others. `None` where a count did not finish.
pub(crate) async fn bounded_counts(
    conn: &mut sqlx::PgConnection,
    counts: &[String],
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    use sqlx::Row;
    let numbered = |i: usize, count: &str| format!("SELECT {i}, ({count})");
    let mut found: Vec<Option<i64>> = Vec::with_capacity(counts.len());
    for batch in counts.chunks(COUNT_BATCH) {
        let sql = batch
            .iter()
            .enumerate()
            .map(|(i, count)| numbered(i, count))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        if let Some(rows) = bounded_rows(&mut *conn, sql).await? {
            let mut batch_found = vec![None; batch.len()];
            for row in rows {
                let i: i32 = row.try_get(0)?;
                batch_found[i as usize] = Some(row.try_get::<i64, _>(1)?);
            }
            found.extend(batch_found);
            continue;
        }
        for count in batch {
            let row = bounded_row(&mut *conn, numbered(0, count)).await?;
            found.push(row.map(|row| row.try_get::<i64, _>(1)).transpose()?);
        }
    }
    Ok(found)
}

/// [`bounded_counts`] spread over the pool: the step's own connection takes batches of up to 50
/// one after another, and so does each connection that is idle in the pool while batches remain
/// (given back after each batch, so a step that starts meanwhile waits one batch at most).
/// Each batch runs in a read-only transaction of its own, with `statement_timeout`: a batch's
/// locks (every table and index its counts touch) are let go before the next, so that
/// thousands of tables never fill the server's shared lock table. On a server with cores to
/// spare, a probe that counts over thousands of tables finishes in a fraction of the time.
pub(crate) async fn spread_counts(
    db: &Db,
    tx: &mut crate::db::ReadOnly,
    statement_timeout: std::time::Duration,
    counts: &[String],
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Batches of 50, or smaller so that every connection gets one: eight keys on a pool of
    // three are counted as 3 + 3 + 2 at once, not as one statement on one connection.
    let size = counts.len().div_ceil(db.pool_size()).clamp(1, COUNT_BATCH);
    let batches: Vec<&[String]> = counts.chunks(size).collect();
    if batches.len() <= 1 {
        return bounded_counts(tx, counts).await;
    }
    let next = AtomicUsize::new(0);
    let found: std::sync::Mutex<Vec<Option<Vec<Option<i64>>>>> =
        std::sync::Mutex::new(vec![None; batches.len()]);
    let take = || {
        let i = next.fetch_add(1, Ordering::SeqCst);
        (i < batches.len()).then_some(i)
    };
    let keep = |i: usize, counts: Vec<Option<i64>>| {
        found.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(counts);
    };
    let own = async {
        while let Some(i) = take() {
            keep(i, bounded_counts(&mut *tx, batches[i]).await?);
            // A transaction per batch: the locks of one batch are let go before the next (after
            // the last, the probe's own end lets them go).
            if next.load(Ordering::SeqCst) < batches.len() {
                tx.renew().await?;
            }
        }
        Ok::<(), sqlx::Error>(())
    };
    let helper = async || {
        while next.load(Ordering::SeqCst) < batches.len() {
            let Some(mut tx) = db.try_read_only_with(statement_timeout).await else {
                // Every connection is busy: look again shortly.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            };
            let Some(i) = take() else { break };
            keep(i, bounded_counts(&mut tx, batches[i]).await?);
        }
        Ok::<(), sqlx::Error>(())
    };
    let helpers = futures_util::future::join_all((1..db.pool_size()).map(|_| helper()));
    let (own, helpers) = tokio::join!(own, helpers);
    own?;
    helpers.into_iter().collect::<Result<Vec<()>, _>>()?;
    let found = found.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(found.into_iter().flatten().flatten().collect())
}

/// Like [`bounded_row`], for every row. Only for SQL that cutover builds itself: the
/// savepoint, the query and the release travel in one round trip (simple protocol), and only a
/// query cut short costs a second one, to roll back to the savepoint.
pub(crate) async fn bounded_rows(
    conn: &mut sqlx::PgConnection,
    sql: String,
) -> Result<Option<Vec<sqlx::postgres::PgRow>>, sqlx::Error> {
    let batch = format!("SAVEPOINT cutover_bounded; {sql}\n; RELEASE SAVEPOINT cutover_bounded");
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(batch))
        .fetch_all(&mut *conn)
        .await;
    cut_short(conn, result).await
}

/// Like [`bounded_rows`] for SQL from a runbook: sent as one prepared statement, so the server
/// refuses a second statement (a `COMMIT; ...` smuggled in cannot leave the read-only
/// transaction).
pub(crate) async fn bounded_statement_rows(
    conn: &mut sqlx::PgConnection,
    sql: String,
) -> Result<Option<Vec<sqlx::postgres::PgRow>>, sqlx::Error> {
    sqlx::raw_sql("SAVEPOINT cutover_bounded")
        .execute(&mut *conn)
        .await?;
    let result = sqlx::query(sqlx::AssertSqlSafe(sql))
        .persistent(false)
        .fetch_all(&mut *conn)
        .await;
    if result.is_ok() {
        sqlx::raw_sql("RELEASE SAVEPOINT cutover_bounded")
            .execute(&mut *conn)
            .await?;
    }
    cut_short(conn, result).await
}

/// A timeout becomes `Ok(None)` (after rolling back to the savepoint); other errors stay.
async fn cut_short(
    conn: &mut sqlx::PgConnection,
    result: Result<Vec<sqlx::postgres::PgRow>, sqlx::Error>,
) -> Result<Option<Vec<sqlx::postgres::PgRow>>, sqlx::Error> {
    match result {
        Ok(rows) => Ok(Some(rows)),
        // 57014: statement timeout; 55P03: lock timeout (DDL holds the table).
        Err(sqlx::Error::Database(err))
            if matches!(err.code().as_deref(), Some("57014" | "55P03")) =>
        {
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT cutover_bounded")
                .execute(&mut *conn)
                .await?;
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

fn parse<P: DeserializeOwned>(params: &serde_json::Value) -> Result<P, String> {
    serde_json::from_value(params.clone()).map_err(|err| format!("bad probe params: {err}"))
}

async fn call<P, F>(probe: F, db: &Db, params: &serde_json::Value) -> Outcome
where
    P: DeserializeOwned,
    F: AsyncFnOnce(&Db, P) -> ProbeResult,
{
    let params = match parse::<P>(params) {
        Ok(params) => params,
        Err(message) => return Outcome::error(message),
    };
    match probe(db, params).await {
        Ok(outcome) => outcome,
        Err(err) => Outcome::error(err.into_db_error(db).to_string()),
    }
}
