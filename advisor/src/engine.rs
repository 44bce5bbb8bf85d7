//! The engine: drains observer events into statistics and advice, and runs the periodic,
//! cross-session detectors, all off the forwarding path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::advice::{Advice, AdviceBook, AdviceFilter, CallerLinks, Finding, Kind, Occurrence};
use crate::detect::ddl::DdlWatch;
use crate::detect::deadlock;
use crate::detect::error_spike::{ErrorSpikeConfig, ErrorSpikeWatch};
use crate::detect::lock_contention::{self, BlockingReport};
use crate::detect::missing_index::{self, MissingIndexConfig};
use crate::detect::n_plus_one::{BurstWatch, NPlusOneConfig};
use crate::detect::session_checks::SessionChecksConfig;
use crate::detect::slow_query::{SlowQueryConfig, SlowQueryWatch};
use crate::detect::transactions::{TransactionThresholds, TransactionWatch};
use crate::detect::unparameterized::{UnparameterizedConfig, UnparameterizedWatch};
use crate::events::{self, Caller, Event, EventSender, ExplainSample, PlanOutcome};
use crate::fingerprint::Fingerprint;
use crate::health::{AnalysisHealth, Stage};
use crate::scopes::{ScopeConfig, ScopeStats};
use crate::sessions::{SessionActivity, SessionIdentity, SessionRegistry, SessionState};
use crate::stats::QueryStats;

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

/// A request to the Inspector: who blocks backend `pid` (session `session`)?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InspectRequest {
    /// pgvisor session id.
    pub session: u64,
    /// Its backend pid.
    pub pid: u32,
    /// When its statement started (identifies the statement).
    pub statement_started: SystemTime,
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
    /// Asks the engine to apply everything queued so far, and answers when it has.
    flushes: mpsc::Sender<oneshot::Sender<()>>,
    /// Where the Inspector sends its answers (never dropped).
    pub answers: events::AnswerSender,
}

/// What the engine task consumes: observer events and flush requests.
pub struct EngineInputs {
    events: mpsc::Receiver<Event>,
    flushes: mpsc::Receiver<oneshot::Sender<()>>,
    answers: mpsc::Receiver<Event>,
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
        let (flushes, flush_rx) = mpsc::channel(64);
        let (answers, answer_rx) = mpsc::channel(256);
        let advisor = Self {
            stats: QueryStats::new(config.max_fingerprints),
            sessions: SessionRegistry::default(),
            events,
            advice: AdviceBook::new(config.max_advice),
            config,
            health: AnalysisHealth::default(),
            scopes: ScopeStats::default(),
            flushes,
            answers: events::AnswerSender(answers),
        };
        (Arc::new(advisor), EngineInputs { events: rx, flushes: flush_rx, answers: answer_rx })
    }

    /// Read-your-writes for the API: returns once every statement whose result was forwarded
    /// before this call is in the statistics, the session registry and the advice book.
    ///
    /// It waits (briefly, bounded) for sessions still observing bytes they already forwarded,
    /// then for the engine to apply everything queued. A stopped or stuck engine makes it give
    /// up after [`FLUSH_WAIT`] rather than hang the request.
    pub async fn caught_up(&self) {
        self.sessions.wait_observed(OBSERVE_WAIT).await;
        let (tx, rx) = oneshot::channel();
        let asked = tokio::time::timeout(FLUSH_WAIT, async {
            if self.flushes.send(tx).await.is_ok() {
                let _ = rx.await;
            }
        });
        let _ = asked.await;
    }

    /// Clears statistics, advice and scopes.
    pub fn reset(&self) {
        self.stats.reset();
        self.advice.reset();
        self.scopes.reset();
    }
}

/// A waiter the Inspector found blocked, followed until its statement ends.
struct Waiter {
    statement_started: SystemTime,
    /// The statement that waits (the session's next statement may be current by the end).
    statement: String,
    report: Option<BlockingReport>,
    /// Last time the Inspector was asked about this statement.
    asked: SystemTime,
    /// The sessions as they were at the last report: the final report, written when the
    /// statement finishes, must still name the blocker as it was while it blocked (by then it
    /// has usually committed).
    frozen: Option<Vec<(SessionIdentity, SessionActivity)>>,
    /// When the session stopped being active (its finished-statement event may still be queued).
    inactive_since: Option<SystemTime>,
}

