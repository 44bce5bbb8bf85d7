//! `lock_hazard_ddl`: DDL seen on the wire that takes a strong lock on a table other sessions
//! used in the last few minutes, in one of the forms migration linters (squawk) warn about, or
//! without a `lock_timeout`. The evidence is what a linter cannot know: who used the table, how
//! long the statement ran, and whom it blocked (from the lock contention machinery).

mod classify;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use foldhash::HashMap;

use serde_json::{json, Value};

pub use classify::{classify, Ddl, Hazard, TableLock};

use crate::advice::{Finding, Kind, Occurrence, Severity};
use crate::fingerprint::Fingerprint;
use crate::model::{session_label, BlockingReport, Statement, StatementEvent};
use crate::sessions::{SessionActivity, SessionIdentity, SessionState};
use crate::sql_shape;

/// A table counts as in use when another session touched it this recently.
pub const RECENT_USE: Duration = Duration::from_secs(5 * 60);
/// A hazardous DDL that ran this long (or waited this long for its lock) is critical.
pub const SLOW_DDL: Duration = Duration::from_secs(1);
/// A DDL without lock_timeout that took this long probably queued for its lock.
const QUEUED_DDL: Duration = Duration::from_millis(200);
/// Most tables whose recent users are remembered; past it the least recently used is forgotten.
const MAX_TABLES: usize = 2_000;
/// Most (session, fingerprint) users remembered per table.
const MAX_USERS_PER_TABLE: usize = 8;
/// Most sessions whose lock_timeout and blocked waiters are remembered.
const MAX_SESSIONS: usize = 10_000;
/// Most blocked waiters listed per DDL.
const MAX_BLOCKED: usize = 16;
/// Most fingerprints whose table list is cached.
const MAX_CACHED_SHAPES: usize = 5_000;

/// One session's recent use of a table through one statement shape.
#[derive(Debug, Clone)]
struct TableUse {
    session: u64,
    fingerprint: Fingerprint,
    statement: Arc<str>,
    last_seen: SystemTime,
    calls: u64,
}

/// What pgvisor knows about `lock_timeout` in one session (from SET/RESET statements only).
#[derive(Debug, Clone, Copy, Default)]
struct LockTimeout {
    session: bool,
    transaction: bool,
}

/// A waiter the Inspector found behind a session's DDL.
#[derive(Debug, Clone)]
struct Blocked {
    /// The DDL text the blocker was running or holding.
    ddl: Arc<str>,
    evidence: Value,
}

/// A DDL finding already reported, updated when its transaction turns out to block others.
#[derive(Debug, Clone)]
struct Reported {
    finding: Finding,
    statement: Arc<str>,
    ddl: Ddl,
    duration: Duration,
    blocked: Vec<Value>,
}

/// The parts of a finished statement this detector reads.
#[derive(Debug, Clone, Copy)]
pub struct Executed<'a> {
    /// pgvisor's session id.
    pub session: u64,
    /// What ran.
    pub statement: &'a Arc<Statement>,
    /// How long it took.
    pub duration: Duration,
    /// True when it ended in an error.
    pub failed: bool,
    /// When it finished.
    pub finished_at: SystemTime,
}

impl<'a> From<&'a StatementEvent> for Executed<'a> {
    fn from(s: &'a StatementEvent) -> Self {
        Self {
            session: s.session,
            statement: &s.statement,
            duration: s.duration,
            failed: s.error.is_some(),
            finished_at: s.finished_at,
        }
    }
}

/// Tracks table use and lock_timeout per session, and reports hazardous DDL.
#[derive(Debug, Default)]
pub struct DdlWatch {
    tables: HashMap<String, Vec<TableUse>>,
    shapes: HashMap<Fingerprint, Box<[String]>>,
    lock_timeouts: HashMap<u64, LockTimeout>,
    blocked: HashMap<u64, Vec<Blocked>>,
    reported: HashMap<u64, Reported>,
}

