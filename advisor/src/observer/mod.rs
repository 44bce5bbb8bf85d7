//! Per-session observer: pairs requests with responses and times every statement.
//!
//! Called inline by the proxy for each framed message, in order, per direction; it never
//! blocks: finished statements leave through an [`EventSender`] that drops when full.
//! Responses arrive in request order (protocol document, "Pipelining"), so a FIFO of what each
//! request will be answered with is enough to pair them, for simple, extended and pipelined use.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use protocol::backend::{CommandComplete, ErrorFields, ParameterStatus, ReadyForQuery, TransactionStatus};
use protocol::frontend::{Bind, Execute, Parse, Query, Target};
use protocol::{BackendTag, FrontendTag, ScannedMessage};

use crate::events::{Event, EventSender, SqlState, Statement, StatementEvent};
use crate::fingerprint::Fingerprinter;
use crate::lexer::split_statements;
use crate::sessions::{lock, SessionEntry, SessionState, MAX_TRANSACTION_STATEMENTS};

/// Most requests awaiting a response we track per session; past it the oldest are forgotten.
const MAX_PENDING: usize = 10_000;
/// Most prepared statements and portals tracked per session.
const MAX_NAMED: usize = 10_000;
/// Most raw statement texts whose fingerprint a session remembers.
const MAX_CACHED_TEXTS: usize = 512;

/// What a request will be answered with, in order.
#[derive(Debug)]
enum Pending {
    /// Parse -> ParseComplete.
    Parse(Option<Arc<Statement>>),
    /// Bind -> BindComplete.
    Bind(Option<Arc<Statement>>),
    /// Describe -> [ParameterDescription] RowDescription | NoData.
    Describe,
    /// Close -> CloseComplete.
    Close,
    /// Execute -> rows, then CommandComplete | EmptyQueryResponse | PortalSuspended.
    Execute(Run),
    /// Query -> per statement a completion, then ReadyForQuery.
    Query { runs: VecDeque<Run>, failed: bool },
    /// FunctionCall -> FunctionCallResponse, ReadyForQuery.
    FunctionCall,
    /// Sync -> ReadyForQuery.
    Sync,
}

/// One statement execution in flight.
#[derive(Debug)]
struct Run {
    statement: Option<Arc<Statement>>,
    sent: Instant,
    rows: u64,
}

/// Observes one session's traffic.
pub struct SessionObserver {
    id: u64,
    fingerprinter: Fingerprinter,
    /// Fingerprints by hash of the raw text, so a statement parsed again and again (unnamed
    /// statements, `BEGIN`, health checks) is fingerprinted once.
    by_text: HashMap<u64, Arc<Statement>>,
    statements: HashMap<Vec<u8>, Arc<Statement>>,
    portals: HashMap<Vec<u8>, Arc<Statement>>,
    pending: VecDeque<Pending>,
    /// When the last response completed: a pipelined statement starts no earlier than this.
    last_done: Instant,
    events: EventSender,
    entry: Arc<SessionEntry>,
    status: TransactionStatus,
}

impl SessionObserver {
    /// An observer for session `id`, publishing state to `entry` and statements to `events`.
    pub fn new(id: u64, entry: Arc<SessionEntry>, events: EventSender) -> Self {
        Self {
            id,
            fingerprinter: Fingerprinter::default(),
            by_text: HashMap::new(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            pending: VecDeque::new(),
            last_done: Instant::now(),
            events,
            entry,
            status: TransactionStatus::Idle,
        }
    }

    fn statement(&mut self, sql: &[u8]) -> Arc<Statement> {
        let key = xxhash_rust::xxh3::xxh3_64(sql);
        if let Some(known) = self.by_text.get(&key) {
            return known.clone();
        }
        let fingerprint = self.fingerprinter.fingerprint(sql);
        let statement = Arc::new(Statement { fingerprint, text: self.fingerprinter.text().into() });
        if self.by_text.len() >= MAX_CACHED_TEXTS {
            self.by_text.clear();
        }
        self.by_text.insert(key, statement.clone());
        statement
    }

    fn expect(&mut self, pending: Pending) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(pending);
    }

