//! `pgvisor check -- CMD`, `pgvisor run -- CMD` and `pgvisor diff A B`: a test suite run through
//! pgvisor in CI, reported per scope (the test that ran each statement) and judged against a
//! committed baseline (docs/ci.md).
//!
//! `check` and `run` start pgvisor (an embedded PostgreSQL unless `--upstream`), run CMD with the
//! libpq environment and DATABASE_URL pointed at it, and write pgvisor-report.json, summary.md and
//! junit.xml. `check` then decides the exit status; `run` passes CMD's on.

mod baseline;
mod diff;
mod environment;
mod judge;
mod junit;
mod report;
mod run;
mod summary;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::ArgMatches;

pub use baseline::{Baseline, BaselineError, BASELINE_FILE};
pub use diff::{diff_reports, ReportDiff};
pub use judge::{judge, FailOn, Tolerance};
pub use report::Verdict;
pub use report::{Report, REPORT_FILE};
pub use run::CommandStatus;

use crate::config::ProxyArgs;

/// The log filter unless RUST_LOG is set: pgvisor's own warnings only. CMD's output is what the
/// user reads; the findings go to the report and the final lines.
pub const LOG_FILTER: &str = "warn,pgvisor::advice_log=off,pgvisor::advice=off";
/// Where reports go unless `--report` says otherwise.
pub const DEFAULT_REPORT_DIR: &str = "pgvisor-report";
/// The Markdown summary's file name.
pub const SUMMARY_FILE: &str = "summary.md";
/// The JUnit XML file's name.
pub const JUNIT_FILE: &str = "junit.xml";
/// Exit status when pgvisor itself could not run or judge the command (bad flags or files, a
/// busy port, no PostgreSQL), as for flag mistakes.
pub const EXIT_PGVISOR_ERROR: i32 = 2;

/// Options of `pgvisor check` (it also reads the proxy flags; --listen and --admin default to
/// free ports).
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Fail on advice of this severity or worse that the baseline does not know: info, warning or
    /// critical.
    #[arg(long, value_enum, default_value_t = FailOn::Warning)]
    pub fail_on: FailOn,

    /// The committed baseline (e.g. pgvisor-baseline.json): advice it lists is tolerated, and each
    /// scope's query counts may not grow past --tolerance.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Write the baseline (--baseline, default pgvisor-baseline.json) from this run instead of
    /// judging it; exits 0 when CMD passed.
    #[arg(long)]
    pub update_baseline: bool,

    /// How much a query's calls in a scope may grow over the baseline: a percentage (10%) or a
    /// number of calls (2). The repeated query of an N+1 may never grow.
    #[arg(long, default_value = "10%", value_parser = Tolerance::parse, allow_hyphen_values = true)]
    pub tolerance: Tolerance,

    /// Directory for pgvisor-report.json, summary.md and junit.xml (created when missing).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_REPORT_DIR)]
    pub report: PathBuf,

    /// The test command and its arguments (after `--`, or after the last flag of pgvisor's).
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Options of `pgvisor run`: with `-- CMD`, CMD runs through pgvisor and the report is written;
/// without, pgvisor runs the proxy as usual.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Directory for pgvisor-report.json, summary.md and junit.xml (with `-- CMD` only).
    #[arg(long, value_name = "DIR", requires = "command")]
    pub report: Option<PathBuf>,

    /// A command to run through pgvisor (after `--`); pgvisor stops when it exits.
    #[arg(trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Options of `pgvisor diff`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    /// The earlier report (pgvisor-report.json).
    #[arg(value_name = "A.json")]
    pub before: PathBuf,

    /// The later report.
    #[arg(value_name = "B.json")]
    pub after: PathBuf,

    /// Print the differences as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Why pgvisor could not run or judge the command.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// CMD is not a file on PATH (or the path given names no file).
    #[error("cannot run '{program}': {reason}")]
    NotFound {
        /// CMD as given.
        program: String,
        /// Where it was looked for.
        reason: String,
    },
    /// CMD exists but cannot be executed.
    #[error("cannot run '{program}': {reason}")]
    NotExecutable {
        /// CMD as given.
        program: String,
        /// Why.
        reason: String,
    },
    /// The baseline file is missing or malformed.
    #[error(transparent)]
    Baseline(#[from] BaselineError),
    /// A port pgvisor was told to use is not free.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why, and what to do.
        reason: String,
    },
    /// The embedded PostgreSQL did not start.
    #[error(transparent)]
    Embedded(#[from] crate::embedded::EmbeddedError),
    /// The proxy did not start.
    #[error("cannot start the proxy: {0}")]
    Proxy(#[from] crate::net::listener::StartError),
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// The file and the step.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

impl CheckError {
    /// The exit status for this error: 127 and 126 for a command that cannot run (as a shell
    /// says), [`EXIT_PGVISOR_ERROR`] otherwise.
    pub fn exit_status(&self) -> i32 {
        match self {
            CheckError::NotFound { .. } => 127,
            CheckError::NotExecutable { .. } => 126,
            _ => EXIT_PGVISOR_ERROR,
        }
    }

    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CheckError {
        let what = what.into();
        move |source| CheckError::Io { what, source }
    }
}

/// `pgvisor check [flags] -- CMD`: runs CMD through pgvisor, writes the reports, and returns the
/// exit status: CMD's own when it failed, 1 for new advice at or above --fail-on or a query count
/// past the baseline's tolerance, 0 otherwise (docs/ci.md). `matches` tells which flags were given.
pub fn run_check(mut proxy: ProxyArgs, args: CheckArgs, matches: &ArgMatches) -> anyhow::Result<i32> {
    const WHO: &str = "pgvisor check";
    free_ports_unless_given(&mut proxy, matches, "check");
    Ok(report_errors(WHO, || check(&proxy, &args)))
}

/// `pgvisor run [--report DIR] -- CMD`: runs CMD through pgvisor and writes the reports without
/// judging them; returns CMD's exit status.
pub fn run_and_report(mut proxy: ProxyArgs, args: RunArgs, matches: &ArgMatches) -> anyhow::Result<i32> {
    const WHO: &str = "pgvisor run";
    free_ports_unless_given(&mut proxy, matches, "run");
    Ok(report_errors(WHO, || {
        let program = run::resolve(&args.command)?;
        let dir = args.report.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_REPORT_DIR));
        prepare_dir(&dir)?;
        let outcome = run::run_under_pgvisor(&proxy, &program, WHO)?;
        let report = Report::from_run(&outcome, &args.command);
        write_reports(&dir, &report)?;
        eprintln!(
            "{WHO}: {} statements in {} scopes, {} findings. Report: {}",
            report.statements,
            report.scopes.len(),
            report.finding_count(),
            dir.join(SUMMARY_FILE).display()
        );
        Ok(outcome.status.exit_status())
    }))
}

