//! Live sessions: who each one is and what it is doing, as its observer publishes it.
//!
//! A session's observer is the only writer of its activity. It keeps its own record and publishes
//! every change into one of two slots, taking a slot only with `try_lock`; the engine and the
//! admin API read the published slots one reader at a time, so at most one slot is ever held by a
//! reader and the observer always finds the other free. The forwarding path therefore never waits
//! for a reader, and a change costs no allocation: the slot's lists are updated in place.
//! (docs/architecture.md, "Session activity".)

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, SystemTime};

use dashmap::DashMap;
use protocol::backend::TransactionStatus;
use serde::Serialize;

use crate::sync::{lock, OwnLine};

/// Cap on statements remembered for the current transaction of one session.
pub const MAX_TRANSACTION_STATEMENTS: usize = 50;

/// Who a session is.
#[derive(Debug, Clone, Serialize)]
pub struct SessionIdentity {
    /// pgvisor's session id.
    pub id: u64,
    /// Role name from the startup packet.
    pub user: String,
    /// Database name.
    pub database: String,
    /// application_name from the startup packet (updated from ParameterStatus).
    pub application_name: String,
    /// Client address.
    pub client_addr: SocketAddr,
    /// True when the client leg is TLS.
    pub tls: bool,
    /// When the client connected.
    pub connected_at: SystemTime,
}

/// What a session is doing (names as pg_stat_activity's `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Waiting for a command, no transaction open.
    Idle,
    /// A command is running.
    Active,
    /// Waiting for a command inside a transaction.
    IdleInTransaction,
    /// Waiting inside a failed transaction.
    IdleInTransactionFailed,
}

/// The changing part of a session, written by its observer.
#[derive(Debug, Clone)]
pub struct SessionActivity {
    /// Current state.
    pub state: SessionState,
    /// When the state last changed.
    pub state_since: SystemTime,
    /// When the running statement started (when active).
    pub statement_started: Option<SystemTime>,
    /// Backend process id from BackendKeyData.
    pub backend_pid: Option<u32>,
    /// Normalised text of the running (or last) statement.
    pub current_statement: Option<Arc<str>>,
    /// When the open transaction started.
    pub transaction_started: Option<SystemTime>,
    /// Statements of the open transaction, in order (capped).
    pub transaction_statements: Vec<Arc<str>>,
    /// Statements of the transaction that ended last, and when it ended: a deadlock's survivor
    /// often commits before the advice is written.
    pub previous_transaction: Vec<Arc<str>>,
    /// When the previous transaction ended.
    pub previous_transaction_ended: Option<SystemTime>,
    /// The client sent Terminate: the session is ending (its backend exits, then its connection
    /// closes), and the admin API no longer lists it.
    pub terminated: bool,
}

impl Default for SessionActivity {
    fn default() -> Self {
        Self {
            state: SessionState::Idle,
            state_since: SystemTime::now(),
            statement_started: None,
            backend_pid: None,
            current_statement: None,
            transaction_started: None,
            transaction_statements: Vec::new(),
            previous_transaction: Vec::new(),
            previous_transaction_ended: None,
            terminated: false,
        }
    }
}

impl SessionActivity {
    /// The client sent Terminate.
    pub fn terminate(&mut self) {
        self.terminated = true;
    }

    /// A request was sent at `now`: `statement` (when pgvisor knows which) runs; `status` is the
    /// transaction status the last ReadyForQuery reported.
    pub fn statement_started(&mut self, statement: Option<&Arc<str>>, status: TransactionStatus, now: SystemTime) {
        if self.state != SessionState::Active {
            self.state = SessionState::Active;
            self.state_since = now;
        }
        // A new request is in flight even when its statement is unknown (a portal pgvisor did not
        // see bound): never leave the previous statement's text and start time in place, or a
        // lock wait would be pinned on it.
        self.current_statement = statement.cloned();
        self.statement_started = Some(now);
        if status == TransactionStatus::Idle && self.transaction_started.is_none() {
            // A transaction may be starting; ReadyForQuery confirms or clears it.
            self.transaction_started = Some(now);
        }
    }

    /// A statement finished: it belongs to the open transaction (an autocommit statement is a
    /// transaction of its own until ReadyForQuery).
    pub fn statement_finished(&mut self, text: &Arc<str>) {
        if self.transaction_statements.len() < MAX_TRANSACTION_STATEMENTS {
            self.transaction_statements.push(text.clone());
        }
    }

