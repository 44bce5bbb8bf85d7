//! Observation off the forwarding path: each session queues what it forwarded in a backlog, and
//! one observation worker thread shows the queued messages to the sessions' observers.
//!
//! The relay frames each chunk (it needs the boundaries for itself) and copies the messages'
//! headers and observed bodies into its session's backlog after the chunk's write has started:
//! a few hundred nanoseconds, against microseconds to pair, time, fingerprint and check a
//! statement. The worker wakes every [`TICK`] while there is traffic and takes every queued
//! backlog at once, so no chunk wakes a thread; after [`IDLE_TICKS`] empty ticks it sleeps until
//! a relay queues something. With two CPUs and eight busy clients this moves the observer's work
//! from the one thread that forwards every session's bytes onto CPU time that was idle.
//!
//! Nothing is lost and nothing waits: a backlog that reaches [`MAX_BACKLOG_BYTES`] or
//! [`MAX_BACKLOG_ITEMS`] (the worker is far behind) is observed at once by the relay itself, in
//! order, which costs that session the time observation takes and is counted
//! (`pgvisor_observed_inline_total`). A session's messages are observed in the order forwarded,
//! both directions in one queue: whoever observes a backlog takes the session's observation lock
//! before taking the queued messages, so two batches never overtake each other.
//!
//! Read-your-writes for the admin API still holds: the relay numbers each chunk before writing it
//! ([`SessionEntry::forwarding`]) and the observer's side reports the last number it has shown
//! ([`SessionEntry::observed_through`]); `Advisor::caught_up` waits for the numbers to meet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::{Duration, Instant};

use advisor::sessions::SessionEntry;
use protocol::ScannedMessage;

use crate::counters::ProxyCounters;
use crate::net::observation::SessionObservation;

/// How often the worker looks for queued backlogs while there is traffic.
pub const TICK: Duration = Duration::from_millis(1);
/// Empty ticks after which the worker sleeps until a relay queues something.
pub const IDLE_TICKS: u32 = 100;
/// Most bytes of message bodies a backlog holds before its relay observes it itself.
pub const MAX_BACKLOG_BYTES: usize = 1024 * 1024;
/// Most messages and chunk marks a backlog holds before its relay observes it itself.
pub const MAX_BACKLOG_ITEMS: usize = 16 * 1024;
/// Capacity a drained backlog buffer keeps for the next batch; a larger one is freed.
const KEPT_CAPACITY: usize = 64 * 1024;
/// The tag of CopyData, in both directions: its body is never read by the observer, so it is
/// not copied (a COPY's data would otherwise be copied once more).
const COPY_DATA: u8 = b'd';

/// Which side sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client (frontend messages).
    Client,
    /// The server (backend messages).
    Server,
}

/// What a backlog holds, in forwarding order.
#[derive(Debug, Clone, Copy)]
enum Item {
    /// A chunk of bytes was read at `at`; it is chunk number `number` of the session.
    Chunk { at: Instant, number: u64 },
    /// A message: its header and where its observed body sits in the arena.
    Message { side: Side, tag: u8, body_len: usize, start: usize, end: usize },
}

/// A queued item as shown again.
#[derive(Debug, PartialEq, Eq)]
enum Replayed<'a> {
    Chunk { at: Instant, number: u64 },
    Message(Side, ScannedMessage<'a>),
}

/// Queued messages and the bodies they point into.
#[derive(Debug, Default)]
struct Queued {
    items: Vec<Item>,
    arena: Vec<u8>,
}

impl Queued {
    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn is_full(&self) -> bool {
        self.arena.len() >= MAX_BACKLOG_BYTES || self.items.len() >= MAX_BACKLOG_ITEMS
    }

    fn push_message(&mut self, side: Side, m: ScannedMessage<'_>) {
        let body = if m.tag == COPY_DATA { &[][..] } else { m.body };
        let start = self.arena.len();
        self.arena.extend_from_slice(body);
        self.items.push(Item::Message { side, tag: m.tag, body_len: m.body_len, start, end: self.arena.len() });
    }

