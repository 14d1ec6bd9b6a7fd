//! `cutover deploy`: applies the pending migrations of a Prisma migrations folder natively, as
//! `prisma migrate deploy` does (prisma-engines' schema-engine, PostgreSQL), so that the two
//! can take turns on one database:
//! - the same advisory lock (`pg_advisory_lock(72707369)`, session-level, held for the run);
//! - the same `_prisma_migrations` table (Prisma's DDL), created in the URL's schema when
//!   missing, and refused on a schema that already has tables (Prisma's P3005);
//! - the same rows: a uuid v4 id, the lowercase hex SHA-256 of the script's bytes,
//!   `started_at` and `finished_at` from the client's clock in UTC, `applied_steps_count`
//!   counted up before `finished_at` is set, and on failure the error in `logs`;
//! - the same scripts: each `migration.sql` sent whole as one simple-protocol query (a file of
//!   several statements runs in one implicit transaction).
//!
//! Where it matters during a live window it does better: it names the session that holds the
//! lock while it waits; each script runs under `lock_timeout`, so a DDL statement queued
//! behind a long transaction does not stall the app's queries behind it, and a script that
//! timed out on a lock is run again when its failure left nothing behind; a file that cannot
//! run in one transaction (25001) is refused before anything runs; an INVALID index left by a
//! failed `CREATE INDEX CONCURRENTLY` is named with the statement that removes it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::postgres::PgDatabaseError;
use sqlx::{Connection, PgConnection, Row};
use tokio_util::sync::CancellationToken;

use super::history::{self, MigrationDir, StatusError, checksum_bytes, migration_dirs};
use super::script::{self, Shape};
use crate::db::{DbError, literal};
use crate::target::Target;

/// The key of Prisma Migrate's advisory lock ("a unique number we chose to identify Migrate").
pub const ADVISORY_LOCK_KEY: i64 = 72_707_369;

/// The name the deploy's session carries in `pg_stat_activity`.
pub const DEPLOY_APPLICATION_NAME: &str = "cutover-deploy";

/// Prisma's `_prisma_migrations`, column for column (schema-engine's
/// `create_migrations_table`), in the schema `{table}` is qualified with.
fn create_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE {table} (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
)"
    )
}

/// How a deploy runs.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// The Prisma migrations folder.
    pub migrations: PathBuf,
    /// How long to wait for Prisma's advisory lock (Prisma: 10 s).
    pub lock_wait: Duration,
    /// `lock_timeout` for each script.
    pub lock_timeout: Duration,
    /// How many times a script that timed out on a lock, and left nothing behind, runs again.
    pub retries: u32,
    /// Stops the deploy: while it waits for the lock, before the next migration, or (asking
    /// the server to cancel it) during a script, which then fails as a script fails.
    pub cancel: CancellationToken,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            migrations: PathBuf::from("prisma/migrations"),
            lock_wait: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(5),
            retries: 3,
            cancel: CancellationToken::new(),
        }
    }
}

/// How often a running script is looked at from a second session (lock waits, index builds),
/// and how long it runs before the first look: quick scripts are never looked at.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What a deploy says as it goes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// Prisma's advisory lock is held by another session; still waiting.
    LockWaiting {
        /// Who holds it, as far as the server shows.
        holder: String,
        /// Waited so far, in milliseconds.
        waited_ms: u64,
    },
    /// The lock is ours.
    LockTaken {
        /// Waited for it, in milliseconds.
        waited_ms: u64,
    },
    /// `_prisma_migrations` was created.
    TableCreated {
        /// Its qualified name.
        table: String,
    },
    /// What is pending, in order (possibly nothing).
    Pending {
        /// Migration names.
        names: Vec<String>,
    },
    /// A migration's script was sent.
    Started {
        /// The migration.
        name: String,
        /// 1 for the first run, 2 for the first retry, and so on.
        attempt: u32,
    },
    /// A script timed out on a lock; its failure left nothing behind and it runs again.
    Retrying {
        /// The migration.
        name: String,
        /// The attempt that just failed.
        attempt: u32,
        /// How long it waits first, in milliseconds.
        backoff_ms: u64,
        /// The server's error.
        error: String,
    },
    /// A running script waits for a lock that another session holds.
    LockBlocked {
        /// The migration.
        name: String,
        /// The lock it asks for: mode and relation, as `pg_locks` shows them.
        wants: String,
        /// The sessions that hold it back.
        blockers: String,
        /// How long the script has run, in milliseconds.
        running_ms: u64,
    },
    /// A running script builds an index (`pg_stat_progress_create_index`).
    Building {
        /// The migration.
        name: String,
        /// The index, when the server names it yet.
        index: String,
        /// Its table.
        table: String,
        /// The build's phase.
        phase: String,
        /// Percent of the phase done, when the server counts it.
        percent: Option<f64>,
        /// The sessions it waits for, when it waits (a concurrent build waits for the
        /// transactions that could see the table without the index).
        blockers: Option<String>,
    },
    /// A script is still running (said every few seconds when nothing else is).
    Running {
        /// The migration.
        name: String,
        /// How long it has run, in milliseconds.
        running_ms: u64,
    },
    /// A migration was applied and recorded.
    Finished(Applied),
}

