//! The engine: drains observer events into statistics and advice, and runs the periodic,
//! cross-session detectors, all off the forwarding path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::advice::{Advice, AdviceBook, AdviceFilter, CallerLinks, Finding, Kind, Occurrence};
use crate::detect::deadlock;
use crate::detect::error_spike::{ErrorSpikeConfig, ErrorSpikeWatch};
use crate::detect::lock_contention::LockWatch;
use crate::detect::lock_hazard_ddl::DdlWatch;
use crate::detect::missing_index::{self, MissingIndexConfig};
use crate::detect::n_plus_one::{BurstWatch, NPlusOneConfig};
use crate::detect::session_checks::SessionChecksConfig;
use crate::detect::slow_query::{self, SlowQueryConfig, SlowQueryWatch};
use crate::detect::transactions::{TransactionThresholds, TransactionWatch};
use crate::detect::unparameterized::{UnparameterizedConfig, UnparameterizedWatch};
use crate::events::{self, Caller, Event, EventReceiver, EventSender, ExplainSample, PlanOutcome, TryRecvError};
use crate::health::{AnalysisHealth, Stage};
use crate::model::StatementEvent;
use crate::scopes::{ScopeConfig, ScopeStats};
use crate::sessions::{SessionActivity, SessionIdentity, SessionRegistry};
use crate::stats::QueryStats;

pub use crate::detect::lock_contention::InspectRequest;

/// Capacity of the observer-to-engine channel.
pub const EVENT_CHANNEL_CAPACITY: usize = 65_536;
/// How often the engine drains events. Observers never wake it: a send into a channel nobody
/// awaits costs a few atomic operations, where a wake-up per statement would cost a context switch.
const DRAIN_EVERY: Duration = Duration::from_millis(50);
/// How often the periodic detectors run.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// Advisor settings.
#[derive(Debug, Clone)]
pub struct AdvisorConfig {
    /// Cap on tracked fingerprints.
    pub max_fingerprints: usize,
    /// Cap on advice entries.
    pub max_advice: usize,
    /// N+1 thresholds.
    pub n_plus_one: NPlusOneConfig,
    /// Transaction thresholds.
    pub transactions: TransactionThresholds,
    /// A statement running this long gets its locks inspected (`--lock-wait`).
    pub lock_wait: Duration,
    /// Kinds switched off and fingerprints ignored: their findings never reach the book.
    pub filter: AdviceFilter,
    /// `slow_query` thresholds.
    pub slow_query: SlowQueryConfig,
    /// Per-session statement checks: `repeated_query`, `unbounded_result`, `select_star`.
    pub session_checks: SessionChecksConfig,
    /// `unparameterized` thresholds.
    pub unparameterized: UnparameterizedConfig,
    /// `error_spike` thresholds.
    pub error_spike: ErrorSpikeConfig,
    /// missing_index thresholds.
    pub missing_index: MissingIndexConfig,
    /// Statistics and advice per scope (the test that ran them), for `pgvisor check`; `None`: off.
    pub scopes: Option<ScopeConfig>,
    /// Test hook, never set from flags: statements containing these markers make analysis panic,
    /// so tests can prove a failure is contained.
    #[doc(hidden)]
    pub injected_panics: InjectedPanics,
}

/// Markers that make a stage of analysis panic when a statement contains them (tests only).
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct InjectedPanics {
    /// The session's observer panics on a statement containing this.
    pub observer: Option<Arc<str>>,
    /// The engine panics on applying a statement containing this.
    pub engine: Option<Arc<str>>,
}

impl InjectedPanics {
    /// Panics when `text` contains `marker`.
    pub fn check(marker: &Option<Arc<str>>, text: &[u8]) {
        if let Some(m) = marker {
            if !m.is_empty() && text.windows(m.len()).any(|w| w == m.as_bytes()) {
                panic!("injected analysis failure ({m})");
            }
        }
    }
}

