//! Per-session observer: pairs requests with responses and times every statement.
//!
//! Called by the proxy for each framed message, in the order forwarded (on its observation
//! thread, or on the relay when a session's backlog is full); it never
//! blocks: finished statements and findings leave through an [`EventSender`] that drops when
//! full. Responses arrive in request order (protocol document, "Pipelining"), so a FIFO of what
//! each request will be answered with is enough to pair them, for simple, extended and
//! pipelined use.

mod clock;
mod extended;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt};

use protocol::backend::{
    BackendKeyData, CommandComplete, DataRow, ErrorFields, ParameterStatus, ReadyForQuery, RowDescription,
    TransactionStatus,
};
use protocol::frontend::{Query, Target};
use protocol::{BackendTag, FrontendTag, ScannedMessage};

use crate::capture::{self, literal_value, text_key, Params, ResultFormats, ResultSample, MAX_PARAMS};
use crate::detect::n_plus_one::{Execution, NPlusOneConfig, NPlusOneDetector};
use crate::detect::session_checks::{FinishedStatement, SessionChecks, SessionChecksConfig};
use crate::detect::transactions::session_label;
use crate::events::{Caller, Event, EventSender, ExplainSample, SessionOrigin, SqlState, Statement, StatementEvent};
use crate::fingerprint::{Fingerprint, Fingerprinter, LiteralMask};
use crate::lexer::split_statements;
use crate::orm::OrmStyle;
use crate::sessions::{SessionEntry, SessionRecord, SessionState};
use crate::tags::Tags;

/// Most requests awaiting a response we track per session; past it the oldest are forgotten.
pub const MAX_PENDING: usize = 10_000;
/// Most prepared statements and portals tracked per session.
const MAX_NAMED: usize = 10_000;
/// Most raw statement texts whose fingerprint a session remembers.
const MAX_CACHED_TEXTS: usize = 512;
/// Longest normalised text whose statement is shared among texts differing only in literals.
const MAX_SHARED_TEXT: usize = 4096;
/// Most statement descriptions (result column names) remembered per session.
const MAX_DESCRIPTIONS: usize = 1_000;
/// How long a session waits before offering the same fingerprint for an EXPLAIN again: the
/// engine explains each at most once every ten minutes, so offering it on every slow run would
/// only cost events.
const EXPLAIN_OFFER_EVERY: Duration = Duration::from_secs(60);
/// Most fingerprints a session remembers having offered.
const MAX_EXPLAIN_OFFERS: usize = 256;
/// Most bytes of raw texts kept for EXPLAIN per session (an idle session must stay small).
const MAX_RAW_TEXT_BYTES: usize = 64 * 1024;
/// Longest raw text kept for EXPLAIN.
const MAX_RAW_TEXT: usize = 16 * 1024;
/// SQLSTATE of a deadlock.
const DEADLOCK: SqlState = SqlState(*b"40P01");

/// A statement text, fingerprinted, with the literal values it carried.
#[derive(Debug, Clone)]
struct Parsed {
    statement: Arc<Statement>,
    /// The literal constants as keys, in order.
    constants: Params,
    /// The same as text, only with `--log-params`.
    constant_texts: Option<Arc<[String]>>,
    /// Hash of all the literal constants in the text, if it has any.
    literals: Option<u64>,
}

impl Parsed {
    /// `statement` as `sql` runs it, its literals at `ranges` of `sql`.
    fn new(statement: Arc<Statement>, sql: &[u8], ranges: &[(usize, usize)], log_params: bool) -> Self {
        let literal = |&(s, e): &(usize, usize)| sql.get(s..e).and_then(literal_value);
        let constants =
            Params::from_keys(ranges.iter().take(MAX_PARAMS).map(|r| literal(r).map(|v| text_key(v.as_bytes()))));
        let constant_texts = log_params
            .then(|| ranges.iter().take(MAX_PARAMS).filter_map(|r| literal(r).map(Cow::into_owned)).collect());
        let literals = (!ranges.is_empty())
            .then(|| capture::chain_hash(ranges.iter().map(|&(s, e)| Some(sql.get(s..e).unwrap_or_default()))));
        Self { statement, constants, constant_texts, literals }
    }
}

