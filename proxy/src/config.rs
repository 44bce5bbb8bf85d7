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
    /// Run the proxy (the default).
    Run,
    /// Print the top queries of a running pgvisor as a table.
    Report(ReportArgs),
    /// Follow a running pgvisor's live advice: one block per finding (reconnects on restart).
    Watch(WatchArgs),
    /// Start a throwaway PostgreSQL behind pgvisor and run a workload that shows each advice.
    Demo(DemoArgs),
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
    #[arg(long, default_value_t = 20)]
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
        let s = s.trim();
        if s.is_empty() {
            return Err("the upstream address is empty; expected HOST:PORT".into());
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or("missing ']' after an IPv6 address")?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(format!("unexpected text after ']': {after}")),
            }
        } else if s.matches(':').count() > 1 {
            (s, None)
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("invalid port {p:?}; expected a number 1-65535"))?,
            None => 5432,
        };
        if host.is_empty() || port == 0 {
            return Err(format!("invalid upstream address {s:?}; expected HOST:PORT"));
        }
        Ok(Self { host: host.to_string(), port })
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
    }
    humantime::parse_duration(s).map_err(|e| format!("{e}; expected e.g. 10s, 500ms or 2m"))
}

/// A size in bytes: a number, optionally with a unit as PostgreSQL writes them (B, kB, MB, GB;
/// multiples of 1024).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{s}: expected a size such as 10MB or 1048576"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" | "k" | "K" => 1 << 10,
        "MB" | "M" => 1 << 20,
        "GB" | "G" => 1 << 30,
        other => return Err(format!("unknown unit {other:?} in {s}; use B, kB, MB or GB")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("{s} is too large"))
}

/// A ratio between 0 and 1.
fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s}: expected a ratio between 0 and 1, e.g. 0.5")),
    }
}

