//! Numbers from PostgreSQL decode safely whatever their type: an expectation on an int2, int4,
//! int8, numeric (of any size), float, bool or text value passes or fails, and never errs.

mod common;

use common::*;
use cutover::outcome::Status;

/// One SQL step per (value, expectation), all in one runbook.
const CASES: &[(&str, &str, Status)] = &[
    ("5::int2", "{ at_least = 5 }", Status::Pass),
    ("5::int4", "{ at_most = 4 }", Status::Fail),
    (
        "9223372036854775807::int8",
        "{ at_least = 1 }",
        Status::Pass,
    ),
    ("5::numeric", "{ equals = 5 }", Status::Pass),
    (
        "123456789012345678901234567890.5::numeric",
        "{ at_least = 1 }",
        Status::Pass,
    ),
    (
        "-123456789012345678901234567890::numeric",
        "{ at_least = 0 }",
        Status::Fail,
    ),
    ("2.5::float4", "{ at_most = 2.5 }", Status::Pass),
    ("'Infinity'::float8", "{ at_most = 100 }", Status::Fail),
    ("'NaN'::numeric", "{ at_least = 0 }", Status::Fail),
    ("'42'::text", "{ at_least = 42 }", Status::Pass),
    ("true", "{ at_least = 1 }", Status::Pass),
    ("false", "{ equals = true }", Status::Fail),
    ("count(*) FROM \"Tag\"", "{ equals = 40 }", Status::Pass),
    (
        "sum(length(name))::numeric FROM \"Tag\"",
        "{ at_least = 1 }",
        Status::Pass,
    ),
    (
        "avg(\"summariesLimit\") FROM \"User\"",
        "{ at_least = 0 }",
        Status::Pass,
    ),
];

#[test]
fn every_numeric_type_is_compared_and_none_errs() {
    let url = fresh_database();
    let mut text = String::from("name = \"numbers\"\n[[sections]]\nid = \"n\"\ntitle = \"N\"\n");
    for (i, (value, expect, _)) in CASES.iter().enumerate() {
        text.push_str(&format!(
            "[[sections.steps]]\nid = \"c{i}\"\ntitle = \"{i}\"\nkind = \"sql\"\nexpect = {expect}\nquery = '''SELECT {value}'''\n"
        ));
    }
    let report = block_on(check_with(runbook_from(&text), &url, Default::default()));
    for (i, (value, expect, status)) in CASES.iter().enumerate() {
        let step = report
            .steps
            .iter()
            .find(|s| s.id == format!("n.c{i}"))
            .unwrap();
        assert_eq!(
            step.status, *status,
            "SELECT {value} with {expect}: {}",
            step.message
        );
    }
}
