//! `{{variable}}` templates in commands, SQL and URLs.

use std::collections::BTreeMap;

/// Names mentioned as `{{name}}` in `text`, in order (repeats included).
pub fn names_in(text: &str) -> Vec<String> {
    placeholders(text)
        .map(|(_, _, name)| name.to_string())
        .collect()
}

/// Yields `(start, end, name)` for every `{{ name }}` in `text`.
fn placeholders(text: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    let mut from = 0;
    std::iter::from_fn(move || {
        loop {
            let open = from + text[from..].find("{{")?;
            let close = open + 2 + text[open + 2..].find("}}")?;
            from = close + 2;
            let name = text[open + 2..close].trim();
            if is_name(name) {
                return Some((open, close + 2, name));
            }
        }
    })
}

/// A variable name: letters, digits and underscores, not starting with a digit.
pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// How a value is written into the text it is substituted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// As is (URLs, working directories, environment values).
    Verbatim,
    /// Single-quoted for `sh` unless it is made only of characters the shell leaves alone.
    Shell,
    /// As a SQL string literal (`'it''s'`).
    SqlLiteral,
}

/// Replaces every `{{name}}` by its value; the error names the first variable without one.
pub fn substitute(
    text: &str,
    values: &BTreeMap<String, String>,
    quoting: Quoting,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end, name) in placeholders(text) {
        let value = values.get(name).ok_or_else(|| name.to_string())?;
        out.push_str(&text[last..start]);
        out.push_str(&quote(value, quoting));
        last = end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// `value` written as `quoting` says.
pub fn quote(value: &str, quoting: Quoting) -> String {
    match quoting {
        Quoting::Verbatim => value.to_string(),
        // As quote_literal() does: with a backslash, an E'' string with it doubled, so the
        // literal stays closed whatever standard_conforming_strings says.
        Quoting::SqlLiteral if value.contains('\\') => {
            format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
        }
        Quoting::SqlLiteral => format!("'{}'", value.replace('\'', "''")),
        Quoting::Shell => {
            let plain = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c));
            if plain {
                value.to_string()
            } else {
                format!("'{}'", value.replace('\'', r"'\''"))
            }
        }
    }
}

/// Substitutes every string inside a probe's JSON parameters (verbatim); the error names the
/// first variable without a value.
pub fn substitute_json(
    value: &serde_json::Value,
    values: &BTreeMap<String, String>,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match value {
        Value::String(text) => Value::String(substitute(text, values, Quoting::Verbatim)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| substitute_json(v, values))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), substitute_json(v, values)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn finds_names_and_ignores_braces_that_are_not_names() {
        assert_eq!(
            names_in("a {{ one }} b {{two}} {{ not a name }} {{}}"),
            vec!["one", "two"]
        );
    }

    #[test]
    fn substitutes_with_shell_quoting_only_where_needed() {
        let vals = values(&[("dir", "backups/2026"), ("note", "it's here")]);
        assert_eq!(
            substitute("ls {{dir}} {{ note }}", &vals, Quoting::Shell).unwrap(),
            r"ls backups/2026 'it'\''s here'"
        );
    }

    #[test]
    fn substitutes_sql_literals_with_doubled_quotes() {
        let vals = values(&[("slug", "o'brien")]);
        assert_eq!(
            substitute("where slug = {{slug}}", &vals, Quoting::SqlLiteral).unwrap(),
            "where slug = 'o''brien'"
        );
    }

    #[test]
    fn backslashes_cannot_close_a_sql_literal() {
        let vals = values(&[("v", r"a\'; DROP TABLE t; --")]);
        assert_eq!(
            substitute("{{v}}", &vals, Quoting::SqlLiteral).unwrap(),
            r"E'a\\''; DROP TABLE t; --'"
        );
    }

    #[test]
    fn names_the_first_missing_variable() {
        assert_eq!(
            substitute("{{a}} {{b}}", &values(&[("a", "1")]), Quoting::Verbatim),
            Err("b".to_string())
        );
    }
}
