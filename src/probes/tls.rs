//! `environment.tls`: this session's own connection is encrypted.

use serde::Deserialize;

use super::ProbeResult;
use crate::db::Db;
use crate::outcome::Outcome;

/// The `tls` probe takes no parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}

/// What pg_stat_ssl says about the session running the query.
const OWN_SESSION_SSL: &str = "
    SELECT ssl, coalesce(version, ''), coalesce(cipher, ''), coalesce(bits, 0)::int8
      FROM pg_stat_ssl
     WHERE pid = pg_backend_pid()";

/// Runs the probe.
pub async fn run(db: &Db, _params: Params) -> ProbeResult {
    let row: Option<(bool, String, String, i64)> = db
        .read_batch(&[OWN_SESSION_SSL.to_string()])
        .await?
        .rows(0)?
        .into_iter()
        .next();
    Ok(match row {
        Some((true, version, cipher, bits)) => {
            Outcome::pass(format!("encrypted: {version}, {cipher} ({bits} bits)"))
        }
        Some((false, ..)) => Outcome::fail(
            "this connection is not encrypted: add sslmode=require to the URL (and enable ssl on the server)",
        ),
        None => Outcome::error("pg_stat_ssl has no row for this session"),
    })
}
