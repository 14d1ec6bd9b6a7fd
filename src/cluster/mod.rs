//! A throwaway local PostgreSQL: initdb and pg_ctl in a temporary folder on a free port, run as
//! the `postgres` user when we are root (initdb refuses root), stopped and removed on drop.
//! It powers `cutover demo` and the test suite: one piece of code for both.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nix::unistd::{Gid, Uid, User, chown};

/// Why a cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No server binaries.
    #[error(
        "PostgreSQL server binaries not found (initdb is not on PATH nor under /usr/lib/postgresql): install them, e.g. `apt-get install -y postgresql`"
    )]
    NoBinaries,
    /// Running as root with no unprivileged user to run the server as.
    #[error(
        "running as root, and there is no `postgres` user to run the server as (initdb refuses root): create one, e.g. `useradd --system postgres`"
    )]
    NoPostgresUser,
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PostgreSQL tool failed.
    #[error("{tool} failed: {detail}")]
    Tool {
        /// The tool.
        tool: String,
        /// Its last lines of output.
        detail: String,
    },
    /// The TLS certificate could not be made.
    #[error("cannot generate a TLS certificate: {0}")]
    Certificate(String),
}

/// How to start a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Serve TLS with a self-signed certificate generated at start.
    pub tls: bool,
    /// Require this password for the `postgres` user over TCP (scram-sha-256); `None` trusts.
    pub password: Option<String>,
    /// Archive WAL into a folder of the cluster (`archive_mode = on`), as point-in-time
    /// recovery needs.
    pub archive: bool,
    /// Extra `postgresql.conf` settings, e.g. `("max_connections", "20")`.
    pub settings: Vec<(String, String)>,
}

impl ClusterOptions {
    /// Adds a `postgresql.conf` setting.
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_string(), value.to_string()));
        self
    }
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct Cluster {
    root: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    password: Option<String>,
    owner: Option<(Uid, Gid)>,
    running: bool,
}

const SUPERUSER: &str = "postgres";