/// A portal: the statement it runs, its parameters and requested result formats.
#[derive(Debug, Clone)]
struct Portal {
    statement: Arc<Statement>,
    params: Params,
    param_texts: Option<Arc<[String]>>,
    result_formats: ResultFormats,
    /// Hash of all parameter values (reads only).
    params_hash: Option<u64>,
}

/// What a request will be answered with, in order.
// Most entries are Execute or Query: boxing the large variant would cost an allocation for
// nearly every statement to save queue space only for the small ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Pending {
    /// Parse -> ParseComplete.
    Parse(Option<Arc<Statement>>),
    /// Bind -> BindComplete.
    Bind(Option<Arc<Statement>>),
    /// Describe -> [ParameterDescription] RowDescription | NoData.
    Describe(Option<Arc<Statement>>),
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
    params: Params,
    param_texts: Option<Arc<[String]>>,
    result_formats: ResultFormats,
    sample: Option<ResultSample>,
    /// Hash of all parameter values or literals (see [`FinishedStatement::params`]).
    params_hash: Option<u64>,
    /// It came in a simple Query message.
    simple: bool,
    /// DataRow bytes returned.
    bytes: u64,
    /// Columns of the first DataRow.
    columns: usize,
    /// Its rows are not sampled (not a read).
    unsampled: bool,
}

impl Run {
    fn new(statement: Option<Arc<Statement>>, sent: Instant) -> Self {
        Self {
            statement,
            sent,
            rows: 0,
            params: Params::default(),
            param_texts: None,
            result_formats: ResultFormats::TEXT,
            sample: None,
            params_hash: None,
            simple: false,
            bytes: 0,
            columns: 0,
            unsampled: false,
        }
    }
}

/// Observes one session's traffic.
pub struct SessionObserver {
    id: u64,
    fingerprinter: Fingerprinter,
    /// Fingerprints by hash of the raw text, so a statement parsed again and again (unnamed
    /// statements, `BEGIN`, health checks) is fingerprinted once.
    by_text: HashMap<u64, Parsed>,
    /// Statements by normalised and display text, untagged and at most [`MAX_SHARED_TEXT`]
    /// bytes only: texts that differ only in their literals (a load test in simple mode) share
    /// one statement.
    by_normalized: HashMap<u64, Arc<Statement>>,
    /// Statements by the hash of their text with its literals masked, for texts whose literals
    /// are exactly the fingerprint's constants: later texts of that shape are not fingerprinted.
    by_shape: HashMap<u64, Arc<Statement>>,
    /// Scans texts for [`Self::by_shape`].
    literals: LiteralMask,
    unnamed_statement: Option<Arc<Statement>>,
    statements: HashMap<Vec<u8>, Arc<Statement>>,
    unnamed_portal: Option<Portal>,
    portals: HashMap<Vec<u8>, Portal>,
    descriptions: HashMap<Fingerprint, ColumnNames>,
    /// Bytes of rows the last result of a statement kept, when it had more than one row: the
    /// next result makes room for as many at its second row (one allocation, not a growth
    /// and a shrink per result).
    kept_bytes: HashMap<Fingerprint, u32>,
    pending: VecDeque<Pending>,
    /// When the last response completed: a pipelined statement starts no earlier than this.
    last_done: Instant,
    /// Read once per chunk of bytes.
    clock: clock::ChunkClock,
    events: EventSender,
    entry: Arc<SessionEntry>,
    /// The session's record: the observer's own, published through `entry` on every change.
    record: SessionRecord,
    status: TransactionStatus,
    n_plus_one: NPlusOneDetector,
    checks: SessionChecks,
    /// The raw text of each recent fingerprint, for EXPLAIN.
    raw_texts: HashMap<u64, Arc<str>>,
    /// Bytes held by `raw_texts`.
    raw_text_bytes: usize,
    /// Test hook: see [`Self::with_injected_panic`].
    injected_panic: Option<Arc<str>>,
    /// The session's application_name, as its statements report it.
    application_name: Arc<str>,
    /// The session as messages name it and as pools group it.
    origin: Arc<SessionOrigin>,
    /// Keep parameter values as text for evidence (`--log-params`).
    log_params: bool,
    /// A statement at least this slow is offered for an EXPLAIN (`--explain-min`, missing_index).
    explain_min: Duration,
    /// When each fingerprint was last offered for an EXPLAIN.
    explain_offered: HashMap<u64, Instant>,
    /// The server is in copy-in mode (CopyInResponse seen, CopyDone/CopyFail not yet sent).
    copy_in: bool,
    /// An extended-protocol request failed before the client sent its Sync: the server discards
    /// every message until that Sync.
    skipping_to_sync: bool,
}

