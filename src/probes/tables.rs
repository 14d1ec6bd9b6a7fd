//! `tables.required` and `tables.progress`: the critical tables exist with their critical
//! columns (of the right type) and indexes (matched by definition).

use serde::{Deserialize, Serialize};

use super::ProbeResult;
use super::index_match::{self, ExpectedIndex};
use crate::db::{Db, literal, text_array};
use crate::outcome::Outcome;

/// Parameters of the `tables` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Schema (default: the URL's Prisma `schema`, else `public`).
    #[serde(default)]
    pub schema: Option<String>,
    /// The tables that must exist.
    pub tables: Vec<ExpectedTable>,
}

/// A table the runbook expects.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedTable {
    /// Exact name (Prisma keeps the model's case: `User`).
    pub name: String,
    /// Critical columns.
    #[serde(default)]
    pub columns: Vec<ExpectedColumn>,
    /// Critical indexes (the primary key included).
    #[serde(default)]
    pub indexes: Vec<ExpectedIndex>,
}

/// A column the runbook expects.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedColumn {
    /// Exact name.
    pub name: String,
    /// Type as PostgreSQL names it (`text`, `int`, `timestamp(3)`, `jsonb`); aliases resolve
    /// on the server.
    #[serde(rename = "type")]
    pub type_name: String,
}

/// Which of `names` (a `text[]` expression) exist in `schema` (a text expression), and as what
/// kind of relation.
pub(crate) fn tables_query(schema: &str, names: &str) -> String {
    format!(
        "
    SELECT e.name,
           coalesce(c.relkind::text, '')
      FROM unnest({names}) AS e(name)
      LEFT JOIN pg_class c ON c.oid = to_regclass(format('%I.%I', {schema}::text, e.name))"
    )
}

/// Each expected column of `wanted` (a `jsonb` expression: an array of objects with
/// `table_name`, `column_name` and `expected_type`): present or not, its actual type, and
/// whether that is the expected type once the server has resolved the expected name (so `int`
/// equals `integer`).
pub(crate) fn columns_query(schema: &str, wanted: &str) -> String {
    format!(
        "
    SELECT e.table_name,
           e.column_name,
           e.expected_type,
           a.attname IS NOT NULL,
           coalesce(format_type(a.atttypid, a.atttypmod), ''),
           to_regtype(e.expected_type) IS NOT NULL,
           coalesce(a.atttypid = to_regtype(e.expected_type), false)
      FROM jsonb_to_recordset({wanted}) AS e(table_name text, column_name text, expected_type text)
      LEFT JOIN pg_attribute a
             ON a.attrelid = to_regclass(format('%I.%I', {schema}::text, e.table_name))
            AND a.attname = e.column_name
            AND a.attnum > 0
            AND NOT a.attisdropped"
    )
}

/// Runs the probe: every query in one round trip (the columns and indexes of a table that
/// turns out to be missing are simply not found, and not reported twice).
pub async fn run(db: &Db, params: Params) -> ProbeResult {
    let schema = params
        .schema
        .clone()
        .unwrap_or_else(|| db.target().schema().to_string());
    let names: Vec<String> = params.tables.iter().map(|t| t.name.clone()).collect();
    let wanted_columns: Vec<serde_json::Value> = params
        .tables
        .iter()
        .flat_map(|t| {
            t.columns.iter().map(|c| {
                serde_json::json!({
                    "table_name": t.name,
                    "column_name": c.name,
                    "expected_type": c.type_name,
                })
            })
        })
        .collect();
    let wanted = format!(
        "{}::jsonb",
        literal(&serde_json::Value::Array(wanted_columns).to_string())
    );
    let quoted_schema = literal(&schema);
    let [indexes, builds] = index_match::queries(&schema, &names);
    let mut answers = db
        .read_batch(&[
            tables_query(&quoted_schema, &text_array(&names)),
            columns_query(&quoted_schema, &wanted),
            indexes,
            builds,
        ])
        .await?;

    let relations: Vec<(String, String)> = answers.rows(0)?;
    let mut problems = Vec::new();
    let mut existing = Vec::new();
    for (name, relkind) in relations {
        match relkind.as_str() {
            "r" | "p" => existing.push(name),
            "" => problems.push(format!("missing table: {schema}.{name}")),
            other => problems.push(format!("{schema}.{name} is not a table (relkind {other})")),
        }
    }

    let columns: Vec<(String, String, String, bool, String, bool, bool)> = answers.rows(1)?;
    let mut columns_ok = 0;
    for (table, column, expected, present, actual, known, matches) in columns {
        if !existing.contains(&table) {
            continue;
        }
        if !present {
            problems.push(format!("missing column: {table}.{column} ({expected})"));
        } else if !known {
            problems.push(format!(
                "{table}.{column}: the runbook's type `{expected}` is not a type this server knows"
            ));
        } else if !matches {
            problems.push(format!(
                "wrong type: {table}.{column} is {actual}, expected {expected}"
            ));
        } else {
            columns_ok += 1;
        }
    }

    let expected_indexes: Vec<ExpectedIndex> = params
        .tables
        .iter()
        .filter(|t| existing.contains(&t.name))
        .flat_map(|t| {
            t.indexes.iter().map(|i| ExpectedIndex {
                table: t.name.clone(),
                ..i.clone()
            })
        })
        .collect();
    let actual: Vec<_> = index_match::from_answers(&mut answers, 2)?
        .into_iter()
        .filter(|index| existing.contains(&index.table_name))
        .collect();
    let report = index_match::report(&expected_indexes, &actual);
    problems.extend(report.problems);

    let summary = format!(
        "{} of {} tables, {columns_ok} critical columns, {} of {} indexes",
        existing.len(),
        params.tables.len(),
        report.present,
        expected_indexes.len()
    );
    let outcome = if problems.is_empty() {
        Outcome::pass(format!("all present: {summary}"))
    } else {
        Outcome::fail(format!("{} problem(s): {}", problems.len(), problems[0]))
    };
    Ok(outcome.with_details(problems.into_iter().chain(report.notes)))
}
