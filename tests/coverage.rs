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
