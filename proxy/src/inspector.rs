//! The Inspector: a side connection to the upstream that asks PostgreSQL who blocks a waiting
//! backend (`pg_blocking_pids`), following chains to the root blocker.
//!
//! It is asked only when a statement has waited longer than `--lock-wait`, at most a few times a
//! second, with its own short `statement_timeout`, so it adds no load a developer would notice.

use std::time::Duration;

use advisor::detect::lock_contention::BlockingReport;
use advisor::engine::InspectRequest;
use advisor::events::{Event, EventSender};
use tokio::sync::mpsc;
use tokio_postgres::{Client, NoTls};
use tracing::{debug, warn};

/// Most questions per second.
const MAX_PER_SECOND: u32 = 10;
/// PostgreSQL's limit on each Inspector query.
const STATEMENT_TIMEOUT: &str = "500ms";
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

/// Answers inspection requests until the channel closes.
pub async fn run(dsn: String, mut requests: mpsc::Receiver<InspectRequest>, events: EventSender) {
    let mut client: Option<Client> = None;
    let mut reported_down = false;
    let mut last_failure: Option<std::time::Instant> = None;
    let mut budget = tokio::time::interval(Duration::from_secs(1) / MAX_PER_SECOND);
    while let Some(request) = requests.recv().await {
        budget.tick().await;
        if client.as_ref().is_none_or(Client::is_closed) {
            if last_failure.is_some_and(|t| t.elapsed() < RECONNECT_AFTER) {
                events.send(Event::Blocking {
                    session: request.session,
                    statement_started: request.statement_started,
                    report: None,
                });
                continue;
            }
            match connect(&dsn).await {
                Ok(c) => {
                    client = Some(c);
                    last_failure = None;
                }
                Err(e) => {
                    last_failure = Some(std::time::Instant::now());
                    if !reported_down {
                        reported_down = true;
                        warn!(error = %e, "the Inspector cannot connect to PostgreSQL; lock advice falls back to the wire");
                        events.send(Event::InspectorUnavailable { reason: error_chain(&e) });
                    }
                    events.send(Event::Blocking {
                        session: request.session,
                        statement_started: request.statement_started,
                        report: None,
                    });
                    continue;
                }
            }
        }
        let c = client.as_ref().expect("connected above");
        let report = match inspect(c, request.pid).await {
            Ok(report) => Some(report),
            Err(e) => {
                debug!(error = %e, pid = request.pid, "inspection failed");
                None
            }
        };
        events.send(Event::Blocking { session: request.session, statement_started: request.statement_started, report });
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
    let mut config: tokio_postgres::Config = dsn.parse()?;
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
