//! The proxy's settings: its flags (each also a `PGVISOR_*` variable) and their types; the
//! configuration file is `file`, the value parsers `values`.

pub mod file;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use advisor::advice::AdviceFilter;
use clap::{Args, ValueEnum};

use values::{count, parse_bytes, parse_duration, parse_positive_duration, parse_ratio};
pub use values::{parse_fingerprint_arg, parse_kind, parse_listen_addr, value_error_reason};

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
    /// Only queries run with this tag, KEY:VALUE (route:/users/:id, application_name:shop-web).
    #[arg(long, value_name = "KEY:VALUE", value_parser = values::parse_tag)]
    pub tag: Option<String>,
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

/// The advice switched off by `--disable-advice` and `--ignore-fingerprints`.
pub fn advice_filter(args: &ProxyArgs) -> AdviceFilter {
    AdviceFilter {
        disabled: args.disable_advice.iter().copied().collect(),
        ignored: args.ignore_fingerprints.iter().copied().collect(),
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

    /// Forwarding loops, each a single-threaded runtime on a thread of its own; sessions are
    /// spread over them. Default: one per CPU, at most 4 (see docs/configuration.md).
    #[arg(long, env = "PGVISOR_THREADS", value_parser = count::<u16>(1, 256, ""), global = true, allow_negative_numbers = true)]
    pub threads: Option<u16>,

    /// TOML configuration file: a key per flag (`lock_wait = "500ms"`) and an `[advice]` table;
    /// the command line and PGVISOR_* variables win over it (see docs/configuration.md).
    #[arg(long, env = "PGVISOR_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Advice kinds to switch off, comma-separated (e.g. select_star,unparameterized).
    #[arg(long, env = "PGVISOR_DISABLE_ADVICE", value_delimiter = ',', value_parser = parse_kind, global = true)]
    pub disable_advice: Vec<advisor::advice::Kind>,

    /// Query fingerprints (16 hex digits) whose advice is dropped, comma-separated.
    #[arg(long, env = "PGVISOR_IGNORE_FINGERPRINTS", value_delimiter = ',', value_parser = parse_fingerprint_arg, global = true)]
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

/// The default number of forwarding loops (`--threads`): one per CPU, from 1 to 4. A loop with
/// no traffic costs nothing; with many busy sessions, loops side by side forward more than one
/// taking turns (docs/performance.md).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}