impl SessionObserver {
    /// An observer for session `id`, publishing state to `entry` and events to `events`.
    pub fn new(id: u64, entry: Arc<SessionEntry>, events: EventSender, n_plus_one: NPlusOneConfig) -> Self {
        let record = entry.record();
        let label = session_label(&record.identity, None);
        let application_name = record.identity.application_name.as_str().into();
        let origin = Arc::new(SessionOrigin::of(&record.identity, None));
        let log_params = n_plus_one.log_params;
        Self {
            id,
            fingerprinter: Fingerprinter::default(),
            by_text: HashMap::new(),
            by_normalized: HashMap::new(),
            by_shape: HashMap::new(),
            literals: LiteralMask::default(),
            unnamed_statement: None,
            statements: HashMap::new(),
            unnamed_portal: None,
            portals: HashMap::new(),
            descriptions: HashMap::new(),
            kept_bytes: HashMap::new(),
            pending: VecDeque::new(),
            last_done: Instant::now(),
            clock: clock::ChunkClock::default(),
            events,
            entry,
            record,
            status: TransactionStatus::Idle,
            n_plus_one: NPlusOneDetector::new(n_plus_one, label.clone()),
            checks: SessionChecks::new(SessionChecksConfig::default(), label),
            raw_texts: HashMap::new(),
            raw_text_bytes: 0,
            injected_panic: None,
            application_name,
            origin,
            log_params,
            explain_min: crate::detect::missing_index::DEFAULT_EXPLAIN_MIN,
            explain_offered: HashMap::new(),
            copy_in: false,
            skipping_to_sync: false,
        }
    }

    /// The same observer offering statements of at least `explain_min` for an EXPLAIN
    /// (`--explain-min`).
    pub fn with_explain_min(mut self, explain_min: Duration) -> Self {
        self.explain_min = explain_min;
        self
    }

    /// The same observer with these thresholds for `repeated_query`, `unbounded_result` and
    /// `select_star`.
    pub fn with_checks(mut self, config: SessionChecksConfig) -> Self {
        let pid = self.record.activity.backend_pid;
        self.checks = SessionChecks::new(config, session_label(&self.record.identity, pid));
        self
    }

    /// Makes this observer panic on statements containing `marker` (tests of containment).
    #[doc(hidden)]
    pub fn with_injected_panic(mut self, marker: Option<Arc<str>>) -> Self {
        self.injected_panic = marker;
        self
    }

    fn parse(&mut self, sql: &[u8]) -> Parsed {
        let shape = self.literals.scan(sql);
        self.parse_scanned(sql, shape)
    }

