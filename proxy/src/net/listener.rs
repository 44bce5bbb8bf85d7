//! The listener: accepts clients, runs their sessions, and shuts down with a grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use advisor::detect::error_spike::ErrorSpikeConfig;
use advisor::detect::missing_index::MissingIndexConfig;
use advisor::detect::n_plus_one::NPlusOneConfig;
use advisor::detect::repeated_query::RepeatedQueryConfig;
use advisor::detect::select_star::SelectStarConfig;
use advisor::detect::session_checks::SessionChecksConfig;
use advisor::detect::slow_query::SlowQueryConfig;
use advisor::detect::transactions::TransactionThresholds;
use advisor::detect::unbounded_result::UnboundedResultConfig;
use advisor::detect::unparameterized::UnparameterizedConfig;
use advisor::engine::{Advisor, AdvisorConfig, Engine, EngineInputs};
use advisor::health::Stage;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::{ClientTls, LogFormat, ProxyArgs, UpstreamAddr, UpstreamTlsMode};
use crate::counters::ProxyCounters;
use crate::net::backlog::ObservationWorker;
use crate::net::loops::Loops;
use crate::net::shared::{ForceClose, Shared};
use crate::net::tls::TlsSetupError;
use crate::net::upstream::UpstreamConnector;

/// Everything a proxy needs to run, independent of how it was configured.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Upstream PostgreSQL.
    pub upstream: UpstreamAddr,
    /// Client-leg TLS.
    pub client_tls: ClientTls,
    /// Upstream-leg TLS policy.
    pub upstream_tls: UpstreamTlsMode,
    /// CA file for verify-full.
    pub upstream_ca: Option<PathBuf>,
    /// Upstream connect timeout.
    pub connect_timeout: Duration,
    /// How long sessions may finish after a shutdown request.
    pub shutdown_grace: Duration,
    /// Admin HTTP address; `None` serves no admin port.
    pub admin: Option<SocketAddr>,
    /// Bearer token required on the admin port.
    pub admin_token: Option<String>,
    /// Cap on tracked fingerprints.
    pub max_fingerprints: usize,
    /// How often the log gets a one-line summary; zero turns it off.
    pub summary_interval: Duration,
    /// Detector thresholds and caps.
    pub advisor: AdvisorConfig,
    /// The Inspector's connection string; `None`: no Inspector (lock advice from the wire only).
    pub inspector_dsn: Option<String>,
    /// How advice is written to the log.
    pub log_format: LogFormat,
    /// Forwarding loops, the listener's own included (`net::loops`).
    pub forwarding_loops: usize,
}

impl ProxySettings {
    /// Settings from command-line flags and the upstream to use.
    pub fn from_args(args: &ProxyArgs, upstream: UpstreamAddr) -> Self {
        Self {
            listen: args.listen,
            upstream,
            client_tls: args.client_tls(),
            upstream_tls: args.upstream_tls,
            upstream_ca: args.upstream_ca.clone(),
            connect_timeout: args.connect_timeout,
            shutdown_grace: args.shutdown_grace,
            admin: Some(args.admin),
            admin_token: args.admin_token.clone(),
            max_fingerprints: args.max_fingerprints,
            summary_interval: args.summary_interval,
            advisor: AdvisorConfig {
                max_fingerprints: args.max_fingerprints,
                n_plus_one: NPlusOneConfig {
                    min_children: args.n_plus_one_min as usize,
                    log_params: args.log_params,
                    ..NPlusOneConfig::default()
                },
                transactions: TransactionThresholds {
                    idle_in_transaction: args.idle_in_transaction,
                    long_transaction: args.long_transaction,
                },
                lock_wait: args.lock_wait,
                filter: crate::config::advice_filter(args),
                slow_query: SlowQueryConfig {
                    threshold: args.slow,
                    min_calls: args.slow_min_calls,
                    once: args.slow_once,
                },
                session_checks: SessionChecksConfig {
                    repeated_query: RepeatedQueryConfig {
                        min_repeats: args.repeated_query_min as usize,
                        window: args.repeated_query_window,
                    },
                    unbounded_result: UnboundedResultConfig { rows: args.unbounded_rows, bytes: args.unbounded_bytes },
                    select_star: SelectStarConfig {
                        row_bytes: args.select_star_row_bytes,
                        columns: args.select_star_columns,
                    },
                },
                unparameterized: UnparameterizedConfig {
                    min_texts: args.unparameterized_min as usize,
                    window: args.unparameterized_window,
                },
                error_spike: ErrorSpikeConfig {
                    min_errors: args.error_spike_min as usize,
                    window: args.error_spike_window,
                    ratio: args.error_spike_ratio,
                },
                missing_index: MissingIndexConfig { explain_min: args.explain_min, ..MissingIndexConfig::default() },
                ..AdvisorConfig::default()
            },
            inspector_dsn: args.inspector_dsn.clone(),
            log_format: args.log_format,
            forwarding_loops: args.threads.map_or_else(crate::config::default_threads, usize::from),
        }
    }

