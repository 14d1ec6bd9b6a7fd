//! The two-person rule (`--require-approval`): a confirmed destructive step of a production run
//! waits for a second person, who approves by typing the database name or rejects with a reason
//! (`cutover approve`, or in `cutover watch`), never the operator's own account; approval,
//! rejection and timeout are journaled with who, when and from where, and in the report.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;

/// A headless production check of `runbook` with the confirmation given; `extra` adds flags.
fn check(home: &Path, work: &Path, url: &str, runbook: &str, extra: &[&str]) -> Command {
    let runbook = write_runbook(work, runbook);
    let database = database_of(url);
    let mut args = vec![
        "check",
        "--runbook",
        runbook.as_str(),
        "--database-url",
        url,
        "--allow-shell",
        "--confirm",
        database.as_str(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let mut command = cutover_in(home, &args);
    command.current_dir(work);
    command
}

/// A check that waits: its standard error's line naming the run, and the check itself.
struct Waiting {
    child: Child,
    run: String,
    said: String,
}

/// Starts `command` and reads its standard error until it says the step waits for approval.
fn until_it_waits(mut command: Command) -> Waiting {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let said = loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("waits for a second person's approval") => break line,
            Some(_) => continue,
            None => panic!("the check ended without asking for approval"),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let run = said
        .split("cutover approve ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the line names the run")
        .to_string();
    Waiting { child, run, said }
}

impl Waiting {
    fn finish(self) -> (Option<i32>, serde_json::Value) {
        let output = self.child.wait_with_output().unwrap();
        let report = serde_json::from_slice(&output.stdout).expect("a JSON report");
        (output.status.code(), report)
    }
}

/// A production check under the rule, its journal shared with the second account's group,
/// once its step waits.
fn shared_and_waiting(home: &Path, work: &Path, url: &str) -> Waiting {
    let mut command = check(
        home,
        work,
        url,
        DESTRUCTIVE_RUNBOOK,
        &["--require-approval"],
    );
    command.args(["--share-group", PAIR_GROUP]);
    until_it_waits(command)
}

/// `cutover approve` went through and names the approver (`who` starts what it says after
/// "as"); the waiting check then ran its step. The check's report.
fn approved_and_run(
    approved: &std::process::Output,
    run: &str,
    who: &str,
    waiting: Waiting,
    work: &Path,
) -> serde_json::Value {
    assert_eq!(approved.status.code(), Some(0), "{}", stderr(approved));
    assert!(
        stdout(approved).contains(&format!("approved apply.change of run {run} as {who}")),
        "{}",
        stdout(approved)
    );
    let (code, report) = waiting.finish();
    assert_eq!(code, Some(0), "{report}");
    assert!(work.join("changed.txt").exists(), "the step ran");
    report
}

fn report_md(home: &Path, run: &str) -> String {
    stdout(&cutover_in(home, &["report", run]).output().unwrap())
}

#[test]
fn the_operators_own_account_cannot_approve_and_nobody_answering_fails_the_step() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let url = fresh_database();
    let database = database_of(&url);
    let command = check(
        home.path(),
        work.path(),
        &url,
        DESTRUCTIVE_RUNBOOK,
        &["--require-approval", "--approval-timeout", "3"],
    );
    let waiting = until_it_waits(command);
    assert!(
        waiting.said.contains("shell: echo changed > changed.txt"),
        "the request says what runs: {}",
        waiting.said
    );
    let run = waiting.run.clone();

    // The operator's own account is not a second person.
    let own = cutover_in(
        home.path(),
        &["approve", &run, "apply.change", "--confirm", &database],
    )
    .output()
    .unwrap();
    assert_one_line_error(&own, 1, "you are the operator of run");
    // A step that never asked.
    let never = cutover_in(
        home.path(),
        &["approve", &run, "apply.other", "--confirm", &database],
    )
    .output()
    .unwrap();
    assert_one_line_error(&never, 1, "apply.other of run");
    assert!(stderr(&never).contains("it never asked for one"));

    let (code, report) = waiting.finish();
    assert_eq!(code, Some(1), "{report}");
    let step = &report["steps"][0];
    assert_eq!(step["status"], "fail", "{report}");
    assert!(
        step["message"]
            .as_str()
            .unwrap()
            .starts_with("nobody approved it within 3 s: nothing was run"),
        "{report}"
    );
    assert!(!work.path().join("changed.txt").exists(), "nothing ran");
    let md = report_md(home.path(), &run);
    assert!(md.contains("## Approvals"), "{md}");
    assert!(md.contains("nobody answered in 3 s"), "{md}");

    // Too late: the request timed out.
    let late = cutover_in(
        home.path(),
        &["approve", &run, "apply.change", "--confirm", &database],
    )
    .output()
    .unwrap();
    assert_one_line_error(&late, 1, "is not waiting for approval");
}

#[test]
fn a_second_account_approves_the_step_runs_and_the_record_names_both() {
    let Some(approver) = second_account() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let url = fresh_database();
    let database = database_of(&url);
    let waiting = shared_and_waiting(home.path(), work.path(), &url);
    let run = waiting.run.clone();

    let wrong = approver
        .cutover(
            home.path(),
            &["approve", &run, "apply.change", "--confirm", "postgres"],
        )
        .output()
        .unwrap();
    assert_one_line_error(&wrong, 1, "`postgres` is not the target's database name");
    assert!(!work.path().join("changed.txt").exists(), "nothing ran yet");

    let approved = approver
        .cutover(
            home.path(),
            &["approve", &run, "apply.change", "--confirm", &database],
        )
        .env("SSH_CONNECTION", "203.0.113.7 50022 10.0.0.1 22")
        .output()
        .unwrap();
    let report = approved_and_run(&approved, &run, WATCHER, waiting, work.path());
    let details = report["steps"][0]["details"].to_string();
    assert!(
        details.contains(&format!("approved by {WATCHER} ({WATCHER}@")),
        "the step's record says who approved: {report}"
    );

    let md = report_md(home.path(), &run);
    let operator = cutover::journal::operator();
    assert!(md.contains(&format!("| Operator | {operator} |")), "{md}");
    let sign_off = md
        .lines()
        .skip_while(|l| !l.starts_with("## Sign-offs"))
        .find(|l| l.starts_with("- "))
        .unwrap_or_default()
        .to_string();
    assert!(
        sign_off.contains(&format!("{WATCHER} ({WATCHER}@"))
            && sign_off.contains("approved `apply.change` as the second person"),
        "the sign-offs name the approver: {md}"
    );

    // Answered once: a second answer finds nothing waiting, and says who answered.
    let again = approver
        .cutover(
            home.path(),
            &["approve", &run, "apply.change", "--confirm", &database],
        )
        .output()
        .unwrap();
    assert_one_line_error(&again, 1, &format!("it was approved by {WATCHER}"));
}

#[test]
fn a_rejection_fails_the_step_with_its_reason_and_runs_nothing() {
    let Some(approver) = second_account() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let url = fresh_database();
    let waiting = shared_and_waiting(home.path(), work.path(), &url);
    let run = waiting.run.clone();
    let rejected = approver
        .cutover(
            home.path(),
            &[
                "approve",
                &run,
                "apply.change",
                "--reject",
                "not during the peak",
            ],
        )
        .output()
        .unwrap();
    assert_eq!(rejected.status.code(), Some(0), "{}", stderr(&rejected));
    let (code, report) = waiting.finish();
    assert_eq!(code, Some(1), "{report}");
    let message = report["steps"][0]["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with(&format!("rejected by {WATCHER} ("))
            && message.ends_with(": not during the peak; nothing was run"),
        "{message}"
    );
    assert!(!work.path().join("changed.txt").exists(), "nothing ran");
    let md = report_md(home.path(), &run);
    assert!(md.contains(&format!("rejected by {WATCHER}")), "{md}");
}

#[test]
fn a_rehearsal_is_not_held_and_a_runbook_can_require_approval_itself() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let url = fresh_database();
    // A rehearsal under the flag runs at once.
    let output = check(
        home.path(),
        work.path(),
        &url,
        DESTRUCTIVE_RUNBOOK,
        &["--require-approval", "--rehearsal"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stderr(&output).contains("approval"), "{}", stderr(&output));
    assert!(work.path().join("changed.txt").exists());
    std::fs::remove_file(work.path().join("changed.txt")).unwrap();

    // The runbook's own setting holds a production run without the flag.
    let required = format!("require_approval = true\n{DESTRUCTIVE_RUNBOOK}");
    let waiting = until_it_waits(check(
        home.path(),
        work.path(),
        &url,
        &required,
        &["--approval-timeout", "1"],
    ));
    let (code, report) = waiting.finish();
    assert_eq!(code, Some(1), "{report}");
    assert!(!work.path().join("changed.txt").exists(), "nothing ran");
}

/// The engine's own guard: an answer from the operator's account without another person's
/// name does not count (it is set aside, said, and the step waits on); with a name, it does,
/// and the record says the account was shared.
#[test]
fn an_answer_from_the_operators_account_counts_only_with_another_persons_name() {
    use cutover::approval::{self, Gate, Verdict};
    use cutover::journal::{Entry, Journal};
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let url = fresh_database();
    let runbook = runbook_from(DESTRUCTIVE_RUNBOOK);
    block_on(async {
        let journal = Journal::open(home.path(), true).await.unwrap();
        let gate = Gate::for_run(
            true,
            &runbook,
            true,
            Some(&journal),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        let answers = gate.as_ref().unwrap().answers.clone();
        let cutover::approval::Answers::Folder(folder) = answers.clone() else {
            panic!("the embedded journal's answers are files");
        };
        let options = cutover::check::CheckOptions {
            journal: Some(journal.clone()),
            allow_shell: true,
            confirm: Some(database_of(&url)),
            workdir: Some(work.path().to_path_buf()),
            approval: gate,
            ..Default::default()
        };
        let target = cutover::target::Target::from_url(&url).unwrap();
        let answering = async {
            // The request, as an approver reads it from the journal.
            let (run, request) = loop {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let Some(run) = journal.runs().await.unwrap().into_iter().next() else {
                    continue;
                };
                let events = journal.events(&run.id).await.unwrap();
                if let Ok(request) = approval::open_request(&events, "apply.change") {
                    break (run, request);
                }
            };
            // Written by hand: the operator's account, no name.
            let bare = serde_json::json!({
                "request": request.request, "approve": true, "typed": request.database,
                "host": "here", "decided_at": "2026-12-02T00:00:00Z"
            });
            std::fs::write(
                folder.join(format!("{}.json", request.request)),
                bare.to_string(),
            )
            .unwrap();
            wait_for_output(&journal, &run.id, "was not taken").await;
            assert!(
                !work.path().join("changed.txt").exists(),
                "not approved yet"
            );
            // The operator's own name is refused before anything is written.
            let own = approval::answer(
                &answers,
                &run,
                "apply.change",
                &request,
                Verdict::Approve {
                    typed: request.database.clone(),
                },
                Some(&approval::os_user()),
            )
            .await;
            assert!(
                matches!(own, Err(approval::ApprovalError::SamePerson { .. })),
                "{own:?}"
            );
            approval::answer(
                &answers,
                &run,
                "apply.change",
                &request,
                Verdict::Approve {
                    typed: request.database.clone(),
                },
                Some("bob"),
            )
            .await
            .unwrap();
            run
        };
        let (report, run) = tokio::join!(
            cutover::check::run_check(runbook.clone(), &target, &options),
            answering
        );
        let report = report.unwrap();
        assert_eq!(
            report.steps[0].status,
            cutover::outcome::Status::Pass,
            "{report:?}"
        );
        let events = journal.events(&run.id).await.unwrap();
        let decision = events
            .iter()
            .find_map(|e| match &e.entry {
                Entry::Approved(decision) => Some(decision.clone()),
                _ => None,
            })
            .expect("the approval is journaled");
        assert_eq!(decision.by, "bob");
        assert!(
            decision.account.ends_with("the operator's own account"),
            "{decision:?}"
        );
    });
    assert!(work.path().join("changed.txt").exists());
}

/// Waits until the run's journal holds an output line containing `needle`.
async fn wait_for_output(journal: &cutover::journal::Journal, run: &str, needle: &str) {
    for _ in 0..200 {
        let events = journal.events(run).await.unwrap();
        if events.iter().any(|e| {
            matches!(&e.entry, cutover::journal::Entry::StepOutput { text, .. } if text.contains(needle))
        }) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no output line with `{needle}`");
}

/// Across machines the journal is in PostgreSQL, and so are the answers: the operator's own
/// role (on the operator's own account and host) is refused, another person's role approves,
/// and the record names that role.
#[test]
fn through_a_journal_in_postgres_another_database_role_approves() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let url = fresh_database();
    let control = empty_database();
    let mut command = check(
        home.path(),
        work.path(),
        &url,
        DESTRUCTIVE_RUNBOOK,
        &["--require-approval"],
    );
    command.args(["--journal-url", &control]);
    let waiting = until_it_waits(command);
    let run = waiting.run.clone();
    let database = database_of(&url);

    // Bob's role may read the journal and answer.
    let (role, bobs) = journal_role(&control, "approver");
    let own = cutover_in(
        home.path(),
        &[
            "--journal-url",
            &control,
            "approve",
            &run,
            "apply.change",
            "--confirm",
            &database,
        ],
    )
    .output()
    .unwrap();
    assert_one_line_error(&own, 1, "you are the operator of run");

    let elsewhere = tempfile::tempdir().unwrap();
    let approved = cutover_in(
        elsewhere.path(),
        &[
            "--journal-url",
            &bobs,
            "approve",
            &run,
            "apply.change",
            "--confirm",
            &database,
        ],
    )
    .output()
    .unwrap();
    let report = approved_and_run(&approved, &run, &format!("{role} ("), waiting, work.path());
    assert!(
        report["steps"][0]["details"]
            .to_string()
            .contains(&format!("database role {role}")),
        "{report}"
    );
}
