//! `idle_in_transaction` and `long_transaction`: checked periodically over the live sessions,
//! so they fire while the condition holds, not only after it ends.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::advice::{Finding, Kind, Occurrence, Severity};
pub use crate::model::session_label;
use crate::sessions::{SessionActivity, SessionIdentity, SessionState};

/// Thresholds (`--idle-in-transaction`, `--long-transaction`).
#[derive(Debug, Clone)]
pub struct TransactionThresholds {
    /// Idle time inside a transaction before `idle_in_transaction` fires.
    pub idle_in_transaction: Duration,
    /// Open time before `long_transaction` fires.
    pub long_transaction: Duration,
}

impl Default for TransactionThresholds {
    fn default() -> Self {
        Self { idle_in_transaction: Duration::from_secs(2), long_transaction: Duration::from_secs(10) }
    }
}

/// Remembers which transactions were reported, so a transaction counts once and later checks
/// update it.
#[derive(Debug, Default)]
pub struct TransactionWatch {
    reported: HashSet<(Kind, u64, SystemTime)>,
}

/// The session's identity and transaction as evidence.
pub fn session_evidence(identity: &SessionIdentity, activity: &SessionActivity, now: SystemTime) -> serde_json::Value {
    json!({
        "session": identity.id,
        "pid": activity.backend_pid,
        "user": identity.user,
        "database": identity.database,
        "application_name": identity.application_name,
        "client_addr": identity.client_addr.to_string(),
        "state": activity.state,
        "transaction_ms": activity.transaction_started.map(|t| ms(now, t)),
        "statements": activity.transaction_statements.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    })
}

fn ms(now: SystemTime, since: SystemTime) -> f64 {
    (now.duration_since(since).unwrap_or_default().as_secs_f64() * 1000.0).round()
}

impl TransactionWatch {
    /// Checks every session; returns findings for those over a threshold.
    pub fn check(
        &mut self,
        sessions: &[(SessionIdentity, SessionActivity)],
        now: SystemTime,
        t: &TransactionThresholds,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut live = HashSet::new();
        for (identity, activity) in sessions {
            let Some(started) = activity.transaction_started else { continue };
            let idle =
                matches!(activity.state, SessionState::IdleInTransaction | SessionState::IdleInTransactionFailed);
            let idle_for = now.duration_since(activity.state_since).unwrap_or_default();
            let open_for = now.duration_since(started).unwrap_or_default();
            if idle && idle_for >= t.idle_in_transaction {
                let key = (Kind::IdleInTransaction, identity.id, started);
                live.insert(key);
                let occurrence = if self.reported.insert(key) { Occurrence::New } else { Occurrence::Update };
                out.push(idle_finding(identity, activity, now, idle_for, occurrence));
            }
            // Autocommit statements are transactions too, but a long one is `slow_query`.
            if open_for >= t.long_transaction && activity.transaction_statements.len() > 1 {
                let key = (Kind::LongTransaction, identity.id, started);
                live.insert(key);
                let occurrence = if self.reported.insert(key) { Occurrence::New } else { Occurrence::Update };
                out.push(long_finding(identity, activity, now, open_for, occurrence));
            }
        }
        self.reported.retain(|k| live.contains(k));
        out
    }
}

/// Merge key: the same code path (application and the statement it stopped after) merges.
fn path_key(identity: &SessionIdentity, activity: &SessionActivity) -> String {
    let last = activity.transaction_statements.last().map(|s| s.to_string()).unwrap_or_default();
    format!("{}:{}", identity.application_name, last)
}

fn idle_finding(
    identity: &SessionIdentity,
    activity: &SessionActivity,
    now: SystemTime,
    idle_for: Duration,
    occurrence: Occurrence,
) -> Finding {
    let secs = idle_for.as_secs_f64();
    let last = activity.transaction_statements.last().map(|s| format!(" after `{s}`")).unwrap_or_default();
    let failed = activity.state == SessionState::IdleInTransactionFailed;
    let mut evidence = session_evidence(identity, activity, now);
    evidence["idle_ms"] = json!((secs * 1000.0).round());
    Finding {
        kind: Kind::IdleInTransaction,
        key: path_key(identity, activity),
        occurrence,
        severity: if secs >= 30.0 { Severity::Critical } else { Severity::Warning },
        title: format!("Transaction idle for {secs:.1} s{}", if failed { " (failed, awaiting ROLLBACK)" } else { "" }),
        message: format!(
            "{} opened a transaction and has been idle inside it for {secs:.1} s{last}, without COMMIT or ROLLBACK. While \
             it waits it keeps every row lock it took (other sessions that touch those rows wait behind it) and holds back \
             VACUUM for the whole database.",
            session_label(identity, activity.backend_pid)
        ),
        suggestion: "End the transaction as soon as its work is done: don't keep it open across HTTP calls, user think-time, \
                     sleeps or slow application code; use your driver's transaction block (`with conn.transaction():`, \
                     `atomic()`, `@Transactional`) so it commits or rolls back on every path. As a safety net, set \
                     `idle_in_transaction_session_timeout` (e.g. '30s') for the application's role."
            .into(),
        fingerprints: Vec::new(),
        evidence,
    }
}