impl Default for AdvisorConfig {
    fn default() -> Self {
        Self {
            max_fingerprints: 5000,
            max_advice: 1000,
            n_plus_one: NPlusOneConfig::default(),
            transactions: TransactionThresholds::default(),
            lock_wait: Duration::from_millis(200),
            filter: AdviceFilter::default(),
            slow_query: SlowQueryConfig::default(),
            session_checks: SessionChecksConfig::default(),
            unparameterized: UnparameterizedConfig::default(),
            error_spike: ErrorSpikeConfig::default(),
            missing_index: MissingIndexConfig::default(),
            injected_panics: InjectedPanics::default(),
            scopes: None,
        }
    }
}

/// Called with each advice's first occurrence, then with its updates as the book streams them
/// (at most one per advice every [`crate::advice::UPDATE_INTERVAL`]): the log sink, which
/// chooses the updates worth a line.
pub type AdviceSink = Box<dyn Fn(&Advice) + Send + Sync>;

/// Shared advisor state: what the admin API reads.
pub struct Advisor {
    /// Per-fingerprint statistics.
    pub stats: QueryStats,
    /// Live sessions.
    pub sessions: SessionRegistry,
    /// Where observers send events.
    pub events: EventSender,
    /// Findings.
    pub advice: AdviceBook,
    /// Settings.
    pub config: AdvisorConfig,
    /// Analysis failures contained so far.
    pub health: AnalysisHealth,
    /// Per-scope statistics and advice (filled only when `config.scopes` is set).
    pub scopes: ScopeStats,
    /// Asks the engine to apply everything queued so far (then reset, if asked), and answers
    /// when it has.
    requests: mpsc::Sender<Request>,
    /// Where the Inspector sends its answers (never dropped).
    pub answers: events::AnswerSender,
}

/// What the engine task consumes: observer events, the API's requests and the Inspector's answers.
pub struct EngineInputs {
    events: EventReceiver,
    requests: mpsc::Receiver<Request>,
    answers: mpsc::Receiver<Event>,
}

/// What the API asks the engine: each is done after the events queued before it are applied.
enum Request {
    /// Apply the queued events, then answer.
    CatchUp(oneshot::Sender<()>),
    /// Apply the queued events, forget statistics, advice and scopes, then answer.
    Reset(oneshot::Sender<()>),
}

/// What became of a request to the engine.
enum Answer {
    /// Applied.
    Done,
    /// Not confirmed within [`FLUSH_WAIT`]; it may still be applied.
    Late,
    /// No engine runs to take it.
    NoEngine,
}

/// Longest an API request waits for the engine to apply what is queued.
const FLUSH_WAIT: Duration = Duration::from_secs(2);
/// Longest an API request waits for sessions to finish observing bytes already forwarded.
const OBSERVE_WAIT: Duration = Duration::from_millis(100);

impl std::fmt::Debug for Advisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Advisor").field("fingerprints", &self.stats.len()).field("advice", &self.advice.len()).finish()
    }
}

impl Advisor {
    /// A new advisor and the inputs the engine task must drain ([`Engine::run`]).
    pub fn new(config: AdvisorConfig) -> (Arc<Self>, EngineInputs) {
        let (events, rx) = events::channel(EVENT_CHANNEL_CAPACITY);
        let (requests, request_rx) = mpsc::channel(64);
        let (answers, answer_rx) = mpsc::channel(256);
        let advisor = Self {
            stats: QueryStats::new(config.max_fingerprints),
            sessions: SessionRegistry::default(),
            events,
            advice: AdviceBook::new(config.max_advice),
            config,
            health: AnalysisHealth::default(),
            scopes: ScopeStats::default(),
            requests,
            answers: events::AnswerSender(answers),
        };
        (Arc::new(advisor), EngineInputs { events: rx, requests: request_rx, answers: answer_rx })
    }

    /// Read-your-writes for the API: returns once every statement whose result was forwarded
    /// before this call is in the statistics, the session registry and the advice book.
    ///
    /// It waits (briefly, bounded) for sessions still observing bytes they already forwarded,
    /// then for the engine to apply everything queued. A stopped or stuck engine makes it give
    /// up after [`FLUSH_WAIT`] rather than hang the request.
    pub async fn caught_up(&self) {
        self.sessions.wait_observed(OBSERVE_WAIT).await;
        let _ = self.ask(Request::CatchUp).await;
    }

