//! Observation off the forwarding path: each session queues what it forwarded in a backlog, and
//! one observation worker thread shows the queued messages to the sessions' observers.
//!
//! The relay frames each chunk (it needs the boundaries for itself) and copies the messages'
//! headers and observed bodies into its session's backlog after the chunk's write has started:
//! a few hundred nanoseconds, against microseconds to pair, time, fingerprint and check a
//! statement. The worker wakes every [`TICK`] while there is traffic and takes every queued
//! backlog at once, so no chunk wakes a thread; after [`IDLE_TICKS`] empty ticks it sleeps until
//! a relay queues something.
//!
//! Order: a session's messages are observed in the order forwarded, both directions in one
//! queue. Across sessions, one pass of the worker shows the chunks it took in the order they were
//! queued (by their time), so a parent query's result on one connection of a pool is normally
//! seen before the children it caused on another (N+1 across a pool); best effort at the edge of
//! a pass (docs/architecture.md). Whoever observes a backlog holds the session's observation lock
//! from taking its queue until it has shown it, so two batches of one session never overtake
//! each other; the worker lets each session go as soon as its own queue is shown.
//!
//! A session's end is observed by its relay ([`Backlog::finish`]), before the session leaves the
//! registry, so the admin API sees all of a session once its client has the last result.
//!
//! Bounds: a backlog holds at most [`MAX_BACKLOG_BYTES`] of bodies and [`MAX_BACKLOG_ITEMS`]
//! items (a session's worst case is about 384 KiB); one that reaches either (the worker is far
//! behind) is observed at once by its own relay, in order: nothing is dropped, the session's
//! forwarding pays for it, and `pgvisor_observed_inline_total` counts it. What the observer
//! never reads is not copied: CopyData is not queued at all, and the DataRows of a result past
//! the rows it samples are queued as a count and a byte total. A drained backlog keeps no buffer.
//!
//! Without the worker (its thread could not start, or stopped), every chunk is observed by its
//! relay at once, as before the worker existed.
//!
//! Read-your-writes for the admin API still holds: the relay numbers each chunk before writing it
//! ([`SessionEntry::forwarding`]) and whoever observes it reports the last number it has shown
//! ([`SessionEntry::observed_through`]); `Advisor::caught_up` waits for the numbers to meet.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::{Duration, Instant};

use advisor::capture::MAX_SAMPLED_ROWS;
use advisor::sessions::SessionEntry;
use advisor::sync::{lock, OwnLine};
use protocol::ScannedMessage;

use crate::counters::ProxyCounters;
use crate::logging::LogLimiter;
use crate::net::observation::SessionObservation;

/// How often the worker looks for queued backlogs while there is traffic.
pub const TICK: Duration = Duration::from_millis(5);
/// Empty ticks after which the worker sleeps until a relay queues something.
pub const IDLE_TICKS: u32 = 20;
/// Most bytes of message bodies a backlog holds before its relay observes it itself.
pub const MAX_BACKLOG_BYTES: usize = 256 * 1024;
/// Most messages and chunk marks a backlog holds before its relay observes it itself.
pub const MAX_BACKLOG_ITEMS: usize = 4096;
/// Fewest items and body bytes a backlog makes room for when it starts filling again.
const START_ITEMS: usize = 8;
const START_ARENA: usize = 256;
/// How much of each message body is observed (and so queued).
pub const OBSERVED_PREFIX: usize = 64 * 1024;
/// The tag of CopyData, in both directions: the observer ignores it, so it is not queued (a
/// COPY's data would otherwise be copied once more).
const COPY_DATA: u8 = b'd';
/// The tag of DataRow.
const DATA_ROW: u8 = b'D';

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
    Message { side: Side, tag: u8, body_len: u32, start: u32, end: u32 },
    /// Server DataRows past the rows the observer samples: how many, and their bodies' bytes.
    Rows { count: u32, bytes: u64 },
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
    /// Server DataRows since the server's last other message (the relay's count, so it knows
    /// when the observer stops sampling a result's rows).
    rows_in_a_row: u64,
    /// How many items and body bytes the last pass took: the room a queue taken empty makes
    /// when it starts filling again (one allocation a pass, not one per doubling).
    last_taken: (usize, usize),
}

