//! Events from session observers to the engine, over a bounded channel that never blocks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::mpsc;
pub use tokio::sync::mpsc::error::TryRecvError;

use crate::advice::Finding;
use crate::fingerprint::Fingerprint;
use crate::limits::ObservationLimits;
use crate::model::{BlockingReport, IndexCandidate};
pub use crate::model::{Caller, SessionOrigin, SqlState, Statement, StatementEvent};
use crate::sync::lock;

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

/// The sending side: never waits, counting what it had to drop.
///
/// A mutex around a queue rather than a channel: the engine takes the whole queue at once every
/// 50 ms, so a send is a lock nobody else holds and a push (tokio's bounded channel cost about
/// ten times that per event, in its semaphore and block list).
#[derive(Debug, Clone)]
pub struct EventSender {
    queue: Arc<EventQueue>,
    dropped: Arc<AtomicU64>,
    results_dropped: Arc<AtomicU64>,
    limits: Arc<ObservationLimits>,
    /// `POST /api/reset`s so far: an observer that sees it change forgets what it reported.
    resets: Arc<AtomicU64>,
}

/// The events waiting for the engine.
#[derive(Debug)]
struct EventQueue {
    events: Mutex<VecDeque<Event>>,
    /// How many wait: those queued, and those of the receiver's last take it has not finished
    /// (grown under the lock by senders, shrunk by the receiver when it takes again). The bound
    /// is on this, so the queue and the take together never hold more than `capacity`.
    len: AtomicUsize,
    capacity: usize,
}

impl EventSender {
    /// Sends `event` if there is room, else drops it and counts the drop.
    pub fn send(&self, event: Event) {
        let mut events = lock(&self.queue.events);
        if self.queue.len.load(Ordering::Relaxed) >= self.queue.capacity {
            drop(events);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        events.push_back(event);
        self.queue.len.fetch_add(1, Ordering::Relaxed);
    }

    /// True while few enough events wait that one may carry a sampled result: results are the
    /// large part of an event (up to about 40 KiB), so a backlog (an engine that fell behind)
    /// holds at most [`MAX_QUEUED_RESULTS`] of them. A result refused is counted
    /// ([`Self::results_dropped`]); its statement is still sent, and only its use as an N+1
    /// parent across the pool is lost.
    pub fn admit_result(&self) -> bool {
        let room = self.queue.len.load(Ordering::Relaxed) < MAX_QUEUED_RESULTS;
        if !room {
            self.results_dropped.fetch_add(1, Ordering::Relaxed);
        }
        room
    }

    /// Sampled results not sent with their statements because the analysis fell behind.
    pub fn results_dropped(&self) -> u64 {
        self.results_dropped.load(Ordering::Relaxed)
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The observers' per-session bounds, counted as sessions reach them: shared, like the
    /// drops, by every observer sending here.
    pub fn limits(&self) -> &ObservationLimits {
        &self.limits
    }

    /// How many resets there have been: an observer that sees the number change lets go of
    /// what it remembers having reported, so a finding can be raised again after a reset.
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::Relaxed)
    }

    /// A reset happened (statistics and advice forgotten).
    pub(crate) fn count_reset(&self) {
        self.resets.fetch_add(1, Ordering::Relaxed);
    }
}

/// The engine's side of the event queue.
#[derive(Debug)]
pub struct EventReceiver {
    queue: Arc<EventQueue>,
    /// Events taken from the queue and not yet received.
    taken: VecDeque<Event>,
    /// How many the last take held (still counted in the queue's `len` until the next take).
    last_take: usize,
}

/// Capacity the receiver keeps for its next take: a burst's larger buffer is let go (events are
/// a few hundred bytes; a kept buffer of thousands would outweigh many idle sessions).
const KEPT_EVENTS: usize = 64;

impl EventReceiver {
    /// The next event, taking every waiting one at once when none is left from the last take.
    /// `Disconnected` once every sender is gone and nothing is left.
    pub fn try_recv(&mut self) -> Result<Event, TryRecvError> {
        if let Some(event) = self.taken.pop_front() {
            return Ok(event);
        }
        if self.taken.capacity() > KEPT_EVENTS {
            self.taken = VecDeque::new();
        }
        // Read before taking: once it is alone, no sender is left to queue anything after.
        let alone = Arc::strong_count(&self.queue) == 1;
        {
            let mut events = lock(&self.queue.events);
            std::mem::swap(&mut *events, &mut self.taken);
            // The last take is all received: it no longer counts; this one does.
            self.queue.len.fetch_sub(self.last_take, Ordering::Relaxed);
            self.last_take = self.taken.len();
        }
        match self.taken.pop_front() {
            Some(event) => Ok(event),
            None if alone => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
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

/// A bounded event queue holding up to `capacity` events.
pub fn channel(capacity: usize) -> (EventSender, EventReceiver) {
    let queue = Arc::new(EventQueue { events: Mutex::new(VecDeque::new()), len: AtomicUsize::new(0), capacity });
    let sender = EventSender {
        queue: queue.clone(),
        dropped: Arc::default(),
        results_dropped: Arc::default(),
        limits: Arc::default(),
        resets: Arc::default(),
    };
    (sender, EventReceiver { queue, taken: VecDeque::new(), last_take: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(session: u64) -> Event {
        Event::SessionClosed { session }
    }

    fn session(event: Event) -> u64 {
        match event {
            Event::SessionClosed { session } => session,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn events_arrive_in_order_and_a_full_queue_drops_and_counts() {
        let (tx, mut rx) = channel(3);
        for i in 0..5 {
            tx.send(closed(i));
        }
        assert_eq!(tx.dropped(), 2);
        assert_eq!(rx.try_recv().map(session), Ok(0));
        // Taken at once, but not all received: the take still counts against the bound.
        tx.send(closed(5));
        assert_eq!(tx.dropped(), 3);
        let rest: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok()).map(session).collect();
        assert_eq!(rest, vec![1, 2]);
        // All received: room for three again.
        for i in 6..10 {
            tx.send(closed(i));
        }
        assert_eq!(tx.dropped(), 4);
        let rest: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok()).map(session).collect();
        assert_eq!(rest, vec![6, 7, 8]);
        assert_eq!(rx.try_recv().err(), Some(TryRecvError::Empty), "a sender is left");
        let clone = tx.clone();
        drop(tx);
        clone.send(closed(6));
        drop(clone);
        assert_eq!(rx.try_recv().map(session), Ok(6), "what the last sender queued comes first");
        assert_eq!(rx.try_recv().err(), Some(TryRecvError::Disconnected));
    }

    #[test]
    fn results_are_admitted_while_few_events_wait() {
        let (tx, mut rx) = channel(MAX_QUEUED_RESULTS + 10);
        assert!(tx.admit_result());
        for i in 0..MAX_QUEUED_RESULTS as u64 {
            tx.send(closed(i));
        }
        assert!(!tx.admit_result());
        assert_eq!(tx.results_dropped(), 1);
        assert_eq!(rx.try_recv().map(session), Ok(0));
        assert!(!tx.admit_result(), "taken, not yet received");
        while rx.try_recv().is_ok() {}
        assert!(tx.admit_result(), "the engine received them all");
    }
}
