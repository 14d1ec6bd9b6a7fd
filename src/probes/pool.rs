//! `environment.pool`: `max_connections` holds the app's pool plus headroom; current use.

use serde::Deserialize;

use super::ProbeResult;
use crate::db::Db;
use crate::outcome::Outcome;

/// Parameters of the `pool` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Connections one app instance opens (Prisma's `connection_limit`).
    pub pool_size: i64,
    /// How many app instances run at once.
    pub app_instances: i64,
    /// Connections kept free for admin sessions, migrations and monitoring.
    pub headroom: i64,
    /// Use above this percent of `max_connections` is a warning.
    pub warn_pct: f64,
    /// Use above this percent is a failure.
    pub crit_pct: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            pool_size: 25,
            app_instances: 1,
            headroom: 10,
            warn_pct: 80.0,
            crit_pct: 90.0,
        }
    }
}

/// Connection limits and the client sessions in use, other than cutover's own.
const CONNECTIONS: &str = "
    SELECT current_setting('max_connections')::int8,
           current_setting('superuser_reserved_connections')::int8
             + coalesce(current_setting('reserved_connections', true)::int8, 0),
           (SELECT count(*)
              FROM pg_stat_activity
             WHERE backend_type = 'client backend'
               AND application_name IS DISTINCT FROM 'cutover')::int8";

/// Runs the probe.
pub async fn run(db: &Db, params: Params) -> ProbeResult {
    let (max_connections, reserved, in_use): (i64, i64, i64) =
        db.read_batch(&[CONNECTIONS.to_string()]).await?.one(0)?;
    let available = max_connections - reserved;
    let needed = params.pool_size * params.app_instances + params.headroom;
    let use_pct = 100.0 * in_use as f64 / max_connections.max(1) as f64;
    let details = vec![
        format!("max_connections: {max_connections} ({reserved} reserved for superusers)"),
        format!(
            "needed: {} instance(s) × pool {} + headroom {} = {needed}",
            params.app_instances, params.pool_size, params.headroom
        ),
        format!("in use now (other than cutover): {in_use} ({use_pct:.0}%)"),
    ];
    let outcome = if available < needed {
        Outcome::fail(format!(
            "max_connections leaves {available} for clients, fewer than the {needed} needed: raise max_connections or lower connection_limit in the app's URL"
        ))
    } else if use_pct >= params.crit_pct {
        Outcome::fail(format!(
            "{in_use} of {max_connections} connections in use ({use_pct:.0}% ≥ {}%)",
            params.crit_pct
        ))
    } else if use_pct >= params.warn_pct {
        Outcome::warn(format!(
            "{in_use} of {max_connections} connections in use ({use_pct:.0}% ≥ {}%)",
            params.warn_pct
        ))
    } else {
        Outcome::pass(format!(
            "{available} client connections hold the {needed} needed; {in_use} in use ({use_pct:.0}%)"
        ))
    };
    Ok(outcome.with_details(details))
}
