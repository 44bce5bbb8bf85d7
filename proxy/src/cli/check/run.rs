//! CMD run through an in-process pgvisor: the embedded PostgreSQL (or `--upstream`), the proxy with
//! per-scope statistics on, CMD with its environment pointed at it, progress on stderr, signals
//! forwarded, and what the advisor saw once CMD has exited.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use advisor::advice::Advice;
use advisor::engine::Advisor;
use advisor::scopes::{Scope, ScopeConfig};
use futures_util::FutureExt;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::process::Child;
use tokio::signal::unix::{signal, SignalKind};

use super::environment::{self, Destination};
use super::CheckError;
use crate::config::{ProxyArgs, UpstreamAddr};
use crate::embedded::{EmbeddedOptions, EmbeddedPostgres};
use crate::{Proxy, ProxySettings};

/// How long CMD may take to stop after the signal is forwarded, before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long sessions CMD left open (a child process still connected) may take to close.
const SESSIONS_CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Longer than the engine's periodic check (100 ms): engine-side advice about the last
/// statements is then in.
const ENGINE_CHECK_WAIT: Duration = Duration::from_millis(250);
/// The proxy's grace period at the end: CMD has exited, nobody should still be talking.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Progress lines: often on a terminal, rarely in a CI log.
const PROGRESS_TERMINAL: Duration = Duration::from_secs(10);
const PROGRESS_LOG: Duration = Duration::from_secs(60);

/// CMD, found.
#[derive(Debug, Clone)]
pub struct Program {
    /// The executable.
    pub path: PathBuf,
    /// CMD and its arguments as given.
    pub argv: Vec<OsString>,
}

impl Program {
    /// CMD as a shell would show it (for messages).
    pub fn shown(&self) -> String {
        self.argv.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }
}

/// Finds CMD as a shell would: a name with a slash is a path, anything else is looked up on PATH.
/// Done before anything starts, so a typo fails at once.
pub fn resolve(command: &[OsString]) -> Result<Program, CheckError> {
    let Some(first) = command.first() else {
        return Err(CheckError::NotFound {
            program: String::new(),
            reason: "no command given (put it after --)".into(),
        });
    };
    let shown = first.to_string_lossy().into_owned();
    let not_executable = |reason: &str| CheckError::NotExecutable { program: shown.clone(), reason: reason.into() };
    let program = |path: PathBuf| Program { path, argv: command.to_vec() };
    if first.as_bytes().contains(&b'/') {
        let path = PathBuf::from(first);
        return match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => Err(not_executable("is a directory")),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => Err(not_executable("permission denied (not executable)")),
            Ok(_) => Ok(program(path)),
            Err(_) => Err(CheckError::NotFound { program: shown, reason: "no such file".into() }),
        };
    }
    let dirs: Vec<PathBuf> = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    let candidates = || dirs.iter().map(|d| d.join(first)).filter(|c| c.is_file());
    if let Some(path) = candidates().find(|c| is_executable(c)) {
        return Ok(program(path));
    }
    if candidates().next().is_some() {
        return Err(not_executable("permission denied (not executable)"));
    }
    Err(CheckError::NotFound { program: shown, reason: "not found on PATH".into() })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// How CMD ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStatus {
    /// It exited with this status.
    Exited(i32),
    /// A signal it did not get from pgvisor ended it.
    Signaled(i32),
    /// pgvisor got this signal (SIGINT, SIGTERM) and stopped it.
    Interrupted(i32),
}

impl CommandStatus {
    /// The status a shell would report: the exit status, or 128 + the signal number.
    pub fn exit_status(self) -> i32 {
        match self {
            CommandStatus::Exited(code) => code,
            CommandStatus::Signaled(signal) | CommandStatus::Interrupted(signal) => 128 + signal,
        }
    }

    fn of(status: std::io::Result<std::process::ExitStatus>) -> Self {
        match status {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => CommandStatus::Exited(code),
                (None, Some(signal)) => CommandStatus::Signaled(signal),
                (None, None) => CommandStatus::Exited(super::EXIT_PGVISOR_ERROR),
            },
            Err(e) => {
                eprintln!("pgvisor: cannot wait for the command: {e}");
                CommandStatus::Exited(super::EXIT_PGVISOR_ERROR)
            }
        }
    }
}

/// What a run saw.
#[derive(Debug)]
pub struct RunOutcome {
    /// How CMD ended.
    pub status: CommandStatus,
    /// When CMD started.
    pub started_at: SystemTime,
    /// How long it ran.
    pub duration: Duration,
    /// What pgvisor forwarded to: "embedded PostgreSQL" or the upstream address.
    pub upstream: String,
    /// Statistics and advice per scope.
    pub scopes: BTreeMap<Arc<str>, Scope>,
    /// Every finding, as the admin API lists them.
    pub advice: Vec<Advice>,
    /// Statements executed.
    pub statements: u64,
    /// Executions in scopes past the cap, not kept.
    pub scopes_cut: u64,
}