/// `pgvisor diff A.json B.json [--json]`: prints how B differs from A; 0, or 2 when a report
/// cannot be read.
pub fn run_diff(args: DiffArgs) -> anyhow::Result<i32> {
    Ok(report_errors("pgvisor diff", || {
        let before = Report::load(&args.before)?;
        let after = Report::load(&args.after)?;
        let diff = diff_reports(&before, &after);
        let text = if args.json {
            let mut json = serde_json::to_string_pretty(&diff).expect("a diff serializes");
            json.push('\n');
            json
        } else {
            diff.to_table(&args.before.display().to_string(), &args.after.display().to_string())
        };
        print!("{text}");
        Ok(0)
    }))
}

fn check(proxy: &ProxyArgs, args: &CheckArgs) -> Result<i32, CheckError> {
    const WHO: &str = "pgvisor check";
    let program = run::resolve(&args.command)?;
    let baseline_path = args.baseline.clone().unwrap_or_else(|| PathBuf::from(BASELINE_FILE));
    // Read before the (slow) start so that a broken file fails at once.
    let baseline = match (&args.baseline, args.update_baseline) {
        (Some(path), false) => Some(Baseline::load(path)?),
        _ => None,
    };
    prepare_dir(&args.report)?;
    let outcome = run::run_under_pgvisor(proxy, &program, WHO)?;
    let mut report = Report::from_run(&outcome, &args.command);
    let status = outcome.status.exit_status();
    if let CommandStatus::Interrupted(_) = outcome.status {
        write_reports(&args.report, &report)?;
        eprintln!("{WHO}: interrupted; partial report (not judged) in {}", args.report.display());
        return Ok(status);
    }
    // --update-baseline judges the run against the baseline it is about to write: the reports
    // then list what the baseline accepts.
    let accepted = (args.update_baseline && status == 0).then(|| Baseline::from_report(&report));
    let against = accepted.as_ref().or(baseline.as_ref());
    let shown = against.map(|_| baseline_path.display().to_string());
    report.check = Some(judge(&report, against, shown, args.fail_on, args.tolerance));
    write_reports(&args.report, &report)?;
    let cmd = report.command.first().map_or("CMD", String::as_str);
    if args.update_baseline {
        let Some(accepted) = accepted else {
            eprintln!(
                "{WHO}: `{cmd}` exited with status {status}: the baseline was not updated (a failing run may be \
                 incomplete)"
            );
            return Ok(status);
        };
        accepted.write(&baseline_path)?;
        eprintln!(
            "{WHO}: wrote {path} ({} scopes, {} known findings). Commit it; runs with --baseline {path} fail on \
             anything new.",
            accepted.scopes.len(),
            accepted.finding_count(),
            path = baseline_path.display(),
        );
        return Ok(0);
    }
    let verdict = report.check.as_ref().expect("judged above");
    for line in verdict.console_lines(&report) {
        eprintln!("{WHO}: {line}");
    }
    eprintln!("{WHO}: report: {}", args.report.join(SUMMARY_FILE).display());
    if status != 0 {
        eprintln!("{WHO}: `{cmd}` exited with status {status}, and so does pgvisor check");
        return Ok(status);
    }
    Ok(if verdict.passed { 0 } else { 1 })
}

