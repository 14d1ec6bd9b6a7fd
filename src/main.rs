//! The command line: clap subcommands, each a thin call into the library.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

/// `println!` for what a command prints on standard output. A reader may stop reading
/// (`cutover report | head`, a `tee` killed during a deploy): a closed pipe ends the printing,
/// not the command, which goes on and ends as it would have (a deploy printing its progress
/// finishes its migration). Any other failure to write is said once on standard error.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod cli;
use clap::{Args, Parser, Subcommand, ValueEnum};

use cutover::check::{self, CheckOptions};
use cutover::db::{Db, DbSettings};
use cutover::demo::{self, DemoContents};
use cutover::engine;
use cutover::journal::{self, Journal, report};
use cutover::migrate::history;
use cutover::output;
use cutover::probes::Catalog;
use cutover::runbook::{self, Runbook, RunbookError};
use cutover::target::Target;
use cutover::tui::{self, WizardOptions, app::RunMode};

/// A terminal wizard that walks you through a production PostgreSQL migration.
#[derive(Debug, Parser)]
#[command(name = "cutover", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Args)]
struct Global {
    /// Target database URL (else DATABASE_URL, .env, then the PG* variables).
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// Runbook file (default: the bundled Sightline runbook).
    #[arg(long, global = true, value_name = "FILE")]
    runbook: Option<PathBuf>,
    /// Set a runbook variable (repeatable).
    #[arg(long = "var", global = true, value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Seconds between refreshes of the wizard's live panels.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 2.0, value_parser = parse_refresh)]
    refresh: f64,
    /// Share the journal with this Unix group, for an engineer of the group to watch the runs
    /// from their own account: the data directory, the journal and the run locks become
    /// readable by the group (never by others).
    #[arg(long, global = true, value_name = "GROUP", conflicts_with = "journal")]
    share_group: Option<String>,
    /// Read another account's journal (its `journal.sqlite3`, shared with `--share-group`),
    /// read-only: to list, report and watch its runs.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        conflicts_with = "journal_url"
    )]
    journal: Option<PathBuf>,
    /// Keep the journal in PostgreSQL, in a team's control database (never the migration's
    /// target), for engineers on different machines: its own schema, `cutover`.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "CUTOVER_JOURNAL_URL",
        conflicts_with = "share_group"
    )]
    journal_url: Option<String>,
}

/// Where the journal is, as the command line says.
#[derive(Debug, Clone, Default)]
struct JournalChoice {
    /// Another account's journal file (`--journal`).
    path: Option<PathBuf>,
    /// The group to share this account's with (`--share-group`).
    group: Option<String>,
    /// A journal in PostgreSQL (`--journal-url`).
    url: Option<String>,
}