impl std::fmt::Display for Progress {
    /// One line, as `cutover deploy` prints it and a runbook step's output shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = |ms: &u64| *ms as f64 / 1000.0;
        match self {
            Progress::LockWaiting { holder, waited_ms } => write!(
                f,
                "waiting for Prisma's migration lock ({:.0}s so far): held by {holder}",
                secs(waited_ms)
            ),
            Progress::LockTaken { waited_ms } => {
                write!(f, "took the migration lock after {:.1}s", secs(waited_ms))
            }
            Progress::TableCreated { table } => write!(f, "created {table}"),
            Progress::Pending { names } if names.is_empty() => write!(f, "no pending migrations"),
            Progress::Pending { names } => {
                write!(
                    f,
                    "{} migration(s) to apply: {}",
                    names.len(),
                    names.join(", ")
                )
            }
            Progress::Started { name, attempt: 1 } => write!(f, "applying {name}"),
            Progress::Started { name, attempt } => {
                write!(f, "applying {name} (attempt {attempt})")
            }
            Progress::Retrying {
                name,
                error,
                backoff_ms,
                ..
            } => write!(
                f,
                "  {name}: {error}; nothing was applied; trying again in {:.1}s",
                secs(backoff_ms)
            ),
            Progress::LockBlocked {
                name,
                wants,
                blockers,
                running_ms,
            } => write!(
                f,
                "  {name} ({:.0}s): waiting for {wants}, held by {blockers}",
                secs(running_ms)
            ),
            Progress::Building {
                name,
                index,
                table,
                phase,
                percent,
                blockers,
            } => {
                let done = percent.map(|p| format!(" {p:.0}%")).unwrap_or_default();
                write!(
                    f,
                    "  {name}: building index {index} on {table}: {phase}{done}"
                )?;
                match blockers {
                    Some(blockers) => write!(f, ", held back by {blockers}"),
                    None => Ok(()),
                }
            }
            Progress::Running { name, running_ms } => {
                write!(f, "  {name}: still running ({:.0}s)", secs(running_ms))
            }
            Progress::Finished(applied) => {
                let retries = match applied.retries {
                    0 => String::new(),
                    n => format!(" after {n} retr{}", if n == 1 { "y" } else { "ies" }),
                };
                write!(
                    f,
                    "✓ applied {} in {} ms{retries}",
                    applied.name, applied.duration_ms
                )
            }
        }
    }
}

/// One migration applied (the journal keeps one per migration of a run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Applied {
    /// The migration.
    pub name: String,
    /// The checksum recorded.
    pub checksum: String,
    /// Time the script took (the successful run), in milliseconds.
    pub duration_ms: u64,
    /// Runs that timed out on a lock before it went through.
    pub retries: u32,
    /// Time lost before the run that went through (the runs that timed out on a lock, and
    /// the waits between them), in milliseconds.
    pub lost_ms: u64,
    /// Time the run that went through was seen waiting for a lock another session held, in
    /// milliseconds (looked at once a second, so to the second; 0 for a quick script).
    #[serde(default)]
    pub blocked_ms: u64,
    /// When it started (the row's `started_at`), RFC 3339 in UTC.
    pub started_at: String,
}

/// What a deploy did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeployReport {
    /// The migrations applied, in order.
    pub applied: Vec<Applied>,
    /// Migrations that were applied before this run.
    pub already_applied: usize,
    /// Whether this run created `_prisma_migrations`.
    pub created_table: bool,
    /// How long it waited for Prisma's advisory lock, in milliseconds.
    pub lock_wait_ms: u64,
}

