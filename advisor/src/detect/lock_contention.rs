//! `lock_contention`: a statement waited on a lock; name the root blocker and what its open
//! transaction ran (what only a proxy knows), from the Inspector's answer or, without one, from
//! the wire alone (sessions with open transactions that wrote to the waiter's tables).
//!
//! This file writes the findings; [`LockWatch`] (`lock_contention/watch.rs`) follows the waits
//! the engine feeds it and asks the Inspector about them.

mod watch;

use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::advice::{Finding, Kind, Occurrence, Severity};
use crate::detect::transactions::session_evidence;
use crate::model::session_label;
pub use crate::model::BlockingReport;
use crate::sessions::{SessionActivity, SessionIdentity, SessionState};
use crate::sql_shape;
pub use watch::{InspectRequest, LockWatch};

/// Builds the finding for a waiter. `waited` is the wait so far, or the final wait when the
/// statement has finished.
pub fn finding(
    waiter: (&SessionIdentity, &SessionActivity),
    statement: &str,
    report: Option<&BlockingReport>,
    sessions: &[(SessionIdentity, SessionActivity)],
    waited: Duration,
    occurrence: Occurrence,
    now: SystemTime,
) -> Finding {
    let (w_identity, w_activity) = waiter;
    let blockers = blockers(w_identity.id, statement, report, sessions);
    let confirmed = report.is_some();
    let wait_ms = (waited.as_secs_f64() * 1000.0).round();
    let root = blockers.first();
    let blocker_text = match root {
        Some((identity, activity)) => {
            let open = activity
                .transaction_started
                .map(|t| {
                    format!(
                        " has had a transaction open for {:.1} s",
                        now.duration_since(t).unwrap_or_default().as_secs_f64()
                    )
                })
                .unwrap_or_default();
            let idle =
                if matches!(activity.state, SessionState::IdleInTransaction | SessionState::IdleInTransactionFailed) {
                    ", is idle in it,"
                } else {
                    ""
                };
            let ran: Vec<String> = activity.transaction_statements.iter().map(|s| format!("`{s}`")).collect();
            let running = match (&activity.current_statement, activity.state) {
                (Some(s), SessionState::Active) => format!(", and is running `{s}`"),
                _ => String::new(),
            };
            format!(
                "{}, which{open}{idle} and ran {} in it{running}",
                session_label(identity, activity.backend_pid),
                if ran.is_empty() { "nothing pgvisor saw yet".to_string() } else { ran.join(", then ") }
            )
        }
        None => match report {
            Some(r) => {
                format!(
                    "{}, not connected through pgvisor",
                    backends(if r.roots.is_empty() { &r.blockers } else { &r.roots })
                )
            }
            None => "a session pgvisor could not identify".into(),
        },
    };
    let verb = if occurrence == Occurrence::Update && w_activity.state != SessionState::Active {
        "waited"
    } else {
        "has waited"
    };
    let message = format!(
        "`{statement}` in {} {verb} {:.1} s for a lock. {} {blocker_text}.",
        session_label(w_identity, w_activity.backend_pid),
        waited.as_secs_f64(),
        if confirmed {
            "PostgreSQL says it is blocked by"
        } else {
            "pgvisor cannot ask PostgreSQL (see inspector_unavailable); the likely blocker is"
        }
    );
    let evidence = json!({
        "confirmed": confirmed,
        "waiter": session_evidence(w_identity, w_activity, now),
        "waiter_statement": statement,
        "wait_ms": wait_ms,
        "wait_event": report.and_then(|r| r.wait_event.clone()),
        "blocking_pids": report.map(|r| r.blockers.clone()),
        "root_blocker_pids": report.map(|r| r.roots.clone()),
        "blockers": blockers.iter().map(|(i, a)| session_evidence(i, a, now)).collect::<Vec<_>>(),
    });
    let key_blocker =
        root.and_then(|(_, a)| a.transaction_statements.last().map(|s| s.to_string())).unwrap_or_default();
    Finding {
        kind: Kind::LockContention,
        key: format!("{statement}:{key_blocker}"),
        occurrence,
        severity: if waited >= Duration::from_secs(5) { Severity::Critical } else { Severity::Warning },
        title: format!("Lock wait of {:.1} s on `{}`", waited.as_secs_f64(), truncate(statement, 60)),
        message,
        suggestion: "Keep the blocking transaction short: commit right after its writes, never wait for users or network \
                     calls while holding row locks, and touch hot rows last. For the waiter, set `lock_timeout` (e.g. '2s') \
                     so it fails fast instead of piling up, or use SELECT ... FOR UPDATE SKIP LOCKED for queue-like tables."
            .into(),
        fingerprints: Vec::new(),
        evidence,
    }
}