    /// Calls `f` with each chunk mark and message, in the order queued.
    fn replay(&self, mut f: impl FnMut(Replayed<'_>)) {
        for item in &self.items {
            match *item {
                Item::Chunk { at, number } => f(Replayed::Chunk { at, number }),
                Item::Message { side, tag, body_len, start, end } => {
                    let body = self.arena.get(start..end).unwrap_or_default();
                    f(Replayed::Message(side, ScannedMessage { tag, body_len, body }));
                }
            }
        }
    }

    /// Empties it for reuse, letting a buffer that grew for a burst go.
    fn clear(&mut self) {
        self.items.clear();
        self.arena.clear();
        if self.arena.capacity() > KEPT_CAPACITY {
            self.arena = Vec::new();
        }
        if self.items.capacity() > KEPT_CAPACITY / 16 {
            self.items = Vec::new();
        }
    }
}

/// One session's observation and the messages it still has to see.
pub struct Backlog {
    /// The session's observation. Held while a batch is shown, by the worker or the relay.
    tap: Mutex<SessionObservation>,
    /// Messages forwarded and not yet taken for observation.
    queued: Mutex<Queued>,
    /// On the worker's list (set by the relay that queues it, cleared by the worker).
    listed: AtomicBool,
    /// Where read-your-writes is tracked; `None` for an unobserved (replication) session.
    progress: Option<Arc<SessionEntry>>,
    /// Whether there is an observer at all: without one, nothing is queued.
    observing: bool,
    worker: Arc<Shared>,
}

impl Backlog {
    /// A backlog for `tap`, observed by `worker`.
    pub fn new(tap: SessionObservation, progress: Option<Arc<SessionEntry>>, worker: &ObservationWorker) -> Arc<Self> {
        let observing = tap.is_observing();
        Arc::new(Self {
            tap: Mutex::new(tap),
            queued: Mutex::new(Queued::default()),
            listed: AtomicBool::new(false),
            progress,
            observing,
            worker: worker.shared.clone(),
        })
    }

    /// The session's observation, for what the relay does with it directly (its log span).
    pub fn tap(&self) -> MutexGuard<'_, SessionObservation> {
        lock(&self.tap)
    }

    /// A chunk is about to be forwarded: its number, for [`Self::queue`].
    pub fn forwarding(&self) -> u64 {
        self.progress.as_ref().map_or(0, |p| p.forwarding())
    }

