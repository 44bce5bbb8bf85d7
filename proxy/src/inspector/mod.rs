//! The Inspector: a side connection to the upstream that asks PostgreSQL who blocks a waiting
//! backend (`pg_blocking_pids`), following chains to the root blocker, and EXPLAINs slow
//! statements as their session's role (`crate::inspector::explain`).
//!
//! It is asked only when a statement has waited longer than `--lock-wait`, at most a few times a
//! second, with its own short `statement_timeout`, so it adds no load a developer would notice.

pub mod explain;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use advisor::detect::lock_contention::BlockingReport;
use advisor::detect::missing_index::{IndexCandidate, MissingIndexConfig};
use advisor::engine::InspectRequest;
use advisor::events::{AnswerSender, Event, ExplainSample, PlanOutcome, SkipReason};
use tokio::sync::mpsc;
use tokio_postgres::{Client, NoTls};
use tracing::{debug, warn};

use crate::counters::ProxyCounters;
use crate::inspector::explain::ExplainError;

/// Most questions per second.
const MAX_PER_SECOND: u32 = 10;
/// PostgreSQL's limit on each Inspector query.
const STATEMENT_TIMEOUT: &str = "500ms";
/// At most one EXPLAIN per this interval (each a few milliseconds of planning on the server).
const EXPLAIN_EVERY: Duration = Duration::from_secs(1);
/// How long to wait before trying to reconnect after a failure.
const RECONNECT_AFTER: Duration = Duration::from_secs(5);

/// The root blockers of `pid` and its direct blockers, in one round trip.
const BLOCKING_QUERY: &str = "
WITH RECURSIVE chain(pid, depth) AS (
    SELECT unnest(pg_blocking_pids($1)), 1
  UNION
    SELECT unnest(pg_blocking_pids(chain.pid)), chain.depth + 1 FROM chain WHERE chain.depth < 10
)
SELECT pid, depth, cardinality(pg_blocking_pids(pid)) = 0 AS root,
       (SELECT wait_event_type || ':' || wait_event FROM pg_stat_activity WHERE pid = $1) AS waiting_for
FROM chain";

/// One job for the Inspector.
enum Job {
    /// Who blocks this waiting backend?
    Blocking(InspectRequest),
    /// Does this slow statement miss an index?
    Explain(ExplainSample),
}

/// The Inspector's side connection, opened lazily and reopened after failures.
struct Side {
    dsn: String,
    client: Option<Client>,
    reported_down: bool,
    last_failure: Option<std::time::Instant>,
    /// EXPLAIN runs in the statement's own database: one connection per database (bounded).
    by_database: HashMap<String, ExplainConnection>,
}

/// A per-database connection for EXPLAIN.
struct ExplainConnection {
    client: Client,
    /// EXPLAINs run on it: each leaves a compiled PL/pgSQL function (some 36 kB) in the backend's
    /// cache for good, so the connection is replaced after [`EXPLAINS_PER_CONNECTION`].
    explains: u32,
}

/// Most per-database connections the Inspector keeps for EXPLAIN.
const MAX_DATABASES: usize = 8;
/// EXPLAINs on one connection before it is replaced (bounds the backend's PL/pgSQL cache).
const EXPLAINS_PER_CONNECTION: u32 = 100;

impl Side {
    /// A connection to `database` with the Inspector's credentials, counted as one more EXPLAIN.
    async fn for_database(&mut self, database: &str) -> Result<&Client, String> {
        let usable = |c: &ExplainConnection| !c.client.is_closed() && c.explains < EXPLAINS_PER_CONNECTION;
        if !self.by_database.get(database).is_some_and(usable) {
            self.by_database.remove(database);
            if self.by_database.len() >= MAX_DATABASES {
                self.by_database.clear();
            }
            let client = connect_to(&self.dsn, Some(database)).await.map_err(|e| {
                let error = error_chain(&e);
                debug!(%error, database, "the Inspector cannot connect to this database");
                format!("the Inspector cannot connect to database {database}: {error}")
            })?;
            self.by_database.insert(database.to_string(), ExplainConnection { client, explains: 0 });
        }
        let connection = self.by_database.get_mut(database).expect("inserted above");
        connection.explains += 1;
        Ok(&connection.client)
    }

