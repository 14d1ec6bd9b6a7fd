//! Schema drift (`cutover drift`, `verify.drift`): the migrations the target has applied
//! (by `_prisma_migrations`, in order) are replayed into an empty throwaway cluster (Prisma's
//! "shadow database"), and its catalog is compared with the target's: tables, columns (type,
//! nullability, default), indexes by definition, constraints (with their validity), enums and
//! their values, sequences. A difference means someone changed the database by hand (before a
//! deploy: the migration may fail on it), or a migration did not do what its file says.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::history::{self, StatusError};
use crate::db::{Db, DbError, DbSettings, literal};
use crate::target::Target;

/// One schema, as the catalog describes it (the app's schema only, `_prisma_migrations` left
/// out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Catalog {
    /// Tables.
    pub tables: Vec<String>,
    /// `table.column` → `type, NOT NULL, DEFAULT …`.
    pub columns: BTreeMap<String, String>,
    /// `index` → its definition.
    pub indexes: BTreeMap<String, String>,
    /// `table.constraint` → its definition (`NOT VALID` in it when not validated).
    pub constraints: BTreeMap<String, String>,
    /// `enum` → its values in order.
    pub enums: BTreeMap<String, String>,
    /// Sequences.
    pub sequences: Vec<String>,
}

/// The catalog queries for `schema`, one batch.
fn queries(schema: &str) -> Vec<String> {
    let s = literal(schema);
    vec![
        format!(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = {s} AND c.relkind IN ('r', 'p') AND c.relname <> '_prisma_migrations'
              ORDER BY 1"
        ),
        format!(
            "SELECT c.relname::text || '.' || a.attname::text,
                    format_type(a.atttypid, a.atttypmod)
                    || CASE WHEN a.attnotnull THEN ', NOT NULL' ELSE '' END
                    || coalesce(', DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
               FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE n.nspname = {s} AND c.relkind IN ('r', 'p') AND c.relname <> '_prisma_migrations'
                AND a.attnum > 0 AND NOT a.attisdropped"
        ),
        format!(
            "SELECT i.relname::text, pg_get_indexdef(i.oid)
               FROM pg_index x
               JOIN pg_class i ON i.oid = x.indexrelid
               JOIN pg_class t ON t.oid = x.indrelid
               JOIN pg_namespace n ON n.oid = t.relnamespace
              WHERE n.nspname = {s} AND t.relname <> '_prisma_migrations'"
        ),
        format!(
            "SELECT t.relname::text || '.' || con.conname::text,
                    pg_get_constraintdef(con.oid)
               FROM pg_constraint con
               JOIN pg_class t ON t.oid = con.conrelid
               JOIN pg_namespace n ON n.oid = t.relnamespace
              WHERE n.nspname = {s} AND t.relname <> '_prisma_migrations'"
        ),
        format!(
            "SELECT t.typname::text, string_agg(e.enumlabel::text, ', ' ORDER BY e.enumsortorder)
               FROM pg_type t
               JOIN pg_enum e ON e.enumtypid = t.oid
               JOIN pg_namespace n ON n.oid = t.typnamespace
              WHERE n.nspname = {s}
              GROUP BY 1"
        ),
        format!(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = {s} AND c.relkind = 'S' ORDER BY 1"
        ),
    ]
}

/// Reads the catalog of `schema` on `db`, in one round trip.
pub async fn catalog(db: &Db, schema: &str) -> Result<Catalog, DbError> {
    let mut answers = db.read_batch(&queries(schema)).await?;
    let err = |e| db.error(e);
    let pairs = |rows: Vec<(String, String)>| rows.into_iter().collect::<BTreeMap<_, _>>();
    Ok(Catalog {
        tables: answers.column(0).map_err(err)?,
        columns: pairs(answers.rows(1).map_err(err)?),
        indexes: pairs(answers.rows(2).map_err(err)?),
        constraints: pairs(answers.rows(3).map_err(err)?),
        enums: pairs(answers.rows(4).map_err(err)?),
        sequences: answers.column(5).map_err(err)?,
    })
}

/// The differences between the target's catalog (`database`) and the one its applied
/// migrations produce (`migrations`), one line each.
pub fn compare(database: &Catalog, migrations: &Catalog) -> Vec<String> {
    let mut lines = Vec::new();
    let sets = |kind: &str, db: &[String], mig: &[String], lines: &mut Vec<String>| {
        for name in db.iter().filter(|n| !mig.contains(n)) {
            lines.push(format!(
                "{kind} `{name}` exists in the database but no migration creates it"
            ));
        }
        for name in mig.iter().filter(|n| !db.contains(n)) {
            lines.push(format!(
                "{kind} `{name}` is missing from the database (the migrations create it)"
            ));
        }
    };
    sets("table", &database.tables, &migrations.tables, &mut lines);
    let maps = |kind: &str,
                db: &BTreeMap<String, String>,
                mig: &BTreeMap<String, String>,
                lines: &mut Vec<String>| {
        for (name, found) in db {
            match mig.get(name) {
                None => lines.push(format!(
                    "{kind} `{name}` exists in the database but no migration creates it ({found})"
                )),
                Some(expected) if expected != found => lines.push(format!(
                    "{kind} `{name}` differs: the database has `{found}`, the migrations make `{expected}`"
                )),
                Some(_) => {}
            }
        }
        for (name, expected) in mig {
            if !db.contains_key(name) {
                lines.push(format!(
                    "{kind} `{name}` is missing from the database (the migrations make `{expected}`)"
                ));
            }
        }
    };
    // Columns of a table that is missing (or extra) as a whole are said once, by the table.
    let only_shared = |columns: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        columns
            .iter()
            .filter(|(name, _)| {
                let table = name.split('.').next().unwrap_or("");
                database.tables.iter().any(|t| t == table)
                    && migrations.tables.iter().any(|t| t == table)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    maps(
        "column",
        &only_shared(&database.columns),
        &only_shared(&migrations.columns),
        &mut lines,
    );
    maps("index", &database.indexes, &migrations.indexes, &mut lines);
    maps(
        "constraint",
        &only_shared(&database.constraints),
        &only_shared(&migrations.constraints),
        &mut lines,
    );
    maps("enum", &database.enums, &migrations.enums, &mut lines);
    sets(
        "sequence",
        &database.sequences,
        &migrations.sequences,
        &mut lines,
    );
    lines
}

/// What a drift check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    /// The migrations replayed, in order.
    pub replayed: Vec<String>,
    /// One line per difference; empty when the schema is what the migrations say.
    pub differences: Vec<String>,
}

/// Why a drift check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// The migrations folder.
    #[error(transparent)]
    Folder(#[from] StatusError),
    /// The target or the shadow cluster's database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// No history to replay.
    #[error(
        "the database has no _prisma_migrations table, so there is no history to replay: baseline it first (`cutover baseline`)"
    )]
    NoHistory,
    /// An applied migration is not in the folder.
    #[error(
        "migration {0} is recorded as applied but is not in the migrations folder: point --migrations at the folder the database was deployed from"
    )]
    NotLocal(String),
    /// The throwaway cluster.
    #[error(
        "cannot set up the empty database to replay the migrations in: {0} (drift needs the PostgreSQL server binaries, initdb and pg_ctl, on this host, or a scratch server: --scratch-url URL or SHADOW_DATABASE_URL)"
    )]
    Cluster(String),
    /// A migration failed when replayed on an empty database.
    #[error(
        "migration {name} fails when replayed on an empty database: {error}; its file is not what was applied, or it depends on something no migration creates"
    )]
    Replay {
        /// The migration.
        name: String,
        /// The server's error.
        error: String,
    },
}