    /// Queues the messages `scan` finds in chunk `number` (read at `at`) from `side`, for the
    /// worker; `scan` calls its argument once per message, in order. Returns `scan`'s result
    /// and the number of messages. When the backlog is full, the relay observes it at once.
    pub fn queue<E>(
        self: &Arc<Self>,
        side: Side,
        number: u64,
        at: Instant,
        scan: impl FnOnce(&mut dyn FnMut(ScannedMessage<'_>)) -> Result<(), E>,
        stats: &ProxyCounters,
    ) -> (Result<(), E>, u64) {
        let mut messages = 0;
        if !self.observing {
            let result = scan(&mut |_| messages += 1);
            return (result, messages);
        }
        let (result, full) = {
            let mut queued = lock(&self.queued);
            queued.items.push(Item::Chunk { at, number });
            let result = scan(&mut |m| {
                messages += 1;
                queued.push_message(side, m);
            });
            (result, queued.is_full())
        };
        if full {
            ProxyCounters::add(&stats.observed_inline, 1);
            self.observe(&mut Queued::default());
        } else if !self.listed.swap(true, Ordering::AcqRel) {
            self.worker.list(self.clone());
        }
        (result, messages)
    }

    /// Shows everything queued to the observer, in order; `spare` is an empty buffer to swap in.
    fn observe(&self, spare: &mut Queued) {
        // The observation lock first: a batch taken later is shown later.
        let mut tap = lock(&self.tap);
        std::mem::swap(&mut *lock(&self.queued), spare);
        if spare.is_empty() {
            return;
        }
        let mut last = None;
        spare.replay(|item| match item {
            Replayed::Chunk { at, number } => {
                tap.chunk_at(at);
                last = Some(number);
            }
            Replayed::Message(Side::Client, message) => tap.frontend(message),
            Replayed::Message(Side::Server, message) => tap.backend(message),
        });
        drop(tap);
        spare.clear();
        if let (Some(progress), Some(last)) = (&self.progress, last) {
            progress.observed_through(last);
        }
    }

    /// The session ended: observes what is still queued, then lets the observer report what it
    /// holds.
    pub fn finish(&self) {
        self.observe(&mut Queued::default());
        self.tap().finish();
    }
}

/// The thread that observes every session's backlog. Stops when dropped, after a last pass.
pub struct ObservationWorker {
    shared: Arc<Shared>,
}

/// What relays and the worker share.
struct Shared {
    /// Backlogs queued since the worker last looked.
    listed: Mutex<Vec<Arc<Backlog>>>,
    /// The worker sleeps until unparked (no traffic for a while).
    asleep: AtomicBool,
    stop: AtomicBool,
    thread: Mutex<Option<Thread>>,
}

impl Shared {
    /// Puts `backlog` on the worker's list, waking the worker if it sleeps.
    fn list(&self, backlog: Arc<Backlog>) {
        lock(&self.listed).push(backlog);
        if self.asleep.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    fn wake(&self) {
        if let Some(thread) = lock(&self.thread).as_ref() {
            thread.unpark();
        }
    }
}

impl ObservationWorker {
    /// A worker whose thread never runs: backlogs are observed only when full or at their end.
    #[cfg(test)]
    fn stopped() -> Self {
        let shared = Shared {
            listed: Mutex::new(Vec::new()),
            asleep: AtomicBool::new(false),
            stop: AtomicBool::new(true),
            thread: Mutex::new(None),
        };
        Self { shared: Arc::new(shared) }
    }

    /// Starts the worker thread. Without a thread (the system refused one) relays observe their
    /// backlogs themselves once full, and sessions at their end: slower, nothing lost.
    pub fn start() -> Self {
        let shared = Arc::new(Shared {
            listed: Mutex::new(Vec::new()),
            asleep: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let for_thread = shared.clone();
        match std::thread::Builder::new().name("pgvisor-observer".into()).spawn(move || run(for_thread)) {
            Ok(handle) => *lock(&shared.thread) = Some(handle.thread().clone()),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the observation thread: sessions observe their own traffic")
            }
        }
        Self { shared }
    }
}

impl Drop for ObservationWorker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake();
    }
}

/// The worker's loop: every tick, observe every backlog queued since the last.
fn run(shared: Arc<Shared>) {
    let mut spare = Queued::default();
    let mut batch = Vec::new();
    let mut idle = 0;
    loop {
        std::mem::swap(&mut *lock(&shared.listed), &mut batch);
        if batch.is_empty() {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            idle += 1;
            if idle >= IDLE_TICKS {
                idle = 0;
                shared.asleep.store(true, Ordering::SeqCst);
                // A relay that listed a backlog before `asleep` was set is seen here; one that
                // lists after it sees `asleep` and unparks, and park keeps that token.
                if lock(&shared.listed).is_empty() && !shared.stop.load(Ordering::SeqCst) {
                    std::thread::park();
                }
                shared.asleep.store(false, Ordering::SeqCst);
                continue;
            }
        } else {
            idle = 0;
        }
        for backlog in batch.drain(..) {
            // Cleared before observing: what a relay queues meanwhile lists the backlog again.
            backlog.listed.store(false, Ordering::Release);
            // The observer contains its own panics; this is for the worker's own code, so that
            // one session's bad batch cannot stop observation for every other session.
            let observed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| backlog.observe(&mut spare)));
            if observed.is_err() {
                spare = Queued::default();
            }
        }
        std::thread::sleep(TICK);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::SystemTime;

    use advisor::engine::{Advisor, AdvisorConfig};
    use advisor::observer::SessionObserver;
    use advisor::sessions::{SessionIdentity, SessionState};
    use proptest::prelude::*;

    use super::*;

    /// A backlog observed by `worker`, for session 1 of a new advisor.
    fn observed_backlog(worker: &ObservationWorker) -> (Arc<Backlog>, Arc<Advisor>) {
        let (advisor, _inputs) = Advisor::new(AdvisorConfig::default());
        let entry = advisor.sessions.open(SessionIdentity {
            id: 1,
            user: "app".into(),
            database: "app".into(),
            application_name: "test".into(),
            client_addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
            tls: false,
            connected_at: SystemTime::now(),
        });
        let observer =
            SessionObserver::new(1, entry.clone(), advisor.events.clone(), advisor.config.n_plus_one.clone());
        let tap = SessionObservation::observing(1, observer, advisor.clone());
        (Backlog::new(tap, Some(entry), worker), advisor)
    }

    /// Queues `messages` from `side` as one chunk; returns the chunk's number.
    fn send(backlog: &Arc<Backlog>, side: Side, messages: &[(u8, &[u8])], stats: &ProxyCounters) -> u64 {
        let number = backlog.forwarding();
        let scan = |sink: &mut dyn FnMut(ScannedMessage<'_>)| -> Result<(), ()> {
            for &(tag, body) in messages {
                sink(ScannedMessage { tag, body_len: body.len(), body });
            }
            Ok(())
        };
        let (result, count) = backlog.queue(side, number, Instant::now(), scan, stats);
        assert_eq!((result, count), (Ok(()), messages.len() as u64));
        number
    }

    fn state(advisor: &Advisor) -> (SessionState, Option<Arc<str>>) {
        let (_, activity) = advisor.sessions.get(1).expect("session 1 is open");
        (activity.state, activity.transaction_statements.last().cloned())
    }

    #[test]
    fn the_worker_observes_both_directions_in_order_and_reports_progress() {
        let worker = ObservationWorker::start();
        let (backlog, advisor) = observed_backlog(&worker);
        let stats = ProxyCounters::default();
        send(&backlog, Side::Client, &[(b'Q', b"BEGIN\0")], &stats);
        send(&backlog, Side::Server, &[(b'C', b"BEGIN\0"), (b'Z', b"T")], &stats);
        send(&backlog, Side::Client, &[(b'Q', b"SELECT 1\0")], &stats);
        let last = send(&backlog, Side::Server, &[(b'C', b"SELECT 1\0"), (b'Z', b"T")], &stats);
        assert_eq!(last, 4);
        let deadline = Instant::now() + Duration::from_secs(5);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        while state(&advisor).0 != SessionState::IdleInTransaction && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // What the API waits for: every chunk announced has been observed.
        runtime.block_on(advisor.sessions.wait_observed(Duration::from_secs(5)));
        let (state, last_statement) = state(&advisor);
        assert_eq!(state, SessionState::IdleInTransaction, "the worker observed the session");
        assert_eq!(last_statement.as_deref(), Some("SELECT $1"));
        assert_eq!(ProxyCounters::get(&stats.observed_inline), 0, "no backlog filled up");
    }

    #[test]
    fn a_full_backlog_is_observed_by_its_relay_and_nothing_is_lost() {
        let worker = ObservationWorker::stopped();
        let (backlog, advisor) = observed_backlog(&worker);
        let stats = ProxyCounters::default();
        send(&backlog, Side::Client, &[(b'Q', b"BEGIN\0")], &stats);
        send(&backlog, Side::Server, &[(b'C', b"BEGIN\0"), (b'Z', b"T")], &stats);
        assert_eq!(state(&advisor).0, SessionState::Idle, "nothing observed yet: the worker does not run");
        // ParameterStatus messages the observer does not keep, until the backlog is full.
        let filler: Vec<(u8, &[u8])> = vec![(b'S', b"x\0y\0"); MAX_BACKLOG_ITEMS];
        send(&backlog, Side::Server, &filler, &stats);
        assert_eq!(ProxyCounters::get(&stats.observed_inline), 1);
        assert_eq!(state(&advisor).0, SessionState::IdleInTransaction, "observed in order, on the relay");
        // What is queued after that waits for the worker, or for the session's end.
        send(&backlog, Side::Client, &[(b'Q', b"COMMIT\0")], &stats);
        send(&backlog, Side::Server, &[(b'C', b"COMMIT\0"), (b'Z', b"I")], &stats);
        assert_eq!(state(&advisor).0, SessionState::IdleInTransaction);
        backlog.finish();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(advisor.sessions.wait_observed(Duration::from_secs(5)));
        assert_eq!(state(&advisor).0, SessionState::Idle, "the session's end observed the rest");
    }

    #[test]
    fn an_unobserved_session_queues_nothing() {
        let worker = ObservationWorker::stopped();
        let backlog = Backlog::new(SessionObservation::default(), None, &worker);
        let stats = ProxyCounters::default();
        let number = send(&backlog, Side::Client, &[(b'Q', b"START_REPLICATION\0")], &stats);
        assert_eq!(number, 0, "no progress to report");
        assert!(lock(&backlog.queued).is_empty());
        assert!(lock(&worker.shared.listed).is_empty());
    }

    fn message() -> impl Strategy<Value = (bool, u8, Vec<u8>, usize)> {
        (any::<bool>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300), 0usize..100_000)
    }

