//! The runbook format: the bundled runbook keeps its contract, and every kind of mistake in a
//! runbook file is reported at its line and column.

use cutover::probes::Catalog;
use cutover::runbook::{self, Kind, RunbookError, Severity};

fn problems(text: &str) -> Vec<String> {
    match runbook::load_str(text, "rb.toml", &Catalog) {
        Ok(_) => panic!("expected the runbook to be rejected"),
        Err(RunbookError::Invalid { diagnostics, .. }) => {
            diagnostics.iter().map(|d| d.to_string()).collect()
        }
        Err(other) => panic!("unexpected error {other}"),
    }
}

const HEAD: &str = "name = \"t\"\n[[sections]]\nid = \"s\"\ntitle = \"S\"\n";

#[test]
fn the_bundled_runbook_has_the_contract_sections_in_order() {
    let runbook = runbook::bundled(&Catalog).unwrap();
    let ids: Vec<&str> = runbook.sections.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "environment",
            "backup",
            "review",
            "baseline",
            "apply",
            "verify",
            "tables",
            "performance",
            "rollback",
            "validation",
            "monitoring",
            "golive"
        ]
    );
}

#[test]
fn the_bundled_runbook_has_every_contract_step() {
    let runbook = runbook::bundled(&Catalog).unwrap();
    let probes = [
        ("environment.connection", "connection"),
        ("environment.tls", "tls"),
        ("environment.pool", "pool"),
        ("environment.replica", "replica"),
        ("backup.pitr", "pitr"),
        ("tables.required", "tables"),
        ("tables.progress", "tables"),
        ("performance.indexes", "indexes"),
        ("performance.invalid", "invalid_indexes"),
        ("validation.fk_valid", "fk_valid"),
        ("validation.blocking", "blocking"),
    ];
    for (id, probe) in probes {
        let step = runbook.step(id).unwrap_or_else(|| panic!("{id} missing"));
        match &step.action {
            runbook::Action::Probe { probe: name, .. } => assert_eq!(name, probe, "{id}"),
            other => panic!("{id} is {other:?}"),
        }
    }
    for id in [
        "review.lint",
        "verify.status",
        "validation.row_counts",
        "validation.orphans",
        "validation.unique",
        "validation.query_latency",
    ] {
        assert!(runbook.step(id).is_some(), "{id} missing");
    }
    assert_eq!(
        runbook.step("environment.replica").unwrap().severity,
        Severity::Optional
    );
    assert_eq!(
        runbook.step("tables.progress").unwrap().severity,
        Severity::Optional
    );
    // The checklist's four sign-offs, exactly.
    let roles: Vec<&str> = runbook
        .steps()
        .filter_map(|s| match &s.action {
            runbook::Action::Signoff { role } => Some(role.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        roles,
        [
            "Engineering lead",
            "DevOps",
            "Security review",
            "Load testing"
        ]
    );
    assert_eq!(
        Kind::Signoff,
        runbook.step("golive.signoff_devops").unwrap().kind()
    );
}

#[test]
fn the_bundled_runbooks_thresholds_are_the_checklists() {
    let runbook = runbook::bundled(&Catalog).unwrap();
    let t = &runbook.thresholds;
    assert_eq!(
        (t.p95_latency_ms, t.p99_latency_ms, t.p95_alert_ms),
        (200.0, 500.0, 500.0)
    );
    assert_eq!(
        (t.connections_warn_pct, t.connections_crit_pct),
        (80.0, 90.0)
    );
    assert_eq!((t.storage_warn_pct, t.storage_alert_pct), (80.0, 90.0));
    assert_eq!(t.connection_wait_ms, 100.0);
    assert_eq!((t.connection_error_pct, t.query_error_pct), (0.1, 0.01));
    assert_eq!(t.query_latency_ms, 100.0);
    assert_eq!(*t, runbook::Thresholds::default());
}

#[test]
fn the_bundled_runbook_explains_the_three_corrections_of_the_checklist() {
    let runbook = runbook::bundled(&Catalog).unwrap();
    let help: String = runbook
        .steps()
        .map(|s| s.help.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(help.contains("mkdir"), "mkdir before the redirect");
    assert!(
        help.contains("pg_restore reads only"),
        "pg_restore needs an archive"
    );
    assert!(help.contains("connection_limit"), "pool size in the URL");
}

#[test]
fn shell_steps_of_the_bundled_runbook_keep_the_url_out_of_argv() {
    let runbook = runbook::bundled(&Catalog).unwrap();
    for step in runbook.steps() {
        if let runbook::Action::Shell(shell) = &step.action {
            assert!(!shell.command.contains("postgres://"), "{}", step.id);
            // The URL may be inspected inside the shell (`case "$DATABASE_URL" in`), never
            // handed to a program as an argument or printed.
            let expands_url =
                |l: &&str| l.contains("$DATABASE_URL") || l.contains("${DATABASE_URL");
            for line in shell.command.lines().filter(expands_url) {
                let trimmed = line.trim_start();
                assert!(trimmed.starts_with("case "), "{}: {line}", step.id);
            }
        }
    }
    // The deploy is native, and asks for the typed confirmation like a destructive shell step.
    let deploy = runbook.step("apply.deploy").unwrap();
    assert!(
        matches!(&deploy.action, runbook::Action::Migrate(m) if m.op == runbook::MigrateOp::Deploy)
    );
    assert!(cutover::engine::plan::is_destructive(deploy));
}

#[test]
fn a_syntax_error_points_at_its_line_and_column() {
    let found = problems("name = \"t\"\n[[sections]]\nid = \"s\"\ntitle = \"S\n");
    assert!(found[0].starts_with("4:"), "{found:?}");
}

#[test]
fn an_unknown_field_is_named_with_its_position() {
    let found = problems(&format!(
        "{HEAD}[[sections.steps]]\nid = \"x\"\ntitle = \"X\"\nkind = \"manual\"\nseverty = \"optional\"\n"
    ));
    assert!(
        found[0].starts_with("9:1: unknown field `severty`"),
        "{found:?}"
    );
}

#[test]
fn an_unknown_kind_is_named() {
    let found = problems(&format!(
        "{HEAD}[[sections.steps]]\nid = \"x\"\ntitle = \"X\"\nkind = \"script\"\n"
    ));
    assert!(
        found[0].starts_with("8:8: unknown variant `script`"),
        "{found:?}"
    );
}

#[test]
fn duplicate_ids_are_rejected() {
    let step = "[[sections.steps]]\nid = \"x\"\ntitle = \"X\"\nkind = \"manual\"\n";
    let found = problems(&format!("{HEAD}{step}{step}"));
    assert_eq!(
        found,
        ["10:6: duplicate step id `s.x` (ids must be unique within a section)"]
    );
    let found = problems(&format!("{HEAD}[[sections]]\nid = \"s\"\ntitle = \"S\"\n"));
    assert!(found[0].contains("duplicate section id `s`"), "{found:?}");
}

#[test]
fn fields_of_another_kind_and_missing_fields_are_reported() {
    let found = problems(&format!(
        "{HEAD}[[sections.steps]]\nid = \"x\"\ntitle = \"X\"\nkind = \"sql\"\ncommand = \"ls\"\n"
    ));
    assert!(
        found
            .iter()
            .any(|p| p.contains("field `command` belongs to `shell` steps, not `sql`")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("of kind `sql` needs `query`")),
        "{found:?}"
    );
}

#[test]
fn an_undeclared_variable_is_reported() {
    let found = problems(&format!(
        "{HEAD}[[sections.steps]]\nid = \"x\"\ntitle = \"X\"\nkind = \"shell\"\ncommand = \"ls {{{{dir}}}}\"\n"
    ));
    assert!(
        found[0].contains("uses variable `{{dir}}`, which is not declared"),
        "{found:?}"
    );
}

#[test]
fn a_dependency_on_a_later_or_unknown_step_is_reported() {
    let found = problems(&format!(
        "{HEAD}[[sections.steps]]\nid = \"a\"\ntitle = \"A\"\nkind = \"manual\"\ndepends_on = [\"b\"]\n[[sections.steps]]\nid = \"b\"\ntitle = \"B\"\nkind = \"manual\"\n"
    ));
    assert!(
        found[0].starts_with("9:15: `s.a` depends on `s.b`, which is not an earlier step"),
        "{found:?}"
    );
}

#[test]
fn a_sql_step_must_be_a_single_read_only_statement() {
    let found = problems(&format!(
        "{HEAD}[[sections.steps]]\nid = \"x\"\ntitle = \"X\"\nkind = \"sql\"\nquery = \"DELETE FROM t\"\n"
    ));
    assert!(
        found[0].contains("must be one SELECT, WITH or VALUES statement"),
        "{found:?}"
    );
    let found = problems(&format!(
        "{HEAD}[[sections.steps]]\nid = \"x\"\ntitle = \"X\"\nkind = \"sql\"\nquery = \"SELECT 1; DROP TABLE t\"\n"
    ));
    assert!(found[0].contains("must be one SELECT"), "{found:?}");
}

#[test]
fn probe_parameters_are_checked_against_the_probe() {
    let found = problems(&format!(
        "{HEAD}[[sections.steps]]\nid = \"x\"\ntitle = \"X\"\nkind = \"probe\"\nprobe = \"pool\"\nparams = {{ pool_sise = 25 }}\n"
    ));
    assert!(
        found[0].starts_with("10:10: step `s.x`: bad probe params: unknown field `pool_sise`"),
        "{found:?}"
    );
}

#[test]
fn a_missing_file_says_which_and_what_to_do() {
    let err =
        runbook::load_file(std::path::Path::new("/nonexistent/rb.toml"), &Catalog).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("cannot read runbook /nonexistent/rb.toml:"),
        "{text}"
    );
    assert!(text.contains("omit --runbook"), "{text}");
}

#[test]
fn a_valid_runbook_loads_with_defaults() {
    let runbook = runbook::load_str(
        &format!("{HEAD}[[sections.steps]]\nid = \"x\"\ntitle = \"X\"\nkind = \"sql\"\nquery = \"SELECT 1 WHERE false;\"\n"),
        "rb.toml",
        &Catalog,
    )
    .unwrap();
    let step = runbook.step("s.x").unwrap();
    assert_eq!(step.severity, Severity::Required);
    match &step.action {
        runbook::Action::Sql { query, expect } => {
            assert_eq!(query, "SELECT 1 WHERE false");
            assert_eq!(expect, &runbook::Expectation::NoRows);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(runbook.thresholds, runbook::Thresholds::default());
}

#[test]
fn a_sql_bound_may_name_a_threshold_and_follows_it() {
    let bundled = runbook::bundled(&Catalog).unwrap();
    let at_most = |runbook: &runbook::Runbook, id: &str| match &runbook.step(id).unwrap().action {
        runbook::Action::Sql {
            expect: runbook::Expectation::AtMost(bound),
            ..
        } => *bound,
        other => panic!("{id} is {other:?}"),
    };
    assert_eq!(at_most(&bundled, "monitoring.connections"), 80.0);
    assert_eq!(at_most(&bundled, "monitoring.connection_wait"), 100.0);
    assert_eq!(at_most(&bundled, "monitoring.storage"), 80.0);

    let text = "name = \"t\"\n[thresholds]\nconnections_warn_pct = 70\n[[sections]]\nid = \"s\"\ntitle = \"S\"\n[[sections.steps]]\nid = \"c\"\ntitle = \"C\"\nkind = \"sql\"\nquery = \"SELECT 1\"\nexpect = { at_most_threshold = \"connections_warn_pct\" }\n";
    let own = runbook::load_str(text, "rb.toml", &Catalog).unwrap();
    assert_eq!(at_most(&own, "s.c"), 70.0);

    let found = problems(&text.replace("\"connections_warn_pct\" }", "\"connection_warn_pct\" }"));
    assert!(
        found[0].starts_with("12:10: unknown threshold `connection_warn_pct`")
            && found[0].contains("connections_warn_pct"),
        "{found:?}"
    );
}

#[test]
fn migrate_steps_are_checked_with_their_positions() {
    let step = |body: &str| {
        format!("{HEAD}[[sections.steps]]\nid = \"m\"\ntitle = \"M\"\nkind = \"migrate\"\n{body}")
    };
    // The action is required, and must be one of the four.
    let found = problems(&step(""));
    assert!(found[0].contains("needs `migrate`"), "{found:?}");
    let found = problems(&step("migrate = \"apply\"\n"));
    assert!(found[0].starts_with("9:11:"), "{found:?}");
    assert!(found[0].contains("resolve_rolled_back"), "{found:?}");
    // Resolving needs a name; a deploy takes none.
    let found = problems(&step("migrate = \"resolve_applied\"\n"));
    assert!(found[0].contains("needs `migration`"), "{found:?}");
    let found = problems(&step("migrate = \"deploy\"\nmigration = \"0_init\"\n"));
    assert!(found[0].starts_with("10:13:"), "{found:?}");
    // The deploy's own settings belong to a deploy; seconds are bounded.
    let found = problems(&step("migrate = \"baseline\"\nretries = 2\n"));
    assert!(
        found[0].contains("`retries` belongs to `migrate = \"deploy\"`"),
        "{found:?}"
    );
    let found = problems(&step("migrate = \"deploy\"\nlock_timeout_secs = -1\n"));
    assert!(
        found[0].contains("`lock_timeout_secs` must be"),
        "{found:?}"
    );
    // Another kind's field, and a migrate field on another kind.
    let found = problems(&step("migrate = \"deploy\"\ncommand = \"x\"\n"));
    assert!(
        found[0].contains("field `command` belongs to `shell`"),
        "{found:?}"
    );
    let found = problems(&format!(
        "{HEAD}[[sections.steps]]\nid = \"m\"\ntitle = \"M\"\nkind = \"manual\"\nmigrations = \"x\"\n"
    ));
    assert!(
        found[0].contains("field `migrations` belongs to `migrate`"),
        "{found:?}"
    );

    // A valid one: defaults filled in, and it is destructive.
    let runbook =
        runbook::load_str(&step("migrate = \"baseline\"\n"), "rb.toml", &Catalog).unwrap();
    let baseline = runbook.step("s.m").unwrap();
    let runbook::Action::Migrate(action) = &baseline.action else {
        panic!("{:?}", baseline.action)
    };
    assert_eq!(action.migration.as_deref(), Some("0_init"));
    assert_eq!(action.migrations, "prisma/migrations");
    assert_eq!(action.lock_wait, std::time::Duration::from_secs(10));
    assert!(cutover::engine::plan::is_destructive(baseline));
}
