//! The migration itself, UI-agnostic like the engine: Prisma Migrate's history read and
//! written natively (no Node), and the deploy that applies pending migrations exactly as
//! `prisma migrate deploy` does. It reports progress as events; it never draws.

pub mod baseline;
pub mod deploy;
pub mod drift;
pub mod history;
pub mod lint;
pub mod rehearse;
pub mod resolve;
pub mod script;

/// The last non-empty line a failed tool wrote to stderr (its error), trimmed.
pub(crate) fn last_error_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("it failed without a message")
        .trim()
        .to_string()
}

/// A statement's failure as the server put it, in one line: `ERROR 23502: …` (else the
/// client's own error: a lost connection).
pub(crate) fn server_error(err: &sqlx::Error) -> String {
    err.as_database_error()
        .map(|d| format!("ERROR {}: {}", d.code().unwrap_or_default(), d.message()))
        .unwrap_or_else(|| err.to_string())
}