impl Cluster {
    /// Creates and starts a cluster.
    pub fn start(options: ClusterOptions) -> Result<Cluster, ClusterError> {
        let bin = find_binaries()?;
        let owner = server_owner()?;
        let root = tempfile::Builder::new()
            .prefix("cutover-pg-")
            .tempdir()
            .map_err(io("cannot create a temporary folder"))?;
        give_to(root.path(), owner)?;
        let data = root.path().join("data");

        let mut initdb = Command::new(bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        if let Some(password) = &options.password {
            let pwfile = root.path().join("pwfile");
            write_private(&pwfile, password, owner)?;
            initdb
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                .arg(format!("--pwfile={}", pwfile.display()));
        } else {
            initdb.arg("--auth=trust");
        }
        run_tool(&mut initdb, "initdb", owner)?;
        let _ = fs::remove_file(root.path().join("pwfile"));

        let mut conf = vec![
            ("listen_addresses".to_string(), "'127.0.0.1'".to_string()),
            (
                "unix_socket_directories".to_string(),
                format!("'{}'", root.path().display()),
            ),
            ("fsync".to_string(), "off".to_string()),
            ("synchronous_commit".to_string(), "off".to_string()),
            ("full_page_writes".to_string(), "off".to_string()),
            ("log_min_messages".to_string(), "warning".to_string()),
        ];
        if options.tls {
            let (cert, key) = self_signed()?;
            let cert_path = data.join("server.crt");
            let key_path = data.join("server.key");
            write_private(&cert_path, &cert, owner)?;
            write_private(&key_path, &key, owner)?;
            conf.push(("ssl".to_string(), "on".to_string()));
            conf.push(("ssl_cert_file".to_string(), "'server.crt'".to_string()));
            conf.push(("ssl_key_file".to_string(), "'server.key'".to_string()));
        }
        if options.archive {
            let archive = root.path().join("archive");
            fs::create_dir(&archive).map_err(io("cannot create the WAL archive folder"))?;
            give_to(&archive, owner)?;
            let dir = archive.display().to_string().replace('\'', "");
            conf.push(("archive_mode".to_string(), "on".to_string()));
            conf.push((
                "archive_command".to_string(),
                format!("'test ! -f {dir}/%f && cp %p {dir}/%f'"),
            ));
        }
        for (name, value) in &options.settings {
            conf.push((name.clone(), quote_setting(value)));
        }
        append_conf(&data, &conf)?;

        let mut cluster = Cluster {
            root,
            data,
            bin,
            port: 0,
            password: options.password,
            owner,
            running: false,
        };
        cluster.start_on_free_port()?;
        Ok(cluster)
    }

    /// Starts a streaming replica of this cluster (pg_basebackup), on its own port.
    pub fn start_replica(&self) -> Result<Cluster, ClusterError> {
        let root = tempfile::Builder::new()
            .prefix("cutover-pg-replica-")
            .tempdir()
            .map_err(io("cannot create a temporary folder"))?;
        give_to(root.path(), self.owner)?;
        let data = root.path().join("data");
        let mut basebackup = Command::new(self.bin.join("pg_basebackup"));
        basebackup
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                SUPERUSER,
                "-X",
                "stream",
                "-R",
                "--no-sync",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-D")
            .arg(&data)
            .arg("--checkpoint=fast");
        if let Some(password) = &self.password {
            basebackup.env("PGPASSWORD", password);
        }
        run_tool(&mut basebackup, "pg_basebackup", self.owner)?;
        append_conf(
            &data,
            &[(
                "unix_socket_directories".to_string(),
                format!("'{}'", root.path().display()),
            )],
        )?;
        let mut replica = Cluster {
            root,
            data,
            bin: self.bin.clone(),
            port: 0,
            password: self.password.clone(),
            owner: self.owner,
            running: false,
        };
        replica.start_on_free_port()?;
        Ok(replica)
    }

    fn start_on_free_port(&mut self) -> Result<(), ClusterError> {
        let mut last_error = None;
        // A port found free can be taken before the server binds it; try a few.
        for _ in 0..5 {
            let port = free_port()?;
            append_conf(&self.data, &[("port".to_string(), port.to_string())])?;
            match self.pg_ctl_start() {
                Ok(_) => {
                    self.port = port;
                    self.running = true;
                    self.spawn_reaper();
                    return Ok(());
                }
                Err(ClusterError::Tool { tool, detail }) => {
                    let log = self.root.path().join("server.log");
                    let log_tail = tail(&fs::read_to_string(&log).unwrap_or_default(), 5);
                    let in_use = log_tail.contains("Address already in use");
                    last_error = Some(ClusterError::Tool {
                        tool,
                        detail: format!("{detail} {log_tail}"),
                    });
                    if !in_use {
                        break;
                    }
                }
                Err(other) => return Err(other),
            }
        }
        Err(last_error.unwrap_or(ClusterError::Tool {
            tool: "pg_ctl start".to_string(),
            detail: "no free port".to_string(),
        }))
    }

    /// Starts a small watcher that stops the server and removes its folder once this process
    /// is gone, so a crash, a `kill -9` or a test binary that exits with a shared cluster never
    /// leaves a server behind. A clean drop gets there first and the watcher finds nothing.
    fn spawn_reaper(&self) {
        let script = r#"
            while [ -d "/proc/$WATCH_PID" ]; do sleep 1; done
            if [ -f "$DATA/postmaster.pid" ]; then "$BIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1; fi
            rm -rf "$ROOT"
        "#;
        let mut reaper = Command::new("/bin/sh");
        reaper
            .arg("-c")
            .arg(script)
            .env("WATCH_PID", std::process::id().to_string())
            .env("DATA", &self.data)
            .env("BIN", &self.bin)
            .env("ROOT", self.root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir("/")
            // Its own process group: a Ctrl-C meant for us must not stop it first.
            .process_group(0);
        if let Some((uid, gid)) = self.owner {
            reaper.uid(uid.as_raw()).gid(gid.as_raw());
        }
        // Not waited for: it outlives us by design. Without it a crash may leave a server.
        let _ = reaper.spawn();
    }

    /// The TCP port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (the postmaster), while it runs: fault tests freeze it.
    pub fn server_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// The superuser's password, when the cluster has one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `postgresql://postgres[:password]@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        match &self.password {
            Some(password) => format!(
                "postgresql://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
                url::form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>(),
                self.port
            ),
            None => format!(
                "postgresql://{SUPERUSER}@127.0.0.1:{}/{database}",
                self.port
            ),
        }
    }