/// Options of the proxy; each flag can also come from a `PGVISOR_*` environment variable.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// Address clients connect to.
    #[arg(long, env = "PGVISOR_LISTEN", default_value = "127.0.0.1:6432", global = true)]
    pub listen: SocketAddr,

    /// PostgreSQL to forward to (HOST:PORT). Without it pgvisor starts an embedded throwaway
    /// PostgreSQL from the local server binaries and removes it on exit.
    #[arg(long, env = "PGVISOR_UPSTREAM", global = true)]
    pub upstream: Option<UpstreamAddr>,

    /// Address of the admin HTTP port (JSON API, metrics, web page).
    #[arg(long, env = "PGVISOR_ADMIN", default_value = "127.0.0.1:6480", global = true)]
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
    #[arg(long, env = "PGVISOR_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub connect_timeout: Duration,

    /// On SIGINT/SIGTERM, how long open sessions may finish before they are closed (e.g. 10s).
    #[arg(long, env = "PGVISOR_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration, global = true)]
    pub shutdown_grace: Duration,

    /// Bearer token for the admin port; required when --admin binds a non-loopback address.
    #[arg(long, env = "PGVISOR_ADMIN_TOKEN", global = true, hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Most query fingerprints tracked; past it the least recently seen are evicted.
    #[arg(long, env = "PGVISOR_MAX_FINGERPRINTS", default_value_t = 5000, global = true)]
    pub max_fingerprints: usize,

    /// How often the log gets a one-line traffic summary (0 turns it off).
    #[arg(long, env = "PGVISOR_SUMMARY_INTERVAL", default_value = "60s", value_parser = parse_duration, global = true)]
    pub summary_interval: Duration,

    /// N+1: how many executions of one query, with different parameters, make a burst.
    #[arg(long, env = "PGVISOR_N_PLUS_ONE_MIN", default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..), global = true)]
    pub n_plus_one_min: u64,

    /// Lock contention: a statement running this long gets the Inspector's attention (e.g. 200ms).
    #[arg(long, env = "PGVISOR_LOCK_WAIT", default_value = "200ms", value_parser = parse_duration, global = true)]
    pub lock_wait: Duration,

    /// idle_in_transaction fires after a session has been idle this long inside a transaction.
    #[arg(long, env = "PGVISOR_IDLE_IN_TRANSACTION", default_value = "2s", value_parser = parse_duration, global = true)]
    pub idle_in_transaction: Duration,

    /// long_transaction fires when a transaction has been open this long.
    #[arg(long, env = "PGVISOR_LONG_TRANSACTION", default_value = "10s", value_parser = parse_duration, global = true)]
    pub long_transaction: Duration,

    /// slow_query fires for a query shape whose 95th percentile latency is at least this.
    #[arg(long, env = "PGVISOR_SLOW", default_value = "100ms", value_parser = parse_duration, global = true)]
    pub slow: Duration,

    /// slow_query needs at least this many calls of the shape.
    #[arg(long, env = "PGVISOR_SLOW_MIN_CALLS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub slow_min_calls: u64,

    /// repeated_query: how many runs of one query with the same parameters, in one session, within
    /// --repeated-query-window.
    #[arg(long, env = "PGVISOR_REPEATED_QUERY_MIN", default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..), global = true)]
    pub repeated_query_min: u64,

    /// repeated_query: the window the repeats must fall in.
    #[arg(long, env = "PGVISOR_REPEATED_QUERY_WINDOW", default_value = "2s", value_parser = parse_duration, global = true)]
    pub repeated_query_window: Duration,

    /// unbounded_result: rows returned by a SELECT without LIMIT that make it unbounded.
    #[arg(long, env = "PGVISOR_UNBOUNDED_ROWS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub unbounded_rows: u64,

    /// unbounded_result: bytes returned by a SELECT without LIMIT that make it unbounded (e.g. 10MB,
    /// 512kB; units of 1024 as in PostgreSQL).
    #[arg(long, env = "PGVISOR_UNBOUNDED_BYTES", default_value = "10MB", value_parser = parse_bytes, global = true)]
    pub unbounded_bytes: u64,

    /// select_star: average bytes per row that make a `SELECT *` row wide (e.g. 1kB).
    #[arg(long, env = "PGVISOR_SELECT_STAR_ROW_BYTES", default_value = "1kB", value_parser = parse_bytes, global = true)]
    pub select_star_row_bytes: u64,

    /// select_star: more columns than this make a `SELECT *` row wide.
    #[arg(long, env = "PGVISOR_SELECT_STAR_COLUMNS", default_value_t = 20, global = true)]
    pub select_star_columns: usize,

    /// unparameterized: distinct literal texts of one query shape, sent through the simple
    /// protocol within --unparameterized-window, that make the advice.
    #[arg(long, env = "PGVISOR_UNPARAMETERIZED_MIN", default_value_t = 50, value_parser = clap::value_parser!(u64).range(2..), global = true)]
    pub unparameterized_min: u64,

    /// unparameterized: how long a distinct text counts after it was last seen.
    #[arg(long, env = "PGVISOR_UNPARAMETERIZED_WINDOW", default_value = "60s", value_parser = parse_duration, global = true)]
    pub unparameterized_window: Duration,

    /// error_spike: errors of one SQLSTATE within --error-spike-window (also the calls a failing
    /// query shape needs before its error ratio counts).
    #[arg(long, env = "PGVISOR_ERROR_SPIKE_MIN", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub error_spike_min: u64,

    /// error_spike: the sliding window errors are counted in.
    #[arg(long, env = "PGVISOR_ERROR_SPIKE_WINDOW", default_value = "10s", value_parser = parse_duration, global = true)]
    pub error_spike_window: Duration,

    /// error_spike: share of a query shape's calls in the window that must fail (0 to 1).
    #[arg(long, env = "PGVISOR_ERROR_SPIKE_RATIO", default_value_t = 0.5, value_parser = parse_ratio, global = true)]
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
    #[arg(long, env = "PGVISOR_THREADS", value_parser = clap::value_parser!(u16).range(1..=256), global = true)]
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
        assert!("host:notaport".parse::<UpstreamAddr>().is_err());
        assert!("".parse::<UpstreamAddr>().is_err());
        assert!("host:0".parse::<UpstreamAddr>().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn sizes_and_ratios() {
        assert_eq!(parse_bytes("10MB").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_bytes("1kB").unwrap(), 1024);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("10 parsecs").is_err());
        assert!(parse_bytes("99999999999GB").is_err());
        assert_eq!(parse_ratio("0.5").unwrap(), 0.5);
        assert!(parse_ratio("1.5").is_err());
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
}
