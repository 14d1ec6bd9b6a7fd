//! `cutover resolve`: Prisma's `migrate resolve`, natively, under the same advisory lock.
//! `--applied NAME` records a migration as applied without running it (how a database is
//! baselined, and how a failed migration that was completed by hand is closed);
//! `--rolled-back NAME` closes a failed migration that was undone, so that deploy runs it again.

use std::path::Path;

use serde::Serialize;
use sqlx::PgConnection;

use super::deploy::{self, DeployError, Progress};
use super::history::{self, checksum_bytes, migration_dirs};
use crate::db::DbError;
use crate::target::Target;

/// What `resolve` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The migration is recorded as applied (it was not run).
    Applied,
    /// The migration's failed attempts are recorded as rolled back.
    RolledBack,
}

/// What a resolve did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolved {
    /// The migration.
    pub name: String,
    /// As what.
    pub resolution: Resolution,
    /// Open (failed) rows of it marked rolled back.
    pub rolled_back_rows: u64,
    /// Whether `_prisma_migrations` was created.
    pub created_table: bool,
}

impl std::fmt::Display for Resolved {
    /// `NAME: recorded as applied (not run); 1 failed attempt(s) marked rolled back`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.resolution {
            Resolution::Applied => "recorded as applied (not run)",
            Resolution::RolledBack => "recorded as rolled back",
        };
        write!(f, "{}: {what}", self.name)?;
        match self.rolled_back_rows {
            0 => Ok(()),
            n => write!(f, "; {n} failed attempt(s) marked rolled back"),
        }
    }
}

/// Why a resolve was refused.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// What stops a deploy stops a resolve too (folder, provider, connection, lock).
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// `--applied` of a migration that is not in the folder (Prisma's P3017).
    #[error(
        "migration {name} is not in {folder}{hint}: resolve --applied records a migration of the folder (Prisma's P3017)"
    )]
    NotInFolder {
        /// The name given.
        name: String,
        /// The folder.
        folder: String,
        /// ` (did you mean X?)`.
        hint: String,
    },
    /// `--applied` of a migration already recorded as applied (Prisma's P3008).
    #[error("migration {name} is already recorded as applied (Prisma's P3008): nothing to resolve")]
    AlreadyApplied {
        /// The migration.
        name: String,
    },
    /// `--rolled-back` where the history has no such migration (Prisma's P3011).
    #[error(
        "migration {name} is not in _prisma_migrations{hint}, so it cannot be rolled back (Prisma's P3011)"
    )]
    NotInHistory {
        /// The migration.
        name: String,
        /// ` (did you mean X?)`.
        hint: String,
    },
    /// `--rolled-back` of a migration whose every attempt finished (Prisma's P3012).
    #[error(
        "migration {name} is applied, not failed, so it cannot be marked rolled back (Prisma's P3012): undo it with a new migration instead"
    )]
    NotFailed {
        /// The migration.
        name: String,
    },
    /// `--rolled-back` on a database with no history at all.
    #[error("the database has no _prisma_migrations table, so there is nothing to roll back")]
    NoHistory,
}

impl ResolveError {
    /// The exit code: 1 refused by the history, 2 bad input or connection.
    pub fn exit_code(&self) -> u8 {
        match self {
            ResolveError::Deploy(err) => err.exit_code(),
            ResolveError::NotInFolder { .. } => 2,
            _ => 1,
        }
    }
}

/// ` (did you mean X?)` for the closest of `names` to `name`.
fn did_you_mean<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|candidate| (strsim::jaro_winkler(name, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| format!(" (did you mean {candidate}?)"))
        .unwrap_or_default()
}