    /// ReadyForQuery at `now`: the session is in `state`, the transaction status went from
    /// `previous` to `status`, and `done` when no other request awaits its response.
    pub fn ready(
        &mut self,
        state: SessionState,
        status: TransactionStatus,
        previous: TransactionStatus,
        done: bool,
        now: SystemTime,
    ) {
        if self.state != state {
            self.state = state;
            self.state_since = now;
        }
        if done {
            self.statement_started = None;
        }
        match status {
            TransactionStatus::Idle => {
                self.transaction_started = None;
                if previous != TransactionStatus::Idle {
                    // Swapped, not moved: both lists keep their capacity, so a transaction costs
                    // no allocation once a session has run one.
                    std::mem::swap(&mut self.previous_transaction, &mut self.transaction_statements);
                    self.previous_transaction_ended = Some(now);
                }
                self.transaction_statements.clear();
            }
            _ if previous == TransactionStatus::Idle && self.transaction_started.is_none() => {
                self.transaction_started = Some(now);
            }
            _ => {}
        }
    }
}

/// A session as readers see it.
type Published = (SessionIdentity, SessionActivity);

/// The copy of a session's record that readers see: two slots, the latest and a spare.
#[derive(Debug)]
struct Publication {
    slots: [Mutex<Published>; 2],
    /// Which slot is up to date. Only the observer changes it.
    latest: AtomicUsize,
    /// The latest slot missed a change (both slots were held, which readers taking turns rule
    /// out): the next change copies the whole record instead.
    behind: AtomicBool,
}

impl Publication {
    fn new(record: &Published) -> Self {
        // The spare is read only once a change made it the latest, by copying the whole record
        // into it: until then it holds nothing on the heap.
        let (identity, _) = record;
        let spare = SessionIdentity {
            id: identity.id,
            user: String::new(),
            database: String::new(),
            application_name: String::new(),
            client_addr: identity.client_addr,
            tls: identity.tls,
            connected_at: identity.connected_at,
        };
        Self {
            slots: [Mutex::new(record.clone()), Mutex::new((spare, SessionActivity::default()))],
            latest: AtomicUsize::new(0),
            behind: AtomicBool::new(false),
        }
    }

    /// The observer's side: applies `change` to the latest slot, or when a reader holds it,
    /// copies the record (`whole`) into the other slot and makes that the latest. Never waits.
    fn apply(&self, change: impl Fn(&mut Published), whole: impl Fn(&mut Published)) {
        let latest = self.latest.load(Ordering::Relaxed);
        if let Some(mut slot) = try_lock(&self.slots[latest]) {
            // Read before it is written: nearly always it is false, and a plain load leaves the
            // cache line shared.
            if self.behind.load(Ordering::Relaxed) && self.behind.swap(false, Ordering::Relaxed) {
                whole(&mut slot);
            } else {
                change(&mut slot);
            }
        } else if let Some(mut slot) = try_lock(&self.slots[1 - latest]) {
            whole(&mut slot);
            drop(slot);
            self.behind.store(false, Ordering::Relaxed);
            self.latest.store(1 - latest, Ordering::Release);
        } else {
            self.behind.store(true, Ordering::Relaxed);
        }
    }

    /// A reader's side (holding the registry's reader turn): a copy of the latest slot.
    fn read(&self) -> Published {
        lock(&self.slots[self.latest.load(Ordering::Acquire)]).clone()
    }
}

/// Locks `m` if nobody holds it (recovering it from a panicked holder).
fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// One live session.
///
/// Its observer keeps the session's record (who it is, what it is doing: a [`SessionRecord`])
/// and publishes each change it makes through [`Self::update`] and [`Self::update_identity`].
/// Everyone else reads the published copy ([`SessionRegistry::snapshot`]); nothing the
/// observer holds is locked by anyone else.
#[derive(Debug)]
pub struct SessionEntry {
    published: Publication,
    /// Chunks of bytes announced for forwarding, counted from 1. Only this session's relay writes
    /// it (no shared cache line on the forwarding path); the API reads it to wait for
    /// observations of bytes a client may already have (read-your-writes).
    forwarded: OwnLine<AtomicU64>,
    /// The highest chunk number observed: every chunk up to it has been shown to the observer.
    observed: AtomicU64,
}

/// A session's record, as its observer keeps it.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// Who the session is (application_name may change).
    pub identity: SessionIdentity,
    /// What it is doing.
    pub activity: SessionActivity,
}

impl SessionEntry {
    fn new(identity: &SessionIdentity) -> Self {
        let record = (identity.clone(), SessionActivity::default());
        Self {
            published: Publication::new(&record),
            forwarded: OwnLine(AtomicU64::new(0)),
            observed: AtomicU64::new(0),
        }
    }

    /// The session as published: what its observer starts from.
    pub fn record(&self) -> SessionRecord {
        let (identity, activity) = self.published.read();
        SessionRecord { identity, activity }
    }