    /// [`Self::parse`] with `sql` already scanned by `self.literals` (`shape` its result): the
    /// same text, or one with only whitespace and a `;` after it.
    fn parse_scanned(&mut self, sql: &[u8], shape: Option<u64>) -> Parsed {
        crate::engine::InjectedPanics::check(&self.injected_panic, sql);
        // Texts that differ only in their literals: the statement the first was made into.
        if let Some(statement) = shape.and_then(|key| self.by_shape.get(&key)) {
            let statement = statement.clone();
            self.keep_raw_text(&statement, sql);
            return Parsed::new(statement, sql, self.literals.ranges(), self.log_params);
        }
        let key = xxhash_rust::xxh3::xxh3_64(sql);
        if let Some(known) = self.by_text.get(&key) {
            return known.clone();
        }
        let fingerprint = self.fingerprinter.fingerprint(sql);
        let tags = Some(crate::tags::parse(sql)).filter(|t| !t.is_empty()).map(Arc::new);
        let (text, display) = (self.fingerprinter.text(), self.fingerprinter.display());
        // The display text too: texts that normalise alike but are written differently (quoted
        // by an ORM, by hand) keep their own display and ORM style.
        let shared = tags.is_none() && text.len() <= MAX_SHARED_TEXT;
        let normalized = xxhash_rust::xxh3::xxh3_64_with_seed(display.as_bytes(), crate::model::text_key(text));
        let statement = match self.by_normalized.get(&normalized) {
            Some(known) if shared && known.fingerprint == fingerprint => known.clone(),
            _ => {
                let (text, display) = (text.into(), display.into());
                let statement = Arc::new(Statement::new(fingerprint, text, display, OrmStyle::detect(sql), tags));
                if shared {
                    cache(&mut self.by_normalized, normalized, statement.clone(), MAX_CACHED_TEXTS);
                }
                statement
            }
        };
        self.keep_raw_text(&statement, sql);
        let constants = self.fingerprinter.constants();
        let parsed = Parsed::new(statement, sql, constants, self.log_params);
        match shape.filter(|_| shared && self.literals.matches(constants)) {
            // Its literals are exactly what the fingerprint made constants of: every text with
            // this shape is this statement (fingerprint::literals).
            Some(shape) => cache(&mut self.by_shape, shape, parsed.statement.clone(), MAX_CACHED_TEXTS),
            None => cache(&mut self.by_text, key, parsed.clone(), MAX_CACHED_TEXTS),
        }
        parsed
    }

    /// Keeps one raw text per normalised text, enough to EXPLAIN it: texts that differ only in
    /// their literals (a load test in simple mode) are not copied again and again. Not one per
    /// fingerprint: a fingerprint may stand for texts on other schemas.
    fn keep_raw_text(&mut self, statement: &Statement, sql: &[u8]) {
        if sql.len() > MAX_RAW_TEXT || self.raw_texts.contains_key(&statement.text_key) {
            return;
        }
        if self.raw_text_bytes + sql.len() > MAX_RAW_TEXT_BYTES {
            self.raw_texts.clear();
            self.raw_text_bytes = 0;
        }
        let raw: Arc<str> = String::from_utf8_lossy(sql).into();
        self.raw_text_bytes += raw.len();
        self.raw_texts.insert(statement.text_key, raw);
    }

