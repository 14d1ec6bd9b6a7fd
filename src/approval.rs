//! The two-person rule: on a production run that requires it, a destructive step the operator
//! confirmed waits until a second person approves it (or rejects it, with a reason).
//!
//! The operator's engine asks: it journals an `approval_requested` event (the step, what it
//! will run, the target) and looks every [`POLL`] for the answer, a file named after the
//! request in the `approvals/` folder beside the journal. The observer's `cutover watch` or
//! `cutover approve` writes that file, once (a second answer to the same request is refused),
//! and the engine journals the decision. Who approved is the file's owner: a different OS
//! account is told apart by the kernel, not by what it claims. An observer sharing the
//! operator's account gives another name (`cutover watch --as NAME`), and the record says the
//! account was shared. With `--share-group` the folder is writable by the group (setgid and
//! sticky: nobody removes another's answer).

use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::journal::{Entry, Recorded, Run};

/// How long a step waits for its approval unless told otherwise (`--approval-timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How often the engine looks for an answer.
pub const POLL: Duration = Duration::from_millis(100);

/// The folder of the answers, beside the journal file.
pub fn folder_of(journal_file: &Path) -> PathBuf {
    journal_file.with_file_name("approvals")
}

/// A destructive step asking for a second person's approval (journaled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The request's id: the answer's file name.
    pub request: String,
    /// What will run, in one line.
    pub action: String,
    /// The SQL or the command, line by line (secrets masked).
    #[serde(default)]
    pub detail: Vec<String>,
    /// The target, password redacted.
    pub target: String,
    /// The target database's name: the approver types it.
    pub database: String,
    /// user@host of the operator.
    pub operator: String,
    /// The operator's database role, for a journal in PostgreSQL (there, two people may share
    /// an OS account and not a role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_role: Option<String>,
}

/// A second person's answer, as the operator's engine accepted it (journaled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The request answered.
    pub request: String,
    /// Who: the OS account's user, or the name given on the operator's own account.
    pub by: String,
    /// The OS account that wrote the answer, user@host; "(the operator's account)" when
    /// shared.
    pub account: String,
    /// The SSH client's address the approver came from, if over SSH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the approver answered (RFC 3339).
    pub decided_at: String,
}

impl Decision {
    /// "bob (bob@bastion, over SSH from 10.0.0.7)".
    pub fn who(&self) -> String {
        let from = self
            .from
            .as_ref()
            .map(|ip| format!(", over SSH from {ip}"))
            .unwrap_or_default();
        format!("{} ({}{from})", self.by, self.account)
    }
}

/// What became of an approval request, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// The step waits.
    Requested(Request),
    /// Approved: the step runs.
    Approved(Decision),
    /// Rejected: the step fails, with the reason.
    Rejected(Decision),
    /// Nobody answered in time: the step fails.
    TimedOut {
        /// The request.
        request: String,
        /// How long it waited, in seconds.
        waited_s: u64,
    },
}

impl Approval {
    /// The journal's record of it.
    pub fn entry(&self) -> Entry {
        match self.clone() {
            Approval::Requested(request) => Entry::ApprovalRequested(request),
            Approval::Approved(decision) => Entry::Approved(decision),
            Approval::Rejected(decision) => Entry::Rejected(decision),
            Approval::TimedOut { request, waited_s } => {
                Entry::ApprovalTimedOut { request, waited_s }
            }
        }
    }
}

/// The answer's file as the approver writes it. Its owner, not its fields, says which account
/// wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Answer {
    request: String,
    approve: bool,
    /// The name given on the operator's own account (`--as`).
    #[serde(default)]
    name: Option<String>,
    /// The database name typed.
    #[serde(default)]
    typed: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    host: String,
    /// The OS user the approver runs as (what the kernel says, for a file: its owner).
    #[serde(default)]
    os_user: String,
    decided_at: String,
}

/// An answer's row in a journal in PostgreSQL, with whether its role is this session's.
#[derive(sqlx::FromRow)]
struct AnswerRow {
    approve: bool,
    name: Option<String>,
    typed: String,
    reason: Option<String>,
    from_ip: Option<String>,
    host: String,
    os_user: String,
    db_role: String,
    decided_at: String,
    same_role: bool,
}

/// Which account an answer came from, and whether it is the operator's own.
struct Account {
    /// Its user: the file's owner, or the OS user the row names.
    user: String,
    /// user@host, and the database role for an answer in PostgreSQL.
    described: String,
    /// The operator's own account (same user; for PostgreSQL, same host and role too).
    operators: bool,
}