/// Replays the migrations `db`'s target has applied (from `folder`) into a throwaway cluster,
/// or into a database created (and dropped) on the `scratch` server, and compares the two
/// catalogs.
pub async fn drift(
    db: &Db,
    folder: &Path,
    scratch: Option<&Target>,
) -> Result<DriftReport, DriftError> {
    let target = db.target().clone();
    let schema = target.schema().to_string();
    let rows = history::read_table(db, &schema)
        .await?
        .ok_or(DriftError::NoHistory)?;
    let local = history::migration_dirs(folder)?;
    let mut applied: Vec<&history::AppliedRow> = rows
        .iter()
        .filter(|r| r.finished_at.is_some() && r.rolled_back_at.is_none())
        .collect();
    applied.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    let mut scripts = Vec::new();
    for row in &applied {
        let script = local
            .iter()
            .find(|m| m.name == row.migration_name)
            .and_then(|m| m.script.clone())
            .ok_or_else(|| DriftError::NotLocal(row.migration_name.clone()))?;
        scripts.push((
            row.migration_name.clone(),
            String::from_utf8_lossy(&script).into_owned(),
        ));
    }
    let database = catalog(db, &schema).await?;

    let (place, shadow) = super::rehearse::empty_database(
        scratch,
        &schema,
        super::rehearse::throwaway_settings(),
        "shadow",
    )
    .await
    .map_err(|e| match e {
        super::rehearse::RehearseError::Cluster(reason) => DriftError::Cluster(reason),
        other => DriftError::Cluster(other.to_string()),
    })?;
    let result = replay(&shadow, &schema, &scripts).await;
    // The cluster and its files (or the scratch database) go when it drops, whatever the
    // result.
    tokio::task::spawn_blocking(move || drop(place)).await.ok();
    let migrations = result?;
    Ok(DriftReport {
        replayed: scripts.into_iter().map(|(name, _)| name).collect(),
        differences: compare(&database, &migrations),
    })
}

async fn replay(
    shadow: &Target,
    schema: &str,
    scripts: &[(String, String)],
) -> Result<Catalog, DriftError> {
    let shadow = shadow.clone();
    // A session of its own, writable, the URL's schema first on its path, as deploy's is.
    let mut conn = super::deploy::connect(&shadow).await?;
    let create = format!(
        "CREATE SCHEMA IF NOT EXISTS \"{}\"",
        schema.replace('"', "\"\"")
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut conn)
        .await
        .map_err(|e| DbError::from_sqlx(e, &shadow))?;
    for (name, script) in scripts {
        sqlx::raw_sql(sqlx::AssertSqlSafe(script.clone()))
            .execute(&mut conn)
            .await
            .map_err(|e| DriftError::Replay {
                name: name.clone(),
                error: super::server_error(&e),
            })?;
    }
    let _ = sqlx::Connection::close(conn).await;
    let reader = Db::connect(&shadow, DbSettings::default()).await?;
    let catalog = catalog(&reader, schema).await;
    reader.close().await;
    Ok(catalog?)
}
