//! The one connection helper: a small, named, read-only pool on the target, and errors a person
//! can act on.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Postgres};

use crate::target::{Target, redact_url};

mod batch;
pub use batch::{Answers, literal, text_array};

/// The name our sessions carry, so that monitors and probes can leave them out.
pub const APPLICATION_NAME: &str = "cutover";

/// The name the live panels' sessions carry (left out of the figures like the checks').
pub const MONITOR_APPLICATION_NAME: &str = "cutover-monitor";

/// Limits that every check runs under.
#[derive(Debug, Clone, Copy)]
pub struct DbSettings {
    /// Pool size (the design asks for 2–3).
    pub max_connections: u32,
    /// `statement_timeout` of each check.
    pub statement_timeout: Duration,
    /// `lock_timeout` of each check.
    pub lock_timeout: Duration,
    /// The sessions' `application_name`, which tells them apart in `pg_stat_activity` and in
    /// the server's logs.
    pub application_name: &'static str,
}

impl Default for DbSettings {
    fn default() -> Self {
        DbSettings {
            max_connections: 3,
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(2),
            application_name: APPLICATION_NAME,
        }
    }
}

/// Why the database could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// Nothing listens there.
    #[error(
        "cannot connect to {address}: connection refused — is the server running? (set --database-url or DATABASE_URL)"
    )]
    Refused {
        /// host:port
        address: String,
    },
    /// The host name does not resolve or the network cannot reach it.
    #[error("cannot reach {address}: {detail} (check the host name and your network or VPN)")]
    Unreachable {
        /// host:port
        address: String,
        /// The system's reason.
        detail: String,
    },
    /// No answer in time.
    #[error(
        "no answer from {address} within {seconds}s (is a firewall dropping packets? raise connect_timeout in the URL if the server is slow)"
    )]
    ConnectTimeout {
        /// host:port
        address: String,
        /// The timeout.
        seconds: u64,
    },
    /// Wrong user or password.
    #[error(
        "password authentication failed for user `{user}` at {address} (check the user and password in the URL; the password is not shown)"
    )]
    AuthFailed {
        /// The user.
        user: String,
        /// host:port
        address: String,
    },
    /// The server's pg_hba.conf has no entry that lets us in.
    #[error(
        "{address} refused the login: {detail} (the server's pg_hba.conf does not allow this user, database or address)"
    )]
    Rejected {
        /// host:port
        address: String,
        /// Server message.
        detail: String,
    },
    /// The database does not exist.
    #[error(
        "database `{database}` does not exist on {address} (check the database name at the end of the URL)"
    )]
    NoDatabase {
        /// Database name.
        database: String,
        /// host:port
        address: String,
    },
    /// TLS was required but the server does not offer it.
    #[error(
        "{address} does not accept TLS, but the URL requires it (sslmode={sslmode}): enable ssl on the server, or use sslmode=prefer only if an unencrypted link is acceptable"
    )]
    TlsRefused {
        /// host:port
        address: String,
        /// The URL's sslmode.
        sslmode: &'static str,
    },
    /// TLS negotiation failed.
    #[error("TLS with {address} failed: {detail} (check sslmode and sslrootcert in the URL)")]
    Tls {
        /// host:port
        address: String,
        /// The reason.
        detail: String,
    },
    /// Something answered, but it does not speak PostgreSQL.
    #[error("{address} answered, but not as a PostgreSQL server ({detail}): check the port")]
    NotPostgres {
        /// host:port
        address: String,
        /// What went wrong.
        detail: String,
    },
    /// The connection dropped (server stopped, network cut).
    #[error("lost the connection to {address}: {detail}")]
    ConnectionLost {
        /// host:port
        address: String,
        /// The reason.
        detail: String,
    },
    /// A round trip got no answer in time: a stopped server process, a network partition,
    /// a hung host. Only a client-side deadline notices.
    #[error(
        "no answer from {address} within {seconds}s (the server process, its host or the network does not respond)"
    )]
    NoAnswer {
        /// host:port
        address: String,
        /// The deadline.
        seconds: u64,
    },
    /// The link is known down; the step was not tried.
    #[error("{reason}")]
    Down {
        /// Why, as it was found.
        reason: String,
    },
    /// A statement hit `statement_timeout` or `lock_timeout`.
    #[error("{0} (the check was cancelled; nothing was changed)")]
    Timeout(String),
    /// The server rejected a query.
    #[error("{message}")]
    Query {
        /// The server's message, with SQLSTATE.
        message: String,
    },
}