/// Starts pgvisor as `proxy` says (scopes on), runs `program` through it and returns what the
/// advisor saw once it exited. `who` prefixes the progress lines ("pgvisor check").
pub fn run_under_pgvisor(proxy: &ProxyArgs, program: &Program, who: &str) -> Result<RunOutcome, CheckError> {
    // Everything quick to check is checked before the embedded server's start, which takes a while.
    for addr in [proxy.listen, proxy.admin] {
        check_port_free(addr)?;
    }
    // The proxy's first forwarding loop; `--threads` counts it (`net::loops`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CheckError::io("cannot start the async runtime"))?;
    // Registered first: a Ctrl-C while PostgreSQL starts is then seen, not fatal to pgvisor alone.
    let mut signals = {
        let _context = runtime.enter();
        Signals::new().map_err(CheckError::io("cannot listen for SIGINT and SIGTERM"))?
    };
    let embedded = match &proxy.upstream {
        Some(_) => None,
        None => Some(EmbeddedPostgres::start(EmbeddedOptions::default())?),
    };
    let (upstream, described) = match (&proxy.upstream, &embedded) {
        (Some(addr), _) => (addr.clone(), format!("forwarding to {addr}")),
        (None, Some(pg)) => (
            UpstreamAddr { host: "127.0.0.1".into(), port: pg.port() },
            "embedded PostgreSQL, removed on exit".to_string(),
        ),
        (None, None) => unreachable!("the embedded server was started above"),
    };
    let superuser = embedded.as_ref().map(|pg| pg.superuser().to_string());
    let mut settings = ProxySettings::from_args(proxy, upstream.clone());
    settings.advisor.scopes = Some(ScopeConfig::default());
    settings.shutdown_grace = SHUTDOWN_GRACE;
    if settings.inspector_dsn.is_none() {
        settings.inspector_dsn =
            Some(crate::inspector::default_dsn(&upstream.host, upstream.port, superuser.as_deref()));
    }
    let run = Run { program, superuser: superuser.as_deref(), who, described };
    let outcome = runtime.block_on(run.supervise(settings, &mut signals));
    drop(runtime);
    // The embedded server stops and its directory goes when dropped, on every path out.
    drop(embedded);
    outcome
}

fn check_port_free(addr: std::net::SocketAddr) -> Result<(), CheckError> {
    if addr.port() == 0 {
        return Ok(());
    }
    std::net::TcpListener::bind(addr).map(drop).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "address already in use (another pgvisor?). Leave --listen and --admin out: pgvisor then picks \
                 free ports and tells the command through PGHOST/PGPORT"
                    .to_string()
            }
            _ => e.to_string(),
        };
        CheckError::Listen { addr, reason }
    })
}

/// One run of CMD.
struct Run<'a> {
    program: &'a Program,
    superuser: Option<&'a str>,
    who: &'a str,
    described: String,
}

impl Run<'_> {
    async fn supervise(&self, settings: ProxySettings, signals: &mut Signals) -> Result<RunOutcome, CheckError> {
        let started_at = SystemTime::now();
        let empty = |status| RunOutcome {
            status,
            started_at,
            duration: Duration::ZERO,
            upstream: self.described.clone(),
            scopes: BTreeMap::new(),
            advice: Vec::new(),
            statements: 0,
            scopes_cut: 0,
        };
        if let Some(signal) = signals.next().now_or_never() {
            return Ok(empty(CommandStatus::Interrupted(signal)));
        }
        let proxy = Proxy::bind(settings).await?;
        let (listen, admin) = (proxy.local_addr(), proxy.admin_addr());
        let handle = proxy.spawn();
        let to = Destination { listen, admin, embedded_superuser: self.superuser };
        let env = environment::changes(&to, |name| std::env::var(name).ok());
        let names: Vec<&str> = env.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| *k).collect();
        eprintln!(
            "{}: pgvisor is ready on {listen} ({}); running `{}` with {} set",
            self.who,
            self.described,
            self.program.shown(),
            names.join(", ")
        );
        let start = Instant::now();
        let (mut child, target) = match spawn(self.program, &env) {
            Ok(spawned) => spawned,
            Err(e) => {
                handle.shutdown().await;
                return Err(e);
            }
        };
        let status = self.wait(&mut child, target, signals, handle.advisor()).await;
        let duration = start.elapsed();
        let advisor = handle.advisor();
        settle(advisor).await;
        let outcome = RunOutcome {
            status,
            started_at,
            duration,
            upstream: self.described.clone(),
            scopes: advisor.scopes.snapshot(),
            advice: advisor.advice.list(),
            statements: advisor.stats.recorded(),
            scopes_cut: advisor.scopes.cut(),
        };
        handle.shutdown().await;
        Ok(outcome)
    }

    /// Waits for CMD, printing progress; on SIGINT or SIGTERM stops it.
    async fn wait(&self, child: &mut Child, target: Target, signals: &mut Signals, advisor: &Advisor) -> CommandStatus {
        let period = if std::io::stderr().is_terminal() { PROGRESS_TERMINAL } else { PROGRESS_LOG };
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                status = child.wait() => return CommandStatus::of(status),
                signal = signals.next() => {
                    eprintln!("{}: {} received: stopping `{}`", self.who, signal_name(signal), self.program.shown());
                    stop(child, target, signal, signals).await;
                    return CommandStatus::Interrupted(signal);
                }
                _ = ticker.tick() => eprintln!(
                    "{}: {} statements, {} findings so far",
                    self.who,
                    advisor.stats.recorded(),
                    advisor.advice.len()
                ),
            }
        }
    }
}

