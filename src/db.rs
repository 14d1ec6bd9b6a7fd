//! The one connection helper: a small, named, read-only pool on the target, and errors a person
//! can act on.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Postgres, Transaction};

use crate::target::{Target, redact_url};

/// The name our sessions carry, so that monitors and probes can leave them out.
pub const APPLICATION_NAME: &str = "cutover";

/// Read-only transactions this process has begun (each ends in a rollback). The monitor takes
/// them out of the server's rollback count, so the wizard's own checks never look like the
/// application's errors. One process works on one target, so one counter serves.
static READ_ONLY_BEGUN: AtomicU64 = AtomicU64::new(0);

/// How many read-only transactions this process has begun so far.
pub fn read_only_transactions_begun() -> u64 {
    READ_ONLY_BEGUN.load(Ordering::Relaxed)
}

/// When the read-only transactions of the last [`BEGUN_MEMORY`] began: the server may count a
/// rollback seconds after it happened (a backend reports its statistics at most once a second,
/// an idle one up to 10 s later), so a window of the server's counters is matched against our
/// transactions begun a little before it.
static RECENTLY_BEGUN: std::sync::Mutex<std::collections::VecDeque<std::time::Instant>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());

/// How long [`RECENTLY_BEGUN`] remembers.
const BEGUN_MEMORY: Duration = Duration::from_secs(60);

fn note_read_only_begun() {
    READ_ONLY_BEGUN.fetch_add(1, Ordering::Relaxed);
    let now = std::time::Instant::now();
    let mut recent = RECENTLY_BEGUN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    while recent
        .front()
        .is_some_and(|at| now.saturating_duration_since(*at) > BEGUN_MEMORY)
    {
        recent.pop_front();
    }
    recent.push_back(now);
}

/// How many read-only transactions this process began at or after `since` (remembered for a
/// minute).
pub fn read_only_transactions_begun_since(since: std::time::Instant) -> u64 {
    let recent = RECENTLY_BEGUN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    recent.iter().filter(|at| **at >= since).count() as u64
}

/// Limits that every check runs under.
#[derive(Debug, Clone)]
pub struct DbSettings {
    /// Pool size (the design asks for 2–3).
    pub max_connections: u32,
    /// `statement_timeout` of each check.
    pub statement_timeout: Duration,
    /// `lock_timeout` of each check.
    pub lock_timeout: Duration,
}

impl Default for DbSettings {
    fn default() -> Self {
        DbSettings {
            max_connections: 3,
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(2),
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
    /// Classifies a sqlx error into something a person can act on.
    pub fn from_sqlx(err: sqlx::Error, target: &Target) -> DbError {
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

/// A handle on the target database: a small pool whose sessions are read-only and named
/// `cutover`.
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
    target: Target,
    settings: DbSettings,
}

impl Db {
    /// Makes the pool without connecting; the first check connects.
    pub fn connect_lazy(target: &Target, settings: DbSettings) -> Db {
        let options = target
            .connect_options()
            .clone()
            .application_name(APPLICATION_NAME)
            .options([
                ("default_transaction_read_only", "on"),
                ("idle_in_transaction_session_timeout", "60000"),
                // A guest on a production server during its go-live: the checks do not take
                // parallel workers that the application's queries may need.
                ("max_parallel_workers_per_gather", "0"),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(0)
            .acquire_timeout(target.connect_timeout())
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(options);
        Db {
            pool,
            target: target.clone(),
            settings,
        }
    }

    /// Connects now and proves the server answers, so that a bad target fails before any step.
    pub async fn connect(target: &Target, settings: DbSettings) -> Result<Db, DbError> {
        let db = Db::connect_lazy(target, settings);
        db.reachable().await?;
        db.ping().await?;
        Ok(db)
    }

    /// Opens and closes one connection outside the pool: the pool would retry a refused
    /// connection until its acquire timeout, and we want the real reason at once.
    pub async fn reachable(&self) -> Result<(), DbError> {
        let target = &self.target;
        let attempt = async {
            let conn = target.connect_options().connect().await?;
            conn.close().await
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
        let answer = tokio::select! {
            answer = tokio::time::timeout(target.connect_timeout(), attempt) => answer,
            err = wrong_protocol => return Err(err),
        };
        match answer {
            Err(_) => Err(DbError::ConnectTimeout {
                address: target.address(),
                seconds: target.connect_timeout().as_secs(),
            }),
            Ok(Err(err)) => Err(match DbError::from_sqlx(err, target) {
                // A peer whose first answer does not parse as a PostgreSQL message (an HTTP
                // server reads as a message of a billion bytes) is not a PostgreSQL server.
                DbError::ConnectionLost { address, detail }
                    if detail.contains("expected to read") =>
                {
                    DbError::NotPostgres { address, detail }
                }
                other => other,
            }),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// One round trip.
    pub async fn ping(&self) -> Result<(), DbError> {
        let attempt = async {
            let mut conn = self.pool.acquire().await?;
            sqlx::query("SELECT 1").execute(&mut *conn).await?;
            Ok::<(), sqlx::Error>(())
        };
        match tokio::time::timeout(self.target.connect_timeout(), attempt).await {
            Ok(result) => result.map_err(|e| DbError::from_sqlx(e, &self.target)),
            Err(_) => Err(DbError::ConnectTimeout {
                address: self.target.address(),
                seconds: self.target.connect_timeout().as_secs(),
            }),
        }
    }

    /// Begins a read-only transaction with this handle's statement and lock timeouts. It is
    /// rolled back when dropped.
    pub async fn read_only(&self) -> Result<ReadOnly, DbError> {
        self.read_only_with(self.settings.statement_timeout).await
    }

    /// Like [`Db::read_only`] with another statement timeout.
    pub async fn read_only_with(&self, statement_timeout: Duration) -> Result<ReadOnly, DbError> {
        // One round trip: the timeouts travel with BEGIN (simple protocol, several statements).
        // The ROLLBACK is queued when the transaction drops and goes out with the next use of
        // the connection, so it costs no wait either; over a WAN each round trip counts.
        let begin = format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY; \
             SET LOCAL statement_timeout = '{}ms'; SET LOCAL lock_timeout = '{}ms'",
            statement_timeout.as_millis().max(1),
            self.settings.lock_timeout.as_millis().max(1)
        );
        let tx = self
            .pool
            .begin_with(sqlx::AssertSqlSafe(begin))
            .await
            .map_err(|e| DbError::from_sqlx(e, &self.target))?;
        note_read_only_begun();
        Ok(ReadOnly { tx })
    }

    /// The same pool with another statement timeout for the checks made through it.
    pub fn with_statement_timeout(&self, statement_timeout: Duration) -> Db {
        let mut db = self.clone();
        db.settings.statement_timeout = statement_timeout;
        db
    }

    /// The target this handle works on.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Maps a sqlx error in this handle's terms.
    pub fn error(&self, err: sqlx::Error) -> DbError {
        DbError::from_sqlx(err, &self.target)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
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

/// A read-only transaction; derefs to the connection for sqlx queries and rolls back on drop.
pub struct ReadOnly {
    tx: Transaction<'static, Postgres>,
}

impl Deref for ReadOnly {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for ReadOnly {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}