impl DbError {
    /// Whether this says the server cannot be reached (as opposed to a query it refused).
    pub fn is_link_down(&self) -> bool {
        matches!(
            self,
            DbError::Refused { .. }
                | DbError::Unreachable { .. }
                | DbError::ConnectTimeout { .. }
                | DbError::NotPostgres { .. }
                | DbError::ConnectionLost { .. }
                | DbError::NoAnswer { .. }
                | DbError::Down { .. }
                | DbError::AuthFailed { .. }
                | DbError::Rejected { .. }
                | DbError::NoDatabase { .. }
                | DbError::TlsRefused { .. }
                | DbError::Tls { .. }
        )
    }

    /// Classifies a sqlx error into something a person can act on.
    pub fn from_sqlx(err: sqlx::Error, target: &Target) -> DbError {
        match DbError::from_sqlx_as_is(err, target) {
            // A peer whose answer does not parse as a PostgreSQL message (an HTTP server reads
            // as a message of a billion bytes, cut short) is not PostgreSQL; one that only
            // closed the connection ("got 0 bytes") is a lost connection.
            DbError::ConnectionLost { address, detail }
                if detail.contains("expected to read") && !detail.contains("got 0 bytes") =>
            {
                DbError::NotPostgres { address, detail }
            }
            other => other,
        }
    }

    fn from_sqlx_as_is(err: sqlx::Error, target: &Target) -> DbError {
        let address = target.address();
        match err {
            sqlx::Error::Io(io) => match io.kind() {
                std::io::ErrorKind::ConnectionRefused => DbError::Refused { address },
                std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe => DbError::ConnectionLost {
                    address,
                    detail: io.to_string(),
                },
                _ => DbError::Unreachable {
                    address,
                    detail: io.to_string(),
                },
            },
            sqlx::Error::Tls(tls) => {
                let detail = tls.to_string();
                if detail.contains("does not support TLS") {
                    DbError::TlsRefused {
                        address,
                        sslmode: target.sslmode(),
                    }
                } else {
                    DbError::Tls { address, detail }
                }
            }
            sqlx::Error::Protocol(detail) => DbError::NotPostgres { address, detail },
            sqlx::Error::PoolTimedOut => DbError::ConnectTimeout {
                address,
                seconds: target.connect_timeout().as_secs(),
            },
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.to_string()).unwrap_or_default();
                let message = db.message().to_string();
                match code.as_str() {
                    "28P01" => DbError::AuthFailed {
                        user: target.user().to_string(),
                        address,
                    },
                    "28000" => DbError::Rejected {
                        address,
                        detail: message,
                    },
                    "3D000" => DbError::NoDatabase {
                        database: target.database().to_string(),
                        address,
                    },
                    "57014" => DbError::Timeout(format!("statement timed out: {message}")),
                    "55P03" => DbError::Timeout(format!("could not get a lock in time: {message}")),
                    "57P01" | "57P02" | "57P03" => DbError::ConnectionLost {
                        address,
                        detail: message,
                    },
                    _ => DbError::Query {
                        message: format!("{message} (SQLSTATE {code})"),
                    },
                }
            }
            other => {
                let text = redact_url(&other.to_string());
                if text.contains("closed") || text.contains("EOF") {
                    DbError::ConnectionLost {
                        address,
                        detail: text,
                    }
                } else {
                    DbError::Query { message: text }
                }
            }
        }
    }
}

/// Whether the server answers, as the last round trip of any connection to it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Nothing tried yet.
    Unknown,
    /// The last round trip was answered.
    Up,
    /// The last round trip failed.
    Down {
        /// Why, in words a person can act on (refused, reset, no answer, authentication).
        reason: String,
        /// When that was last found.
        checked: std::time::Instant,
    },
}

/// What every handle on one target shares: the link's state, and one re-check at a time.
#[derive(Debug)]
struct Health {
    link: tokio::sync::watch::Sender<Link>,
    recheck: tokio::sync::Mutex<()>,
}

