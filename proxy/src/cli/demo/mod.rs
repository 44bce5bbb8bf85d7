//! `pgvisor demo`: a throwaway PostgreSQL behind an in-process pgvisor, a built-in workload that
//! makes each mistake pgvisor has advice for, and that advice printed as it arrives (the same
//! blocks as `pgvisor watch`). Then it keeps running for the user's own queries until Ctrl-C, or
//! stops at once with `--exit`.

mod workload;

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use advisor::advice::Advice;
use anyhow::Context;
use clap::parser::ValueSource;
use clap::ArgMatches;
use tokio::sync::{broadcast, watch};

use crate::cli::watch::{AdviceView, Printer, Style};
use crate::config::{DemoArgs, ProxyArgs, UpstreamAddr};
use crate::embedded::{EmbeddedOptions, EmbeddedPostgres};
use crate::{Proxy, ProxySettings};
pub use workload::{Scenario, Thresholds};

/// `--long-transaction` for the demo unless given: short, so the demo takes seconds, not minutes.
const DEMO_LONG_TRANSACTION: Duration = Duration::from_secs(4);
/// The one kind the workload leaves out, and why.
const NOT_IN_DEMO: &str = "inspector_unavailable is not part of the demo: it needs pgvisor's side connection (the \
                           Inspector) to fail, and the lock and missing-index advice above need that connection.";
/// The log filter unless RUST_LOG is set: warnings only, and no advice blocks (the demo prints
/// them itself on stdout).
pub const LOG_FILTER: &str = "warn,pgvisor::advice_log=off,pgvisor::advice=off";

/// True when the flag with clap id `id` was given on the command line or in the environment,
/// rather than left at its default.
fn given(matches: &ArgMatches, id: &str) -> bool {
    std::iter::once(matches)
        .chain(matches.subcommand_matches("demo"))
        .any(|m| matches!(m.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)))
}

/// Runs the demo. `matches` tells which flags were given (the demo picks its own defaults for
/// --listen and --long-transaction); `shutdown` completes on Ctrl-C or SIGTERM.
pub fn run<F: Future<Output = ()>>(
    mut args: ProxyArgs,
    demo: DemoArgs,
    matches: &ArgMatches,
    shutdown: impl FnOnce() -> F,
) -> anyhow::Result<()> {
    if args.upstream.is_some() {
        anyhow::bail!(
            "pgvisor demo creates its tables in a throwaway PostgreSQL of its own, never in yours: \
             drop --upstream (or unset PGVISOR_UPSTREAM)"
        );
    }
    if !given(matches, "listen") {
        args.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    }
    if !given(matches, "long_transaction") {
        args.long_transaction = DEMO_LONG_TRANSACTION;
    }
    println!("Starting a throwaway PostgreSQL (removed on exit)...");
    let pg = EmbeddedPostgres::start(EmbeddedOptions::default()).context("cannot start the embedded PostgreSQL")?;
    // The proxy's first forwarding loop, as `pgvisor`'s own (`net::loops`).
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let missing = runtime.block_on(async {
        let shutdown = shutdown();
        tokio::pin!(shutdown);
        demo_with(&args, &demo, &pg, &mut shutdown).await
    });
    drop(runtime);
    drop(pg);
    let Some(missing) = missing? else {
        return Ok(()); // interrupted
    };
    if demo.exit && !missing.is_empty() {
        anyhow::bail!("the demo did not produce advice of kind {}", missing.join(", "));
    }
    Ok(())
}

