//! The live panels' round trip on a database with 16,000 relations, against `SELECT 1` timed
//! by psql (`\timing`) on the same server, paired and alternated: the panel must read what the
//! network and the server's front end take, not what the metrics query or `pg_database_size`
//! take. Also prints, for comparison, what the panel used to show: the elapsed time of the
//! metrics query with the size in it.
//!
//! `cargo bench --bench live_latency` (builds the database first: about half a minute)

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cutover::cluster::{Cluster, ClusterOptions};
use cutover::db::{Db, DbSettings};
use cutover::monitor::Sampler;
use cutover::target::Target;
use sqlx::Connection;

const RELATIONS: usize = 16_000;
const ROUNDS: usize = 30;

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// `SELECT 1` round trips as psql's `\timing` reports them, from one session.
fn psql_select_1(cluster: &Cluster, database: &str, times: usize) -> Vec<Duration> {
    let mut child = Command::new(cluster.bin_dir().join("psql"))
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-p",
        ])
        .arg(cluster.port().to_string())
        .args(["-d", database])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("psql");
    let mut script = String::from("\\timing on\n");
    for _ in 0..times {
        script.push_str("SELECT 1;\n");
    }
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("script");
    let output = child.wait_with_output().expect("psql output");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("Time: "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .collect()
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let cluster = Cluster::start(ClusterOptions::default()).expect("cluster");
    cluster.create_database("many").expect("database");
    let url = cluster.url("many");
    let started = Instant::now();
    runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        // A table and its primary key: two relations each.
        for batch in 0..RELATIONS / 2 / 500 {
            let sql: String = (0..500)
                .map(|i| format!("CREATE TABLE t_{batch}_{i} (id int PRIMARY KEY);"))
                .collect();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("tables");
        }
    });
    eprintln!(
        "built {RELATIONS} relations in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let target = Target::from_url(&url).expect("url");
    let (panels, mut sampler) = {
        let _inside = runtime.enter();
        (
            Db::connect_lazy(&target, DbSettings::default()).for_panels(),
            Sampler::new(),
        )
    };
    // Warm: the connection, and the size read once.
    runtime.block_on(sampler.sample(&panels)).expect("sample");
    let (mut ours, mut bare, mut old) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let sample = runtime.block_on(sampler.sample(&panels)).expect("sample");
        ours.push(sample.round_trip);
        bare.push(median(psql_select_1(&cluster, "many", 5)));
        // The old measurement: the metrics query with pg_database_size in it, timed whole.
        old.push(runtime.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
            let at = Instant::now();
            sqlx::raw_sql(
                "SELECT pg_database_size(current_database()), count(*) FROM pg_stat_activity",
            )
            .execute(&mut conn)
            .await
            .expect("old query");
            at.elapsed()
        }));
    }
    let (ours, bare, old) = (median(ours), median(bare), median(old));
    println!("{RELATIONS} relations, medians of {ROUNDS} alternated rounds:");
    println!(
        "  panel round trip (empty query)      {:>8.3} ms",
        ours.as_secs_f64() * 1e3
    );
    println!(
        "  psql \\timing SELECT 1               {:>8.3} ms",
        bare.as_secs_f64() * 1e3
    );
    println!(
        "  difference                          {:>8.3} ms",
        (ours.as_secs_f64() - bare.as_secs_f64()) * 1e3
    );
    println!(
        "  old figure (metrics query with size) {:>7.3} ms",
        old.as_secs_f64() * 1e3
    );
    runtime.block_on(panels.close());
}