/// The sessions a finding about `waiter` names as its blockers: those PostgreSQL reported (the
/// root blockers when it named any), or without a report, the [`suspects`].
fn blockers(
    waiter: u64,
    statement: &str,
    report: Option<&BlockingReport>,
    sessions: &[(SessionIdentity, SessionActivity)],
) -> Vec<(SessionIdentity, SessionActivity)> {
    match report {
        Some(r) => {
            let pids = if r.roots.is_empty() { &r.blockers } else { &r.roots };
            let by_pid = |pid: &u32| sessions.iter().find(|(_, a)| a.backend_pid == Some(*pid)).cloned();
            pids.iter().filter_map(by_pid).collect()
        }
        None => suspects(waiter, statement, sessions),
    }
}

/// Backends as a sentence names them: `backend pid 9999`, `backend pids 9999 and 10001`,
/// `backend pids 1, 2 and 3`.
fn backends(pids: &[u32]) -> String {
    match pids {
        [] => "a backend pgvisor could not identify".into(),
        [one] => format!("backend pid {one}"),
        [rest @ .., last] => {
            let rest: Vec<String> = rest.iter().map(u32::to_string).collect();
            format!("backend pids {} and {last}", rest.join(", "))
        }
    }
}

/// Without the Inspector: sessions with an open transaction that wrote to a table the waiter's
/// statement touches.
pub fn suspects(
    waiter: u64,
    statement: &str,
    sessions: &[(SessionIdentity, SessionActivity)],
) -> Vec<(SessionIdentity, SessionActivity)> {
    let wanted = sql_shape::tables(statement);
    sessions
        .iter()
        .filter(|(i, a)| i.id != waiter && a.transaction_started.is_some())
        .filter(|(_, a)| {
            a.transaction_statements.iter().any(|s| {
                let writes =
                    matches!(sql_shape::verb(s), "UPDATE" | "INSERT" | "DELETE" | "MERGE") || s.contains("FOR UPDATE");
                writes && sql_shape::tables(s).iter().any(|t| wanted.contains(t))
            })
        })
        .cloned()
        .collect()
}

/// `s` cut to about `max` characters at a space, so no token is cut in half (for titles).
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => {
            let cut = s[..i].rfind(' ').filter(|&at| at > max / 2).unwrap_or(i);
            format!("{} ...", s[..cut].trim_end())
        }
        None => s.to_string(),
    }
}