impl Queued {
    fn is_full(&self) -> bool {
        self.arena.len() >= MAX_BACKLOG_BYTES || self.items.len() >= MAX_BACKLOG_ITEMS
    }

    #[inline]
    fn push_message(&mut self, side: Side, m: ScannedMessage<'_>) {
        if m.tag == COPY_DATA {
            return;
        }
        let body_len = u32::try_from(m.body_len).unwrap_or(u32::MAX);
        if side == Side::Server {
            if m.tag != DATA_ROW {
                self.rows_in_a_row = 0;
            } else {
                self.rows_in_a_row += 1;
                if self.rows_in_a_row > MAX_SAMPLED_ROWS {
                    // Counted, not sampled: only the count and the bytes matter.
                    if let Some(Item::Rows { count, bytes }) = self.items.last_mut() {
                        if *count < u32::MAX {
                            *count += 1;
                            *bytes += u64::from(body_len);
                            return;
                        }
                    }
                    self.items.push(Item::Rows { count: 1, bytes: u64::from(body_len) });
                    return;
                }
            }
        }
        let body = m.body.get(..OBSERVED_PREFIX).unwrap_or(m.body);
        let start = self.arena.len();
        self.arena.extend_from_slice(body);
        let (start, end) = (start as u32, self.arena.len() as u32);
        self.items.push(Item::Message { side, tag: m.tag, body_len, start, end });
    }

    /// Takes what is queued, leaving no buffer behind (an idle session keeps nothing) but the
    /// relay's row count and the sizes taken (those of the last pass that took anything: a
    /// relay that observed its own full backlog leaves the worker an empty queue to take).
    fn take(&mut self) -> Queued {
        let rows_in_a_row = self.rows_in_a_row;
        let last_taken = if self.items.is_empty() { self.last_taken } else { (self.items.len(), self.arena.len()) };
        std::mem::replace(self, Queued { rows_in_a_row, last_taken, ..Queued::default() })
    }

    /// Makes room, when the queue was taken empty, for what the last pass took and half again.
    fn start_filling(&mut self) {
        if self.items.capacity() == 0 {
            let (items, bytes) = self.last_taken;
            self.items.reserve((items + items / 2).clamp(START_ITEMS, MAX_BACKLOG_ITEMS));
            self.arena.reserve((bytes + bytes / 2).clamp(START_ARENA, MAX_BACKLOG_BYTES));
        }
    }

    /// The number of the last chunk queued.
    fn last_chunk(&self) -> Option<u64> {
        self.items.iter().rev().find_map(|item| match item {
            Item::Chunk { number, .. } => Some(*number),
            _ => None,
        })
    }