    /// The observer changes the session's activity: `change` is applied to its `record` and to
    /// the published copy (the same change, so both stay equal).
    pub fn update(&self, record: &mut SessionRecord, change: impl Fn(&mut SessionActivity)) {
        change(&mut record.activity);
        self.published.apply(
            |(_, published)| change(published),
            |(identity, published)| {
                identity.clone_from(&record.identity);
                published.clone_from(&record.activity);
            },
        );
    }

    /// The observer changes the session's identity (its application_name).
    pub fn update_identity(&self, record: &mut SessionRecord, change: impl Fn(&mut SessionIdentity)) {
        change(&mut record.identity);
        self.published.apply(
            |(published, _)| change(published),
            |(published_identity, published)| {
                published_identity.clone_from(&record.identity);
                published.clone_from(&record.activity);
            },
        );
    }

    /// A chunk of bytes is about to be forwarded (called by the session's relay task only):
    /// returns its number, which [`Self::observed_through`] gives back once the observer has
    /// seen it.
    pub fn forwarding(&self) -> u64 {
        // One writer (the session's relay): a load and a store, no locked read-modify-write.
        let chunk = self.forwarded.load(Ordering::Relaxed) + 1;
        self.forwarded.store(chunk, Ordering::Release);
        chunk
    }

    /// The observer has seen every chunk up to number `chunk`.
    pub fn observed_through(&self, chunk: u64) {
        self.observed.fetch_max(chunk, Ordering::AcqRel);
    }

    /// True when the observer has seen every chunk announced so far.
    pub fn all_observed(&self) -> bool {
        self.unobserved().is_none()
    }

    /// The last chunk announced, when the observer has not seen it yet.
    fn unobserved(&self) -> Option<u64> {
        let forwarded = self.forwarded.load(Ordering::Acquire);
        (self.observed.load(Ordering::Acquire) < forwarded).then_some(forwarded)
    }
}

/// Sessions closed last, kept briefly for advice about events they took part in.
const RECENTLY_CLOSED: usize = 32;

/// All live sessions; a session leaves when its connection closes.
#[derive(Debug, Default)]
pub struct SessionRegistry {
    sessions: DashMap<u64, Arc<SessionEntry>, foldhash::fast::RandomState>,
    recently_closed: Mutex<VecDeque<Published>>,
    /// Readers of the published activity take turns, so a reader holds at most one slot of a
    /// session at a time and its observer always finds the other one free.
    reader_turn: Mutex<()>,
}

impl SessionRegistry {
    /// Adds a session and returns its entry.
    pub fn open(&self, identity: SessionIdentity) -> Arc<SessionEntry> {
        let entry = Arc::new(SessionEntry::new(&identity));
        self.sessions.insert(identity.id, entry.clone());
        entry
    }

    /// Removes a session.
    pub fn close(&self, id: u64) {
        if let Some((_, entry)) = self.sessions.remove(&id) {
            let last = {
                let _turn = lock(&self.reader_turn);
                entry.published.read()
            };
            let mut recent = lock(&self.recently_closed);
            if recent.len() >= RECENTLY_CLOSED {
                recent.pop_front();
            }
            recent.push_back(last);
        }
    }

    /// Live sessions followed by the recently closed ones.
    pub fn snapshot_with_recent(&self) -> Vec<(SessionIdentity, SessionActivity)> {
        let mut all = self.snapshot();
        all.extend(lock(&self.recently_closed).iter().rev().cloned());
        all
    }

    /// Copies of every live session as published, ordered by id.
    pub fn snapshot(&self) -> Vec<(SessionIdentity, SessionActivity)> {
        let mut all: Vec<Published> = {
            let _turn = lock(&self.reader_turn);
            self.sessions.iter().map(|e| e.published.read()).collect()
        };
        all.sort_by_key(|(i, _)| i.id);
        all
    }

    /// True while session `id` is open (the registry's map only: no slot is read).
    pub fn contains(&self, id: u64) -> bool {
        self.sessions.contains_key(&id)
    }

    /// A copy of live session `id` as published.
    pub fn get(&self, id: u64) -> Option<(SessionIdentity, SessionActivity)> {
        let entry = self.sessions.get(&id)?.value().clone();
        let _turn = lock(&self.reader_turn);
        Some(entry.published.read())
    }

