//! Prisma Migrate's bookkeeping, read natively (no Node): the migrations folder against the
//! `_prisma_migrations` table, with Prisma's own rules for what counts as applied, failed,
//! rolled back or edited.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::{Db, DbError};
use crate::outcome::Outcome;

/// Lowercase hex SHA-256 of a migration script, as Prisma records it.
pub fn checksum(script: &str) -> String {
    checksum_bytes(script.as_bytes())
}

/// Lowercase hex SHA-256 of a migration script's bytes, zero-padded to 64 characters.
pub fn checksum_bytes(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `script` matches a recorded checksum. Like Prisma, a script checked out with other
/// line endings (CRLF on Windows, LF elsewhere: git converts them) still matches.
pub fn script_matches(script: &str, recorded: &str) -> bool {
    let recorded = recorded.trim().to_ascii_lowercase();
    if checksum(script) == recorded {
        return true;
    }
    let lf = script.replace("\r\n", "\n");
    checksum(&lf) == recorded || checksum(&lf.replace('\n', "\r\n")) == recorded
}

/// A migration folder of the project.
#[derive(Debug, Clone)]
pub struct LocalMigration {
    /// Folder name (`20260101000000_init`), which is also the migration's name.
    pub name: String,
    /// Its `migration.sql`.
    pub script: String,
}

/// Why the migrations could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The folder is not there.
    #[error(
        "migrations folder {0} not found: pass --migrations DIR (or set the runbook variable app_dir)"
    )]
    NoFolder(String),
    /// The folder or a script could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// What.
        path: String,
        /// Why.
        error: String,
    },
    /// The database could not be asked.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A migration folder as it is on disk: its name, where its script is, and the script's exact
/// bytes (`None` when the folder has no `migration.sql`).
#[derive(Debug, Clone)]
pub struct MigrationDir {
    /// Folder name, which is also the migration's name.
    pub name: String,
    /// `<folder>/migration.sql`.
    pub script_path: PathBuf,
    /// The script's bytes.
    pub script: Option<Vec<u8>>,
}

/// The migration folders of a Prisma migrations folder, in Prisma's order (by folder name).
/// Files at the top level (`migration_lock.toml`) are not migrations.
pub fn migration_dirs(dir: &Path) -> Result<Vec<MigrationDir>, StatusError> {
    if !dir.is_dir() {
        return Err(StatusError::NoFolder(dir.display().to_string()));
    }
    let unreadable = |path: &Path, error: std::io::Error| StatusError::Read {
        path: path.display().to_string(),
        error: error.to_string(),
    };
    let mut migrations = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))? {
        let entry = entry.map_err(|e| unreadable(dir, e))?;
        if !entry.path().is_dir() {
            continue;
        }
        let script_path = entry.path().join("migration.sql");
        let script = match std::fs::read(&script_path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(unreadable(&script_path, e)),
        };
        migrations.push(MigrationDir {
            name: entry.file_name().to_string_lossy().into_owned(),
            script_path,
            script,
        });
    }
    migrations.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(migrations)
}

/// Reads every migration of a Prisma migrations folder, in Prisma's order (by folder name).
/// A folder without a `migration.sql` is reported with an empty script so that the comparison
/// names it.
pub fn read_folder(dir: &Path) -> Result<Vec<LocalMigration>, StatusError> {
    Ok(migration_dirs(dir)?
        .into_iter()
        .map(|migration| LocalMigration {
            name: migration.name,
            script: migration
                .script
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default(),
        })
        .collect())
}

/// One row of `_prisma_migrations`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AppliedRow {
    /// `migration_name`.
    pub migration_name: String,
    /// `checksum`.
    pub checksum: String,
    /// `finished_at` (text), empty while unfinished.
    pub finished_at: Option<String>,
    /// `rolled_back_at` (text).
    pub rolled_back_at: Option<String>,
    /// `started_at` (text).
    pub started_at: String,
    /// The database error in `logs` (of a failed migration), as [`super::deploy::database_error_of`]
    /// finds it.
    pub logs: Option<String>,
}

/// The rows of `_prisma_migrations` in `schema`, oldest first; `None` when the table is not
/// there. Read in a read-only transaction.
pub async fn read_table(db: &Db, schema: &str) -> Result<Option<Vec<AppliedRow>>, DbError> {
    let mut tx = db.read_only().await?;
    rows_on(&mut tx, schema).await.map_err(|e| db.error(e))
}

/// [`read_table`] on a session of the caller's (the deploy's, under its lock).
pub async fn rows_on(
    conn: &mut sqlx::PgConnection,
    schema: &str,
) -> Result<Option<Vec<AppliedRow>>, sqlx::Error> {
    let table: Option<String> =
        sqlx::query_scalar("SELECT to_regclass(format('%I._prisma_migrations', $1::text))::text")
            .bind(schema)
            .fetch_one(&mut *conn)
            .await?;
    let Some(table) = table else {
        return Ok(None);
    };
    let query = format!(
        "SELECT migration_name::text, checksum::text, finished_at::text, rolled_back_at::text,
                started_at::text, logs
           FROM {table} ORDER BY started_at, migration_name"
    );
    // `table` is the server's own quoting of a regclass.
    let mut rows: Vec<AppliedRow> = sqlx::query_as(sqlx::AssertSqlSafe(query))
        .fetch_all(&mut *conn)
        .await?;
    for row in &mut rows {
        row.logs = row
            .logs
            .as_deref()
            .map(super::deploy::database_error_of)
            .filter(|error| !error.is_empty());
    }
    Ok(Some(rows))
}