    /// A message from the client, seen as it is forwarded.
    pub fn frontend(&mut self, m: ScannedMessage<'_>) {
        let now = Instant::now();
        match FrontendTag::from_byte(m.tag) {
            FrontendTag::Query => {
                let Ok(q) = Query::parse(m.body) else { return };
                let runs: VecDeque<Run> = split_statements(q.sql)
                    .into_iter()
                    .map(|sql| Run { statement: Some(self.statement(sql)), sent: now, rows: 0 })
                    .collect();
                self.set_active(runs.front().and_then(|r| r.statement.as_ref()));
                self.expect(Pending::Query { runs, failed: false });
            }
            FrontendTag::Parse => {
                let parsed = Parse::parse(m.body).ok().map(|p| (p.name.to_vec(), self.statement(p.sql)));
                let statement = parsed.map(|(name, statement)| {
                    remember(&mut self.statements, name, statement.clone());
                    statement
                });
                self.expect(Pending::Parse(statement));
            }
            FrontendTag::Bind => {
                let statement = Bind::parse(m.body).ok().and_then(|b| {
                    let statement = self.statements.get(b.statement).cloned()?;
                    remember(&mut self.portals, b.portal.to_vec(), statement.clone());
                    Some(statement)
                });
                self.expect(Pending::Bind(statement));
            }
            FrontendTag::Execute => {
                let statement = Execute::parse(m.body).ok().and_then(|e| self.portals.get(e.portal).cloned());
                self.set_active(statement.as_ref());
                self.expect(Pending::Execute(Run { statement, sent: now, rows: 0 }));
            }
            FrontendTag::Describe => self.expect(Pending::Describe),
            FrontendTag::Close => {
                match Target::parse(m.body, "Close") {
                    Ok(Target::Statement(name)) => self.statements.remove(name),
                    Ok(Target::Portal(name)) => self.portals.remove(name),
                    Err(_) => None,
                };
                self.expect(Pending::Close);
            }
            FrontendTag::Sync => self.expect(Pending::Sync),
            FrontendTag::FunctionCall => self.expect(Pending::FunctionCall),
            _ => {}
        }
    }

    /// A message from the server, seen as it is forwarded.
    pub fn backend(&mut self, m: ScannedMessage<'_>) {
        match BackendTag::from_byte(m.tag) {
            BackendTag::DataRow => {
                if let Some(run) = self.current_run() {
                    run.rows += 1;
                }
            }
            BackendTag::CommandComplete => {
                let rows = CommandComplete::parse(m.body).ok().and_then(|c| c.rows());
                self.finish_run(rows, None);
            }
            BackendTag::EmptyQueryResponse => self.finish_run(Some(0), None),
            BackendTag::PortalSuspended => self.finish_run(None, None),
            BackendTag::ErrorResponse => {
                let state = ErrorFields::parse(m.body).ok().and_then(|e| e.sqlstate()).and_then(SqlState::parse);
                self.fail(state);
            }
            BackendTag::ParseComplete | BackendTag::BindComplete | BackendTag::CloseComplete => {
                if matches!(self.pending.front(), Some(Pending::Parse(_) | Pending::Bind(_) | Pending::Close)) {
                    self.pending.pop_front();
                }
            }
            BackendTag::RowDescription | BackendTag::NoData => {
                if matches!(self.pending.front(), Some(Pending::Describe)) {
                    self.pending.pop_front();
                }
            }
            BackendTag::ReadyForQuery => {
                if let Ok(ready) = ReadyForQuery::parse(m.body) {
                    self.ready(ready.status);
                }
            }
            BackendTag::BackendKeyData => {
                if let Ok(key) = protocol::backend::BackendKeyData::parse(m.body) {
                    lock(&self.entry.activity).backend_pid = Some(key.pid);
                }
            }
            BackendTag::ParameterStatus => {
                if let Ok(p) = ParameterStatus::parse(m.body) {
                    if p.name == b"application_name" {
                        lock(&self.entry.identity).application_name = String::from_utf8_lossy(p.value).into_owned();
                    }
                }
            }
            _ => {}
        }
    }

    fn current_run(&mut self) -> Option<&mut Run> {
        match self.pending.front_mut()? {
            Pending::Execute(run) => Some(run),
            Pending::Query { runs, failed: false } => runs.front_mut(),
            _ => None,
        }
    }

