//! Transaction-ID headroom: a database whose oldest unfrozen transaction ID is too old is
//! heading for anti-wraparound vacuums and, at the limit, refuses writes.

use serde::Deserialize;

use super::ProbeResult;
use crate::db::Db;
use crate::outcome::Outcome;

/// Parameters of the `wraparound` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Age (in transactions) above which it is a warning.
    pub warn_age: i64,
    /// Age above which it fails (the hard limit is about 2.1 billion).
    pub fail_age: i64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            warn_age: 500_000_000,
            fail_age: 1_200_000_000,
        }
    }
}

/// This database's transaction-ID age, and its three oldest tables.
const XID_AGE: &str = "
    SELECT age(d.datfrozenxid)::int8,
           current_setting('autovacuum_freeze_max_age')::int8,
           coalesce((SELECT string_agg(format('%s: %s', t.relname, t.age), ', ')
                       FROM (SELECT c.oid::regclass::text AS relname, age(c.relfrozenxid) AS age
                               FROM pg_class c
                              WHERE c.relkind IN ('r', 'm', 't') AND c.relfrozenxid <> 0
                              ORDER BY age(c.relfrozenxid) DESC
                              LIMIT 3) t), '')
      FROM pg_database d
     WHERE d.datname = current_database()";

/// Runs the probe.
pub async fn run(db: &Db, params: Params) -> ProbeResult {
    let (age, freeze_max, oldest): (i64, i64, String) =
        db.read_batch(&[XID_AGE.to_string()]).await?.one(0)?;
    let pct = 100.0 * age as f64 / 2_147_483_648.0;
    let summary = format!(
        "transaction-ID age {age} ({pct:.1}% of the limit; autovacuum_freeze_max_age {freeze_max})"
    );
    let details = vec![format!("oldest tables: {oldest}")];
    let outcome = if age >= params.fail_age {
        Outcome::fail(format!(
            "{summary} is past {}: vacuum (freeze) the oldest tables before migrating",
            params.fail_age
        ))
    } else if age >= params.warn_age {
        Outcome::warn(format!("{summary} is past {}", params.warn_age))
    } else {
        Outcome::pass(summary)
    };
    Ok(outcome.with_details(details))
}