/// Whether the history records `name` in a way that keeps a deploy from applying it, as Prisma
/// decides: a row of it that is not rolled back (finished, or failed and not resolved).
pub fn is_recorded(rows: &[AppliedRow], name: &str) -> bool {
    rows.iter()
        .any(|row| row.migration_name == name && row.rolled_back_at.is_none())
}

/// Where one migration stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum MigrationState {
    /// Applied, and the local script is the one that was applied.
    Applied {
        /// When it finished.
        finished_at: String,
    },
    /// In the folder, never applied: `migrate deploy` will apply it.
    Pending,
    /// Started and neither finished nor rolled back: a failed deploy (Prisma refuses to
    /// deploy until it is resolved).
    Failed {
        /// When it started.
        started_at: String,
        /// The first line of Prisma's log.
        log: String,
    },
    /// Its only attempts were marked rolled back: `migrate deploy` will apply it again.
    RolledBack {
        /// When it was marked rolled back.
        rolled_back_at: String,
    },
    /// Applied, but `migration.sql` was edited since (checksum differs).
    Modified {
        /// The checksum recorded when it was applied.
        recorded: String,
        /// The checksum of the local script.
        local: String,
    },
    /// Recorded as applied, but not in the local folder (this folder is behind the database,
    /// or the folder was renamed).
    MissingLocally,
}

impl MigrationState {
    /// Whether this state leaves the database out of date with the folder.
    pub fn is_problem(&self) -> bool {
        !matches!(self, MigrationState::Applied { .. })
    }

    /// Short name.
    pub fn label(&self) -> &'static str {
        match self {
            MigrationState::Applied { .. } => "applied",
            MigrationState::Pending => "pending",
            MigrationState::Failed { .. } => "failed",
            MigrationState::RolledBack { .. } => "rolled back",
            MigrationState::Modified { .. } => "modified",
            MigrationState::MissingLocally => "missing locally",
        }
    }

    fn describe(&self, name: &str) -> String {
        match self {
            MigrationState::Applied { finished_at } => {
                format!("applied          {name} (finished {finished_at})")
            }
            MigrationState::Pending => {
                format!("pending          {name}: not applied yet (`cutover deploy`)")
            }
            MigrationState::Failed { started_at, log } => format!(
                "failed           {name}: started {started_at}, never finished{}; fix it, then `cutover resolve --rolled-back {name}` (or --applied)",
                if log.is_empty() {
                    String::new()
                } else {
                    format!(" ({log})")
                }
            ),
            MigrationState::RolledBack { rolled_back_at } => format!(
                "rolled back      {name}: marked rolled back at {rolled_back_at}; `migrate deploy` applies it again"
            ),
            MigrationState::Modified { recorded, local } => format!(
                "modified         {name}: migration.sql changed after it was applied (recorded {}…, local {}…); restore the applied file, never edit applied migrations",
                &recorded[..recorded.len().min(12)],
                &local[..local.len().min(12)]
            ),
            MigrationState::MissingLocally => format!(
                "missing locally  {name}: applied to the database but not in this migrations folder (wrong folder or branch?)"
            ),
        }
    }
}

/// One migration and where it stands.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationStatus {
    /// Its name.
    pub name: String,
    /// Its state.
    #[serde(flatten)]
    pub state: MigrationState,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The migrations folder.
    pub folder: String,
    /// Whether `_prisma_migrations` exists.
    pub table_exists: bool,
    /// Every migration, folder order first, then those only the database knows.
    pub migrations: Vec<MigrationStatus>,
}

impl StatusReport {
    /// Whether every migration is applied unchanged (and the history table exists).
    pub fn up_to_date(&self) -> bool {
        self.table_exists && self.migrations.iter().all(|m| !m.state.is_problem())
    }

    /// How many migrations are in `label`'s state.
    pub fn count(&self, label: &str) -> usize {
        self.migrations
            .iter()
            .filter(|m| m.state.label() == label)
            .count()
    }

