//! Command line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    Run(crate::check::RunArgs),
    /// Run a test command through pgvisor and fail on new advice or query counts past a baseline.
    Check(crate::check::CheckArgs),
    /// Compare two pgvisor-report.json files: new and gone queries, calls, p95, advice.
    Diff(crate::check::DiffArgs),
    /// Print the top queries of a running pgvisor as a table.
    Report(ReportArgs),
    /// Follow a running pgvisor's live advice: one block per finding (reconnects on restart).
    Watch(WatchArgs),
    /// Start a throwaway PostgreSQL behind pgvisor and run a workload that shows each advice.
    Demo(DemoArgs),
    /// Print the fingerprint and display text of SQL read from files or stdin (one statement per
    /// line, or JSON strings), grouped the way pgvisor groups queries.
    Fingerprint(crate::fingerprint_cli::FingerprintArgs),
}

/// Options of `pgvisor watch` (it also reads --admin and --admin-token).
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Print each advice as one JSON line (the admin API's Advice object) instead of a block.
    #[arg(long)]
    pub json: bool,
}

/// Options of `pgvisor demo` (it also reads the proxy flags; --listen defaults to a free port).
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Stop after the workload instead of waiting for Ctrl-C; exit 1 if a kind of advice is missing.
    #[arg(long)]
    pub exit: bool,
}

/// Options of `pgvisor report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Sort by total, calls, mean or p99.
    #[arg(long, default_value = "total")]
    pub sort: String,
    /// How many queries to show.
    #[arg(long, default_value_t = 20, value_parser = count::<usize>(1, usize::MAX as u64, ""), allow_negative_numbers = true)]
    pub limit: usize,
}

/// How the client leg answers SSLRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientTls {
    /// Answer 'N': clients stay in plain text.
    Off,
    /// The default: offer TLS (a self-signed certificate) exactly when the upstream offers it,
    /// so a client gets what it would get connecting directly.
    LikeUpstream,
    /// Always offer TLS, with a self-signed certificate generated at start-up (`--tls`).
    SelfSigned,
    /// Certificate chain and private key from PEM files.
    Files {
        /// PEM certificate chain.
        cert: PathBuf,
        /// PEM private key.
        key: PathBuf,
    },
}

/// TLS policy on the upstream leg, named as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpstreamTlsMode {
    /// Never ask the upstream for TLS.
    Disable,
    /// Use TLS when the upstream offers it; do not verify its certificate (libpq's default).
    Prefer,
    /// Require TLS; do not verify the certificate.
    Require,
    /// Require TLS and verify the certificate chain and host name.
    VerifyFull,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Where the upstream PostgreSQL listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamAddr {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl std::fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for UpstreamAddr {
    type Err = String;

    /// Accepts `HOST:PORT`, `HOST` (port 5432), `[IPv6]:PORT` and a bare IPv6 address.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let expected = || format!("expected HOST:PORT such as 127.0.0.1:5432, got {s:?}");
        let bad_port = || format!("the port must be a number from 1 to 65535, got {s:?}");
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let ipv6 = || format!("expected [IPv6]:PORT such as [::1]:5432, got {s:?}");
            let (host, after) = rest.split_once(']').ok_or_else(ipv6)?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(ipv6()),
            }
        } else if t.matches(':').count() > 1 {
            (t, None)
        } else {
            match t.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (t, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad_port())?,
            None => 5432,
        };
        if host.is_empty() {
            return Err(expected());
        }
        if port == 0 {
            return Err(bad_port());
        }
        Ok(Self { host: host.to_string(), port })
    }
}

/// `value` as an error message shows it: numbers bare, anything else quoted.
fn shown(value: &str) -> String {
    if value.parse::<f64>().is_ok() {
        value.to_string()
    } else {
        format!("{value:?}")
    }
}

/// Durations above this are refused: no setting needs a year, and deadlines computed from
/// `Instant::now() + d` must not overflow.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A duration: seconds (`10`, `2.5`) or a number with a unit (`500ms`, `1.5s`, `2m`, `1h 30m`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let parsed = match t.parse::<f64>() {
        Ok(secs) if secs < 0.0 => return Err(format!("must not be negative, got {}", shown(s))),
        Ok(secs) if secs.is_nan() => None,
        Ok(secs) => Duration::try_from_secs_f64(secs.min(MAX_DURATION.as_secs_f64() + 1.0)).ok(),
        Err(_) if t.starts_with('-') => return Err(format!("must not be negative, got {}", shown(s))),
        Err(_) => humantime::parse_duration(t).ok(),
    };
    let d = parsed.ok_or_else(|| format!("expected a duration such as 100ms, 2s or 1.5s, got {}", shown(s)))?;
    if d > MAX_DURATION {
        return Err(format!("must be at most 365 days, got {}", shown(s)));
    }
    Ok(d)
}

