//! The sample Sightline database: the Prisma migrations of `assets/demo/prisma/migrations`,
//! applied and recorded in `_prisma_migrations` as Prisma would, then the seed data.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::cluster::{Cluster, ClusterError, ClusterOptions};

/// One entry of [`MIGRATIONS`], embedded from `assets/demo/prisma/migrations/NAME/`.
macro_rules! migration {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!(
                "../assets/demo/prisma/migrations/",
                $name,
                "/migration.sql"
            )),
        )
    };
}

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
    migration!("20260105090000_init"),
    migration!("20260312140000_user_plan"),
    migration!("20261130100000_add_progress"),
    migration!("20261130100100_summary_user_idx"),
    migration!("20261130100200_summary_video_idx"),
    migration!("20261130100300_summary_user_upload_date_idx"),
    migration!("20261130100400_summary_user_favorite_idx"),
    migration!("20261130100500_usage_event_user_type_created_idx"),
];

/// How many of [`MIGRATIONS`] the previous release applied: the rest (the Progress table and
/// the checklist's performance indexes) are the release `cutover demo` migrates to.
pub const RELEASED: usize = 2;

/// The index of the migration that creates the Progress table.
const PROGRESS_MIGRATION: usize = 2;

/// The app's Prisma schema (the release's, with the pending migrations' changes).
pub const SCHEMA_PRISMA: &str = include_str!("../assets/demo/prisma/schema.prisma");

/// Sample rows for the previous release's tables; `{{users}}`, `{{summaries}}` and
/// `{{events}}` are filled in from [`Scale`].
pub const SEED: &str = include_str!("../assets/demo/seed.sql");

/// Sample rows for the Progress table, loaded once its migration is applied.
pub const SEED_PROGRESS: &str = include_str!("../assets/demo/seed_progress.sql");

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

/// How many rows the seed makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    /// Users.
    pub users: u32,
    /// Summaries (a tenth of them shared, each with one category and two tags).
    pub summaries: u32,
    /// Usage events over the last 30 days.
    pub events: u32,
}

impl Scale {
    /// What `cutover demo` loads: enough rows that index builds and checks take visible time.
    pub const DEMO: Scale = Scale {
        users: 10_000,
        summaries: 200_000,
        events: 500_000,
    };
    /// What the tests load: quick to copy, still past the probes' large-table bounds.
    pub const TEST: Scale = Scale {
        users: 1_000,
        summaries: 20_000,
        events: 50_000,
    };

    /// The seed script with this scale's numbers in it.
    pub fn seed_sql(&self) -> String {
        SEED.replace("{{users}}", &self.users.to_string())
            .replace("{{summaries}}", &self.summaries.to_string())
            .replace("{{events}}", &self.events.to_string())
    }
}

/// What to load.
#[derive(Debug, Clone, Copy)]
pub struct DemoContents {
    /// How many of [`MIGRATIONS`] to apply (the rest stay pending).
    pub migrations: usize,
    /// Load the sample rows (once the previous release's migrations are applied).
    pub seed: bool,
    /// How many rows.
    pub scale: Scale,
}

impl Default for DemoContents {
    /// Every migration applied, with the tests' rows: the database as the checklist describes it.
    fn default() -> Self {
        DemoContents {
            migrations: MIGRATIONS.len(),
            seed: true,
            scale: Scale::TEST,
        }
    }
}

impl DemoContents {
    /// What `cutover demo` starts from: the previous release with its data, the release's
    /// migrations pending.
    pub fn before_release() -> Self {
        DemoContents {
            migrations: RELEASED,
            seed: true,
            scale: Scale::DEMO,
        }
    }
}