/// Why a deploy stopped.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The folder or a file in it could not be read.
    #[error(transparent)]
    Folder(#[from] StatusError),
    /// `migration_lock.toml` names another provider, or none.
    #[error(
        "{path}: {problem}; this migration history is not for PostgreSQL (Prisma's P3019): point --migrations at the PostgreSQL project's folder"
    )]
    Provider {
        /// The file.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A pending migration has no script.
    #[error(
        "migration {name} has no migration.sql ({path}): add the script or remove the folder; nothing was applied"
    )]
    NoScript {
        /// The migration.
        name: String,
        /// Where the script should be.
        path: String,
    },
    /// A pending script is not UTF-8 text.
    #[error("{path} is not UTF-8 text: save it as UTF-8; nothing was applied")]
    NotText {
        /// The script.
        path: String,
    },
    /// A pending script cannot run as one transaction.
    #[error(
        "migration {name} cannot run: {what} cannot run inside the transaction that a file of {statements} statements runs in (PostgreSQL's 25001); put it in a migration of its own, one statement per file; nothing was applied"
    )]
    OneTransaction {
        /// The migration.
        name: String,
        /// The statements that cannot, with their lines.
        what: String,
        /// How many statements the file has.
        statements: usize,
    },
    /// The database could not be reached or answered with an error outside a script.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Another session holds Prisma's advisory lock.
    #[error(
        "Prisma's migration lock (pg_advisory_lock({ADVISORY_LOCK_KEY})) is still held after {waited_secs:.0}s by {holder}: another deploy is running; wait for it, or end that session if it is stuck (--lock-wait SECONDS to wait longer); nothing was applied"
    )]
    LockHeld {
        /// Who holds it.
        holder: String,
        /// How long we waited.
        waited_secs: f64,
    },
    /// The schema has tables but no `_prisma_migrations` (Prisma's P3005).
    #[error(
        "schema `{schema}` has {count} table(s) ({examples}) but no _prisma_migrations: this database was not created by these migrations; baseline it first (`cutover baseline`), then deploy (Prisma's P3005); nothing was applied"
    )]
    NotEmpty {
        /// The schema.
        schema: String,
        /// How many tables.
        count: usize,
        /// A few of their names.
        examples: String,
    },
    /// A migration of the history failed and was never resolved (Prisma's P3009).
    #[error(
        "migration {name} started at {started_at} failed{logs} and was never resolved, so no migration can be applied (Prisma's P3009): repair the database, then `cutover resolve --applied {name}` if you completed it by hand, or `cutover resolve --rolled-back {name}` if you undid it"
    )]
    FailedInHistory {
        /// The migration.
        name: String,
        /// When it started.
        started_at: String,
        /// `: <its error>`, when it logged one.
        logs: String,
    },
    /// The deploy was cancelled between two migrations (or while it waited for the lock).
    #[error(
        "cancelled {when}: {applied} migration(s) applied by this run, none of the rest started; deploy again to apply them"
    )]
    Cancelled {
        /// When: "while waiting for the migration lock", "before NAME".
        when: String,
        /// Migrations applied by this run before.
        applied: usize,
    },
    /// A script failed.
    #[error("migration {name} failed: {error}{after}")]
    Failed {
        /// The migration.
        name: String,
        /// The server's error (SQLSTATE, message, where).
        error: String,
        /// What that means for the database, and what to do.
        after: String,
    },
}

impl DeployError {
    /// The exit code of `cutover deploy` for this error: 1 when a migration failed or is
    /// blocked, 2 for bad input and connection errors.
    pub fn exit_code(&self) -> u8 {
        match self {
            DeployError::Folder(_) | DeployError::Provider { .. } | DeployError::Db(_) => 2,
            _ => 1,
        }
    }
}

/// Reads `migration_lock.toml` as Prisma does (its first line that starts with `provider`);
/// no file, no check.
pub fn check_provider(folder: &Path) -> Result<(), DeployError> {
    let path = folder.join("migration_lock.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(DeployError::Folder(StatusError::Read {
                path: path.display().to_string(),
                error: e.to_string(),
            }));
        }
    };
    let provider = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("provider"))
        .and_then(|line| line.split_once('='))
        .map(|(_, value)| value.trim().trim_matches('"').to_string());
    match provider.as_deref() {
        Some("postgresql") => Ok(()),
        Some(other) => Err(DeployError::Provider {
            path: path.display().to_string(),
            problem: format!("its provider is `{other}`"),
        }),
        None => Err(DeployError::Provider {
            path: path.display().to_string(),
            problem: "it has no `provider = \"postgresql\"` line".to_string(),
        }),
    }
}

/// A pending migration, checked and ready to run.
struct Ready {
    name: String,
    script: String,
    checksum: String,
    shape: Shape,
}

/// Applies the pending migrations of `options.migrations` to `target`, telling `progress`
/// as it goes.
pub async fn deploy(
    target: &Target,
    options: &DeployOptions,
    progress: impl FnMut(Progress),
) -> Result<DeployReport, DeployError> {
    let conn = connect(target).await?;
    deploy_on(conn, target, options, progress).await
}

/// [`deploy`] on a session already open (from [`connect`]), which it closes.
pub async fn deploy_on(
    mut conn: PgConnection,
    target: &Target,
    options: &DeployOptions,
    mut progress: impl FnMut(Progress),
) -> Result<DeployReport, DeployError> {
    let result = async {
        check_provider(&options.migrations)?;
        let local = migration_dirs(&options.migrations)?;
        let (pid, waited) = take_lock(
            &mut conn,
            target,
            options.lock_wait,
            &options.cancel,
            &mut progress,
        )
        .await?;
        let session = Session { pid, target };
        let mut report = deploy_locked(&mut conn, &session, local, options, &mut progress).await?;
        report.lock_wait_ms = waited.as_millis() as u64;
        Ok(report)
    }
    .await;
    // The lock goes with the session; saying goodbye releases it at once.
    let _ = conn.close().await;
    result
}

