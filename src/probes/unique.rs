//! `validation.unique`: the expected unique keys exist (matched by definition, as a valid unique
//! index), and where one is missing, invalid or not unique, whether duplicates are already in
//! the table: then creating it would fail, and the data must be fixed first.

use std::time::Duration;

use serde::Deserialize;
use sqlx::Row;

use super::index_match::{self, ExpectedIndex, IndexState};
use super::tables::tables_query;
use super::{ProbeResult, bounded_row};
use crate::db::{Db, literal, text_array};
use crate::outcome::Outcome;

/// Parameters of the `unique` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Schema (default: the URL's Prisma `schema`, else `public`).
    #[serde(default)]
    pub schema: Option<String>,
    /// The unique keys the app relies on.
    pub keys: Vec<UniqueKey>,
    /// Longest a single duplicate search may run.
    #[serde(default = "default_timeout")]
    pub query_timeout_secs: f64,
}

fn default_timeout() -> f64 {
    20.0
}

/// A unique key the runbook expects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniqueKey {
    /// Table (exact case).
    pub table: String,
    /// Key columns in order.
    pub columns: Vec<String>,
    /// The name it usually has (a different one is a note).
    #[serde(default)]
    pub name: Option<String>,
}

/// How many duplicated values to count at most.
const CAP: u64 = 1000;

/// Runs the probe.
pub async fn run(db: &Db, params: Params) -> ProbeResult {
    let schema = params
        .schema
        .clone()
        .unwrap_or_else(|| db.target().schema().to_string());
    let expected: Vec<ExpectedIndex> = params
        .keys
        .iter()
        .map(|key| ExpectedIndex {
            table: key.table.clone(),
            columns: key.columns.clone(),
            unique: true,
            name: key.name.clone(),
        })
        .collect();
    let mut tables: Vec<String> = expected.iter().map(|k| k.table.clone()).collect();
    tables.sort();
    tables.dedup();
    let timeout = Duration::from_secs_f64(params.query_timeout_secs.max(0.001));
    // The catalog in one round trip; a duplicate search, only for a key that is not enforced.
    let [indexes, builds] = index_match::queries(&schema, &tables);
    let mut answers = db
        .read_batch(&[
            tables_query(&literal(&schema), &text_array(&tables)),
            indexes,
            builds,
        ])
        .await?;
    // Any kind of relation with the name counts as there (as `to_regclass` finds it).
    let existing: Vec<String> = answers
        .rows::<(String, String)>(0)?
        .into_iter()
        .filter(|(_, relkind)| !relkind.is_empty())
        .map(|(name, _)| name)
        .collect();
    let actual = index_match::from_answers(&mut answers, 1)?;
    let mut searches: Option<crate::db::ReadOnly> = None;
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut enforced = 0;
    for key in &expected {
        if !existing.contains(&key.table) {
            problems.push(format!(
                "missing table: {schema}.{} (for {})",
                key.table,
                key.describe()
            ));
            continue;
        }
        let state = index_match::match_index(key, &actual);
        let why = match &state {
            IndexState::Present { name } => {
                enforced += 1;
                if let Some(expected_name) = &key.name
                    && expected_name != name
                {
                    notes.push(format!(
                        "note: {} is enforced by `{name}` (expected name `{expected_name}`)",
                        key.describe()
                    ));
                }
                continue;
            }
            IndexState::Invalid { name, .. } => {
                format!("exists as `{name}` but is INVALID, so it enforces nothing")
            }
            IndexState::NotUnique { name } => format!("`{name}` has its columns but is not unique"),
            IndexState::Missing => "no unique index or constraint has these columns".to_string(),
        };
        let duplicates = duplicates_of(&schema, key);
        let tx = match &mut searches {
            Some(tx) => tx,
            None => searches.insert(db.read_only_with(timeout).await?),
        };
        let finding = match bounded_row(tx, duplicates).await? {
            None => format!(
                "could not search for duplicates within {}s",
                params.query_timeout_secs
            ),
            Some(row) => {
                let values: i64 = row.try_get(0)?;
                if values == 0 {
                    format!(
                        "no duplicates yet: create it with CREATE UNIQUE INDEX CONCURRENTLY ON {} ({})",
                        quoted_table(&schema, &key.table),
                        quoted_columns(key)
                    )
                } else {
                    let most: i64 = row.try_get(1)?;
                    let example: String = row.try_get(2)?;
                    format!(
                        "{}{values} value(s) already duplicated (up to {most} copies, e.g. {}): creating it would fail; deduplicate first",
                        if values as u64 >= CAP {
                            "at least "
                        } else {
                            ""
                        },
                        shorten(&example)
                    )
                }
            }
        };
        problems.push(format!("{}: {why}; {finding}", key.describe()));
    }
    let outcome = if problems.is_empty() {
        Outcome::pass(format!(
            "all {enforced} expected unique key(s) enforced by valid unique indexes"
        ))
    } else {
        Outcome::fail(format!(
            "{} of {} unique key(s) not enforced: {}",
            problems.len(),
            expected.len(),
            problems[0]
        ))
    };
    Ok(outcome.with_details(problems.into_iter().chain(notes)))
}

fn quoted_table(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

fn quoted_columns(key: &ExpectedIndex) -> String {
    key.columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A double-quoted identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Distinct duplicated values (NULLs never collide in a unique index), the largest number of
/// copies, and one example, capped.
fn duplicates_of(schema: &str, key: &ExpectedIndex) -> String {
    let columns = quoted_columns(key);
    let not_null = key
        .columns
        .iter()
        .map(|c| format!("{} IS NOT NULL", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!(
        "SELECT count(*), coalesce(max(n), 0), coalesce(min(k), '')
           FROM (SELECT count(*) AS n, row({columns})::text AS k
                   FROM {} WHERE {not_null}
                  GROUP BY {columns} HAVING count(*) > 1 LIMIT {CAP}) AS d",
        quoted_table(schema, &key.table)
    )
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= 60 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(59).collect::<String>())
    }
}