    async fn client(&mut self, events: &AnswerSender) -> Option<&Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            if self.last_failure.is_some_and(|t| t.elapsed() < RECONNECT_AFTER) {
                return None;
            }
            match connect(&self.dsn).await {
                Ok(c) => {
                    debug!("Inspector connected");
                    self.client = Some(c);
                    self.last_failure = None;
                }
                Err(e) => {
                    self.last_failure = Some(std::time::Instant::now());
                    if !self.reported_down {
                        self.reported_down = true;
                        warn!(error = %e, "the Inspector cannot connect to PostgreSQL; lock advice falls back to the wire");
                        events.send(Event::InspectorUnavailable { reason: error_chain(&e) }).await;
                    }
                    return None;
                }
            }
        }
        self.client.as_ref()
    }
}

/// Answers inspection requests (lock waits and EXPLAINs) until both channels close.
pub async fn run(
    dsn: String,
    mut requests: mpsc::Receiver<InspectRequest>,
    mut explains: mpsc::Receiver<ExplainSample>,
    config: MissingIndexConfig,
    events: AnswerSender,
    stats: Arc<ProxyCounters>,
) {
    let mut side = Side { dsn, client: None, reported_down: false, last_failure: None, by_database: HashMap::new() };
    let mut skips = SkipLog::default();
    let mut budget = tokio::time::interval(Duration::from_secs(1) / MAX_PER_SECOND);
    let mut next_explain = tokio::time::Instant::now();
    loop {
        let explain_ready = tokio::time::Instant::now() >= next_explain;
        // Lock waits first (someone is waiting now); EXPLAINs at most one a second.
        let job = tokio::select! {
            biased;
            Some(r) = requests.recv() => Job::Blocking(r),
            Some(e) = explains.recv(), if explain_ready => Job::Explain(e),
            _ = tokio::time::sleep_until(next_explain), if !explain_ready => continue,
            else => return,
        };
        budget.tick().await;
        match job {
            Job::Blocking(request) => {
                let report = match side.client(&events).await {
                    Some(c) => match inspect(c, request.pid).await {
                        Ok(report) => Some(report),
                        Err(e) => {
                            debug!(error = %e, pid = request.pid, "inspection failed");
                            None
                        }
                    },
                    None => None,
                };
                events
                    .send(Event::Blocking {
                        session: request.session,
                        statement_started: request.statement_started,
                        report,
                    })
                    .await;
            }
            Job::Explain(sample) => {
                next_explain = tokio::time::Instant::now() + EXPLAIN_EVERY;
                let outcome = match explain(&mut side, &events, &sample, &config).await {
                    Ok(candidates) => PlanOutcome::Explained(candidates),
                    Err(e) => {
                        skips.note(&e, &sample);
                        e.outcome()
                    }
                };
                stats.inspector_explains.count(&outcome);
                events
                    .send(Event::Plan {
                        fingerprint: sample.statement.fingerprint,
                        statement: sample.statement.text.to_string(),
                        outcome,
                    })
                    .await;
            }
        }
    }
}

/// EXPLAINs `sample` on a connection to its database; a connection that could not be reset
/// afterwards is closed.
async fn explain(
    side: &mut Side,
    events: &AnswerSender,
    sample: &ExplainSample,
    config: &MissingIndexConfig,
) -> Result<Vec<IndexCandidate>, ExplainError> {
    if side.client(events).await.is_none() {
        return Err(ExplainError::Transient("the Inspector cannot connect to PostgreSQL".into()));
    }
    let c = side.for_database(&sample.database).await.map_err(ExplainError::Transient)?;
    // Asked each time: the extension may be created while pgvisor runs.
    let hypopg: Option<String> = c
        .query_opt("SELECT extnamespace::regnamespace::text FROM pg_catalog.pg_extension WHERE extname = 'hypopg'", &[])
        .await
        .map_err(|e| ExplainError::Transient(e.to_string()))?
        .map(|row| row.get(0));
    let result = crate::inspector::explain::explain(c, sample, hypopg.as_deref(), config).await;
    if let Err(ExplainError::Unclean(_)) = &result {
        side.by_database.remove(&*sample.database);
    }
    result
}