    /// Settings for tests: listen on a free loopback port, self-signed TLS, upstream TLS preferred.
    pub fn for_upstream(upstream: UpstreamAddr) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            client_tls: ClientTls::SelfSigned,
            upstream_tls: UpstreamTlsMode::Prefer,
            upstream_ca: None,
            connect_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            admin: None,
            admin_token: None,
            max_fingerprints: 5000,
            summary_interval: Duration::ZERO,
            advisor: AdvisorConfig::default(),
            inspector_dsn: None,
            log_format: LogFormat::Human,
            // Two, so that in-process tests run sessions on a loop other than the listener's too.
            forwarding_loops: 2,
        }
    }
}

/// A failure to start the proxy.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    /// The admin port could not be set up.
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
}

/// Asks the upstream once at start whether it answers and offers TLS, and says so: a wrong
/// address shows now, not at the first client. pgvisor serves either way (the server may come
/// up later); every upstream connection asks again.
async fn probe_upstream(upstream: &UpstreamConnector, client_tls: &ClientTls) {
    let addr = upstream.addr();
    match upstream.probe().await {
        Ok(offered) => {
            let clients = match client_tls {
                ClientTls::LikeUpstream if offered => "clients are offered TLS too",
                ClientTls::LikeUpstream => "clients are not offered TLS either (--tls offers it anyway)",
                ClientTls::Off => "clients are not offered TLS (--no-tls)",
                ClientTls::SelfSigned | ClientTls::Files { .. } => "clients are offered TLS (--tls/--tls-cert)",
            };
            let server = if offered { "offers TLS" } else { "does not offer TLS" };
            info!(upstream = %addr, "the upstream answers and {server}; {clients}");
        }
        Err(e) => warn!(
            "cannot reach the upstream PostgreSQL at {addr}: {}. pgvisor keeps serving and tries again for each \
             client; check --upstream (host:port) and that the server is running",
            match &e {
                crate::net::error::SessionError::UpstreamConnect { reason, .. } => reason.as_str(),
                _ => "no answer",
            }
        ),
    }
}

/// Starts the forwarding loops off the runtime's thread (each start waits for its thread).
async fn start_loops(count: usize) -> Loops {
    tokio::task::spawn_blocking(move || Loops::start(count)).await.unwrap_or_else(|e| {
        warn!(error = %e, "cannot start the forwarding loops; every session is forwarded on the listener's");
        Loops::start(1)
    })
}

/// One open client connection in `connections_active`, until dropped (however its task ends).
struct Active(Arc<ProxyCounters>);

