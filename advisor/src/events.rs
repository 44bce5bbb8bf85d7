//! Events from session observers to the engine, over a bounded channel that never blocks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::advice::Finding;
use crate::detect::lock_contention::BlockingReport;
use crate::detect::missing_index::IndexCandidate;
use crate::detect::n_plus_one::ResultDigest;
use crate::detect::orm::OrmStyle;
use crate::fingerprint::Fingerprint;
use crate::observer::capture::Params;
use crate::tags::Tags;

/// Who ran the statement a per-session finding is about: its tags and the session's name.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The statement's tags, if it had any.
    pub tags: Option<Arc<Tags>>,
    /// The session's application_name.
    pub application_name: Arc<str>,
}

/// A SQLSTATE code (5 ASCII characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SqlState(pub [u8; 5]);

impl SqlState {
    /// Parses a 5-character SQLSTATE.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes: [u8; 5] = s.as_bytes().try_into().ok()?;
        bytes.iter().all(u8::is_ascii_alphanumeric).then_some(Self(bytes))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("?????")
    }
}

/// A statement text as one client wrote it: its fingerprint, normalised text, display text and
/// attribution tags, shared by every execution of that text.
#[derive(Debug, PartialEq, Eq)]
pub struct Statement {
    /// The fingerprint.
    pub fingerprint: Fingerprint,
    /// The normalised SQL the detectors read (keywords upper-cased, constants as `$n`).
    pub text: Arc<str>,
    /// The SQL as written, constants as `$n`, comments removed, whitespace collapsed: what users
    /// see and grep their code for.
    pub display: Arc<str>,
    /// The SQL style of the raw text (which ORM wrote it).
    pub style: OrmStyle,
    /// Tags from its comments (sqlcommenter, Marginalia, `key=value`); `None` when it has none.
    pub tags: Option<Arc<Tags>>,
}

/// One statement execution, finished.
#[derive(Debug, Clone)]
pub struct StatementEvent {
    /// pgvisor's session id.
    pub session: u64,
    /// What ran.
    pub statement: Arc<Statement>,
    /// From forwarding the request to its completion message.
    pub duration: Duration,
    /// Rows returned or affected.
    pub rows: u64,
    /// The error's SQLSTATE, when it failed.
    pub error: Option<SqlState>,
    /// When it finished.
    pub finished_at: SystemTime,
    /// Hash of its literal constants when it came in a simple Query message with literals in the
    /// SQL (`unparameterized`); `None` otherwise.
    pub literals: Option<u64>,
    /// The session's application_name when it ran.
    pub application_name: Arc<str>,
    /// Its parameters (Bind values, or a simple query's literals) as keys.
    pub params: Params,
    /// The sampled columns of its result, when it returned rows (a possible N+1 parent).
    pub result: Option<Arc<ResultDigest>>,
    /// The session, as messages name it and as a pool groups it.
    pub origin: Arc<SessionOrigin>,
}

/// A session as advice names it, and the pool it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOrigin {
    /// "Session 3 (app "shop", 127.0.0.1:5000, backend pid 42)".
    pub label: Arc<str>,
    /// User, database, application_name and client host: the connections of one client
    /// application's pool share it.
    pub pool: Arc<str>,
}

impl SessionOrigin {
    /// The origin of a session with this identity (and backend pid, once known).
    pub fn of(identity: &crate::sessions::SessionIdentity, pid: Option<u32>) -> Self {
        let label = crate::detect::transactions::session_label(identity, pid);
        let pool = format!(
            "{}\0{}\0{}\0{}",
            identity.user,
            identity.database,
            identity.application_name,
            identity.client_addr.ip()
        );
        Self { label: label.into(), pool: pool.into() }
    }
}