/// The migrations of `folder` that a deploy would apply now, in order, read on `conn` without
/// the lock (to ask for the confirmation with; the deploy reads the history again under it).
pub async fn pending(
    conn: &mut PgConnection,
    target: &Target,
    folder: &Path,
) -> Result<Vec<String>, DeployError> {
    let local = migration_dirs(folder)?;
    let rows = history::rows_on(conn, target.schema())
        .await
        .map_err(|e| DbError::from_sqlx(e, target))?
        .unwrap_or_default();
    Ok(local
        .into_iter()
        .filter(|m| !history::is_recorded(&rows, &m.name))
        .map(|m| m.name)
        .collect())
}

/// A session of its own for the deploy: writable (the checks' pool is read-only), named.
pub async fn connect(target: &Target) -> Result<PgConnection, DbError> {
    let options = target
        .connect_options()
        .clone()
        .application_name(DEPLOY_APPLICATION_NAME);
    let mut conn = crate::db::connect_tuned(target, &options)
        .await
        .map_err(|e| DbError::from_sqlx(e, target))?;
    // Prisma puts the URL's schema first on the search path of its session.
    sqlx::query("SELECT set_config('search_path', quote_ident($1), false)")
        .bind(target.schema())
        .execute(&mut conn)
        .await
        .map_err(|e| DbError::from_sqlx(e, target))?;
    Ok(conn)
}

/// Creates `_prisma_migrations` with Prisma's DDL if it is missing (and the URL's schema, if
/// that is missing too); whether it did.
pub(crate) async fn create_table_if_missing(
    conn: &mut PgConnection,
    target: &Target,
) -> Result<bool, DbError> {
    let exists: bool = sqlx::query_scalar(
        "SELECT to_regclass(format('%I._prisma_migrations', $1::text)) IS NOT NULL",
    )
    .bind(target.schema())
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| DbError::from_sqlx(e, target))?;
    if !exists {
        create_table(conn, target).await?;
    }
    Ok(!exists)
}

/// Creates the URL's schema if missing, and `_prisma_migrations` in it with Prisma's DDL.
async fn create_table(conn: &mut PgConnection, target: &Target) -> Result<(), DbError> {
    let create = format!(
        "CREATE SCHEMA IF NOT EXISTS {}; {}",
        quote_ident(target.schema()),
        create_table_sql(&table_name(target))
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut *conn)
        .await
        .map_err(|e| DbError::from_sqlx(e, target))?;
    Ok(())
}

