//! Shell steps: a real process in its own process group, its output streamed in chunks of whole
//! lines,
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
/// How much is read from a pipe at once (as much as a Linux pipe holds).
const READ_BYTES: usize = 64 * 1024;
/// Chunks between the pipes' readers and the step: with `READ_BYTES`, the memory a step's
/// output can take on its way, whatever it prints.
const CHUNKS_IN_FLIGHT: usize = 8;
/// At most this many events in the engine's queue when a step's output is added to it.
const OUTPUT_QUEUED: usize = 16;
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

    let (chunk_tx, mut chunk_rx) = mpsc::channel::<(OutputStream, String)>(CHUNKS_IN_FLIGHT);
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        readers.push(tokio::spawn(read_chunks(
            stdout,
            OutputStream::Stdout,
            chunk_tx.clone(),
        )));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(tokio::spawn(read_chunks(
            stderr,
            OutputStream::Stderr,
            chunk_tx.clone(),
        )));
    }
    drop(chunk_tx);

    let mut tail = Tail::default();
    let forward = async |stream: OutputStream, text: String, tail: &mut Tail| {
        // Masked before anything keeps it: the screen, the journal, the reports, the tail.
        let text = match redactor.redact_lines(&text) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(masked) => masked,
        };
        tail.keep(stream, &text);
        // Backpressure: when the consumer is slow the child waits on its pipe, rather than
        // our memory growing with its output. Output waits until the events queue has no more
        // than `OUTPUT_QUEUED` events in it, so that what is queued stays small whatever the
        // queue's length.
        let headroom = events.max_capacity().saturating_sub(OUTPUT_QUEUED).max(1);
        if let Ok(mut permits) = events.reserve_many(headroom).await
            && let Some(permit) = permits.next()
        {
            permit.send(Event::StepOutput {
                id: job.step_id.to_string(),
                stream,
                text,
            });
        }
    };

    let deadline = tokio::time::sleep(job.timeout);
    tokio::pin!(deadline);
    let mut pipes_open = true;
    let ended = loop {
        tokio::select! {
            status = child.wait() => break Ended::Exited(status),
            _ = &mut deadline => break Ended::TimedOut,
            _ = cancel.cancelled() => break Ended::Cancelled,
            chunk = chunk_rx.recv(), if pipes_open => match chunk {
                Some((stream, text)) => forward(stream, text, &mut tail).await,
                None => pipes_open = false,
            },
        }
    };

    if !matches!(ended, Ended::Exited(_)) {
        terminate_group(group, &mut child).await;
    }
    // Take what is left in the pipes, within a bound: a grandchild that keeps them open must
    // not hold the step forever.
    let drain = async {
        while let Some((stream, text)) = chunk_rx.recv().await {
            forward(stream, text, &mut tail).await;
        }
    };
    let drained = tokio::time::timeout(DRAIN_GRACE, drain).await.is_ok();
    for reader in readers {
        reader.abort();
    }
    let last_error = tail.last_error.take();

    let details: Vec<String> = tail.lines.into_iter().collect();
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

/// The last lines of a step's output, for its details, and the last thing it said on stderr:
/// a failing step's message names it, so that "why" fits on the one line (e.g. "no Prisma CLI
/// in /srv/app").
#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    last_error: Option<String>,
}

impl Tail {
    /// Keeps the last lines of a chunk (only those: a chunk may hold thousands).
    fn keep(&mut self, stream: OutputStream, text: &str) {
        let last: Vec<&str> = output_lines(text).rev().take(TAIL_LINES).collect();
        for line in last.iter().rev() {
            if self.lines.len() == TAIL_LINES {
                self.lines.pop_front();
            }
            self.lines.push_back((*line).to_string());
        }
        if stream == OutputStream::Stderr
            && let Some(said) = output_lines(text)
                .rev()
                .find(|line| !line.trim().is_empty())
        {
            self.last_error = Some(said.trim().to_string());
        }
    }
}

/// The lines of a chunk of output, without their line ends.
pub fn output_lines(text: &str) -> impl DoubleEndedIterator<Item = &str> + Clone {
    let body = text.strip_suffix('\n').unwrap_or(text);
    (!text.is_empty())
        .then(|| body.split('\n'))
        .into_iter()
        .flatten()
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
}

/// Reads a pipe in chunks as the pipe delivers them, cut after the last complete line (so that
/// redaction, which works line by line, always sees whole lines), lossily decoded. Every line of
/// a chunk ends with `\n`: a line longer than `MAX_LINE_BYTES`, or left without one at the end,
/// is cut and given one.
async fn read_chunks(
    mut pipe: impl AsyncRead + Unpin,
    stream: OutputStream,
    chunks: mpsc::Sender<(OutputStream, String)>,
) {
    let mut buffer: Vec<u8> = Vec::with_capacity(READ_BYTES);
    loop {
        // Appends what the pipe holds (up to the room reserved) after what is left over.
        buffer.reserve(READ_BYTES);
        if matches!(pipe.read_buf(&mut buffer).await, Ok(0) | Err(_)) {
            break;
        }
        let cut = match memchr::memrchr(b'\n', &buffer) {
            Some(newline) => newline + 1,
            None if buffer.len() >= MAX_LINE_BYTES => buffer.len(),
            None => continue,
        };
        let rest = buffer.split_off(cut);
        let whole = std::mem::replace(&mut buffer, rest);
        if chunks.send((stream, decode(whole))).await.is_err() {
            return;
        }
    }
    if !buffer.is_empty() {
        let _ = chunks.send((stream, decode(buffer))).await;
    }
}

/// Lossy UTF-8, ending with a newline.
fn decode(bytes: Vec<u8>) -> String {
    let mut text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}