/// The demo on a running runtime; returns the advice kinds the workload failed to produce, or
/// `None` when a signal interrupted the workload.
async fn demo_with(
    args: &ProxyArgs,
    demo: &DemoArgs,
    pg: &EmbeddedPostgres,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> anyhow::Result<Option<Vec<&'static str>>> {
    let upstream = UpstreamAddr { host: "127.0.0.1".into(), port: pg.port() };
    let mut settings = ProxySettings::from_args(args, upstream.clone());
    if settings.inspector_dsn.is_none() {
        settings.inspector_dsn =
            Some(crate::inspector::default_dsn(&upstream.host, upstream.port, Some(pg.superuser())));
    }
    let advisor = &settings.advisor;
    let thresholds = Thresholds {
        idle_in_transaction: advisor.transactions.idle_in_transaction,
        long_transaction: advisor.transactions.long_transaction,
        slow: advisor.slow_query.threshold,
        slow_min_calls: advisor.slow_query.min_calls,
        repeated_query_min: advisor.session_checks.repeated_query.min_repeats,
        select_star_row_bytes: advisor.session_checks.select_star.row_bytes,
        unparameterized_min: advisor.unparameterized.min_texts,
        error_spike_min: advisor.error_spike.min_errors,
    };
    let proxy = Proxy::bind(settings).await.context("cannot start the proxy")?;
    let listen = proxy.local_addr();
    let admin = proxy.admin_addr();
    let live = proxy.advisor().advice.subscribe();
    let handle = proxy.spawn();
    print_banner(pg, listen, admin);

    let (seen_tx, seen) = watch::channel(BTreeSet::new());
    let printer = tokio::spawn(print_advice(live, Style::for_stdout(), seen_tx));
    let mut config = tokio_postgres::Config::new();
    config.host(listen.ip().to_string()).port(listen.port()).user(pg.superuser()).dbname("postgres");
    config.connect_timeout(Duration::from_secs(10));

    let finished = tokio::select! {
        result = run_workload(&config, &thresholds, seen.clone()) => Some(result),
        _ = &mut *shutdown => None,
    };
    let missing: Vec<&'static str> =
        Scenario::ALL.iter().map(|s| s.kind()).filter(|k| !seen.borrow().contains(*k)).collect();
    let outcome = match finished {
        None => {
            say("Interrupted (SIGINT or SIGTERM) before the workload finished.");
            Ok(None)
        }
        Some(Err(e)) => Err(e),
        Some(Ok(())) => {
            let shown = Scenario::ALL.len() - missing.len();
            say(&format!("The workload is done: {shown} of {} kinds of advice shown.", Scenario::ALL.len()));
            if !missing.is_empty() {
                say(&format!("Not shown: {}.", missing.join(", ")));
            }
            say(NOT_IN_DEMO);
            if !demo.exit {
                say(&format!(
                    "pgvisor keeps running: try your own queries with psql \"host={} port={} user={} \
                     dbname=postgres\".\nNew advice appears here. Ctrl-C stops pgvisor and removes the PostgreSQL.",
                    listen.ip(),
                    listen.port(),
                    pg.superuser()
                ));
                shutdown.await;
            }
            Ok(Some(missing))
        }
    };
    say("Stopping pgvisor and the PostgreSQL...");
    handle.shutdown().await;
    printer.abort();
    outcome
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn print_banner(pg: &EmbeddedPostgres, listen: SocketAddr, admin: Option<SocketAddr>) {
    let user = pg.superuser();
    let mut text = format!(
        "\npgvisor demo: PostgreSQL on 127.0.0.1:{} behind pgvisor on {listen}\n  \
         connect:   psql \"host={} port={} user={user} dbname=postgres\"\n",
        pg.port(),
        listen.ip(),
        listen.port(),
    );
    if let Some(admin) = admin {
        text.push_str(&format!("  admin API: http://{admin}/api/advice (live: pgvisor watch --admin {admin})\n"));
    }
    text.push_str(&format!(
        "\nRunning the workload: {} scenarios, each a classic mistake. Advice appears as pgvisor spots it.\n",
        Scenario::ALL.len()
    ));
    say(&text);
}

/// Sets up the tables and runs every scenario, waiting after each for its advice.
async fn run_workload(
    config: &tokio_postgres::Config,
    thresholds: &Thresholds,
    mut seen: watch::Receiver<BTreeSet<String>>,
) -> anyhow::Result<()> {
    workload::set_up(config, thresholds).await.context("cannot create the demo tables through pgvisor")?;
    for (n, scenario) in Scenario::ALL.iter().enumerate() {
        say(&format!("── {}/{} {}\n", n + 1, Scenario::ALL.len(), scenario.describe(thresholds)));
        if let Err(e) = scenario.run(config, thresholds).await {
            say(&format!("   the scenario failed: {e}"));
        }
        let (kind, wait) = (scenario.kind(), scenario.advice_wait());
        if tokio::time::timeout(wait, seen.wait_for(|s| s.contains(kind))).await.is_err() {
            say(&format!("   no {kind} advice within {} s", wait.as_secs()));
        }
    }
    Ok(())
}

/// Prints the in-process advisor's live stream as `pgvisor watch` would, recording the kinds seen.
async fn print_advice(mut live: broadcast::Receiver<Arc<Advice>>, style: Style, seen: watch::Sender<BTreeSet<String>>) {
    let mut printer = Printer::new(style, false);
    loop {
        let advice = match live.recv().await {
            Ok(advice) => advice,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Ok(view) = serde_json::to_value(advice.as_ref()).and_then(serde_json::from_value::<AdviceView>) else {
            continue;
        };
        let _ = printer.print(&view, None, &mut std::io::stdout().lock());
        seen.send_modify(|kinds| {
            kinds.insert(view.kind.clone());
        });
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn demo_defaults_apply_only_to_flags_not_given() {
        let matches = Cli::command().try_get_matches_from(["pgvisor", "demo", "--exit"]).unwrap();
        assert!(!given(&matches, "listen"));
        assert!(!given(&matches, "long_transaction"));
        let cli = Cli::from_arg_matches(&matches).unwrap();
        assert!(matches!(cli.command, Some(Command::Demo(DemoArgs { exit: true }))));

        for argv in [
            &["pgvisor", "demo", "--listen", "127.0.0.1:7000"][..],
            &["pgvisor", "--listen", "127.0.0.1:7000", "demo"][..],
        ] {
            let matches = Cli::command().try_get_matches_from(argv).unwrap();
            assert!(given(&matches, "listen"), "{argv:?}");
        }
    }
}