    /// Waits, at most `limit`, until every session that was between forwarding bytes and
    /// observing them has observed them.
    pub async fn wait_observed(&self, limit: Duration) {
        let busy: Vec<(Arc<SessionEntry>, u64)> =
            self.sessions.iter().filter_map(|e| e.unobserved().map(|chunk| (e.value().clone(), chunk))).collect();
        if busy.is_empty() {
            return;
        }
        let deadline = tokio::time::Instant::now() + limit;
        for (entry, chunk) in busy {
            while entry.observed.load(Ordering::Acquire) < chunk && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when no session is open.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
impl SessionIdentity {
    /// Session `id` of user "app" on database "shop", app `app<id>`, from 127.0.0.1:<5000+id>,
    /// connected now: for unit tests.
    pub(crate) fn sample(id: u64) -> Self {
        Self {
            id,
            user: "app".into(),
            database: "shop".into(),
            application_name: format!("app{id}"),
            client_addr: SocketAddr::from(([127, 0, 0, 1], 5000 + id as u16)),
            tls: false,
            connected_at: SystemTime::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TransactionStatus::{Idle, InTransaction};

    fn texts(list: &[Arc<str>]) -> Vec<&str> {
        list.iter().map(|s| &**s).collect()
    }

    /// One statement as the observer reports it, answered at once: the transaction status goes
    /// from `before` to `after`.
    fn run(
        entry: &SessionEntry,
        record: &mut SessionRecord,
        sql: &str,
        before: TransactionStatus,
        after: TransactionStatus,
        now: SystemTime,
    ) {
        let text: Arc<str> = Arc::from(sql);
        entry.update(record, |a| a.statement_started(Some(&text), before, now));
        entry.update(record, |a| a.statement_finished(&text));
        let state = if after == Idle { SessionState::Idle } else { SessionState::IdleInTransaction };
        entry.update(record, |a| a.ready(state, after, before, true, now));
    }

    #[test]
    fn readers_see_what_the_observer_recorded() {
        let registry = SessionRegistry::default();
        let entry = registry.open(SessionIdentity::sample(1));
        let mut record = entry.record();
        let now = SystemTime::now();
        run(&entry, &mut record, "BEGIN", Idle, InTransaction, now);
        run(&entry, &mut record, "UPDATE t SET v = $1", InTransaction, InTransaction, now);
        let (_, a) = registry.get(1).expect("open");
        assert_eq!(a.state, SessionState::IdleInTransaction);
        assert_eq!(texts(&a.transaction_statements), vec!["BEGIN", "UPDATE t SET v = $1"]);
        assert_eq!(a.transaction_started, Some(now));

        run(&entry, &mut record, "COMMIT", InTransaction, Idle, now);
        entry.update_identity(&mut record, |i| i.application_name = "renamed".into());
        let (i, a) = registry.snapshot().pop().expect("listed");
        assert_eq!((i.application_name.as_str(), a.state), ("renamed", SessionState::Idle));
        assert!(a.transaction_statements.is_empty() && a.transaction_started.is_none());
        assert_eq!(texts(&a.previous_transaction), vec!["BEGIN", "UPDATE t SET v = $1", "COMMIT"]);
        assert_eq!(a.previous_transaction_ended, Some(now));

        registry.close(1);
        assert!(registry.get(1).is_none() && registry.is_empty());
        let recent = registry.snapshot_with_recent();
        assert_eq!(recent.len(), 1, "the closed session is kept for advice about it");
        assert_eq!(texts(&recent[0].1.previous_transaction).len(), 3);
    }

    /// The observer never waits for a reader: with the latest slot held, a change goes to the
    /// other slot, which readers see from then on, and later changes are applied there.
    #[test]
    fn a_change_while_a_reader_holds_the_slot_does_not_wait_and_is_not_lost() {
        let registry = SessionRegistry::default();
        let entry = registry.open(SessionIdentity::sample(1));
        let mut record = entry.record();
        let now = SystemTime::now();
        let text: Arc<str> = "UPDATE t SET v = $1".into();
        let held = lock(&entry.published.slots[entry.published.latest.load(Ordering::Acquire)]);
        entry.update(&mut record, |a| a.statement_started(Some(&text), Idle, now));
        drop(held);
        let (_, a) = registry.get(1).expect("open");
        assert_eq!((a.state, a.current_statement.as_deref()), (SessionState::Active, Some(&*text)));

        entry.update(&mut record, |a| a.statement_finished(&text));
        entry.update(&mut record, |a| a.ready(SessionState::IdleInTransaction, InTransaction, Idle, true, now));
        let (_, published) = registry.get(1).expect("open");
        assert_eq!(published.state, SessionState::IdleInTransaction);
        assert_eq!(texts(&published.transaction_statements), texts(&record.activity.transaction_statements));
        assert_eq!(published.statement_started, None);
    }

    #[test]
    fn the_transaction_list_is_capped() {
        let mut a = SessionActivity::default();
        let text: Arc<str> = "SELECT $1".into();
        for _ in 0..MAX_TRANSACTION_STATEMENTS + 5 {
            a.statement_finished(&text);
        }
        assert_eq!(a.transaction_statements.len(), MAX_TRANSACTION_STATEMENTS);
    }
}
