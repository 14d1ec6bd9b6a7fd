//! The sample Sightline database: the Prisma migrations of `assets/demo/prisma/migrations`,
//! applied and recorded in `_prisma_migrations` as Prisma would, then the seed data.

use sha2::{Digest, Sha256};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::cluster::{Cluster, ClusterError, ClusterOptions};

/// The cluster `cutover demo` runs: TLS, WAL archiving and the slow-query log on, as a
/// production server has them.
pub fn demo_cluster_options() -> ClusterOptions {
    ClusterOptions {
        tls: true,
        archive: true,
        ..ClusterOptions::default()
    }
    .setting("log_min_duration_statement", "500ms")
}

/// The demo's migrations, in order: (folder name, migration.sql).
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "20260101000000_init",
        include_str!("../assets/demo/prisma/migrations/20260101000000_init/migration.sql"),
    ),
    (
        "20260115000000_add_progress",
        include_str!("../assets/demo/prisma/migrations/20260115000000_add_progress/migration.sql"),
    ),
    (
        "20260201000000_performance_indexes",
        include_str!(
            "../assets/demo/prisma/migrations/20260201000000_performance_indexes/migration.sql"
        ),
    ),
];

/// Sample rows for every table.
pub const SEED: &str = include_str!("../assets/demo/seed.sql");

/// The demo database's name.
pub const DATABASE: &str = "sightline";

/// Prisma's own bookkeeping table, as `prisma migrate` creates it.
const PRISMA_MIGRATIONS_TABLE: &str = r#"
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)"#;

/// Records one applied migration.
const RECORD_MIGRATION: &str = r#"
INSERT INTO "_prisma_migrations"
       (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
VALUES (gen_random_uuid()::text, $1, now(), $2, now(), 1)"#;

/// Why the demo database could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The throwaway cluster did not start.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Loading the schema or data failed.
    #[error("cannot load the sample Sightline database: {0}")]
    Load(String),
}

/// What to load.
#[derive(Debug, Clone, Copy)]
pub struct DemoContents {
    /// How many of [`MIGRATIONS`] to apply (the rest stay pending).
    pub migrations: usize,
    /// Load the sample rows.
    pub seed: bool,
}

impl Default for DemoContents {
    fn default() -> Self {
        DemoContents {
            migrations: MIGRATIONS.len(),
            seed: true,
        }
    }
}

/// Lowercase hex SHA-256 of a migration file, as Prisma records it.
pub fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Starts a throwaway cluster with a `sightline` database loaded; returns it and the URL
/// (with `sslmode=require` when the cluster serves TLS).
pub async fn start(
    options: ClusterOptions,
    contents: DemoContents,
) -> Result<(Cluster, String), DemoError> {
    let tls = options.tls;
    let cluster = tokio::task::spawn_blocking(move || {
        let cluster = Cluster::start(options)?;
        cluster.create_database(DATABASE)?;
        Ok::<_, ClusterError>(cluster)
    })
    .await
    .map_err(|e| DemoError::Load(e.to_string()))??;
    let url = cluster.url(DATABASE);
    load(&url, contents).await?;
    let url = if tls {
        format!("{url}?sslmode=require")
    } else {
        url
    };
    Ok((cluster, url))
}

/// Applies the migrations and seed to the (empty) database at `url`.
pub async fn load(url: &str, contents: DemoContents) -> Result<(), DemoError> {
    let fail = |e: sqlx::Error| DemoError::Load(e.to_string());
    let mut conn = PgConnection::connect(url).await.map_err(fail)?;
    sqlx::raw_sql(PRISMA_MIGRATIONS_TABLE)
        .execute(&mut conn)
        .await
        .map_err(fail)?;
    for (name, sql) in MIGRATIONS.iter().take(contents.migrations) {
        let mut tx = conn.begin().await.map_err(fail)?;
        // The migrations are files shipped with the binary, not user input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await
            .map_err(|e| DemoError::Load(format!("migration {name}: {e}")))?;
        sqlx::query(RECORD_MIGRATION)
            .bind(checksum(sql))
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
    }
    if contents.seed && contents.migrations == MIGRATIONS.len() {
        sqlx::raw_sql(SEED)
            .execute(&mut conn)
            .await
            .map_err(|e| DemoError::Load(format!("seed: {e}")))?;
    }
    conn.close().await.map_err(fail)?;
    Ok(())
}

/// What the demo's pretend application does, a few times a second: read a user's newest
/// summaries and record a usage event, as Sightline's API would.
const APP_READ: &str = r#"
SELECT s.id, s.title
  FROM "Summary" s
 WHERE s."userId" = (SELECT id FROM "User" ORDER BY id OFFSET $1 LIMIT 1)
 ORDER BY s."createdAt" DESC
 LIMIT 20"#;

const APP_WRITE: &str = r#"
INSERT INTO "UsageEvent" (id, "userId", type, "createdAt")
SELECT 'demo-' || gen_random_uuid(), id, 'summary.view', now()
  FROM "User" ORDER BY id OFFSET $1 LIMIT 1"#;

/// Plays the Sightline application against the demo database (about ten reads and writes a
/// second, as `sightline-app`) until `cancel`, so that the wizard's live panels have traffic to
/// show. Only `cutover demo` does this, and only to its own throwaway database.
pub fn spawn_app_traffic(url: &str, cancel: tokio_util::sync::CancellationToken) {
    use std::str::FromStr;
    let Ok(options) = sqlx::postgres::PgConnectOptions::from_str(url) else {
        return;
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy_with(options.application_name("sightline-app"));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        let mut n: i64 = 0;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            n += 1;
            // Errors are the demo's own business (the database may be stopping): ignore them.
            let _ = sqlx::query(APP_READ).bind(n % 1000).execute(&pool).await;
            if n % 3 == 0 {
                let _ = sqlx::query(APP_WRITE).bind(n % 1000).execute(&pool).await;
            }
        }
        pool.close().await;
    });
}
