//! Which database to work on: `--database-url`, else `DATABASE_URL` (also from `.env`), else the
//! libpq `PG*` variables; and the one redaction function every printer uses.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// Query parameters Prisma puts in its URLs that mean nothing to libpq; removed before
/// connecting (and still passed to Prisma in the child's `DATABASE_URL`).
const PRISMA_PARAMS: &[&str] = &[
    "schema",
    "connection_limit",
    "pool_timeout",
    "pgbouncer",
    "connect_timeout",
    "socket_timeout",
    "sslaccept",
    "sslidentity",
    "sslpassword",
    "statement_cache_size",
    "single_use_connections",
];

/// Why no target could be made.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Nothing says which database to use.
    #[error(
        "no target database: pass --database-url, set DATABASE_URL (or put it in .env), or set PGHOST/PGUSER/PGDATABASE"
    )]
    Missing,
    /// The URL does not parse.
    #[error(
        "invalid database URL `{redacted}`: {reason} (expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE)"
    )]
    InvalidUrl {
        /// The URL with its password masked.
        redacted: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `.env` exists but cannot be read.
    #[error("cannot read .env: {0} (fix the file or pass --database-url)")]
    DotEnv(String),
}

/// The database a run is about. Holds the password; its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Target {
    options: PgConnectOptions,
    /// URL handed to children as `DATABASE_URL` (may hold the password).
    child_url: String,
    /// Redacted URL, safe to print.
    display: String,
    /// The Prisma `schema` parameter, or `public`.
    schema: String,
    /// Prisma's `connect_timeout`, in seconds, when given.
    connect_timeout: Option<Duration>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.display)
            .finish()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl Target {
    /// Resolves the target from the flag, the environment, `.env` in `workdir`, then `PG*`.
    pub fn resolve(flag: Option<&str>, workdir: &Path) -> Result<Target, TargetError> {
        if let Some(url) = flag {
            return Target::from_url(url);
        }
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.trim().is_empty()
        {
            return Target::from_url(&url);
        }
        let dotenv = workdir.join(".env");
        if dotenv.exists() {
            let entries =
                dotenvy::from_path_iter(&dotenv).map_err(|e| TargetError::DotEnv(e.to_string()))?;
            for entry in entries {
                let (key, value) = entry.map_err(|e| TargetError::DotEnv(e.to_string()))?;
                if key == "DATABASE_URL" && !value.trim().is_empty() {
                    return Target::from_url(&value);
                }
            }
        }
        let libpq_set = ["PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
        if libpq_set {
            return Ok(Target::from_options(PgConnectOptions::new()));
        }
        Err(TargetError::Missing)
    }

    /// Parses a `postgres://` or `postgresql://` URL (Prisma's parameters allowed).
    pub fn from_url(raw: &str) -> Result<Target, TargetError> {
        let raw = raw.trim();
        let invalid = |reason: String| TargetError::InvalidUrl {
            redacted: redact_url(raw),
            reason,
        };
        let parsed = url::Url::parse(raw).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(invalid(format!(
                "scheme `{}` is not postgres or postgresql",
                parsed.scheme()
            )));
        }
        let mut schema = "public".to_string();
        let mut connect_timeout = None;
        let mut for_libpq = parsed.clone();
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter_map(|(key, value)| {
                match key.as_ref() {
                    "schema" => schema = value.to_string(),
                    "connect_timeout" => {
                        connect_timeout = value.parse::<u64>().ok().map(Duration::from_secs)
                    }
                    _ => {}
                }
                (!PRISMA_PARAMS.contains(&key.as_ref()))
                    .then(|| (key.into_owned(), value.into_owned()))
            })
            .collect();
        for_libpq.set_query(None);
        if !kept.is_empty() {
            for_libpq.query_pairs_mut().extend_pairs(kept);
        }
        let options = PgConnectOptions::from_str(for_libpq.as_str())
            .map_err(|e| invalid(configuration_problem(&e.to_string())))?;
        let mut target = Target::from_options(options);
        target.child_url = raw.to_string();
        target.display = redact_url(raw);
        target.schema = schema;
        target.connect_timeout = connect_timeout;
        Ok(target)
    }

    fn from_options(options: PgConnectOptions) -> Target {
        let display = format!(
            "postgresql://{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or(options.get_username()),
        );
        let mut child = url::Url::parse(&display).unwrap_or_else(|_| {
            url::Url::parse("postgresql://localhost/").expect("constant URL parses")
        });
        if let Some(password) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()) {
            let _ = child.set_password(Some(&password));
        }
        Target {
            options,
            child_url: child.to_string(),
            display,
            schema: "public".to_string(),
            connect_timeout: None,
        }
    }

    /// Connection options for sqlx (holds the password).
    pub fn connect_options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// The database name.
    pub fn database(&self) -> &str {
        self.options
            .get_database()
            .unwrap_or(self.options.get_username())
    }

    /// Whether `typed` confirms a destructive action on this target: the database's name,
    /// exactly. The wizard's dialog, `check --confirm` and `deploy --confirm` all ask this.
    pub fn confirms(&self, typed: &str) -> bool {
        typed == self.database()
    }

    /// Host (or socket folder).
    pub fn host(&self) -> &str {
        self.options.get_host()
    }

    /// `host:port`, for error messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.options.get_host(), self.options.get_port())
    }

    /// The user name.
    pub fn user(&self) -> &str {
        self.options.get_username()
    }

    /// The schema the app's tables live in (Prisma's `?schema=`, default `public`).
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Whether the URL asked for TLS (`sslmode=require` or stricter).
    pub fn requires_tls(&self) -> bool {
        matches!(
            self.options.get_ssl_mode(),
            PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull
        )
    }

    /// The URL's `sslmode` as libpq spells it.
    pub fn sslmode(&self) -> &'static str {
        match self.options.get_ssl_mode() {
            PgSslMode::Disable => "disable",
            PgSslMode::Allow => "allow",
            PgSslMode::Prefer => "prefer",
            PgSslMode::Require => "require",
            PgSslMode::VerifyCa => "verify-ca",
            PgSslMode::VerifyFull => "verify-full",
        }
    }

    /// Connect timeout: Prisma's `connect_timeout`, else 10 s.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(Duration::from_secs(10))
    }

    /// The environment a child process gets to reach the target: `DATABASE_URL` for Prisma and
    /// the libpq variables for `psql`, `pg_dump` and `pg_restore`, so no URL is ever in argv.
    pub fn child_env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("DATABASE_URL".to_string(), self.child_url.clone());
        env.insert("PGHOST".to_string(), self.options.get_host().to_string());
        env.insert("PGPORT".to_string(), self.options.get_port().to_string());
        env.insert("PGUSER".to_string(), self.user().to_string());
        env.insert("PGDATABASE".to_string(), self.database().to_string());
        env.insert("PGSSLMODE".to_string(), self.sslmode().to_string());
        if let Some(password) = self.password() {
            env.insert("PGPASSWORD".to_string(), password);
        }
        env
    }

    /// The password exactly as the URL spells it (percent-encoded or not), for redaction.
    pub fn password_as_typed(&self) -> Option<String> {
        let rest = &self.child_url[self.child_url.find("://")? + 3..];
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let userinfo = &authority[..authority.rfind('@')?];
        let password = &userinfo[userinfo.find(':')? + 1..];
        (!password.is_empty()).then(|| password.to_string())
    }

    /// The password, from the URL or `PGPASSWORD`; only for a child's environment.
    fn password(&self) -> Option<String> {
        url::Url::parse(&self.child_url)
            .ok()
            .and_then(|u| u.password().map(percent_decode))
            .or_else(|| std::env::var("PGPASSWORD").ok())
            .filter(|p| !p.is_empty())
    }
}