impl DdlWatch {
    /// Applies one finished statement; returns the finding when it is hazardous DDL on a table
    /// in use. `sessions` is called only then.
    pub fn statement<F>(&mut self, s: Executed<'_>, sessions: F) -> Option<Finding>
    where
        F: FnOnce() -> Vec<(SessionIdentity, SessionActivity)>,
    {
        let text = &s.statement.text;
        let verb = s.statement.shape.verb;
        self.lock_timeout_statement(s.session, verb, text);
        let Some(ddl) = matches!(verb, "CREATE" | "ALTER").then(|| classify(text)).flatten() else {
            if !s.failed {
                self.record_use(s);
            }
            return None;
        };
        let blocked: Vec<Value> = self
            .blocked
            .remove(&s.session)
            .unwrap_or_default()
            .into_iter()
            .filter(|b| b.ddl == *text)
            .map(|b| b.evidence)
            .collect();
        if s.failed {
            // It did not take effect (lock_timeout doing its job, or a plain mistake).
            return None;
        }
        let users = self.recent_users(&ddl.table, s.session, s.finished_at);
        let mut hazards = ddl.hazards.clone();
        let timeout = self.lock_timeouts.get(&s.session).is_some_and(|t| t.session || t.transaction);
        if ddl.lock.is_strong() && !timeout {
            hazards.push(Hazard::NoLockTimeout);
        }
        if users.is_empty() || hazards.is_empty() {
            return None;
        }
        let sessions = sessions();
        let me = sessions.iter().find(|(i, _)| i.id == s.session);
        let ddl = Ddl { hazards, ..ddl };
        let finding = finding(&s, me, &ddl, timeout, &users, &sessions, &blocked);
        self.remember_reported(
            s.session,
            Reported {
                finding: finding.clone(),
                statement: s.statement.text.clone(),
                ddl,
                duration: s.duration,
                blocked,
            },
        );
        Some(finding)
    }

    /// The Inspector found `waiter` (running `statement`) blocked: when a blocker is running a
    /// DDL, or holds one it already ran in its open transaction, the DDL's advice names the waiter.
    pub fn blocking(
        &mut self,
        waiter: u64,
        statement: &str,
        report: &BlockingReport,
        sessions: &[(SessionIdentity, SessionActivity)],
    ) -> Option<Finding> {
        let waiter_evidence = sessions.iter().find(|(i, _)| i.id == waiter).map(|(i, a)| {
            json!({
                "session": i.id,
                "pid": a.backend_pid,
                "label": session_label(i, a.backend_pid),
                "statement": statement,
            })
        })?;
        let mut update = None;
        for pid in report.blockers.iter().chain(&report.roots) {
            let Some((blocker, activity)) = sessions.iter().find(|(_, a)| a.backend_pid == Some(*pid)) else {
                continue;
            };
            if let Some(current) = activity
                .current_statement
                .as_ref()
                .filter(|s| activity.state == SessionState::Active && classify(s).is_some())
            {
                let list = self.blocked.entry(blocker.id).or_default();
                if list.len() < MAX_BLOCKED && !list.iter().any(|b| b.evidence["session"] == waiter) {
                    list.push(Blocked { ddl: current.clone(), evidence: waiter_evidence.clone() });
                }
                if self.blocked.len() > MAX_SESSIONS {
                    self.blocked.clear();
                }
                continue;
            }
            let Some(r) = self.reported.get_mut(&blocker.id) else { continue };
            let holds = activity.transaction_statements.contains(&r.statement);
            if !holds || r.blocked.len() >= MAX_BLOCKED || r.blocked.iter().any(|b| b["session"] == waiter) {
                continue;
            }
            r.blocked.push(waiter_evidence.clone());
            let mut f = r.finding.clone();
            f.occurrence = Occurrence::Update;
            f.severity = severity(&r.ddl.hazards, r.duration, r.blocked.len());
            f.evidence["blocked_sessions"] = Value::Array(r.blocked.clone());
            f.message = with_blocked(&r.finding.message, &r.blocked);
            r.finding = f.clone();
            update = Some(f);
        }
        update
    }

    /// Forgets everything about sessions that are gone (called with the live session ids).
    pub fn retain_sessions(&mut self, live: impl Fn(u64) -> bool) {
        self.lock_timeouts.retain(|id, _| live(*id));
        self.blocked.retain(|id, _| live(*id));
        self.reported.retain(|id, _| live(*id));
    }

    fn remember_reported(&mut self, session: u64, r: Reported) {
        if self.reported.len() >= MAX_SESSIONS {
            self.reported.clear();
        }
        self.reported.insert(session, r);
    }

    /// `verb` is the statement's [`crate::model::Shape::verb`], read once per statement.
    fn lock_timeout_statement(&mut self, session: u64, verb: &str, text: &str) {
        // Runs for every statement: the verb alone rules out almost all of them.
        if !matches!(verb, "SET" | "RESET" | "DISCARD" | "COMMIT" | "END" | "ABORT" | "PREPARE" | "ROLLBACK") {
            return;
        }
        let entry = if matches!(verb, "COMMIT" | "END" | "ABORT") {
            // The end of every transaction (pgbench's END): decided by the verb alone, without
            // upper-casing the statement.
            Some((None, Some(false)))
        } else {
            let upper = text.to_ascii_uppercase();
            let words: Vec<&str> = upper.split_whitespace().take(5).collect();
            match words.as_slice() {
                ["SET", "LOCK_TIMEOUT", _, value, ..] | ["SET", "SESSION", "LOCK_TIMEOUT", _, value] => {
                    Some((Some(*value != "DEFAULT"), None))
                }
                ["SET", "LOCAL", "LOCK_TIMEOUT", _, ..] => Some((None, Some(words.get(4) != Some(&"DEFAULT")))),
                ["RESET", "LOCK_TIMEOUT"] | ["RESET", "ALL"] | ["DISCARD", "ALL"] => Some((Some(false), Some(false))),
                ["PREPARE", "TRANSACTION", ..] => Some((None, Some(false))),
                // ROLLBACK [WORK | TRANSACTION] [AND [NO] CHAIN] ends the transaction; ROLLBACK ...
                // TO a savepoint does not.
                ["ROLLBACK"] | ["ROLLBACK", "AND", ..] | ["ROLLBACK", "PREPARED", ..] => Some((None, Some(false))),
                ["ROLLBACK", "WORK" | "TRANSACTION"] | ["ROLLBACK", "WORK" | "TRANSACTION", "AND", ..] => {
                    Some((None, Some(false)))
                }
                _ => None,
            }
        };
        let Some((session_level, transaction_level)) = entry else { return };
        if session_level.is_none() && transaction_level == Some(false) && !self.lock_timeouts.contains_key(&session) {
            // A transaction ended in a session that never set a lock_timeout: nothing to forget.
            return;
        }
        if self.lock_timeouts.len() >= MAX_SESSIONS && !self.lock_timeouts.contains_key(&session) {
            self.lock_timeouts.clear();
        }
        let t = self.lock_timeouts.entry(session).or_default();
        if let Some(v) = session_level {
            t.session = v;
        }
        if let Some(v) = transaction_level {
            t.transaction = v;
        }
    }

    fn record_use(&mut self, s: Executed<'_>) {
        let fp = s.statement.fingerprint;
        // The cached shape is borrowed while the table map changes: no reference count to move.
        let Self { shapes, tables: used, .. } = self;
        if shapes.len() >= MAX_CACHED_SHAPES && !shapes.contains_key(&fp) {
            shapes.clear();
        }
        let tables = shapes.entry(fp).or_insert_with(|| sql_shape::tables(&s.statement.text).into());
        for table in tables.iter() {
            // One lookup for a table seen before: this runs for every statement. The name is
            // cloned only for a new table.
            let uses = match used.get_mut(table.as_str()) {
                Some(uses) => uses,
                None => {
                    if used.len() >= MAX_TABLES {
                        forget_least_recent_table(used);
                    }
                    used.entry(table.clone()).or_default()
                }
            };
            match uses.iter_mut().find(|u| u.session == s.session && u.fingerprint == fp) {
                Some(u) => {
                    u.last_seen = s.finished_at;
                    u.calls += 1;
                }
                None => {
                    if uses.len() >= MAX_USERS_PER_TABLE {
                        if let Some(oldest) = uses.iter().enumerate().min_by_key(|(_, u)| u.last_seen).map(|(i, _)| i) {
                            uses.swap_remove(oldest);
                        }
                    }
                    uses.push(TableUse {
                        session: s.session,
                        fingerprint: fp,
                        statement: s.statement.text.clone(),
                        last_seen: s.finished_at,
                        calls: 1,
                    });
                }
            }
        }
    }

    /// Other sessions' uses of `table` within [`RECENT_USE`] of `now`, most recent first.
    fn recent_users(&mut self, table: &str, session: u64, now: SystemTime) -> Vec<TableUse> {
        let Some(uses) = self.tables.get_mut(table) else { return Vec::new() };
        uses.retain(|u| now.duration_since(u.last_seen).unwrap_or_default() < RECENT_USE);
        let mut out: Vec<TableUse> = uses.iter().filter(|u| u.session != session).cloned().collect();
        out.sort_by_key(|u| std::cmp::Reverse(u.last_seen));
        out
    }
}

fn severity(hazards: &[Hazard], duration: Duration, blocked: usize) -> Severity {
    let only_timeout = hazards.iter().all(|h| *h == Hazard::NoLockTimeout);
    match (only_timeout, blocked > 0) {
        (_, true) => Severity::Critical,
        (false, false) if duration >= SLOW_DDL => Severity::Critical,
        (false, false) => Severity::Warning,
        (true, false) if duration >= QUEUED_DDL => Severity::Warning,
        (true, false) => Severity::Info,
    }
}

fn with_blocked(message: &str, blocked: &[Value]) -> String {
    let base = message.split(" While it held the lock,").next().unwrap_or(message);
    if blocked.is_empty() {
        return base.to_string();
    }
    let names: Vec<String> = blocked
        .iter()
        .map(|b| format!("{} (`{}`)", b["label"].as_str().unwrap_or("?"), b["statement"].as_str().unwrap_or("?")))
        .collect();
    let sessions = if names.len() == 1 { "session" } else { "sessions" };
    format!(
        "{base} While it held the lock, PostgreSQL reported {} {sessions} waiting for it: {}.",
        names.len(),
        names.join(", ")
    )
}

/// What each hazard does, in a sentence, and its safe form.
fn explain(h: Hazard, ddl: &Ddl, statement: &str) -> (String, String) {
    let t = &ddl.table;
    match h {
        Hazard::IndexWithoutConcurrently => (
            format!("CREATE INDEX without CONCURRENTLY holds a SHARE lock on `{t}` for the whole build: every INSERT, UPDATE and DELETE on it waits until the index is done."),
            format!("Build it without blocking writes: `{}` (it cannot run inside a transaction block; if it fails, drop the INVALID index it leaves and retry).", statement.replacen("INDEX", "INDEX CONCURRENTLY", 1)),
        ),
        Hazard::UniqueConstraintIndex => (
            format!("Adding a UNIQUE or PRIMARY KEY constraint builds its index while holding ACCESS EXCLUSIVE on `{t}`: even reads wait."),
            format!("Build the index first with CREATE UNIQUE INDEX CONCURRENTLY, then attach it: ALTER TABLE {t} ADD CONSTRAINT ... UNIQUE USING INDEX <index>."),
        ),
        Hazard::VolatileDefault => (
            format!("Adding a column whose default is volatile (or serial, identity, stored generated) rewrites all of `{t}` under ACCESS EXCLUSIVE: reads and writes wait for the rewrite."),
            "Add the column without a default (or with a constant one, which PostgreSQL 11+ stores without a rewrite), then backfill existing rows in batches of a few thousand (UPDATE ... WHERE id BETWEEN ...), and set the default for new rows with ALTER COLUMN ... SET DEFAULT.".into(),
        ),
        Hazard::ColumnType => (
            format!("Changing a column's type usually rewrites `{t}` and rebuilds its indexes under ACCESS EXCLUSIVE (only a few changes, such as widening a varchar, are catalog-only)."),
            "Add a new column of the new type, backfill it in batches, keep both in sync (a trigger, or the application writing both), then switch reads and drop the old column in a later release.".into(),
        ),
        Hazard::SetNotNull => (
            format!("SET NOT NULL scans all of `{t}` under ACCESS EXCLUSIVE to check for NULLs."),
            format!("Prove it first without blocking: ALTER TABLE {t} ADD CONSTRAINT <name> CHECK (<column> IS NOT NULL) NOT VALID; then ALTER TABLE {t} VALIDATE CONSTRAINT <name>; then SET NOT NULL (PostgreSQL 12+ uses the valid constraint and skips the scan) and drop the CHECK."),
        ),
        Hazard::ForeignKeyValidated => (
            format!("Adding a FOREIGN KEY validates every row of `{t}` while writes to it and to the referenced table wait."),
            format!("Add it as NOT VALID (new rows are checked at once, the lock is brief), then ALTER TABLE {t} VALIDATE CONSTRAINT <name>, which checks old rows without blocking writes."),
        ),
        Hazard::CheckValidated => (
            format!("Adding a CHECK constraint scans all of `{t}` under ACCESS EXCLUSIVE."),
            format!("Add it as NOT VALID, then ALTER TABLE {t} VALIDATE CONSTRAINT <name>, which scans under a lock that lets reads and writes go on."),
        ),
        Hazard::DropColumn => (
            format!("Dropping a column is quick, but the sessions still querying `{t}` with it start failing the moment it commits."),
            "First deploy code that no longer reads or writes the column (for ORMs, mark it ignored), then drop it in a later release.".into(),
        ),
        Hazard::RenameColumn => (
            format!("Renaming a column is quick, but every query on `{t}` that uses the old name fails from that moment on."),
            "Add the new column (or a view) alongside, move the code over, then drop the old name in a later release.".into(),
        ),
        Hazard::NoLockTimeout => (
            format!("It asked for {} lock on `{t}` without a lock_timeout: if any transaction holds even a weak lock on `{t}`, this statement waits, and every query on `{t}` queues behind it.", with_article(ddl.lock)),
            "Run `SET lock_timeout = '2s'` (or SET LOCAL inside the migration's transaction) first, and retry the DDL a few times when it fails with 55P03 (lock_not_available).".into(),
        ),
    }
}

fn finding(
    s: &Executed<'_>,
    me: Option<&(SessionIdentity, SessionActivity)>,
    ddl: &Ddl,
    lock_timeout: bool,
    users: &[TableUse],
    sessions: &[(SessionIdentity, SessionActivity)],
    blocked: &[Value],
) -> Finding {
    let text = &s.statement.text;
    let label = |id: u64| match sessions.iter().find(|(i, _)| i.id == id) {
        Some((i, a)) => session_label(i, a.backend_pid),
        None => format!("Session {id} (closed)"),
    };
    let ddl_session = me.map_or_else(|| label(s.session), |(i, a)| session_label(i, a.backend_pid));
    let (why, fixes): (Vec<String>, Vec<String>) = ddl.hazards.iter().map(|h| explain(*h, ddl, text)).unzip();
    let message = format!(
        "{ddl_session} ran `{text}`, which takes {} lock on `{}`, a table {} used in the last {} minutes \
         ({}). It took {:.2} s. {}",
        with_article(ddl.lock),
        ddl.table,
        match distinct_sessions(users) {
            1 => "another session".to_string(),
            n => format!("{n} other sessions"),
        },
        RECENT_USE.as_secs() / 60,
        users.iter().take(3).map(|u| format!("{}: `{}`", label(u.session), u.statement)).collect::<Vec<_>>().join("; "),
        s.duration.as_secs_f64(),
        why.join(" ")
    );
    let evidence = json!({
        "statement": text.as_ref(),
        "table": ddl.table,
        "lock": ddl.lock.as_str(),
        "hazards": ddl.hazards.iter().map(|h| h.as_str()).collect::<Vec<_>>(),
        "lock_timeout_set": lock_timeout,
        "duration_ms": (s.duration.as_secs_f64() * 1000.0).round(),
        "session": me.map(|(i, a)| json!({
            "session": i.id, "pid": a.backend_pid, "application_name": i.application_name,
            "client_addr": i.client_addr.to_string(),
        })),
        "recent_users": users.iter().map(|u| json!({
            "session": u.session,
            "label": label(u.session),
            "fingerprint": u.fingerprint,
            "statement": u.statement.as_ref(),
            "calls": u.calls,
            "last_seen_ago_ms": (s.finished_at.duration_since(u.last_seen).unwrap_or_default().as_secs_f64() * 1000.0).round(),
        })).collect::<Vec<_>>(),
        "blocked_sessions": blocked,
    });
    let main = ddl.hazards.iter().find(|h| **h != Hazard::NoLockTimeout).unwrap_or(&Hazard::NoLockTimeout);
    Finding {
        kind: Kind::LockHazardDdl,
        key: s.statement.fingerprint.to_string(),
        occurrence: Occurrence::New,
        severity: severity(&ddl.hazards, s.duration, blocked.len()),
        title: format!("{} (`{}` is in use)", title_of(*main), ddl.table),
        message: with_blocked(&message, blocked),
        suggestion: fixes.join("\n"),
        fingerprints: vec![s.statement.fingerprint],
        evidence,
    }
}

fn distinct_sessions(users: &[TableUse]) -> usize {
    let mut ids: Vec<u64> = users.iter().map(|u| u.session).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

/// "a SHARE lock", "an ACCESS EXCLUSIVE lock" (without the word lock).
fn with_article(lock: TableLock) -> String {
    let article = if lock == TableLock::AccessExclusive { "an" } else { "a" };
    format!("{article} {}", lock.as_str())
}

fn title_of(h: Hazard) -> &'static str {
    match h {
        Hazard::IndexWithoutConcurrently => "CREATE INDEX without CONCURRENTLY",
        Hazard::UniqueConstraintIndex => "Unique constraint built under ACCESS EXCLUSIVE",
        Hazard::VolatileDefault => "New column with a volatile default rewrites the table",
        Hazard::ColumnType => "Column type change rewrites the table",
        Hazard::SetNotNull => "SET NOT NULL scans the table",
        Hazard::ForeignKeyValidated => "Foreign key added without NOT VALID",
        Hazard::CheckValidated => "CHECK constraint added without NOT VALID",
        Hazard::DropColumn => "Column dropped",
        Hazard::RenameColumn => "Column renamed",
        Hazard::NoLockTimeout => "DDL without lock_timeout",
    }
}

/// Forgets the table used least recently (the table map is full).
fn forget_least_recent_table(tables: &mut HashMap<String, Vec<TableUse>>) {
    let last = |uses: &Vec<TableUse>| uses.iter().map(|u| u.last_seen).max();
    if let Some(oldest) = tables.iter().min_by_key(|(_, u)| last(u)).map(|(t, _)| t.clone()) {
        tables.remove(&oldest);
    }
}
#[cfg(test)]
mod tests;