static JOURNAL_CHOICE: std::sync::OnceLock<JournalChoice> = std::sync::OnceLock::new();

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Open the wizard on the target.
    Run {
        /// This run is a rehearsal (staging, a dry run), not the production go-live.
        #[arg(long)]
        rehearsal: bool,
        /// Pick up this journaled run again (see `cutover runs`).
        #[arg(long, value_name = "RUN", conflicts_with = "new")]
        resume: Option<String>,
        /// Start a new run even if an unfinished one exists for this target and runbook.
        #[arg(long)]
        new: bool,
        /// With --resume: watch a run another wizard has open, without changing it.
        #[arg(long, requires = "resume")]
        read_only: bool,
        #[command(flatten)]
        approval: ApprovalArgs,
    },
    /// Follow a run live on this terminal, at its own size, with your own navigation: a second
    /// engineer watching the one who runs it. Never runs a step.
    Watch {
        /// The run (an id or its start; default: the newest unfinished run of the journal).
        run: Option<String>,
        /// Your name, when you share the operator's OS account: it is what the record says
        /// approved (an approval from the operator's own account needs another person's name).
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
    },
    /// Approve (or reject) a destructive step that waits for a second person, from another
    /// terminal: the two-person rule of `--require-approval`.
    Approve {
        /// The run (an id or its start; `cutover runs` lists them).
        run: String,
        /// The step that waits (its full id, as the operator's screen shows it).
        step: String,
        /// The target database's name, typed to approve.
        #[arg(long, value_name = "DATABASE", required_unless_present = "reject")]
        confirm: Option<String>,
        /// Reject it instead, saying why.
        #[arg(long, value_name = "REASON", conflicts_with = "confirm")]
        reject: Option<String>,
    },
    /// Run every automated step headless and print the results.
    Check(CheckArgs),
    /// Start a throwaway PostgreSQL with the sample Sightline database and open the wizard on it.
    Demo {
        /// Only start it, print its URL, and wait until Ctrl-C.
        #[arg(long)]
        print_url: bool,
        /// Check it headless and print the results instead of opening the wizard.
        #[arg(long, conflicts_with = "print_url")]
        check: bool,
    },
    /// Prisma migration status, natively: the migrations folder against `_prisma_migrations`.
    Status {
        /// The Prisma migrations folder.
        #[arg(long, value_name = "DIR", default_value = "prisma/migrations")]
        migrations: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
    },
    /// Apply the pending Prisma migrations natively, as `prisma migrate deploy` does (same lock,
    /// rows and checksums), with a lock_timeout and safe retries.
    Deploy(cli::deploy::DeployArgs),
    /// Record a migration as applied or rolled back without running it, as `prisma migrate
    /// resolve` does (a baseline; a failed migration repaired by hand).
    Resolve(cli::resolve::ResolveArgs),
    /// The checklist's Phase 1 on a database without a Prisma history: write 0_init from the
    /// live schema (or take the one there) and record it as applied.
    Baseline(cli::baseline::BaselineArgs),
    /// Review migration SQL: squawk's rules, the lock each statement takes, graded by the live
    /// size of each table it locks (default: the pending migrations).
    Lint(cli::lint::LintArgs),
    /// The target's schema against what its applied migrations make, replayed into a
    /// throwaway cluster (schema drift).
    Drift(cli::drift::DriftArgs),
    /// Restore the newest dump into a throwaway cluster and apply the pending migrations to it,
    /// each timed (a rehearsal on production's data).
    Rehearse(cli::rehearse::RehearseArgs),
    /// Validate or export runbooks.
    #[command(subcommand)]
    Runbook(RunbookCmd),
    /// List the journaled runs, newest first.
    Runs,
    /// Export a journaled run.
    Report {
        /// The run's id (or a unique prefix); see `cutover runs`.
        run: Option<String>,
        /// The newest run.
        #[arg(long, conflicts_with = "run")]
        last: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
        format: ReportFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StatusFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportFormat {
    Md,
    Json,
    Junit,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Run only this section or step (repeatable).
    #[arg(long, value_name = "ID")]
    only: Vec<String>,
    /// Run shell steps.
    #[arg(long)]
    allow_shell: bool,
    /// Run HTTP steps.
    #[arg(long)]
    allow_http: bool,
    /// Confirm destructive steps by typing the target database's name.
    #[arg(long, value_name = "DATABASE")]
    confirm: Option<String>,
    /// Record this run as a rehearsal (the default is production).
    #[arg(long)]
    rehearsal: bool,
    #[command(flatten)]
    approval: ApprovalArgs,
}

/// The two-person rule, on `run` and `check`.
#[derive(Debug, Args)]
struct ApprovalArgs {
    /// On a production run, each confirmed destructive step waits for a second person's
    /// approval (`cutover watch`, or `cutover approve RUN STEP --confirm DATABASE`).
    #[arg(long)]
    require_approval: bool,
    /// How long a step waits for its approval before it fails.
    #[arg(long, value_name = "SECONDS", default_value_t = cutover::approval::DEFAULT_TIMEOUT.as_secs())]
    approval_timeout: u64,
}

impl ApprovalArgs {
    /// The rule for a run, as `Gate::for_run` decides it for both front doors.
    fn gate(
        &self,
        runbook: &Runbook,
        production: bool,
        journal: &Journal,
    ) -> anyhow::Result<Option<cutover::approval::Gate>> {
        Ok(cutover::approval::Gate::for_run(
            self.require_approval,
            runbook,
            production,
            Some(journal),
            std::time::Duration::from_secs(self.approval_timeout),
        )?)
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    Junit,
}

#[derive(Debug, Subcommand)]
enum RunbookCmd {
    /// Check a runbook file: syntax (with line and column), ids, kinds, probes, variables.
    Validate {
        /// The runbook file.
        file: PathBuf,
    },
    /// Print the bundled runbook.
    Export,
}

fn parse_refresh(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if (0.2..=3600.0).contains(&seconds) => Ok(seconds),
        _ => Err(format!(
            "`{text}` is not a number of seconds from 0.2 to 3600"
        )),
    }
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if runbook::vars::is_name(name) => {
            Ok((name.to_string(), value.to_string()))
        }
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

/// Exit codes of the contract.
const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", one_line(&describe(&err)));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    let _ = JOURNAL_CHOICE.set(JournalChoice {
        path: global.journal.clone(),
        group: global.share_group.clone(),
        url: global.journal_url.clone(),
    });
    let default = Cmd::Run {
        rehearsal: false,
        resume: None,
        new: false,
        read_only: false,
        approval: ApprovalArgs {
            require_approval: false,
            approval_timeout: cutover::approval::DEFAULT_TIMEOUT.as_secs(),
        },
    };
    match cli.command.unwrap_or(default) {
        Cmd::Run {
            rehearsal,
            resume,
            new,
            read_only,
            approval,
        } => {
            let runbook = load_runbook(global.runbook.as_deref())?;
            check_variables(&runbook, &global)?;
            let cwd = std::env::current_dir().context("cannot read the working directory")?;
            let target = Target::resolve(global.database_url.as_deref(), &cwd)?;
            let mode = if rehearsal {
                RunMode::Rehearsal
            } else {
                RunMode::Production
            };
            let variables = engine::resolve_variables(&runbook, &global.vars.into_iter().collect());
            let journal = open_journal(Some(&target)).await?;
            let resume = match (resume, new) {
                (Some(id), _) => Some(journal.run(&id).await?.id),
                (None, true) => None,
                (None, false) => offer_resume(&journal, &runbook, &target).await?,
            };
            // Take the run before the screen opens, so that "someone else has it" is a plain
            // line; watching needs no lock.
            let (_lock, watch) = match &resume {
                Some(id) if read_only => (
                    None,
                    Some(match journal.holder(id).await {
                        Some(holder) => holder,
                        None => {
                            journal::nobody_holds(journal.run(id).await?.finished_at.as_deref())
                        }
                    }),
                ),
                Some(id) => (Some(journal.lock_run(id).await?), None),
                None => (None, None),
            };
            let approval = approval.gate(&runbook, mode == RunMode::Production, &journal)?;
            let mirror = local_mirror(&journal).await?;
            let options = WizardOptions {
                mode,
                variables,
                workdir: cwd,
                color: color_wanted(),
                refresh: std::time::Duration::from_secs_f64(global.refresh),
                journal: Some(journal),
                resume,
                watch,
                mirror,
                approval,
                approver: None,
            };
            require_terminal()?;
            tui::run(Arc::new(runbook), &target, options).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Watch { run, as_name } => watch(global, run, as_name).await,
        Cmd::Approve {
            run,
            step,
            confirm,
            reject,
        } => approve(&run, &step, confirm, reject).await,
        Cmd::Check(args) => {
            let runbook = load_runbook(global.runbook.as_deref())?;
            check_variables(&runbook, &global)?;
            let cwd = std::env::current_dir().context("cannot read the working directory")?;
            let target = Target::resolve(global.database_url.as_deref(), &cwd)?;
            let journal = open_journal(Some(&target)).await?;
            let approval = args.approval.gate(&runbook, !args.rehearsal, &journal)?;
            let options = CheckOptions {
                mirror: local_mirror(&journal).await?,
                approval,
                journal: Some(journal),
                rehearsal: args.rehearsal,
                only: args.only,
                allow_shell: args.allow_shell,
                allow_http: args.allow_http,
                confirm: args.confirm,
                variables: global.vars.into_iter().collect::<BTreeMap<_, _>>(),
                workdir: Some(cwd),
                handle_signals: true,
            };
            let report = check::run_check(Arc::new(runbook), &target, &options).await?;
            let printed = match args.format {
                Format::Text => output::text(&report, color_wanted()),
                Format::Json => output::json(&report),
                Format::Junit => output::junit(&report),
            };
            say!("{}", printed.trim_end());
            Ok(if report.failed() {
                ExitCode::from(EXIT_FAILED)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Demo { print_url, check } => demo(global, print_url, check).await,
        Cmd::Deploy(args) => cli::deploy::run(global.database_url.as_deref(), args).await,
        Cmd::Rehearse(args) => {
            let runbook = load_runbook(global.runbook.as_deref())?;
            cli::rehearse::run(global.database_url.as_deref(), &runbook, args).await
        }
        Cmd::Drift(args) => cli::drift::run(global.database_url.as_deref(), args).await,
        Cmd::Lint(args) => {
            let runbook = load_runbook(global.runbook.as_deref())?;
            cli::lint::run(global.database_url.as_deref(), &runbook.thresholds, args).await
        }
        Cmd::Resolve(args) => cli::resolve::run(global.database_url.as_deref(), args).await,
        Cmd::Baseline(args) => cli::baseline::run(global.database_url.as_deref(), args).await,
        Cmd::Status { migrations, format } => {
            let cwd = std::env::current_dir().context("cannot read the working directory")?;
            let target = Target::resolve(global.database_url.as_deref(), &cwd)?;
            let local = history::read_folder(&migrations)?;
            let db = Db::connect(&target, DbSettings::default()).await?;
            let rows = history::read_table(&db, target.schema()).await?;
            let report =
                history::compare(&migrations.display().to_string(), &local, rows.as_deref());
            match format {
                StatusFormat::Json => say!(
                    "{}",
                    serde_json::to_string_pretty(&report).context("cannot encode the status")?
                ),
                StatusFormat::Text => {
                    let outcome = report.outcome();
                    say!("{} {}", outcome.status.symbol(), outcome.message);
                    for line in &outcome.details {
                        say!("  {line}");
                    }
                }
            }
            Ok(if report.up_to_date() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            })
        }
        Cmd::Runs => {
            let journal = open_journal_as_it_is().await?;
            let runs = journal.runs().await?;
            if runs.is_empty() {
                say!("no runs yet in {}", journal.path().display());
            }
            for run in runs {
                let events = journal.events(&run.id).await?;
                let runbook =
                    runbook::load_str(&load_text(&journal, &run.id).await?, "journal", &Catalog)
                        .ok();
                let report = report::check_report(&run, runbook.as_ref(), &events);
                let s = &report.summary;
                say!(
                    "{}  {}  {:<10}  {:<6}  {}  {}  pass {} fail {} warn {} skip {} error {}{}",
                    run.id,
                    run.started_at,
                    run.mode,
                    run.origin,
                    run.runbook_name,
                    run.target,
                    s.pass,
                    s.fail,
                    s.warn,
                    s.skip,
                    s.error,
                    if run.finished_at.is_none() {
                        "  (unfinished)"
                    } else {
                        ""
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report { run, last, format } => {
            let journal = open_journal_as_it_is().await?;
            let run = match (run, last) {
                (Some(id), _) => journal.run(&id).await?,
                (None, _) => journal.runs().await?.into_iter().next().ok_or_else(|| {
                    anyhow::anyhow!(
                        "no runs in the journal yet: run `cutover check` or the wizard first"
                    )
                })?,
            };
            let events = journal.events(&run.id).await?;
            let runbook =
                runbook::load_str(&load_text(&journal, &run.id).await?, "journal", &Catalog).ok();
            let printed = match format {
                ReportFormat::Md => {
                    let rehearsal = if run.mode == "production" {
                        journal
                            .rehearsal(&run.runbook_name, &run.started_at)
                            .await?
                    } else {
                        Default::default()
                    };
                    report::markdown(&run, runbook.as_ref(), &events, &rehearsal)
                }
                ReportFormat::Json => {
                    output::json(&report::check_report(&run, runbook.as_ref(), &events))
                }
                ReportFormat::Junit => {
                    output::junit(&report::check_report(&run, runbook.as_ref(), &events))
                }
            };
            say!("{}", printed.trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Runbook(RunbookCmd::Export) => {
            write_out(format_args!("{}", runbook::BUNDLED));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Runbook(RunbookCmd::Validate { file }) => match runbook::load_file(&file, &Catalog) {
            Ok(runbook) => {
                let steps = runbook.steps().count();
                say!(
                    "{}: ok — \"{}\", {} sections, {steps} steps",
                    file.display(),
                    runbook.name,
                    runbook.sections.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(RunbookError::Invalid { path, diagnostics }) => {
                for diagnostic in &diagnostics {
                    eprintln!("{path}:{diagnostic}");
                }
                eprintln!("{path}: {} problem(s)", diagnostics.len());
                Ok(ExitCode::from(EXIT_FAILED))
            }
            Err(err) => {
                eprintln!("error: {err}");
                Ok(ExitCode::from(EXIT_FAILED))
            }
        },
    }
}

/// `--var` may name only the runbook's variables.
fn check_variables(runbook: &runbook::Runbook, global: &Global) -> anyhow::Result<()> {
    runbook
        .check_variable_names(global.vars.iter().map(|(name, _)| name.as_str()))
        .map_err(anyhow::Error::msg)
}

fn load_runbook(path: Option<&Path>) -> Result<Runbook, RunbookError> {
    match path {
        Some(path) => runbook::load_file(path, &Catalog),
        None => runbook::bundled(&Catalog),
    }
}

/// `cutover watch [RUN]`: the run's own runbook and mode, read from the journal, on a wizard
/// that only follows what the run records.
async fn watch(
    global: Global,
    run: Option<String>,
    as_name: Option<String>,
) -> anyhow::Result<ExitCode> {
    let journal = open_journal_as_it_is().await?;
    let run = match run {
        Some(id) => journal.run(&id).await?,
        None => journal
            .runs()
            .await?
            .into_iter()
            .find(|run| run.finished_at.is_none())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no unfinished run to watch in {}: name one (`cutover runs` lists them)",
                    journal.path().display()
                )
            })?,
    };
    let runbook = runbook::load_str(&load_text(&journal, &run.id).await?, "journal", &Catalog)
        .with_context(|| format!("the runbook journaled with run {}", run.id))?;
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    // The live panels need the database: the URL given, else the one the run recorded, which
    // never holds a password.
    let target = match Target::resolve(global.database_url.as_deref(), &cwd) {
        Ok(target) => target,
        Err(cutover::target::TargetError::Missing) if run.target.contains("***") => anyhow::bail!(
            "run {} was recorded against {}, whose password cutover never keeps: pass --database-url (or set DATABASE_URL) to watch it",
            run.id,
            run.target
        ),
        Err(cutover::target::TargetError::Missing) => Target::from_url(&run.target)?,
        Err(err) => return Err(err.into()),
    };
    let holder = journal
        .holder(&run.id)
        .await
        .unwrap_or_else(|| journal::nobody_holds(run.finished_at.as_deref()));
    let mode = if run.mode == "production" {
        RunMode::Production
    } else {
        RunMode::Rehearsal
    };
    let variables = engine::resolve_variables(&runbook, &global.vars.into_iter().collect());
    let options = WizardOptions {
        mode,
        variables,
        workdir: cwd,
        color: color_wanted(),
        refresh: std::time::Duration::from_secs_f64(global.refresh),
        journal: Some(journal),
        resume: Some(run.id),
        watch: Some(holder),
        mirror: None,
        approval: None,
        approver: as_name,
    };
    require_terminal()?;
    tui::run(Arc::new(runbook), &target, options).await?;
    Ok(ExitCode::SUCCESS)
}

/// `cutover approve RUN STEP`: a second person's answer to a step that waits for one, written
/// beside the journal (another account's, with `--journal`); it waits a few seconds for the
/// operator's cutover to record it.
async fn approve(
    run: &str,
    step: &str,
    confirm: Option<String>,
    reject: Option<String>,
) -> anyhow::Result<ExitCode> {
    use cutover::approval::{self, Verdict};
    let journal = open_journal_as_it_is().await?;
    let run = journal.run(run).await?;
    let events = journal.events(&run.id).await?;
    let request = match approval::open_request(&events, step) {
        Ok(request) if journal.holder(&run.id).await.is_some() => request,
        Ok(_) => {
            eprintln!(
                "error: {step} of run {} is not waiting for approval: {}",
                run.id,
                journal::nobody_holds(run.finished_at.as_deref())
            );
            return Ok(ExitCode::from(EXIT_FAILED));
        }
        Err(why) => {
            eprintln!(
                "error: {step} of run {} is not waiting for approval: {why}",
                run.id
            );
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    let verdict = match (confirm, reject) {
        (_, Some(reason)) => Verdict::Reject { reason },
        (Some(typed), None) => Verdict::Approve { typed },
        (None, None) => anyhow::bail!("say --confirm DATABASE to approve, or --reject REASON"),
    };
    let answers = approval::Answers::of(&journal);
    if let Err(err) = approval::answer(&answers, &run, step, &request, verdict, None).await {
        eprintln!("error: {err}");
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    // The operator's engine looks every 100 ms; its record says it was taken.
    let seen = events.last().map_or(0, |e| e.seq);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        for event in journal.events_after(&run.id, seen).await? {
            let said = match &event.entry {
                journal::Entry::Approved(d) if d.request == request.request => {
                    format!("approved {step} of run {} as {}", run.id, d.who())
                }
                journal::Entry::Rejected(d) if d.request == request.request => {
                    format!("rejected {step} of run {} as {}", run.id, d.who())
                }
                _ => continue,
            };
            say!("{said}: the operator's cutover recorded it");
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(approval::POLL).await;
    }
    eprintln!(
        "error: the answer is written, but the operator's cutover did not record it within 10 s (is it still running? `cutover watch {}` shows the run)",
        run.id
    );
    Ok(ExitCode::from(EXIT_FAILED))
}

async fn demo(global: Global, print_url: bool, check: bool) -> anyhow::Result<ExitCode> {
    let runbook = load_runbook(global.runbook.as_deref())?;
    check_variables(&runbook, &global)?;
    if !print_url && !check {
        require_terminal()?;
    }
    eprintln!(
        "starting a throwaway PostgreSQL with the sample Sightline database (the previous \
         release, {} migrations pending)…",
        demo::MIGRATIONS.len() - demo::RELEASED
    );
    let (cluster, url) =
        demo::start(demo::demo_cluster_options(), DemoContents::before_release()).await?;
    // The sample app's Prisma folder, for verify.status, unless --var app_dir points elsewhere.
    let app = tempfile::Builder::new()
        .prefix("cutover-demo-app-")
        .tempdir()
        .context("cannot create the demo's app folder")?;
    demo::write_app(app.path()).context("cannot write the demo's migrations folder")?;
    let mut global = global;
    if !global.vars.iter().any(|(name, _)| name == "app_dir") {
        global
            .vars
            .push(("app_dir".into(), app.path().display().to_string()));
    }
    if print_url {
        say!("{url}");
        eprintln!(
            "The sample app's Prisma folder: {} (pass --var app_dir={} to check or run)",
            app.path().join("prisma").display(),
            app.path().display()
        );
    } else if !check {
        let target = Target::from_url(&url)?;
        let cwd = std::env::current_dir().context("cannot read the working directory")?;
        let variables = engine::resolve_variables(&runbook, &global.vars.into_iter().collect());
        let journal = open_journal(Some(&target)).await?;
        let mirror = local_mirror(&journal).await?;
        let options = WizardOptions {
            mode: RunMode::Rehearsal,
            variables,
            workdir: cwd,
            color: color_wanted(),
            refresh: std::time::Duration::from_secs_f64(global.refresh),
            journal: Some(journal),
            resume: None,
            watch: None,
            mirror,
            approval: None,
            approver: None,
        };
        let traffic = tokio_util::sync::CancellationToken::new();
        demo::spawn_app_traffic(&url, traffic.clone());
        let result = tui::run(Arc::new(runbook), &target, options).await;
        traffic.cancel();
        drop(cluster);
        result?;
        eprintln!("The demo database was stopped and removed.");
        return Ok(ExitCode::SUCCESS);
    } else {
        let target = Target::from_url(&url)?;
        let options = CheckOptions {
            variables: global.vars.into_iter().collect(),
            ..CheckOptions::default()
        };
        let report = check::run_check(Arc::new(runbook), &target, &options).await?;
        say!("{}", output::text(&report, color_wanted()).trim_end());
        say!("\nThe demo database is still running: {url}");
        say!(
            "Try: cutover check --database-url '{url}' --var app_dir={} --only verify --format json",
            app.path().display()
        );
    }
    eprintln!("Ctrl-C stops it and removes its files.");
    wait_for_stop().await;
    drop(cluster);
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Logs go to a file under the data directory, never to the terminal.
fn init_logging() -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = data_dir()?.join("logs");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ok()?;
    // Made here so that it is private from the start; the appender then only appends.
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(dir.join("cutover.log"))
        .ok()?;
    let appender = tracing_appender::rolling::never(&dir, "cutover.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUTOVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .ok()?;
    Some(guard)
}

/// Writes to standard output for `say!`; after a failure, nothing more is written.
fn write_out(text: std::fmt::Arguments) {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    static GONE: AtomicBool = AtomicBool::new(false);
    if GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        GONE.store(true, Ordering::Relaxed);
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!(
                "warning: cannot write to standard output ({err}); the rest of what this command prints is dropped"
            );
        }
    }
}

/// `CUTOVER_HOME`, else the platform's data directory.
fn data_dir() -> Option<PathBuf> {
    match std::env::var_os("CUTOVER_HOME") {
        Some(home) if !home.is_empty() => Some(PathBuf::from(home)),
        _ => directories::ProjectDirs::from("", "", "cutover").map(|d| d.data_dir().to_path_buf()),
    }
}

/// Opens the journal in the data directory; an unusable one stops everything before it runs.
async fn open_journal(target: Option<&Target>) -> anyhow::Result<Journal> {
    open_journal_keeping(false, target).await
}

/// With a journal in PostgreSQL, this account's embedded journal, which records each run first:
/// a control database that stops answering mid-run loses nothing. What it missed of runs that
/// ended before it answered again is sent to it here, before the next run or check.
async fn local_mirror(journal: &Journal) -> anyhow::Result<Option<Journal>> {
    if !journal.is_postgres() {
        return Ok(None);
    }
    let dir = data_dir().ok_or_else(|| {
        anyhow::anyhow!("no data directory: set CUTOVER_HOME to a writable folder")
    })?;
    let mirror = Journal::open(&dir, true).await?;
    // What an earlier cutover of this account could not send before it ended goes now.
    match journal.catch_up_from(&mirror).await {
        Ok(0) => {}
        Ok(sent) => eprintln!(
            "sent the journal database {sent} event(s) that it missed of earlier runs (from the local journal {})",
            mirror.location()
        ),
        Err(err) => eprintln!(
            "warning: the journal database still misses events of earlier runs that the local journal {} has ({err}); the next run or check sends them",
            mirror.location()
        ),
    }
    Ok(Some(mirror))
}

/// The journal for a command that starts no run (`runs`, `report`, `watch`, `approve`): its
/// sharing is left as the last run or check set it.
async fn open_journal_as_it_is() -> anyhow::Result<Journal> {
    open_journal_keeping(true, None).await
}

/// The journal the command line names: another account's (`--journal`, read-only), else this
/// account's, shared with `--share-group`, or, for a command that starts a run, made private
/// again without it (unless `keep`); or one in PostgreSQL (`--journal-url`), never in the
/// database of `target`.
async fn open_journal_keeping(keep: bool, target: Option<&Target>) -> anyhow::Result<Journal> {
    let JournalChoice { path, group, url } = JOURNAL_CHOICE.get().cloned().unwrap_or_default();
    if let Some(url) = url {
        return Ok(Journal::open_postgres(&url, target, !keep).await?);
    }
    if let Some(path) = path {
        return Ok(Journal::open_shared(&path).await?);
    }
    let dir = data_dir().ok_or_else(|| {
        anyhow::anyhow!("no data directory: set CUTOVER_HOME to a writable folder")
    })?;
    let journal = Journal::open(&dir, group.is_none() && !keep).await?;
    if let Some(group) = group {
        journal.share_with(&group)?;
    }
    Ok(journal)
}

/// The newest unfinished wizard run of this runbook on this target, if the person wants it back
/// (asked on the terminal; without one, a new run starts and says so).
async fn offer_resume(
    journal: &Journal,
    runbook: &Runbook,
    target: &Target,
) -> anyhow::Result<Option<String>> {
    let shown = target.to_string();
    let Some(run) = journal.runs().await?.into_iter().find(|run| {
        run.finished_at.is_none()
            && run.origin == "wizard"
            && run.runbook_name == runbook.name
            && run.target == shown
    }) else {
        return Ok(None);
    };
    let events = journal.events(&run.id).await?.len();
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "note: run {} of this runbook on this target is unfinished; starting a new one (pass --resume {} to continue it)",
            run.id, run.id
        );
        return Ok(None);
    }
    eprint!(
        "Run {} ({}, started {} by {}, {events} events recorded) is unfinished. Resume it? [Y/n] ",
        run.id, run.mode, run.started_at, run.operator
    );
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(match answer.trim().to_ascii_lowercase().as_str() {
        "" | "y" | "yes" => Some(run.id),
        _ => None,
    })
}

/// The runbook text a run was recorded with.
async fn load_text(journal: &Journal, run_id: &str) -> anyhow::Result<String> {
    Ok(journal.runbook_text(run_id).await?)
}

/// Colours when stdout is a terminal and `NO_COLOR` is not set.
fn color_wanted() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The error and its causes on one line, each cause once: many errors already quote their
/// source in their own message, and `{:#}` would print it a second time.
fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}

/// The wizard draws on stdout: into a file or a pipe it would write escape codes.
fn require_terminal() -> anyhow::Result<()> {
    if std::io::stdout().is_terminal() {
        Ok(())
    } else {
        anyhow::bail!(
            "the wizard needs a terminal, and stdout is not one: run it in a terminal (tmux for long windows), or use `cutover check` headless"
        )
    }
}

fn one_line(text: &str) -> String {
    cutover::target::redact_url(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}
