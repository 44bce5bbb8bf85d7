//! The shared vocabulary of the advisor: what ran (a [`Statement`] and each [`StatementEvent`]),
//! who ran it, and what the Inspector reports back. Observers, the engine and the detectors all
//! speak it, so it lives here rather than in any of them, and imports none of them.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::capture::{Params, ResultDigest};
use crate::fingerprint::Fingerprint;
use crate::orm::OrmStyle;
use crate::sessions::SessionIdentity;
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
    /// What the detectors ask of its text on every execution, read once.
    pub shape: Shape,
    /// A hash of its normalised text ([`text_key`]): statements that share a fingerprint but not
    /// a text (another schema, `LIMIT ALL` against `LIMIT 5`) are apart where that matters, in
    /// what is EXPLAINed and in what counts as the same query repeated.
    pub text_key: u64,
}

/// The key of a normalised text (see [`Statement::text_key`]).
pub fn text_key(text: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

/// What the detectors ask of a statement's normalised text on every execution, read once when
/// the statement is first seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// It only reads ([`crate::sql_shape::is_read`]): it may be an N+1 child or parent.
    pub read: bool,
    /// It names a table ([`crate::sql_shape::has_table`]).
    pub has_table: bool,
    /// Its first word ([`crate::sql_shape::verb`]) in upper case when it is one of [`VERBS`],
    /// otherwise empty: the DDL detector asks on every execution.
    pub verb: &'static str,
}

/// The first words [`Shape::verb`] names.
pub const VERBS: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "WITH", "VALUES", "TABLE", "CREATE", "ALTER", "DROP", "SET",
    "RESET", "DISCARD", "BEGIN", "START", "COMMIT", "END", "ABORT", "PREPARE", "ROLLBACK",
];

impl Shape {
    /// The shape of a normalised text.
    pub fn of(text: &str) -> Self {
        let verb = crate::sql_shape::verb(text);
        Self {
            read: crate::sql_shape::is_read(text),
            has_table: crate::sql_shape::has_table(text),
            verb: VERBS.iter().find(|v| v.eq_ignore_ascii_case(verb)).copied().unwrap_or_default(),
        }
    }
}

impl Statement {
    /// A statement from its fingerprint, texts, style and tags; its shape is read from `text`.
    pub fn new(
        fingerprint: Fingerprint,
        text: Arc<str>,
        display: Arc<str>,
        style: OrmStyle,
        tags: Option<Arc<Tags>>,
    ) -> Self {
        let (shape, text_key) = (Shape::of(&text), text_key(&text));
        Self { fingerprint, text, display, style, tags, shape, text_key }
    }
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
    /// A hash of user, database, application_name and client host: the connections of one
    /// client application's pool share it (a number, so the engine does not hash the names
    /// again for every statement).
    pub pool: u64,
}

impl SessionOrigin {
    /// The origin of a session with this identity (and backend pid, once known).
    pub fn of(identity: &SessionIdentity, pid: Option<u32>) -> Self {
        let label = session_label(identity, pid);
        let pool = format!(
            "{}\0{}\0{}\0{}",
            identity.user,
            identity.database,
            identity.application_name,
            identity.client_addr.ip()
        );
        Self { label: label.into(), pool: xxhash_rust::xxh3::xxh3_64(pool.as_bytes()) }
    }
}

/// How a session is named in messages: `session 12 (app "x", 127.0.0.1:5000, pid 4242)`.
pub fn session_label(identity: &SessionIdentity, pid: Option<u32>) -> String {
    let app = if identity.application_name.is_empty() {
        String::new()
    } else {
        format!("app \"{}\", ", identity.application_name)
    };
    let pid = pid.map(|p| format!(", backend pid {p}")).unwrap_or_default();
    format!("Session {} ({app}{}{pid})", identity.id, identity.client_addr)
}

#[cfg(test)]
impl Statement {
    /// `sql` fingerprinted as the observer would, for unit tests.
    pub(crate) fn from_sql(sql: &str) -> Arc<Self> {
        let n = crate::fingerprint(sql.as_bytes());
        let text: Arc<str> = n.text.into();
        let tags = Some(crate::tags::parse(sql.as_bytes())).filter(|t| !t.is_empty()).map(Arc::new);
        Arc::new(Self::new(n.fingerprint, text.clone(), text, OrmStyle::detect(sql.as_bytes()), tags))
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

/// What the Inspector learnt about one waiting backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingReport {
    /// The waiting backend.
    pub waiter_pid: u32,
    /// Its direct blockers (`pg_blocking_pids`).
    pub blockers: Vec<u32>,
    /// The roots of the blocking chains: blockers nobody blocks.
    pub roots: Vec<u32>,
    /// The lock it waits for (`wait_event_type`/`wait_event`), if known.
    pub wait_event: Option<String>,
}

/// A sequential scan with a filter, found in a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeqScan {
    /// Schema of the table (from EXPLAIN VERBOSE).
    pub schema: Option<String>,
    /// Table.
    pub table: String,
    /// The filter expression as EXPLAIN prints it.
    pub filter: String,
    /// Rows the planner expects the scan to return.
    pub plan_rows: f64,
}

/// What the Inspector found for one statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexCandidate {
    /// The scan.
    pub scan: SeqScan,
    /// Rows in the table (`pg_class.reltuples`).
    pub table_rows: f64,
    /// Columns for the index, equality columns first, at most 3.
    pub columns: Vec<String>,
    /// Estimated total cost of the statement's plan.
    pub cost_before: f64,
    /// Estimated total cost with a hypothetical index (HypoPG), when it could be tried.
    pub cost_with_index: Option<f64>,
}

/// A statement that finished without error, with the size and shape of its result.
#[derive(Debug, Clone)]
pub struct FinishedStatement {
    /// What ran.
    pub statement: Arc<Statement>,
    /// Hash of all its parameter values (Bind values, or the literals of a simple query); `None`
    /// when it had none.
    pub params: Option<u64>,
    /// Rows returned or affected.
    pub rows: u64,
    /// Bytes of the DataRow messages it returned (as sent, including each row's framing).
    pub bytes: u64,
    /// Columns per returned row (0 when no row came back).
    pub columns: usize,
    /// Duration.
    pub duration: Duration,
    /// When it finished.
    pub at: Instant,
}
