//! `cutover rehearse`: the newest dump restored into a throwaway cluster (timed: it is the
//! restore part of the rollback budget), its rows counted, and the pending migrations applied
//! to it with the native deploy, each timed; the cluster and its files removed at the end
//! unless kept.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::deploy::{self, Applied};
use crate::cluster::{Cluster, ClusterOptions};
use crate::db::{Db, DbSettings, literal};
use crate::target::Target;

/// How a rehearsal runs.
#[derive(Debug, Clone)]
pub struct RehearseOptions {
    /// The dump to restore; `None`: the newest `*.dump` of `backup_dir`.
    pub dump: Option<PathBuf>,
    /// Where the dumps are.
    pub backup_dir: PathBuf,
    /// The Prisma migrations folder.
    pub migrations: PathBuf,
    /// Parallel restore jobs (`pg_restore -j`).
    pub jobs: usize,
    /// The URL's schema on the copy (the target's).
    pub schema: String,
    /// An existing server to restore into instead of a throwaway cluster (`--scratch-url`,
    /// `SHADOW_DATABASE_URL`): a database is created on it and dropped at the end.
    pub scratch: Option<Target>,
}

/// Where the copy lives: a throwaway cluster, or a database made on a scratch server. Dropping
/// it removes it (the cluster and its files; the database, `WITH (FORCE)`).
pub enum Scratch {
    /// A throwaway local cluster.
    Cluster(Cluster),
    /// A database on an existing server.
    Database(Box<ScratchDatabase>),
}

/// A database cutover made on a scratch server; dropped with it.
pub struct ScratchDatabase {
    admin: Target,
    name: String,
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop may run inside the runtime (a cancelled rehearsal): a thread of its own, with
        // a runtime of its own, does the round trips.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                use sqlx::Connection as _;
                let mut conn = sqlx::PgConnection::connect_with(admin.connect_options())
                    .await
                    .ok()?;
                let sql = format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    name.replace('"', "\"\"")
                );
                let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
                done.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            tracing::warn!(database = %self.name, "could not drop the rehearsal's scratch database");
        }
    }
}

/// The scratch server to restore into: `flag`, else `SHADOW_DATABASE_URL` (Prisma's name for
/// the same idea), else none (a throwaway cluster). Refused when it names `target` itself.
pub fn scratch_from(
    flag: Option<&str>,
    target: Option<&Target>,
) -> Result<Option<Target>, RehearseError> {
    let url = match flag {
        Some(url) => url.to_string(),
        None => match std::env::var("SHADOW_DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => return Ok(None),
        },
    };
    let scratch = Target::from_url(&url).map_err(|e| RehearseError::Cluster(e.to_string()))?;
    if let Some(target) = target
        && scratch.host().eq_ignore_ascii_case(target.host())
        && scratch.connect_options().get_port() == target.connect_options().get_port()
        && scratch.database() == target.database()
    {
        return Err(RehearseError::ScratchIsTarget(target.to_string()));
    }
    Ok(Some(scratch))
}

/// An empty database to restore or replay into, its target carrying `schema`: one created on
/// the `scratch` server, else database `name` of a throwaway cluster started with `settings`.
/// Dropping the [`Scratch`] removes it.
pub(crate) async fn empty_database(
    scratch: Option<&Target>,
    schema: &str,
    settings: ClusterOptions,
    name: &str,
) -> Result<(Scratch, Target), RehearseError> {
    if let Some(admin) = scratch {
        let (database, copy) = scratch_database(admin, schema).await?;
        return Ok((Scratch::Database(Box::new(database)), copy));
    }
    let cluster_error = |e: String| RehearseError::Cluster(e);
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(settings))
        .await
        .map_err(|e| cluster_error(e.to_string()))?
        .map_err(|e| cluster_error(e.to_string()))?;
    cluster
        .create_database(name)
        .map_err(|e| cluster_error(e.to_string()))?;
    let encoded: String = url::form_urlencoded::byte_serialize(schema.as_bytes()).collect();
    let copy = Target::from_url(&format!("{}?schema={encoded}", cluster.url(name)))
        .map_err(|e| cluster_error(e.to_string()))?;
    Ok((Scratch::Cluster(cluster), copy))
}

