//! Every verification probe on a large schema: the sample Sightline database plus 2,000 more
//! tables carrying 10,000 indexes and 1,999 foreign keys, with 1,000,000 rows in UsageEvent.
//! Catalog probes must answer in milliseconds; data probes are bounded by their caps and
//! timeouts. Prints the median and the slowest of a few runs of each step, through `check`
//! exactly as a user runs it.
//!
//! `cargo bench --bench probes_at_scale` (builds the database first: about a minute)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover::check::{self, CheckOptions};
use cutover::cluster::{Cluster, ClusterOptions};
use cutover::demo::{self, DemoContents};
use cutover::journal::Journal;
use cutover::probes::Catalog;
use cutover::runbook;
use cutover::target::Target;
use sqlx::Connection;

const TABLES: usize = 2_000;
const LARGEST_ROWS: usize = 1_000_000;
const RUNS: usize = 5;

const STEPS: &[&str] = &[
    "environment.connection",
    "environment.pool",
    "verify.status",
    "tables.required",
    "performance.indexes",
    "performance.invalid",
    "performance.duplicate_indexes",
    "validation.fk_valid",
    "validation.orphans",
    "validation.unique",
    "baseline.row_counts",
    "validation.row_counts",
    "validation.query_latency",
    "validation.blocking",
    "validation.sequences",
    "validation.wraparound",
];

async fn build(url: &str) {
    demo::load(url, DemoContents::default())
        .await
        .expect("load the sample database");
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let started = Instant::now();
    for i in 1..=TABLES {
        let parent = if i > 1 {
            format!(", parent bigint REFERENCES bulk_{} (id)", i - 1)
        } else {
            String::new()
        };
        // A primary key and four more indexes: five per table.
        let sql = format!(
            "CREATE TABLE bulk_{i} (id bigint PRIMARY KEY, a int, b int, c text, d timestamptz{parent});
             CREATE INDEX ON bulk_{i} (a); CREATE INDEX ON bulk_{i} (b);
             CREATE INDEX ON bulk_{i} (c); CREATE INDEX ON bulk_{i} (d, a);
             INSERT INTO bulk_{i} (id, a, b, c, d) SELECT g, g, g, 'row ' || g, now() FROM generate_series(1, 10) g"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("bulk table");
    }
    let rows = LARGEST_ROWS - 50_000;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"UsageEvent\" (id, \"userId\", \"eventType\", \"createdAt\")
         SELECT 'bulk-' || g, 'c' || substr(md5('user:' || (1 + g % 1000)), 1, 24), 'SUMMARY_VIEWED',
                timezone('UTC', now()) - make_interval(secs => g * 2.5)
           FROM generate_series(1, {rows}) g"
    )))
    .execute(&mut conn)
    .await
    .expect("large table");
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&mut conn)
        .await
        .expect("vacuum");
    let counts: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace),
                (SELECT count(*) FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid WHERE c.relnamespace = 'public'::regnamespace),
                (SELECT count(*) FROM \"UsageEvent\")",
    )
    .fetch_one(&mut conn)
    .await
    .expect("counts");
    eprintln!(
        "built in {:.0} s: {} tables, {} indexes, {} rows in UsageEvent",
        started.elapsed().as_secs_f64(),
        counts.0,
        counts.1,
        counts.2
    );
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let cluster = Cluster::start(ClusterOptions::default()).expect("cluster");
    cluster.create_database("scale").expect("database");
    let url = cluster.url("scale");
    runtime.block_on(build(&url));

    let app = tempfile::tempdir().expect("app dir");
    demo::write_app(app.path()).expect("migrations folder");
    let home = tempfile::tempdir().expect("journal dir");
    let runbook = Arc::new(runbook::bundled(&Catalog).expect("bundled runbook"));
    let target = Target::from_url(&url).expect("url");

    println!(
        "{:<30} {:>10} {:>10}  status / message",
        "step", "median", "max"
    );
    for id in STEPS {
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..RUNS {
            let report = runtime.block_on(async {
                let options = CheckOptions {
                    only: vec![id.to_string()],
                    journal: Some(Journal::open(home.path(), true).await.expect("journal")),
                    variables: BTreeMap::from([(
                        "app_dir".to_string(),
                        app.path().display().to_string(),
                    )]),
                    ..CheckOptions::default()
                };
                check::run_check(runbook.clone(), &target, &options)
                    .await
                    .expect("check")
            });
            let step = report.steps.into_iter().next().expect("one step");
            times.push(Duration::from_millis(step.duration_ms));
            last = Some(step);
        }
        times.sort();
        let step = last.expect("ran");
        let message: String = step.message.chars().take(90).collect();
        println!(
            "{:<30} {:>8} ms {:>7} ms  {} / {message}",
            id,
            times[RUNS / 2].as_millis(),
            times[RUNS - 1].as_millis(),
            step.status.as_str()
        );
    }
    drop(cluster);
}
