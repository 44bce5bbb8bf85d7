//! The command line: pgvisor's subcommands, and how a refused value is reported.

pub mod admin_client;
pub mod check;
pub mod demo;
pub mod fingerprint;
pub mod report;
pub mod watch;

use std::path::PathBuf;

use clap::{ArgMatches, CommandFactory, Parser, Subcommand};

use crate::config::{value_error_reason, DemoArgs, ProxyArgs, ReportArgs, WatchArgs};

/// pgvisor: a transparent PostgreSQL wire-protocol proxy with live advice.
///
/// Point your application at pgvisor instead of PostgreSQL. Every byte is forwarded unchanged;
/// with no --upstream, pgvisor starts a throwaway PostgreSQL of its own and prints how to connect.
#[derive(Debug, Parser)]
#[command(name = "pgvisor", version, about, long_about = None)]
pub struct Cli {
    /// What to run; without a subcommand pgvisor runs the proxy.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Proxy options (also used when no subcommand is given).
    #[command(flatten)]
    pub proxy: ProxyArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (the default); with `-- CMD`, run CMD through it and write a report.
    Run(crate::cli::check::RunArgs),
    /// Run a test command through pgvisor and fail on new advice or query counts past a baseline.
    Check(crate::cli::check::CheckArgs),
    /// Compare two pgvisor-report.json files: new and gone queries, calls, p95, advice.
    Diff(crate::cli::check::DiffArgs),
    /// Print the top queries of a running pgvisor as a table.
    Report(ReportArgs),
    /// Follow a running pgvisor's live advice: one block per finding (reconnects on restart).
    Watch(WatchArgs),
    /// Start a throwaway PostgreSQL behind pgvisor and run a workload that shows each advice.
    Demo(DemoArgs),
    /// Print the fingerprint and display text of SQL read from files or stdin (one statement per
    /// line, or JSON strings), grouped the way pgvisor groups queries.
    Fingerprint(crate::cli::fingerprint::FingerprintArgs),
}

/// Parses the command line; with `--config` (or `PGVISOR_CONFIG`), reads the file first and
/// parses again with its values as defaults. Exits with a message, as clap does, on a mistake.
pub fn matches() -> ArgMatches {
    let first = Cli::command().try_get_matches().unwrap_or_else(|e| crate::cli::exit_on_clap_error(e));
    let Some(path) = first.get_one::<PathBuf>("config") else { return first };
    if let Err(e) = crate::config::file::export(path, &Cli::command()) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    Cli::command().try_get_matches().unwrap_or_else(|e| crate::cli::exit_on_clap_error(e))
}

/// The one line pgvisor prints for a value clap refused: `--slow: expected ..., got "fast"`, or
/// `PGVISOR_SLOW: ...` when the value came from the environment rather than from `argv`.
pub fn value_error_line(e: &clap::Error, argv: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    use clap::CommandFactory;
    let reason = value_error_reason(e)?;
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else { return None };
    let flag = arg.split_whitespace().next().unwrap_or(arg);
    let typed = argv.iter().filter_map(|a| a.to_str()).any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    let env = Cli::command()
        .get_arguments()
        .find(|a| flag.strip_prefix("--").is_some_and(|long| a.get_long() == Some(long)))
        .and_then(|a| a.get_env().map(|v| v.to_os_string()));
    let name = match env {
        Some(var) if !typed && std::env::var_os(&var).is_some() => var.to_string_lossy().into_owned(),
        _ => flag.to_string(),
    };
    Some(format!("{name}: {reason}"))
}

/// Exits as clap does (status 2; 0 for --help and --version), but with one line for a refused
/// value: `error: --slow: expected a duration such as 100ms, 2s or 1.5s, got "fast"`.
pub fn exit_on_clap_error(e: clap::Error) -> ! {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match value_error_line(&e, &argv) {
        Some(line) => {
            eprintln!("error: {line}");
            std::process::exit(2);
        }
        None => e.exit(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::ClientTls;

    #[test]
    fn flags_parse_and_verify() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["pgvisor", "--upstream", "h:1", "--no-tls"]).unwrap();
        assert_eq!(cli.proxy.client_tls(), ClientTls::Off);
        let cli = Cli::try_parse_from(["pgvisor", "--upstream", "h:1"]).unwrap();
        assert_eq!(cli.proxy.client_tls(), ClientTls::LikeUpstream);
        let cli = Cli::try_parse_from(["pgvisor", "--upstream", "h:1", "--tls"]).unwrap();
        assert_eq!(cli.proxy.client_tls(), ClientTls::SelfSigned);
        assert!(Cli::try_parse_from(["pgvisor", "--tls", "--no-tls"]).is_err());
        assert!(Cli::try_parse_from(["pgvisor", "--tls-cert", "a.pem"]).is_err(), "cert needs key");
    }

    #[test]
    fn slow_once_and_explain_min_reach_the_advisor() {
        let settings = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            let upstream = cli.proxy.upstream.clone().unwrap();
            crate::net::listener::ProxySettings::from_args(&cli.proxy, upstream).advisor
        };
        let defaults = settings(&["pgvisor", "--upstream", "h:1"]);
        assert_eq!(defaults.slow_query.once, advisor::detect::slow_query::SlowQueryConfig::default().once);
        assert_eq!(defaults.slow_query.once, Duration::from_secs(1));
        assert_eq!(defaults.missing_index.explain_min, advisor::detect::missing_index::DEFAULT_EXPLAIN_MIN);
        let set = settings(&["pgvisor", "--upstream", "h:1", "--slow-once", "300ms", "--explain-min", "5ms"]);
        assert_eq!(
            (set.slow_query.once, set.missing_index.explain_min),
            (Duration::from_millis(300), Duration::from_millis(5))
        );
        let off = settings(&["pgvisor", "--upstream", "h:1", "--slow-once", "0"]);
        assert!(off.slow_query.once.is_zero(), "0 turns the one-call rule off");
    }

    #[test]
    fn refused_values_are_one_line_naming_the_flag() {
        let line = |args: &[&str]| {
            let argv: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
            let e = Cli::try_parse_from(&argv).unwrap_err();
            value_error_line(&e, &argv)
        };
        assert_eq!(
            line(&["pgvisor", "--slow", "fast"]).unwrap(),
            "--slow: expected a duration such as 100ms, 2s or 1.5s, got \"fast\""
        );
        assert_eq!(line(&["pgvisor", "--slow=-1s"]).unwrap(), "--slow: must not be negative, got \"-1s\"");
        assert_eq!(line(&["pgvisor", "--slow", "-1s"]).unwrap(), "--slow: must not be negative, got \"-1s\"");
        assert_eq!(
            line(&["pgvisor", "--n-plus-one-min", "-3"]).unwrap(),
            "--n-plus-one-min: must be a positive whole number, got -3"
        );
        assert_eq!(line(&["pgvisor", "report", "--limit", "0"]).unwrap(), "--limit: must be at least 1, got 0");
        assert_eq!(
            line(&["pgvisor", "--upstream-tls", "sometimes"]).unwrap(),
            "--upstream-tls: expected one of disable, prefer, require, verify-full, got \"sometimes\""
        );
        assert_eq!(line(&["pgvisor", "--no-such-flag"]), None, "clap's own message, with usage, fits the rest");
    }
}