    proptest! {
        /// Whatever the messages (any tag, any bytes, bodies cut to a prefix), they come back as
        /// queued, in order, with their chunk marks; only CopyData bodies are left out.
        #[test]
        fn queued_messages_replay_as_given(chunks in proptest::collection::vec(proptest::collection::vec(message(), 0..20), 0..20)) {
            let mut queued = Queued::default();
            let at = Instant::now();
            let mut expected = Vec::new();
            for (number, chunk) in chunks.iter().enumerate() {
                queued.items.push(Item::Chunk { at, number: number as u64 });
                expected.push((None, number as u64, 0, Vec::new(), 0));
                for (client, tag, body, cut) in chunk {
                    let side = if *client { Side::Client } else { Side::Server };
                    let body_len = body.len() + cut;
                    queued.push_message(side, ScannedMessage { tag: *tag, body_len, body });
                    let kept = if *tag == COPY_DATA { Vec::new() } else { body.clone() };
                    expected.push((Some(side), 0, *tag, kept, body_len));
                }
            }
            let mut replayed = Vec::new();
            queued.replay(|item| match item {
                Replayed::Chunk { at: when, number } => {
                    assert_eq!(when, at);
                    replayed.push((None, number, 0, Vec::new(), 0));
                }
                Replayed::Message(side, m) => replayed.push((Some(side), 0, m.tag, m.body.to_vec(), m.body_len)),
            });
            prop_assert_eq!(replayed, expected);
            queued.clear();
            prop_assert!(queued.is_empty());
            prop_assert!(queued.arena.capacity() <= KEPT_CAPACITY);
        }
    }
}
