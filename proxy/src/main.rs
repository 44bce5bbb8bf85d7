//! The `pgvisor` binary: parses flags, starts an embedded PostgreSQL when no upstream is given,
//! and runs the proxy until SIGINT or SIGTERM (a second one exits at once).
//!
//! Errors are printed here as one line, `error: ...`, with exit status 1 (2 for flag and config
//! mistakes, as clap does): a user who mistyped a port should not read a backtrace.

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};

use advisor::sync::lock;
use anyhow::Context;
use clap::FromArgMatches;
use pgvisor::cli::{Cli, Command};
use pgvisor::config::{ClientTls, ProxyArgs, UpstreamAddr};
use pgvisor::embedded::{EmbeddedOptions, EmbeddedPostgres};
use pgvisor::{Proxy, ProxySettings};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{info, warn};

fn main() -> ExitCode {
    match run_command() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn run_command() -> anyhow::Result<()> {
    let matches = pgvisor::cli::matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| pgvisor::cli::exit_on_clap_error(e));
    // The demo and watch print advice on stdout themselves; their log shows only problems.
    let quiet = match &cli.command {
        Some(Command::Demo(_)) => Some(pgvisor::cli::demo::LOG_FILTER),
        Some(Command::Watch(_)) => Some("warn"),
        Some(Command::Check(_) | Command::Diff(_)) => Some(pgvisor::cli::check::LOG_FILTER),
        Some(Command::Run(run)) if !run.command.is_empty() => Some(pgvisor::cli::check::LOG_FILTER),
        _ => None,
    };
    if let (Some(filter), None) = (quiet, std::env::var_os("RUST_LOG")) {
        // Still single-threaded: nothing else reads the environment yet.
        #[allow(clippy::disallowed_methods)]
        std::env::set_var("RUST_LOG", filter);
    }
    pgvisor::logging::init(cli.proxy.log_format);
    match cli.command.unwrap_or(Command::Run(Default::default())) {
        Command::Run(args) if args.command.is_empty() => run(cli.proxy),
        Command::Run(args) => std::process::exit(pgvisor::cli::check::run_and_report(cli.proxy, args, &matches)?),
        Command::Check(args) => std::process::exit(pgvisor::cli::check::run_check(cli.proxy, args, &matches)?),
        Command::Diff(args) => std::process::exit(pgvisor::cli::check::run_diff(args)?),
        Command::Demo(demo) => pgvisor::cli::demo::run(cli.proxy, demo, &matches, shutdown_signal),
        Command::Watch(watch) => watch_advice(cli.proxy, watch),
        Command::Fingerprint(args) => pgvisor::cli::fingerprint::run(&args),
        Command::Report(report) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let table = runtime.block_on(pgvisor::cli::report::report(
                cli.proxy.admin,
                cli.proxy.admin_token.as_deref(),
                &report.sort,
                report.limit,
                report.tag.as_deref(),
            ))?;
            print!("{table}");
            Ok(())
        }
    }
}