/// A duration of at least 1 ms: a timeout or a window of zero would make the setting useless.
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d < Duration::from_millis(1) => Err(format!("must be at least 1ms, got {}", shown(s))),
        d => Ok(d),
    }
}

/// A whole number from `min` to `max` as `T`; `why` (may be empty) says why `min` is the least.
fn count<T>(min: u64, max: u64, why: &'static str) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
{
    move |s: &str| {
        let t = s.trim();
        let too_large = || format!("must be at most {max}, got {}", shown(s));
        let n = match t.parse::<u64>() {
            Ok(n) => n,
            Err(_) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => return Err(too_large()),
            Err(_) => {
                let message = match t.parse::<f64>() {
                    Ok(f) if f < 0.0 && min > 0 => "must be a positive whole number",
                    Ok(f) if f < 0.0 => "must not be negative",
                    Ok(_) => "must be a whole number",
                    Err(_) => "expected a whole number",
                };
                return Err(format!("{message}, got {}", shown(s)));
            }
        };
        if n < min {
            let why = if why.is_empty() { String::new() } else { format!(" ({why})") };
            return Err(format!("must be at least {min}{why}, got {}", shown(s)));
        }
        match T::try_from(n) {
            Ok(value) if n <= max => Ok(value),
            _ => Err(too_large()),
        }
    }
}

/// A size in bytes, at least 1: a number, optionally with a unit as PostgreSQL writes them (B,
/// kB, MB, GB; multiples of 1024).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let expected = || format!("expected a size such as 10MB, 512kB or 1048576 (units B, kB, MB, GB), got {}", shown(s));
    let n: u64 = match number.parse() {
        Ok(n) => n,
        Err(_) if !number.is_empty() => return Err(format!("too large for a size in bytes, got {}", shown(s))),
        Err(_) => return Err(expected()),
    };
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" | "k" | "K" => 1 << 10,
        "MB" | "M" => 1 << 20,
        "GB" | "G" => 1 << 30,
        _ => return Err(expected()),
    };
    match n.checked_mul(scale) {
        Some(0) => Err(format!("must be at least 1 byte, got {}", shown(s))),
        Some(bytes) => Ok(bytes),
        None => Err(format!("too large for a size in bytes, got {}", shown(s))),
    }
}

/// A ratio between 0 and 1.
fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("expected a ratio between 0 and 1 such as 0.5, got {}", shown(s))),
    }
}

/// A socket address to bind: `IP:PORT` (`[IPv6]:PORT`), or `localhost:PORT` for 127.0.0.1.
/// Other host names are refused: which of their addresses to bind would be a guess.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    let t = s.trim();
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if t.parse::<std::net::IpAddr>().is_ok() || !t.contains(':') {
        return Err(format!("expected IP:PORT such as 127.0.0.1:6432 (an address and a port), got {}", shown(s)));
    }
    let (host, port) = t.rsplit_once(':').unwrap_or((t, ""));
    let port: u16 = port.parse().map_err(|_| format!("the port must be a number from 0 to 65535, got {}", shown(s)))?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(format!(
        "expected IP:PORT such as 127.0.0.1:{port} (host names other than localhost are not looked up), got {}",
        shown(s)
    ))
}

/// What was wrong with a value clap refused, as pgvisor's own parsers say it (`expected a
/// duration such as ..., got "fast"`), or `None` for errors about something other than a value.
pub fn value_error_reason(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::ValueValidation => std::error::Error::source(e).map(ToString::to_string),
        ErrorKind::InvalidValue => {
            let Some(ContextValue::String(given)) = e.get(ContextKind::InvalidValue) else { return None };
            let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) else { return None };
            Some(format!("expected one of {}, got {}", valid.join(", "), shown(given)))
        }
        _ => None,
    }
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