/// Where the answers go: files in `approvals/` beside the embedded journal, or the
/// `approvals` table of a journal in PostgreSQL (one row per request, written once).
#[derive(Debug, Clone)]
pub enum Answers {
    /// A folder beside the journal file.
    Folder(PathBuf),
    /// The journal's PostgreSQL database.
    Postgres(sqlx::PgPool),
}

impl Answers {
    /// The answers of `journal`'s runs.
    pub fn of(journal: &crate::journal::Journal) -> Answers {
        match journal.postgres() {
            Some(pool) => Answers::Postgres(pool.clone()),
            None => Answers::Folder(folder_of(journal.path())),
        }
    }

    /// The database role this process answers as, for answers in PostgreSQL.
    pub async fn role(&self) -> Option<String> {
        match self {
            Answers::Folder(_) => None,
            Answers::Postgres(pool) => sqlx::query_as::<_, (String,)>("SELECT current_user::text")
                .fetch_one(pool)
                .await
                .ok()
                .map(|(role,)| role),
        }
    }

    fn shown(&self) -> String {
        match self {
            Answers::Folder(folder) => folder.display().to_string(),
            Answers::Postgres(_) => "the journal's approvals table".to_string(),
        }
    }

    /// Makes the folder, if the answers go in one (private to the operator unless the journal
    /// is shared with a group, which opened it to the group).
    pub fn prepare(&self) -> std::io::Result<()> {
        match self {
            Answers::Folder(folder) => ensure_folder(folder),
            Answers::Postgres(_) => Ok(()),
        }
    }

    /// Writes an answer once: `Ok(false)` when the request had one already.
    async fn write(&self, run_id: &str, answer: &Answer) -> Result<bool, String> {
        match self {
            Answers::Folder(folder) => write_file(folder, answer),
            Answers::Postgres(pool) => sqlx::query(
                "INSERT INTO approvals (request, run_id, approve, name, typed, reason, from_ip, host, os_user, decided_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (request) DO NOTHING",
            )
            .bind(&answer.request)
            .bind(run_id)
            .bind(answer.approve)
            .bind(&answer.name)
            .bind(&answer.typed)
            .bind(&answer.reason)
            .bind(&answer.from)
            .bind(&answer.host)
            .bind(&answer.os_user)
            .bind(&answer.decided_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected() == 1)
            .map_err(|e| e.to_string()),
        }
    }