/// How long a failed round trip is believed without trying again: steps started meanwhile
/// fail at once, with its reason.
pub const DOWN_BELIEVED_FOR: Duration = Duration::from_secs(2);

/// TCP keepalives on every connection: a peer gone silent (a partition, a hung host) is
/// found in about `idle + interval * count`, and unacknowledged data gives up after the user
/// timeout, instead of the kernel's two hours.
const KEEPALIVE_IDLE_SECS: u32 = 10;
const KEEPALIVE_INTERVAL_SECS: u32 = 5;
const KEEPALIVE_COUNT: u32 = 3;
const TCP_USER_TIMEOUT_MS: u32 = 30_000;

/// A handle on the target database: a small pool whose sessions are read-only and named
/// `cutover`.
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
    target: Target,
    settings: DbSettings,
    health: std::sync::Arc<Health>,
}

impl Db {
    /// Makes the pool without connecting; the first check connects.
    pub fn connect_lazy(target: &Target, settings: DbSettings) -> Db {
        let (link, _) = tokio::sync::watch::channel(Link::Unknown);
        let health = std::sync::Arc::new(Health {
            link,
            recheck: tokio::sync::Mutex::new(()),
        });
        Db::pool_with(target, settings, health)
    }

    /// Another pool on the same target (its own size and timeouts) that shares this one's
    /// view of the link: a failure either sees is known to both.
    pub fn sibling(&self, settings: DbSettings) -> Db {
        Db::pool_with(&self.target, settings, self.health.clone())
    }

    /// The live panels' own pool: one connection, named [`MONITOR_APPLICATION_NAME`], so that
    /// a busy engine never starves the panels and the panels' sessions are told apart from
    /// the checks'.
    pub fn for_panels(&self) -> Db {
        self.sibling(DbSettings {
            max_connections: 1,
            application_name: MONITOR_APPLICATION_NAME,
            ..self.settings
        })
    }

    fn pool_with(target: &Target, settings: DbSettings, health: std::sync::Arc<Health>) -> Db {
        let options = target
            .connect_options()
            .clone()
            .application_name(settings.application_name)
            .options([
                ("default_transaction_read_only", "on"),
                ("idle_in_transaction_session_timeout", "60000"),
                // A guest on a production server during its go-live: the checks do not take
                // parallel workers that the application's queries may need.
                ("max_parallel_workers_per_gather", "0"),
            ]);
        let port = target.connect_options().get_port();
        let tcp = !target.host().starts_with('/');
        let pool = PgPoolOptions::new()
            .after_connect(move |_, _| {
                Box::pin(async move {
                    if tcp {
                        keepalive::enable_on_sockets_to(port);
                    }
                    Ok(())
                })
            })
            .max_connections(settings.max_connections)
            .min_connections(0)
            .acquire_timeout(target.connect_timeout())
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(options);
        Db {
            pool,
            target: target.clone(),
            settings,
            health,
        }
    }

    /// The link as it stands, and its changes.
    pub fn link(&self) -> tokio::sync::watch::Receiver<Link> {
        self.health.link.subscribe()
    }

    /// Records what a round trip found: an answer, or a failure that says the link is down
    /// (a query the server refused says nothing about the link).
    pub fn note<T>(&self, result: &Result<T, DbError>) {
        match result {
            Ok(_) => self.note_up(),
            Err(err) if err.is_link_down() => self.note_down(err),
            Err(_) => self.note_up(),
        }
    }

    fn note_up(&self) {
        self.health.link.send_if_modified(|link| match link {
            Link::Up => false,
            _ => {
                *link = Link::Up;
                true
            }
        });
    }

    fn note_down(&self, err: &DbError) {
        let now = std::time::Instant::now();
        let reason = err.to_string();
        self.health.link.send_modify(|link| {
            *link = Link::Down {
                reason,
                checked: now,
            };
        });
    }

    /// A round trip that got no answer within `deadline`: recorded, and said in words.
    pub fn no_answer(&self, deadline: Duration) -> DbError {
        let err = DbError::NoAnswer {
            address: self.target.address(),
            seconds: deadline.as_secs().max(1),
        };
        self.note_down(&err);
        err
    }

