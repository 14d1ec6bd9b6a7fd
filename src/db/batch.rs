//! Catalog reads in one round trip. A probe's queries, the transaction that makes them
//! read-only and its timeouts travel to the server as one simple-protocol message
//! (`BEGIN ...; SET LOCAL ...; <queries>; COMMIT`), and the rows of every query come back in
//! one answer: no separate round trip to begin, none to prepare a statement (each would cost a
//! network round trip, and a prepared statement's description one more parse of the query on
//! the server), none to end it. Values travel as quoted literals ([`literal`]), so only SQL
//! that cutover builds itself goes through here, never a runbook's.

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row};

use super::{Db, DbError};

/// `text` as a SQL string literal, whatever the server's `standard_conforming_strings` (an
/// escape string: quotes and backslashes doubled). A NUL, which no PostgreSQL text holds,
/// becomes U+FFFD, so a name with one is simply not found.
pub fn literal(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 3);
    quoted.push_str("E'");
    for c in text.chars() {
        match c {
            '\'' => quoted.push_str("''"),
            '\\' => quoted.push_str("\\\\"),
            '\0' => quoted.push('\u{FFFD}'),
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

/// `items` as a `text[]` literal.
pub fn text_array<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<String> = items.iter().map(|item| literal(item.as_ref())).collect();
    format!("ARRAY[{}]::text[]", items.join(", "))
}

/// The rows of each query of a [`Db::read_batch`], in the order the queries were given.
#[derive(Debug)]
pub struct Answers {
    results: Vec<Vec<PgRow>>,
}

impl Answers {
    /// The rows of query `index` (from 0), each decoded as `T` (a tuple, or a `FromRow`
    /// struct). Taken once: a second call for the same query finds no rows.
    pub fn rows<T>(&mut self, index: usize) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, PgRow>,
    {
        self.take(index).iter().map(T::from_row).collect()
    }

    /// The first column of query `index`'s rows.
    pub fn column<T>(&mut self, index: usize) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
    {
        self.take(index).iter().map(|row| row.try_get(0)).collect()
    }

    /// The rows of query `index`, taken out.
    fn take(&mut self, index: usize) -> Vec<PgRow> {
        self.results
            .get_mut(index)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The single row of query `index` (an error when it returned none).
    pub fn one<T>(&mut self, index: usize) -> Result<T, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, PgRow>,
    {
        self.rows(index)?
            .into_iter()
            .next()
            .ok_or(sqlx::Error::RowNotFound)
    }
}

/// A pooled connection that is closed, not given back to the pool, unless the batch on it
/// ended cleanly: a batch cancelled half-way (the step was cancelled) may leave the session
/// inside its transaction.
struct Guarded {
    conn: PoolConnection<Postgres>,
    clean: bool,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if !self.clean {
            self.conn.close_on_drop();
        }
    }
}

impl Db {
    /// Runs `queries` (SQL that cutover builds itself, values quoted with [`literal`]) in one
    /// read-only transaction with this handle's statement and lock timeouts, in one round trip,
    /// and returns the rows of each. The transaction commits, like every read-only transaction
    /// of cutover's (see [`super::ReadOnly`]).
    pub async fn read_batch(&self, queries: &[String]) -> Result<Answers, DbError> {
        self.read_batch_with(self.settings.statement_timeout, queries)
            .await
    }

    /// Like [`Db::read_batch`] with another statement timeout.
    pub async fn read_batch_with(
        &self,
        statement_timeout: std::time::Duration,
        queries: &[String],
    ) -> Result<Answers, DbError> {
        let conn = self.acquire().await?;
        self.read_batch_on(conn, statement_timeout, queries).await
    }

    /// Opens every connection of the pool at once, before the steps need them, and runs
    /// `queries` on each (the catalog probes' own queries, on nothing: see
    /// [`crate::probes::warm_up`]): a new server process loads its caches of the catalogs on
    /// first use, and maps the pages of shared memory it reads on first touch, which costs
    /// milliseconds with thousands of relations, and those belong to no step. Failures are left
    /// to the steps to report.
    pub async fn warm(&self, queries: &[String]) {
        let conns =
            futures_util::future::join_all((0..self.pool_size()).map(|_| self.acquire())).await;
        let warm = conns
            .into_iter()
            .flatten()
            .map(|conn| self.read_batch_on(conn, self.settings.statement_timeout, queries));
        futures_util::future::join_all(warm).await;
    }

    async fn read_batch_on(
        &self,
        conn: PoolConnection<Postgres>,
        statement_timeout: std::time::Duration,
        queries: &[String],
    ) -> Result<Answers, DbError> {
        let mut guarded = Guarded { conn, clean: false };
        let batch = format!(
            "{}; {};\nCOMMIT",
            self.begin_read_only_sql(statement_timeout),
            queries.join(";\n")
        );
        let result = match run(&mut guarded.conn, batch).await {
            Ok(mut results) => {
                // BEGIN and the two SETs answer first, the COMMIT last.
                let expected = queries.len() + 4;
                if results.len() == expected {
                    results.truncate(expected - 1);
                    results.drain(..3);
                    guarded.clean = true;
                    Ok(Answers { results })
                } else {
                    Err(DbError::Query {
                        message: format!(
                            "a catalog read answered {} results for {expected} statements",
                            results.len()
                        ),
                    })
                }
            }
            Err(err) => {
                // The server skipped the rest of the message, the COMMIT included: the failed
                // transaction ends as what it is, a rollback.
                guarded.clean = sqlx::raw_sql("ROLLBACK")
                    .execute(&mut *guarded.conn)
                    .await
                    .is_ok();
                Err(self.error(err))
            }
        };
        self.note(&result);
        result
    }
}

/// Sends `batch` and sorts the rows that come back by the statement that returned them.
async fn run(conn: &mut sqlx::PgConnection, batch: String) -> Result<Vec<Vec<PgRow>>, sqlx::Error> {
    use futures_util::TryStreamExt;
    let mut results = Vec::new();
    let mut rows = Vec::new();
    let mut stream = sqlx::raw_sql(sqlx::AssertSqlSafe(batch)).fetch_many(conn);
    while let Some(item) = stream.try_next().await? {
        match item {
            sqlx::Either::Left(_done) => results.push(std::mem::take(&mut rows)),
            sqlx::Either::Right(row) => rows.push(row),
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_quotes_and_backslashes() {
        assert_eq!(literal("User"), "E'User'");
        assert_eq!(literal("o'brien\\x"), "E'o''brien\\\\x'");
        assert_eq!(literal("a\0b"), "E'a\u{FFFD}b'");
        assert_eq!(text_array::<&str>(&[]), "ARRAY[]::text[]");
        assert_eq!(text_array(&["a", "b"]), "ARRAY[E'a', E'b']::text[]");
    }
}