/// `"schema"._prisma_migrations`.
pub(crate) fn table_name(target: &Target) -> String {
    format!("{}._prisma_migrations", quote_ident(target.schema()))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Takes Prisma's advisory lock, waiting up to `wait` (or until `cancel`), and says who holds
/// it meanwhile. The wait is the server's own (`pg_advisory_lock` under a `lock_timeout` of at
/// most a second at a time), so the lock is ours the moment its holder lets go. Returns the
/// session's backend pid and how long it waited.
pub(crate) async fn take_lock(
    conn: &mut PgConnection,
    target: &Target,
    wait: Duration,
    cancel: &CancellationToken,
    progress: &mut impl FnMut(Progress),
) -> Result<(i32, Duration), DeployError> {
    let started = Instant::now();
    loop {
        if cancel.is_cancelled() {
            return Err(DeployError::Cancelled {
                when: "while waiting for the migration lock".to_string(),
                applied: 0,
            });
        }
        let slice = wait
            .saturating_sub(started.elapsed())
            .clamp(Duration::from_millis(1), Duration::from_secs(1));
        let attempt = format!(
            "SET lock_timeout = '{}ms'; SELECT pg_advisory_lock({ADVISORY_LOCK_KEY})::text, pg_backend_pid()",
            slice.as_millis()
        );
        match sqlx::raw_sql(sqlx::AssertSqlSafe(attempt))
            .fetch_all(&mut *conn)
            .await
        {
            Ok(rows) => {
                let pid = rows
                    .first()
                    .and_then(|row| row.try_get::<i32, _>(1).ok())
                    .unwrap_or(0);
                progress(Progress::LockTaken {
                    waited_ms: started.elapsed().as_millis() as u64,
                });
                return Ok((pid, started.elapsed()));
            }
            Err(err) if sqlstate(&err).as_deref() == Some("55P03") => {
                let holder = lock_holder(conn, target).await?;
                if started.elapsed() >= wait {
                    return Err(DeployError::LockHeld {
                        holder,
                        waited_secs: started.elapsed().as_secs_f64(),
                    });
                }
                progress(Progress::LockWaiting {
                    holder,
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            Err(err) => return Err(DbError::from_sqlx(err, target).into()),
        }
    }
}

/// The session that holds Prisma's advisory lock, as `pg_stat_activity` shows it.
async fn lock_holder(conn: &mut PgConnection, target: &Target) -> Result<String, DbError> {
    // A one-bigint advisory key is (classid = high half, objid = low half, objsubid = 1).
    let row = sqlx::query(
        "SELECT a.pid,
                coalesce(nullif(a.application_name, ''), 'no application_name'),
                coalesce('from ' || host(a.client_addr),
                         CASE WHEN a.client_port = -1 THEN 'on the local socket'
                              ELSE 'address not visible to this role' END),
                to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC',
                coalesce(a.state, 'unknown'),
                coalesce(a.usename::text, '?')
           FROM pg_locks l
           JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid = 0 AND l.objid = $1 AND l.objsubid = 1
          LIMIT 1",
    )
    .bind(ADVISORY_LOCK_KEY)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| DbError::from_sqlx(e, target))?;
    Ok(match row {
        None => "a session that let go just now".to_string(),
        Some(row) => {
            let pid: i32 = row.get(0);
            let app: String = row.get(1);
            let from: String = row.get(2);
            let since: String = row.get(3);
            let state: String = row.get(4);
            let user: String = row.get(5);
            format!("pid {pid} (`{app}`, user {user}, {from}, connected since {since}, {state})")
        }
    })
}

/// The deploy's session, once it holds the lock: its backend (to watch a running script from
/// a second session, and to cancel it) and its target.
struct Session<'t> {
    pid: i32,
    target: &'t Target,
}

async fn deploy_locked(
    conn: &mut PgConnection,
    session: &Session<'_>,
    local: Vec<MigrationDir>,
    options: &DeployOptions,
    progress: &mut impl FnMut(Progress),
) -> Result<DeployReport, DeployError> {
    let target = session.target;
    let db = |e: sqlx::Error| DeployError::Db(DbError::from_sqlx(e, target));
    let table = table_name(target);
    let schema = target.schema();
    let mut report = DeployReport::default();

    let rows = history::rows_on(conn, schema).await.map_err(db)?;
    let exists = rows.is_some();
    if !exists {
        // Prisma's P3005: only ordinary tables count, PostGIS's own excepted.
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname = $1
                AND c.relname !~* '^(spatial_ref_sys|geometry_columns|geography_columns|raster_columns|raster_overviews)$'
              ORDER BY 1",
        )
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        if !tables.is_empty() {
            return Err(DeployError::NotEmpty {
                schema: schema.to_string(),
                count: tables.len(),
                examples: tables
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }

    let rows = rows.unwrap_or_default();
    if let Some(failed) = rows
        .iter()
        .find(|row| row.finished_at.is_none() && row.rolled_back_at.is_none())
    {
        return Err(DeployError::FailedInHistory {
            name: failed.migration_name.clone(),
            started_at: failed.started_at.clone(),
            logs: failed
                .logs
                .as_ref()
                .map(|error| format!(": {error}"))
                .unwrap_or_default(),
        });
    }
    let applied = |name: &str| history::is_recorded(&rows, name);
    report.already_applied = local.iter().filter(|m| applied(&m.name)).count();

    // Every pending script is read and checked before the first one runs.
    let mut ready = Vec::new();
    for migration in local.into_iter().filter(|m| !applied(&m.name)) {
        let path = migration.script_path.display().to_string();
        let Some(bytes) = migration.script else {
            return Err(DeployError::NoScript {
                name: migration.name,
                path,
            });
        };
        let checksum = checksum_bytes(&bytes);
        let script = String::from_utf8(bytes).map_err(|_| DeployError::NotText { path })?;
        let shape = script::shape(&script);
        if shape.fails_in_one_transaction() {
            return Err(DeployError::OneTransaction {
                name: migration.name,
                what: shape.outside_transactions.join(", "),
                statements: shape.statements,
            });
        }
        ready.push(Ready {
            name: migration.name,
            script,
            checksum,
            shape,
        });
    }
    if !exists {
        create_table(conn, target).await?;
        report.created_table = true;
        progress(Progress::TableCreated {
            table: table.clone(),
        });
    }
    progress(Progress::Pending {
        names: ready.iter().map(|m| m.name.clone()).collect(),
    });
    for migration in &ready {
        if options.cancel.is_cancelled() {
            return Err(DeployError::Cancelled {
                when: format!("before {}", migration.name),
                applied: report.applied.len(),
            });
        }
        let applied = apply(conn, session, &table, migration, options, progress).await?;
        progress(Progress::Finished(applied.clone()));
        report.applied.push(applied);
    }
    Ok(report)
}

/// Runs one migration and records it as Prisma does.
async fn apply(
    conn: &mut PgConnection,
    session: &Session<'_>,
    table: &str,
    migration: &Ready,
    options: &DeployOptions,
    progress: &mut impl FnMut(Progress),
) -> Result<Applied, DeployError> {
    let target = session.target;
    let db = |e: sqlx::Error| DeployError::Db(DbError::from_sqlx(e, target));
    let id = uuid::Uuid::new_v4().to_string();
    let started_at = chrono::Utc::now();
    let mut first_attempt: Option<Instant> = None;
    // A lone concurrent index statement waits for the transactions older than it to end (a
    // lock wait, which lock_timeout would cut short, leaving an INVALID index behind), and
    // blocks neither reads nor writes meanwhile: it runs without lock_timeout, and the watcher
    // names whom it waits for.
    let lock_timeout = if migration.shape.only_concurrent_index() {
        "0".to_string()
    } else {
        format!("{}ms", options.lock_timeout.as_millis().max(1))
    };
    let set_timeout = format!("SET lock_timeout = {}", literal(&lock_timeout));
    // The row first, so that a deploy that dies during the script leaves it open (failed),
    // as Prisma's does; the script's lock_timeout travels in the same round trip.
    let insert = format!(
        "INSERT INTO {table} (id, checksum, started_at, migration_name) VALUES ({}, {}, {}::timestamptz, {}); {set_timeout}",
        literal(&id),
        literal(&migration.checksum),
        timestamp(started_at),
        literal(&migration.name)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(insert))
        .execute(&mut *conn)
        .await
        .map_err(db)?;

    let concurrent = !migration.shape.outside_transactions.is_empty();
    let invalid_before = if concurrent {
        invalid_indexes(conn).await.map_err(db)?
    } else {
        Vec::new()
    };
    let mut attempt = 1;
    let failure = loop {
        if attempt > 1 {
            // Again before a retry (what the failed script set rolled back with it).
            sqlx::raw_sql(sqlx::AssertSqlSafe(set_timeout.clone()))
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        }
        progress(Progress::Started {
            name: migration.name.clone(),
            attempt,
        });
        let started = Instant::now();
        let first = *first_attempt.get_or_insert(started);
        let (result, blocked) = run_watched(conn, session, migration, options, progress).await;
        let duration = started.elapsed();
        let err = match result {
            Ok(_) => {
                // Two statements, in Prisma's order (the step counted, then the finish), in
                // one round trip.
                let finish = format!(
                    "UPDATE {table} SET applied_steps_count = applied_steps_count + 1 WHERE id = {id}; \
                     UPDATE {table} SET finished_at = {}::timestamptz WHERE id = {id}",
                    timestamp(chrono::Utc::now()),
                    id = literal(&id)
                );
                sqlx::raw_sql(sqlx::AssertSqlSafe(finish))
                    .execute(&mut *conn)
                    .await
                    .map_err(db)?;
                return Ok(Applied {
                    name: migration.name.clone(),
                    checksum: migration.checksum.clone(),
                    duration_ms: duration.as_millis() as u64,
                    retries: attempt - 1,
                    lost_ms: started.duration_since(first).as_millis() as u64,
                    blocked_ms: blocked.as_millis() as u64,
                    started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                });
            }
            Err(err) => err,
        };
        if !matches!(&err, sqlx::Error::Database(_)) {
            // The link itself failed: the row stays open, as Prisma's would, and `status`
            // reports the migration as failed until it is resolved.
            return Err(db(err));
        }
        let lock_timeout = sqlstate(&err).as_deref() == Some("55P03");
        if lock_timeout
            && migration.shape.failure_leaves_nothing()
            && attempt <= options.retries
            && !options.cancel.is_cancelled()
        {
            let backoff = Duration::from_millis(500 * (1 << (attempt - 1).min(4)));
            progress(Progress::Retrying {
                name: migration.name.clone(),
                attempt,
                backoff_ms: backoff.as_millis() as u64,
                error: describe(&err, &migration.script),
            });
            tokio::time::sleep(backoff).await;
            attempt += 1;
            continue;
        }
        break err;
    };

    let logs = prisma_logs(&migration.name, &failure, &migration.script);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET logs = $1 WHERE id = $2"
    )))
    .bind(&logs)
    .bind(&id)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    let mut after = Vec::new();
    if attempt > 1 {
        after.push(format!(
            "it timed out on a lock on each of {attempt} attempts (lock_timeout {}s): the table is busy; run it when it is quieter, or raise --lock-timeout",
            options.lock_timeout.as_secs_f64()
        ));
    }
    if concurrent {
        let invalid_after = invalid_indexes(conn).await.map_err(db)?;
        for index in invalid_after.iter().filter(|i| !invalid_before.contains(i)) {
            after.push(format!(
                "it left index {index} INVALID: run DROP INDEX CONCURRENTLY {index}; before deploying again"
            ));
        }
    }
    if migration.shape.failure_leaves_nothing() {
        after.push("nothing of it was applied (its transaction rolled back)".to_string());
    } else if !concurrent {
        after.push(
            "it manages its own transactions, so what it committed before the error stays"
                .to_string(),
        );
    }
    after.push(format!(
        "the row in _prisma_migrations keeps the error; fix the script or the database, then `cutover resolve --rolled-back {}` and deploy again",
        migration.name
    ));
    Err(DeployError::Failed {
        name: migration.name.clone(),
        error: describe(&failure, &migration.script),
        after: format!("; {}", after.join("; ")),
    })
}

/// Runs the script on `conn`. While it runs (after the first [`WATCH_EVERY`]) a second session
/// looks at it once a second: the lock it waits for and who holds it, the index it builds and
/// how far; and when `options.cancel` fires, the server is asked to cancel it, so that it
/// fails (and its implicit transaction rolls back) as any failing script does. Returns the
/// script's result and how long it was seen waiting for a lock.
async fn run_watched(
    conn: &mut PgConnection,
    session: &Session<'_>,
    migration: &Ready,
    options: &DeployOptions,
    progress: &mut impl FnMut(Progress),
) -> (Result<(), sqlx::Error>, Duration) {
    let started = Instant::now();
    let script = sqlx::raw_sql(sqlx::AssertSqlSafe(migration.script.clone())).execute(&mut *conn);
    tokio::pin!(script);
    let mut watcher: Option<PgConnection> = None;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + WATCH_EVERY, WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cancel_sent = false;
    let mut last_said = Instant::now();
    let mut blocked = Duration::ZERO;
    let result = loop {
        tokio::select! {
            result = &mut script => break result,
            _ = tick.tick() => {
                let running_ms = started.elapsed().as_millis() as u64;
                let seen = tokio::time::timeout(
                    WATCH_EVERY,
                    look_at(&mut watcher, session, &migration.name, running_ms),
                )
                .await;
                if let Ok(Some(Progress::LockBlocked { .. })) = &seen {
                    blocked += WATCH_EVERY;
                }
                match seen {
                    Ok(Some(report)) => {
                        progress(report);
                        last_said = Instant::now();
                    }
                    _ if last_said.elapsed() >= Duration::from_secs(5) => {
                        progress(Progress::Running { name: migration.name.clone(), running_ms });
                        last_said = Instant::now();
                    }
                    _ => {}
                }
            }
            _ = options.cancel.cancelled(), if !cancel_sent => {
                cancel_sent = true;
                cancel_backend(&mut watcher, session).await;
            }
        }
    };
    if let Some(watcher) = watcher {
        let _ = watcher.close().await;
    }
    (result.map(|_| ()), blocked)
}

/// What the deploy's backend is doing, seen from `watcher` (opened on first use): waiting for
/// a lock (which, and who holds it) or building an index (phase and progress); `None` when
/// neither, or when the look failed (the script's own result says what matters).
async fn look_at(
    watcher: &mut Option<PgConnection>,
    session: &Session<'_>,
    name: &str,
    running_ms: u64,
) -> Option<Progress> {
    let conn = watcher_session(watcher, session).await?;
    let row = sqlx::query(
        "SELECT a.wait_event_type = 'Lock',
                (SELECT l.mode || ' on ' || coalesce(l.relation::regclass::text, l.locktype)
                   FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted LIMIT 1),
                (SELECT string_agg(format('pid %s (`%s`, %s%s)', b.pid,
                                          coalesce(nullif(b.application_name, ''), 'no application_name'),
                                          coalesce(b.state, 'unknown'),
                                          coalesce(', transaction open for ' || date_trunc('second', now() - b.xact_start)::text, '')),
                                   '; ' ORDER BY b.pid)
                   FROM pg_stat_activity b WHERE b.pid = ANY (pg_blocking_pids(a.pid))),
                nullif(p.index_relid, 0)::regclass::text,
                p.relid::regclass::text,
                p.phase,
                CASE WHEN p.blocks_total > 0 THEN 100.0 * p.blocks_done / p.blocks_total
                     WHEN p.tuples_total > 0 THEN 100.0 * p.tuples_done / p.tuples_total
                     WHEN p.lockers_total > 0 THEN 100.0 * p.lockers_done / p.lockers_total END::float8
           FROM pg_stat_activity a
           LEFT JOIN pg_stat_progress_create_index p ON p.pid = a.pid
          WHERE a.pid = $1",
    )
    .bind(session.pid)
    .fetch_optional(&mut *conn)
    .await
    .ok()??;
    let waiting: Option<bool> = row.try_get(0).ok()?;
    let wants: Option<String> = row.try_get(1).ok()?;
    let blockers: Option<String> = row.try_get(2).ok()?;
    let phase: Option<String> = row.try_get(5).ok()?;
    if waiting == Some(true) && phase.is_none() {
        return Some(Progress::LockBlocked {
            name: name.to_string(),
            wants: wants.unwrap_or_else(|| "a lock".to_string()),
            blockers: blockers.unwrap_or_else(|| "a session that let go just now".to_string()),
            running_ms,
        });
    }
    let phase = phase?;
    Some(Progress::Building {
        name: name.to_string(),
        index: row
            .try_get::<Option<String>, _>(3)
            .ok()
            .flatten()
            .unwrap_or_else(|| "(not named yet)".to_string()),
        table: row
            .try_get::<Option<String>, _>(4)
            .ok()
            .flatten()
            .unwrap_or_default(),
        phase,
        percent: row.try_get(6).ok().flatten(),
        blockers: blockers.filter(|_| waiting == Some(true)),
    })
}

/// The second session, opened on first use (a quick script never needs one).
async fn watcher_session<'w>(
    watcher: &'w mut Option<PgConnection>,
    session: &Session<'_>,
) -> Option<&'w mut PgConnection> {
    if watcher.is_none() {
        let options = session
            .target
            .connect_options()
            .clone()
            .application_name(DEPLOY_APPLICATION_NAME);
        *watcher = crate::db::connect_tuned(session.target, &options)
            .await
            .ok();
    }
    watcher.as_mut()
}