    /// The report as a step outcome: pass when up to date, fail otherwise, one detail line
    /// per migration (problems first).
    pub fn outcome(&self) -> Outcome {
        if !self.table_exists {
            return Outcome::fail(
                "no _prisma_migrations table: this database was never deployed with Prisma Migrate; baseline it first (`cutover baseline`, which writes 0_init and runs `cutover resolve --applied 0_init`)",
            )
            .with_details([format!(
                "{} migration(s) in {}; `migrate deploy` would refuse a non-empty schema (P3005)",
                self.migrations.len(),
                self.folder
            )]);
        }
        let lines = self.lines();
        let applied = self.count("applied");
        if self.up_to_date() {
            return Outcome::pass(format!(
                "up to date: all {applied} migration(s) of {} applied, none failed or modified",
                self.folder
            ))
            .with_details(lines);
        }
        let counts: Vec<String> = [
            "failed",
            "modified",
            "pending",
            "rolled back",
            "missing locally",
        ]
        .iter()
        .filter_map(|label| match self.count(label) {
            0 => None,
            n => Some(format!("{n} {label}")),
        })
        .collect();
        Outcome::fail(format!(
            "not up to date: {} ({applied} applied)",
            counts.join(", ")
        ))
        .with_details(lines)
    }

    /// The report as a pre-deploy outcome: pending and rolled-back migrations are what the
    /// deploy is about to apply, so they pass (listed, with how many); a failed, modified or
    /// missing-locally migration, or no history table, fails as in [`StatusReport::outcome`].
    pub fn outcome_before_deploy(&self) -> Outcome {
        let blocking = self.migrations.iter().any(|m| {
            !matches!(
                m.state,
                MigrationState::Applied { .. }
                    | MigrationState::Pending
                    | MigrationState::RolledBack { .. }
            )
        });
        if !self.table_exists || blocking || self.up_to_date() {
            return self.outcome();
        }
        let to_apply = self.count("pending") + self.count("rolled back");
        Outcome::pass(format!(
            "{to_apply} migration(s) to deploy ({} applied), none failed or modified",
            self.count("applied")
        ))
        .with_details(self.lines())
    }

    /// One line per migration, problems first.
    fn lines(&self) -> Vec<String> {
        self.migrations
            .iter()
            .filter(|m| m.state.is_problem())
            .chain(self.migrations.iter().filter(|m| !m.state.is_problem()))
            .map(|m| m.state.describe(&m.name))
            .collect()
    }
}

/// Compares the folder with the table's rows, by Prisma's rules: a row that finished and was
/// not rolled back applies its migration; one that neither finished nor was rolled back is a
/// failure; rolled-back rows only count when nothing else is recorded.
pub fn compare(
    folder: &str,
    local: &[LocalMigration],
    rows: Option<&[AppliedRow]>,
) -> StatusReport {
    let Some(rows) = rows else {
        return StatusReport {
            folder: folder.to_string(),
            table_exists: false,
            migrations: local
                .iter()
                .map(|m| MigrationStatus {
                    name: m.name.clone(),
                    state: MigrationState::Pending,
                })
                .collect(),
        };
    };
    let mut by_name: BTreeMap<&str, Vec<&AppliedRow>> = BTreeMap::new();
    for row in rows {
        by_name.entry(&row.migration_name).or_default().push(row);
    }
    // `None`: nothing to report (a migration only ever rolled back, and gone from the folder,
    // is history).
    let state_of = |name: &str, script: Option<&str>| -> Option<MigrationState> {
        let Some(rows) = by_name.get(name) else {
            return Some(MigrationState::Pending);
        };
        let live: Vec<&AppliedRow> = rows
            .iter()
            .copied()
            .filter(|r| r.rolled_back_at.is_none())
            .collect();
        if let Some(failed) = live.iter().find(|r| r.finished_at.is_none()) {
            return Some(MigrationState::Failed {
                started_at: failed.started_at.clone(),
                log: failed.logs.clone().unwrap_or_default(),
            });
        }
        if let Some(applied) = live.last() {
            return Some(match script {
                Some(script) if !script_matches(script, &applied.checksum) => {
                    MigrationState::Modified {
                        recorded: applied.checksum.clone(),
                        local: checksum(script),
                    }
                }
                Some(_) => MigrationState::Applied {
                    finished_at: applied.finished_at.clone().unwrap_or_default(),
                },
                None => MigrationState::MissingLocally,
            });
        }
        // Only rolled-back attempts.
        script.map(|_| MigrationState::RolledBack {
            rolled_back_at: rows
                .last()
                .and_then(|r| r.rolled_back_at.clone())
                .unwrap_or_default(),
        })
    };
    let mut migrations: Vec<MigrationStatus> = local
        .iter()
        .filter_map(|m| {
            let state = state_of(&m.name, Some(&m.script))?;
            Some(MigrationStatus {
                name: m.name.clone(),
                state,
            })
        })
        .collect();
    for name in by_name.keys() {
        if !local.iter().any(|m| m.name == *name)
            && let Some(state) = state_of(name, None)
        {
            migrations.push(MigrationStatus {
                name: name.to_string(),
                state,
            });
        }
    }
    StatusReport {
        folder: folder.to_string(),
        table_exists: true,
        migrations,
    }
}

/// Reads the folder and the table and compares them.
pub async fn status(db: &Db, folder: &Path) -> Result<StatusReport, StatusError> {
    let local = read_folder(folder)?;
    let rows = read_table(db, db.target().schema()).await?;
    Ok(compare(
        &folder.display().to_string(),
        &local,
        rows.as_deref(),
    ))
}
