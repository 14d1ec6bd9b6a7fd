//! The README's table of the source checklist's lines names real steps of the bundled runbook.

use cutover::probes::Catalog;
use cutover::runbook;

const README: &str = include_str!("../README.md");

/// The rows of the coverage table: (checklist line, step ids named in it).
fn coverage_rows() -> Vec<(String, Vec<String>)> {
    let start = README
        .find("<!-- checklist-coverage -->")
        .expect("the README has the coverage table");
    let end = README
        .find("<!-- /checklist-coverage -->")
        .expect("the coverage table ends");
    README[start..end]
        .lines()
        .filter(|line| line.starts_with("| ") && !line.starts_with("| checklist line"))
        .filter(|line| !line.starts_with("| ---"))
        .map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let steps = cells.last().copied().unwrap_or_default();
            let ids = steps
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|id| {
                    id.contains('.')
                        && !id.contains(' ')
                        && !id.starts_with("{{")
                        && !id.contains('*')
                })
                .map(str::to_string)
                .collect();
            (cells[0].trim_start_matches("| ").to_string(), ids)
        })
        .collect()
}

#[test]
fn every_step_id_in_the_readmes_checklist_table_exists() {
    let bundled = runbook::bundled(&Catalog).unwrap();
    let rows = coverage_rows();
    assert!(rows.len() >= 70, "{} rows", rows.len());
    for (line, ids) in &rows {
        assert!(!ids.is_empty(), "no step for checklist line `{line}`");
        for id in ids {
            assert!(
                bundled.step(id).is_some(),
                "`{id}` (for `{line}`) is not a step of the bundled runbook"
            );
        }
    }
}

#[test]
fn the_four_sign_offs_and_the_checklists_tables_are_covered() {
    let rows = coverage_rows();
    let named: Vec<&String> = rows.iter().flat_map(|(_, ids)| ids).collect();
    for id in [
        "golive.signoff_engineering_lead",
        "golive.signoff_devops",
        "golive.signoff_security",
        "golive.signoff_load_testing",
        "tables.required",
        "tables.progress",
        "performance.indexes",
        "rollback.stop_app",
        "rollback.start_app",
        "verify.validate_database",
        "verify.api_surfaces",
    ] {
        assert!(named.iter().any(|n| *n == id), "{id} is not in the table");
    }
}

/// The checklist's tables and the columns it names (with the two its performance indexes need).
const CHECKLIST_NAMES: &[&str] = &[
    "User",
    "Summary",
    "ShareLink",
    "UsageEvent",
    "Category",
    "Tag",
    "Progress",
    "id",
    "email",
    "plan",
    "summariesLimit",
    "userId",
    "videoId",
    "content",
    "keyMoments",
    "flashcards",
    "quizQuestions",
    "glossary",
    "tools",
    "resources",
    "uploadDate",
    "isFavorite",
    "slug",
    "summaryId",
    "eventType",
    "createdAt",
    "name",
    "type",
    "taskId",
    "data",
    "expiresAt",
];

#[test]
fn the_bundled_runbooks_queries_name_only_the_checklists_tables_and_columns() {
    let bundled = runbook::bundled(&Catalog).unwrap();
    for step in bundled.steps() {
        let mut texts: Vec<String> = Vec::new();
        match &step.action {
            runbook::Action::Sql { query, .. } => texts.push(query.clone()),
            runbook::Action::Probe { params, .. } => {
                for query in params["queries"].as_array().into_iter().flatten() {
                    for field in ["sql", "params_from"] {
                        if let Some(text) = query[field].as_str() {
                            texts.push(text.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
        for text in texts {
            // Quoted identifiers are the app's (catalog names are lower case, unquoted);
            // `AS "alias"` names an output column.
            let mut rest = text.as_str();
            while let Some(open) = rest.find('"') {
                let after = &rest[open + 1..];
                let Some(close) = after.find('"') else { break };
                let name = &after[..close];
                let alias = rest[..open]
                    .trim_end()
                    .to_ascii_uppercase()
                    .ends_with(" AS");
                assert!(
                    alias || CHECKLIST_NAMES.contains(&name),
                    "{}: \"{name}\" is not a table or column of the checklist",
                    step.id
                );
                rest = &after[close + 1..];
            }
        }
    }
}