/// Options of the proxy; each flag can also come from a `PGVISOR_*` environment variable.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// Address clients connect to.
    #[arg(long, env = "PGVISOR_LISTEN", default_value = "127.0.0.1:6432", value_parser = parse_listen_addr, global = true)]
    pub listen: SocketAddr,

    /// PostgreSQL to forward to (HOST:PORT). Without it pgvisor starts an embedded throwaway
    /// PostgreSQL from the local server binaries and removes it on exit.
    #[arg(long, env = "PGVISOR_UPSTREAM", global = true)]
    pub upstream: Option<UpstreamAddr>,

    /// Address of the admin HTTP port (JSON API, metrics, web page).
    #[arg(long, env = "PGVISOR_ADMIN", default_value = "127.0.0.1:6480", value_parser = parse_listen_addr, global = true)]
    pub admin: SocketAddr,

    /// Always offer TLS to clients, with a self-signed certificate generated at start-up. By
    /// default pgvisor offers TLS only when the upstream does, as the server itself would.
    #[arg(long, env = "PGVISOR_TLS", conflicts_with = "no_tls", global = true)]
    pub tls: bool,

    /// PEM certificate chain for TLS on the client leg (with --tls-key); TLS is then always
    /// offered to clients.
    #[arg(long, env = "PGVISOR_TLS_CERT", requires = "tls_key", global = true)]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "PGVISOR_TLS_KEY", requires = "tls_cert", global = true)]
    pub tls_key: Option<PathBuf>,

    /// Never offer TLS on the client leg (answer SSLRequest with 'N'), even when the upstream does.
    #[arg(long, env = "PGVISOR_NO_TLS", conflicts_with_all = ["tls_cert", "tls_key"], global = true)]
    pub no_tls: bool,

    /// TLS on the upstream leg, as libpq's sslmode: disable, prefer (use it if offered, no
    /// verification), require (no verification), verify-full (chain and host name verified).
    #[arg(long, env = "PGVISOR_UPSTREAM_TLS", value_enum, default_value = "prefer", global = true)]
    pub upstream_tls: UpstreamTlsMode,

    /// PEM file of CA certificates trusted for --upstream-tls verify-full (default: the system's).
    #[arg(long, env = "PGVISOR_UPSTREAM_CA", global = true)]
    pub upstream_ca: Option<PathBuf>,

    /// Time to connect to the upstream before giving up (e.g. 5s).
    #[arg(long, env = "PGVISOR_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_positive_duration, global = true, allow_hyphen_values = true)]
    pub connect_timeout: Duration,

    /// On SIGINT/SIGTERM, how long open sessions may finish before they are closed (e.g. 10s).
    #[arg(long, env = "PGVISOR_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration, global = true, allow_hyphen_values = true)]
    pub shutdown_grace: Duration,

    /// Bearer token for the admin port; required when --admin binds a non-loopback address.
    #[arg(long, env = "PGVISOR_ADMIN_TOKEN", global = true, hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Most query fingerprints tracked; past it the least recently seen are evicted.
    #[arg(long, env = "PGVISOR_MAX_FINGERPRINTS", default_value_t = 5000, value_parser = count::<usize>(1, usize::MAX as u64, ""), global = true, allow_negative_numbers = true)]
    pub max_fingerprints: usize,

    /// How often the log gets a one-line traffic summary (0 turns it off).
    #[arg(long, env = "PGVISOR_SUMMARY_INTERVAL", default_value = "60s", value_parser = parse_duration, global = true, allow_hyphen_values = true)]
    pub summary_interval: Duration,

    /// N+1: how many executions of one query, with different parameters, make a burst.
    #[arg(long, env = "PGVISOR_N_PLUS_ONE_MIN", default_value_t = 5, value_parser = count::<u64>(2, u64::MAX, "an N+1 needs a parent and several children"), global = true, allow_negative_numbers = true)]
    pub n_plus_one_min: u64,

    /// Lock contention: a statement running this long gets the Inspector's attention (e.g. 200ms).
    #[arg(long, env = "PGVISOR_LOCK_WAIT", default_value = "200ms", value_parser = parse_duration, global = true, allow_hyphen_values = true)]
    pub lock_wait: Duration,

    /// idle_in_transaction fires after a session has been idle this long inside a transaction.
    #[arg(long, env = "PGVISOR_IDLE_IN_TRANSACTION", default_value = "2s", value_parser = parse_duration, global = true, allow_hyphen_values = true)]
    pub idle_in_transaction: Duration,

    /// long_transaction fires when a transaction has been open this long.
    #[arg(long, env = "PGVISOR_LONG_TRANSACTION", default_value = "10s", value_parser = parse_duration, global = true, allow_hyphen_values = true)]
    pub long_transaction: Duration,

    /// slow_query fires for a query shape whose 95th percentile latency is at least this.
    #[arg(long, env = "PGVISOR_SLOW", default_value = "100ms", value_parser = parse_duration, global = true, allow_hyphen_values = true)]
    pub slow: Duration,

    /// slow_query needs at least this many calls of the shape.
    #[arg(long, env = "PGVISOR_SLOW_MIN_CALLS", default_value_t = 5, value_parser = count::<u64>(1, u64::MAX, ""), global = true, allow_negative_numbers = true)]
    pub slow_min_calls: u64,

    /// slow_query also fires for a single call at least this long, however few calls its shape
    /// has (0 turns it off).
    #[arg(long, env = "PGVISOR_SLOW_ONCE", default_value = "1s", value_parser = parse_duration, global = true, allow_hyphen_values = true)]
    pub slow_once: Duration,

    /// missing_index: a statement at least this slow gets its plan looked at (EXPLAIN by the
    /// Inspector, once per query shape every 10 minutes; 0: every statement).
    #[arg(long, env = "PGVISOR_EXPLAIN_MIN", default_value = "2ms", value_parser = parse_duration, global = true, allow_hyphen_values = true)]
    pub explain_min: Duration,

    /// repeated_query: how many runs of one query with the same parameters, in one session, within
    /// --repeated-query-window.
    #[arg(long, env = "PGVISOR_REPEATED_QUERY_MIN", default_value_t = 10, value_parser = count::<u64>(2, u64::MAX, "one run is no repeat"), global = true, allow_negative_numbers = true)]
    pub repeated_query_min: u64,

    /// repeated_query: the window the repeats must fall in.
    #[arg(long, env = "PGVISOR_REPEATED_QUERY_WINDOW", default_value = "2s", value_parser = parse_positive_duration, global = true, allow_hyphen_values = true)]
    pub repeated_query_window: Duration,

    /// unbounded_result: rows returned by a SELECT without LIMIT that make it unbounded.
    #[arg(long, env = "PGVISOR_UNBOUNDED_ROWS", default_value_t = 10_000, value_parser = count::<u64>(1, u64::MAX, ""), global = true, allow_negative_numbers = true)]
    pub unbounded_rows: u64,

    /// unbounded_result: bytes returned by a SELECT without LIMIT that make it unbounded (e.g. 10MB,
    /// 512kB; units of 1024 as in PostgreSQL).
    #[arg(long, env = "PGVISOR_UNBOUNDED_BYTES", default_value = "10MB", value_parser = parse_bytes, global = true, allow_negative_numbers = true)]
    pub unbounded_bytes: u64,

    /// select_star: average bytes per row that make a `SELECT *` row wide (e.g. 1kB).
    #[arg(long, env = "PGVISOR_SELECT_STAR_ROW_BYTES", default_value = "1kB", value_parser = parse_bytes, global = true, allow_negative_numbers = true)]
    pub select_star_row_bytes: u64,

    /// select_star: more columns than this make a `SELECT *` row wide.
    #[arg(long, env = "PGVISOR_SELECT_STAR_COLUMNS", default_value_t = 20, value_parser = count::<usize>(0, usize::MAX as u64, ""), global = true, allow_negative_numbers = true)]
    pub select_star_columns: usize,

    /// unparameterized: distinct literal texts of one query shape, sent through the simple
    /// protocol within --unparameterized-window, that make the advice.
    #[arg(long, env = "PGVISOR_UNPARAMETERIZED_MIN", default_value_t = 50, value_parser = count::<u64>(2, u64::MAX, "one text is no pattern"), global = true, allow_negative_numbers = true)]
    pub unparameterized_min: u64,

    /// unparameterized: how long a distinct text counts after it was last seen.
    #[arg(long, env = "PGVISOR_UNPARAMETERIZED_WINDOW", default_value = "60s", value_parser = parse_positive_duration, global = true, allow_hyphen_values = true)]
    pub unparameterized_window: Duration,

    /// error_spike: errors of one SQLSTATE within --error-spike-window (also the calls a failing
    /// query shape needs before its error ratio counts).
    #[arg(long, env = "PGVISOR_ERROR_SPIKE_MIN", default_value_t = 10, value_parser = count::<u64>(1, u64::MAX, ""), global = true, allow_negative_numbers = true)]
    pub error_spike_min: u64,

    /// error_spike: the sliding window errors are counted in.
    #[arg(long, env = "PGVISOR_ERROR_SPIKE_WINDOW", default_value = "10s", value_parser = parse_positive_duration, global = true, allow_hyphen_values = true)]
    pub error_spike_window: Duration,

    /// error_spike: share of a query shape's calls in the window that must fail (0 to 1).
    #[arg(long, env = "PGVISOR_ERROR_SPIKE_RATIO", default_value_t = 0.5, value_parser = parse_ratio, global = true, allow_negative_numbers = true)]
    pub error_spike_ratio: f64,

    /// Connection string of the Inspector's side connection (pg_locks, pg_blocking_pids). Default:
    /// the libpq environment (PGUSER, PGPASSWORD, PGDATABASE) at the upstream, else user postgres;
    /// the embedded PostgreSQL's own superuser in embedded mode.
    #[arg(long, env = "PGVISOR_INSPECTOR_DSN", global = true, hide_env_values = true)]
    pub inspector_dsn: Option<String>,

    /// Include parameter values in advice evidence and logs (they can hold personal data).
    #[arg(long, env = "PGVISOR_LOG_PARAMS", global = true)]
    pub log_params: bool,

    /// Worker threads. Default: half the CPUs (at least 1, at most 4): pgvisor shares the machine
    /// with the database and the application, and one thread forwards tens of thousands of
    /// queries a second.
    #[arg(long, env = "PGVISOR_THREADS", value_parser = count::<u16>(1, 256, ""), global = true, allow_negative_numbers = true)]
    pub threads: Option<u16>,

    /// TOML configuration file: a key per flag (`lock_wait = "500ms"`) and an `[advice]` table;
    /// the command line and PGVISOR_* variables win over it (see docs/configuration.md).
    #[arg(long, env = "PGVISOR_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Advice kinds to switch off, comma-separated (e.g. select_star,unparameterized).
    #[arg(long, env = "PGVISOR_DISABLE_ADVICE", value_delimiter = ',', value_parser = crate::config_file::parse_kind, global = true)]
    pub disable_advice: Vec<advisor::advice::Kind>,

    /// Query fingerprints (16 hex digits) whose advice is dropped, comma-separated.
    #[arg(long, env = "PGVISOR_IGNORE_FINGERPRINTS", value_delimiter = ',', value_parser = crate::config_file::parse_fingerprint_arg, global = true)]
    pub ignore_fingerprints: Vec<advisor::Fingerprint>,

    /// Log format: human or json. Verbosity follows RUST_LOG (default info).
    #[arg(long, env = "PGVISOR_LOG_FORMAT", value_enum, default_value = "human", global = true)]
    pub log_format: LogFormat,
}