    /// Clears statistics, advice and scopes. What finished before the call is applied first
    /// (as [`Self::caught_up`]), then forgotten with the rest: the engine does both in its own
    /// order, so a statement queued before the reset is never counted after it. Without a running
    /// engine (tests), it clears at once.
    ///
    /// Returns false when the engine did not confirm within [`FLUSH_WAIT`] (it is far behind):
    /// the reset then happens when the engine gets to it.
    pub async fn reset(&self) -> bool {
        self.sessions.wait_observed(OBSERVE_WAIT).await;
        match self.ask(Request::Reset).await {
            Answer::Done => true,
            Answer::Late => false,
            Answer::NoEngine => {
                self.forget();
                true
            }
        }
    }

    /// Sends the engine `request` and waits for its answer, at most [`FLUSH_WAIT`] in all (a
    /// full request queue included).
    async fn ask(&self, request: impl FnOnce(oneshot::Sender<()>) -> Request) -> Answer {
        let (tx, rx) = oneshot::channel();
        let asked = async {
            if self.requests.send(request(tx)).await.is_err() {
                return Answer::NoEngine;
            }
            match rx.await {
                Ok(()) => Answer::Done,
                // The engine dropped the request unanswered: it stopped.
                Err(_) => Answer::NoEngine,
            }
        };
        tokio::time::timeout(FLUSH_WAIT, asked).await.unwrap_or(Answer::Late)
    }

    fn forget(&self) {
        self.stats.reset();
        self.advice.reset();
        self.scopes.reset();
        self.events.count_reset();
    }
}

/// Which statements the Inspector may EXPLAIN: each fingerprint at most once every ten minutes
/// once it was explained (or found unexplainable), through a short queue that the Inspector drains
/// at one EXPLAIN a second. An EXPLAIN that failed (side connection down) or never came back is
/// offered again after a short pause, not forgotten for ten minutes.
#[derive(Default)]
struct ExplainBudget {
    sender: Option<mpsc::Sender<ExplainSample>>,
    /// Per normalised text ([`crate::model::text_key`]): the earliest time it may be offered
    /// again. Not per fingerprint, which may stand for the same query on another schema.
    not_before: HashMap<u64, std::time::Instant>,
}

impl ExplainBudget {
    const AGAIN_AFTER: Duration = Duration::from_secs(600);
    const RETRY_AFTER: Duration = Duration::from_secs(30);
    /// An offer with no answer by then (the Inspector stopped) may be made again.
    const ANSWER_WITHIN: Duration = Duration::from_secs(60);
    const REMEMBERED: usize = 10_000;

    fn offer(&mut self, sample: ExplainSample) {
        let Some(sender) = &self.sender else { return };
        let key = sample.statement.text_key;
        let now = std::time::Instant::now();
        if self.not_before.get(&key).is_some_and(|t| *t > now) {
            return;
        }
        if self.not_before.len() >= Self::REMEMBERED {
            self.not_before.retain(|_, t| *t > now);
        }
        // A full queue drops the offer; the fingerprint is offered again by its next slow run.
        if sender.try_send(sample).is_ok() {
            self.not_before.insert(key, now + Self::ANSWER_WITHIN);
        }
    }

    /// The Inspector answered about the statement whose normalised text is `statement`.
    fn answered(&mut self, statement: &str, outcome: &PlanOutcome) {
        let pause = match outcome {
            PlanOutcome::Explained(_) | PlanOutcome::Skipped(_) => Self::AGAIN_AFTER,
            PlanOutcome::Failed(_) => Self::RETRY_AFTER,
        };
        self.not_before.insert(crate::model::text_key(statement), std::time::Instant::now() + pause);
    }
}

/// The engine's own state.
pub struct Engine {
    advisor: Arc<Advisor>,
    sink: AdviceSink,
    /// The book's stream, for the updates the sink is shown.
    updates: tokio::sync::broadcast::Receiver<Arc<Advice>>,
    inspector: Option<mpsc::Sender<InspectRequest>>,
    callers: CallerLinks,
    bursts: BurstWatch,
    transactions: TransactionWatch,
    locks: LockWatch,
    ddl: DdlWatch,
    explain: ExplainBudget,
    slow_queries: SlowQueryWatch,
    unparameterized: UnparameterizedWatch,
    error_spikes: ErrorSpikeWatch,
}