/// Creates a database for the copy on the scratch server `admin`; its target (with `schema`).
async fn scratch_database(
    admin: &Target,
    schema: &str,
) -> Result<(ScratchDatabase, Target), RehearseError> {
    use sqlx::Connection as _;
    let name = format!(
        "cutover_rehearsal_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let db_err = |e: sqlx::Error| RehearseError::Db(crate::db::DbError::from_sqlx(e, admin));
    let mut conn = sqlx::PgConnection::connect_with(admin.connect_options())
        .await
        .map_err(db_err)?;
    let created = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    created.map_err(db_err)?;
    let guard = ScratchDatabase {
        admin: admin.clone(),
        name: name.clone(),
    };
    let mut url = url::Url::parse(&admin.child_env()["DATABASE_URL"])
        .map_err(|e| RehearseError::Cluster(e.to_string()))?;
    url.set_path(&format!("/{name}"));
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "schema")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("schema", schema);
    let copy = Target::from_url(url.as_str()).map_err(|e| RehearseError::Cluster(e.to_string()))?;
    Ok((guard, copy))
}

/// A throwaway cluster's settings: nothing in it needs to survive a crash, so no durability.
pub fn throwaway_settings() -> ClusterOptions {
    ClusterOptions::default()
        .setting("fsync", "off")
        .setting("synchronous_commit", "off")
        .setting("full_page_writes", "off")
        .setting("maintenance_work_mem", "256MB")
}

/// What a rehearsal says as it goes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// The dump chosen.
    Dump {
        /// Its path.
        path: String,
        /// Its size.
        bytes: u64,
        /// The server version it was made from.
        from_version: String,
        /// Tables with data in it.
        tables: usize,
    },
    /// A table's data is restored.
    Restored {
        /// Tables done.
        done: usize,
        /// Tables in the dump.
        total: usize,
        /// The table.
        table: String,
    },
    /// The throwaway cluster is up.
    ClusterStarted {
        /// Its port on 127.0.0.1.
        port: u16,
    },
    /// The restore ended.
    RestoreFinished {
        /// How long it took.
        ms: u64,
    },
    /// A migration is applied to the copy.
    Migration(Applied),
    /// A statement of a migration ran on the copy.
    Statement(StatementTiming),
    /// A statement failed on the copy: the rehearsal's finding.
    Failed(FailedStatement),
}

impl std::fmt::Display for Progress {
    /// As `cutover rehearse` prints it and a runbook step's output shows it (a statement may
    /// take several lines: its locks and rewrites).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Progress::Dump {
                path,
                bytes,
                from_version,
                tables,
            } => write!(
                f,
                "restoring {path} ({:.1} MiB, {tables} tables with data, from PostgreSQL {from_version}) into a throwaway cluster",
                *bytes as f64 / 1024.0 / 1024.0
            ),
            Progress::ClusterStarted { port } => {
                write!(f, "throwaway cluster up on 127.0.0.1:{port}")
            }
            Progress::Restored { done, total, table } => {
                write!(f, "  [{done}/{total}] {table}")
            }
            Progress::RestoreFinished { ms } => write!(
                f,
                "restored and analyzed in {:.1} s: the restore part of the rollback budget (the checklist's is 5 minutes)",
                *ms as f64 / 1000.0
            ),
            Progress::Migration(applied) => write!(
                f,
                "  applied {} to the copy in {} ms",
                applied.name, applied.duration_ms
            ),
            Progress::Statement(statement) => {
                write!(
                    f,
                    "    line {}: {} ({} ms)",
                    statement.line, statement.text, statement.ms
                )?;
                for lock in &statement.locks {
                    write!(f, "\n      {lock}")?;
                }
                for table in &statement.rewrote {
                    write!(f, "\n      rewrote {table}")?;
                }
                Ok(())
            }
            Progress::Failed(failed) => write!(f, "  ✗ {failed}"),
        }
    }
}

impl HeldLock {
    /// Whether the app's writes (or reads and writes) wait while it is held.
    pub fn blocks_the_app(&self) -> bool {
        super::lint::locks::LockMode::from_pg_locks(&self.mode).is_some_and(|m| m.blocks_the_app())
    }

    /// What the app cannot do while it is held.
    fn effect(&self) -> &'static str {
        use super::lint::locks::LockMode;
        match LockMode::from_pg_locks(&self.mode) {
            Some(LockMode::AccessExclusive) => "reads and writes of the app wait that long",
            Some(mode) if mode.blocks_the_app() => "writes of the app wait that long (reads go on)",
            _ => "the app's reads and writes go on",
        }
    }
}

impl std::fmt::Display for HeldLock {
    /// `AccessExclusive on public."Tag" (1200000 rows) held 8.4 s: reads and writes of the app
    /// wait that long`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {} ({}) held {:.1} s: {}",
            self.mode.trim_end_matches("Lock"),
            self.table,
            self.rows
                .map_or("rows unknown".to_string(), |r| format!("{r:.0} rows")),
            self.held_ms as f64 / 1000.0,
            self.effect()
        )
    }
}

