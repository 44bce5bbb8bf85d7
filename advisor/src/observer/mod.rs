//! Per-session observer: pairs requests with responses and times every statement.
//!
//! Called by the proxy for each framed message, in the order forwarded (on its observation
//! thread, or on the relay when a session's backlog is full); it never
//! blocks: finished statements and findings leave through an [`EventSender`] that drops when
//! full. Responses arrive in request order (protocol document, "Pipelining"), so a FIFO of what
//! each request will be answered with is enough to pair them, for simple, extended and
//! pipelined use.

mod backend;
mod clock;
mod extended;
mod named;
mod requests;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt};

use protocol::backend::TransactionStatus;
use protocol::frontend::{Query, Target};
use protocol::{FrontendTag, ScannedMessage};

use crate::capture::{self, literal_value, text_key, Params, ResultFormats, ResultSample, MAX_PARAMS};
use crate::detect::n_plus_one::{NPlusOneConfig, NPlusOneDetector};
use crate::detect::session_checks::{SessionChecks, SessionChecksConfig};
use crate::detect::transactions::session_label;
use crate::events::{Event, EventSender, SessionOrigin, SqlState, Statement};
use crate::fingerprint::{Fingerprint, Fingerprinter, LiteralMask};
use crate::lexer::split_statements;
use crate::limits::Limit;
use crate::orm::OrmStyle;
use crate::sessions::{SessionActivity, SessionEntry, SessionRecord};
use named::Named;

/// Most requests awaiting a response we track per session; past it the oldest are forgotten.
pub const MAX_PENDING: usize = 10_000;
/// Most statements of simple Queries a session holds awaiting their results: a Query split past
/// it times only the statements within it, at least its first (all are forwarded and answered
/// as ever), so
/// `a;a;a;...` costs neither a record per two bytes nor a fingerprint per statement without end.
const MAX_QUEUED_RUNS: usize = 10_000;
/// Most prepared statements and portals tracked per session.
const MAX_NAMED: usize = 10_000;
/// Most bytes of statement text (normalised and display) the prepared statements, or the
/// portals, of a session hold: 10,000 statements of 64 KiB would otherwise hold over a GiB.
const MAX_NAMED_TEXT_BYTES: usize = if cfg!(test) { 1 << 20 } else { 64 << 20 };
/// Most raw statement texts whose fingerprint a session remembers.
const MAX_CACHED_TEXTS: usize = 512;
/// Most bytes of statement text (normalised and display) those hold: 512 texts of 64 KiB
/// would otherwise hold 64 MiB for the session's life.
const MAX_CACHED_TEXT_BYTES: usize = 4 << 20;
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
    by_text: named::Held<u64, Parsed>,
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
    statements: Named<Arc<Statement>>,
    unnamed_portal: Option<Portal>,
    portals: Named<Portal>,
    descriptions: HashMap<Fingerprint, ColumnNames>,
    /// Bytes of rows the last result of a statement kept, when it had more than one row: the
    /// next result makes room for as many at its second row (one allocation, not a growth
    /// and a shrink per result).
    kept_bytes: HashMap<Fingerprint, u32>,
    pending: requests::Requests,
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
    /// The resets of statistics and advice this observer has taken into account.
    resets_seen: u64,
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
        let resets_seen = events.resets();
        Self {
            id,
            fingerprinter: Fingerprinter::default(),
            by_text: named::Held::new(MAX_CACHED_TEXTS, MAX_CACHED_TEXT_BYTES),
            by_normalized: HashMap::new(),
            by_shape: HashMap::new(),
            literals: LiteralMask::default(),
            unnamed_statement: None,
            statements: Named::default(),
            unnamed_portal: None,
            portals: Named::default(),
            descriptions: HashMap::new(),
            kept_bytes: HashMap::new(),
            pending: requests::Requests::default(),
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
            resets_seen,
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
        let literal_shape = shape.filter(|_| shared && self.literals.matches(constants));
        self.fingerprinter.trim();
        match literal_shape {
            // Its literals are exactly what the fingerprint made constants of: every text with
            // this shape is this statement (fingerprint::literals).
            Some(shape) => cache(&mut self.by_shape, shape, parsed.statement.clone(), MAX_CACHED_TEXTS),
            // A cache: starting it again costs fingerprinting again, not analysis (not counted).
            None => {
                self.by_text.remember(key, parsed.clone());
            }
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
    // Always inlined, as is `Requests::push_back`: a `Pending` is a few hundred bytes, copied
    // once more per call not inlined (callgrind: 600 instructions a TPC-B transaction).
    #[inline(always)]
    fn await_response(&mut self, pending: Pending) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
            self.reached(Limit::PendingRequests);
        }
        self.pending.push_back(pending);
    }

    /// This session reached one of its bounds: counted for `/metrics`, logged (rate-limited).
    fn reached(&self, limit: Limit) {
        self.events.limits().reach(limit, self.id);
    }

    /// A message from the client, seen as it is forwarded.
    pub fn frontend(&mut self, m: ScannedMessage<'_>) {
        let now = self.clock.now();
        let tag = FrontendTag::from_byte(m.tag);
        if tag == FrontendTag::Terminate {
            // The session ends: the admin API stops listing it now, not once its backend has
            // exited ("a closed session leaves the list at once").
            self.entry.update(&mut self.record, SessionActivity::terminate);
            return;
        }
        if self.skipping_to_sync && tag != FrontendTag::Sync {
            // After an error in the extended protocol the server discards everything up to the
            // next Sync, a Query included: nothing will answer these.
            return;
        }
        if self.copy_in
            && !matches!(
                tag,
                FrontendTag::CopyData
                    | FrontendTag::CopyDone
                    | FrontendTag::CopyFail
                    | FrontendTag::Flush
                    | FrontendTag::Sync
            )
        {
            // Any other message ends the server's copy-in mode with an error, and the server
            // consumes it (protocol document, "COPY Operations"): nothing answers it, so it must
            // not wait for an answer (a Query would wait for ever, one more each time).
            self.copy_in = false;
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
                    None => {
                        let room = MAX_QUEUED_RUNS.saturating_sub(self.pending.query_runs()).max(1);
                        let statements = split_statements(sql);
                        if statements.len() > room {
                            self.reached(Limit::QueryStatements);
                        }
                        statements.into_iter().take(room).map(|sql| to_run(self.parse(sql))).collect()
                    }
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
                        self.statements.forget(name);
                    }
                    Ok(Target::Portal(name)) => {
                        self.portals.forget(name);
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

    /// The session ended: report what the detectors still hold.
    pub fn finish(&mut self) {
        for finding in self.n_plus_one.finish() {
            self.events.send(Event::Finding(finding, self.caller(None)));
        }
        self.events.send(Event::SessionClosed { session: self.id });
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

/// Keeps `value` under `key` in a map of at most `cap` entries: a full map (its keys churning)
/// starts again empty before taking a new key.
fn cache<K: std::hash::Hash + Eq, T>(map: &mut HashMap<K, T>, key: K, value: T, cap: usize) {
    if map.len() >= cap && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

#[cfg(test)]
mod tests;
