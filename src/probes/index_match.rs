//! Matching expected indexes to the catalog by definition (table, key columns in order,
//! uniqueness), never by name: generated constraint names differ between tools.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// An index the runbook expects.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedIndex {
    /// Table it is on (unquoted, exact case).
    #[serde(default)]
    pub table: String,
    /// Key columns in order.
    pub columns: Vec<String>,
    /// Whether it must be unique (a unique index also serves a non-unique expectation).
    #[serde(default)]
    pub unique: bool,
    /// The name it usually has; a different name is a note, not a failure.
    #[serde(default)]
    pub name: Option<String>,
}

impl ExpectedIndex {
    /// `Summary(userId, createdAt)`, with `UNIQUE` when it must be.
    pub fn describe(&self) -> String {
        format!(
            "{}{}({})",
            if self.unique { "UNIQUE " } else { "" },
            self.table,
            self.columns.join(", ")
        )
    }
}

/// An index as the catalog has it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActualIndex {
    /// Table name.
    pub table_name: String,
    /// Index name.
    pub index_name: String,
    /// Key columns in order (`(expression)` for expression keys).
    pub columns: Vec<String>,
    /// Unique (including primary keys).
    pub is_unique: bool,
    /// Usable by queries.
    pub is_valid: bool,
    /// Maintained by writes (false early in CREATE INDEX CONCURRENTLY).
    pub is_ready: bool,
    /// Has a WHERE clause.
    pub is_partial: bool,
    /// `CREATE INDEX ...` as the server prints it.
    pub definition: String,
    /// Phase of a CREATE INDEX still running on it (`None` when none runs, or when this role
    /// may not see the building session's progress: that needs `pg_read_all_stats`).
    pub build_phase: Option<String>,
    /// Progress of that build in percent, from blocks or else tuples.
    pub build_percent: Option<f64>,
}

/// What became of one expected index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexState {
    /// A valid index with that definition exists.
    Present {
        /// Its actual name.
        name: String,
    },
    /// It exists but is invalid or not ready (a failed or running concurrent build).
    Invalid {
        /// Its actual name.
        name: String,
        /// Whether it is not even ready for writes yet.
        ready: bool,
    },
    /// Same columns, but not unique while it must be.
    NotUnique {
        /// The non-unique index's name.
        name: String,
    },
    /// No index on those columns.
    Missing,
}

/// Every index on the given tables of `schema`: key columns in order, uniqueness, validity, and
/// the progress of a build still running on it (pg_stat_progress_create_index is keyed by the
/// index's oid once it exists), so the live panel needs no second round trip.
const INDEXES_OF_TABLES: &str = "
    SELECT t.relname::text AS table_name,
           i.relname::text AS index_name,
           ARRAY(SELECT coalesce(a.attname::text, '(expression)')
                   FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                   LEFT JOIN pg_attribute a
                          ON a.attrelid = x.indrelid AND a.attnum = k.attnum AND k.attnum > 0
                  WHERE k.ord <= x.indnkeyatts
                  ORDER BY k.ord) AS columns,
           x.indisunique AS is_unique,
           x.indisvalid AS is_valid,
           x.indisready AS is_ready,
           x.indpred IS NOT NULL AS is_partial,
           pg_get_indexdef(x.indexrelid) AS definition,
           p.phase::text AS build_phase,
           CASE WHEN p.blocks_total > 0 THEN 100.0 * p.blocks_done / p.blocks_total
                WHEN p.tuples_total > 0 THEN 100.0 * p.tuples_done / p.tuples_total
                WHEN p.pid IS NOT NULL THEN 0
           END::float8 AS build_percent
      FROM pg_index x
      JOIN pg_class i ON i.oid = x.indexrelid
      JOIN pg_class t ON t.oid = x.indrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
      LEFT JOIN pg_stat_progress_create_index p ON p.index_relid = x.indexrelid
     WHERE n.nspname = $1
       AND t.relname = ANY($2)
     ORDER BY t.relname, i.relname";

/// Reads the indexes of `tables` in `schema`.
pub async fn actual_indexes(
    conn: &mut PgConnection,
    schema: &str,
    tables: &[String],
) -> Result<Vec<ActualIndex>, sqlx::Error> {
    sqlx::query_as(INDEXES_OF_TABLES)
        .bind(schema)
        .bind(tables)
        .fetch_all(conn)
        .await
}

/// Decides what became of `expected` among `actual`.
pub fn match_index(expected: &ExpectedIndex, actual: &[ActualIndex]) -> IndexState {
    let same_columns = |index: &&ActualIndex| {
        index.table_name == expected.table && !index.is_partial && index.columns == expected.columns
    };
    let candidates: Vec<&ActualIndex> = actual.iter().filter(same_columns).collect();
    let fits = |index: &&&ActualIndex| index.is_unique || !expected.unique;
    if let Some(index) = candidates.iter().filter(fits).find(|i| i.is_valid) {
        return IndexState::Present {
            name: index.index_name.clone(),
        };
    }
    if let Some(index) = candidates.iter().find(fits) {
        return IndexState::Invalid {
            name: index.index_name.clone(),
            ready: index.is_ready,
        };
    }
    if let Some(index) = candidates.first() {
        return IndexState::NotUnique {
            name: index.index_name.clone(),
        };
    }
    IndexState::Missing
}

/// Findings on a list of expected indexes, as lines: problems first, then notes.
#[derive(Debug, Default)]
pub struct IndexReport {
    /// Expected indexes that are fine.
    pub present: usize,
    /// One line per problem.
    pub problems: Vec<String>,
    /// Names that differ from the expected one, and other remarks.
    pub notes: Vec<String>,
}

/// Matches every expected index and describes the result.
pub fn report(expected: &[ExpectedIndex], actual: &[ActualIndex]) -> IndexReport {
    let mut report = IndexReport::default();
    for want in expected {
        match match_index(want, actual) {
            IndexState::Present { name } => {
                report.present += 1;
                if let Some(expected_name) = &want.name
                    && expected_name != &name
                {
                    report.notes.push(format!(
                        "note: {} is present as `{name}` (expected name `{expected_name}`)",
                        want.describe()
                    ));
                }
            }
            IndexState::Invalid { name, ready } => report.problems.push(format!(
                "invalid: {} exists as `{name}` but is {} (drop it and rebuild with CREATE INDEX CONCURRENTLY)",
                want.describe(),
                if ready { "INVALID" } else { "not ready (a concurrent build is running or failed)" }
            )),
            IndexState::NotUnique { name } => report.problems.push(format!(
                "not unique: {} exists as `{name}` but does not enforce uniqueness",
                want.describe()
            )),
            IndexState::Missing => report.problems.push(format!(
                "missing: {}{}",
                want.describe(),
                want.name
                    .as_ref()
                    .map(|n| format!(" (usually named `{n}`)"))
                    .unwrap_or_default()
            )),
        }
    }
    report
}