/// One statement of a migration, run on the copy: its time, and the locks on tables that
/// existed before the migration, each held from this statement until its transaction ended.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StatementTiming {
    /// The migration.
    pub migration: String,
    /// 1-based line where the statement starts.
    pub line: usize,
    /// Its first line, shortened.
    pub text: String,
    /// Its own time, in milliseconds.
    pub ms: u64,
    /// Locks it took first: table, mode, the table's rows, how long the lock was held.
    pub locks: Vec<HeldLock>,
    /// Tables it rewrote (their file changed).
    pub rewrote: Vec<String>,
}

/// A lock a statement took, and for how long its transaction kept it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct HeldLock {
    /// The table.
    pub table: String,
    /// The mode, as `pg_locks` names it.
    pub mode: String,
    /// The table's rows (`reltuples`).
    pub rows: Option<f64>,
    /// From the statement's start to the end of its transaction, in milliseconds.
    pub held_ms: u64,
}

/// What a rehearsal measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rehearsal {
    /// The dump restored.
    pub dump: String,
    /// Wall time of `pg_restore`, in milliseconds.
    pub restore_ms: u64,
    /// Rows of each table of the copy, counted exactly.
    pub rows: Vec<(String, i64)>,
    /// The pending migrations, applied to the copy, in order.
    pub migrations: Vec<Applied>,
    /// Each of their statements, in order.
    pub statements: Vec<StatementTiming>,
    /// The statement that failed on the copy, if one did: the rehearsal's finding. The
    /// migrations after it were not tried.
    pub failed: Option<FailedStatement>,
}

/// A statement that failed on the copy: which, where, and the server's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FailedStatement {
    /// The migration.
    pub migration: String,
    /// Its checksum: a later edit of the file makes the finding stale.
    pub checksum: String,
    /// 1-based line where the statement starts.
    pub line: usize,
    /// Its first line, shortened.
    pub text: String,
    /// The server's error: `ERROR 23502: …`.
    pub error: String,
}

impl std::fmt::Display for FailedStatement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "migration {} fails at line {} ({}): {}",
            self.migration, self.line, self.text, self.error
        )
    }
}

impl Rehearsal {
    /// What the journal keeps of it, as the restore step's data: the restore's time (the
    /// rollback budget reads it), each migration and statement with its locks (the rollback
    /// section shows them), and the statement that failed (the production deploy warns of it).
    pub fn measurement(&self) -> serde_json::Value {
        serde_json::json!({
            "restore_ms": self.restore_ms,
            "dump": self.dump,
            "migrations": self.migrations,
            "statements": self.statements,
            "failed": self.failed,
        })
    }

    /// One line: what was restored, how fast, and what the migrations did on it.
    pub fn summary(&self) -> String {
        let rows: i64 = self.rows.iter().map(|(_, n)| n).sum();
        let total: u64 = self.migrations.iter().map(|m| m.duration_ms).sum();
        let restored = format!(
            "restored {} in {:.1} s ({} tables, {rows} rows)",
            self.dump,
            self.restore_ms as f64 / 1000.0,
            self.rows.len()
        );
        match &self.failed {
            Some(failed) => format!(
                "{restored}; the rehearsal found that {failed}{}",
                match self.migrations.len() {
                    0 => String::new(),
                    n => format!(" (after {n} migration(s) applied in {total} ms)"),
                }
            ),
            None => format!(
                "{restored}; {} pending migration(s) rehearsed on it in {total} ms",
                self.migrations.len()
            ),
        }
    }

    /// Each statement rehearsed, with its time, locks and rewrites, as output and report
    /// lines; the failed one last.
    pub fn statement_lines(&self) -> Vec<String> {
        self.statements
            .iter()
            .map(|s| {
                let locks: Vec<String> = s
                    .locks
                    .iter()
                    .map(ToString::to_string)
                    .chain(s.rewrote.iter().map(|t| format!("rewrote {t}")))
                    .collect();
                format!(
                    "{} line {}: {} ms{}{}",
                    s.migration,
                    s.line,
                    s.ms,
                    if locks.is_empty() { "" } else { "; " },
                    locks.join("; ")
                )
            })
            .chain(self.failed.iter().map(|f| {
                format!(
                    "{} line {}: failed: {} ({})",
                    f.migration, f.line, f.error, f.text
                )
            }))
            .collect()
    }
}