    /// A completion for the statement at the front; `rows` from the command tag when it has one.
    fn finish_run(&mut self, rows: Option<u64>, error: Option<SqlState>) {
        let run = match self.pending.front_mut() {
            Some(Pending::Execute(_)) => match self.pending.pop_front() {
                Some(Pending::Execute(run)) => run,
                _ => unreachable!("front was an Execute"),
            },
            Some(Pending::Query { runs, failed: false }) => match runs.pop_front() {
                Some(run) => run,
                None => return,
            },
            _ => return,
        };
        let next = self.current_run().and_then(|r| r.statement.clone());
        self.set_active(next.as_ref());
        self.emit(run, rows, error);
    }

    fn emit(&mut self, run: Run, rows: Option<u64>, error: Option<SqlState>) {
        let now = Instant::now();
        let started = run.sent.max(self.last_done);
        self.last_done = now;
        let Some(statement) = run.statement else { return };
        if self.status != TransactionStatus::Idle || error.is_none() {
            let mut activity = lock(&self.entry.activity);
            if activity.transaction_statements.len() < MAX_TRANSACTION_STATEMENTS {
                activity.transaction_statements.push(statement.text.clone());
            }
        }
        self.events.send(Event::Statement(StatementEvent {
            session: self.id,
            statement,
            duration: now.saturating_duration_since(started),
            rows: rows.unwrap_or(run.rows),
            error,
            finished_at: SystemTime::now(),
        }));
    }

    /// An ErrorResponse: the request at the front failed; in the extended protocol the server
    /// then skips everything up to the next Sync.
    fn fail(&mut self, error: Option<SqlState>) {
        match self.pending.front_mut() {
            None | Some(Pending::Sync) | Some(Pending::FunctionCall) => {}
            Some(Pending::Query { runs, failed }) => {
                *failed = true;
                if let Some(run) = runs.pop_front() {
                    runs.clear();
                    self.emit(run, Some(0), error);
                }
            }
            Some(_) => {
                let failed = self.pending.pop_front();
                while !matches!(self.pending.front(), None | Some(Pending::Sync)) {
                    self.pending.pop_front();
                }
                let run = match failed {
                    Some(Pending::Execute(run)) => Some(run),
                    Some(Pending::Parse(statement)) | Some(Pending::Bind(statement)) => {
                        Some(Run { statement, sent: self.last_done, rows: 0 })
                    }
                    _ => None,
                };
                if let Some(run) = run {
                    self.emit(run, Some(0), error);
                }
            }
        }
    }

    /// ReadyForQuery ends a Query, a Sync or a FunctionCall cycle.
    fn ready(&mut self, status: TransactionStatus) {
        while let Some(p) = self.pending.pop_front() {
            if matches!(p, Pending::Sync | Pending::Query { .. } | Pending::FunctionCall) {
                break;
            }
        }
        self.last_done = Instant::now();
        let previous = std::mem::replace(&mut self.status, status);
        let mut activity = lock(&self.entry.activity);
        activity.state = match (status, self.pending.is_empty()) {
            (_, false) => SessionState::Active,
            (TransactionStatus::Idle, true) => SessionState::Idle,
            (TransactionStatus::InTransaction, true) => SessionState::IdleInTransaction,
            (TransactionStatus::Failed, true) => SessionState::IdleInTransactionFailed,
        };
        match status {
            TransactionStatus::Idle => {
                activity.transaction_started = None;
                activity.transaction_statements.clear();
            }
            _ if previous == TransactionStatus::Idle && activity.transaction_started.is_none() => {
                activity.transaction_started = Some(SystemTime::now());
            }
            _ => {}
        }
    }

    fn set_active(&mut self, statement: Option<&Arc<Statement>>) {
        let mut activity = lock(&self.entry.activity);
        activity.state = SessionState::Active;
        if let Some(s) = statement {
            activity.current_statement = Some(s.text.clone());
        }
        if self.status == TransactionStatus::Idle && activity.transaction_started.is_none() {
            // A transaction may be starting; ReadyForQuery confirms or clears it.
            activity.transaction_started = Some(SystemTime::now());
        }
    }

    /// Time since the last response completed (used to report idle time).
    pub fn idle_for(&self) -> Duration {
        self.last_done.elapsed()
    }
}

fn remember(map: &mut HashMap<Vec<u8>, Arc<Statement>>, name: Vec<u8>, statement: Arc<Statement>) {
    if map.len() >= MAX_NAMED && !map.contains_key(&name) {
        // Unbounded prepared-statement churn: forget them all rather than grow without end.
        map.clear();
    }
    map.insert(name, statement);
}
