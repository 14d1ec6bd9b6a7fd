//! `validation.fk_valid`: every foreign key is validated (none left NOT VALID).

use serde::Deserialize;

use super::ProbeResult;
use crate::db::Db;
use crate::outcome::Outcome;

/// The `fk_valid` probe takes no parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}

/// Foreign keys added NOT VALID and never validated, with the statement that validates each.
pub(crate) const UNVALIDATED_FOREIGN_KEYS: &str = "
    SELECT c.conrelid::regclass::text,
           quote_ident(c.conname),
           c.confrelid::regclass::text
      FROM pg_constraint c
      JOIN pg_namespace n ON n.oid = c.connamespace
     WHERE c.contype = 'f'
       AND NOT c.convalidated
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     ORDER BY 1, 2";

/// Runs the probe.
pub async fn run(db: &Db, _params: Params) -> ProbeResult {
    let rows: Vec<(String, String, String)> = db
        .read_batch(&[UNVALIDATED_FOREIGN_KEYS.to_string()])
        .await?
        .rows(0)?;
    if rows.is_empty() {
        return Ok(Outcome::pass("every foreign key is validated"));
    }
    let details = rows.iter().map(|(table, constraint, parent)| {
        format!(
            "ALTER TABLE {table} VALIDATE CONSTRAINT {constraint}; -- references {parent}; takes SHARE UPDATE EXCLUSIVE on {table} and ROW SHARE on {parent}: writes continue"
        )
    });
    Ok(Outcome::fail(format!(
        "{} foreign key(s) NOT VALID: existing rows were never checked",
        rows.len()
    ))
    .with_details(details))
}
