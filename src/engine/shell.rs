//! Shell steps: a real process in its own process group, its output streamed line by line,
//! the whole group killed on timeout or cancel.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Event, OutputStream};
use crate::outcome::Outcome;
use crate::redact::Redactor;

/// Lines of output kept for the step's details.
const TAIL_LINES: usize = 20;
/// A line longer than this is cut into pieces, so a child that never prints a newline cannot
/// grow our memory.
const MAX_LINE_BYTES: usize = 16 * 1024;
/// How long a child gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long to keep reading after the child exits (grandchildren may hold the pipes).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Everything a shell step needs, already substituted.
pub struct ShellJob<'a> {
    /// Full step id, for the output events.
    pub step_id: &'a str,
    /// Run with `/bin/sh -c`.
    pub command: &'a str,
    /// Working directory.
    pub workdir: &'a Path,
    /// Environment added to the inherited one (the target's connection and the step's own).
    pub env: BTreeMap<String, String>,
    /// Exit code that means success.
    pub expect_exit: i32,
    /// Killed after this long.
    pub timeout: Duration,
}

/// The step's direct child: a shell that runs the step's command (itself a `sh -c`, as
/// written) and, when cutover dies without a word (`kill -9`), learns of it from the kernel
/// (`PR_SET_PDEATHSIG` sends it SIGUSR2) and ends the whole process group: TERM, then KILL.
/// A TERM from cutover reaches the whole group as before.
const SUPERVISOR: &str = r#"trap 'kill -TERM 0 2>/dev/null; sleep 2; kill -KILL 0' USR2
/bin/sh -c "$1" &
child=$!
wait "$child"
status=$?
# wait also returns when a trapped signal arrives: wait again for the command's own status.
while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done
exit "$status""#;

/// How long the supervisor waits between TERM and KILL (the `sleep 2` of [`SUPERVISOR`]).
pub const SUPERVISOR_GRACE: Duration = Duration::from_secs(2);