/// Where CMD's signals go: its own process group, or (sharing the terminal's) the process alone.
#[derive(Debug, Clone, Copy)]
enum Target {
    Group(Pid),
    Process(Pid),
}

impl Target {
    fn send(self, signal: Signal) {
        let _ = match self {
            Target::Group(pgid) => killpg(pgid, signal),
            Target::Process(pid) => kill(pid, signal),
        };
    }
}

/// Starts CMD with `env` applied. Without a terminal (CI) CMD gets its own process group, so a
/// signal reaches everything it started (pytest-xdist workers, npm's node); on a terminal it stays
/// in pgvisor's, where it can read the terminal and gets Ctrl-C from it directly.
fn spawn(program: &Program, env: &[(&'static str, Option<String>)]) -> Result<(Child, Target), CheckError> {
    let own_group = !std::io::stdin().is_terminal();
    let mut cmd = tokio::process::Command::new(&program.path);
    cmd.arg0(&program.argv[0]).args(&program.argv[1..]);
    for (name, value) in env {
        match value {
            Some(value) => cmd.env(name, value),
            None => cmd.env_remove(name),
        };
    }
    if own_group {
        cmd.process_group(0);
    }
    let shown = program.argv[0].to_string_lossy().into_owned();
    let child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CheckError::NotFound { program: shown.clone(), reason: e.to_string() },
        _ => CheckError::NotExecutable { program: shown.clone(), reason: e.to_string() },
    })?;
    let pid = Pid::from_raw(child.id().expect("a child just spawned has a pid") as i32);
    Ok((child, if own_group { Target::Group(pid) } else { Target::Process(pid) }))
}

/// Forwards `signal`, waits [`STOP_GRACE`] (cut short by another signal), then kills. A Ctrl-C
/// on the terminal CMD shares has reached it already: it is not sent twice.
async fn stop(child: &mut Child, target: Target, signal: i32, signals: &mut Signals) {
    match (Signal::try_from(signal), target) {
        (Ok(Signal::SIGINT), Target::Process(_)) => {}
        (Ok(signal), _) => target.send(signal),
        (Err(_), _) => {}
    }
    tokio::select! {
        _ = child.wait() => return,
        _ = tokio::time::sleep(STOP_GRACE) => {}
        _ = signals.next() => {}
    }
    target.send(Signal::SIGKILL);
    let _ = child.wait().await;
}

/// Waits until what CMD sent is counted: its sessions closed (each flushes its detectors), the
/// engine's queue applied, and one periodic check run over the last statements.
async fn settle(advisor: &Advisor) {
    let deadline = Instant::now() + SESSIONS_CLOSE_WAIT;
    while !advisor.sessions.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    advisor.caught_up().await;
    tokio::time::sleep(ENGINE_CHECK_WAIT).await;
    advisor.caught_up().await;
}

/// SIGINT and SIGTERM, registered once for the whole run.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
    }

    /// The next signal's number.
    async fn next(&mut self) -> i32 {
        tokio::select! {
            _ = self.interrupt.recv() => SignalKind::interrupt().as_raw_value(),
            _ = self.terminate.recv() => SignalKind::terminate().as_raw_value(),
        }
    }
}

fn signal_name(signal: i32) -> &'static str {
    Signal::try_from(signal).map_or("a signal", Signal::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_found_as_a_shell_finds_them() {
        let found = resolve(&["sh".into(), "-c".into(), "exit 3".into()]).unwrap();
        assert!(found.path.ends_with("sh") && found.path.is_absolute(), "{found:?}");
        assert_eq!(found.shown(), "sh -c exit 3");
        let e = resolve(&["pytset".into()]).unwrap_err();
        assert_eq!(e.to_string(), "cannot run 'pytset': not found on PATH");
        assert_eq!(e.exit_status(), 127);
        let e = resolve(&["./no/such/script".into()]).unwrap_err();
        assert_eq!(e.to_string(), "cannot run './no/such/script': no such file");
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("test.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let e = resolve(&[script.clone().into()]).unwrap_err();
        assert_eq!(e.exit_status(), 126, "{e}");
        assert_eq!(CommandStatus::Signaled(9).exit_status(), 137);
        assert_eq!(CommandStatus::Interrupted(2).exit_status(), 130);
    }
}