    /// `Err` with the reason when the link is known down, at once while the failure is
    /// fresh; else one re-check at a time (a direct connection attempt) decides.
    pub async fn ready(&self) -> Result<(), DbError> {
        let fresh_down = |link: &Link| match link {
            Link::Down {
                reason, checked, ..
            } if checked.elapsed() < DOWN_BELIEVED_FOR => Some(reason.clone()),
            _ => None,
        };
        let is_down = |link: &Link| matches!(link, Link::Down { .. });
        if !is_down(&self.health.link.borrow()) {
            return Ok(());
        }
        if let Some(reason) = fresh_down(&self.health.link.borrow()) {
            return Err(DbError::Down { reason });
        }
        let _one_at_a_time = self.health.recheck.lock().await;
        // Another step may have re-checked while this one waited.
        if let Some(reason) = fresh_down(&self.health.link.borrow()) {
            return Err(DbError::Down { reason });
        }
        if !is_down(&self.health.link.borrow()) {
            return Ok(());
        }
        self.reachable().await
    }

    /// Connects now and proves the server answers, so that a bad target fails before any step.
    /// The pool's own first connection does it (a connection costs a TLS handshake): when it
    /// has not answered within a moment, a direct attempt gives the true reason (see
    /// [`Db::acquire`]).
    pub async fn connect(target: &Target, settings: DbSettings) -> Result<Db, DbError> {
        let db = Db::connect_lazy(target, settings);
        db.ping().await?;
        Ok(db)
    }

    /// Opens and closes one connection outside the pool: the pool would retry a refused
    /// connection until its acquire timeout, and we want the real reason at once.
    pub async fn reachable(&self) -> Result<(), DbError> {
        let target = &self.target;
        let attempt = async {
            let conn =
                target.connect_options().connect().await.map_err(
                    |err| match DbError::from_sqlx(err, target) {
                        // A peer whose first answer does not parse as a PostgreSQL message (an
                        // HTTP server reads as a message of a billion bytes) is not PostgreSQL.
                        DbError::ConnectionLost { address, detail }
                            if detail.contains("expected to read") =>
                        {
                            DbError::NotPostgres { address, detail }
                        }
                        other => other,
                    },
                )?;
            conn.close()
                .await
                .map_err(|e| DbError::from_sqlx(e, target))
        };
        // A login takes milliseconds; while one hangs, ask whether the peer speaks PostgreSQL
        // at all, so that a wrong port says so within a second instead of timing out.
        let wrong_protocol = async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            match not_postgres(target).await {
                Some(err) => err,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            answer = tokio::time::timeout(target.connect_timeout(), attempt) => match answer {
                Ok(result) => result,
                Err(_) => Err(DbError::ConnectTimeout {
                    address: target.address(),
                    seconds: target.connect_timeout().as_secs(),
                }),
            },
            err = wrong_protocol => Err(err),
        };
        self.note(&result);
        result
    }

    /// A pooled connection, or the true reason there is none. The pool retries a refused
    /// connection until its acquire timeout and then blames the network: while it waits, a
    /// direct attempt says at once whether the server refuses, resets or does not speak
    /// PostgreSQL.
    async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<Postgres>, DbError> {
        // With no idle connection the pool may open one: its socket gets TCP_NODELAY at once.
        let _watch = (self.pool.num_idle() == 0).then(|| nodelay::while_connecting(&self.target));
        let pooled = self.pool.acquire();
        tokio::pin!(pooled);
        tokio::select! {
            pooled = &mut pooled => return pooled.map_err(|e| self.error(e)),
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
        tokio::select! {
            pooled = &mut pooled => pooled.map_err(|e| self.error(e)),
            direct = self.reachable() => match direct {
                Err(err) => Err(err),
                // The server answers: the pool is only busy; wait for it.
                Ok(()) => pooled.await.map_err(|e| self.error(e)),
            },
        }
    }

    /// One round trip, within `deadline` (no answer is itself an answer: the link is down).
    pub async fn ping_within(&self, deadline: Duration) -> Result<(), DbError> {
        let attempt = async {
            let mut conn = self.acquire().await?;
            sqlx::query("SELECT 1")
                .execute(&mut *conn)
                .await
                .map_err(|e| self.error(e))?;
            Ok::<(), DbError>(())
        };
        let result = match tokio::time::timeout(deadline, attempt).await {
            Ok(result) => result,
            Err(_) => Err(self.no_answer(deadline)),
        };
        self.note(&result);
        result
    }

    /// One round trip, within the connect timeout.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.ping_within(self.target.connect_timeout()).await
    }