/// Why a rehearsal stopped.
#[derive(Debug, thiserror::Error)]
pub enum RehearseError {
    /// No dump to restore.
    #[error("no dump to rehearse on: {0}")]
    NoDump(String),
    /// The dump cannot be read.
    #[error("{path} cannot be restored: {reason}")]
    BadDump {
        /// The dump.
        path: String,
        /// Why.
        reason: String,
    },
    /// Not enough room.
    #[error(
        "not enough free disk for the restore in {dir}: {free_mb} MiB free, the dump of {dump_mb} MiB needs about {needed_mb} MiB restored; free some space or set TMPDIR to a bigger disk"
    )]
    Disk {
        /// Where.
        dir: String,
        /// Free.
        free_mb: u64,
        /// The dump.
        dump_mb: u64,
        /// Needed.
        needed_mb: u64,
    },
    /// The throwaway cluster.
    #[error(
        "cannot start the throwaway cluster to restore into: {0} (rehearse needs the PostgreSQL server binaries, initdb and pg_ctl, on this host, or a scratch server: --scratch-url URL or SHADOW_DATABASE_URL)"
    )]
    Cluster(String),
    /// The scratch URL names the target itself.
    #[error(
        "the scratch URL names the target database itself ({0}): a rehearsal never restores into the database it rehearses for; give a scratch server's URL (a database there is created and dropped)"
    )]
    ScratchIsTarget(String),
    /// The restore failed.
    #[error("pg_restore failed on {path}: {reason}; the throwaway cluster was removed")]
    Restore {
        /// The dump.
        path: String,
        /// Its last error line.
        reason: String,
    },
    /// The copy's database.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// The migrations could not be read or checked against the copy's history.
    #[error("cannot rehearse the migrations: {0}")]
    Deploy(#[from] deploy::DeployError),
}

impl RehearseError {
    /// 1 when the rehearsal found a problem with the migration, 2 when it could not run.
    pub fn exit_code(&self) -> u8 {
        match self {
            RehearseError::Deploy(err) => err.exit_code().max(1),
            _ => 2,
        }
    }
}

/// The newest `*.dump` file of `dir`.
pub fn newest_dump(dir: &Path) -> Result<PathBuf, RehearseError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        RehearseError::NoDump(format!(
            "cannot read {}: {e} (run backup.dump, or pass --dump FILE)",
            dir.display()
        ))
    })?;
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "dump"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, path)| path)
        .ok_or_else(|| {
            RehearseError::NoDump(format!(
                "{} holds no .dump file (run backup.dump, or pass --dump FILE)",
                dir.display()
            ))
        })
}

/// What `pg_restore --list` says of a dump: the server version it came from and its tables
/// with data.
fn list(dump: &Path) -> Result<(String, Vec<String>), RehearseError> {
    let bad = |reason: String| RehearseError::BadDump {
        path: dump.display().to_string(),
        reason,
    };
    let output = std::process::Command::new("pg_restore")
        .arg("--list")
        .arg(dump)
        .output()
        .map_err(|e| {
            bad(format!(
                "cannot run pg_restore: {e} (install the PostgreSQL client tools)"
            ))
        })?;
    if !output.status.success() {
        let last = super::last_error_line(&output.stderr)
            .trim_start_matches("pg_restore: error: ")
            .to_string();
        let hint = if last.contains("unsupported version") {
            ": it was made by a newer pg_dump than this host's pg_restore; install the client tools of that PostgreSQL version"
        } else if last.contains("magic string") || last.contains("input file") {
            ": it is not a complete custom-format dump (truncated, or a plain .sql file); make a new one with backup.dump"
        } else {
            ""
        };
        return Err(bad(format!("{last}{hint}")));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text
        .lines()
        .find_map(|l| l.split("Dumped from database version:").nth(1))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let tables = text
        .lines()
        .filter(|l| !l.starts_with(';') && l.contains(" TABLE DATA "))
        .map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            // `3350; 0 16390 TABLE DATA public Summary postgres`
            match parts.iter().position(|p| *p == "DATA") {
                Some(at) if parts.len() > at + 2 => format!("{}.{}", parts[at + 1], parts[at + 2]),
                _ => l.to_string(),
            }
        })
        .collect();
    Ok((version, tables))
}

/// A dump that cutover made, with the rows of every table counted in the very snapshot the
/// dump read.
#[derive(Debug, Clone)]
pub struct SnapshotDump {
    /// The dump file.
    pub path: PathBuf,
    /// `schema.table` (quoted as `format('%I.%I')` writes it) → rows, as the dump has them.
    pub rows: Vec<(String, i64)>,
}