/// Which statements the Inspector may EXPLAIN: each fingerprint at most once every ten minutes
/// once it was explained (or found unexplainable), through a short queue that the Inspector drains
/// at one EXPLAIN a second. An EXPLAIN that failed (side connection down) or never came back is
/// offered again after a short pause, not forgotten for ten minutes.
#[derive(Default)]
struct ExplainBudget {
    sender: Option<mpsc::Sender<ExplainSample>>,
    /// Per fingerprint: the earliest time it may be offered again.
    not_before: HashMap<Fingerprint, std::time::Instant>,
}

impl ExplainBudget {
    const AGAIN_AFTER: Duration = Duration::from_secs(600);
    const RETRY_AFTER: Duration = Duration::from_secs(30);
    /// An offer with no answer by then (the Inspector stopped) may be made again.
    const ANSWER_WITHIN: Duration = Duration::from_secs(60);
    const REMEMBERED: usize = 10_000;

    fn offer(&mut self, sample: ExplainSample) {
        let Some(sender) = &self.sender else { return };
        let fp = sample.statement.fingerprint;
        let now = std::time::Instant::now();
        if self.not_before.get(&fp).is_some_and(|t| *t > now) {
            return;
        }
        if self.not_before.len() >= Self::REMEMBERED {
            self.not_before.retain(|_, t| *t > now);
        }
        // A full queue drops the offer; the fingerprint is offered again by its next slow run.
        if sender.try_send(sample).is_ok() {
            self.not_before.insert(fp, now + Self::ANSWER_WITHIN);
        }
    }

    /// The Inspector answered about `fp`.
    fn answered(&mut self, fp: Fingerprint, outcome: &PlanOutcome) {
        let pause = match outcome {
            PlanOutcome::Explained(_) | PlanOutcome::Skipped(_) => Self::AGAIN_AFTER,
            PlanOutcome::Failed(_) => Self::RETRY_AFTER,
        };
        self.not_before.insert(fp, std::time::Instant::now() + pause);
    }
}

/// The engine's own state.
pub struct Engine {
    advisor: Arc<Advisor>,
    sink: AdviceSink,
    /// The book's stream, for the updates the sink is shown.
    updates: tokio::sync::broadcast::Receiver<Arc<Advice>>,
    inspector: Option<mpsc::Sender<InspectRequest>>,
    inspector_down: bool,
    callers: CallerLinks,
    bursts: BurstWatch,
    transactions: TransactionWatch,
    waiters: HashMap<u64, Waiter>,
    ddl: DdlWatch,
    explain: ExplainBudget,
    /// Statements seen waiting for a lock (bounded): their slowness is not their plan's.
    lock_waited: std::collections::HashSet<String>,
    slow_queries: SlowQueryWatch,
    unparameterized: UnparameterizedWatch,
    error_spikes: ErrorSpikeWatch,
}