impl ProxyArgs {
    /// The client-leg TLS choice these flags make.
    pub fn client_tls(&self) -> ClientTls {
        match (&self.tls_cert, &self.tls_key, self.no_tls) {
            (_, _, true) => ClientTls::Off,
            (Some(cert), Some(key), false) => ClientTls::Files { cert: cert.clone(), key: key.clone() },
            _ if self.tls => ClientTls::SelfSigned,
            _ => ClientTls::LikeUpstream,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_addresses() {
        let a: UpstreamAddr = "db.internal:5433".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("db.internal", 5433));
        let a: UpstreamAddr = "localhost".parse().unwrap();
        assert_eq!(a.port, 5432);
        let a: UpstreamAddr = "[::1]:6000".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port, a.to_string()), ("::1", 6000, "[::1]:6000".to_string()));
        let err = |s: &str| s.parse::<UpstreamAddr>().unwrap_err();
        assert_eq!(err("host:notaport"), "the port must be a number from 1 to 65535, got \"host:notaport\"");
        assert_eq!(err(""), "expected HOST:PORT such as 127.0.0.1:5432, got \"\"");
        assert_eq!(err("host:0"), "the port must be a number from 1 to 65535, got \"host:0\"");
        assert_eq!(err("[::1"), "expected [IPv6]:PORT such as [::1]:5432, got \"[::1\"");
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen_addr("0.0.0.0:6432").unwrap(), "0.0.0.0:6432".parse().unwrap());
        assert_eq!(parse_listen_addr("[::1]:0").unwrap(), "[::1]:0".parse().unwrap());
        assert_eq!(parse_listen_addr("localhost:7000").unwrap(), "127.0.0.1:7000".parse().unwrap());
        assert_eq!(
            parse_listen_addr("db.internal:7000").unwrap_err(),
            "expected IP:PORT such as 127.0.0.1:7000 (host names other than localhost are not looked up), got \
             \"db.internal:7000\""
        );
        assert_eq!(
            parse_listen_addr("127.0.0.1").unwrap_err(),
            "expected IP:PORT such as 127.0.0.1:6432 (an address and a port), got \"127.0.0.1\""
        );
        assert_eq!(
            parse_listen_addr("localhost:http").unwrap_err(),
            "the port must be a number from 0 to 65535, got \"localhost:http\""
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("fast").unwrap_err(), "expected a duration such as 100ms, 2s or 1.5s, got \"fast\"");
        assert_eq!(parse_duration("-1").unwrap_err(), "must not be negative, got -1");
        assert_eq!(parse_duration("-1s").unwrap_err(), "must not be negative, got \"-1s\"");
        assert_eq!(parse_duration("1e30").unwrap_err(), "must be at most 365 days, got 1e30", "no panic");
        assert_eq!(parse_duration("NaN").unwrap_err(), "expected a duration such as 100ms, 2s or 1.5s, got NaN");
        assert_eq!(parse_positive_duration("0").unwrap_err(), "must be at least 1ms, got 0");
        assert_eq!(parse_positive_duration("0ms").unwrap_err(), "must be at least 1ms, got \"0ms\"");
        assert_eq!(parse_positive_duration("1ms").unwrap(), Duration::from_millis(1));
    }

    #[test]
    fn counts() {
        let n_plus_one = count::<u64>(2, u64::MAX, "an N+1 needs a parent and several children");
        assert_eq!(n_plus_one("8").unwrap(), 8);
        assert_eq!(
            n_plus_one("1").unwrap_err(),
            "must be at least 2 (an N+1 needs a parent and several children), got 1"
        );
        assert_eq!(n_plus_one("-3").unwrap_err(), "must be a positive whole number, got -3");
        assert_eq!(n_plus_one("2.5").unwrap_err(), "must be a whole number, got 2.5");
        assert_eq!(n_plus_one("many").unwrap_err(), "expected a whole number, got \"many\"");
        assert_eq!(
            n_plus_one("99999999999999999999").unwrap_err(),
            "must be at most 18446744073709551615, got 99999999999999999999"
        );
        let columns = count::<usize>(0, usize::MAX as u64, "");
        assert_eq!(columns("0").unwrap(), 0);
        assert_eq!(columns("-1").unwrap_err(), "must not be negative, got -1");
        let threads = count::<u16>(1, 256, "");
        assert_eq!(threads("0").unwrap_err(), "must be at least 1, got 0");
        assert_eq!(threads("257").unwrap_err(), "must be at most 256, got 257");
        assert_eq!(threads("70000").unwrap_err(), "must be at most 256, got 70000");
    }

    #[test]
    fn sizes_and_ratios() {
        assert_eq!(parse_bytes("10MB").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_bytes("1kB").unwrap(), 1024);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(
            parse_bytes("10 parsecs").unwrap_err(),
            "expected a size such as 10MB, 512kB or 1048576 (units B, kB, MB, GB), got \"10 parsecs\""
        );
        assert_eq!(parse_bytes("99999999999GB").unwrap_err(), "too large for a size in bytes, got \"99999999999GB\"");
        assert_eq!(parse_bytes("0kB").unwrap_err(), "must be at least 1 byte, got \"0kB\"");
        assert_eq!(parse_ratio("0.5").unwrap(), 0.5);
        assert_eq!(parse_ratio("1.5").unwrap_err(), "expected a ratio between 0 and 1 such as 0.5, got 1.5");
    }

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
            crate::server::ProxySettings::from_args(&cli.proxy, upstream).advisor
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