    /// Runs SQL through psql as the superuser (ON_ERROR_STOP) and returns its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, ClusterError> {
        let mut psql = Command::new(self.bin.join("psql"));
        psql.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .args(["-U", SUPERUSER, "-p"])
        .arg(self.port.to_string())
        .args(["-d", database, "-c", sql]);
        if let Some(password) = &self.password {
            psql.env("PGPASSWORD", password);
        }
        let output = run_tool(&mut psql, "psql", None)?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Creates a database.
    pub fn create_database(&self, name: &str) -> Result<(), ClusterError> {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\"")),
        )
        .map(|_| ())
    }

    /// The folder of the server binaries (psql, pg_dump, ... live there too).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// Starts a stopped server again, on the same port and files (a restart after `stop`).
    pub fn start_again(&mut self) -> Result<(), ClusterError> {
        if self.running {
            return Ok(());
        }
        self.pg_ctl_start()?;
        self.running = true;
        Ok(())
    }

    /// `pg_ctl start`, waiting until the server accepts connections; its log goes to the
    /// cluster's folder.
    fn pg_ctl_start(&self) -> Result<Output, ClusterError> {
        let mut pg_ctl = Command::new(self.bin.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.root.path().join("server.log"))
            .args(["-w", "-t", "60", "start"]);
        run_tool(&mut pg_ctl, "pg_ctl start", self.owner)
    }

    /// Stops the server at once (as a crash would), keeping the files until drop.
    pub fn stop(&mut self) {
        if self.running {
            let mut pg_ctl = Command::new(self.bin.join("pg_ctl"));
            pg_ctl
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"]);
            let _ = run_tool(&mut pg_ctl, "pg_ctl stop", self.owner);
            self.running = false;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        what: what.to_string(),
        source,
    }
}

/// initdb on PATH, else the newest /usr/lib/postgresql/N/bin (Debian keeps them there).
fn find_binaries() -> Result<PathBuf, ClusterError> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("initdb");
            if candidate.is_file() {
                let real = fs::canonicalize(&candidate).unwrap_or(candidate);
                if let Some(parent) = real.parent()
                    && parent.join("pg_ctl").is_file()
                {
                    return Ok(parent.to_path_buf());
                }
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or(ClusterError::NoBinaries)
}

/// Whom the server runs as: ourselves, or `postgres` when we are root.
fn server_owner() -> Result<Option<(Uid, Gid)>, ClusterError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    match User::from_name(SUPERUSER) {
        Ok(Some(user)) => Ok(Some((user.uid, user.gid))),
        _ => Err(ClusterError::NoPostgresUser),
    }
}

fn give_to(path: &Path, owner: Option<(Uid, Gid)>) -> Result<(), ClusterError> {
    if let Some((uid, gid)) = owner {
        chown(path, Some(uid), Some(gid)).map_err(|errno| ClusterError::Io {
            what: format!("cannot hand {} to the postgres user", path.display()),
            source: errno.into(),
        })?;
    }
    Ok(())
}

fn write_private(
    path: &Path,
    contents: &str,
    owner: Option<(Uid, Gid)>,
) -> Result<(), ClusterError> {
    let what = format!("cannot write {}", path.display());
    fs::write(path, contents).map_err(io(&what))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io(&what))?;
    give_to(path, owner)
}

fn append_conf(data: &Path, settings: &[(String, String)]) -> Result<(), ClusterError> {
    use std::io::Write;
    let path = data.join("postgresql.conf");
    let what = format!("cannot write {}", path.display());
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(io(&what))?;
    for (name, value) in settings {
        writeln!(file, "{name} = {value}").map_err(io(&what))?;
    }
    Ok(())
}

/// Quotes a setting value unless it is a plain number or word.
fn quote_setting(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
    if plain || value.starts_with('\'') {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("cannot find a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io("cannot find a free port"))?
        .port();
    Ok(port)
}

fn run_tool(
    command: &mut Command,
    tool: &str,
    owner: Option<(Uid, Gid)>,
) -> Result<Output, ClusterError> {
    if let Some((uid, gid)) = owner {
        command.uid(uid.as_raw()).gid(gid.as_raw());
        // The tools read $HOME; root's is not readable by postgres.
        command.env("HOME", "/tmp");
    }
    command.stdin(Stdio::null());
    // A tool run as postgres cannot chdir into a root-only working directory.
    command.current_dir("/");
    let output = command.output().map_err(|source| ClusterError::Io {
        what: format!("cannot run {tool}"),
        source,
    })?;
    if output.status.success() {
        Ok(output)
    } else {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Err(ClusterError::Tool {
            tool: tool.to_string(),
            detail: tail(&text, 5),
        })
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

/// A self-signed certificate for localhost and 127.0.0.1, as PEM (certificate, key).
fn self_signed() -> Result<(String, String), ClusterError> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| ClusterError::Certificate(e.to_string()))?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}