    /// Begins a read-only transaction with this handle's statement and lock timeouts. It is
    /// committed when dropped (see [`ReadOnly`]).
    pub async fn read_only(&self) -> Result<ReadOnly, DbError> {
        self.read_only_with(self.settings.statement_timeout).await
    }

    /// Like [`Db::read_only`] with another statement timeout.
    pub async fn read_only_with(&self, statement_timeout: Duration) -> Result<ReadOnly, DbError> {
        let conn = self.acquire().await?;
        self.begin_read_only(conn, statement_timeout).await
    }

    /// Like [`Db::read_only_with`] on a connection that is idle in the pool right now, if
    /// there is one and no one is waiting for it: for work that can use another connection
    /// but must not hold up a step that needs one.
    pub async fn try_read_only_with(&self, statement_timeout: Duration) -> Option<ReadOnly> {
        let conn = self.pool.try_acquire()?;
        self.begin_read_only(conn, statement_timeout).await.ok()
    }

    async fn begin_read_only(
        &self,
        mut conn: sqlx::pool::PoolConnection<Postgres>,
        statement_timeout: Duration,
    ) -> Result<ReadOnly, DbError> {
        // One round trip: the timeouts travel with BEGIN (simple protocol, several statements).
        let begin = self.begin_read_only_sql(statement_timeout);
        let begun = sqlx::raw_sql(sqlx::AssertSqlSafe(begin.clone()))
            .execute(&mut *conn)
            .await
            .map(|_| ())
            .map_err(|e| self.error(e));
        self.note(&begun);
        if let Err(err) = begun {
            // Whatever state it is in, it does not go back to the pool.
            conn.close_on_drop();
            return Err(err);
        }
        Ok(ReadOnly {
            conn: Some(conn),
            begin,
        })
    }

    /// `BEGIN` of a read-only transaction and its timeouts, as three statements of one
    /// simple-protocol message.
    fn begin_read_only_sql(&self, statement_timeout: Duration) -> String {
        format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY; \
             SET LOCAL statement_timeout = '{}ms'; SET LOCAL lock_timeout = '{}ms'",
            statement_timeout.as_millis().max(1),
            self.settings.lock_timeout.as_millis().max(1)
        )
    }

    /// The same pool with another statement timeout for the checks made through it.
    pub fn with_statement_timeout(&self, statement_timeout: Duration) -> Db {
        let mut db = self.clone();
        db.settings.statement_timeout = statement_timeout;
        db
    }

    /// How many connections the pool may open.
    pub fn pool_size(&self) -> usize {
        self.settings.max_connections.max(1) as usize
    }

    /// The target this handle works on.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Maps a sqlx error in this handle's terms, and records what it says about the link.
    pub fn error(&self, err: sqlx::Error) -> DbError {
        let err = DbError::from_sqlx(err, &self.target);
        if err.is_link_down() {
            self.note_down(&err);
        }
        err
    }

    /// Closes the pool, waiting a moment at most: a connection stuck on a server that does
    /// not answer is abandoned (the kernel closes it when the process ends).
    pub async fn close(&self) {
        if matches!(*self.health.link.borrow(), Link::Down { .. }) {
            // Nothing to say goodbye to: closing would wait on connections that never answer.
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.pool.close()).await;
    }
}