    /// The answer to `request`, if there is one, with the account it came from.
    async fn read(&self, request: &str) -> Option<Result<(Answer, Account), String>> {
        match self {
            Answers::Folder(folder) => {
                let path = folder.join(format!("{request}.json"));
                let meta = std::fs::metadata(&path).ok()?;
                let text = std::fs::read(&path).ok()?;
                let answer: Answer = match serde_json::from_slice(&text) {
                    Ok(answer) => answer,
                    Err(e) => return Some(Err(format!("the answer cannot be read ({e})"))),
                };
                let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(meta.uid()))
                    .ok()
                    .flatten()
                    .map_or_else(|| meta.uid().to_string(), |u| u.name);
                let account = Account {
                    described: format!("{user}@{}", answer.host),
                    user,
                    operators: meta.uid() == nix::unistd::geteuid().as_raw(),
                };
                Some(Ok((answer, account)))
            }
            Answers::Postgres(pool) => {
                let row = match sqlx::query_as::<_, AnswerRow>(
                    "SELECT approve, name, typed, reason, from_ip, host, os_user, db_role, decided_at,
                            db_role = current_user AS same_role
                       FROM approvals WHERE request = $1",
                )
                .bind(request)
                .fetch_optional(pool)
                .await
                {
                    Ok(row) => row?,
                    Err(e) => return Some(Err(format!("the answer cannot be read ({e})"))),
                };
                // The server authenticated the role; the OS user and host are the approver's
                // own word. A role of their own names the person; a shared one, the OS user.
                let account = Account {
                    described: format!(
                        "{}@{}, database role {}",
                        row.os_user, row.host, row.db_role
                    ),
                    operators: row.same_role && row.os_user == os_user() && row.host == host(),
                    user: if row.same_role {
                        row.os_user.clone()
                    } else {
                        row.db_role
                    },
                };
                let answer = Answer {
                    request: request.to_string(),
                    approve: row.approve,
                    name: row.name,
                    typed: row.typed,
                    reason: row.reason,
                    from: row.from_ip,
                    host: row.host,
                    os_user: row.os_user,
                    decided_at: row.decided_at,
                };
                Some(Ok((answer, account)))
            }
        }
    }

    /// Sets aside an answer that does not count, so that the step waits on.
    pub async fn refuse(&self, request: &str) {
        match self {
            Answers::Folder(folder) => {
                let path = folder.join(format!("{request}.json"));
                let _ = std::fs::rename(&path, path.with_extension("refused"));
            }
            Answers::Postgres(pool) => {
                let _ = sqlx::query("DELETE FROM approvals WHERE request = $1")
                    .bind(request)
                    .execute(pool)
                    .await;
            }
        }
    }

    /// What the operator's engine makes of the answer to `request`, if there is one: the
    /// decision, or why it does not count (the operator's own account without another
    /// person's name, a database name that does not match).
    pub async fn decision(
        &self,
        request: &str,
        confirms: impl Fn(&str) -> bool,
    ) -> Option<Result<(bool, Decision), String>> {
        let (answer, account) = match self.read(request).await? {
            Ok(found) => found,
            Err(why) => return Some(Err(why)),
        };
        let by = if account.operators {
            match answer.name.as_deref().map(str::trim) {
                Some(name) if !name.is_empty() && name != os_user() => name.to_string(),
                _ => {
                    return Some(Err(format!(
                        "it came from the operator's own account ({}) without another person's name",
                        account.user
                    )));
                }
            }
        } else {
            account.user.clone()
        };
        if answer.approve && !confirms(&answer.typed) {
            return Some(Err(format!(
                "the database name typed (`{}`) is not the target's",
                answer.typed
            )));
        }
        let account = if account.operators {
            format!("{}, the operator's own account", account.described)
        } else {
            account.described
        };
        Some(Ok((
            answer.approve,
            Decision {
                request: answer.request,
                by,
                account,
                from: answer.from,
                reason: answer.reason,
                decided_at: answer.decided_at,
            },
        )))
    }
}

/// The two-person rule for one run: where the answers are, and how long to wait.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Where the answers are.
    pub answers: Answers,
    /// How long a step waits.
    pub timeout: Duration,
}

impl Gate {
    /// The two-person rule for a run, as both front doors decide it: on a production run
    /// (never a rehearsal) when `--require-approval` is given or the runbook sets
    /// `require_approval`; the answers go beside `journal`, which a run under the rule needs.
    pub fn for_run(
        required: bool,
        runbook: &crate::runbook::Runbook,
        production: bool,
        journal: Option<&crate::journal::Journal>,
        timeout: Duration,
    ) -> Result<Option<Gate>, ApprovalError> {
        if !(required || runbook.require_approval) || !production {
            return Ok(None);
        }
        let journal = journal.ok_or(ApprovalError::NoJournal)?;
        let answers = Answers::of(journal);
        answers.prepare().map_err(|e| ApprovalError::Unwritable {
            folder: answers.shown(),
            detail: e.to_string(),
        })?;
        Ok(Some(Gate { answers, timeout }))
    }
}

/// Why an answer cannot be given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApprovalError {
    /// The approver is the operator.
    #[error(
        "you are the operator of run {run} ({operator}): a second person approves, from their own OS account (`cutover approve` or `cutover watch`), or, sharing this account, from `cutover watch --as THEIR-NAME`"
    )]
    SamePerson {
        /// The run.
        run: String,
        /// Its operator.
        operator: String,
    },
    /// The step is not waiting.
    #[error("{step} of run {run} is not waiting for approval: {why}")]
    NotWaiting {
        /// The run.
        run: String,
        /// The step.
        step: String,
        /// What became of it.
        why: String,
    },
    /// The database name does not match.
    #[error("`{typed}` is not the target's database name: type `{database}` exactly to approve")]
    WrongDatabase {
        /// What was typed.
        typed: String,
        /// The name.
        database: String,
    },
    /// The rule needs a journal to ask through.
    #[error(
        "the two-person rule needs the journal (the request and the answer are recorded there)"
    )]
    NoJournal,
    /// The answer cannot be written.
    #[error(
        "cannot write the answer in {folder}: {detail} (the operator shares the folder with `--share-group GROUP`, and you must be in that group)"
    )]
    Unwritable {
        /// The folder.
        folder: String,
        /// What failed.
        detail: String,
    },
}

/// The OS user this process runs as (from its uid, not the environment).
pub fn os_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map_or_else(|| nix::unistd::geteuid().to_string(), |u| u.name)
}

