//! `validation.query_latency`: the app's critical queries, each run with
//! `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` inside a read-only transaction that is rolled back.
//! A query passes when it runs under its threshold and its plan uses the expected index, with no
//! sequential scan of a large table. Parameters can come from real rows of the database.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;
use sqlx::Row;

use super::index_match::{self, ExpectedIndex, IndexState};
use super::{ProbeContext, ProbeResult, bounded_statement_rows};
use crate::db::Db;
use crate::outcome::Outcome;
use crate::runbook::vars::{Quoting, quote};

/// Parameters of the `query_latency` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Schema (default: the URL's Prisma `schema`, else `public`).
    #[serde(default)]
    pub schema: Option<String>,
    /// Execution time above which a query fails (milliseconds; default: the runbook's
    /// `[thresholds] query_latency_ms`).
    #[serde(default)]
    pub max_ms: Option<f64>,
    /// A sequential scan of a table with at least this many rows (planner estimate) fails.
    #[serde(default = "default_large")]
    pub large_table_rows: f64,
    /// The critical queries.
    pub queries: Vec<CriticalQuery>,
}

fn default_large() -> f64 {
    10_000.0
}

/// One query of the app.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriticalQuery {
    /// What it serves ("a user's summaries, newest first").
    pub name: String,
    /// The SELECT, with `$1`, `$2`, ... for its parameters.
    pub sql: String,
    /// Parameter values, in order.
    #[serde(default)]
    pub params: Vec<String>,
    /// A query whose first row gives the parameters (its columns in order), so they are real
    /// values of this database.
    #[serde(default)]
    pub params_from: Option<String>,
    /// The index its plan must use, by definition.
    #[serde(default)]
    pub index: Option<ExpectedIndex>,
    /// This query's own threshold (milliseconds).
    #[serde(default)]
    pub max_ms: Option<f64>,
    /// The query reads a table the app may do without (the checklist's Progress, which may be
    /// handled in memory): when its index's table does not exist, the query is a note, not a
    /// failure.
    #[serde(default)]
    pub optional: bool,
}

/// A node of the plan, flattened depth first.
#[derive(Debug)]
struct Node {
    depth: usize,
    kind: String,
    relation: Option<String>,
    index: Option<String>,
    rows: f64,
    loops: f64,
    total_ms: f64,
    /// An index scan's condition (without one it walks the whole index).
    index_cond: Option<String>,
    /// Rows read and thrown away by the node's filter.
    removed: f64,
}

impl Node {
    fn describe(&self) -> String {
        let mut text = self.kind.clone();
        if let Some(index) = &self.index {
            text.push_str(&format!(" using {index}"));
        }
        if let Some(relation) = &self.relation {
            text.push_str(&format!(" on {relation}"));
        }
        format!(
            "{text} (rows {}, {:.3} ms{})",
            self.rows,
            self.total_ms,
            if self.loops > 1.0 {
                format!(", {} loops", self.loops)
            } else {
                String::new()
            }
        )
    }
}

fn flatten(plan: &Value, depth: usize, out: &mut Vec<Node>) {
    let text = |key: &str| plan.get(key).and_then(Value::as_str).map(str::to_string);
    let number = |key: &str| plan.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    out.push(Node {
        depth,
        kind: text("Node Type").unwrap_or_else(|| "?".into()),
        relation: text("Relation Name"),
        index: text("Index Name"),
        rows: number("Actual Rows"),
        loops: number("Actual Loops"),
        total_ms: number("Actual Total Time"),
        index_cond: text("Index Cond"),
        removed: number("Rows Removed by Filter"),
    });
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        for child in children {
            flatten(child, depth + 1, out);
        }
    }
}