/// `Some` when the peer at the target answers, but not as PostgreSQL does. PostgreSQL answers
/// an SSLRequest with one byte, `S` or `N`, at once; a line-based server (HTTP, SMTP, Redis)
/// waits for a line, so after a short silence a blank line makes it talk. Silence throughout
/// is not an answer (a stopped server is silent too): the login's own timeout tells that.
async fn not_postgres(target: &Target) -> Option<DbError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let host = target.host();
    if host.starts_with('/') {
        return None;
    }
    let port = target.connect_options().get_port();
    let mut stream = tokio::net::TcpStream::connect((host, port)).await.ok()?;
    stream.write_all(&SSL_REQUEST).await.ok()?;
    let mut first = [0u8; 64];
    let read = match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut first)).await
    {
        Ok(read) => read.ok()?,
        Err(_) => {
            stream.write_all(b"\r\n\r\n").await.ok()?;
            tokio::time::timeout(Duration::from_millis(600), stream.read(&mut first))
                .await
                .ok()?
                .ok()?
        }
    };
    let answer = &first[..read];
    match answer.first() {
        None | Some(b'S') | Some(b'N') => None,
        Some(_) => {
            let text: String = String::from_utf8_lossy(answer)
                .chars()
                .take_while(|c| *c != '\r' && *c != '\n')
                .filter(|c| !c.is_control())
                .collect();
            Some(DbError::NotPostgres {
                address: target.address(),
                detail: if text.trim().is_empty() {
                    "it did not answer the PostgreSQL handshake".to_string()
                } else {
                    format!("it answered `{}`", text.trim())
                },
            })
        }
    }
}

/// A read-only transaction; derefs to the connection for sqlx queries. It ends in a COMMIT
/// when dropped, sent as the connection goes back to the pool (the caller does not wait for
/// it). A COMMIT, not a ROLLBACK: READ ONLY already makes sure that it wrote nothing, and the
/// server counts every rollback in `pg_stat_database.xact_rollback`, which is the
/// application's query error rate. Rolled back, the checks of any cutover on the database (an
/// observer's, a `check` beside the wizard) would read as the application's errors on every
/// other one's panel. A transaction that a failed statement aborted still ends as a rollback:
/// that one was an error.
pub struct ReadOnly {
    conn: Option<sqlx::pool::PoolConnection<Postgres>>,
    /// What began it, to begin the next one the same way.
    begin: String,
}

impl ReadOnly {
    /// Ends this transaction and begins another like it on the same connection, in one round
    /// trip: the locks it took (one per table and index a query touched, held to the end) are
    /// let go, so that a probe reading thousands of tables batch by batch never holds more
    /// than one batch's worth of the server's shared lock table.
    pub async fn renew(&mut self) -> Result<(), sqlx::Error> {
        let renew = format!("COMMIT; {}", self.begin);
        sqlx::raw_sql(sqlx::AssertSqlSafe(renew))
            .execute(&mut **self)
            .await?;
        Ok(())
    }

    fn conn(&self) -> &sqlx::pool::PoolConnection<Postgres> {
        self.conn
            .as_ref()
            .expect("a read-only transaction holds its connection until dropped")
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        // Dropped in the middle of a query (a step cancelled), the connection first reads
        // what the server still sends; one that cannot COMMIT is closed, not pooled.
        tokio::spawn(async move {
            if sqlx::raw_sql("COMMIT").execute(&mut *conn).await.is_err() {
                conn.close_on_drop();
            }
        });
    }
}

impl Deref for ReadOnly {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn()
    }
}

impl DerefMut for ReadOnly {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("a read-only transaction holds its connection until dropped")
    }
}

/// Opens a connection outside the pool with `TCP_NODELAY` on from its first bytes (see
/// [`nodelay::while_connecting`]).
pub(crate) async fn connect_tuned(
    target: &Target,
    options: &sqlx::postgres::PgConnectOptions,
) -> Result<PgConnection, sqlx::Error> {
    let _watch = nodelay::while_connecting(target);
    PgConnection::connect_with(options).await
}

/// `TCP_NODELAY` from a connection's first bytes, as libpq sets it. sqlx connects with Nagle's
/// algorithm on and offers no hook for the socket's options; the TLS handshake and the startup
/// then each write two records back to back, and the second waits for the server's delayed
/// acknowledgement of the first: two stalls of about 40 ms on Linux, most of the time a short
/// command takes. While a connect may be under way (a guard is alive), a helper thread looks
/// at this process's new sockets to the target every quarter of a millisecond and turns the
/// option on (with the keepalives); that lands before the handshake's second flight.
mod nodelay {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    use std::time::Duration;

    use crate::target::Target;