/// Asks the server to cancel what the deploy's backend runs (`pg_cancel_backend`, from the
/// second session): the script fails with 57014 and its implicit transaction rolls back.
async fn cancel_backend(watcher: &mut Option<PgConnection>, session: &Session<'_>) {
    let Some(conn) = watcher_session(watcher, session).await else {
        return;
    };
    let cancelled = sqlx::query("SELECT pg_cancel_backend($1)")
        .bind(session.pid)
        .execute(&mut *conn)
        .await;
    if let Err(err) = cancelled {
        tracing::warn!(error = %err, pid = session.pid, "could not cancel the deploy's script");
    }
}

/// A timestamp literal, to the microsecond (what `timestamptz` keeps), in UTC.
fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    literal(&at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// The INVALID indexes of the database, qualified.
async fn invalid_indexes(conn: &mut PgConnection) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT (SELECT relnamespace::regnamespace::text || '.' || quote_ident(relname)
                   FROM pg_class WHERE oid = x.indexrelid)
           FROM pg_index x
          WHERE NOT x.indisvalid AND x.indexrelid >= 16384",
    )
    .fetch_all(conn)
    .await
}

/// The SQLSTATE of a database error.
fn sqlstate(err: &sqlx::Error) -> Option<String> {
    err.as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
}

