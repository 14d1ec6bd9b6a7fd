//! The journal: durable runs and their append-only events, in SQLite (WAL, synchronous=FULL)
//! under the data directory. Its schema is the crate's `migrations/`.

mod entry;
mod recorder;
pub mod report;

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use entry::Entry;
pub use recorder::Recorder;

/// The journal's file name inside the data directory.
pub const FILE_NAME: &str = "journal.sqlite3";

/// A new journal's page size, in bytes (SQLite's largest).
const PAGE_SIZE: u32 = 65536;

/// The size the write-ahead log is cut back to after each checkpoint, in bytes.
const WAL_SIZE_LIMIT: u64 = 4 * 1024 * 1024;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The same schema in PostgreSQL (`--journal-url`): its own migrations, in its own schema.
static MIGRATOR_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations_postgres");

/// The schema of a journal kept in PostgreSQL.
pub const POSTGRES_SCHEMA: &str = "cutover";

/// The channel a PostgreSQL journal notifies on for each event (the payload is the run's id).
pub const POSTGRES_CHANNEL: &str = "cutover_events";

/// Where the journal lives: the embedded SQLite file (the default), or a team's PostgreSQL
/// control database.
#[derive(Debug, Clone)]
enum Store {
    Sqlite(SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$pool` the journal's pool, whichever database it is in: the same sqlx
/// calls compile for both.
macro_rules! on_store {
    ($journal:expr, $pool:ident => $body:expr) => {
        match &$journal.store {
            Store::Sqlite($pool) => $body,
            Store::Postgres($pool) => $body,
        }
    };
}

/// Why the journal cannot be used. Every variant leaves an existing file untouched.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The data directory cannot be made or written.
    #[error(
        "cannot use the data directory {path}: {detail} (set CUTOVER_HOME to a writable folder)"
    )]
    Directory {
        /// The folder.
        path: String,
        /// The reason.
        detail: String,
    },
    /// The file is not a journal, or is damaged.
    #[error(
        "{path} is damaged or not a cutover journal ({detail}); it was left untouched: move it aside to start a new journal"
    )]
    Corrupt {
        /// The file.
        path: String,
        /// What SQLite said.
        detail: String,
    },
    /// A newer cutover wrote this journal.
    #[error(
        "{path} was written by a newer cutover (schema version {version}); it was left untouched: upgrade cutover, or set CUTOVER_HOME to use another journal"
    )]
    Newer {
        /// The file.
        path: String,
        /// The unknown schema version.
        version: i64,
    },
    /// A write failed.
    #[error(
        "cannot write the journal {path}: {detail} (is the disk full or the folder read-only?)"
    )]
    Write {
        /// The file.
        path: String,
        /// What failed.
        detail: String,
    },
    /// The PostgreSQL journal cannot be reached.
    #[error(
        "cannot reach the journal database {url}: {detail} (check --journal-url or CUTOVER_JOURNAL_URL)"
    )]
    Unreachable {
        /// The control database, redacted.
        url: String,
        /// Why.
        detail: String,
    },
    /// A command that only reads found no journal in the database.
    #[error(
        "no cutover journal in {url} (schema `cutover`): a `run` or `check` with this --journal-url makes it"
    )]
    NoJournal {
        /// The URL, redacted.
        url: String,
    },
    /// The journal's database is the migration's target.
    #[error(
        "the journal database {url} is the migration's target: keep the journal in a team's control database (--journal-url), never in the database being migrated"
    )]
    OnTarget {
        /// The URL, redacted.
        url: String,
    },
    /// The control database missed events that the local journal has.
    #[error(
        "the journal database did not answer: {events} event(s) of run {run} are only in the local journal {local}"
    )]
    Unsent {
        /// How many.
        events: usize,
        /// The run.
        run: String,
        /// The local journal.
        local: String,
    },
    /// No such run.
    #[error("no run `{0}` in the journal (`cutover runs` lists them)")]
    UnknownRun(String),
    /// Another wizard has this run open.
    #[error(
        "run {run} is open in another wizard ({holder}); watch it with `cutover run --resume {run} --read-only`, or ask them to quit"
    )]
    Locked {
        /// The run.
        run: String,
        /// Who holds it: user@host, pid, since when.
        holder: String,
    },
}

/// Why another user's journal cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// The group does not exist.
    #[error(
        "no group `{0}` on this machine: create it (groupadd {0}) and add both engineers to it"
    )]
    NoGroup(String),
    /// The permissions could not be changed.
    #[error("cannot share {path} with group {group}: {detail}")]
    Chown {
        /// The file or folder.
        path: String,
        /// The group.
        group: String,
        /// What failed.
        detail: String,
    },
    /// The observer cannot read the journal.
    #[error(
        "cannot read the journal {path}: {missing} (it is {mode:o}, owner {owner}, group {group}); the operator shares it with `--share-group GROUP` on run or check, and you must be in that group (`id` lists yours)"
    )]
    Unreadable {
        /// The file or folder that stops us.
        path: String,
        /// The permission missing.
        missing: String,
        /// Its mode.
        mode: u32,
        /// Its owner.
        owner: String,
        /// Its group.
        group: String,
    },
    /// The journal itself.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Who a run lock's file says holds it: user@host, pid, since when.
fn holder_in(file: &mut std::fs::File) -> String {
    use std::io::Read;
    let mut holder = String::new();
    let _ = file.read_to_string(&mut holder);
    match holder.trim() {
        "" => "another process".to_string(),
        text => text.to_string(),
    }
}

/// What a watcher's header says when nobody holds the run: it finished, or the wizard that ran
/// it is gone.
pub fn nobody_holds(finished_at: Option<&str>) -> String {
    match finished_at {
        Some(at) => format!("nobody holds the run: it finished at {at}"),
        None => "nobody holds the run: the operator is gone (their cutover ended)".to_string(),
    }
}

/// Holds a run for one wizard; released on drop, and by the kernel (or, for a journal in
/// PostgreSQL, the server, when the session ends) if the process dies.
#[derive(Debug)]
pub struct RunLock {
    _held: Held,
}

#[derive(Debug)]
enum Held {
    /// An advisory `flock` on a file beside the journal.
    File(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>),
    /// A session advisory lock, on a connection of its own (closed on drop).
    Postgres(#[allow(dead_code)] sqlx::PgConnection),
}

/// The first key of a run's advisory lock in a PostgreSQL journal ("cu").
const LOCK_CLASS: i32 = 0x6375;

/// The second key of a run's advisory lock: from its id's hash.
fn lock_key(run_id: &str) -> i32 {
    let hash = crate::migrate::history::checksum(run_id);
    // The first 32 bits of the hash, as the signed key PostgreSQL takes.
    u32::from_str_radix(&hash[..8], 16).unwrap_or(0) as i32
}

/// Rehearsal or production, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A rehearsal (staging, dry run).
    Rehearsal,
    /// The go-live.
    Production,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Rehearsal => "rehearsal",
            Mode::Production => "production",
        }
    }
}

/// What a new run records about itself.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Runbook name.
    pub runbook_name: String,
    /// The runbook's text (its hash is recorded too).
    pub runbook_text: String,
    /// Redacted target URL.
    pub target: String,
    /// Rehearsal or production.
    pub mode: Mode,
    /// `wizard`, `check` or `rehearse`.
    pub origin: &'static str,
}

/// A run as the journal has it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Run {
    /// Run id.
    pub id: String,
    /// Runbook name.
    pub runbook_name: String,
    /// SHA-256 of the runbook text.
    pub runbook_hash: String,
    /// Redacted target.
    pub target: String,
    /// `rehearsal` or `production`.
    pub mode: String,
    /// user@host.
    pub operator: String,
    /// `wizard` or `check`.
    pub origin: String,
    /// When it began.
    pub started_at: String,
    /// When it ended, if it did.
    pub finished_at: Option<String>,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Its position in the run, from 1.
    pub seq: i64,
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// The step it is about, if any.
    pub step_id: Option<String>,
    /// What happened.
    pub entry: Entry,
}

/// An open journal.
#[derive(Debug, Clone)]
pub struct Journal {
    store: Store,
    path: PathBuf,
    /// The file, or the redacted URL, for messages.
    location: String,
    /// Another account's embedded journal read as a still file (SQLite's `immutable`): no
    /// cutover of the operator's was writing it when it was opened. Such a reader sees no
    /// later write; `thawed` opens it again once one does.
    frozen: bool,
}

impl Journal {
    /// Opens (creating if needed) the journal in `data_dir`; folders are made 0700 and the
    /// file 0600, and with `private` a journal shared with a group (`share_with`) is made 0600
    /// again. An existing file that is damaged or newer is reported and left as it is.
    pub async fn open(data_dir: &Path, private: bool) -> Result<Journal, JournalError> {
        let directory_error = |detail: String| JournalError::Directory {
            path: data_dir.display().to_string(),
            detail,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(|e| directory_error(e.to_string()))?;
        let path = data_dir.join(FILE_NAME);
        let shown = path.display().to_string();
        // One process at a time opens it: two commands that open a new journal at once (a check
        // and a `runs` beside it) would both set it up (WAL mode, page size) and apply the same
        // migrations. Held until the journal is ready; a few milliseconds.
        let opening = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(data_dir.join(".opening"))
            .ok();
        // Waited for off the runtime's threads.
        let _opening = match opening {
            Some(file) => tokio::task::spawn_blocking(move || {
                nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).ok()
            })
            .await
            .ok()
            .flatten(),
            None => None,
        };
        if !path.exists() {
            // An empty file is a new SQLite database; making it ourselves sets its mode, and
            // SQLite gives the -wal and -shm files the same.
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                // Another command made it a moment ago.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(directory_error(e.to_string())),
                Ok(_) => {}
            }
        } else if private
            && let Ok(meta) = std::fs::metadata(&path)
            && meta.permissions().mode() & 0o077 != 0
        {
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        let corrupt = |e: sqlx::Error| JournalError::Corrupt {
            path: shown.clone(),
            detail: e.to_string(),
        };
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(corrupt)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // After a checkpoint the write-ahead log is cut back to this, rather than staying
            // as big as the largest burst of output it ever held.
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string())
            // A new journal gets big pages: output is most of what it holds, and a batch of it
            // is then written with a few dozen writes rather than hundreds (an existing journal
            // keeps the size it was made with).
            .page_size(PAGE_SIZE);
        // One connection: writes are serialised in the order they are made.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(corrupt)?;
        let journal = Journal {
            store: Store::Sqlite(pool),
            location: shown.clone(),
            path,
            frozen: false,
        };
        journal.check_version().await?;
        journal.migrate().await?;
        Ok(journal)
    }

    /// Shares the journal with a Unix group, for an engineer of that group to watch its runs
    /// from their own account (`--share-group`): the data directory and the locks folder
    /// become `rwxr-s---` (new files keep the group), the journal and its WAL files and the
    /// run locks `rw-r-----`, the approvals folder `rwxrws--T` (the group answers approval
    /// requests there; each answer stays its writer's), all in `group`. Nothing is readable by
    /// others.
    pub fn share_with(&self, group: &str) -> Result<(), ShareError> {
        let gid = nix::unistd::Group::from_name(group)
            .ok()
            .flatten()
            .ok_or_else(|| ShareError::NoGroup(group.to_string()))?
            .gid;
        let folder = self.path.parent().unwrap_or(Path::new("."));
        let locks = self.locks_folder();
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&locks);
        // The answers to approval requests: the group writes there (the sticky bit keeps
        // each answer its writer's).
        let approvals = crate::approval::folder_of(&self.path);
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&approvals);
        let mut files: Vec<(PathBuf, u32)> = vec![
            (folder.to_path_buf(), 0o2750),
            (locks.clone(), 0o2750),
            (approvals, 0o3770),
        ];
        for suffix in ["", "-wal", "-shm"] {
            files.push((self.with_suffix(suffix), 0o640));
        }
        if let Ok(entries) = std::fs::read_dir(&locks) {
            files.extend(entries.flatten().map(|e| (e.path(), 0o640)));
        }
        for (path, mode) in files {
            if !path.exists() {
                continue;
            }
            let failed = |detail: String| ShareError::Chown {
                path: path.display().to_string(),
                group: group.to_string(),
                detail,
            };
            nix::unistd::chown(&path, None, Some(gid)).map_err(|e| failed(e.to_string()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| failed(e.to_string()))?;
        }
        Ok(())
    }

    /// Opens another engineer's journal read-only (`--journal PATH`), to list and watch its
    /// runs: nothing is created, migrated or written. Refuses, naming the permission missing,
    /// when this account cannot read it.
    pub async fn open_shared(path: &Path) -> Result<Journal, ShareError> {
        use nix::unistd::{AccessFlags, access};
        let folder = path.parent().unwrap_or(Path::new("."));
        let checks = [
            (
                folder,
                AccessFlags::X_OK,
                "this account cannot enter its folder",
            ),
            (path, AccessFlags::R_OK, "this account cannot read it"),
        ];
        for (checked, flags, missing) in checks {
            if access(checked, flags).is_err() {
                let meta = std::fs::metadata(checked).ok();
                let name_of_user = |uid| {
                    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                        .ok()
                        .flatten()
                        .map_or(uid.to_string(), |u| u.name)
                };
                let name_of_group = |gid| {
                    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
                        .ok()
                        .flatten()
                        .map_or(gid.to_string(), |g| g.name)
                };
                use std::os::unix::fs::MetadataExt;
                return Err(ShareError::Unreadable {
                    path: checked.display().to_string(),
                    missing: if meta.is_none() && checked == path {
                        "it does not exist, or its folder cannot be entered".to_string()
                    } else {
                        missing.to_string()
                    },
                    mode: meta.as_ref().map_or(0, |m| m.mode() & 0o7777),
                    owner: meta.as_ref().map_or("?".into(), |m| name_of_user(m.uid())),
                    group: meta.as_ref().map_or("?".into(), |m| name_of_group(m.gid())),
                });
            }
        }
        let shown = path.display().to_string();
        let corrupt = |e: sqlx::Error| JournalError::Corrupt {
            path: shown.clone(),
            detail: e.to_string(),
        };
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(corrupt)?
            .read_only(true)
            .busy_timeout(Duration::from_secs(5));
        // SQLite finds out that it cannot use the WAL index only at the first read.
        let connect = |options: SqliteConnectOptions| async move {
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?;
            sqlx::query("SELECT count(*) FROM sqlite_master")
                .fetch_one(&pool)
                .await?;
            Ok::<_, sqlx::Error>(pool)
        };
        // While the operator's cutover runs, SQLite's shared-memory file exists and a reader
        // uses it read-only. When none runs, that file is gone and this account may not make
        // it: nothing is writing, so the journal is read as it stands (and opened again by
        // `thawed` when a cutover writes it again). A first read that fails while the file is
        // there is the operator's write in flight (a WAL index being rebuilt, a lock): tried
        // again for a while, never read as a still file, which would hide every later event.
        let live = access(&with_suffix(path, "-shm"), AccessFlags::R_OK).is_ok();
        let (pool, frozen) = if live {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                match connect(options.clone()).await {
                    Ok(pool) => break (pool, false),
                    Err(e) if std::time::Instant::now() >= deadline => {
                        return Err(corrupt(e).into());
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "the shared journal's first read failed; again");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        } else {
            match connect(options.clone()).await {
                Ok(pool) => (pool, false),
                Err(_) => (
                    connect(options.immutable(true)).await.map_err(corrupt)?,
                    true,
                ),
            }
        };
        let journal = Journal {
            store: Store::Sqlite(pool),
            path: path.to_path_buf(),
            location: shown.clone(),
            frozen,
        };
        journal.check_version().await?;
        Ok(journal)
    }

    /// The pool of a journal kept in PostgreSQL.
    pub fn postgres(&self) -> Option<&sqlx::PgPool> {
        match &self.store {
            Store::Postgres(pool) => Some(pool),
            Store::Sqlite(_) => None,
        }
    }

    /// Whether the journal is kept in PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.store, Store::Postgres(_))
    }

    /// Where the journal is, for messages: its file, or its database's URL (password
    /// redacted).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Opens (creating its schema if needed) a journal kept in a team's PostgreSQL control
    /// database (`--journal-url`), in its own schema, `cutover`, migrated as the embedded one
    /// is. `target` is the migration's target: the journal is never kept in its database.
    /// With `create` false (a command that only reads: `runs`, `report`, `watch`, `approve`),
    /// nothing is created or migrated, and a database without a journal says so.
    pub async fn open_postgres(
        url: &str,
        target: Option<&crate::target::Target>,
        create: bool,
    ) -> Result<Journal, JournalError> {
        let control =
            crate::target::Target::from_url(url).map_err(|e| JournalError::Unreachable {
                url: crate::target::redact_url(url),
                detail: e.to_string(),
            })?;
        let location = control.to_string();
        if let Some(target) = target
            && same_database(&control, target)
        {
            return Err(JournalError::OnTarget { url: location });
        }
        let unreachable = |e: sqlx::Error| JournalError::Unreachable {
            url: location.clone(),
            detail: crate::db::DbError::from_sqlx(e, &control).to_string(),
        };
        let options = control
            .connect_options()
            .clone()
            .application_name("cutover-journal")
            .options([("search_path", POSTGRES_SCHEMA)]);
        // Two connections: the writer's, and one for reads (a watcher) or the run's lock.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(3)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(unreachable)?;
        if create {
            sqlx::query("CREATE SCHEMA IF NOT EXISTS cutover")
                .execute(&pool)
                .await
                .map_err(unreachable)?;
        } else {
            let (exists,): (bool,) =
                sqlx::query_as("SELECT to_regclass('cutover.runs') IS NOT NULL")
                    .fetch_one(&pool)
                    .await
                    .map_err(unreachable)?;
            if !exists {
                return Err(JournalError::NoJournal { url: location });
            }
        }
        let journal = Journal {
            store: Store::Postgres(pool),
            path: PathBuf::from(&location),
            location: location.clone(),
            frozen: false,
        };
        journal.check_version().await?;
        if create {
            journal.migrate().await?;
        }
        Ok(journal)
    }

    /// Brings the journal's schema up to this cutover's migrations (its database's own).
    async fn migrate(&self) -> Result<(), JournalError> {
        let migrated = match &self.store {
            Store::Sqlite(pool) => MIGRATOR.run(pool).await,
            Store::Postgres(pool) => MIGRATOR_POSTGRES.run(pool).await,
        };
        migrated.map_err(|e| JournalError::Write {
            path: self.location.clone(),
            detail: e.to_string(),
        })
    }

    /// Refuses a journal that a newer cutover migrated further than we know.
    async fn check_version(&self) -> Result<(), JournalError> {
        let corrupt = |e: sqlx::Error| JournalError::Corrupt {
            path: self.location.clone(),
            detail: e.to_string(),
        };
        // Where the migrations' own table would be, and which migrations this cutover knows.
        let (table_exists, migrator) = match self.store {
            Store::Sqlite(_) => (
                "SELECT 'yes' FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                &MIGRATOR,
            ),
            Store::Postgres(_) => (
                "SELECT 'yes' WHERE to_regclass('cutover._sqlx_migrations') IS NOT NULL",
                &MIGRATOR_POSTGRES,
            ),
        };
        let table = on_store!(self, pool => sqlx::query_as::<_, (String,)>(table_exists)
            .fetch_optional(pool)
            .await)
        .map_err(corrupt)?;
        if table.is_none() {
            return Ok(());
        }
        let applied = on_store!(self, pool => sqlx::query_as::<_, (i64,)>(
            "SELECT version FROM _sqlx_migrations"
        )
        .fetch_all(pool)
        .await)
        .map_err(corrupt)?;
        let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        match applied.into_iter().find(|(v,)| !known.contains(v)) {
            Some((version,)) => Err(JournalError::Newer {
                path: self.location.clone(),
                version,
            }),
            None => Ok(()),
        }
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the run for this process, or says who has it. The lock is an advisory `flock` on a
    /// file beside the journal, so a crashed wizard never leaves a stale one behind.
    pub async fn lock_run(&self, run_id: &str) -> Result<RunLock, JournalError> {
        let Store::Postgres(pool) = &self.store else {
            return self.lock_file(run_id);
        };
        let conn = pool.acquire().await.map_err(|e| self.write_error(e))?;
        // Its own session, closed when the lock drops: the server lets go of the lock then.
        let mut conn = conn.detach();
        let (got,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(lock_key(run_id))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.write_error(e))?;
        if !got {
            return Err(JournalError::Locked {
                run: run_id.to_string(),
                holder: self
                    .holder(run_id)
                    .await
                    .unwrap_or_else(|| "another process".to_string()),
            });
        }
        sqlx::query(
            "INSERT INTO holders (run_id, holder) VALUES ($1, $2)
             ON CONFLICT (run_id) DO UPDATE SET holder = excluded.holder",
        )
        .bind(run_id)
        .bind(holder_now())
        .execute(&mut conn)
        .await
        .map_err(|e| self.write_error(e))?;
        Ok(RunLock {
            _held: Held::Postgres(conn),
        })
    }

    fn lock_file(&self, run_id: &str) -> Result<RunLock, JournalError> {
        use std::io::{Seek, Write};
        let folder = self.locks_folder();
        let failed = |detail: String| JournalError::Write {
            path: folder.display().to_string(),
            detail,
        };
        // The data directory decides who may come in: it is private unless the journal is
        // shared with a group (then a watcher of that group reads who holds a run).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&folder)
            .map_err(|e| failed(e.to_string()))?;
        let path = self.lock_path(run_id);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(&path)
            .map_err(|e| failed(e.to_string()))?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(mut locked) => {
                let _ = locked.set_len(0);
                let _ = locked.rewind();
                let _ = locked.write_all(holder_now().as_bytes());
                Ok(RunLock {
                    _held: Held::File(locked),
                })
            }
            Err((mut file, _)) => Err(JournalError::Locked {
                run: run_id.to_string(),
                holder: holder_in(&mut file),
            }),
        }
    }

    /// Who holds a run, if anyone does: looked at without taking the run (a shared lock tried
    /// and let go at once, nothing written), so a watcher may ask as often as it likes.
    pub async fn holder(&self, run_id: &str) -> Option<String> {
        if let Store::Postgres(pool) = &self.store {
            // The lock's owner is a session of this database; the holder's text is beside it.
            let held: Option<(String,)> = sqlx::query_as(
                "SELECT h.holder FROM holders h
                  WHERE h.run_id = $1
                    AND EXISTS (SELECT 1 FROM pg_locks l
                                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                                   AND l.classid = ($2::bigint & 4294967295)::oid
                                   AND l.objid = ($3::bigint & 4294967295)::oid
                                   AND l.database = (SELECT oid FROM pg_database
                                                      WHERE datname = current_database()))",
            )
            .bind(run_id)
            .bind(i64::from(LOCK_CLASS))
            .bind(i64::from(lock_key(run_id)))
            .fetch_optional(pool)
            .await
            .ok()
            .flatten();
            return held.map(|(holder,)| holder);
        }
        let file = std::fs::File::open(self.lock_path(run_id)).ok()?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockSharedNonblock) {
            // Nobody holds it; the shared lock goes when it drops.
            Ok(_free) => None,
            Err((mut file, _)) => Some(holder_in(&mut file)),
        }
    }

    /// The folder of the run locks, beside the journal.
    fn locks_folder(&self) -> PathBuf {
        self.path.with_file_name("locks")
    }

    /// The lock file of a run.
    fn lock_path(&self, run_id: &str) -> PathBuf {
        self.locks_folder().join(format!("{run_id}.lock"))
    }

    /// The journal's path with `suffix` appended: its SQLite `-wal` and `-shm` files.
    fn with_suffix(&self, suffix: &str) -> PathBuf {
        with_suffix(&self.path, suffix)
    }

    /// This journal opened again when it was read as a still file (`frozen`) and a cutover
    /// now writes it (its shared-memory file is back and readable); `None` otherwise.
    pub async fn thawed(&self) -> Option<Journal> {
        use nix::unistd::{AccessFlags, access};
        if !self.frozen || access(&self.with_suffix("-shm"), AccessFlags::R_OK).is_err() {
            return None;
        }
        Journal::open_shared(&self.path)
            .await
            .ok()
            .filter(|journal| !journal.frozen)
    }

    fn write_error(&self, e: sqlx::Error) -> JournalError {
        JournalError::Write {
            path: self.location.clone(),
            detail: e.to_string(),
        }
    }

    /// Records a new run and returns it.
    pub async fn create_run(&self, new: NewRun) -> Result<Run, JournalError> {
        let run = Run {
            id: uuid::Uuid::now_v7().to_string(),
            runbook_hash: crate::migrate::history::checksum(&new.runbook_text),
            runbook_name: new.runbook_name,
            target: crate::target::redact_url(&new.target),
            mode: new.mode.as_str().to_string(),
            operator: operator(),
            origin: new.origin.to_string(),
            started_at: now(),
            finished_at: None,
        };
        on_store!(self, pool => sqlx::query(
            "INSERT INTO runs (id, runbook_name, runbook_hash, runbook_text, target, mode, operator, origin, started_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&run.id)
        .bind(&run.runbook_name)
        .bind(&run.runbook_hash)
        .bind(&new.runbook_text)
        .bind(&run.target)
        .bind(&run.mode)
        .bind(&run.operator)
        .bind(&run.origin)
        .bind(&run.started_at).execute(pool).await.map(|_| ()))
            .map_err(|e| self.write_error(e))?;
        Ok(run)
    }

    /// Appends an event; it is on disk (fsynced) when this returns.
    pub async fn append(
        &self,
        run_id: &str,
        step_id: Option<&str>,
        entry: &Entry,
    ) -> Result<i64, JournalError> {
        self.append_at(run_id, step_id, entry, &now()).await
    }

    /// Like [`Journal::append`], recorded as of `at` (RFC 3339): an event sent on from the
    /// local journal that recorded it first keeps the time it happened.
    pub async fn append_at(
        &self,
        run_id: &str,
        step_id: Option<&str>,
        entry: &Entry,
        at: &str,
    ) -> Result<i64, JournalError> {
        let data = serde_json::to_string(entry).map_err(|e| JournalError::Write {
            path: self.path.display().to_string(),
            detail: e.to_string(),
        })?;
        let output = match entry {
            Entry::StepOutput { text, .. } => Some(text.as_str()),
            _ => None,
        };
        let (seq,) = on_store!(self, pool => sqlx::query_as::<_, (i64,)>(
            "INSERT INTO events (run_id, seq, at, step_id, kind, data, output)
             VALUES ($1, (SELECT coalesce(max(seq), 0) + 1 FROM events WHERE run_id = $1), $2, $3, $4, $5, $6)
             RETURNING seq",
        )
        .bind(run_id)
        .bind(at)
        .bind(step_id)
        .bind(entry.kind())
        .bind(data)
        .bind(output).fetch_one(pool).await)
            .map_err(|e| self.write_error(e))?;
        Ok(seq)
    }

    /// A field of a JSON column as text.
    fn json_text(&self, column: &str, field: &str) -> String {
        match self.store {
            Store::Sqlite(_) => format!("json_extract({column}, '$.{field}')"),
            Store::Postgres(_) => format!("({column}::jsonb ->> '{field}')"),
        }
    }

    /// A field of a JSON column as a 64-bit integer.
    fn json_int(&self, column: &str, field: &str) -> String {
        match self.store {
            Store::Sqlite(_) => format!("json_extract({column}, '$.{field}')"),
            Store::Postgres(_) => format!("({column}::jsonb ->> '{field}')::bigint"),
        }
    }

    /// A field of a JSON column that holds an array or an object, as its JSON text.
    fn json_value(&self, column: &str, field: &str) -> String {
        match self.store {
            Store::Sqlite(_) => format!("json_extract({column}, '$.{field}')"),
            Store::Postgres(_) => format!("({column}::jsonb -> '{field}')::text"),
        }
    }

    /// Records `run`, made in another journal, here too (the local mirror of a run journaled
    /// in PostgreSQL), with the same id.
    pub async fn mirror_run(&self, run: &Run, runbook_text: &str) -> Result<(), JournalError> {
        on_store!(self, pool => sqlx::query(
            "INSERT INTO runs (id, runbook_name, runbook_hash, runbook_text, target, mode, operator, origin, started_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&run.id)
        .bind(&run.runbook_name)
        .bind(&run.runbook_hash)
        .bind(runbook_text)
        .bind(&run.target)
        .bind(&run.mode)
        .bind(&run.operator)
        .bind(&run.origin)
        .bind(&run.started_at)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(|e| self.write_error(e))
    }

    /// Marks a run finished.
    pub async fn finish_run(&self, run_id: &str) -> Result<(), JournalError> {
        self.finish_run_at(run_id, &now()).await
    }

    /// Marks a run finished as of `at` (RFC 3339).
    async fn finish_run_at(&self, run_id: &str, at: &str) -> Result<(), JournalError> {
        on_store!(self, pool => sqlx::query("UPDATE runs SET finished_at = $2 WHERE id = $1 AND finished_at IS NULL")
                .bind(run_id)
                .bind(at).execute(pool).await.map(|_| ()))
            .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    /// How many events run `run_id` has.
    async fn event_count(&self, run_id: &str) -> Result<i64, JournalError> {
        let (count,) = on_store!(self, pool => sqlx::query_as::<_, (i64,)>(
            "SELECT count(*) FROM events WHERE run_id = $1",
        ).bind(run_id).fetch_one(pool).await)
        .map_err(|e| self.write_error(e))?;
        Ok(count)
    }

    /// How many events each run has.
    async fn event_counts(&self) -> Result<HashMap<String, i64>, JournalError> {
        let rows = on_store!(self, pool => sqlx::query_as::<_, (String, i64)>(
            "SELECT run_id, count(*) FROM events GROUP BY run_id",
        ).fetch_all(pool).await)
        .map_err(|e| self.write_error(e))?;
        Ok(rows.into_iter().collect())
    }

    /// Sends to this journal (in PostgreSQL) what `mirror` (the local journal that records
    /// every event first) has of this journal's runs and this one misses: what a control
    /// database that stopped answering had not got when the cutover recording the run ended.
    /// Each event keeps its time, the run its end. A run that a cutover is recording right now
    /// (it holds the run in the local journal) is left to it. Returns how many events it sent.
    pub async fn catch_up_from(&self, mirror: &Journal) -> Result<usize, JournalError> {
        let here: HashMap<String, Run> = self
            .runs()
            .await?
            .into_iter()
            .map(|run| (run.id.clone(), run))
            .collect();
        let counts_here = self.event_counts().await?;
        let counts_there = mirror.event_counts().await?;
        let mut sent = 0;
        for run in mirror.runs().await? {
            let Some(ours) = here.get(&run.id) else {
                continue;
            };
            // The control database has a prefix of the local journal's events: each reaches
            // it after the local journal, in order.
            let have = counts_here.get(&run.id).copied().unwrap_or(0);
            let missing = counts_there.get(&run.id).copied().unwrap_or(0) > have;
            let unended = run.finished_at.is_some() && ours.finished_at.is_none();
            if !missing && !unended {
                continue;
            }
            let Ok(_recording) = mirror.lock_file(&run.id) else {
                continue;
            };
            // Its numbers run 1, 2, 3…: the first `have` are there.
            for event in mirror.events_after(&run.id, have).await? {
                let at = event
                    .at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                self.append_at(&run.id, event.step_id.as_deref(), &event.entry, &at)
                    .await?;
                sent += 1;
            }
            if let (Some(at), None) = (&run.finished_at, &ours.finished_at) {
                self.finish_run_at(&run.id, at).await?;
            }
        }
        Ok(sent)
    }

    /// Every run, newest first.
    pub async fn runs(&self) -> Result<Vec<Run>, JournalError> {
        let rows = on_store!(self, pool => sqlx::query_as::<_, RunRow>(
            "SELECT id, runbook_name, runbook_hash, target, mode, operator, origin, started_at, finished_at
               FROM runs ORDER BY started_at DESC, id DESC",
        ).fetch_all(pool).await)
            .map_err(|e| self.write_error(e))?;
        Ok(rows.into_iter().map(RunRow::into_run).collect())
    }

    /// One run by id (or a unique prefix of it).
    pub async fn run(&self, id: &str) -> Result<Run, JournalError> {
        let mut rows = on_store!(self, pool => sqlx::query_as::<_, RunRow>(
            "SELECT id, runbook_name, runbook_hash, target, mode, operator, origin, started_at, finished_at
               FROM runs WHERE id = $1 OR id LIKE $1 || '%' ORDER BY id LIMIT 2",
        )
        .bind(id).fetch_all(pool).await)
            .map_err(|e| self.write_error(e))?;
        match rows.len() {
            1 => Ok(rows.remove(0).into_run()),
            _ => Err(JournalError::UnknownRun(id.to_string())),
        }
    }

    /// The runbook text a run was recorded with.
    pub async fn runbook_text(&self, run_id: &str) -> Result<String, JournalError> {
        let row = on_store!(self, pool => sqlx::query_as::<_, (String,)>("SELECT runbook_text FROM runs WHERE id = $1").bind(run_id).fetch_optional(pool).await)
            .map_err(|e| self.write_error(e))?;
        row.map(|(text,)| text)
            .ok_or_else(|| JournalError::UnknownRun(run_id.to_string()))
    }

    /// The size and modification time of the journal and its write-ahead log: when they are
    /// the same as at the last look, nothing was recorded since. `None` when they cannot be
    /// read.
    pub fn change_stamp(&self) -> Option<[(u64, std::time::SystemTime); 2]> {
        let stamp = |path: &Path| {
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)))
        };
        Some([
            stamp(&self.path)?,
            stamp(&self.with_suffix("-wal")).unwrap_or((0, std::time::UNIX_EPOCH)),
        ])
    }

    /// For a journal in PostgreSQL, a receiver woken each time an event of `run_id` is
    /// recorded (LISTEN/NOTIFY, on a connection of its own that comes back by itself when
    /// lost); `None` for the embedded journal, or when the listening connection cannot be
    /// made (the watcher then reads once a second).
    pub async fn listen(&self, run_id: &str) -> Option<tokio::sync::mpsc::Receiver<()>> {
        let Store::Postgres(pool) = &self.store else {
            return None;
        };
        let mut listener = match sqlx::postgres::PgListener::connect_with(pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(%err, "cannot listen to the journal; reading it once a second");
                return None;
            }
        };
        if let Err(err) = listener.listen(POSTGRES_CHANNEL).await {
            tracing::warn!(%err, "cannot listen to the journal; reading it once a second");
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let run_id = run_id.to_string();
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    // Many events make one wake-up: the watcher reads all that is new.
                    Ok(notice) if notice.payload() == run_id => {
                        if let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) =
                            tx.try_send(())
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(%err, "the journal's notifications stopped; trying again");
                        if tx.is_closed() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Some(rx)
    }

    /// A run's events in order.
    pub async fn events(&self, run_id: &str) -> Result<Vec<Recorded>, JournalError> {
        self.events_after(run_id, 0).await
    }

    /// A run's events after sequence number `after`, in order: what a watcher has not seen yet
    /// (one indexed range read, however long the run already is).
    pub async fn events_after(
        &self,
        run_id: &str,
        after: i64,
    ) -> Result<Vec<Recorded>, JournalError> {
        type EventRow = (i64, String, Option<String>, String, Option<String>);
        let rows = on_store!(self, pool => sqlx::query_as::<_, EventRow>(
            "SELECT seq, at, step_id, data, output FROM events
              WHERE run_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(run_id)
        .bind(after).fetch_all(pool).await)
        .map_err(|e| self.write_error(e))?;
        let mut events = Vec::with_capacity(rows.len());
        for (seq, at, step_id, data, output) in rows {
            let corrupt = |e: serde_json::Error| JournalError::Corrupt {
                path: self.location.clone(),
                detail: format!("event {seq}: {e}"),
            };
            let mut entry: Entry = serde_json::from_str(&data).map_err(corrupt)?;
            if let Entry::StepOutput { text, .. } = &mut entry {
                *text = match output {
                    Some(output) => output,
                    // Written before output had its own column: a JSON array of lines.
                    None => legacy_output(&data).map_err(corrupt)?,
                };
            }
            events.push(Recorded {
                seq,
                at: DateTime::parse_from_rfc3339(&at)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_default(),
                step_id,
                entry,
            });
        }
        Ok(events)
    }

    /// The newest rehearsal of `runbook_name` that began before `before` (RFC 3339): how long
    /// each step took (its last outcome) and each migration it applied, for a production run
    /// to show beside its own.
    pub async fn rehearsal(
        &self,
        runbook_name: &str,
        before: &str,
    ) -> Result<Rehearsal, JournalError> {
        let run = on_store!(self, pool => sqlx::query_as::<_, (String,)>(
            "SELECT id FROM runs WHERE runbook_name = $1 AND mode = 'rehearsal' AND started_at < $2
              ORDER BY started_at DESC, id DESC LIMIT 1",
        )
        .bind(runbook_name)
        .bind(before).fetch_optional(pool).await)
        .map_err(|e| self.write_error(e))?;
        let Some((run_id,)) = run else {
            return Ok(Rehearsal::default());
        };
        let mut rehearsal = Rehearsal {
            run_id: Some(run_id.clone()),
            ..Rehearsal::default()
        };
        // Outcomes only: a run's output can be large, and is not needed here.
        let sql = format!(
            "SELECT step_id, {} FROM events
              WHERE run_id = $1 AND kind = 'step_finished' AND step_id IS NOT NULL ORDER BY seq",
            self.json_int("data", "duration_ms")
        );
        let rows = on_store!(self, pool => sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql.as_str())).bind(&run_id).fetch_all(pool).await)
            .map_err(|e| self.write_error(e))?;
        for (step, duration_ms) in rows {
            rehearsal.steps.insert(step, duration_ms.max(0) as u64);
        }
        let sql = format!(
            "SELECT {}, {} FROM events
              WHERE run_id = $1 AND kind = 'migration_applied' ORDER BY seq",
            self.json_text("data", "name"),
            self.json_int("data", "duration_ms")
        );
        let rows = on_store!(self, pool => sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql.as_str())).bind(&run_id).fetch_all(pool).await)
            .map_err(|e| self.write_error(e))?;
        for (name, duration_ms) in rows {
            rehearsal.migrations.insert(name, duration_ms.max(0) as u64);
        }
        // What it found, step by step (the last outcome of each), for the report.
        let sql = format!(
            "SELECT step_id, {}, {}, {}
               FROM events
              WHERE run_id = $1 AND kind = 'step_finished' AND step_id IS NOT NULL ORDER BY seq",
            self.json_text("data", "status"),
            self.json_text("data", "message"),
            self.json_value("data", "details"),
        );
        let rows = on_store!(self, pool => sqlx::query_as::<_, (String, String, String, Option<String>)>(sqlx::AssertSqlSafe(sql.as_str())).bind(&run_id).fetch_all(pool).await)
            .map_err(|e| self.write_error(e))?;
        for (step, status, message, details) in rows {
            let details: Vec<String> = details
                .and_then(|d| serde_json::from_str(&d).ok())
                .unwrap_or_default();
            rehearsal.outcomes.retain(|o| o.0 != step);
            rehearsal.outcomes.push((step, status, message, details));
        }
        Ok(rehearsal)
    }

    /// How long each step took when it last ran to an answer (pass, warn or fail) against
    /// `target` (the redacted URL), in milliseconds: the engine starts the longest first.
    pub async fn durations(
        &self,
        target: &str,
    ) -> Result<std::collections::HashMap<String, u64>, JournalError> {
        let sql = format!(
            "SELECT e.step_id, {}
               FROM events e JOIN runs r ON r.id = e.run_id
              WHERE r.target = $1 AND e.kind = 'step_finished' AND e.step_id IS NOT NULL
                AND {} IN ('pass', 'warn', 'fail')
              ORDER BY e.at DESC, e.seq DESC",
            self.json_int("e.data", "duration_ms"),
            self.json_text("e.data", "status"),
        );
        let rows = on_store!(self, pool => sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql.as_str())).bind(target).fetch_all(pool).await)
            .map_err(|e| self.write_error(e))?;
        let mut durations = std::collections::HashMap::new();
        for (step, ms) in rows {
            durations.entry(step).or_insert(ms.max(0) as u64);
        }
        Ok(durations)
    }

    /// The newest measurement of each step (an outcome's `data`, such as the row-count
    /// baseline) recorded by any run against `target` (the redacted URL), with where it came
    /// from, for the steps that compare with it.
    pub async fn measurements(
        &self,
        target: &str,
    ) -> Result<std::collections::HashMap<String, crate::probes::Measured>, JournalError> {
        let sql = format!(
            "SELECT e.step_id, {data}, e.at, e.run_id
               FROM events e JOIN runs r ON r.id = e.run_id
              WHERE r.target = $1 AND e.kind = 'step_finished' AND e.step_id IS NOT NULL
                AND {data} IS NOT NULL
              ORDER BY e.at DESC, e.seq DESC",
            data = self.json_value("e.data", "data"),
        );
        let rows = on_store!(self, pool => sqlx::query_as::<_, (String, String, String, String)>(sqlx::AssertSqlSafe(sql.as_str())).bind(target).fetch_all(pool).await)
            .map_err(|e| self.write_error(e))?;
        let mut measured = std::collections::HashMap::new();
        for (step, data, at, run) in rows {
            if measured.contains_key(&step) {
                continue;
            }
            let Ok(data) = serde_json::from_str(&data) else {
                continue;
            };
            let at = DateTime::parse_from_rfc3339(&at)
                .map(|t| {
                    t.with_timezone(&Utc)
                        .format("%Y-%m-%d %H:%M UTC")
                        .to_string()
                })
                .unwrap_or(at);
            let short: String = run.chars().take(13).collect();
            measured.insert(
                step,
                crate::probes::Measured {
                    data,
                    source: format!("run {short} at {at}"),
                    fresh: false,
                },
            );
        }
        Ok(measured)
    }

    /// Moves everything in the write-ahead log into the journal file and empties the log, so
    /// that a run leaves one file no bigger than what it recorded. Another process reading the
    /// journal at that moment can keep the log from being emptied: that is not an error.
    pub async fn checkpoint(&self) -> Result<(), JournalError> {
        // PostgreSQL keeps its own log.
        if let Store::Sqlite(pool) = &self.store {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(pool)
                .await
                .map_err(|e| self.write_error(e))?;
        }
        Ok(())
    }

    /// Closes the journal (waits for the last write).
    pub async fn close(&self) {
        on_store!(self, pool => pool.close().await);
    }
}

/// The text of a `step_output` event written as `{"lines": [...]}` (before schema version
/// 20261202000000).
fn legacy_output(data: &str) -> Result<String, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Legacy {
        #[serde(default)]
        lines: Vec<String>,
    }
    let legacy: Legacy = serde_json::from_str(data)?;
    Ok(legacy
        .lines
        .iter()
        .map(|line| format!("{line}\n"))
        .collect())
}

/// A run's row, as both databases return it.
#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    runbook_name: String,
    runbook_hash: String,
    target: String,
    mode: String,
    operator: String,
    origin: String,
    started_at: String,
    finished_at: Option<String>,
}

impl RunRow {
    fn into_run(self) -> Run {
        Run {
            id: self.id,
            runbook_name: self.runbook_name,
            runbook_hash: self.runbook_hash,
            target: self.target,
            mode: self.mode,
            operator: self.operator,
            origin: self.origin,
            started_at: self.started_at,
            finished_at: self.finished_at,
        }
    }
}

/// Whether two targets are the same database on the same server (host and port).
fn same_database(a: &crate::target::Target, b: &crate::target::Target) -> bool {
    a.address() == b.address() && a.database() == b.database()
}

/// `path` with `suffix` added to its name (SQLite's `-wal`, `-shm`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.to_path_buf().into_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// What a run's lock says of its holder: user@host, pid, where from over SSH (the client's
/// address, `SSH_CONNECTION`), since when.
fn holder_now() -> String {
    let from = crate::approval::ssh_client()
        .map(|ip| format!(" over SSH from {ip}"))
        .unwrap_or_default();
    format!(
        "{} pid {}{from} since {}",
        operator(),
        std::process::id(),
        now()
    )
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What the newest rehearsal before a production run took (empty when there was none).
#[derive(Debug, Clone, Default)]
pub struct Rehearsal {
    /// The rehearsal run.
    pub run_id: Option<String>,
    /// Each step's duration, in milliseconds, by step id.
    pub steps: std::collections::HashMap<String, u64>,
    /// Each migration's duration, in milliseconds, by migration name.
    pub migrations: std::collections::HashMap<String, u64>,
    /// What each step of the rehearsal ended with: step, status, message, details.
    pub outcomes: Vec<(String, String, String, Vec<String>)>,
}

/// `user@host` of whoever runs cutover.
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| "unknown".to_string());
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_string());
    format!("{user}@{host}")
}