    /// Queues a request whose response is still to come (the oldest goes when the queue is full).
    fn await_response(&mut self, pending: Pending) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(pending);
    }

    /// A message from the client, seen as it is forwarded.
    pub fn frontend(&mut self, m: ScannedMessage<'_>) {
        let now = self.clock.now();
        let tag = FrontendTag::from_byte(m.tag);
        if self.skipping_to_sync && tag != FrontendTag::Sync {
            // After an error in the extended protocol the server discards everything up to the
            // next Sync, a Query included: nothing will answer these.
            return;
        }
        match tag {
            FrontendTag::Query => {
                // A Query longer than the observed prefix (a bulk INSERT) is still counted and
                // timed: from the text it starts with (its terminator is beyond the prefix).
                let sql = match Query::parse(m.body) {
                    Ok(q) => q.sql,
                    Err(_) if !m.is_whole() => m.body,
                    Err(_) => return,
                };
                let to_run = |parsed: Parsed| {
                    let mut run = Run::new(Some(parsed.statement), now);
                    run.params = parsed.constants;
                    run.param_texts = parsed.constant_texts;
                    run.params_hash = parsed.literals;
                    run.simple = true;
                    run
                };
                // Most Queries hold one statement: the scan for its shape shows it, and the text
                // is not split (nor scanned) again.
                let shape = self.literals.scan(sql);
                let runs: VecDeque<Run> = match shape.and_then(|_| self.literals.one_statement(sql)) {
                    Some(end) => VecDeque::from([to_run(self.parse_scanned(&sql[..end], shape))]),
                    None => split_statements(sql).into_iter().map(|sql| to_run(self.parse(sql))).collect(),
                };
                if runs.len() > 1 {
                    // The server sends a multi-statement query's results only when all of it has run,
                    // so show the whole query as the current statement.
                    let all: Vec<&str> = runs.iter().filter_map(|r| r.statement.as_deref()).map(|s| &*s.text).collect();
                    let text: Arc<str> = all.join("; ").into();
                    let combined = Statement::new(Fingerprint(0), text.clone(), text, OrmStyle::Unknown, None);
                    self.set_active(Some(&Arc::new(combined)));
                } else {
                    self.set_active(runs.front().and_then(|r| r.statement.as_ref()));
                }
                self.await_response(Pending::Query { runs, failed: false });
            }
            FrontendTag::Parse => self.on_parse(m.body),
            FrontendTag::Bind => self.on_bind(m.body),
            FrontendTag::Execute => self.on_execute(m.body, now),
            FrontendTag::Describe => self.on_describe(m.body),
            FrontendTag::Close => {
                match Target::parse(m.body, "Close") {
                    Ok(Target::Statement(name)) => {
                        self.statements.remove(name);
                    }
                    Ok(Target::Portal(name)) => {
                        self.portals.remove(name);
                    }
                    Err(_) => {}
                }
                self.await_response(Pending::Close);
            }
            // PostgreSQL ignores Sync during copy-in mode (protocol document, "COPY Operations"):
            // a Sync a client pipelined behind its COPY's Execute is never answered.
            FrontendTag::Sync if self.copy_in => {}
            FrontendTag::Sync => {
                self.skipping_to_sync = false;
                self.await_response(Pending::Sync);
            }
            FrontendTag::CopyDone | FrontendTag::CopyFail => self.copy_in = false,
            FrontendTag::FunctionCall => self.await_response(Pending::FunctionCall),
            _ => {}
        }
    }

    /// A message from the server, seen as it is forwarded.
    pub fn backend(&mut self, m: ScannedMessage<'_>) {
        match BackendTag::from_byte(m.tag) {
            BackendTag::DataRow => self.data_row(m.body, m.body_len),
            BackendTag::CommandComplete => {
                // The server left copy-in mode (it may end it itself, on an error too).
                self.copy_in = false;
                let rows = CommandComplete::parse(m.body).ok().and_then(|c| c.rows());
                self.finish_run(rows, None);
            }
            BackendTag::EmptyQueryResponse => self.finish_run(Some(0), None),
            BackendTag::PortalSuspended => self.finish_run(None, None),
            BackendTag::ErrorResponse => {
                self.copy_in = false;
                let fields = ErrorFields::parse(m.body).ok();
                let state = fields.and_then(|e| e.sqlstate()).and_then(SqlState::parse);
                if state == Some(DEADLOCK) {
                    let detail = fields.and_then(|f| f.detail()).map(|d| d.into_owned()).unwrap_or_default();
                    self.deadlock(detail);
                }
                self.fail(state);
            }
            BackendTag::ParseComplete | BackendTag::BindComplete | BackendTag::CloseComplete => {
                if matches!(self.pending.front(), Some(Pending::Parse(_) | Pending::Bind(_) | Pending::Close)) {
                    self.pending.pop_front();
                }
            }
            BackendTag::RowDescription => self.row_description(m.body),
            BackendTag::CopyInResponse => self.copy_in_started(),
            BackendTag::NoData => {
                if matches!(self.pending.front(), Some(Pending::Describe(_))) {
                    self.pending.pop_front();
                }
            }
            BackendTag::ReadyForQuery => {
                self.copy_in = false;
                self.skipping_to_sync = false;
                if let Ok(ready) = ReadyForQuery::parse(m.body) {
                    self.ready(ready.status);
                }
            }
            BackendTag::BackendKeyData => {
                if let Ok(key) = BackendKeyData::parse(m.body) {
                    self.entry.update(&mut self.record, |a| a.backend_pid = Some(key.pid));
                    let label = session_label(&self.record.identity, Some(key.pid));
                    self.origin = Arc::new(SessionOrigin::of(&self.record.identity, Some(key.pid)));
                    self.n_plus_one.set_label(label.clone());
                    self.checks.set_label(label);
                }
            }
            BackendTag::ParameterStatus => {
                if let Ok(p) = ParameterStatus::parse(m.body) {
                    if p.name == b"application_name" {
                        let name = String::from_utf8_lossy(p.value);
                        self.application_name = name.as_ref().into();
                        let pid = self.record.activity.backend_pid;
                        self.entry.update_identity(&mut self.record, |i| i.application_name.replace_range(.., &name));
                        self.origin = Arc::new(SessionOrigin::of(&self.record.identity, pid));
                    }
                }
            }
            _ => {}
        }
    }

    /// The session ended: report what the detectors still hold.
    pub fn finish(&mut self) {
        for finding in self.n_plus_one.finish() {
            self.events.send(Event::Finding(finding, self.caller(None)));
        }
        self.events.send(Event::SessionClosed { session: self.id });
    }

    fn row_description(&mut self, body: &[u8]) {
        let Ok(fields) = RowDescription::field_count(body) else { return };
        // Drivers describe the portal on every execution, and a simple query repeats: column
        // names already known for the statement are neither decoded nor built again.
        let known = |descriptions: &HashMap<Fingerprint, ColumnNames>, fp: &Fingerprint| {
            descriptions.get(fp).filter(|names| names.len() == fields.min(capture::MAX_SAMPLED_COLUMNS)).cloned()
        };
        match self.pending.front_mut() {
            Some(Pending::Describe(statement)) => {
                if let Some(s) = statement.take() {
                    if known(&self.descriptions, &s.fingerprint).is_none() {
                        remember_description(&mut self.descriptions, s.fingerprint, body);
                    }
                }
                self.pending.pop_front();
            }
            Some(Pending::Query { runs, failed: false }) => {
                let Some(run) = runs.front_mut() else { return };
                let Some(statement) = &run.statement else { return };
                let names = match known(&self.descriptions, &statement.fingerprint) {
                    Some(names) => names,
                    None => remember_description(&mut self.descriptions, statement.fingerprint, body),
                };
                run.sample = Some(ResultSample::with_names(&names, ResultFormats::TEXT));
            }
            _ => {}
        }
    }

    fn data_row(&mut self, body: &[u8], body_len: usize) {
        let (descriptions, kept_bytes) = (&self.descriptions, &self.kept_bytes);
        let run = match self.pending.front_mut() {
            Some(Pending::Execute(run)) => run,
            Some(Pending::Query { runs, failed: false }) => match runs.front_mut() {
                Some(run) => run,
                None => return,
            },
            _ => return,
        };
        run.rows += 1;
        run.bytes += body_len as u64;
        if run.columns == 0 {
            // The field count leads every DataRow (Int16).
            run.columns = body.get(..2).map_or(0, |n| usize::from(u16::from_be_bytes([n[0], n[1]])));
        }
        let Some(statement) = &run.statement else { return };
        if run.rows > capture::MAX_SAMPLED_ROWS || run.unsampled {
            return;
        }
        if run.sample.is_none() && !statement.shape.read {
            // Asked once per execution, not per row: only reads can be N+1 parents.
            run.unsampled = true;
            return;
        }
        let Ok(row) = DataRow::parse(body) else { return };
        let sample = run.sample.get_or_insert_with(|| match descriptions.get(&statement.fingerprint) {
            Some(names) => ResultSample::with_names(names, run.result_formats),
            None => ResultSample::with_names(&Arc::from([]), run.result_formats),
        });
        if run.rows == 2 {
            if let Some(&bytes) = kept_bytes.get(&statement.fingerprint) {
                sample.expect(bytes as usize);
            }
        }
        sample.add(&row);
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
        let next = match self.pending.front() {
            Some(Pending::Execute(run)) => run.statement.clone(),
            Some(Pending::Query { runs, failed: false }) => runs.front().and_then(|r| r.statement.clone()),
            _ => None,
        };
        if next.is_some() {
            self.set_active(next.as_ref());
        }
        self.emit(run, rows, error);
    }

    fn emit(&mut self, run: Run, rows: Option<u64>, error: Option<SqlState>) {
        let now = self.clock.now();
        let started = run.sent.max(self.last_done);
        self.last_done = now;
        let Some(statement) = run.statement else { return };
        self.entry.update(&mut self.record, |a| a.statement_finished(&statement.text));
        let duration = now.saturating_duration_since(started);
        // A portal suspended at its row limit (a driver fetching in chunks) is one statement still
        // running, not a finished one: only a completion with a row count is checked.
        let completed = rows.is_some();
        let rows = rows.unwrap_or(run.rows);
        let literals = run.params_hash.filter(|_| run.simple);
        if error.is_none() && completed {
            let finished = FinishedStatement {
                statement: statement.clone(),
                params: run.params_hash,
                rows,
                bytes: run.bytes,
                columns: run.columns,
                duration,
                at: now,
            };
            for finding in self.checks.observe(&finished) {
                self.events.send(Event::Finding(finding, self.caller(statement.tags.as_ref())));
            }
        }
        if let Some(sample) = run.sample.as_ref().filter(|_| run.rows > 1) {
            let bytes = u32::try_from(sample.kept_bytes()).unwrap_or(u32::MAX);
            cache(&mut self.kept_bytes, statement.fingerprint, bytes, MAX_DESCRIPTIONS);
        }
        let digest = run.sample.map(|s| Arc::new(s.finish()));
        if error.is_none() && (!run.params.is_empty() || digest.is_some()) {
            let execution = Execution {
                statement: statement.clone(),
                style: statement.style,
                params: run.params,
                param_texts: run.param_texts,
                result: digest.clone().unwrap_or_default(),
                rows,
                duration,
                at: now,
            };
            for finding in self.n_plus_one.observe(execution) {
                self.events.send(Event::Finding(finding, self.caller(statement.tags.as_ref())));
            }
        }
        if error.is_none() && duration >= self.explain_min && self.explain_due(statement.text_key, now) {
            if let Some(sql) = self.raw_texts.get(&statement.text_key) {
                let identity = &self.record.identity;
                let (database, user) = (identity.database.as_str().into(), identity.user.as_str().into());
                let sample = ExplainSample { statement: statement.clone(), sql: sql.clone(), database, user };
                self.events.send(Event::ExplainCandidate(sample));
            }
        }
        self.events.send(Event::Statement(StatementEvent {
            session: self.id,
            statement,
            duration,
            rows,
            error,
            finished_at: self.clock.wall(),
            literals,
            application_name: self.application_name.clone(),
            params: run.params,
            result: digest.filter(|d| !d.is_empty() && rows > 0 && self.events.admit_result()),
            origin: self.origin.clone(),
        }));
    }

    /// True (and noted) when `fp` was not offered for an EXPLAIN in the last minute.
    fn explain_due(&mut self, text_key: u64, now: Instant) -> bool {
        if self.explain_offered.get(&text_key).is_some_and(|t| now.saturating_duration_since(*t) < EXPLAIN_OFFER_EVERY)
        {
            return false;
        }
        if self.explain_offered.len() >= MAX_EXPLAIN_OFFERS {
            self.explain_offered.clear();
        }
        self.explain_offered.insert(text_key, now);
        true
    }

    /// The server entered copy-in mode: Syncs the client already sent behind the COPY's Execute
    /// are ignored by the server, so no ReadyForQuery answers them.
    fn copy_in_started(&mut self) {
        self.copy_in = true;
        if matches!(self.pending.front(), Some(Pending::Execute(_))) {
            let mut index = 0;
            self.pending.retain(|p| {
                index += 1;
                index == 1 || !matches!(p, Pending::Sync)
            });
        }
    }

    fn caller(&self, tags: Option<&Arc<Tags>>) -> Caller {
        Caller { tags: tags.cloned(), application_name: self.application_name.clone() }
    }

    fn deadlock(&mut self, detail: String) {
        let statement = match self.pending.front() {
            Some(Pending::Execute(run)) => run.statement.clone(),
            Some(Pending::Query { runs, .. }) => runs.front().and_then(|r| r.statement.clone()),
            _ => None,
        };
        let transaction = self.record.activity.transaction_statements.iter().map(|s| s.to_string()).collect();
        self.events.send(Event::Deadlock {
            session: self.id,
            statement: statement.map(|s| s.text.to_string()).unwrap_or_default(),
            detail,
            transaction,
        });
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
                // No Sync sent yet: what the client sends until it is, the server discards.
                self.skipping_to_sync = self.pending.is_empty();
                let run = match failed {
                    Some(Pending::Execute(run)) => Some(run),
                    Some(Pending::Parse(statement)) | Some(Pending::Bind(statement)) => {
                        Some(Run::new(statement, self.last_done))
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
        self.last_done = self.clock.now();
        let previous = std::mem::replace(&mut self.status, status);
        let state = match (status, self.pending.is_empty()) {
            (_, false) => SessionState::Active,
            (TransactionStatus::Idle, true) => SessionState::Idle,
            (TransactionStatus::InTransaction, true) => SessionState::IdleInTransaction,
            (TransactionStatus::Failed, true) => SessionState::IdleInTransactionFailed,
        };
        let (done, now) = (self.pending.is_empty(), self.clock.wall());
        self.entry.update(&mut self.record, |a| a.ready(state, status, previous, done, now));
    }

    fn set_active(&mut self, statement: Option<&Arc<Statement>>) {
        let (text, status, now) = (statement.map(|s| &s.text), self.status, self.clock.wall());
        self.entry.update(&mut self.record, |a| a.statement_started(text, status, now));
    }

    /// A chunk of bytes arrived: its messages, about to be shown, share one reading of the clock.
    pub fn chunk_arrived(&mut self) {
        self.clock.tick();
    }

    /// A chunk of bytes arrived at `at`: its messages follow, timed as of then.
    pub fn chunk_arrived_at(&mut self, at: Instant) {
        self.clock.tick_at(at);
    }

    /// The session's record as this observer keeps it (what it last published).
    pub fn record(&self) -> &SessionRecord {
        &self.record
    }

    /// Time since the last response completed.
    pub fn idle_for(&self) -> Duration {
        self.last_done.elapsed()
    }

    /// Requests awaiting their response (at most [`MAX_PENDING`]).
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }
}