/// Runs the job; output lines go to `events` as they arrive, secrets masked. `reason` says why
/// a cancellation happened, when one does.
pub async fn run(
    job: ShellJob<'_>,
    events: &mpsc::Sender<Event>,
    redactor: &Redactor,
    cancel: &CancellationToken,
    reason: impl Fn() -> String,
) -> Outcome {
    let mut command = tokio::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(SUPERVISOR)
        .arg("cutover-step")
        .arg(job.command)
        .current_dir(job.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // The target reaches the child only through these variables; inherited ones that name
    // another database are removed first.
    for name in [
        "DATABASE_URL",
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "PGSSLMODE",
        "PGSERVICE",
    ] {
        command.env_remove(name);
    }
    command.envs(&job.env);
    let parent = nix::unistd::getpid();
    // SAFETY: between fork and exec only async-signal-safe calls are made: prctl, getppid
    // and raise.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGUSR2)?;
            // cutover may have died between fork and prctl: then nothing would tell.
            if nix::unistd::getppid() != parent {
                let _ = nix::sys::signal::raise(Signal::SIGUSR2);
            }
            Ok(())
        });
    }

    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            return Outcome::error(format!(
                "cannot start the command in {}: {err}",
                job.workdir.display()
            ));
        }
    };
    let Some(pid) = child.id() else {
        return Outcome::error("the command exited before it could be watched");
    };
    let group = Pid::from_raw(pid as i32);
    // Journaled: a run resumed after cutover itself was killed looks for survivors.
    let _ = events
        .send(Event::StepProcess {
            id: job.step_id.to_string(),
            pid,
            command: redactor.redact(job.command).into_owned(),
        })
        .await;
    // However this future ends (finished, or dropped because the engine shut down) the
    // step's processes do not outlive it.
    let _group_guard = GroupGuard(group);

    let (line_tx, mut line_rx) = mpsc::channel::<(OutputStream, String)>(256);
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        readers.push(tokio::spawn(read_lines(
            stdout,
            OutputStream::Stdout,
            line_tx.clone(),
        )));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(tokio::spawn(read_lines(
            stderr,
            OutputStream::Stderr,
            line_tx.clone(),
        )));
    }
    drop(line_tx);

    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    // The last thing the command said on stderr: a failing step's message names it, so that
    // "why" fits on the one line (e.g. "no Prisma CLI in /srv/app").
    let mut last_error: Option<String> = None;
    let mut forward = async |stream: OutputStream, line: String, tail: &mut VecDeque<String>| {
        // Masked before anything keeps it: the screen, the journal, the reports, the tail.
        let line = match redactor.redact(&line) {
            std::borrow::Cow::Borrowed(_) => line,
            std::borrow::Cow::Owned(masked) => masked,
        };
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        if stream == OutputStream::Stderr && !line.trim().is_empty() {
            last_error = Some(line.trim().to_string());
        }
        // Backpressure: when the consumer is slow the child waits on its pipe, rather than
        // our memory growing with its output.
        let _ = events
            .send(Event::StepOutput {
                id: job.step_id.to_string(),
                stream,
                line,
            })
            .await;
    };

    let deadline = tokio::time::sleep(job.timeout);
    tokio::pin!(deadline);
    let mut lines_open = true;
    let ended = loop {
        tokio::select! {
            status = child.wait() => break Ended::Exited(status),
            _ = &mut deadline => break Ended::TimedOut,
            _ = cancel.cancelled() => break Ended::Cancelled,
            line = line_rx.recv(), if lines_open => match line {
                Some((stream, line)) => forward(stream, line, &mut tail).await,
                None => lines_open = false,
            },
        }
    };

    if !matches!(ended, Ended::Exited(_)) {
        terminate_group(group, &mut child).await;
    }
    // Take what is left in the pipes, within a bound: a grandchild that keeps them open must
    // not hold the step forever.
    let drain = async {
        while let Some((stream, line)) = line_rx.recv().await {
            forward(stream, line, &mut tail).await;
        }
    };
    let drained = tokio::time::timeout(DRAIN_GRACE, drain).await.is_ok();
    for reader in readers {
        reader.abort();
    }

    let details: Vec<String> = tail.into_iter().collect();
    let outcome = match ended {
        Ended::TimedOut => Outcome::error(format!(
            "timed out after {}s; its process group was killed",
            job.timeout.as_secs_f64()
        )),
        Ended::Cancelled => Outcome::error(format!("{}; its process group was killed", reason())),
        Ended::Exited(Err(err)) => Outcome::error(format!("lost track of the command: {err}")),
        Ended::Exited(Ok(status)) => match status.code() {
            Some(code) if code == job.expect_exit => Outcome::pass(format!("exited with {code}")),
            Some(code) => Outcome::fail(match &last_error {
                Some(said) => format!("exited with {code}, expected {}: {said}", job.expect_exit),
                None => format!("exited with {code}, expected {}", job.expect_exit),
            }),
            None => {
                use std::os::unix::process::ExitStatusExt;
                let signal = status.signal().unwrap_or(0);
                Outcome::fail(format!("killed by signal {signal}"))
            }
        },
    };
    let outcome = if drained {
        outcome
    } else {
        outcome.with_details([
            "(a background process kept the output open; it was killed)".to_string()
        ])
    };
    outcome.with_details(details)
}

/// Whether anything still runs in process group `pid`.
pub fn group_alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|raw| killpg(Pid::from_raw(raw), None).is_ok())
}

/// Ends process group `pid`: TERM, then KILL after the grace period if anything is left.
pub async fn end_group(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    let group = Pid::from_raw(raw);
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + KILL_GRACE;
    while killpg(group, None).is_ok() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = killpg(group, Signal::SIGKILL);
}

struct GroupGuard(Pid);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

enum Ended {
    Exited(std::io::Result<std::process::ExitStatus>),
    TimedOut,
    Cancelled,
}

/// SIGTERM to the whole group, then SIGKILL if the leader has not exited after a grace period.
async fn terminate_group(group: Pid, child: &mut tokio::process::Child) {
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(KILL_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

/// Splits a pipe into lines (cut at `MAX_LINE_BYTES`), lossily decoded.
async fn read_lines(
    mut pipe: impl AsyncRead + Unpin,
    stream: OutputStream,
    lines: mpsc::Sender<(OutputStream, String)>,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        let read = match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..read]);
        while let Some(newline) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=newline).collect();
            if lines.send((stream, decode(&line))).await.is_err() {
                return;
            }
        }
        if pending.len() >= MAX_LINE_BYTES {
            let line: Vec<u8> = std::mem::take(&mut pending);
            if lines.send((stream, decode(&line))).await.is_err() {
                return;
            }
        }
    }
    if !pending.is_empty() {
        let _ = lines.send((stream, decode(&pending))).await;
    }
}

fn decode(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches(['\n', '\r'])
        .to_string()
}