    /// Calls `f` with the chunk marks and messages of `items[from..]` up to the next chunk mark
    /// after the first item; returns where it stopped.
    fn replay_chunk(&self, from: usize, mut f: impl FnMut(Replayed<'_>)) -> usize {
        let mut at = from;
        while let Some(item) = self.items.get(at) {
            if at > from && matches!(item, Item::Chunk { .. }) {
                break;
            }
            match *item {
                Item::Chunk { at, number } => f(Replayed::Chunk { at, number }),
                Item::Message { side, tag, body_len, start, end } => {
                    let body = self.arena.get(start as usize..end as usize).unwrap_or_default();
                    f(Replayed::Message(side, ScannedMessage { tag, body_len: body_len as usize, body }));
                }
                Item::Rows { count, bytes } => {
                    // Each row's share of the bytes, the remainder on the last: the sum is exact.
                    let each = bytes / u64::from(count.max(1));
                    for i in 0..count {
                        let len = if i + 1 == count { bytes - each * u64::from(count - 1) } else { each };
                        let body_len = usize::try_from(len).unwrap_or(usize::MAX);
                        f(Replayed::Message(Side::Server, ScannedMessage { tag: DATA_ROW, body_len, body: &[] }));
                    }
                }
            }
            at += 1;
        }
        at
    }

    /// The time of the chunk mark at `at`, if there is one.
    fn chunk_time(&self, at: usize) -> Option<Instant> {
        match self.items.get(at) {
            Some(Item::Chunk { at, .. }) => Some(*at),
            _ => None,
        }
    }
}

/// A chunk's messages, as [`Backlog::queue`] takes them.
pub trait Messages {
    /// Why the chunk could not be scanned to its end (after the messages before the fault).
    type Error;
    /// Calls `sink` once per message, in order. Generic rather than a `dyn` callback: this
    /// runs for every message the proxy forwards.
    fn scan(self, sink: impl FnMut(ScannedMessage<'_>)) -> Result<(), Self::Error>;
}

/// One whole message.
impl Messages for ScannedMessage<'_> {
    type Error = std::convert::Infallible;

    fn scan(self, mut sink: impl FnMut(ScannedMessage<'_>)) -> Result<(), Self::Error> {
        sink(self);
        Ok(())
    }
}

/// One session's observation and the messages it still has to see.
pub struct Backlog {
    /// The session's observation. Held while a batch is shown, by the worker or the relay.
    tap: Mutex<SessionObservation>,
    /// Messages forwarded and not yet taken for observation: locked by the relay for every
    /// chunk, so kept off the lines the observation thread writes while it shows `tap`.
    queued: OwnLine<Mutex<Queued>>,
    /// On the worker's list (set by the relay that queues it, cleared by the worker).
    listed: AtomicBool,
    /// Where read-your-writes is tracked; `None` for an unobserved (replication) session.
    progress: Option<Arc<SessionEntry>>,
    /// Whether there is an observer at all: without one, nothing is queued.
    observing: bool,
    /// The session's log span (the relay's own log lines), without taking the observation lock.
    span: tracing::Span,
    worker: Arc<Shared>,
}

impl Backlog {
    /// A backlog for `tap`, observed by `worker`.
    pub fn new(tap: SessionObservation, progress: Option<Arc<SessionEntry>>, worker: &ObservationWorker) -> Arc<Self> {
        let observing = tap.is_observing();
        let span = tap.span.clone();
        Arc::new(Self {
            tap: Mutex::new(tap),
            queued: OwnLine(Mutex::new(Queued::default())),
            listed: AtomicBool::new(false),
            progress,
            observing,
            span,
            worker: worker.shared.clone(),
        })
    }

    /// The session's log span.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    fn tap(&self) -> MutexGuard<'_, SessionObservation> {
        lock(&self.tap)
    }

    /// A chunk is about to be forwarded: its number, for [`Self::queue`].
    pub fn forwarding(&self) -> u64 {
        self.progress.as_ref().map_or(0, |p| p.forwarding())
    }

    /// Queues the messages of chunk `number` (read at `at`) from `side`, for the worker.
    /// Returns what scanning them returned and their number. When the backlog is full, or
    /// there is no worker, the relay observes it at once.
    pub fn queue<M: Messages>(
        self: &Arc<Self>,
        side: Side,
        number: u64,
        at: Instant,
        chunk: M,
        stats: &ProxyCounters,
    ) -> (Result<(), M::Error>, u64) {
        let mut messages = 0;
        if !self.observing {
            let result = chunk.scan(|_| messages += 1);
            return (result, messages);
        }
        let (result, full) = {
            let mut queued = lock(&self.queued);
            queued.start_filling();
            queued.items.push(Item::Chunk { at, number });
            let result = chunk.scan(|m| {
                messages += 1;
                queued.push_message(side, m);
            });
            (result, queued.is_full())
        };
        if !self.worker.running.load(Ordering::Acquire) {
            observe_together(&[self.as_ref()]);
        } else if full {
            ProxyCounters::add(&stats.observed_inline, 1);
            observe_together(&[self.as_ref()]);
        } else if !self.listed.load(Ordering::Acquire) && !self.listed.swap(true, Ordering::AcqRel) {
            // Loaded first: a listed backlog (most chunks) costs no locked instruction.
            self.worker.list(self.clone());
        }
        (result, messages)
    }

    /// The session ended: what is still queued is observed, then the observer reports what it
    /// holds, on the relay's thread, before the session leaves the registry: an API request
    /// made after the client's last result sees all of the session (read-your-writes). If the
    /// worker is showing this session's queue just then, this waits for that to end.
    pub fn finish(&self) {
        observe_together(&[self]);
        self.tap().finish();
    }
}

/// Observes the queues of `backlogs` as one pass: each session's in order, and the chunks of all
/// of them by the time they were read.
fn observe_together(backlogs: &[&Backlog]) {
    // Each session's observation lock first, then its queue: a batch taken later is shown later.
    let mut taps: Vec<MutexGuard<'_, SessionObservation>> = Vec::with_capacity(backlogs.len());
    let mut queues: Vec<Queued> = Vec::with_capacity(backlogs.len());
    for backlog in backlogs {
        taps.push(lock(&backlog.tap));
        queues.push(lock(&backlog.queued).take());
    }
    // Reported even if showing them fails, so that the admin API never waits for them.
    let last: Vec<Option<u64>> = queues.iter().map(Queued::last_chunk).collect();
    let taps: RefCell<Vec<Option<MutexGuard<'_, SessionObservation>>>> =
        RefCell::new(taps.into_iter().map(Some).collect());
    let shown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        replay_merged(
            &queues,
            |i, queue, from| {
                let mut taps = taps.borrow_mut();
                let Some(Some(tap)) = taps.get_mut(i) else { return queue.replay_chunk(from, |_| {}) };
                let mut to = None;
                // A chunk at a time under one containment.
                tap.show(|shown| {
                    to = Some(queue.replay_chunk(from, |item| match item {
                        Replayed::Chunk { at, .. } => shown.chunk_at(at),
                        Replayed::Message(Side::Client, message) => shown.frontend(message),
                        Replayed::Message(Side::Server, message) => shown.backend(message),
                    }));
                });
                // Not shown whole (its observer failed, now or before): passed over, but what the
                // client sent is still checked for message types the protocol does not define.
                to.unwrap_or_else(|| {
                    queue.replay_chunk(from, |item| {
                        if let Replayed::Message(Side::Client, message) = item {
                            tap.unobserved_frontend(message);
                        }
                    })
                })
            },
            // A session whose queue is shown is let go at once: its relay, if it needs the
            // observation (a full backlog, its end), waits for its own queue, not the whole pass.
            |i| {
                if let Some(tap) = taps.borrow_mut().get_mut(i) {
                    tap.take();
                }
            },
        );
    }));
    if shown.is_err() {
        static WORKER_FAILED: LogLimiter = LogLimiter::per_second();
        if let Some(suppressed) = WORKER_FAILED.allow() {
            tracing::error!(suppressed, "observation failed for a batch of messages; forwarding goes on");
        }
    }
    drop(taps);
    for (backlog, last) in backlogs.iter().zip(last) {
        if let (Some(progress), Some(last)) = (&backlog.progress, last) {
            progress.observed_through(last);
        }
    }
}