/// Runs `body`, printing its error as one line prefixed with `who` and turning it into its exit
/// status.
fn report_errors(who: &str, body: impl FnOnce() -> Result<i32, CheckError>) -> i32 {
    match body() {
        Ok(status) => status,
        Err(e) => {
            eprintln!("{who}: {}", one_line(&e));
            e.exit_status()
        }
    }
}

/// `error` and its causes as one line, each cause only when the text before does not already
/// say it.
fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

/// `text` cut to at most `max` characters (at a character boundary), with `...` when cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

fn prepare_dir(dir: &Path) -> Result<(), CheckError> {
    std::fs::create_dir_all(dir)
        .map_err(CheckError::io(format!("cannot create the report directory {}", dir.display())))
}

fn write_reports(dir: &Path, report: &Report) -> Result<(), CheckError> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(CheckError::io(format!("cannot write {}", path.display())))
    };
    write(REPORT_FILE, report.to_json())?;
    write(SUMMARY_FILE, summary::render(report))?;
    write(JUNIT_FILE, junit::render(report))
}

/// `--listen` and `--admin` pick free ports unless given: CI machines run several jobs, and the
/// command learns the address from its environment.
fn free_ports_unless_given(proxy: &mut ProxyArgs, matches: &ArgMatches, subcommand: &str) {
    if !given(matches, subcommand, "listen") {
        proxy.listen = SocketAddr::new(proxy.listen.ip(), 0);
    }
    if !given(matches, subcommand, "admin") {
        proxy.admin = SocketAddr::new(proxy.admin.ip(), 0);
    }
}

/// True when the flag with clap id `id` was given on the command line or in the environment.
fn given(matches: &ArgMatches, subcommand: &str, id: &str) -> bool {
    std::iter::once(matches)
        .chain(matches.subcommand_matches(subcommand))
        .any(|m| matches!(m.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)))
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

    use super::*;

    /// The subcommands as the binary registers them.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Sub,
        #[command(flatten)]
        proxy: ProxyArgs,
    }

    #[derive(Debug, Subcommand)]
    enum Sub {
        Check(CheckArgs),
        Run(RunArgs),
        Diff(DiffArgs),
    }

    fn parse(argv: &[&str]) -> Result<(Cli, ArgMatches), clap::Error> {
        let matches = Cli::command().try_get_matches_from(argv)?;
        Ok((Cli::from_arg_matches(&matches)?, matches))
    }

    #[test]
    fn flags_and_the_command_parse() {
        Cli::command().debug_assert();
        let (cli, matches) =
            parse(&["pgvisor", "check", "--baseline", "b.json", "--", "pytest", "-q", "--lf"]).unwrap();
        let Sub::Check(check) = cli.command else { panic!("{cli:?}") };
        assert_eq!(check.command, ["pytest", "-q", "--lf"]);
        assert_eq!((check.fail_on, check.tolerance), (FailOn::Warning, Tolerance::Percent(10.0)));
        let mut proxy = cli.proxy;
        free_ports_unless_given(&mut proxy, &matches, "check");
        assert_eq!((proxy.listen.port(), proxy.admin.port()), (0, 0), "free ports unless given");

        let (cli, matches) = parse(&["pgvisor", "--listen", "127.0.0.1:7000", "check", "pytest", "-x"]).unwrap();
        let Sub::Check(check) = cli.command else { panic!() };
        assert_eq!(check.command, ["pytest", "-x"], "`--` may be left out");
        let mut proxy = cli.proxy;
        free_ports_unless_given(&mut proxy, &matches, "check");
        assert_eq!(proxy.listen.port(), 7000);

        assert!(parse(&["pgvisor", "check"]).is_err(), "a command is required");
        assert!(parse(&["pgvisor", "check", "--tolerance", "lots", "--", "true"]).is_err());
        let (cli, _) = parse(&["pgvisor", "run"]).unwrap();
        assert!(matches!(cli.command, Sub::Run(RunArgs { report: None, ref command }) if command.is_empty()));
        assert!(parse(&["pgvisor", "run", "--report", "d"]).is_err(), "--report needs a command");
        let (cli, _) = parse(&["pgvisor", "diff", "--json", "a.json", "b.json"]).unwrap();
        assert!(matches!(cli.command, Sub::Diff(DiffArgs { json: true, .. })));
    }

    #[test]
    fn long_text_is_cut_at_a_character() {
        assert_eq!(shorten("héllo wörld", 4), "héll...");
        assert_eq!(shorten("short", 10), "short");
    }
}