impl Engine {
    /// An engine for `advisor`, logging new advice through `sink`, asking `inspector` (if any)
    /// about lock waits.
    pub fn new(advisor: Arc<Advisor>, sink: AdviceSink, inspector: Option<mpsc::Sender<InspectRequest>>) -> Self {
        let bursts = BurstWatch::new(advisor.config.n_plus_one.clone());
        Self {
            explain: ExplainBudget::default(),
            updates: advisor.advice.subscribe(),
            locks: LockWatch::new(advisor.config.lock_wait, inspector.is_some()),
            advisor,
            sink,
            inspector,
            transactions: TransactionWatch::default(),
            ddl: DdlWatch::default(),
            slow_queries: SlowQueryWatch::default(),
            unparameterized: UnparameterizedWatch::default(),
            error_spikes: ErrorSpikeWatch::default(),
            callers: CallerLinks::default(),
            bursts,
        }
    }

    /// Records a finding: `caller` (for per-session findings) names who ran its statement, in the
    /// evidence (route, controller, test...: never the trace, which is a link) and by scope.
    fn record_from(&mut self, mut finding: Finding, caller: Option<&Caller>) {
        if !self.advisor.config.filter.allows(&finding) {
            return;
        }
        if let Some(caller) = caller {
            self.callers.describe(&mut finding, caller);
        }
        if let Some(config) = &self.advisor.config.scopes {
            let scope = caller.map(|c| config.scope_of(c.tags.as_deref(), &c.application_name));
            self.advisor.scopes.advise(scope.as_ref(), &finding);
        }
        self.record_unfiltered(finding);
    }

    fn record(&mut self, finding: Finding) {
        self.record_from(finding, None);
    }

    fn record_unfiltered(&self, finding: Finding) {
        if let Some(first) = self.advisor.advice.record(finding, SystemTime::now()) {
            (self.sink)(&first);
        }
    }

    /// Applies one finished statement: statistics, scopes and the engine's detectors.
    fn statement(&mut self, s: &StatementEvent) {
        InjectedPanics::check(&self.advisor.config.injected_panics.engine, s.statement.text.as_bytes());
        let live = || self.advisor.sessions.get(s.session);
        if let Some(f) = self.locks.statement_finished(s.session, s.duration, live, s.finished_at) {
            self.record(f);
        }
        self.advisor.stats.record(s);
        if let Some(config) = &self.advisor.config.scopes {
            let scope = config.scope_of(s.statement.tags.as_deref(), &s.application_name);
            self.advisor.scopes.record(&scope, s);
        }
        let advisor = &self.advisor;
        if let Some(f) = self.ddl.statement(s.into(), || advisor.sessions.snapshot()) {
            self.record(f);
        }
        for (f, caller) in self.bursts.statement(s) {
            self.record_from(f, Some(&caller));
        }
        let config = &self.advisor.config;
        if let Some(mut f) = self.slow_queries.observe(s, &config.slow_query) {
            self.note_lock_waits(&mut f);
            let caller = Caller { tags: s.statement.tags.clone(), application_name: s.application_name.clone() };
            self.record_from(f, Some(&caller));
        }
        let config = &self.advisor.config;
        // One at a time, not gathered: a finding is large, and nearly always there is none.
        if let Some(f) = self.unparameterized.observe(s, &config.unparameterized) {
            self.record(f);
        }
        let config = &self.advisor.config;
        if let Some(f) = self.error_spikes.observe(s, &config.error_spike) {
            self.record(f);
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Statement(s) => self.statement(&s),
            Event::Finding(f, caller) => {
                if f.kind == Kind::NPlusOne {
                    let now = SystemTime::now();
                    if self.bursts.is_parallel(&f.key, now) {
                        // The pool's parallel finding already holds this session's share.
                        return;
                    }
                    if let Some(child) = f.fingerprints.last() {
                        self.bursts.confirmed_in_session(*child, now);
                    }
                }
                self.record_from(f, Some(&caller))
            }
            Event::SessionClosed { session } => self.bursts.session_closed(session),
            Event::Deadlock { session, statement, detail, transaction } => {
                let sessions = self.advisor.sessions.snapshot_with_recent();
                let f = deadlock::finding(session, &statement, &transaction, &detail, &sessions, SystemTime::now());
                self.record(f);
            }
            Event::Blocking { session, statement_started, report } => {
                let Some((statement, report)) = self.locks.answer(session, statement_started, report) else {
                    return;
                };
                let sessions = self.advisor.sessions.snapshot();
                for f in self.locks.report(Some(session), Occurrence::New, &sessions, SystemTime::now()) {
                    self.record(f);
                }
                if let Some(f) = self.ddl.blocking(session, &statement, &report, &sessions) {
                    self.record(f);
                }
            }
            Event::InspectorUnavailable { reason } => {
                let f = self.locks.inspector_unavailable(&reason);
                self.record(f);
            }
            Event::ExplainCandidate(sample) => self.explain.offer(sample),
            Event::Plan { fingerprint, statement, outcome } => {
                self.explain.answered(&statement, &outcome);
                let mean_ms = self.advisor.stats.get(fingerprint).map(|s| s.mean_us() / 1000.0);
                if let PlanOutcome::Explained(candidates) = outcome {
                    for c in candidates {
                        self.record(missing_index::finding(fingerprint, &statement, &c, mean_ms));
                    }
                }
            }
        }
    }

