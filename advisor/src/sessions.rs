//! Live sessions: identity from the startup packet, state kept current by each observer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use dashmap::DashMap;
use serde::Serialize;

use crate::sync::lock;

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
        }
    }
}

/// One live session.
#[derive(Debug)]
pub struct SessionEntry {
    /// Identity (application_name may change).
    pub identity: Mutex<SessionIdentity>,
    /// Activity.
    pub activity: Mutex<SessionActivity>,
    /// Odd while bytes are forwarded but not yet observed; each step adds one. Only this session
    /// writes it (no shared cache line on the forwarding path); the API reads it to wait for
    /// observations of bytes a client may already have (read-your-writes).
    observing: AtomicU64,
}

impl SessionEntry {
    /// Bytes are about to be forwarded; [`Self::observed`] follows once the observer saw them.
    pub fn forwarding(&self) {
        self.observing.fetch_add(1, Ordering::Release);
    }

    /// The observer has seen what [`Self::forwarding`] announced.
    pub fn observed(&self) {
        self.observing.fetch_add(1, Ordering::Release);
    }
}

/// Sessions closed last, kept briefly for advice about events they took part in.
const RECENTLY_CLOSED: usize = 32;

/// All live sessions; a session leaves when its connection closes.
#[derive(Debug, Default)]
pub struct SessionRegistry {
    sessions: DashMap<u64, Arc<SessionEntry>>,
    recently_closed: Mutex<std::collections::VecDeque<(SessionIdentity, SessionActivity)>>,
}

impl SessionRegistry {
    /// Adds a session and returns its entry.
    pub fn open(&self, identity: SessionIdentity) -> Arc<SessionEntry> {
        let id = identity.id;
        let entry = Arc::new(SessionEntry {
            identity: Mutex::new(identity),
            activity: Mutex::default(),
            observing: AtomicU64::new(0),
        });
        self.sessions.insert(id, entry.clone());
        entry
    }

    /// Removes a session.
    pub fn close(&self, id: u64) {
        if let Some((_, entry)) = self.sessions.remove(&id) {
            let mut recent = lock(&self.recently_closed);
            if recent.len() >= RECENTLY_CLOSED {
                recent.pop_front();
            }
            recent.push_back((lock(&entry.identity).clone(), lock(&entry.activity).clone()));
        }
    }

    /// Live sessions followed by the recently closed ones.
    pub fn snapshot_with_recent(&self) -> Vec<(SessionIdentity, SessionActivity)> {
        let mut all = self.snapshot();
        all.extend(lock(&self.recently_closed).iter().rev().cloned());
        all
    }

    /// Copies of every live session, ordered by id.
    pub fn snapshot(&self) -> Vec<(SessionIdentity, SessionActivity)> {
        let mut all: Vec<_> =
            self.sessions.iter().map(|e| (lock(&e.identity).clone(), lock(&e.activity).clone())).collect();
        all.sort_by_key(|(i, _)| i.id);
        all
    }

    /// Waits, at most `limit`, until every session that was between forwarding bytes and
    /// observing them has observed them.
    pub async fn wait_observed(&self, limit: Duration) {
        let busy: Vec<(Arc<SessionEntry>, u64)> = self
            .sessions
            .iter()
            .filter_map(|e| {
                let seq = e.observing.load(Ordering::Acquire);
                (seq % 2 == 1).then(|| (e.value().clone(), seq))
            })
            .collect();
        if busy.is_empty() {
            return;
        }
        let deadline = tokio::time::Instant::now() + limit;
        for (entry, seq) in busy {
            while entry.observing.load(Ordering::Acquire) == seq && tokio::time::Instant::now() < deadline {
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