/// Dumps `target` into `dir/<database>_<stamp>.dump` (custom format) and counts the rows of
/// every table of its schema in the same snapshot: a repeatable-read transaction exports its
/// snapshot (`pg_export_snapshot()`), counts, and stays open while `pg_dump --snapshot` reads
/// from it, so the restored counts must match exactly, whatever the app writes meanwhile. The
/// password reaches pg_dump through its environment, never its argv.
pub async fn dump_with_counts(target: &Target, dir: &Path) -> Result<SnapshotDump, RehearseError> {
    use sqlx::Connection as _;
    std::fs::create_dir_all(dir)
        .map_err(|e| RehearseError::NoDump(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(format!(
        "{}_{}.dump",
        target.database(),
        chrono::Utc::now().format("%Y%m%d_%H%M%S")
    ));
    let db_err = |e: sqlx::Error| RehearseError::Db(crate::db::DbError::from_sqlx(e, target));
    let mut conn = sqlx::PgConnection::connect_with(target.connect_options())
        .await
        .map_err(db_err)?;
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut conn)
        .await
        .map_err(db_err)?;
    let (snapshot,): (String,) = sqlx::query_as("SELECT pg_export_snapshot()")
        .fetch_one(&mut conn)
        .await
        .map_err(db_err)?;
    let tables: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(tables_query(target.schema())))
            .fetch_all(&mut conn)
            .await
            .map_err(db_err)?;
    let mut rows = Vec::new();
    if !tables.is_empty() {
        rows = sqlx::query_as(sqlx::AssertSqlSafe(counts_query(&tables)))
            .fetch_all(&mut conn)
            .await
            .map_err(db_err)?;
    }
    let output = tokio::process::Command::new("pg_dump")
        .args(["--format=custom", "--lock-wait-timeout=30s"])
        .arg(format!("--snapshot={snapshot}"))
        .arg(format!("--file={}", path.display()))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(target.child_env())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| RehearseError::NoDump(format!("cannot run pg_dump: {e}")))?;
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut conn).await;
    let _ = conn.close().await;
    if !output.status.success() {
        return Err(RehearseError::NoDump(format!(
            "pg_dump failed: {}",
            super::last_error_line(&output.stderr)
        )));
    }
    Ok(SnapshotDump { path, rows })
}

/// The tables whose restored count differs from the dump's snapshot, one line each.
pub fn count_differences(expected: &[(String, i64)], restored: &[(String, i64)]) -> Vec<String> {
    let mut lines = Vec::new();
    for (table, rows) in expected {
        match restored.iter().find(|(t, _)| t == table) {
            Some((_, got)) if got == rows => {}
            Some((_, got)) => lines.push(format!(
                "{table}: {got} row(s) restored, {rows} in the dump's snapshot"
            )),
            None => lines.push(format!("{table}: not restored ({rows} row(s) in the dump)")),
        }
    }
    lines
}

/// Free bytes on the file system of `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(stat.blocks_available() as u64 * stat.fragment_size() as u64)
}