/// Skipped EXPLAINs are logged once per reason and role (then only counted); failures at debug.
#[derive(Default)]
struct SkipLog {
    warned: HashSet<(SkipReason, Arc<str>)>,
}

impl SkipLog {
    /// Most (reason, role) pairs remembered; past it skips are only counted.
    const REMEMBERED: usize = 1_000;

    fn note(&mut self, e: &ExplainError, sample: &ExplainSample) {
        let fingerprint = &sample.statement.fingerprint;
        let reason = match e.outcome() {
            PlanOutcome::Skipped(reason) => reason,
            _ => {
                debug!(error = %e, %fingerprint, "EXPLAIN failed; the engine may ask again later");
                return;
            }
        };
        debug!(error = %e, %fingerprint, role = %sample.user, "EXPLAIN skipped");
        if self.warned.len() >= Self::REMEMBERED || !self.warned.insert((reason, sample.user.clone())) {
            return;
        }
        match reason {
            SkipReason::RoleNotAssumable => warn!(
                error = %e,
                role = %sample.user,
                "the Inspector cannot EXPLAIN as this role, so missing_index skips its statements \
                 (GRANT the role to the Inspector's role, see docs/inspector.md); further skips are \
                 only counted in pgvisor_inspector_explains_total"
            ),
            // Not actionable (an UPDATE cannot be planned in the read-only transaction, say): no warning.
            SkipReason::NotExplainable => debug!(
                error = %e,
                role = %sample.user,
                %fingerprint,
                "PostgreSQL would not plan a statement of this role for missing_index; further such \
                 skips for this role are only counted in pgvisor_inspector_explains_total"
            ),
        }
    }
}

/// An error with its causes: tokio-postgres's own text ("error connecting to server") hides them.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn connect(dsn: &str) -> Result<Client, tokio_postgres::Error> {
    connect_to(dsn, None).await
}

/// Connects with the DSN's settings, in `database` when given.
async fn connect_to(dsn: &str, database: Option<&str>) -> Result<Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = dsn.parse()?;
    if let Some(db) = database {
        config.dbname(db);
    }
    config.application_name("pgvisor-inspector");
    config.options(format!("-c statement_timeout={STATEMENT_TIMEOUT}"));
    config.connect_timeout(Duration::from_secs(3));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!(error = %e, "Inspector connection closed");
        }
    });
    Ok(client)
}

async fn inspect(client: &Client, pid: u32) -> Result<BlockingReport, tokio_postgres::Error> {
    let rows = client.query(BLOCKING_QUERY, &[&(pid as i32)]).await?;
    let mut report = BlockingReport { waiter_pid: pid, blockers: Vec::new(), roots: Vec::new(), wait_event: None };
    for row in rows {
        let blocker: i32 = row.get(0);
        let depth: i32 = row.get(1);
        let root: bool = row.get(2);
        report.wait_event = row.get(3);
        let blocker = blocker as u32;
        if depth == 1 && !report.blockers.contains(&blocker) {
            report.blockers.push(blocker);
        }
        if root && !report.roots.contains(&blocker) {
            report.roots.push(blocker);
        }
    }
    Ok(report)
}

/// The Inspector's connection string when `--inspector-dsn` is not given: the libpq environment
/// (PGUSER, PGPASSWORD, PGDATABASE...) pointed at the upstream, else user `postgres`.
pub fn default_dsn(host: &str, port: u16, superuser: Option<&str>) -> String {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let user = superuser.map(str::to_owned).or_else(|| env("PGUSER")).unwrap_or_else(|| "postgres".into());
    let mut dsn = format!("host={host} port={port} user={user}");
    let dbname = env("PGDATABASE").unwrap_or_else(|| "postgres".into());
    dsn.push_str(&format!(" dbname={dbname}"));
    if superuser.is_none() {
        if let Some(pw) = env("PGPASSWORD") {
            dsn.push_str(&format!(" password='{}'", pw.replace('\\', "\\\\").replace('\'', "\\'")));
        }
    }
    dsn
}