    /// How many guards are alive per port, and whether that port's thread runs.
    fn watched() -> &'static Mutex<HashMap<u16, usize>> {
        static WATCHED: OnceLock<Mutex<HashMap<u16, usize>>> = OnceLock::new();
        WATCHED.get_or_init(|| Mutex::new(HashMap::new()))
    }

    fn lock() -> std::sync::MutexGuard<'static, HashMap<u16, usize>> {
        watched()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// While alive, new sockets to the target get their options at once.
    pub(crate) struct Watch(Option<u16>);

    /// Watches the target's port until the guard drops (nothing for a Unix socket).
    pub(crate) fn while_connecting(target: &Target) -> Watch {
        if target.host().starts_with('/') {
            return Watch(None);
        }
        let port = target.connect_options().get_port();
        let mut watched = lock();
        let count = watched.entry(port).or_insert(0);
        *count += 1;
        if *count == 1 {
            let spawned = std::thread::Builder::new()
                .name("cutover-nodelay".into())
                .spawn(move || {
                    while lock().get(&port).is_some_and(|count| *count > 0) {
                        super::keepalive::enable_on_sockets_to(port);
                        std::thread::sleep(Duration::from_micros(250));
                    }
                });
            if spawned.is_err() {
                // No thread: the options come right after the connect (see Drop).
                *count = 0;
            }
        }
        Watch(Some(port))
    }

    impl Drop for Watch {
        fn drop(&mut self) {
            let Some(port) = self.0 else { return };
            let mut watched = lock();
            if let Some(count) = watched.get_mut(&port) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    watched.remove(&port);
                }
            }
            drop(watched);
            // Whatever opened meanwhile has its options now, thread or not.
            super::keepalive::enable_on_sockets_to(port);
        }
    }
}

/// Keepalives (and `TCP_NODELAY`) on our TCP connections to the target. sqlx opens the sockets
/// and offers no hook for their options, so after each connect the process's own sockets whose
/// peer is the target's port and that have no keepalive yet get one (a socket of ours to
/// another server on that port gaining keepalives is harmless).
mod keepalive {
    use std::os::fd::{BorrowedFd, RawFd};

    use nix::sys::socket::{SockaddrStorage, getpeername, getsockopt, setsockopt, sockopt};

    use super::{
        KEEPALIVE_COUNT, KEEPALIVE_IDLE_SECS, KEEPALIVE_INTERVAL_SECS, TCP_USER_TIMEOUT_MS,
    };

    pub(super) fn enable_on_sockets_to(port: u16) {
        let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
            return;
        };
        for entry in entries.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<RawFd>().ok())
            else {
                continue;
            };
            let is_socket = std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
            if !is_socket {
                continue;
            }
            // SAFETY: the descriptor is open in this process (listed just now) and is only
            // borrowed for these calls; a descriptor closed meanwhile makes them fail, which
            // is ignored.
            let socket = unsafe { BorrowedFd::borrow_raw(fd) };
            let to_target = getpeername::<SockaddrStorage>(fd).is_ok_and(|peer| {
                peer.as_sockaddr_in().map(|a| a.port()) == Some(port)
                    || peer.as_sockaddr_in6().map(|a| a.port()) == Some(port)
            });
            if !to_target || getsockopt(&socket, sockopt::KeepAlive).unwrap_or(true) {
                continue;
            }
            let _ = setsockopt(&socket, sockopt::KeepAlive, &true);
            let _ = setsockopt(&socket, sockopt::TcpKeepIdle, &KEEPALIVE_IDLE_SECS);
            let _ = setsockopt(&socket, sockopt::TcpKeepInterval, &KEEPALIVE_INTERVAL_SECS);
            let _ = setsockopt(&socket, sockopt::TcpKeepCount, &KEEPALIVE_COUNT);
            let _ = setsockopt(&socket, sockopt::TcpUserTimeout, &TCP_USER_TIMEOUT_MS);
            // A message written in two pieces (TLS records) waits for the server's delayed
            // acknowledgement of the first (40 ms on Linux) unless Nagle's algorithm is off,
            // as libpq turns it off.
            let _ = setsockopt(&socket, sockopt::TcpNoDelay, &true);
        }
    }
}