/// Restores the dump into a throwaway cluster, counts its rows, and applies the pending
/// migrations of `options.migrations` to it. Returns the cluster (dropping it removes it) with
/// what was measured.
pub async fn rehearse(
    options: &RehearseOptions,
    mut progress: impl FnMut(Progress),
) -> Result<(Scratch, Target, Rehearsal), RehearseError> {
    let dump = match &options.dump {
        Some(dump) => dump.clone(),
        None => newest_dump(&options.backup_dir)?,
    };
    let bytes = std::fs::metadata(&dump)
        .map_err(|e| RehearseError::NoDump(format!("cannot read {}: {e}", dump.display())))?
        .len();
    let (from_version, tables) = list(&dump)?;
    // A custom-format dump is compressed: restored, with indexes, it takes a few times its size.
    let tmp = std::env::temp_dir();
    let needed = bytes.saturating_mul(4);
    if let Some(free) = free_bytes(&tmp)
        && free < needed
    {
        return Err(RehearseError::Disk {
            dir: tmp.display().to_string(),
            free_mb: free / 1024 / 1024,
            dump_mb: bytes / 1024 / 1024,
            needed_mb: needed / 1024 / 1024,
        });
    }
    progress(Progress::Dump {
        path: dump.display().to_string(),
        bytes,
        from_version: from_version.clone(),
        tables: tables.len(),
    });

    let (scratch, copy) = empty_database(
        options.scratch.as_ref(),
        &options.schema,
        throwaway_settings(),
        "rehearsal",
    )
    .await?;
    if let Scratch::Cluster(cluster) = &scratch {
        progress(Progress::ClusterStarted {
            port: cluster.port(),
        });
    }

    let started = Instant::now();
    let mut child = tokio::process::Command::new("pg_restore")
        .args([
            "--no-owner",
            "--no-privileges",
            "--verbose",
            "--exit-on-error",
        ])
        .arg(format!("--jobs={}", options.jobs.max(1)))
        .arg(format!("--dbname={}", copy.database()))
        .arg(&dump)
        // The copy's address and any password reach pg_restore through its environment.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(copy.child_env())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| RehearseError::Restore {
            path: dump.display().to_string(),
            reason: e.to_string(),
        })?;
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let mut done = 0;
    let mut last_error = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        // `pg_restore: finished item 3350 TABLE DATA Summary` (parallel), or `processing data
        // for table "public.Summary"` (one job).
        let table = if options.jobs > 1 {
            line.split("TABLE DATA ")
                .nth(1)
                .filter(|_| line.contains("finished item"))
        } else {
            line.split("processing data for table ").nth(1)
        }
        .map(|t| t.trim().trim_matches('"').to_string());
        if let Some(table) = table {
            done += 1;
            progress(Progress::Restored {
                done,
                total: tables.len(),
                table,
            });
        }
        if line.contains("error:") {
            last_error = line.trim_start_matches("pg_restore: error: ").to_string();
        }
    }
    let status = child.wait().await.map_err(|e| RehearseError::Restore {
        path: dump.display().to_string(),
        reason: e.to_string(),
    })?;
    if !status.success() {
        return Err(RehearseError::Restore {
            path: dump.display().to_string(),
            reason: if last_error.is_empty() {
                format!("it exited with {status}")
            } else {
                last_error
            },
        });
    }
    // pg_restore leaves the planner without statistics: until ANALYZE, queries plan as on
    // empty tables (a restore for a rollback needs it just the same), so it is part of the
    // restore's time.
    let mut conn = deploy::connect(&copy).await?;
    sqlx::raw_sql("ANALYZE")
        .execute(&mut conn)
        .await
        .map_err(|e| crate::db::DbError::from_sqlx(e, &copy))?;
    let _ = sqlx::Connection::close(conn).await;
    let restore_ms = started.elapsed().as_millis() as u64;
    progress(Progress::RestoreFinished { ms: restore_ms });

    let db = Db::connect(&copy, DbSettings::default()).await?;
    let rows = count_rows(&db, &options.schema).await;
    db.close().await;
    let rows = rows?;

    let (migrations, statements, failed) =
        apply_timed(&copy, &options.migrations, &mut progress).await?;
    Ok((
        scratch,
        copy,
        Rehearsal {
            dump: dump.display().to_string(),
            restore_ms,
            rows,
            migrations,
            statements,
            failed,
        },
    ))
}