/// Records `name` as `resolution` in the history of `target`.
pub async fn resolve(
    target: &Target,
    folder: &Path,
    name: &str,
    resolution: Resolution,
    lock_wait: std::time::Duration,
    progress: impl FnMut(Progress),
) -> Result<Resolved, ResolveError> {
    // As Prisma: the provider is checked for --applied only.
    let script = match resolution {
        Resolution::Applied => {
            deploy::check_provider(folder)?;
            let dirs = migration_dirs(folder).map_err(DeployError::from)?;
            let found = dirs.iter().find(|dir| dir.name == name);
            match found.and_then(|dir| dir.script.clone()) {
                Some(script) => Some(script),
                None => {
                    return Err(ResolveError::NotInFolder {
                        name: name.to_string(),
                        folder: folder.display().to_string(),
                        hint: did_you_mean(name, dirs.iter().map(|d| d.name.as_str())),
                    });
                }
            }
        }
        Resolution::RolledBack => None,
    };
    let mut conn = deploy::connect(target).await.map_err(DeployError::from)?;
    let mut progress = progress;
    let result = async {
        deploy::take_lock(
            &mut conn,
            target,
            lock_wait,
            &tokio_util::sync::CancellationToken::new(),
            &mut progress,
        )
        .await?;
        match script {
            Some(script) => applied(&mut conn, target, name, &script, &mut progress).await,
            None => rolled_back(&mut conn, target, name).await,
        }
    }
    .await;
    let _ = sqlx::Connection::close(conn).await;
    result
}

async fn applied(
    conn: &mut PgConnection,
    target: &Target,
    name: &str,
    script: &[u8],
    progress: &mut impl FnMut(Progress),
) -> Result<Resolved, ResolveError> {
    let db = |e: sqlx::Error| ResolveError::from(DeployError::Db(DbError::from_sqlx(e, target)));
    // Baselining is this: the table made without asking whether the schema is empty.
    let created_table = deploy::create_table_if_missing(conn, target)
        .await
        .map_err(DeployError::from)?;
    if created_table {
        progress(Progress::TableCreated {
            table: deploy::table_name(target),
        });
    }
    let table = deploy::table_name(target);
    let finished: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {table} WHERE migration_name = $1 AND finished_at IS NOT NULL"
    )))
    .bind(name)
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    if finished > 0 {
        return Err(ResolveError::AlreadyApplied {
            name: name.to_string(),
        });
    }
    let now = chrono::Utc::now();
    let rolled_back = mark_rolled_back(conn, &table, name, now)
        .await
        .map_err(db)?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} (id, checksum, logs, started_at, finished_at, migration_name)
         VALUES ($1, $2, '', $3, $3, $4)"
    )))
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(checksum_bytes(script))
    .bind(now)
    .bind(name)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(Resolved {
        name: name.to_string(),
        resolution: Resolution::Applied,
        rolled_back_rows: rolled_back,
        created_table,
    })
}

async fn rolled_back(
    conn: &mut PgConnection,
    target: &Target,
    name: &str,
) -> Result<Resolved, ResolveError> {
    let db = |e: sqlx::Error| ResolveError::from(DeployError::Db(DbError::from_sqlx(e, target)));
    let Some(rows) = history::rows_on(conn, target.schema()).await.map_err(db)? else {
        return Err(ResolveError::NoHistory);
    };
    let of_name: Vec<_> = rows
        .iter()
        .filter(|row| row.migration_name == name)
        .collect();
    if of_name.is_empty() {
        return Err(ResolveError::NotInHistory {
            name: name.to_string(),
            hint: did_you_mean(name, rows.iter().map(|row| row.migration_name.as_str())),
        });
    }
    if of_name.iter().all(|row| row.finished_at.is_some()) {
        return Err(ResolveError::NotFailed {
            name: name.to_string(),
        });
    }
    let table = deploy::table_name(target);
    let rolled_back = mark_rolled_back(conn, &table, name, chrono::Utc::now())
        .await
        .map_err(db)?;
    Ok(Resolved {
        name: name.to_string(),
        resolution: Resolution::RolledBack,
        rolled_back_rows: rolled_back,
        created_table: false,
    })
}

/// Marks every open attempt of `name` rolled back, as Prisma does (one timestamp for all).
async fn mark_rolled_back(
    conn: &mut PgConnection,
    table: &str,
    name: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET rolled_back_at = $1
          WHERE migration_name = $2 AND finished_at IS NULL AND rolled_back_at IS NULL"
    )))
    .bind(now)
    .bind(name)
    .execute(conn)
    .await?
    .rows_affected())
}
