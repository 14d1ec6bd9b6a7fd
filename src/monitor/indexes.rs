//! The index panel: the live state of every expected index, a concurrent build in progress
//! told apart from a failed one.

use crate::db::{Db, DbError};
use crate::probes::index_match::{self, ActualIndex, ExpectedIndex, IndexState};

/// One expected index and what the catalog says of it now.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexStatus {
    /// The index the runbook expects.
    pub expected: ExpectedIndex,
    /// What became of it.
    pub state: IndexLiveState,
}

/// The live state of an expected index.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexLiveState {
    /// A valid index with that definition exists.
    Present {
        /// Its actual name.
        name: String,
    },
    /// No index on those columns.
    Missing,
    /// It exists but queries cannot use it, and no build is running: a concurrent build
    /// failed and left it behind.
    Invalid {
        /// Its actual name.
        name: String,
    },
    /// CREATE INDEX CONCURRENTLY (or REINDEX) is building it now.
    Building {
        /// Its actual name.
        name: String,
        /// The build's phase as the server names it (`waiting for writers before build`,
        /// `building index: scanning table`, ...).
        phase: String,
        /// Progress of the phase in percent, from blocks or else tuples (0 when the phase
        /// has no measure).
        percent: f64,
    },
    /// Same columns, but not unique while it must be.
    NotUnique {
        /// The non-unique index's name.
        name: String,
    },
}

/// Reads the live state of every `expected` index in `schema`, in one query.
pub async fn index_statuses(
    db: &Db,
    schema: &str,
    expected: &[ExpectedIndex],
) -> Result<Vec<IndexStatus>, DbError> {
    let mut tables: Vec<String> = expected.iter().map(|index| index.table.clone()).collect();
    tables.sort();
    tables.dedup();
    let actual = index_match::actual_indexes(db, schema, &tables)
        .await
        .map_err(|err| err.into_db_error(db))?;
    Ok(expected
        .iter()
        .map(|index| IndexStatus {
            expected: index.clone(),
            state: live_state(index, &actual),
        })
        .collect())
}

/// Matches `expected` among `actual` as the probes do, and tells a build in progress apart
/// from a failed one.
pub fn live_state(expected: &ExpectedIndex, actual: &[ActualIndex]) -> IndexLiveState {
    match index_match::match_index(expected, actual) {
        IndexState::Present { name } => IndexLiveState::Present { name },
        IndexState::Missing => IndexLiveState::Missing,
        IndexState::NotUnique { name } => IndexLiveState::NotUnique { name },
        IndexState::Invalid { name, .. } => {
            let build = actual
                .iter()
                .find(|index| index.table_name == expected.table && index.index_name == name)
                .and_then(|index| Some((index.build_phase.clone()?, index.build_percent)));
            match build {
                Some((phase, percent)) => IndexLiveState::Building {
                    name,
                    phase,
                    percent: percent.unwrap_or(0.0),
                },
                None => IndexLiveState::Invalid { name },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(table: &str, columns: &[&str], unique: bool) -> ExpectedIndex {
        ExpectedIndex {
            table: table.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            unique,
            name: None,
        }
    }

    fn actual(
        name: &str,
        columns: &[&str],
        valid: bool,
        build: Option<(&str, f64)>,
    ) -> ActualIndex {
        ActualIndex {
            table_name: "Tag".to_string(),
            index_name: name.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            is_unique: false,
            is_valid: valid,
            is_ready: valid,
            is_partial: false,
            oid: 16_384,
            build_phase: build.map(|(phase, _)| phase.to_string()),
            build_percent: build.map(|(_, percent)| percent),
        }
    }

    #[test]
    fn a_not_valid_index_with_a_build_running_is_building() {
        let catalog = [actual(
            "Tag_createdAt_idx",
            &["createdAt"],
            false,
            Some(("building index: scanning table", 42.0)),
        )];
        assert_eq!(
            live_state(&expected("Tag", &["createdAt"], false), &catalog),
            IndexLiveState::Building {
                name: "Tag_createdAt_idx".to_string(),
                phase: "building index: scanning table".to_string(),
                percent: 42.0,
            }
        );
    }

    #[test]
    fn a_not_valid_index_without_a_build_is_invalid() {
        let catalog = [actual("Tag_createdAt_idx", &["createdAt"], false, None)];
        assert_eq!(
            live_state(&expected("Tag", &["createdAt"], false), &catalog),
            IndexLiveState::Invalid {
                name: "Tag_createdAt_idx".to_string()
            }
        );
    }

    #[test]
    fn a_valid_index_is_present_even_while_another_copy_builds() {
        let catalog = [
            actual("Tag_createdAt_idx", &["createdAt"], true, None),
            actual(
                "Tag_createdAt_idx_ccnew",
                &["createdAt"],
                false,
                Some(("x", 1.0)),
            ),
        ];
        assert_eq!(
            live_state(&expected("Tag", &["createdAt"], false), &catalog),
            IndexLiveState::Present {
                name: "Tag_createdAt_idx".to_string()
            }
        );
    }

    #[test]
    fn a_unique_expectation_met_by_a_plain_index_is_not_unique_and_none_is_missing() {
        let catalog = [actual("Tag_name_idx", &["name"], true, None)];
        assert_eq!(
            live_state(&expected("Tag", &["name"], true), &catalog),
            IndexLiveState::NotUnique {
                name: "Tag_name_idx".to_string()
            }
        );
        assert_eq!(
            live_state(&expected("Tag", &["id"], false), &catalog),
            IndexLiveState::Missing
        );
    }
}
