//! The one redaction function. Every line of step output and every step message and detail
//! goes through it in the engine, before anything shows, journals or exports it: the target's
//! password (as typed in the URL, decoded, and percent-encoded), the values of secret-looking
//! variables (the runbook's, the step's environment, this process's environment, which a child
//! inherits), and the password of any URL or `password=` parameter in the text.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::target::{Target, redact_url};

/// What replaces a secret.
pub const MASK: &str = "***";

/// Values shorter than this are masked only where they stand as a URL's password: a
/// one-letter value masked everywhere would blank out the output itself.
const MIN_SECRET_CHARS: usize = 4;

/// Whether a variable's name says it holds a secret (password, secret, token, key, ...).
pub fn looks_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "access_key",
        "private_key",
        "credential",
    ]
    .iter()
    .any(|word| lower.contains(word))
}

/// The secrets of one run, and the function that masks them.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is masked whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// Masks these values (and any URL password).
    pub fn new(values: impl IntoIterator<Item = String>) -> Redactor {
        let mut redactor = Redactor::default();
        redactor.add(values);
        redactor
    }

    /// The target's password in every spelling, and the secret-looking variables of this
    /// process's environment.
    pub fn for_target(target: &Target) -> Redactor {
        let mut values: Vec<String> = Vec::new();
        if let Some(password) = target.child_env().get("PGPASSWORD") {
            values.extend(spellings(password));
        }
        if let Some(typed) = target.password_as_typed() {
            values.push(typed);
        }
        values.extend(
            std::env::vars()
                .filter(|(name, _)| looks_secret(name))
                .map(|(_, value)| value),
        );
        Redactor::new(values)
    }

    /// Adds values to mask.
    pub fn add(&mut self, values: impl IntoIterator<Item = String>) {
        for value in values {
            let value = value.trim().to_string();
            if value.chars().count() >= MIN_SECRET_CHARS && !self.secrets.contains(&value) {
                self.secrets.push(value);
            }
        }
        self.secrets
            .sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    }

    /// Adds the values of the secret-looking entries of `variables` (`is_secret` decides).
    pub fn add_secret_variables(
        &mut self,
        variables: &BTreeMap<String, String>,
        is_secret: impl Fn(&str) -> bool,
    ) {
        self.add(
            variables
                .iter()
                .filter(|(name, _)| is_secret(name))
                .map(|(_, value)| value.clone()),
        );
    }

    /// `text` with every secret masked.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out: Cow<'t, str> = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
        if may_hold_url_password(&out) {
            out = Cow::Owned(redact_urls(&out));
        }
        out
    }

    /// [`Redactor::redact`] on each line of `text` (lines end with `\n`): a chunk of output.
    /// A chunk with nothing to mask, the usual case, is looked at once and not copied.
    pub fn redact_lines<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let clean = !may_hold_url_password(text)
            && !self
                .secrets
                .iter()
                .any(|secret| memchr::memmem::find(text.as_bytes(), secret.as_bytes()).is_some());
        if clean {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let (body, end) = match line.strip_suffix('\n') {
                Some(body) => (body, "\n"),
                None => (line, ""),
            };
            out.push_str(&self.redact(body));
            out.push_str(end);
        }
        Cow::Owned(out)
    }
}

/// Whether `text` has a URL or a `password=` parameter (any case) in it, without copying it.
fn may_hold_url_password(text: &str) -> bool {
    memchr::memmem::find(text.as_bytes(), b"://").is_some() || has_password_param(text)
}

/// Whether `text` has `password=` in it, in any case, without copying it.
fn has_password_param(text: &str) -> bool {
    const PARAM: &[u8] = b"password=";
    let bytes = text.as_bytes();
    memchr::memchr2_iter(b'p', b'P', bytes).any(|at| {
        bytes
            .get(at..at + PARAM.len())
            .is_some_and(|word| word.eq_ignore_ascii_case(PARAM))
    })
}

/// A password as it may appear in output: decoded, form-encoded (`+` for a space) and
/// percent-encoded in full.
fn spellings(password: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(password.as_bytes()).collect();
    let percent: String = password
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect();
    vec![password.to_string(), form, percent]
}

/// [`redact_url`] on every URL of a line, not only the first.
fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The URL starts at its scheme: the run of letters, digits and +.- before `://`.
        let scheme_start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map(|i| i + 1)
            .unwrap_or(0);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || "\"'<>`".contains(c))
            .map(|i| at + i)
            .unwrap_or(rest.len());
        out.push_str(&rest[..scheme_start]);
        out.push_str(&redact_url(&rest[scheme_start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    if has_password_param(&out) {
        redact_url(&out)
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_spelling_of_a_secret_and_every_url_password() {
        let redactor = Redactor::new(spellings("p@ss w0rd!"));
        assert_eq!(redactor.redact("pw is p@ss w0rd!"), "pw is ***");
        assert_eq!(redactor.redact("form p%40ss+w0rd%21"), "form ***");
        assert_eq!(redactor.redact("pct p%40ss%20w0rd%21"), "pct ***");
        assert_eq!(
            redactor.redact("a postgres://u:other@h/db and mysql://x:y@z/w"),
            "a postgres://u:***@h/db and mysql://x:***@z/w"
        );
        assert_eq!(
            redactor.redact("host=h password=hunter2 user=u"),
            "host=h password=*** user=u"
        );
        assert_eq!(redactor.redact("nothing here"), "nothing here");
    }

    #[test]
    fn a_chunk_is_masked_line_by_line_and_left_alone_when_clean() {
        let redactor = Redactor::new(["hunter22".to_string()]);
        let clean = "one\ntwo\n";
        assert!(matches!(redactor.redact_lines(clean), Cow::Borrowed(_)));
        assert_eq!(
            redactor.redact_lines("a hunter22\nb x y\nc postgres://u:p@h/d\n"),
            "a ***\nb x y\nc postgres://u:***@h/d\n"
        );
        assert_eq!(
            redactor.redact_lines("host=h password=hunter2 user=u\nnext\n"),
            "host=h password=*** user=u\nnext\n"
        );
    }

    #[test]
    fn short_values_are_left_to_the_url_rule() {
        let redactor = Redactor::new(["pw".to_string()]);
        assert_eq!(redactor.redact("pwd is a command"), "pwd is a command");
    }
}