impl Active {
    fn count(stats: &Arc<ProxyCounters>) -> Self {
        ProxyCounters::add(&stats.connections_active, 1);
        Self(stats.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.connections_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A bound proxy, ready to run.
pub struct Proxy {
    listener: TcpListener,
    admin: Option<crate::admin::AdminServer>,
    shared: Arc<Shared>,
    events: EngineInputs,
    grace: Duration,
    summary_interval: Duration,
    inspector_dsn: Option<String>,
    log_format: LogFormat,
    next_id: AtomicU64,
    /// Where sessions are forwarded.
    loops: Loops,
}

impl Proxy {
    /// Binds the listen address and prepares TLS on both legs.
    pub async fn bind(settings: ProxySettings) -> Result<Self, StartError> {
        let client_tls = crate::net::tls::acceptor(&settings.client_tls)?;
        let client_leaf = client_tls.as_ref().map(|t| t.leaf.as_ref().to_vec());
        let acceptor = client_tls.map(|t| t.acceptor);
        let connector = crate::net::tls::connector(settings.upstream_tls, settings.upstream_ca.as_deref())?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartError::Bind { addr: settings.listen, source })?;
        let upstream =
            UpstreamConnector::new(settings.upstream, settings.upstream_tls, connector, settings.connect_timeout);
        probe_upstream(&upstream, &settings.client_tls).await;
        let (advisor, events) =
            Advisor::new(AdvisorConfig { max_fingerprints: settings.max_fingerprints, ..settings.advisor.clone() });
        let stats: Arc<ProxyCounters> = Arc::default();
        let admin = match settings.admin {
            Some(addr) => Some(
                crate::admin::AdminServer::bind(addr, settings.admin_token.clone(), advisor.clone(), stats.clone())
                    .await?,
            ),
            None => None,
        };
        Ok(Self {
            listener,
            admin,
            shared: Arc::new(Shared {
                acceptor,
                tls_like_upstream: settings.client_tls == ClientTls::LikeUpstream,
                client_leaf,
                warned_channel_binding: AtomicBool::new(false),
                upstream,
                stats,
                force_close: ForceClose::default(),
                advisor,
                observation: ObservationWorker::start(),
            }),
            events,
            grace: settings.shutdown_grace,
            summary_interval: settings.summary_interval,
            inspector_dsn: settings.inspector_dsn,
            log_format: settings.log_format,
            next_id: AtomicU64::new(1),
            loops: start_loops(settings.forwarding_loops).await,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The proxy's counters.
    pub fn stats(&self) -> Arc<ProxyCounters> {
        self.shared.stats.clone()
    }

    /// The admin port's address, when one is served.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.local_addr())
    }

    /// Statistics, sessions and advice.
    pub fn advisor(&self) -> Arc<Advisor> {
        self.shared.advisor.clone()
    }

    /// Accepts clients until `shutdown` completes, then lets open sessions finish for the grace
    /// period and closes the rest.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let sessions = TaskTracker::new();
        let (inspect_tx, inspect_rx) = mpsc::channel(64);
        let (explain_tx, explain_rx) = mpsc::channel(16);
        let inspector = self.inspector_dsn.clone().map(|dsn| {
            let config = self.shared.advisor.config.missing_index.clone();
            let events = self.shared.advisor.answers.clone();
            let advisor = self.shared.advisor.clone();
            let stats = self.shared.stats.clone();
            let inspector = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(crate::inspector::run(
                dsn, inspect_rx, explain_rx, config, events, stats,
            )));
            // A panic in the Inspector ends only the Inspector: lock advice falls back to the wire.
            tokio::spawn(async move {
                if let Err(e) = inspector.await {
                    if e.is_panic() {
                        advisor.health.record(Stage::Inspector, format!("{e}"), || {
                            "the Inspector stopped; lock advice falls back to what the wire shows".into()
                        });
                    }
                }
            })
        });
        let mut engine = Engine::new(
            self.shared.advisor.clone(),
            crate::advice_log::sink(self.log_format),
            inspector.is_some().then_some(inspect_tx),
        );
        if inspector.is_some() {
            engine = engine.with_explainer(explain_tx);
        }
        let engine = EngineThread::start(engine, self.events);
        let admin_stopper = self.admin.as_ref().map(|a| a.stopper());
        let admin = self.admin.map(|a| tokio::spawn(a.serve()));
        let summary = (!self.summary_interval.is_zero()).then(|| {
            tokio::spawn(crate::log_summary::log_periodically(
                self.shared.advisor.clone(),
                self.shared.stats.clone(),
                self.summary_interval,
            ))
        });
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                        let shared = self.shared.clone();
                        ProxyCounters::add(&shared.stats.connections_total, 1);
                        let active = Active::count(&shared.stats);
                        let placed = self.loops.place(id);
                        let (other_loop, session) = crate::net::loops::moved_to(placed, tcp, peer, move |tcp| async move {
                            let _active = active;
                            crate::net::session::serve(tcp, peer, id, shared).await;
                        });
                        match other_loop {
                            Some(other_loop) => sessions.spawn_on(session, &other_loop),
                            None => sessions.spawn(session),
                        };
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving the open sessions.
                        error!(error = %e, "accept failed; retrying in 100 ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
        drop(self.listener);
        sessions.close();
        let open = sessions.len();
        if open > 0 {
            info!(sessions = open, grace = ?self.grace, "shutting down: waiting for open sessions to finish");
        }
        if tokio::time::timeout(self.grace, sessions.wait()).await.is_err() {
            warn!(sessions = sessions.len(), "grace period over: closing the remaining sessions");
            self.shared.force_close.close();
            let _ = tokio::time::timeout(Duration::from_secs(5), sessions.wait()).await;
        }
        if let (Some(stopper), Some(task)) = (admin_stopper, &admin) {
            stopper.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while !task.is_finished() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
        }
        engine.stop();
        for task in [admin, summary, inspector].into_iter().flatten() {
            task.abort();
        }
        info!("proxy stopped");
    }

    /// Runs the proxy on the current runtime until the handle asks it to stop (for tests and
    /// embedding).
    pub fn spawn(self) -> ProxyHandle {
        let addr = self.local_addr();
        let admin_addr = self.admin_addr();
        let stats = self.stats();
        let advisor = self.advisor();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(self.run(async move { stopped.cancelled().await }));
        ProxyHandle { addr, admin_addr, stats, advisor, stop, task }
    }
}

/// The engine on a thread of its own: its batches (statistics, detectors, advice) never hold up a
/// forwarding task on the proxy's loops, whatever they cost.
struct EngineThread {
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EngineThread {
    fn start(engine: Engine, inputs: EngineInputs) -> Self {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("pgvisor-engine".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        error!(error = %e, "cannot start the analysis engine; forwarding goes on without analysis");
                        return;
                    }
                };
                runtime.block_on(async move {
                    tokio::select! {
                        _ = engine.run(inputs) => {}
                        _ = stopped.cancelled() => {}
                    }
                });
            })
            .map_err(
                |e| error!(error = %e, "cannot start the analysis engine thread; forwarding goes on without analysis"),
            )
            .ok();
        Self { stop, thread }
    }

    /// Stops the engine and waits for its thread (a few milliseconds).
    fn stop(mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for EngineThread {
    /// A proxy dropped without a shutdown (a test's runtime ending) still ends its engine thread.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A proxy running in the background.
pub struct ProxyHandle {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    stats: Arc<ProxyCounters>,
    advisor: Arc<Advisor>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl ProxyHandle {
    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's counters.
    pub fn stats(&self) -> &ProxyCounters {
        &self.stats
    }

    /// The admin port's address, when one is served.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Statistics, sessions and advice.
    pub fn advisor(&self) -> &Advisor {
        &self.advisor
    }

    /// Stops accepting, waits out the grace period, and returns when the proxy has stopped.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
