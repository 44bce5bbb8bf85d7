//! Events from session observers to the engine, over a bounded channel that never blocks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::advice::Finding;
use crate::fingerprint::Fingerprint;
use crate::model::{BlockingReport, IndexCandidate};
pub use crate::model::{Caller, SessionOrigin, SqlState, Statement, StatementEvent};

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
    results_dropped: Arc<AtomicU64>,
}

impl EventSender {
    /// Sends `event` if there is room, else drops it and counts the drop.
    pub fn send(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// True while few enough events wait that one may carry a sampled result: results are the
    /// large part of an event (up to about 40 KiB), so a backlog (an engine that fell behind)
    /// holds at most [`MAX_QUEUED_RESULTS`] of them. A result refused is counted
    /// ([`Self::results_dropped`]); its statement is still sent, and only its use as an N+1
    /// parent across the pool is lost.
    pub fn admit_result(&self) -> bool {
        let room = self.tx.max_capacity() - self.tx.capacity() < MAX_QUEUED_RESULTS;
        if !room {
            self.results_dropped.fetch_add(1, Ordering::Relaxed);
        }
        room
    }

    /// Sampled results not sent with their statements because the analysis fell behind.
    pub fn results_dropped(&self) -> u64 {
        self.results_dropped.load(Ordering::Relaxed)
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

/// Most queued events that carry a sampled result (the engine drains the queue every 50 ms:
/// about 2,000 events at 40,000 statements a second).
pub const MAX_QUEUED_RESULTS: usize = 8192;

/// A bounded event channel holding up to `capacity` events.
pub fn channel(capacity: usize) -> (EventSender, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel(capacity);
    (EventSender { tx, dropped: Arc::default(), results_dropped: Arc::default() }, rx)
}