fn long_finding(
    identity: &SessionIdentity,
    activity: &SessionActivity,
    now: SystemTime,
    open_for: Duration,
    occurrence: Occurrence,
) -> Finding {
    let secs = open_for.as_secs_f64();
    // BEGIN names nothing: the first statement after it says which code path this is.
    let first = activity
        .transaction_statements
        .iter()
        .find(|s| !matches!(&***s, "BEGIN" | "START TRANSACTION"))
        .or(activity.transaction_statements.first())
        .map(|s| s.to_string())
        .unwrap_or_default();
    Finding {
        kind: Kind::LongTransaction,
        key: format!("{}:{first}", identity.application_name),
        occurrence,
        severity: if secs >= 60.0 { Severity::Critical } else { Severity::Warning },
        title: format!("Transaction open for {secs:.1} s"),
        message: format!(
            "{} has had one transaction open for {secs:.1} s ({} statements so far, the first `{first}`). Locks taken in \
             it are held until it ends, and no row version it could still see can be vacuumed anywhere in the database.",
            session_label(identity, activity.backend_pid),
            activity.transaction_statements.len()
        ),
        suggestion: "Keep transactions short: do slow work (network calls, file I/O, batch loops) outside them, and split \
                     large batch jobs into chunks that each commit (e.g. 1,000 rows per transaction)."
            .into(),
        fingerprints: Vec::new(),
        evidence: session_evidence(identity, activity, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn session(
        id: u64,
        state: SessionState,
        idle: u64,
        open: u64,
        statements: &[&str],
    ) -> (SessionIdentity, SessionActivity) {
        let now = SystemTime::now();
        let identity = SessionIdentity::sample(id);
        let activity = SessionActivity {
            state,
            state_since: now - Duration::from_millis(idle),
            statement_started: None,
            backend_pid: Some(4242),
            current_statement: statements.last().map(|s| Arc::from(*s)),
            transaction_started: Some(now - Duration::from_millis(open)),
            transaction_statements: statements.iter().map(|s| Arc::from(*s)).collect(),
            ..SessionActivity::default()
        };
        (identity, activity)
    }

    #[test]
    fn idle_in_transaction_fires_while_it_holds_and_counts_once() {
        let mut watch = TransactionWatch::default();
        let t = TransactionThresholds::default();
        let s = vec![session(1, SessionState::IdleInTransaction, 2500, 2600, &["BEGIN", "UPDATE t SET v = $1"])];
        let first = watch.check(&s, SystemTime::now(), &t);
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].kind, first[0].occurrence), (Kind::IdleInTransaction, Occurrence::New));
        assert!(first[0].evidence["idle_ms"].as_f64().unwrap() >= 2500.0);
        assert_eq!(first[0].evidence["statements"][1], "UPDATE t SET v = $1");
        let again = watch.check(&s, SystemTime::now(), &t);
        assert_eq!(again[0].occurrence, Occurrence::Update);
    }

    #[test]
    fn below_thresholds_or_active_nothing() {
        let mut watch = TransactionWatch::default();
        let t = TransactionThresholds::default();
        let s = vec![
            session(1, SessionState::IdleInTransaction, 500, 600, &["BEGIN"]),
            session(2, SessionState::Active, 5000, 5000, &["BEGIN", "SELECT pg_sleep($1)"]),
            session(3, SessionState::Active, 20_000, 20_000, &["SELECT pg_sleep($1)"]),
        ];
        assert!(
            watch.check(&s, SystemTime::now(), &t).is_empty(),
            "a single long statement is slow_query, not long_transaction"
        );
    }

    #[test]
    fn long_transaction() {
        let mut watch = TransactionWatch::default();
        let t = TransactionThresholds::default();
        let s = vec![session(1, SessionState::Active, 100, 12_000, &["BEGIN", "SELECT $1", "UPDATE t SET v = $1"])];
        let found = watch.check(&s, SystemTime::now(), &t);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, Kind::LongTransaction);
        assert!(found[0].message.contains("`SELECT $1`"), "the first statement after BEGIN names the transaction");
    }
}