/// Column names of a statement's result (the sampled columns; `None`: not valid UTF-8 text).
type ColumnNames = Arc<[Option<Arc<str>>]>;

/// Keeps the column names of a RowDescription `body` for a statement (bounded) and returns them
/// (none when the body does not decode).
fn remember_description(
    descriptions: &mut HashMap<Fingerprint, ColumnNames>,
    fingerprint: Fingerprint,
    body: &[u8],
) -> ColumnNames {
    let names: ColumnNames = match RowDescription::parse(body) {
        Ok(description) => capture::column_names(&description).into(),
        Err(_) => return Arc::from([]),
    };
    if descriptions.len() >= MAX_DESCRIPTIONS {
        descriptions.clear();
    }
    descriptions.insert(fingerprint, names.clone());
    names
}

/// Keeps `value` under `key` in a map of at most `cap` entries: a full map (its keys churning)
/// starts again empty before taking a new key.
fn cache<K: std::hash::Hash + Eq, T>(map: &mut HashMap<K, T>, key: K, value: T, cap: usize) {
    if map.len() >= cap && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

fn remember<T>(map: &mut HashMap<Vec<u8>, T>, name: &[u8], value: T) {
    if map.len() >= MAX_NAMED && !map.contains_key(name) {
        // Unbounded prepared-statement churn: forget them all rather than grow without end.
        map.clear();
    }
    map.insert(name.to_vec(), value);
}

#[cfg(test)]
mod tests;