/// Writes the demo application's Prisma folder (`prisma/schema.prisma`,
/// `prisma/migrations/*/migration.sql` and `migration_lock.toml`) under `app_dir`, so that `verify.status` has a folder to compare.
pub fn write_app(app_dir: &std::path::Path) -> std::io::Result<()> {
    let prisma = app_dir.join("prisma");
    let migrations = prisma.join("migrations");
    std::fs::create_dir_all(&migrations)?;
    std::fs::write(prisma.join("schema.prisma"), SCHEMA_PRISMA)?;
    for (name, sql) in MIGRATIONS {
        let folder = migrations.join(name);
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join("migration.sql"), sql)?;
    }
    std::fs::write(
        migrations.join("migration_lock.toml"),
        "# Please do not edit this file manually\nprovider = \"postgresql\"\n",
    )
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

/// The keys, indexes and foreign keys of the app's tables, each with the statement that drops
/// it and the one that makes it again, and its table's name. Kind 1 is an index, 2 a primary
/// or unique key, 3 a foreign key (made last: it needs the key it references).
const DEFERRABLE_KEYS: &str = r#"
SELECT kind, drop_ddl, create_ddl, table_name FROM (
    SELECT CASE c.contype WHEN 'f' THEN 3 ELSE 2 END AS kind,
           format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname) AS drop_ddl,
           format('ALTER TABLE %s ADD CONSTRAINT %I %s',
                  c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid)) AS create_ddl,
           c.conrelid::regclass::text AS table_name
      FROM pg_constraint c
     WHERE c.connamespace = current_schema()::regnamespace
       AND c.contype IN ('p', 'u', 'f')
       AND c.conrelid IS DISTINCT FROM to_regclass('_prisma_migrations')
    UNION ALL
    SELECT 1, format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid),
           i.indrelid::regclass::text
      FROM pg_index i
      JOIN pg_class t ON t.oid = i.indrelid
     WHERE t.relnamespace = current_schema()::regnamespace
       AND t.oid IS DISTINCT FROM to_regclass('_prisma_migrations')
       AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                        WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'))
) AS keys
ORDER BY kind DESC"#;

/// Each loading session may sort in memory: the index builds are most of the load.
const LOAD_SETTINGS: &str = "SET maintenance_work_mem = '256MB'";

/// Applies the migrations and seed to the (empty) database at `url`.
///
/// Each migration runs as Prisma runs it, one multi-statement script (so a file whose only
/// statement is `CREATE INDEX CONCURRENTLY` works), then is recorded in `_prisma_migrations`.
/// The seed goes in once the previous release's tables exist, after every migration asked for.
pub async fn load(url: &str, contents: DemoContents) -> Result<(), DemoError> {
    let fail = |e: sqlx::Error| DemoError::Load(e.to_string());
    let mut conn = PgConnection::connect(url).await.map_err(fail)?;
    sqlx::raw_sql(PRISMA_MIGRATIONS_TABLE)
        .execute(&mut conn)
        .await
        .map_err(fail)?;
    for (name, sql) in MIGRATIONS.iter().take(contents.migrations) {
        // The migrations are files shipped with the binary, not user input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut conn)
            .await
            .map_err(|e| DemoError::Load(format!("migration {name}: {e}")))?;
        sqlx::query(RECORD_MIGRATION)
            .bind(crate::migrate::history::checksum(sql))
            .bind(name)
            .execute(&mut conn)
            .await
            .map_err(fail)?;
    }
    if contents.seed && contents.migrations >= RELEASED {
        let mut second = PgConnection::connect(url).await.map_err(fail)?;
        seed(&mut conn, &mut second, contents)
            .await
            .map_err(|e| DemoError::Load(format!("seed: {e}")))?;
        second.close().await.map_err(fail)?;
    }
    conn.close().await.map_err(fail)?;
    Ok(())
}