/// sqlx's reason for refusing URL options, once (it nests "error with configuration"), and
/// for `sslmode` the values it takes.
fn configuration_problem(reason: &str) -> String {
    let mut reason = reason;
    while let Some(rest) = reason.strip_prefix("error with configuration: ") {
        reason = rest;
    }
    if reason.contains("ssl_mode") {
        format!(
            "{}: sslmode takes disable, allow, prefer, require, verify-ca or verify-full",
            reason.replace("`ssl_mode`", "sslmode")
        )
    } else {
        reason.to_string()
    }
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Masks the password in anything that looks like a connection URL, also malformed ones and
/// `password=` parameters. Every printer of a URL goes through this.
pub fn redact_url(text: &str) -> String {
    let mut out = text.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let rest = &out[rest_start..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            if let Some(colon) = userinfo.find(':') {
                let start = rest_start + colon + 1;
                let end = rest_start + at;
                out.replace_range(start..end, "***");
            }
        }
    }
    redact_param(&out, "password")
}

fn redact_param(text: &str, name: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let needle = format!("{name}=");
    while let Some(pos) = rest.find(&needle) {
        let boundary = pos == 0 || matches!(rest.as_bytes()[pos - 1], b'?' | b'&' | b' ');
        let value_start = pos + needle.len();
        out.push_str(&rest[..value_start]);
        rest = &rest[value_start..];
        if boundary {
            let end = rest.find(['&', ' ', '#']).unwrap_or(rest.len());
            out.push_str("***");
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_the_password_of_a_well_formed_url() {
        assert_eq!(
            redact_url("postgresql://app:s3cr%40t@db.example.com:5432/sightline?sslmode=require"),
            "postgresql://app:***@db.example.com:5432/sightline?sslmode=require"
        );
    }

    #[test]
    fn redacts_the_password_of_a_malformed_url() {
        assert_eq!(
            redact_url("postgres://app:hunter2@host:notaport/db"),
            "postgres://app:***@host:notaport/db"
        );
        assert_eq!(
            redact_url("postgres://app:p@ss@host/db"),
            "postgres://app:***@host/db"
        );
    }

    #[test]
    fn redacts_password_parameters() {
        assert_eq!(
            redact_url("postgres://host/db?user=a&password=hunter2&sslmode=require"),
            "postgres://host/db?user=a&password=***&sslmode=require"
        );
    }

    #[test]
    fn keeps_prisma_parameters_away_from_libpq_and_reads_the_schema() {
        let target = Target::from_url(
            "postgresql://app:pw@localhost:6543/sightline?schema=app&connection_limit=25&sslmode=require",
        )
        .unwrap();
        assert_eq!(target.schema(), "app");
        assert_eq!(target.database(), "sightline");
        assert!(target.requires_tls());
        assert_eq!(
            target.to_string(),
            "postgresql://app:***@localhost:6543/sightline?schema=app&connection_limit=25&sslmode=require"
        );
        let env = target.child_env();
        assert_eq!(env["PGPASSWORD"], "pw");
        assert_eq!(env["PGPORT"], "6543");
    }

    #[test]
    fn rejects_a_url_that_is_not_postgres_without_showing_the_password() {
        let err = Target::from_url("mysql://root:hunter2@localhost/db").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("scheme `mysql`"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn rejects_a_bad_port_without_showing_the_password() {
        let err = Target::from_url("postgres://app:hunter2@localhost:99999/db").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("invalid database URL"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let target = Target::from_url("postgresql://app:hunter2@localhost/db").unwrap();
        assert!(!format!("{target:?}").contains("hunter2"));
    }
}