/// `error` and its causes as one line. A cause is appended only when the text before does not
/// already say it (thiserror messages often embed their source), and without the OS error
/// numbers (`(os error 98)`) that mean nothing to a reader.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = without_os_error_number(&cause.to_string());
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// `text` without the ` (os error N)` that `std::io::Error` appends.
fn without_os_error_number(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" (os error ") {
        let after = &rest[at + " (os error ".len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(&rest[..at]);
        if digits > 0 && after.as_bytes().get(digits) == Some(&b')') {
            rest = &after[digits + 1..];
        } else {
            out.push_str(" (os error ");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `pgvisor watch`: runs until Ctrl-C, a closed output pipe, or an error that retrying cannot fix.
fn watch_advice(args: ProxyArgs, watch: pgvisor::config::WatchArgs) -> anyhow::Result<()> {
    use pgvisor::cli::watch::{Style, WatchOptions};
    let options =
        WatchOptions { admin: args.admin, token: args.admin_token, json: watch.json, style: Style::for_stdout() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut stdout = std::io::stdout();
    let result = runtime.block_on(async {
        tokio::select! {
            result = pgvisor::cli::watch::watch(&options, &mut stdout) => result,
            _ = shutdown_signal() => Ok(()),
        }
    });
    match result {
        Err(e) if e.is_closed_output() => Ok(()),
        other => Ok(other?),
    }
}

/// The embedded server, shared by the normal exit and the forced one (a second signal).
type SharedEmbedded = Arc<Mutex<Option<EmbeddedPostgres>>>;

/// Stops the embedded server, if it still runs, and removes its directory; returns the lock, so
/// that the forced exit can hold it until the process ends: the normal path, woken by sessions
/// that end when the server stops, then cannot finish first and exit with status 0.
fn stop_embedded(embedded: &SharedEmbedded) -> MutexGuard<'_, Option<EmbeddedPostgres>> {
    let mut slot = lock(embedded);
    if let Some(mut pg) = slot.take() {
        info!("stopping the embedded PostgreSQL and removing its data directory");
        pg.stop();
        drop(pg);
    }
    slot
}

fn run(args: ProxyArgs) -> anyhow::Result<()> {
    // Everything that can be checked quickly is checked before the embedded PostgreSQL starts,
    // which takes seconds and would only be torn down again.
    let reserved = reserve_ports(&args)?;
    if let tls @ ClientTls::Files { .. } = args.client_tls() {
        pgvisor::net::tls::acceptor(&tls).context("cannot set up TLS for clients")?;
    }
    // The listener's loop: a current-thread runtime, which also serves the admin port and runs
    // the Inspector; the other forwarding loops start with the proxy (`net::loops`).
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // Handlers first: a Ctrl-C during the embedded start then stops pgvisor in order once the
    // server is up, instead of killing pgvisor and orphaning the server.
    let signals = {
        let _runtime = runtime.enter();
        Signals::new().context("cannot listen for SIGINT and SIGTERM")?
    };
    let embedded: SharedEmbedded = Arc::new(Mutex::new(None));
    let (upstream, superuser) = match &args.upstream {
        Some(addr) => (addr.clone(), None),
        None => {
            info!("no --upstream given: starting an embedded throwaway PostgreSQL");
            let pg = EmbeddedPostgres::start(EmbeddedOptions::default())?;
            info!(port = pg.port(), bindir = %pg.bindir().display(), data_dir = %pg.data_dir().display(), "embedded PostgreSQL is ready");
            let upstream = UpstreamAddr { host: "127.0.0.1".into(), port: pg.port() };
            let superuser = pg.superuser().to_string();
            *lock(&embedded) = Some(pg);
            (upstream, Some(superuser))
        }
    };
    let mut settings = ProxySettings::from_args(&args, upstream.clone());
    if settings.inspector_dsn.is_none() {
        settings.inspector_dsn =
            Some(pgvisor::inspector::default_dsn(&upstream.host, upstream.port, superuser.as_deref()));
    }
    let result = runtime.block_on(async {
        // Proxy::bind binds the ports itself. Between this drop and its bind another process
        // could take one (for the admin port, until after the upstream probe): then bind fails
        // with the same "cannot listen" message, only later. Handing the bound sockets over would
        // close that window, at the cost of a second way into Proxy::bind.
        drop(reserved);
        let proxy = Proxy::bind(settings).await.context("cannot start the proxy")?;
        let addr = proxy.local_addr();
        info!(listen = %addr, upstream = %upstream, "pgvisor is forwarding");
        print_banner(addr, proxy.admin_addr(), &upstream, superuser.as_deref());
        proxy.run(signals.shutdown_then_force(embedded.clone())).await;
        anyhow::Ok(())
    });
    drop(stop_embedded(&embedded));
    result
}

/// Binds `--listen` and `--admin` to learn whether they are free; the sockets are held until
/// the proxy binds for good.
fn reserve_ports(args: &ProxyArgs) -> anyhow::Result<Vec<TcpListener>> {
    let (listen, admin) = (args.listen, args.admin);
    let overlap = listen.ip() == admin.ip() || listen.ip().is_unspecified() || admin.ip().is_unspecified();
    if listen.port() != 0 && listen.port() == admin.port() && overlap {
        anyhow::bail!("--listen {listen} and --admin {admin} use the same port: give each its own");
    }
    [listen, admin]
        .into_iter()
        .map(|addr| {
            TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {}", bind_advice(&e)))
        })
        .collect()
}

/// Why a bind failed, and what to do about it.
fn bind_advice(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::AddrInUse => "address already in use. Is another pgvisor running? Choose other ports with \
                                 --listen/--admin (port 0 picks a free one)."
            .into(),
        ErrorKind::AddrNotAvailable => "no network interface of this machine has that address. Use 127.0.0.1 \
                                        (this machine only) or 0.0.0.0 (every interface)."
            .into(),
        ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges). Choose a port of 1024 or more.".into()
        }
        _ => without_os_error_number(&e.to_string()),
    }
}