impl Engine {
    /// An engine for `advisor`, logging new advice through `sink`, asking `inspector` (if any)
    /// about lock waits.
    pub fn new(advisor: Arc<Advisor>, sink: AdviceSink, inspector: Option<mpsc::Sender<InspectRequest>>) -> Self {
        let inspector_down = inspector.is_none();
        let bursts = BurstWatch::new(advisor.config.n_plus_one.clone());
        Self {
            explain: ExplainBudget::default(),
            lock_waited: std::collections::HashSet::new(),
            updates: advisor.advice.subscribe(),
            advisor,
            sink,
            inspector,
            inspector_down,
            transactions: TransactionWatch::default(),
            waiters: HashMap::new(),
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

    /// Applies one event.
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Statement(s) => {
                InjectedPanics::check(&self.advisor.config.injected_panics.engine, s.statement.text.as_bytes());
                if let Some(w) = self.waiters.remove(&s.session) {
                    self.finish_wait(s.session, w, s.duration);
                }
                self.advisor.stats.record(&s);
                if let Some(config) = &self.advisor.config.scopes {
                    let scope = config.scope_of(s.statement.tags.as_deref(), &s.application_name);
                    self.advisor.scopes.record(&scope, &s);
                }
                let advisor = &self.advisor;
                if let Some(f) = self.ddl.statement((&s).into(), || advisor.sessions.snapshot()) {
                    self.record(f);
                }
                for (f, caller) in self.bursts.statement(&s) {
                    self.record_from(f, Some(&caller));
                }
                let config = &self.advisor.config;
                if let Some(mut f) = self.slow_queries.observe(&s, &config.slow_query) {
                    self.note_lock_waits(&mut f);
                    let caller =
                        Caller { tags: s.statement.tags.clone(), application_name: s.application_name.clone() };
                    self.record_from(f, Some(&caller));
                }
                let config = &self.advisor.config;
                let found = [
                    self.unparameterized.observe(&s, &config.unparameterized),
                    self.error_spikes.observe(&s, &config.error_spike),
                ];
                for f in found.into_iter().flatten() {
                    self.record(f);
                }
            }
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
                let Some(w) = self.waiters.get_mut(&session).filter(|w| w.statement_started == statement_started)
                else {
                    return;
                };
                if report.as_ref().is_some_and(|r| !r.blockers.is_empty()) && w.report.is_none() {
                    w.report = report;
                    let (statement, report) = (w.statement.clone(), w.report.clone());
                    self.report_waits(Some(session), Occurrence::New);
                    let sessions = self.advisor.sessions.snapshot();
                    if let Some(f) = report.and_then(|r| self.ddl.blocking(session, &statement, &r, &sessions)) {
                        self.record(f);
                    }
                }
            }
            Event::InspectorUnavailable { reason } => {
                if !self.inspector_down {
                    self.inspector_down = true;
                }
                self.record(lock_contention::inspector_unavailable(&reason));
            }
            Event::ExplainCandidate(sample) => self.explain.offer(sample),
            Event::Plan { fingerprint, statement, outcome } => {
                self.explain.answered(fingerprint, &outcome);
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

    fn finish_wait(&mut self, session: u64, w: Waiter, waited: Duration) {
        // Only a wait that was reported gets its final size.
        let Some(frozen) = w.frozen else { return };
        let live = self.advisor.sessions.snapshot();
        let Some((identity, mut activity)) = live
            .into_iter()
            .find(|(i, _)| i.id == session)
            .or_else(|| frozen.iter().find(|(i, _)| i.id == session).cloned())
        else {
            return;
        };
        // The statement finished (this is its completion event) even if ReadyForQuery has not
        // been seen yet: the waiter no longer runs it.
        if activity.state == SessionState::Active && activity.statement_started == Some(w.statement_started) {
            activity.state = if activity.transaction_started.is_some() {
                SessionState::IdleInTransaction
            } else {
                SessionState::Idle
            };
        }
        let f = lock_contention::finding(
            (&identity, &activity),
            &w.statement,
            w.report.as_ref().filter(|r| !r.blockers.is_empty()),
            &frozen,
            waited,
            Occurrence::Update,
            SystemTime::now(),
        );
        self.record(f);
    }

    /// Periodic checks: transactions, lock waits, throttled stream updates.
    pub fn check(&mut self) {
        let now = SystemTime::now();
        for (f, caller) in self.bursts.check(now) {
            self.record_from(f, Some(&caller));
        }
        let sessions = self.advisor.sessions.snapshot();
        for f in self.transactions.check(&sessions, now, &self.advisor.config.transactions) {
            self.record(f);
        }
        for mut f in self.slow_queries.check(&self.advisor.stats, &self.advisor.config.slow_query) {
            self.note_lock_waits(&mut f);
            self.record(f);
        }

        let lock_wait = self.advisor.config.lock_wait;
        for (identity, activity) in &sessions {
            let Some(started) = activity.statement_started.filter(|_| activity.state == SessionState::Active) else {
                if let Some(w) = self.waiters.get_mut(&identity.id) {
                    w.inactive_since.get_or_insert(now);
                }
                continue;
            };
            if now.duration_since(started).unwrap_or_default() < lock_wait {
                continue;
            }
            let fresh = || Waiter {
                statement_started: started,
                statement: activity.current_statement.as_deref().unwrap_or("?").to_string(),
                report: None,
                asked: SystemTime::UNIX_EPOCH,
                frozen: None,
                inactive_since: None,
            };
            let waiter = self.waiters.entry(identity.id).or_insert_with(fresh);
            if waiter.statement_started != started {
                *waiter = fresh();
            }
            // Ask again each second while it waits: a statement can start waiting late.
            let due = waiter.report.is_none()
                && now.duration_since(waiter.asked).unwrap_or_default() >= Duration::from_secs(1);
            if let (true, Some(pid), Some(inspector)) = (due, activity.backend_pid, &self.inspector) {
                waiter.asked = now;
                let _ = inspector.try_send(InspectRequest { session: identity.id, pid, statement_started: started });
            }
        }
        // A waiter whose statement ended is finished by its statement event; drop it if that
        // event never comes (the session closed mid-statement).
        self.waiters.retain(|id, w| {
            sessions.iter().any(|(i, _)| i.id == *id)
                && w.inactive_since.is_none_or(|t| now.duration_since(t).unwrap_or_default() < Duration::from_secs(2))
        });
        self.report_waits(None, Occurrence::Update);
        self.ddl.retain_sessions(|id| sessions.iter().any(|(i, _)| i.id == id));
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
        if f.evidence["query"].as_str().is_some_and(|q| self.lock_waited.contains(q)) {
            f.message.push_str(
                " Some of its runs waited for locks held by other sessions (see the lock_contention advice).",
            );
            f.suggestion = format!(
                "First shorten the transactions that hold the locks it waits for (see lock_contention); then, if it is still slow, look at its plan. {}",
                f.suggestion
            );
            f.evidence["waited_for_locks"] = serde_json::Value::Bool(true);
        }
    }

    /// Reports (or updates) every waiter known to be blocked (or just `only`), with its wait so far.
    fn report_waits(&mut self, only: Option<u64>, occurrence: Occurrence) {
        let now = SystemTime::now();
        let sessions = self.advisor.sessions.snapshot();
        let mut findings = Vec::new();
        let inspector_down = self.inspector_down;
        for (id, w) in
            self.waiters.iter_mut().filter(|(id, w)| only.is_none_or(|o| o == **id) && w.inactive_since.is_none())
        {
            let Some(me) = sessions.iter().find(|(i, _)| i.id == *id) else { continue };
            let waited = now.duration_since(w.statement_started).unwrap_or_default();
            let report = w.report.as_ref().filter(|r| !r.blockers.is_empty());
            let reportable = report.is_some()
                || (w.report.is_none()
                    && inspector_down
                    && !lock_contention::suspects(*id, &w.statement, &sessions).is_empty());
            if reportable {
                if self.lock_waited.len() >= 1000 {
                    self.lock_waited.clear();
                }
                self.lock_waited.insert(w.statement.clone());
                findings.push(lock_contention::finding(
                    (&me.0, &me.1),
                    &w.statement,
                    report,
                    &sessions,
                    waited,
                    occurrence,
                    now,
                ));
                w.frozen = Some(sessions.clone());
            }
        }
        for f in findings {
            self.record(f);
        }
    }

    /// Drains events and runs the periodic checks until every sender is gone.
    ///
    /// A panic while applying one event or running one check is contained: that event is lost,
    /// counted under `stage="engine"` and logged, and the engine goes on with the next.
    pub async fn run(mut self, inputs: EngineInputs) {
        let EngineInputs { events: mut rx, flushes: mut flush_rx, answers: mut answer_rx } = inputs;
        let mut drain = tokio::time::interval(DRAIN_EVERY);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_check = std::time::Instant::now();
        loop {
            let flush = tokio::select! {
                _ = drain.tick() => None,
                Some(reply) = flush_rx.recv() => Some(reply),
            };
            while let Ok(answer) = answer_rx.try_recv() {
                self.contained(|engine| engine.apply(answer));
            }
            if !self.drain(&mut rx) {
                return;
            }
            if let Some(reply) = flush {
                // Everything queued before the request is applied.
                let _ = reply.send(());
                continue;
            }
            if last_check.elapsed() >= CHECK_EVERY {
                last_check = std::time::Instant::now();
                self.contained(Self::check);
            }
        }
    }

    /// Applies every queued event; false once every sender is gone.
    fn drain(&mut self, rx: &mut mpsc::Receiver<Event>) -> bool {
        loop {
            match rx.try_recv() {
                Ok(event) => self.contained(|engine| engine.apply(event)),
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
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
        let fp = s.statement.fingerprint;
        budget.offer(s.clone());
        budget.offer(s.clone());
        assert_eq!(queued(&mut rx), 1, "in flight: not offered twice");

        budget.answered(fp, &PlanOutcome::Failed("the Inspector is down".into()));
        let wait = budget.not_before[&fp].saturating_duration_since(std::time::Instant::now());
        assert!(wait <= ExplainBudget::RETRY_AFTER, "a failure is retried after {wait:?}, not ten minutes");
        budget.not_before.insert(fp, std::time::Instant::now());
        budget.offer(s.clone());
        assert_eq!(queued(&mut rx), 1, "offered again once the pause is over");

        for outcome in [PlanOutcome::Explained(Vec::new()), PlanOutcome::Skipped(SkipReason::RoleNotAssumable)] {
            budget.answered(fp, &outcome);
            budget.offer(s.clone());
            assert_eq!(queued(&mut rx), 0, "{outcome:?}: not asked again for ten minutes");
        }
    }
}