fn host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// The SSH client's address of this session, if it is one.
pub fn ssh_client() -> Option<String> {
    std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|c| c.split_whitespace().next().map(str::to_string))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The step's open request in a run's events: the last one asked, with nothing after it (no
/// decision, no timeout, the step not finished), else why the step is not waiting.
pub fn open_request(events: &[Recorded], step: &str) -> Result<Request, String> {
    let mut state: Result<Request, String> = Err("it never asked for one".to_string());
    for event in events.iter().filter(|e| e.step_id.as_deref() == Some(step)) {
        let at = event.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match &event.entry {
            Entry::ApprovalRequested(request) => state = Ok(request.clone()),
            Entry::Approved(decision) => {
                state = Err(format!("it was approved by {} at {at}", decision.who()))
            }
            Entry::Rejected(decision) => {
                state = Err(format!("it was rejected by {} at {at}", decision.who()))
            }
            Entry::ApprovalTimedOut { waited_s, .. } => {
                state = Err(format!("its request timed out after {waited_s} s, at {at}"))
            }
            Entry::StepFinished { status, .. } if state.is_ok() => {
                state = Err(format!("it ended ({}) at {at}", status.as_str()))
            }
            _ => {}
        }
    }
    state
}

/// A second person's answer to `request`: approve when `typed` is the database name, or reject
/// with `reason`. `name` is the name given on the operator's own account (`--as`): without it,
/// the operator's own account may not answer. Written once, in `answers`; the operator's engine
/// takes it at its next look.
pub async fn answer(
    answers: &Answers,
    run: &Run,
    step: &str,
    request: &Request,
    verdict: Verdict,
    name: Option<&str>,
) -> Result<(), ApprovalError> {
    let operator_user = run.operator.split('@').next().unwrap_or_default();
    let me = os_user();
    let shared_account =
        format!("{me}@{}", host()) == run.operator && answers.role().await == request.operator_role;
    if shared_account && name.is_none_or(|n| n.trim().is_empty() || n.trim() == operator_user) {
        return Err(ApprovalError::SamePerson {
            run: run.id.clone(),
            operator: run.operator.clone(),
        });
    }
    let (approve, typed, reason) = match verdict {
        Verdict::Approve { typed } => {
            if typed != request.database {
                return Err(ApprovalError::WrongDatabase {
                    typed,
                    database: request.database.clone(),
                });
            }
            (true, typed, None)
        }
        Verdict::Reject { reason } => (false, String::new(), Some(reason)),
    };
    let answer = Answer {
        request: request.request.clone(),
        approve,
        name: name
            .map(|n| n.trim().to_string())
            .filter(|_| shared_account),
        typed,
        reason,
        from: ssh_client(),
        host: host(),
        os_user: me,
        decided_at: now(),
    };
    match answers.write(&run.id, &answer).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApprovalError::NotWaiting {
            run: run.id.clone(),
            step: step.to_string(),
            why: "someone answered it already".to_string(),
        }),
        Err(detail) => Err(ApprovalError::Unwritable {
            folder: answers.shown(),
            detail,
        }),
    }
}

/// Writes an answer file whole, once: `Ok(false)` when the request has one already.
fn write_file(folder: &Path, answer: &Answer) -> Result<bool, String> {
    let path = folder.join(format!("{}.json", answer.request));
    let scratch = folder.join(format!(".{}.{}", answer.request, std::process::id()));
    let text = serde_json::to_vec(answer).map_err(|e| e.to_string())?;
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&scratch)
            .map_err(|e| e.to_string())?;
        // Readable by the operator's group whatever this account's umask says.
        file.set_permissions(std::fs::Permissions::from_mode(0o640))
            .and_then(|()| file.write_all(&text))
            .and_then(|()| file.sync_all())
            .map_err(|e| e.to_string())?;
    }
    // Whole or not at all, and only once: a link fails if another answer is there already.
    let linked = std::fs::hard_link(&scratch, &path);
    let _ = std::fs::remove_file(&scratch);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

/// What the approver says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Approve, having typed the database name.
    Approve {
        /// The name typed.
        typed: String,
    },
    /// Reject.
    Reject {
        /// Why.
        reason: String,
    },
}

/// The answers' folder for a run's gate, made if needed: private to the operator, unless the
/// journal is shared with a group (then `Journal::share_with` opened it to the group).
fn ensure_folder(folder: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(folder) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}