/// Where to point clients and the web page, on stdout once the proxy is bound.
fn print_banner(listen: SocketAddr, admin: Option<SocketAddr>, upstream: &UpstreamAddr, superuser: Option<&str>) {
    let mut text = match superuser {
        Some(user) => format!(
            "pgvisor is ready. Connect with:\n  psql \"host={} port={} user={user} dbname=postgres\"\n  \
             postgres://{user}@{listen}/postgres\n",
            listen.ip(),
            listen.port(),
        ),
        None => format!(
            "pgvisor is ready, forwarding to {upstream}.\nPoint your application at host {} port {} instead \
             (same user, password and database).\n",
            listen.ip(),
            listen.port(),
        ),
    };
    if let Some(admin) = admin {
        // An address bound on every interface is browsed on this machine through loopback.
        let ip = match admin.ip() {
            ip if !ip.is_unspecified() => ip,
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        text.push_str(&format!("Web page: http://{}/\n", SocketAddr::new(ip, admin.port())));
    }
    print!("{text}");
}

/// SIGINT and SIGTERM, registered once for the whole run so that no signal is missed between
/// the first and the second.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    /// Registers the handlers; needs a runtime context.
    fn new() -> std::io::Result<Self> {
        Ok(Self { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
    }

    /// The next signal's name and number.
    async fn next(&mut self) -> (&'static str, i32) {
        tokio::select! {
            _ = self.interrupt.recv() => ("SIGINT", SignalKind::interrupt().as_raw_value()),
            _ = self.terminate.recv() => ("SIGTERM", SignalKind::terminate().as_raw_value()),
        }
    }

    /// Completes on the first signal (the proxy then lets sessions finish for the grace period)
    /// and leaves a watcher behind: a second signal stops the embedded PostgreSQL, removing its
    /// directory, and exits at once with status 128 + the signal number, as a shell reports it.
    async fn shutdown_then_force(mut self, embedded: SharedEmbedded) {
        let (name, _) = self.next().await;
        info!("{name} received: stopping (a second Ctrl-C or SIGTERM exits at once)");
        tokio::spawn(async move {
            let (name, number) = self.next().await;
            warn!("second signal ({name}): exiting now");
            let _ = tokio::task::spawn_blocking(move || {
                let _stopped = stop_embedded(&embedded);
                std::process::exit(128 + number)
            })
            .await;
        });
    }
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut signals = Signals::new().expect("SIGINT and SIGTERM handlers");
    let (name, _) = signals.next().await;
    info!("{name} received");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let os = std::io::Error::from_raw_os_error(98);
        let top = anyhow::Error::new(std::io::Error::new(os.kind(), format!("cannot read x.pem: {os}")));
        assert_eq!(one_line(&top), "cannot read x.pem: Address already in use");
        let wrapped = anyhow::Error::new(os).context("cannot read x.pem").context("cannot set up TLS for clients");
        assert_eq!(one_line(&wrapped), "cannot set up TLS for clients: cannot read x.pem: Address already in use");
        assert_eq!(without_os_error_number("a (os error x) b (os error 2)"), "a (os error x) b");
    }
}
