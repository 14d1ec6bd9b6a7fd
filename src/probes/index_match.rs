//! Matching expected indexes to the catalog by definition (table, key columns in order,
//! uniqueness), never by name: generated constraint names differ between tools.

use serde::{Deserialize, Serialize};

use super::ProbeError;
use crate::db::{Answers, Db, literal, text_array};

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
    /// The index's oid.
    pub oid: i64,
    /// Phase of a CREATE INDEX still running on it (`None` when none runs, or when this role
    /// may not see the building session's progress: that needs `pg_read_all_stats`).
    #[sqlx(skip)]
    pub build_phase: Option<String>,
    /// Progress of that build in percent, from blocks or else tuples.
    #[sqlx(skip)]
    pub build_percent: Option<f64>,
}

/// Every index on `tables` (a `text[]` expression) of `schema` (a text expression): key
/// columns in order, uniqueness, validity. Planned in a fraction of a millisecond: the key
/// columns' names are looked up one by one (pg_attribute's primary key), not joined.
fn indexes_of_tables(schema: &str, tables: &str) -> String {
    format!(
        "
    SELECT t.relname::text AS table_name,
           i.relname::text AS index_name,
           ARRAY(SELECT coalesce((SELECT a.attname::text
                                    FROM pg_attribute a
                                   WHERE a.attrelid = x.indrelid AND a.attnum = x.indkey[k]),
                                 '(expression)')
                   FROM generate_series(0, x.indnkeyatts - 1) AS k) AS columns,
           x.indisunique AS is_unique,
           x.indisvalid AS is_valid,
           x.indisready AS is_ready,
           x.indpred IS NOT NULL AS is_partial,
           x.indexrelid::int8 AS oid
      FROM pg_index x
      JOIN pg_class i ON i.oid = x.indexrelid
      JOIN pg_class t ON t.oid = x.indrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
     WHERE n.nspname = {schema}
       AND t.relname = ANY({tables})
     ORDER BY t.relname, i.relname"
    )
}

/// Builds of indexes still running (CREATE INDEX CONCURRENTLY, REINDEX), by the index's oid
/// (pg_stat_progress_create_index is keyed by it once the index exists), with the phase and
/// its progress in percent, from blocks or else tuples.
pub const BUILDS: &str = "
    SELECT index_relid::int8,
           phase,
           coalesce(CASE WHEN blocks_total > 0 THEN 100.0 * blocks_done / blocks_total
                         WHEN tuples_total > 0 THEN 100.0 * tuples_done / tuples_total
                    END, 0)::float8
      FROM pg_stat_progress_create_index";

/// The two queries of a [`Db::read_batch`] that read the indexes of `tables` in `schema` and
/// the builds running on them; [`from_answers`] turns their rows into [`ActualIndex`]es.
pub fn queries(schema: &str, tables: &[String]) -> [String; 2] {
    [
        indexes_of_tables(&literal(schema), &text_array(tables)),
        BUILDS.to_string(),
    ]
}

/// A build in progress: the index's oid, the phase and the percent done.
pub type Build = (i64, String, f64);

/// The indexes read by [`queries`], whose first statement is query `first` of the batch.
pub fn from_answers(answers: &mut Answers, first: usize) -> Result<Vec<ActualIndex>, sqlx::Error> {
    let mut indexes: Vec<ActualIndex> = answers.rows(first)?;
    let builds: Vec<Build> = answers.rows(first + 1)?;
    for index in &mut indexes {
        if let Some((_, phase, percent)) = builds.iter().find(|(oid, ..)| *oid == index.oid) {
            index.build_phase = Some(phase.clone());
            index.build_percent = Some(*percent);
        }
    }
    Ok(indexes)
}

/// Reads the indexes of `tables` in `schema`, in one round trip.
pub async fn actual_indexes(
    db: &Db,
    schema: &str,
    tables: &[String],
) -> Result<Vec<ActualIndex>, ProbeError> {
    let mut answers = db.read_batch(&queries(schema, tables)).await?;
    Ok(from_answers(&mut answers, 0)?)
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
