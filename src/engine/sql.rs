//! SQL steps: one read-only statement, its rows held against the runbook's expectation.

use std::time::Duration;

use serde_json::Value;
use sqlx::Row;

use crate::db::Db;
use crate::outcome::Outcome;
use crate::runbook::Expectation;

/// At most this many rows are fetched; more are reported as "at least".
const ROW_LIMIT: usize = 100;
/// At most this many offending rows are listed in the details.
const ROWS_SHOWN: usize = 20;

/// Runs `query` (already substituted) in a read-only transaction and judges its rows.
pub async fn run(db: &Db, query: &str, expect: &Expectation, timeout: Duration) -> Outcome {
    // Every row comes back as one JSON object, so any column type (int2 to numeric, arrays,
    // json) decodes the same way and column order is kept.
    let wrapped = format!(
        "SELECT row_to_json(q)::text FROM (\n{query}\n) AS q LIMIT {}",
        ROW_LIMIT + 1
    );
    let rows = async {
        let mut tx = db.read_only_with(timeout).await?;
        // The query is the runbook author's; it runs in a read-only transaction. The simple
        // protocol takes one round trip (a prepared statement would take two).
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(wrapped))
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| db.error(e))?;
        let texts = rows
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| db.error(e))?;
        Ok::<_, crate::db::DbError>(texts)
    }
    .await;
    let rows: Vec<serde_json::Map<String, Value>> = match rows {
        Ok(rows) => rows
            .into_iter()
            .filter_map(|text| serde_json::from_str(&text).ok())
            .collect(),
        Err(err) => return Outcome::error(err.to_string()),
    };
    judge(&rows, expect)
}

/// Holds the rows against the expectation.
pub fn judge(rows: &[serde_json::Map<String, Value>], expect: &Expectation) -> Outcome {
    let count = if rows.len() > ROW_LIMIT {
        format!("at least {ROW_LIMIT}")
    } else {
        rows.len().to_string()
    };
    let shown = |rows: &mut dyn Iterator<Item = &serde_json::Map<String, Value>>| {
        rows.take(ROWS_SHOWN).map(render_row).collect::<Vec<_>>()
    };
    match expect {
        Expectation::NoRows => {
            if rows.is_empty() {
                Outcome::pass("no rows: nothing wrong found")
            } else {
                Outcome::fail(format!(
                    "{count} row(s) found, expected none: {}",
                    render_row(&rows[0])
                ))
                .with_details(shown(&mut rows.iter()))
            }
        }
        Expectation::AllTrue => {
            let falsy: Vec<_> = rows
                .iter()
                .filter(|row| first_value(row) != Some(&Value::Bool(true)))
                .collect();
            if falsy.is_empty() {
                // The rows are the evidence (row counts, sizes): keep them.
                Outcome::pass(format!("{count} row(s), all true"))
                    .with_details(shown(&mut rows.iter()))
            } else {
                Outcome::fail(format!(
                    "{} of {count} row(s) not true: {}",
                    falsy.len(),
                    render_row(falsy[0])
                ))
                .with_details(shown(&mut falsy.into_iter()))
            }
        }
        Expectation::Equals(_) | Expectation::AtLeast(_) | Expectation::AtMost(_) => {
            single_value(rows, expect)
        }
    }
}

fn single_value(rows: &[serde_json::Map<String, Value>], expect: &Expectation) -> Outcome {
    let [row] = rows else {
        return Outcome::error(format!(
            "expected exactly one row, got {}{}",
            rows.len(),
            if rows.len() > ROW_LIMIT { "+" } else { "" }
        ));
    };
    let Some(value) = first_value(row) else {
        return Outcome::error("the query returned no columns");
    };
    let shown = render_value(value);
    match expect {
        Expectation::Equals(wanted) => {
            let wanted = toml_to_json(wanted);
            if values_equal(value, &wanted) {
                Outcome::pass(format!("{shown} as expected"))
            } else {
                Outcome::fail(format!("got {shown}, expected {}", render_value(&wanted)))
            }
        }
        Expectation::AtLeast(bound) | Expectation::AtMost(bound) => {
            let Some(number) = as_number(value) else {
                return Outcome::error(format!("expected a number, got {shown}"));
            };
            let at_least = matches!(expect, Expectation::AtLeast(_));
            let holds = if at_least {
                number >= *bound
            } else {
                number <= *bound
            };
            let relation = if at_least { "≥" } else { "≤" };
            if holds {
                Outcome::pass(format!("{shown} {relation} {bound}"))
            } else {
                Outcome::fail(format!("{shown} is not {relation} {bound}"))
            }
        }
        Expectation::NoRows | Expectation::AllTrue => unreachable!("handled by judge"),
    }
}

fn first_value(row: &serde_json::Map<String, Value>) -> Option<&Value> {
    row.values().next()
}

/// Numbers however PostgreSQL typed them. `row_to_json` gives int2/int4/int8 and float as JSON
/// numbers, numeric as a JSON number of any size (read as the nearest f64, never an overflow),
/// numeric and float NaN/Infinity as text, text as text, bool as true/false (1/0 here).
fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn values_equal(actual: &Value, wanted: &Value) -> bool {
    match (as_number(actual), wanted) {
        (Some(a), Value::Number(w)) => w.as_f64().is_some_and(|w| (a - w).abs() < 1e-9),
        _ => match (actual, wanted) {
            (Value::String(a), Value::String(w)) => a == w,
            _ => actual == wanted,
        },
    }
}

fn toml_to_json(value: &toml::Value) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn render_row(row: &serde_json::Map<String, Value>) -> String {
    row.iter()
        .map(|(k, v)| format!("{k}={}", render_value(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Status;

    fn rows(json: &str) -> Vec<serde_json::Map<String, Value>> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn no_rows_passes_on_empty_and_fails_listing_rows() {
        assert_eq!(judge(&[], &Expectation::NoRows).status, Status::Pass);
        let out = judge(&rows(r#"[{"email":"a@x","n":2}]"#), &Expectation::NoRows);
        assert_eq!(out.status, Status::Fail);
        assert_eq!(out.details, vec!["email=a@x, n=2"]);
    }

    #[test]
    fn numeric_text_and_bigint_compare_as_numbers() {
        let big = rows(r#"[{"count":"25"}]"#);
        assert_eq!(
            judge(&big, &Expectation::AtLeast(25.0)).status,
            Status::Pass
        );
        assert_eq!(judge(&big, &Expectation::AtMost(24.0)).status, Status::Fail);
        let equal = rows(r#"[{"n":1.0}]"#);
        assert_eq!(
            judge(&equal, &Expectation::Equals(toml::Value::Integer(1))).status,
            Status::Pass
        );
    }

    #[test]
    fn single_value_expectations_need_exactly_one_row() {
        let two = rows(r#"[{"n":1},{"n":2}]"#);
        assert_eq!(
            judge(&two, &Expectation::AtLeast(0.0)).status,
            Status::Error
        );
    }

    #[test]
    fn all_true_fails_on_a_false_or_null_first_column() {
        let mixed = rows(r#"[{"ok":true,"t":"a"},{"ok":null,"t":"b"}]"#);
        let out = judge(&mixed, &Expectation::AllTrue);
        assert_eq!(out.status, Status::Fail);
        assert_eq!(out.details, vec!["ok=null, t=b"]);
    }
}
