//! `cutover baseline`: the checklist's "Phase 1: Schema Baseline" on a database that has tables
//! but no Prisma history. It writes `<migrations>/0_init/migration.sql` from the live schema
//! (`pg_dump --schema-only`), or takes the one that `prisma migrate diff` already wrote, and
//! records it as applied (`resolve --applied`), so that deploy goes on from there.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::deploy::{self, DeployError, Progress};
use super::history;
use super::resolve::{self, Resolution, ResolveError, Resolved};
use crate::db::DbError;
use crate::target::Target;

/// How a baseline runs.
#[derive(Debug, Clone)]
pub struct BaselineOptions {
    /// The Prisma migrations folder.
    pub migrations: PathBuf,
    /// The baseline migration's folder name (the checklist's `0_init`).
    pub name: String,
    /// How long to wait for Prisma's advisory lock.
    pub lock_wait: Duration,
}

/// What a baseline did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Baselined {
    /// The script.
    pub script: PathBuf,
    /// Whether cutover wrote it (false: it was there, and was taken as it is).
    pub written: bool,
    /// Its lines.
    pub lines: usize,
    /// The history row.
    pub resolved: Resolved,
}

/// Why a baseline stopped.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// Recording it failed (lock, connection, provider).
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The history already has rows: the database is baselined, or deployed to.
    #[error(
        "_prisma_migrations already has {rows} row(s) (the newest: {newest}): this database already has a history, so it needs no baseline; deploy instead"
    )]
    HasHistory {
        /// How many.
        rows: usize,
        /// The newest migration's name.
        newest: String,
    },
    /// `pg_dump` could not describe the schema.
    #[error("pg_dump could not read the schema: {0}")]
    Dump(String),
    /// The script could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// Where.
        path: String,
        /// Why.
        error: String,
    },
}

impl BaselineError {
    /// The exit code: 1 refused, 2 bad input, tools or connection.
    pub fn exit_code(&self) -> u8 {
        match self {
            BaselineError::Resolve(err) => err.exit_code(),
            BaselineError::HasHistory { .. } => 1,
            BaselineError::Dump(_) | BaselineError::Write { .. } => 2,
        }
    }
}

/// Baselines `target` with `options`, telling `progress` as it goes.
pub async fn baseline(
    target: &Target,
    options: &BaselineOptions,
    progress: impl FnMut(Progress),
) -> Result<Baselined, BaselineError> {
    deploy::check_provider(&options.migrations).map_err(ResolveError::from)?;
    let mut conn = deploy::connect(target)
        .await
        .map_err(|e| ResolveError::from(DeployError::from(e)))?;
    let rows = history::rows_on(&mut conn, target.schema()).await;
    let _ = sqlx::Connection::close(conn).await;
    let rows =
        rows.map_err(|e| ResolveError::from(DeployError::Db(DbError::from_sqlx(e, target))))?;
    if let Some(rows) = rows.filter(|rows| !rows.is_empty()) {
        return Err(BaselineError::HasHistory {
            rows: rows.len(),
            newest: rows
                .last()
                .map(|r| r.migration_name.clone())
                .unwrap_or_default(),
        });
    }

    let folder = options.migrations.join(&options.name);
    let script = folder.join("migration.sql");
    let written = !script.exists();
    if written {
        // The folder first: the checklist redirects into it before it exists.
        std::fs::create_dir_all(&folder).map_err(|e| BaselineError::Write {
            path: folder.display().to_string(),
            error: e.to_string(),
        })?;
        let sql = dump_schema(target).await?;
        std::fs::write(&script, sql).map_err(|e| BaselineError::Write {
            path: script.display().to_string(),
            error: e.to_string(),
        })?;
    }
    let lines = std::fs::read_to_string(&script)
        .map(|text| text.lines().count())
        .unwrap_or(0);
    let resolved = resolve::resolve(
        target,
        &options.migrations,
        &options.name,
        Resolution::Applied,
        options.lock_wait,
        progress,
    )
    .await?;
    Ok(Baselined {
        script,
        written,
        lines,
        resolved,
    })
}

/// The target's schema as SQL that deploy can run on an empty database: `pg_dump
/// --schema-only --no-owner --no-privileges` of the URL's schema without `_prisma_migrations`
/// (the password reaches pg_dump through its environment, never its argv), made fit for a
/// migration file (see [`as_migration`]).
async fn dump_schema(target: &Target) -> Result<String, BaselineError> {
    let schema = format!("\"{}\"", target.schema().replace('"', "\"\""));
    let output = tokio::process::Command::new("pg_dump")
        .args(["--schema-only", "--no-owner", "--no-privileges"])
        .arg(format!("--schema={schema}"))
        .arg(format!("--exclude-table={schema}._prisma_migrations"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(target.child_env())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            BaselineError::Dump(if e.kind() == std::io::ErrorKind::NotFound {
                "pg_dump is not installed on this host: install the PostgreSQL client tools (e.g. apt-get install postgresql-client), or write 0_init with `prisma migrate diff` and run baseline again".to_string()
            } else {
                e.to_string()
            })
        })?;
    if !output.status.success() {
        return Err(BaselineError::Dump(super::last_error_line(&output.stderr)));
    }
    Ok(as_migration(&String::from_utf8_lossy(&output.stdout)))
}

/// pg_dump's plain output as a Prisma migration, which runs as one implicit transaction in
/// deploy's session, followed by the next migrations in the same session:
/// - `\restrict` and `\unrestrict` are psql meta-commands, not SQL: dropped;
/// - its `SET`s and `set_config(..., false)` would outlive the file (an empty `search_path`
///   would break every later migration of the deploy): made local to the file's transaction;
/// - `CREATE SCHEMA` of a schema that deploy's session creates before the table (or that an
///   empty database already has) becomes `CREATE SCHEMA IF NOT EXISTS`, and the default
///   comment on `public` (which only its owner may set) is left out.
pub fn as_migration(dump: &str) -> String {
    let mut out = String::with_capacity(dump.len() + 256);
    out.push_str("-- Baseline: the schema as it was when `cutover baseline` read it (pg_dump).\n");
    for line in dump.lines() {
        if line.starts_with("\\restrict") || line.starts_with("\\unrestrict") {
            continue;
        }
        if line == "COMMENT ON SCHEMA public IS 'standard public schema';" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("SET ")
            && !rest.starts_with("LOCAL ")
        {
            out.push_str("SET LOCAL ");
            out.push_str(rest);
        } else if let Some(rest) = line.strip_prefix("CREATE SCHEMA ")
            && !rest.starts_with("IF NOT EXISTS")
        {
            out.push_str("CREATE SCHEMA IF NOT EXISTS ");
            out.push_str(rest);
        } else {
            out.push_str(&line.replace(
                "pg_catalog.set_config('search_path', '', false)",
                "pg_catalog.set_config('search_path', '', true)",
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_becomes_a_migration_that_leaves_the_session_as_it_was() {
        let dump = "\\restrict abc\nSET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\nCREATE SCHEMA public;\nCOMMENT ON SCHEMA public IS 'standard public schema';\nCREATE TABLE public.t (id int);\n\\unrestrict abc\n";
        let migration = as_migration(dump);
        assert!(!migration.contains("restrict"));
        assert!(migration.contains("SET LOCAL statement_timeout = 0;\n"));
        assert!(migration.contains("set_config('search_path', '', true)"));
        assert!(migration.contains("CREATE SCHEMA IF NOT EXISTS public;\n"));
        assert!(!migration.contains("COMMENT ON SCHEMA"));
        assert!(migration.contains("CREATE TABLE public.t (id int);\n"));
    }
}