/// Something an observer (or the Inspector) saw.
#[derive(Debug, Clone)]
pub enum Event {
    /// A statement finished.
    Statement(StatementEvent),
    /// A per-session detector found something, about a statement of this caller.
    Finding(Finding, Caller),
    /// A session ended (its last statements were sent before this).
    SessionClosed {
        /// pgvisor's session id.
        session: u64,
    },
    /// A statement failed with 40P01.
    Deadlock {
        /// The victim's session.
        session: u64,
        /// Its statement.
        statement: String,
        /// The error's DETAIL (names the processes).
        detail: String,
        /// The statements of its aborted transaction.
        transaction: Vec<String>,
    },
    /// The Inspector's answer about a waiting session (`None`: it could not tell).
    Blocking {
        /// The waiting session.
        session: u64,
        /// Identifies the statement asked about.
        statement_started: SystemTime,
        /// What PostgreSQL said.
        report: Option<BlockingReport>,
    },
    /// The Inspector's side connection failed.
    InspectorUnavailable {
        /// Why.
        reason: String,
    },
    /// A slow statement whose plan may be worth an EXPLAIN.
    ExplainCandidate(ExplainSample),
    /// The Inspector's EXPLAIN of a statement: index candidates, or why it could not tell.
    Plan {
        /// The statement's fingerprint.
        fingerprint: Fingerprint,
        /// Its normalised text.
        statement: String,
        /// What the plan showed, or why there is none.
        outcome: PlanOutcome,
    },
}

/// What the Inspector's EXPLAIN of a statement came to.
#[derive(Debug, Clone)]
pub enum PlanOutcome {
    /// The plan was read: the scans in it that may want an index (often none).
    Explained(Vec<IndexCandidate>),
    /// Not explained, and asking again soon would not change that.
    Skipped(SkipReason),
    /// Not explained this time (side connection down, timeout): worth asking again later.
    Failed(String),
}

/// Why the Inspector did not EXPLAIN a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// The Inspector's role cannot act as the session's role (not a member of it, or the role
    /// cannot create the temporary function EXPLAIN runs in).
    RoleNotAssumable,
    /// PostgreSQL would not plan it as one statement under the session's role.
    NotExplainable,
}

/// A statement the Inspector may EXPLAIN: its raw text (kept in memory only; parameters as
/// `$n` are planned generically, never with captured values).
#[derive(Debug, Clone)]
pub struct ExplainSample {
    /// What ran.
    pub statement: Arc<Statement>,
    /// The text as the client sent it.
    pub sql: Arc<str>,
    /// The session's database (EXPLAIN must run there).
    pub database: Arc<str>,
    /// The session's user from its StartupMessage (EXPLAIN runs as this role).
    pub user: Arc<str>,
}

/// The sending side: `try_send` only, counting what it had to drop.
#[derive(Debug, Clone)]
pub struct EventSender {
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
}

impl EventSender {
    /// Sends `event` if there is room, else drops it and counts the drop.
    pub fn send(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped because the channel was full (or closed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The Inspector's answers to the engine (who blocks whom, plans, its own availability): their own
/// channel, where the Inspector waits for room instead of dropping, so an answer is never lost
/// with observer events.
#[derive(Debug, Clone)]
pub struct AnswerSender(pub(crate) mpsc::Sender<Event>);

impl AnswerSender {
    /// Sends `answer`, waiting for room; only a stopped engine loses it.
    pub async fn send(&self, answer: Event) {
        let _ = self.0.send(answer).await;
    }
}

/// A bounded event channel holding up to `capacity` events.
pub fn channel(capacity: usize) -> (EventSender, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel(capacity);
    (EventSender { tx, dropped: Arc::default() }, rx)
}

#[cfg(test)]
impl Statement {
    /// `sql` fingerprinted as the observer would, for unit tests.
    pub(crate) fn from_sql(sql: &str) -> Arc<Self> {
        let n = crate::fingerprint(sql.as_bytes());
        let text: Arc<str> = n.text.into();
        let tags = Some(crate::tags::parse(sql.as_bytes())).filter(|t| !t.is_empty()).map(Arc::new);
        Arc::new(Self {
            fingerprint: n.fingerprint,
            display: text.clone(),
            text,
            style: OrmStyle::detect(sql.as_bytes()),
            tags,
        })
    }
}

#[cfg(test)]
impl StatementEvent {
    /// A statement of session 1 that finished now, for unit tests: 1 ms, no rows, no error.
    pub(crate) fn sample(sql: &str) -> Self {
        Self {
            session: 1,
            statement: Statement::from_sql(sql),
            duration: Duration::from_millis(1),
            rows: 0,
            error: None,
            finished_at: SystemTime::now(),
            literals: None,
            application_name: "app1".into(),
            params: Params::default(),
            result: None,
            origin: Arc::new(SessionOrigin::of(&crate::sessions::SessionIdentity::sample(1), None)),
        }
    }
}