/// Observes backlogs taken off the worker's list as one pass.
fn observe_listed(listed: &[Arc<Backlog>]) {
    // Cleared before observing: what a relay queues meanwhile lists the backlog again.
    for backlog in listed {
        backlog.listed.store(false, Ordering::Release);
    }
    let backlogs: Vec<&Backlog> = listed.iter().map(Arc::as_ref).collect();
    observe_together(&backlogs);
}

/// Shows each queue's chunks, those of all queues in the order of their times (each queue's own
/// order kept): `show` is given a queue's index, the queue and where a chunk of it starts, and
/// returns where the next starts ([`Queued::replay_chunk`]); `done` is called with a queue's
/// index once it has been shown whole.
fn replay_merged(queues: &[Queued], mut show: impl FnMut(usize, &Queued, usize) -> usize, mut done: impl FnMut(usize)) {
    // Every queue starts with a chunk mark (`Backlog::queue` pushes one first).
    let mut next: BinaryHeap<Reverse<(Instant, usize, usize)>> =
        queues.iter().enumerate().filter_map(|(i, q)| q.chunk_time(0).map(|t| Reverse((t, i, 0)))).collect();
    while let Some(Reverse((_, i, from))) = next.pop() {
        let Some(queue) = queues.get(i) else { continue };
        let to = show(i, queue, from);
        debug_assert!(to > from, "a chunk is at least its mark");
        match queue.chunk_time(to) {
            Some(t) => next.push(Reverse((t, i, to))),
            None => done(i),
        }
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
    /// The worker's thread runs: while it does not, relays observe their own chunks.
    running: AtomicBool,
    stop: AtomicBool,
    thread: Mutex<Option<Thread>>,
}

impl Shared {
    fn new() -> Self {
        Self {
            listed: Mutex::new(Vec::new()),
            asleep: AtomicBool::new(false),
            running: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        }
    }

    /// Puts `backlog` on the worker's list, waking the worker if it sleeps. If the worker
    /// stopped meanwhile, observes what is listed at once instead.
    fn list(&self, backlog: Arc<Backlog>) {
        lock(&self.listed).push(backlog);
        if self.asleep.load(Ordering::SeqCst) {
            self.wake();
        }
        if !self.running.load(Ordering::SeqCst) {
            self.observe_orphans();
        }
    }

    /// Observes every listed backlog here and now (the worker has stopped).
    fn observe_orphans(&self) {
        observe_listed(&std::mem::take(&mut *lock(&self.listed)));
    }

    fn wake(&self) {
        if let Some(thread) = lock(&self.thread).as_ref() {
            thread.unpark();
        }
    }
}

impl ObservationWorker {
    /// A worker without a thread: relays observe their own chunks.
    #[cfg(test)]
    fn without_thread() -> Self {
        Self { shared: Arc::new(Shared::new()) }
    }

    /// A worker that counts as running but never makes a pass: backlogs are observed only when
    /// full.
    #[cfg(test)]
    fn asleep_for_ever() -> Self {
        let shared = Shared::new();
        shared.running.store(true, Ordering::Release);
        Self { shared: Arc::new(shared) }
    }

    /// Starts the worker thread. Without a thread (the system refused one) relays observe their
    /// own chunks at once, as before the worker existed.
    pub fn start() -> Self {
        let shared = Arc::new(Shared::new());
        shared.running.store(true, Ordering::Release);
        let for_thread = shared.clone();
        match std::thread::Builder::new().name("pgvisor-observer".into()).spawn(move || run(for_thread)) {
            Ok(handle) => *lock(&shared.thread) = Some(handle.thread().clone()),
            Err(e) => {
                shared.running.store(false, Ordering::Release);
                tracing::error!(error = %e, "cannot start the observation thread: sessions observe their own traffic");
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

/// Marks the worker stopped however its thread ends, and observes the backlogs it had listed
/// (their relays observe their own chunks from then on).
struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::SeqCst);
        // What a relay lists from now on, it observes itself (`Shared::list`).
        self.0.observe_orphans();
        if !self.0.stop.load(Ordering::SeqCst) {
            tracing::error!("the observation thread stopped: sessions observe their own traffic from now on");
        }
    }
}

/// The worker's loop: every tick, observe every backlog queued since the last.
fn run(shared: Arc<Shared>) {
    let running = Running(shared);
    let shared = &running.0;
    let mut batch: Vec<Arc<Backlog>> = Vec::new();
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
            observe_listed(&batch);
            batch.clear();
        }
        std::thread::sleep(TICK);
    }
}

#[cfg(test)]
mod tests;