/// The finding when the Inspector's side connection cannot be made.
pub fn inspector_unavailable(reason: &str) -> Finding {
    Finding {
        kind: Kind::InspectorUnavailable,
        key: "inspector".into(),
        occurrence: Occurrence::New,
        severity: Severity::Info,
        title: "pgvisor cannot ask PostgreSQL who holds locks".into(),
        message: format!(
            "To explain lock waits pgvisor opens a side connection to PostgreSQL and reads pg_locks and \
             pg_blocking_pids(); that connection failed: {reason}. Lock advice now falls back to what the wire shows \
             (sessions with open transactions that wrote to the same tables)."
        ),
        suggestion:
            "Give pgvisor a connection string for a role that can see other sessions (a superuser, or a member of \
                     pg_monitor): --inspector-dsn \"host=... user=... password=...\" (or PGVISOR_INSPECTOR_DSN)."
                .into(),
        fingerprints: Vec::new(),
        evidence: json!({ "reason": reason, "flag": "--inspector-dsn" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn session(id: u64, pid: u32, state: SessionState, statements: &[&str]) -> (SessionIdentity, SessionActivity) {
        let now = SystemTime::now();
        let identity = SessionIdentity::sample(id);
        let activity = SessionActivity {
            state,
            state_since: now,
            statement_started: Some(now - Duration::from_millis(1500)),
            backend_pid: Some(pid),
            current_statement: statements.last().map(|s| Arc::from(*s)),
            transaction_started: Some(now - Duration::from_secs(3)),
            transaction_statements: statements.iter().map(|s| Arc::from(*s)).collect(),
            ..SessionActivity::default()
        };
        (identity, activity)
    }

    #[test]
    fn names_the_root_blocker_and_its_statements() {
        let sessions = vec![
            session(1, 100, SessionState::IdleInTransaction, &["BEGIN", "UPDATE accounts SET v = $1 WHERE id = $2"]),
            session(2, 200, SessionState::Active, &["UPDATE accounts SET v = $1 WHERE id = $2"]),
        ];
        let report = BlockingReport {
            waiter_pid: 200,
            blockers: vec![100],
            roots: vec![100],
            wait_event: Some("Lock:transactionid".into()),
        };
        let f = finding(
            (&sessions[1].0, &sessions[1].1),
            "UPDATE accounts SET v = $1 WHERE id = $2",
            Some(&report),
            &sessions,
            Duration::from_millis(1500),
            Occurrence::New,
            SystemTime::now(),
        );
        assert_eq!(f.kind, Kind::LockContention);
        assert_eq!(f.evidence["confirmed"], true);
        assert_eq!(f.evidence["wait_ms"], 1500.0);
        assert_eq!(f.evidence["blockers"][0]["pid"], 100);
        assert_eq!(f.evidence["blockers"][0]["statements"][1], "UPDATE accounts SET v = $1 WHERE id = $2");
        assert!(f.message.contains("is idle in it"), "{}", f.message);
    }

    #[test]
    fn without_the_inspector_suspects_come_from_the_wire() {
        let sessions = vec![
            session(1, 100, SessionState::IdleInTransaction, &["BEGIN", "UPDATE accounts SET v = $1 WHERE id = $2"]),
            session(3, 300, SessionState::IdleInTransaction, &["BEGIN", "UPDATE other SET v = $1"]),
            session(2, 200, SessionState::Active, &["UPDATE accounts SET v = $1 WHERE id = $2"]),
        ];
        let suspects = suspects(2, "UPDATE accounts SET v = $1 WHERE id = $2", &sessions);
        assert_eq!(suspects.iter().map(|(i, _)| i.id).collect::<Vec<_>>(), vec![1]);
        let f = finding(
            (&sessions[2].0, &sessions[2].1),
            "UPDATE accounts SET v = $1 WHERE id = $2",
            None,
            &sessions,
            Duration::from_millis(900),
            Occurrence::New,
            SystemTime::now(),
        );
        assert_eq!(f.evidence["confirmed"], false);
        let unavailable = inspector_unavailable("password authentication failed");
        assert!(unavailable.suggestion.contains("--inspector-dsn"));
    }

    #[test]
    fn blockers_outside_pgvisor_are_named_by_pid_in_words() {
        assert_eq!(backends(&[9999]), "backend pid 9999");
        assert_eq!(backends(&[9999, 10001]), "backend pids 9999 and 10001");
        assert_eq!(backends(&[1, 2, 3]), "backend pids 1, 2 and 3");
        let sessions = vec![session(2, 200, SessionState::Active, &["UPDATE accounts SET v = $1 WHERE id = $2"])];
        let report = BlockingReport { waiter_pid: 200, blockers: vec![9999], roots: vec![9999], wait_event: None };
        let f = finding(
            (&sessions[0].0, &sessions[0].1),
            "UPDATE accounts SET v = $1 WHERE id = $2",
            Some(&report),
            &sessions,
            Duration::from_millis(900),
            Occurrence::New,
            SystemTime::now(),
        );
        assert!(f.message.ends_with("blocked by backend pid 9999, not connected through pgvisor."), "{}", f.message);
    }
}