/// Replaces `$1`, `$2`, ... outside strings, quoted names and comments with the literals.
pub fn bind_literals(sql: &str, literals: &[String]) -> Result<String, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let rest: String = chars[i..].iter().take(2).collect();
        if c == '\'' || c == '"' {
            out.push(c);
            // A doubled quote inside is the quote itself: it closes and reopens, harmlessly.
            i = copy_until(&chars, i + 1, &c.to_string(), &mut out);
        } else if rest == "--" {
            i = copy_until(&chars, i, "\n", &mut out);
        } else if rest == "/*" {
            i = copy_until(&chars, i, "*/", &mut out);
        } else if c == '$' && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            let digits: String = chars[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            let n: usize = digits
                .parse()
                .map_err(|_| format!("bad parameter ${digits}"))?;
            let literal = n
                .checked_sub(1)
                .and_then(|k| literals.get(k))
                .ok_or_else(|| {
                    format!(
                        "the query uses ${n} but has {} parameter value(s)",
                        literals.len()
                    )
                })?;
            out.push_str(literal);
            i += 1 + digits.len();
        } else if c == '$' {
            // A dollar-quoted string: $tag$ ... $tag$.
            let tag: String = chars[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .collect();
            if chars.get(i + 1 + tag.chars().count()) == Some(&'$') {
                let delimiter = format!("${tag}$");
                out.push_str(&delimiter);
                i = copy_until(&chars, i + delimiter.chars().count(), &delimiter, &mut out);
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

/// A column name as the server prints it in plans: double-quoted unless plain lowercase (only
/// for finding it there, not for building SQL: a reserved word would stay bare).
fn as_printed_in_plans(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Copies `chars[from..]` through the next `end` (or to the end) into `out`; returns the index
/// after it.
fn copy_until(chars: &[char], from: usize, end: &str, out: &mut String) -> usize {
    let tail: String = chars[from..].iter().collect();
    let stop = tail.find(end).map(|p| p + end.len()).unwrap_or(tail.len());
    out.push_str(&tail[..stop]);
    from + tail[..stop].chars().count()
}

/// A JSON value from a row as a SQL literal (untyped, so the server casts it to the parameter's
/// type), or NULL.
fn literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_string(),
        Value::String(text) => quote(text, Quoting::SqlLiteral),
        other => quote(&other.to_string(), Quoting::SqlLiteral),
    }
}

/// What became of one query.
struct Verdict {
    ok: bool,
    lines: Vec<String>,
    exec_ms: f64,
}

/// Whether `schema.table` exists.
async fn table_exists(
    conn: &mut sqlx::PgConnection,
    schema: &str,
    table: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL")
        .bind(schema)
        .bind(table)
        .fetch_one(conn)
        .await
}

/// Runs the probe.
pub async fn run(db: &Db, params: Params, context: &ProbeContext) -> ProbeResult {
    let schema = params
        .schema
        .clone()
        .unwrap_or_else(|| db.target().schema().to_string());
    let default_max_ms = params.max_ms.unwrap_or(context.thresholds.query_latency_ms);
    // The expected indexes, resolved to the names they have on this database.
    let tables: Vec<String> = params
        .queries
        .iter()
        .filter_map(|q| q.index.as_ref().map(|i| i.table.clone()))
        .collect();
    let actual = index_match::actual_indexes(db, &schema, &tables).await?;
    let mut tx = db.read_only().await?;

    let mut verdicts = Vec::new();
    for query in &params.queries {
        let max_ms = query.max_ms.unwrap_or(default_max_ms);
        let fail = |line: String| Verdict {
            ok: false,
            lines: vec![line],
            exec_ms: 0.0,
        };
        if query.optional
            && let Some(index) = &query.index
            && !table_exists(&mut tx, &schema, &index.table).await?
        {
            verdicts.push(Verdict {
                ok: true,
                lines: vec![format!(
                    "- {}: not measured: table {} does not exist (optional)",
                    query.name, index.table
                )],
                exec_ms: 0.0,
            });
            continue;
        }
        let expected_index = match &query.index {
            None => None,
            Some(index) => match index_match::match_index(index, &actual) {
                IndexState::Present { name } => Some(name),
                other => {
                    verdicts.push(fail(format!(
                        "✗ {}: its index {} is not usable ({other:?}); see performance.indexes",
                        query.name,
                        index.describe()
                    )));
                    continue;
                }
            },
        };
        let literals = match &query.params_from {
            Some(source) => {
                let sql = format!("SELECT row_to_json(p)::text FROM ({source}) AS p LIMIT 1");
                match bounded_statement_rows(&mut tx, sql).await? {
                    None => {
                        verdicts.push(fail(format!(
                            "✗ {}: its params_from query did not answer in time",
                            query.name
                        )));
                        continue;
                    }
                    Some(rows) if rows.is_empty() => {
                        verdicts.push(Verdict {
                            ok: true,
                            lines: vec![format!(
                                "- {}: not measured: params_from found no row to take parameters from",
                                query.name
                            )],
                            exec_ms: 0.0,
                        });
                        continue;
                    }
                    Some(rows) => {
                        let text: String = rows[0].try_get(0)?;
                        let object: serde_json::Map<String, Value> =
                            serde_json::from_str(&text).unwrap_or_default();
                        object.values().map(literal).collect::<Vec<_>>()
                    }
                }
            }
            None => query
                .params
                .iter()
                .map(|v| quote(v, Quoting::SqlLiteral))
                .collect(),
        };
        let sql = match bind_literals(&query.sql, &literals) {
            Ok(sql) => sql,
            Err(problem) => {
                verdicts.push(fail(format!("✗ {}: {problem}", query.name)));
                continue;
            }
        };
        let explain = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}");
        let Some(rows) = bounded_statement_rows(&mut tx, explain).await? else {
            verdicts.push(fail(format!(
                "✗ {}: did not finish within the step's statement timeout (or waited on a lock)",
                query.name
            )));
            continue;
        };
        let plan: Value = rows
            .first()
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or_default();
        let root = &plan[0];
        let exec_ms = root["Execution Time"].as_f64().unwrap_or(0.0);
        let planning_ms = root["Planning Time"].as_f64().unwrap_or(0.0);
        let mut nodes = Vec::new();
        flatten(&root["Plan"], 0, &mut nodes);
        let relations: Vec<String> = nodes.iter().filter_map(|n| n.relation.clone()).collect();
        let sizes: HashMap<String, f64> = sqlx::query_as::<_, (String, f64)>(
            "SELECT t, coalesce((SELECT greatest(c.reltuples, 0)::float8 FROM pg_class c
                                  WHERE c.oid = to_regclass(format('%I.%I', $1::text, t))), 0)
               FROM unnest($2::text[]) AS t",
        )
        .bind(&schema)
        .bind(&relations)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let size = |relation: &str| sizes.get(relation).copied().unwrap_or(0.0);
        let used: Vec<String> = nodes.iter().filter_map(|n| n.index.clone()).collect();
        let leading_columns: HashMap<String, (String, String)> =
            sqlx::query_as::<_, (String, String, String)>(
                "SELECT i.relname::text, t.relname::text, a.attname::text
                   FROM pg_index x
                   JOIN pg_class i ON i.oid = x.indexrelid
                   JOIN pg_class t ON t.oid = x.indrelid
                   JOIN pg_namespace n ON n.oid = i.relnamespace
                   JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
                  WHERE n.nspname = $1 AND i.relname = ANY($2)",
            )
            .bind(&schema)
            .bind(&used)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(index, table, column)| (index, (table, column)))
            .collect();

        let mut problems = Vec::new();
        if exec_ms > max_ms {
            problems.push(format!("took {exec_ms:.3} ms, over {max_ms} ms"));
        }
        for node in &nodes {
            if node.kind == "Seq Scan"
                && let Some(relation) = &node.relation
                && size(relation) >= params.large_table_rows
            {
                problems.push(format!(
                    "sequential scan of {relation} (~{:.0} rows)",
                    size(relation)
                ));
            }
            // An index walked end to end is a scan in disguise: without a condition, when it
            // reads many rows (an ORDER BY ... LIMIT that stops early is fine), or with a
            // condition that leaves out the index's leading column.
            if let Some(index) = &node.index
                && let Some((table, leading)) = leading_columns.get(index)
                && size(table) >= params.large_table_rows
            {
                let visited = (node.rows + node.removed) * node.loops.max(1.0);
                let walks = match &node.index_cond {
                    None => visited >= params.large_table_rows,
                    Some(cond) => !cond.contains(&as_printed_in_plans(leading)),
                };
                if walks {
                    problems.push(format!(
                        "walks all of index {index} on {table} (~{:.0} rows): the condition does not use its leading column {leading}",
                        size(table)
                    ));
                }
            }
        }
        let mut notes = Vec::new();
        if let (Some(name), Some(index)) = (&expected_index, &query.index) {
            let used = nodes.iter().any(|n| n.index.as_deref() == Some(name));
            // Another index of the same table serving the query is the planner's choice, not
            // a missing index: a note.
            let other = nodes
                .iter()
                .filter_map(|n| n.index.as_deref())
                .find(|used| {
                    actual
                        .iter()
                        .any(|a| a.index_name == *used && a.table_name == index.table)
                });
            if let (false, Some(other)) = (used, other) {
                notes.push(format!(
                    "served by {other} rather than {name}: the planner found it cheaper here"
                ));
            } else if !used {
                if size(&index.table) >= params.large_table_rows
                    || !nodes
                        .iter()
                        .any(|n| n.relation.as_deref() == Some(&index.table))
                {
                    problems.push(format!("does not use {name} ({})", index.describe()));
                } else {
                    notes.push(format!(
                        "does not use {name}: {} is small (~{:.0} rows), where the planner rightly prefers a scan",
                        index.table,
                        size(&index.table)
                    ));
                }
            }
        }
        // How each table is reached: the index nodes, and the scans without one (a bitmap
        // heap scan is named by its bitmap index scan).
        let access: Vec<String> = nodes
            .iter()
            .filter_map(|n| match (&n.index, &n.relation) {
                (Some(index), _) => Some(format!("{} using {index}", n.kind)),
                (None, Some(relation)) if n.kind != "Bitmap Heap Scan" => {
                    Some(format!("{} on {relation}", n.kind))
                }
                _ => None,
            })
            .collect();
        let buffers = |key: &str| root["Plan"][key].as_i64().unwrap_or(0);
        let ok = problems.is_empty();
        let mut lines = vec![format!(
            "{} {}: {exec_ms:.3} ms (planning {planning_ms:.3} ms), {}; buffers hit {} read {}{}",
            if ok { "✓" } else { "✗" },
            query.name,
            access.join(", "),
            buffers("Shared Hit Blocks"),
            buffers("Shared Read Blocks"),
            if ok {
                String::new()
            } else {
                format!(" — {}", problems.join("; "))
            }
        )];
        lines.extend(notes.into_iter().map(|n| format!("    note: {n}")));
        lines.extend(
            nodes
                .iter()
                .take(4)
                .map(|n| format!("    {}{}", "  ".repeat(n.depth), n.describe())),
        );
        verdicts.push(Verdict { ok, lines, exec_ms });
    }

    let failed = verdicts.iter().filter(|v| !v.ok).count();
    let slowest = verdicts
        .iter()
        .zip(&params.queries)
        .max_by(|a, b| a.0.exec_ms.total_cmp(&b.0.exec_ms))
        .map(|(v, q)| format!("; slowest: {} at {:.3} ms", q.name, v.exec_ms))
        .unwrap_or_default();
    let outcome = if failed == 0 {
        Outcome::pass(format!(
            "all {} critical queries under {} ms on their indexes{slowest}",
            verdicts.len(),
            default_max_ms
        ))
    } else {
        let first = verdicts
            .iter()
            .find(|v| !v.ok)
            .map(|v| v.lines[0].trim_start_matches("✗ ").to_string())
            .unwrap_or_default();
        Outcome::fail(format!(
            "{failed} of {} critical queries slow or off their index: {first}",
            verdicts.len()
        ))
    };
    let (bad, good): (Vec<Verdict>, Vec<Verdict>) = verdicts.into_iter().partition(|v| !v.ok);
    Ok(outcome.with_details(bad.into_iter().chain(good).flat_map(|v| v.lines)))
}

#[cfg(test)]
mod tests {
    use super::bind_literals;

    #[test]
    fn parameters_are_replaced_outside_strings_names_and_comments() {
        let literals = vec!["'u1'".to_string(), "'2026-01-01'".to_string()];
        let sql = r#"SELECT '$1', "$2", $$ $1 $$, $x$ $2 $x$ /* $1 */ FROM t -- $2
WHERE a = $1 AND b >= $2"#;
        assert_eq!(
            bind_literals(sql, &literals).unwrap(),
            r#"SELECT '$1', "$2", $$ $1 $$, $x$ $2 $x$ /* $1 */ FROM t -- $2
WHERE a = 'u1' AND b >= '2026-01-01'"#
        );
        assert_eq!(
            bind_literals("SELECT $3", &literals).unwrap_err(),
            "the query uses $3 but has 2 parameter value(s)"
        );
    }
}