    /// Lets the engine ask for EXPLAINs of slow statements (missing_index), through `explainer`.
    pub fn with_explainer(mut self, explainer: mpsc::Sender<ExplainSample>) -> Self {
        self.explain.sender = Some(explainer);
        self
    }

    /// After a reset: the watches that remember what they reported, or what they explained,
    /// start again, so the same finding can be raised anew (a shape already reported as
    /// unparameterized, a fingerprint explained in the last ten minutes). The watches of what is
    /// going on now (bursts, open transactions, lock waits, DDL) keep following it.
    fn forget_reported(&mut self) {
        self.explain.not_before.clear();
        self.slow_queries = SlowQueryWatch::default();
        self.unparameterized = UnparameterizedWatch::default();
        self.error_spikes = ErrorSpikeWatch::default();
        self.callers = CallerLinks::default();
    }

    /// Periodic checks (transactions, lock waits, slow shapes, bursts, throttled stream updates)
    /// over the sessions as published now.
    pub fn check(&mut self) {
        let sessions = self.advisor.sessions.snapshot();
        self.check_sessions(&sessions);
    }

    /// Periodic checks over `sessions`, read before the events queued so far were applied: every
    /// event a session's observer sent before it published what `sessions` shows is applied (an
    /// observer sends a statement's event before it shows the session idle).
    fn check_sessions(&mut self, sessions: &[(SessionIdentity, SessionActivity)]) {
        let now = SystemTime::now();
        for (f, caller) in self.bursts.check(now) {
            self.record_from(f, Some(&caller));
        }
        for f in self.transactions.check(sessions, now, &self.advisor.config.transactions) {
            self.record(f);
        }
        for mut f in self.slow_queries.check(&self.advisor.stats, &self.advisor.config.slow_query) {
            self.note_lock_waits(&mut f);
            self.record(f);
        }
        let (questions, waits) = self.locks.check(sessions, now);
        if let Some(inspector) = &self.inspector {
            for question in questions {
                let _ = inspector.try_send(question);
            }
        }
        for f in waits {
            self.record(f);
        }
        // Asked of the registry, not of `sessions`: a session that opened after that snapshot may
        // already have statements applied (a SET lock_timeout) that must not be forgotten.
        let registry = &self.advisor.sessions;
        self.ddl.retain_sessions(|id| registry.contains(id));
        self.advisor.advice.flush();
        self.show_updates();
    }