/// Applies the pending migrations of `folder` to the copy statement by statement, inside the
/// transaction boundaries Prisma would use (a file of several statements in one transaction, a
/// lone statement on its own), timing each and reading, after each, the locks its session
/// holds on the tables that existed before and whether their files changed (a rewrite). Each
/// migration is recorded in the copy's `_prisma_migrations` as deploy records it. A statement
/// that fails stops it there: the statements timed until then, and the failure, are returned.
async fn apply_timed(
    copy: &Target,
    folder: &Path,
    progress: &mut impl FnMut(Progress),
) -> Result<(Vec<Applied>, Vec<StatementTiming>, Option<FailedStatement>), RehearseError> {
    let mut conn = deploy::connect(copy).await?;
    let pending = deploy::pending(&mut conn, copy, folder).await?;
    let local = super::history::migration_dirs(folder).map_err(deploy::DeployError::from)?;
    let db_err = |e: sqlx::Error| RehearseError::Db(crate::db::DbError::from_sqlx(e, copy));
    deploy::create_table_if_missing(&mut conn, copy).await?;
    let table = deploy::table_name(copy);
    let mut applied = Vec::new();
    let mut timings = Vec::new();
    for name in pending {
        let Some(dir) = local.iter().find(|m| m.name == name) else {
            continue;
        };
        let bytes = dir.script.clone().unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let checksum = super::history::checksum_bytes(&bytes);
        let shape = super::script::shape(&text);
        // The tables that exist before the migration, with their files and sizes.
        let before: Vec<(i64, String, i64, Option<f64>)> = sqlx::query_as(
            "SELECT c.oid::int8, format('%I.%I', n.nspname, c.relname), c.relfilenode::int8,
                    CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples END::float8
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(db_err)?;
        let started_at = chrono::Utc::now();
        let begun = Instant::now();
        let parsed = squawk_syntax::SourceFile::parse(&text);
        // Each statement's range, and the locks the lock table says it takes (syntax nodes
        // stay on this thread: only plain data crosses the awaits below).
        let ranges: Vec<(usize, usize, Vec<super::lint::locks::TableLock>)> = parsed
            .tree()
            .stmts()
            .map(|s| {
                let r = squawk_syntax::ast::AstNode::syntax(&s).text_range();
                let locks = super::lint::locks::effect(&s).map_or(Vec::new(), |e| e.locks);
                (usize::from(r.start()), usize::from(r.end()), locks)
            })
            .collect();
        // As Prisma runs it: a file of several statements is one transaction; so is a lone
        // statement (its implicit transaction, made explicit here to read its locks), unless it
        // cannot run in one (CONCURRENTLY) or the file manages transactions itself.
        let one_transaction =
            shape.parsed && !shape.transaction_control && shape.outside_transactions.is_empty();
        let mut file_timings: Vec<StatementTiming> = Vec::new();
        if one_transaction {
            sqlx::raw_sql("BEGIN")
                .execute(&mut conn)
                .await
                .map_err(db_err)?;
        }
        let mut seen: Vec<i64> = Vec::new();
        let statements = if shape.parsed && !shape.transaction_control {
            ranges
        } else {
            vec![(0, text.len(), Vec::new())]
        };
        for (start, end, table_locks) in statements {
            let sql = text[start..end].to_string();
            // Outside a transaction (CONCURRENTLY) the locks last as long as the statement and
            // are gone when it ends: they are the ones the lock table says it takes, on the
            // tables it names, as they resolve before it runs.
            let expected = if one_transaction {
                Vec::new()
            } else {
                expected_locks(&mut conn, table_locks)
                    .await
                    .map_err(db_err)?
            };
            let t0 = Instant::now();
            let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut conn)
                .await;
            let ms = t0.elapsed().as_millis() as u64;
            if let Err(err) = result {
                if one_transaction {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut conn).await;
                }
                let _ = sqlx::Connection::close(conn).await;
                let failed = FailedStatement {
                    migration: name.clone(),
                    checksum,
                    line: super::lint::position(&text, start).0,
                    text: first_line(&sql),
                    error: super::server_error(&err),
                };
                if one_transaction {
                    hold_until(&mut file_timings, begun.elapsed());
                }
                for timing in &file_timings {
                    progress(Progress::Statement(timing.clone()));
                }
                progress(Progress::Failed(failed.clone()));
                timings.extend(file_timings);
                return Ok((applied, timings, Some(failed)));
            }
            // Inside the transaction, what this session holds now; alone, nothing is held
            // after the statement (its locks lasted as long as it did).
            let held: Vec<(i64, String)> = if one_transaction {
                sqlx::query_as(
                    "SELECT relation::int8, mode FROM pg_locks
                      WHERE pid = pg_backend_pid() AND relation IS NOT NULL AND granted",
                )
                .fetch_all(&mut conn)
                .await
                .map_err(db_err)?
            } else {
                expected.clone()
            };
            let files: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT oid::int8, relfilenode::int8 FROM pg_class WHERE oid = ANY($1)",
            )
            .bind(before.iter().map(|b| b.0).collect::<Vec<i64>>())
            .fetch_all(&mut conn)
            .await
            .map_err(db_err)?;
            let mut locks = Vec::new();
            for (oid, mode) in &held {
                let Some((_, table, _, rows)) = before.iter().find(|b| b.0 == *oid) else {
                    continue;
                };
                if (one_transaction && seen.contains(oid)) || mode == "AccessShareLock" {
                    continue;
                }
                seen.push(*oid);
                locks.push(HeldLock {
                    table: table.clone(),
                    mode: mode.clone(),
                    rows: *rows,
                    // In a transaction, until it ends (set below); alone, while it runs.
                    held_ms: if one_transaction { 0 } else { ms },
                });
            }
            let rewrote = before
                .iter()
                .filter(|(oid, _, node, _)| files.iter().any(|(o, n)| o == oid && n != node))
                .map(|(_, table, _, _)| table.clone())
                .collect();
            file_timings.push(StatementTiming {
                migration: name.clone(),
                line: super::lint::position(&text, start).0,
                text: first_line(&sql),
                ms,
                locks,
                rewrote,
            });
        }
        if one_transaction {
            sqlx::raw_sql("COMMIT")
                .execute(&mut conn)
                .await
                .map_err(db_err)?;
        }
        let duration = begun.elapsed();
        if one_transaction {
            hold_until(&mut file_timings, duration);
        }
        let finish = format!(
            "INSERT INTO {table} (id, checksum, started_at, finished_at, migration_name, applied_steps_count)
             VALUES ({}, {}, {}::timestamptz, now(), {}, 1)",
            literal(&uuid::Uuid::new_v4().to_string()),
            literal(&checksum),
            literal(&started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            literal(&name)
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(finish))
            .execute(&mut conn)
            .await
            .map_err(db_err)?;
        for timing in &file_timings {
            progress(Progress::Statement(timing.clone()));
        }
        let done = Applied {
            name: name.clone(),
            checksum,
            duration_ms: duration.as_millis() as u64,
            retries: 0,
            lost_ms: 0,
            blocked_ms: 0,
            started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        };
        progress(Progress::Migration(done.clone()));
        applied.push(done);
        timings.extend(file_timings);
    }
    let _ = sqlx::Connection::close(conn).await;
    Ok((applied, timings, None))
}

