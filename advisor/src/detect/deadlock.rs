//! `deadlock`: PostgreSQL aborted a transaction with SQLSTATE 40P01; name both sides.

use std::time::SystemTime;

use serde_json::json;

use crate::advice::{Finding, Kind, Occurrence, Severity};
use crate::model::session_label;
use crate::sessions::{SessionActivity, SessionIdentity};
use crate::sql_shape;

/// The backend pids a deadlock DETAIL names ("Process 123 waits for ...; blocked by process 456."),
/// in order of first mention.
pub fn pids_in_detail(detail: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let words: Vec<&str> = detail.split_whitespace().collect();
    for pair in words.windows(2) {
        if pair[0].eq_ignore_ascii_case("process") {
            if let Ok(pid) = pair[1].trim_end_matches(['.', ',', ';', ':']).parse::<u32>() {
                if !out.contains(&pid) {
                    out.push(pid);
                }
            }
        }
    }
    out
}

/// The finding for a deadlock seen by session `victim` while running `statement`.
pub fn finding(
    victim: u64,
    statement: &str,
    victim_statements: &[String],
    detail: &str,
    sessions: &[(SessionIdentity, SessionActivity)],
    now: SystemTime,
) -> Finding {
    let pids = pids_in_detail(detail);
    let mut sides = Vec::new();
    let mut tables: Vec<String> = Vec::new();
    for pid in &pids {
        let found = sessions.iter().find(|(_, a)| a.backend_pid == Some(*pid));
        let (label, statements) = match found {
            Some((identity, activity)) if identity.id == victim => {
                (session_label(identity, Some(*pid)), victim_statements.to_vec())
            }
            Some((identity, activity)) => {
                // The survivor may have finished its transaction since: then show that one.
                let recent = activity
                    .previous_transaction_ended
                    .is_some_and(|t| now.duration_since(t).unwrap_or_default() < std::time::Duration::from_secs(5));
                let statements = if activity.transaction_statements.is_empty() && recent {
                    &activity.previous_transaction
                } else {
                    &activity.transaction_statements
                };
                (session_label(identity, Some(*pid)), statements.iter().map(|s| s.to_string()).collect())
            }
            None => (format!("Backend pid {pid} (not connected through pgvisor)"), Vec::new()),
        };
        for s in &statements {
            for t in sql_shape::tables(s) {
                if !tables.contains(&t) {
                    tables.push(t);
                }
            }
        }
        sides.push(json!({ "pid": pid, "session": label, "statements": statements }));
    }
    let order = if tables.is_empty() { "the same tables".to_string() } else { tables.join(", ") };
    Finding {
        kind: Kind::Deadlock,
        key: format!("{}:{}", statement, tables.join(",")),
        occurrence: Occurrence::New,
        severity: Severity::Critical,
        title: format!("Deadlock between {} sessions on {order}", pids.len().max(2)),
        message: format!(
            "PostgreSQL found a deadlock and aborted one transaction (SQLSTATE 40P01) while it ran `{statement}`: each \
             transaction held a lock the other needed. {}",
            detail.lines().next().unwrap_or_default()
        ),
        suggestion: format!(
            "Take locks in one consistent order in every transaction that touches {order}: e.g. update rows sorted by \
             primary key (UPDATE ... WHERE id = ANY($1) after sorting the ids, or SELECT ... ORDER BY id FOR UPDATE \
             first), and always touch the tables in the same order. Retry transactions that fail with 40P01."
        ),
        fingerprints: Vec::new(),
        evidence: json!({ "detail": detail, "victim_statement": statement, "processes": sides }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_from_detail() {
        let detail =
            "Process 4242 waits for ShareLock on transaction 777; blocked by process 4243.\nProcess 4243 waits for \
                      ShareLock on transaction 776; blocked by process 4242.";
        assert_eq!(pids_in_detail(detail), vec![4242, 4243]);
    }
}