    /// Shows the sink the updates streamed since the last check (first occurrences reached it
    /// when they were recorded).
    fn show_updates(&mut self) {
        use tokio::sync::broadcast::error::TryRecvError;
        loop {
            match self.updates.try_recv() {
                Ok(advice) if advice.last_seen > advice.first_seen => (self.sink)(&advice),
                Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    /// Time spent queued behind another session's locks is not a plan problem: a slow_query
    /// finding about a statement seen waiting for a lock says so.
    fn note_lock_waits(&self, f: &mut Finding) {
        if slow_query::statement_of(f).is_some_and(|q| self.locks.waited_for_locks(q)) {
            slow_query::mention_lock_waits(f);
        }
    }

    /// Drains events and runs the periodic checks until every sender is gone.
    ///
    /// A panic while applying one event or running one check is contained: that event is lost,
    /// counted under `stage="engine"` and logged, and the engine goes on with the next.
    pub async fn run(mut self, inputs: EngineInputs) {
        let EngineInputs { events: mut rx, requests: mut request_rx, answers: mut answer_rx } = inputs;
        let mut drain = tokio::time::interval(DRAIN_EVERY);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_check = std::time::Instant::now();
        loop {
            let request = tokio::select! {
                _ = drain.tick() => None,
                Some(request) = request_rx.recv() => Some(request),
            };
            while let Ok(answer) = answer_rx.try_recv() {
                self.contained(|engine| engine.apply(answer));
            }
            // The sessions are read before the drain, so the checks see no session further on
            // than the events applied (see `check_sessions`).
            let due = request.is_none() && last_check.elapsed() >= CHECK_EVERY;
            let sessions = due.then(|| self.advisor.sessions.snapshot());
            if !self.drain(&mut rx) {
                return;
            }
            // Everything queued before a request is applied by now.
            match request {
                Some(Request::CatchUp(reply)) => {
                    let _ = reply.send(());
                }
                Some(Request::Reset(reply)) => {
                    self.contained(|engine| {
                        engine.advisor.forget();
                        engine.forget_reported();
                    });
                    let _ = reply.send(());
                }
                None => {}
            }
            if let Some(sessions) = sessions {
                last_check = std::time::Instant::now();
                self.contained(|engine| engine.check_sessions(&sessions));
            }
        }
    }

    /// Applies every queued event; false once every sender is gone.
    fn drain(&mut self, rx: &mut EventReceiver) -> bool {
        loop {
            match rx.try_recv() {
                // A statement (almost every event) is applied where it lies: it is large, and
                // moving it into the closure and on costs more than some of its detectors.
                Ok(event) => match &event {
                    Event::Statement(s) => self.contained(|engine| engine.statement(s)),
                    _ => self.contained(|engine| engine.apply(event)),
                },
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn contained(&mut self, f: impl FnOnce(&mut Self)) {
        let advisor = self.advisor.clone();
        advisor.health.contain(Stage::Engine, || "the engine skipped one event or check".into(), || f(self));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{SkipReason, Statement};

    fn sample(sql: &str) -> ExplainSample {
        ExplainSample {
            statement: Statement::from_sql(sql),
            sql: sql.into(),
            database: "db".into(),
            user: "app".into(),
        }
    }

    fn queued(rx: &mut mpsc::Receiver<ExplainSample>) -> usize {
        std::iter::from_fn(|| rx.try_recv().ok()).count()
    }

    #[test]
    fn an_explain_is_offered_once_until_answered_and_a_failed_one_is_retried_soon() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut budget = ExplainBudget { sender: Some(tx), not_before: HashMap::new() };
        let s = sample("select * from t where a = 1");
        budget.offer(s.clone());
        budget.offer(s.clone());
        assert_eq!(queued(&mut rx), 1, "in flight: not offered twice");
        // The same query on another schema has the same fingerprint, and its own plan.
        let other = sample("select * from tenant_b.t where a = 1");
        assert_eq!(other.statement.fingerprint, s.statement.fingerprint);
        budget.offer(other);
        assert_eq!(queued(&mut rx), 1, "another schema's text is explained too");

        let key = s.statement.text_key;
        budget.answered(&s.statement.text, &PlanOutcome::Failed("the Inspector is down".into()));
        let wait = budget.not_before[&key].saturating_duration_since(std::time::Instant::now());
        assert!(wait <= ExplainBudget::RETRY_AFTER, "a failure is retried after {wait:?}, not ten minutes");
        budget.not_before.insert(key, std::time::Instant::now());
        budget.offer(s.clone());
        assert_eq!(queued(&mut rx), 1, "offered again once the pause is over");

        for outcome in [PlanOutcome::Explained(Vec::new()), PlanOutcome::Skipped(SkipReason::RoleNotAssumable)] {
            budget.answered(&s.statement.text, &outcome);
            budget.offer(s.clone());
            assert_eq!(queued(&mut rx), 0, "{outcome:?}: not asked again for ten minutes");
        }
    }
}