/// The locks a statement takes by the lock table (`lint::locks`), as (table oid, `pg_locks` mode):
/// for a statement outside a transaction, whose locks are gone when it ends. An index it names
/// stands for its table; a name that does not resolve (yet) has nothing to lock.
async fn expected_locks(
    conn: &mut sqlx::PgConnection,
    table_locks: Vec<super::lint::locks::TableLock>,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let mut locks = Vec::new();
    for lock in table_locks {
        let oid: Option<i64> = sqlx::query_scalar(
            "SELECT CASE WHEN $2 THEN (SELECT indrelid::int8 FROM pg_index WHERE indexrelid = to_regclass($1))
                         ELSE to_regclass($1)::oid::int8 END",
        )
        .bind(lock.relation.to_string())
        .bind(lock.relation.index)
        .fetch_one(&mut *conn)
        .await?;
        if let Some(oid) = oid {
            locks.push((oid, lock.mode.pg_locks_mode().to_string()));
        }
    }
    Ok(locks)
}

/// A lock is held from the statement that took it to the end of its transaction, `elapsed`
/// after the first statement started.
fn hold_until(timings: &mut [StatementTiming], elapsed: std::time::Duration) {
    let mut remaining = elapsed.as_millis() as u64;
    for timing in timings {
        for lock in &mut timing.locks {
            lock.held_ms = remaining;
        }
        remaining = remaining.saturating_sub(timing.ms);
    }
}

fn first_line(sql: &str) -> String {
    let line = sql
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("--"))
        .unwrap_or("");
    if line.chars().count() > 100 {
        format!("{}…", line.chars().take(99).collect::<String>())
    } else {
        line.to_string()
    }
}

/// Every table of `schema`, qualified and quoted (`public."User"`), in order.
fn tables_query(schema: &str) -> String {
    format!(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = {} AND c.relkind IN ('r', 'p') ORDER BY 1",
        literal(schema)
    )
}

/// One query counting the rows of each of `tables` exactly: (table, rows).
fn counts_query(tables: &[String]) -> String {
    tables
        .iter()
        .map(|t| format!("SELECT {}, count(*)::int8 FROM {t}", literal(t)))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// The exact row count of every table of `schema`, in one round trip.
async fn count_rows(db: &Db, schema: &str) -> Result<Vec<(String, i64)>, crate::db::DbError> {
    let mut answers = db.read_batch(&[tables_query(schema)]).await?;
    let tables: Vec<String> = answers.column(0).map_err(|e| db.error(e))?;
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let mut answers = db.read_batch(&[counts_query(&tables)]).await?;
    answers.rows(0).map_err(|e| db.error(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_count_that_differs_from_the_snapshot_is_named() {
        let expected = vec![
            ("public.\"User\"".to_string(), 10),
            ("public.\"Tag\"".to_string(), 3),
        ];
        assert!(count_differences(&expected, &expected).is_empty());
        let restored = vec![("public.\"User\"".to_string(), 9)];
        assert_eq!(
            count_differences(&expected, &restored),
            [
                "public.\"User\": 9 row(s) restored, 10 in the dump's snapshot",
                "public.\"Tag\": not restored (3 row(s) in the dump)"
            ]
        );
    }
}
