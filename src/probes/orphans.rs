//! `validation.orphans`: for every foreign key of the schema, validated or NOT VALID, the child
//! rows whose key has no parent. Validated keys are checked too: data copied with triggers off
//! (`session_replication_role = replica`) or a constraint dropped and re-added NOT VALID leave
//! orphans behind a key that looks fine. Each count is capped and bounded by a timeout, so the
//! probe stays cheap on huge tables.

use std::time::Duration;

use serde::Deserialize;
use sqlx::Row;

use super::{ProbeResult, spread_counts};
use crate::db::Db;
use crate::outcome::Outcome;

/// Parameters of the `orphans` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Schema (default: the URL's Prisma `schema`, else `public`).
    pub schema: Option<String>,
    /// Stop counting a key's orphans here and report "at least" this many.
    pub cap: u64,
    /// Longest a single key's count may run; past it the key is reported as unchecked.
    pub query_timeout_secs: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            schema: None,
            cap: 1000,
            query_timeout_secs: 20.0,
        }
    }
}

/// Every foreign key of the schema (the partitioned parent's only, not its per-partition
/// copies), with its columns quoted by the server.
const FOREIGN_KEYS: &str = "
    SELECT c.conname::text,
           c.conrelid::regclass::text,
           c.confrelid::regclass::text,
           c.convalidated,
           c.confmatchtype = 'f',
           ARRAY(SELECT quote_ident(a.attname)
                   FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                  ORDER BY k.ord),
           ARRAY(SELECT quote_ident(a.attname)
                   FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum
                  ORDER BY k.ord),
           ARRAY(SELECT a.attname::text
                   FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                  ORDER BY k.ord)
      FROM pg_constraint c
      JOIN pg_namespace n ON n.oid = c.connamespace
     WHERE c.contype = 'f'
       AND c.conparentid = 0
       AND n.nspname = $1
     ORDER BY 2, 1";

/// A foreign key as the catalog has it.
struct ForeignKey {
    name: String,
    child: String,
    parent: String,
    validated: bool,
    match_full: bool,
    child_columns: Vec<String>,
    parent_columns: Vec<String>,
    column_names: Vec<String>,
}

impl ForeignKey {
    /// `Summary(userId) -> User`.
    fn describe(&self) -> String {
        format!(
            "{}({}) -> {} [{}{}]",
            self.child,
            self.column_names.join(", "),
            self.parent,
            self.name,
            if self.validated { "" } else { ", NOT VALID" }
        )
    }

    /// The rows that break the key. MATCH SIMPLE (the default): a row with any NULL key column
    /// is exempt. MATCH FULL: only an all-NULL key is exempt; a partly NULL one is a violation.
    fn violations(&self) -> String {
        let all = |op: &str, join: &str| {
            self.child_columns
                .iter()
                .map(|c| format!("ch.{c} {op}"))
                .collect::<Vec<_>>()
                .join(join)
        };
        let joined = self
            .child_columns
            .iter()
            .zip(&self.parent_columns)
            .map(|(c, p)| format!("pa.{p} = ch.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let missing = format!(
            "NOT EXISTS (SELECT 1 FROM {} pa WHERE {joined})",
            self.parent
        );
        let condition = if self.match_full {
            format!(
                "NOT ({}) AND (({}) OR {missing})",
                all("IS NULL", " AND "),
                all("IS NULL", " OR ")
            )
        } else {
            format!("{} AND {missing}", all("IS NOT NULL", " AND "))
        };
        format!("SELECT * FROM {} ch WHERE {condition}", self.child)
    }
}

/// Runs the probe.
pub async fn run(db: &Db, params: Params) -> ProbeResult {
    let schema = params
        .schema
        .clone()
        .unwrap_or_else(|| db.target().schema().to_string());
    let timeout = Duration::from_secs_f64(params.query_timeout_secs.max(0.001));
    let mut tx = db.read_only_with(timeout).await?;
    let keys: Vec<ForeignKey> = sqlx::query(FOREIGN_KEYS)
        .bind(&schema)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|row| ForeignKey {
            name: row.get(0),
            child: row.get(1),
            parent: row.get(2),
            validated: row.get(3),
            match_full: row.get(4),
            child_columns: row.get(5),
            parent_columns: row.get(6),
            column_names: row.get(7),
        })
        .collect();
    if keys.is_empty() {
        return Ok(Outcome::warn(format!(
            "schema {schema} has no foreign keys: nothing to check (is it the app's schema?)"
        )));
    }
    let cap = params.cap.max(1);
    let mut problems = Vec::new();
    let mut unchecked = Vec::new();
    let mut clean = Vec::new();
    let queries: Vec<String> = keys
        .iter()
        .map(|key| {
            format!(
                "SELECT count(*) FROM ({} LIMIT {cap}) AS o",
                key.violations()
            )
        })
        .collect();
    let counts = spread_counts(db, &mut tx, timeout, &queries).await?;
    for (key, count) in keys.iter().zip(counts) {
        match count {
            Some(0) => clean.push(format!("ok: {}", key.describe())),
            Some(n) => {
                let amount = if n as u64 >= cap {
                    format!("at least {n}")
                } else {
                    n.to_string()
                };
                problems.push(format!(
                    "{amount} orphaned row(s): {}; list them with: {}",
                    key.describe(),
                    key.violations()
                ));
            }
            None => unchecked.push(format!(
                "not checked: {} (no answer within {}s or a lock on the table; raise query_timeout_secs or run it off-peak)",
                key.describe(),
                params.query_timeout_secs
            )),
        }
    }
    let not_valid = keys.iter().filter(|k| !k.validated).count();
    let scope = format!(
        "{} foreign key(s) of {schema} ({not_valid} NOT VALID)",
        keys.len()
    );
    let outcome = if !problems.is_empty() {
        Outcome::fail(format!(
            "orphaned rows behind {} of {scope}",
            problems.len()
        ))
    } else if !unchecked.is_empty() {
        Outcome::warn(format!(
            "{} of {scope} could not be counted in time; no orphans in the others",
            unchecked.len()
        ))
    } else {
        Outcome::pass(format!("no orphaned rows behind any of {scope}"))
    };
    Ok(outcome.with_details(problems.into_iter().chain(unchecked).chain(clean)))
}
