//! The lint's reports: text like a compiler's, JSON, and SARIF 2.1.0 (what code-review tools
//! read to annotate a diff).

use std::fmt::Write;

use serde_json::json;

use super::{FileReport, Severity, size_text};

/// Counts by severity over every file (parse errors count as errors).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Errors.
    pub error: usize,
    /// Warnings.
    pub warning: usize,
    /// Notes.
    pub note: usize,
}

/// The counts of `files`.
pub fn counts(files: &[FileReport]) -> Counts {
    let mut counts = Counts::default();
    for file in files {
        counts.error += file.parse_errors.len();
        for finding in &file.findings {
            match finding.severity {
                Severity::Error => counts.error += 1,
                Severity::Warning => counts.warning += 1,
                Severity::Note => counts.note += 1,
            }
        }
    }
    counts
}

/// `path:line:col: severity[rule]: message`, the line underlined, then the lock, the size and
/// the fix; notes only with `notes`.
pub fn text(files: &[FileReport], notes: bool) -> String {
    let mut out = String::new();
    for file in files {
        let lines: Vec<&str> = file.text.lines().collect();
        for error in &file.parse_errors {
            let _ = writeln!(
                out,
                "{}:{}:{}: error[syntax]: {}",
                file.path, error.line, error.column, error.message
            );
        }
        for finding in &file.findings {
            if finding.severity == Severity::Note && !notes {
                continue;
            }
            let _ = writeln!(
                out,
                "{}:{}:{}: {}[{}]: {}",
                file.path,
                finding.line,
                finding.column,
                finding.severity.as_str(),
                finding.rule,
                finding.message
            );
            if let Some(source) = lines.get(finding.line.saturating_sub(1)) {
                let number = finding.line.to_string();
                let pad = " ".repeat(number.len());
                let width = if finding.end_line == finding.line {
                    finding.end_column.saturating_sub(finding.column).max(1)
                } else {
                    source
                        .chars()
                        .count()
                        .saturating_sub(finding.column - 1)
                        .max(1)
                };
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{number} | {source}");
                let _ = writeln!(
                    out,
                    "{pad} | {}{}",
                    " ".repeat(finding.column - 1),
                    "^".repeat(width)
                );
                if let Some(statement) = finding.statement.and_then(|i| file.statements.get(i)) {
                    for lock in &statement.locks {
                        let _ = writeln!(
                            out,
                            "{pad} = lock: {} on {} ({}): blocks {}",
                            lock.mode,
                            lock.table,
                            size_text(lock),
                            lock.mode.blocks()
                        );
                    }
                    let mut work = Vec::new();
                    if statement.rewrite {
                        work.push("rewrites the table");
                    }
                    if statement.scan {
                        work.push("reads every row while it holds the lock");
                    }
                    if !work.is_empty() {
                        let _ = writeln!(out, "{pad} = it {}", work.join(" and "));
                    }
                }
                let _ = writeln!(
                    out,
                    "{pad} = {}: {}",
                    finding.severity.as_str(),
                    finding.grade
                );
                if let Some(fix) = &finding.fix {
                    let _ = writeln!(out, "{pad} = instead: {fix}");
                }
                out.push('\n');
            }
        }
    }
    let c = counts(files);
    let _ = writeln!(
        out,
        "{} file(s): {} error(s), {} warning(s), {} note(s){}",
        files.len(),
        c.error,
        c.warning,
        c.note,
        if notes || c.note == 0 {
            ""
        } else {
            " (--notes shows them)"
        }
    );
    out
}

/// One JSON object: the files with their findings and statements, and the counts.
pub fn json(files: &[FileReport]) -> String {
    serde_json::to_string_pretty(&json!({
        "files": files,
        "summary": counts(files),
    }))
    .unwrap_or_default()
}

/// SARIF 2.1.0: one run of the tool `cutover`, one result per finding and parse error.
pub fn sarif(files: &[FileReport]) -> String {
    let level = |severity: Severity| match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    };
    let mut rules: Vec<String> = files
        .iter()
        .flat_map(|f| f.findings.iter().map(|x| x.rule.clone()))
        .collect();
    if files.iter().any(|f| !f.parse_errors.is_empty()) {
        rules.push("syntax".to_string());
    }
    rules.sort();
    rules.dedup();
    let mut results = Vec::new();
    for file in files {
        for error in &file.parse_errors {
            results.push(json!({
                "ruleId": "syntax",
                "level": "error",
                "message": { "text": error.message },
                "locations": [{ "physicalLocation": {
                    "artifactLocation": { "uri": file.path },
                    "region": { "startLine": error.line, "startColumn": error.column }
                }}]
            }));
        }
        for finding in &file.findings {
            let mut text = format!("{} ({})", finding.message, finding.grade);
            if let Some(fix) = &finding.fix {
                text.push_str(&format!(" Instead: {fix}"));
            }
            results.push(json!({
                "ruleId": finding.rule,
                "level": level(finding.severity),
                "message": { "text": text },
                "locations": [{ "physicalLocation": {
                    "artifactLocation": { "uri": file.path },
                    "region": {
                        "startLine": finding.line,
                        "startColumn": finding.column,
                        "endLine": finding.end_line,
                        "endColumn": finding.end_column
                    }
                }}]
            }));
        }
    }
    serde_json::to_string_pretty(&json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": { "driver": {
                "name": "cutover",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/",
                "rules": rules.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>()
            }},
            "results": results
        }]
    }))
    .unwrap_or_default()
}