/// `ERROR 42P01: relation "x" does not exist (line 3: ALTER TABLE "x" ...)`.
fn describe(err: &sqlx::Error, script: &str) -> String {
    let Some(pg) = err
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<PgDatabaseError>())
    else {
        return err.to_string();
    };
    let mut text = format!("ERROR {}: {}", pg.code(), pg.message());
    if let Some(line) = error_line(pg, script) {
        let source = script.lines().nth(line - 1).unwrap_or("").trim();
        text.push_str(&format!(" (line {line}: {})", shorten(source, 80)));
    }
    if let Some(detail) = pg.detail() {
        text.push_str(&format!("; {detail}"));
    }
    text
}

/// The 1-based line of the script where the server places the error, if it does.
fn error_line(pg: &PgDatabaseError, script: &str) -> Option<usize> {
    match pg.position()? {
        sqlx::postgres::PgErrorPosition::Original(position) => {
            // A character position, 1-based.
            let before: String = script.chars().take(position.saturating_sub(1)).collect();
            Some(before.matches('\n').count() + 1)
        }
        _ => None,
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}

/// `logs` of a failed migration, as Prisma words it (P3018), with the database error's code,
/// message and the script's lines around where it failed.
fn prisma_logs(name: &str, err: &sqlx::Error, script: &str) -> String {
    let pg = err
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<PgDatabaseError>());
    let code = sqlstate(err).unwrap_or_else(|| "none".to_string());
    let mut database_error = match pg {
        Some(pg) => format!("ERROR: {}", pg.message()),
        None => err.to_string(),
    };
    if let Some(line) = pg.and_then(|pg| error_line(pg, script)) {
        database_error.push_str("\n\nPosition:\n");
        let lines: Vec<&str> = script.lines().collect();
        let first = line.saturating_sub(4).max(1);
        for number in first..=line.min(lines.len()) {
            database_error.push_str(&format!("{number:>3}  {}\n", lines[number - 1]));
        }
    }
    format!(
        "A migration failed to apply. New migrations cannot be applied before the error is recovered from. Read more about how to resolve migration issues in a production database: https://pris.ly/d/migrate-resolve\n\nMigration name: {name}\n\nDatabase error code: {code}\n\nDatabase error:\n{database_error}\n"
    )
}

/// The database error in a failed migration's `logs` (Prisma's wording or ours): the line
/// after `Database error:`, else the first line.
pub fn database_error_of(logs: &str) -> String {
    let mut lines = logs.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "Database error:"
            && let Some(next) = lines.next()
        {
            return next.trim().to_string();
        }
    }
    logs.lines().next().unwrap_or("").trim().to_string()
}
