//! The `pgvisor` binary: parses flags, starts an embedded PostgreSQL when no upstream is given,
//! and runs the proxy until SIGINT or SIGTERM.

use anyhow::Context;
use clap::FromArgMatches;
use pgvisor::config::{Cli, Command, UpstreamAddr};
use pgvisor::embedded::{EmbeddedOptions, EmbeddedPostgres};
use pgvisor::{Proxy, ProxySettings};
use tracing::info;

fn main() -> anyhow::Result<()> {
    let matches = pgvisor::config_file::matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // The demo and watch print advice on stdout themselves; their log shows only problems.
    let quiet = match cli.command {
        Some(Command::Demo(_)) => Some(pgvisor::demo::LOG_FILTER),
        Some(Command::Watch(_)) => Some("warn"),
        _ => None,
    };
    if let (Some(filter), None) = (quiet, std::env::var_os("RUST_LOG")) {
        // Still single-threaded: nothing else reads the environment yet.
        std::env::set_var("RUST_LOG", filter);
    }
    pgvisor::logging::init(cli.proxy.log_format);
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(cli.proxy),
        Command::Demo(demo) => pgvisor::demo::run(cli.proxy, demo, &matches, shutdown_signal),
        Command::Watch(watch) => watch_advice(cli.proxy, watch),
        Command::Report(report) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let table = runtime.block_on(pgvisor::report::report(
                cli.proxy.admin,
                cli.proxy.admin_token.as_deref(),
                &report.sort,
                report.limit,
            ))?;
            print!("{table}");
            Ok(())
        }
    }
}

/// `pgvisor watch`: runs until Ctrl-C, a closed output pipe, or an error that retrying cannot fix.
fn watch_advice(args: pgvisor::config::ProxyArgs, watch: pgvisor::config::WatchArgs) -> anyhow::Result<()> {
    use pgvisor::watch::{Style, WatchOptions};
    let options =
        WatchOptions { admin: args.admin, token: args.admin_token, json: watch.json, style: Style::for_stdout() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut stdout = std::io::stdout();
    let result = runtime.block_on(async {
        tokio::select! {
            result = pgvisor::watch::watch(&options, &mut stdout) => result,
            _ = shutdown_signal() => Ok(()),
        }
    });
    match result {
        Err(e) if e.is_closed_output() => Ok(()),
        other => Ok(other?),
    }
}

fn run(args: pgvisor::config::ProxyArgs) -> anyhow::Result<()> {
    let threads = args.threads.map(usize::from).unwrap_or_else(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        cpus.div_ceil(2).clamp(1, 4)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    let embedded = match &args.upstream {
        Some(_) => None,
        None => {
            info!("no --upstream given: starting an embedded throwaway PostgreSQL");
            let pg = EmbeddedPostgres::start(EmbeddedOptions::default())?;
            info!(port = pg.port(), bindir = %pg.bindir().display(), data_dir = %pg.data_dir().display(), "embedded PostgreSQL is ready");
            Some(pg)
        }
    };
    let upstream = match (&args.upstream, &embedded) {
        (Some(addr), _) => addr.clone(),
        (None, Some(pg)) => UpstreamAddr { host: "127.0.0.1".into(), port: pg.port() },
        (None, None) => unreachable!("an embedded server was started"),
    };
    let mut settings = ProxySettings::from_args(&args, upstream.clone());
    if settings.inspector_dsn.is_none() {
        let superuser = embedded.as_ref().map(|pg| pg.superuser());
        settings.inspector_dsn = Some(pgvisor::inspector::default_dsn(&upstream.host, upstream.port, superuser));
    }
    let result = runtime.block_on(async {
        let proxy = Proxy::bind(settings).await.context("cannot start the proxy")?;
        let addr = proxy.local_addr();
        info!(listen = %addr, upstream = %upstream, "pgvisor is forwarding");
        if let Some(pg) = &embedded {
            println!(
                "pgvisor is ready. Connect with:\n  psql \"host={} port={} user={} dbname=postgres\"\n  postgres://{}@{}/postgres",
                addr.ip(), addr.port(), pg.superuser(), pg.superuser(), addr
            );
        }
        proxy.run(shutdown_signal()).await;
        anyhow::Ok(())
    });
    if let Some(mut pg) = embedded {
        info!("stopping the embedded PostgreSQL and removing its data directory");
        pg.stop();
    }
    result
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
}