/// Loads the sample rows on two connections (this machine's cores), the tables' keys and
/// indexes dropped meanwhile and built afterwards. The seed gathers planner statistics.
async fn seed(
    first: &mut PgConnection,
    second: &mut PgConnection,
    contents: DemoContents,
) -> Result<(), sqlx::Error> {
    let keys: Vec<(i32, String, String, String)> = sqlx::query_as(DEFERRABLE_KEYS)
        .fetch_all(&mut *first)
        .await?;
    // Statements made by the server from its own catalog, and the shipped seed with numbers
    // substituted: no user input.
    let drops: Vec<String> = keys.iter().map(|k| k.1.clone()).collect();
    run_all(first, &drops).await?;
    run_all(first, &[LOAD_SETTINGS.to_string()]).await?;
    run_all(second, &[LOAD_SETTINGS.to_string()]).await?;

    let script = contents.scale.seed_sql();
    let mut parts = script.split("-- @parallel\n");
    let prologue = parts.next().unwrap_or_default();
    run_all(first, &[prologue.to_string()]).await?;
    let parallel: Vec<String> = parts.map(str::to_string).collect();
    let (left, right) = halves(&parallel, |_| 1);
    tokio::try_join!(run_all(first, &left), run_all(second, &right))?;

    // Keys and indexes, a table's all on one connection (they lock the table), the biggest
    // tables first; then the foreign keys, which read both of their tables.
    let sizes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.oid::regclass::text, pg_relation_size(c.oid)
           FROM pg_class c
          WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
          ORDER BY 2 DESC",
    )
    .fetch_all(&mut *first)
    .await?;
    let size_of = |table: &str| {
        sizes
            .iter()
            .find(|(name, _)| name == table)
            .map_or(0, |(_, size)| *size)
    };
    let mut by_table: Vec<(String, Vec<String>)> = Vec::new();
    for (_, _, create, table) in keys.iter().rev().filter(|k| k.0 != 3) {
        match by_table.iter_mut().find(|(name, _)| name == table) {
            Some((_, statements)) => statements.push(create.clone()),
            None => by_table.push((table.clone(), vec![create.clone()])),
        }
    }
    by_table.sort_by_key(|(table, _)| std::cmp::Reverse(size_of(table)));
    let (left, right) = halves(&by_table, |(table, _)| size_of(table));
    let flatten = |tables: Vec<(String, Vec<String>)>| -> Vec<String> {
        tables.into_iter().flat_map(|(_, s)| s).collect()
    };
    let (left, right) = (flatten(left), flatten(right));
    tokio::try_join!(run_all(first, &left), run_all(second, &right))?;
    let foreign_keys: Vec<String> = keys
        .iter()
        .filter(|k| k.0 == 3)
        .map(|k| k.2.clone())
        .collect();
    run_all(first, &foreign_keys).await?;
    if contents.migrations > PROGRESS_MIGRATION {
        run_all(first, &[SEED_PROGRESS.to_string()]).await?;
    }

    Ok(())
}

/// Runs each statement (or multi-statement script) in order.
async fn run_all(conn: &mut PgConnection, statements: &[String]) -> Result<(), sqlx::Error> {
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Splits `items` (biggest first) into two lists of about equal `weight`, greedily.
fn halves<T: Clone>(items: &[T], weight: impl Fn(&T) -> i64) -> (Vec<T>, Vec<T>) {
    let (mut left, mut right) = (Vec::new(), Vec::new());
    let (mut left_weight, mut right_weight) = (0, 0);
    for item in items {
        if left_weight <= right_weight {
            left_weight += weight(item);
            left.push(item.clone());
        } else {
            right_weight += weight(item);
            right.push(item.clone());
        }
    }
    (left, right)
}

/// What the demo's pretend application does, a few times a second: read a user's newest
/// summaries and record a usage event, as Sightline's API would.
const APP_READ: &str = r#"
SELECT s.id, s."videoTitle"
  FROM "Summary" s
 WHERE s."userId" = (SELECT id FROM "User" ORDER BY id OFFSET $1 LIMIT 1)
 ORDER BY s."createdAt" DESC
 LIMIT 20"#;

const APP_WRITE: &str = r#"
INSERT INTO "UsageEvent" (id, "userId", "eventType", "createdAt")
SELECT 'demo-' || gen_random_uuid(), id, 'SUMMARY_VIEWED', timezone('UTC', now())
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
