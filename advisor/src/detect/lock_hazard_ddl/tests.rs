//! Detector tests fed statement events: the hazards on a table in use, and the negatives
//! (CONCURRENTLY, a table nobody used, lock_timeout set where only the timeout rule applied).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::model::Statement;

/// A finished statement, owned; `.get()` is the detector's view of it.
struct Event {
    session: u64,
    statement: Arc<Statement>,
    duration: Duration,
    failed: bool,
    at: SystemTime,
}

impl Event {
    fn get(&self) -> Executed<'_> {
        Executed {
            session: self.session,
            statement: &self.statement,
            duration: self.duration,
            failed: self.failed,
            finished_at: self.at,
        }
    }
}

fn event(session: u64, sql: &str, duration_ms: u64, at: SystemTime) -> Event {
    Event {
        session,
        statement: Statement::from_sql(sql),
        duration: Duration::from_millis(duration_ms),
        failed: false,
        at,
    }
}

fn session(id: u64, state: SessionState, current: &str, transaction: &[&str]) -> (SessionIdentity, SessionActivity) {
    let identity = SessionIdentity::sample(id);
    let activity = SessionActivity {
        state,
        backend_pid: Some(100 + id as u32),
        current_statement: Some(Arc::from(current)),
        transaction_statements: transaction.iter().map(|s| Arc::from(*s)).collect(),
        ..SessionActivity::default()
    };
    (identity, activity)
}

fn sessions() -> Vec<(SessionIdentity, SessionActivity)> {
    vec![session(1, SessionState::Idle, "SELECT 1", &[]), session(2, SessionState::Idle, "SELECT 1", &[])]
}

/// A watch where session 1 read and wrote `orders` just now.
fn busy_orders(now: SystemTime) -> DdlWatch {
    let mut w = DdlWatch::default();
    assert!(w.statement(event(1, "select id, total from orders where user_id = 5", 1, now).get(), sessions).is_none());
    assert!(w.statement(event(1, "update orders set total = 2 where id = 1", 1, now).get(), sessions).is_none());
    w
}

#[test]
fn index_without_concurrently_on_a_table_in_use() {
    let now = SystemTime::now();
    let mut w = busy_orders(now);
    let f =
        w.statement(event(2, "create index orders_total on orders (total)", 1500, now).get(), sessions).expect("fires");
    assert_eq!(f.kind, Kind::LockHazardDdl);
    assert_eq!(f.severity, Severity::Critical, "ran 1.5 s");
    assert_eq!(f.evidence["table"], "orders");
    assert_eq!(f.evidence["lock"], "SHARE");
    assert_eq!(f.evidence["hazards"], json!(["index_without_concurrently", "no_lock_timeout"]));
    assert_eq!(f.evidence["duration_ms"], 1500.0);
    let users = f.evidence["recent_users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert!(users.iter().all(|u| u["session"] == 1));
    assert!(f.suggestion.contains("CREATE INDEX CONCURRENTLY orders_total ON orders(total)"), "{}", f.suggestion);
    assert!(f.suggestion.contains("lock_timeout"), "{}", f.suggestion);
    assert!(f.message.contains("Session 1"), "{}", f.message);
}

#[test]
fn concurrently_and_unused_tables_do_not_fire() {
    let now = SystemTime::now();
    let mut w = busy_orders(now);
    assert!(w
        .statement(event(2, "create index concurrently orders_total on orders (total)", 900, now).get(), sessions)
        .is_none());
    // Nobody else touched `audit`; its own session's use does not count.
    assert!(w.statement(event(2, "insert into audit (a) values (1)", 1, now).get(), sessions).is_none());
    assert!(w.statement(event(2, "alter table audit alter column a type bigint", 10, now).get(), sessions).is_none());
    // Use older than the window is forgotten.
    let mut old = DdlWatch::default();
    let long_ago = now - RECENT_USE - Duration::from_secs(1);
    old.statement(event(1, "select * from orders", 1, long_ago).get(), sessions);
    assert!(old.statement(event(2, "alter table orders drop column total", 3, now).get(), sessions).is_none());
    // Plain queries are never DDL.
    assert!(w.statement(event(2, "select * from orders", 1, now).get(), sessions).is_none());
}

#[test]
fn lock_timeout_silences_only_the_timeout_rule() {
    let now = SystemTime::now();
    let mut w = busy_orders(now);
    w.statement(event(2, "set lock_timeout = '2s'", 1, now).get(), sessions);
    // Only the timeout rule would apply: nothing.
    assert!(w.statement(event(2, "alter table orders add column note text", 5, now).get(), sessions).is_none());
    // A real hazard still fires, without the timeout rule.
    let f =
        w.statement(event(2, "alter table orders alter column total set not null", 50, now).get(), sessions).unwrap();
    assert_eq!(f.evidence["hazards"], json!(["set_not_null_scans_table"]));
    assert_eq!(f.evidence["lock_timeout_set"], true);
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.suggestion.contains("CHECK (<column> IS NOT NULL) NOT VALID"), "{}", f.suggestion);
    // RESET brings the rule back.
    w.statement(event(2, "reset lock_timeout", 1, now).get(), sessions);
    let f = w.statement(event(2, "alter table orders add column note2 text", 5, now).get(), sessions).unwrap();
    assert_eq!(f.evidence["hazards"], json!(["no_lock_timeout"]));
    assert_eq!(f.severity, Severity::Info);
    w.statement(event(2, "set session lock_timeout to '3s'", 1, now).get(), sessions);
    assert!(w.statement(event(2, "alter table orders add column note3 text", 5, now).get(), sessions).is_none());
    w.statement(event(2, "set lock_timeout to default", 1, now).get(), sessions);
    assert!(w.statement(event(2, "alter table orders add column note4 text", 5, now).get(), sessions).is_some());
}

#[test]
fn set_local_lasts_until_the_transaction_ends() {
    let now = SystemTime::now();
    let mut w = busy_orders(now);
    w.statement(event(2, "begin", 1, now).get(), sessions);
    w.statement(event(2, "set local lock_timeout = '1s'", 1, now).get(), sessions);
    assert!(w.statement(event(2, "alter table orders add column a int", 5, now).get(), sessions).is_none());
    w.statement(event(2, "commit", 1, now).get(), sessions);
    assert!(w.statement(event(2, "alter table orders add column b int", 5, now).get(), sessions).is_some());
}

#[test]
fn every_way_to_end_a_transaction_ends_set_local() {
    let now = SystemTime::now();
    // `abort work` reaches the detector as the fingerprint writes it: ROLLBACK WORK.
    for end in ["rollback", "ROLLBACK WORK", "rollback transaction", "rollback and no chain", "abort", "end work"] {
        let mut w = busy_orders(now);
        w.statement(event(2, "begin", 1, now).get(), sessions);
        w.statement(event(2, "set local lock_timeout = '1s'", 1, now).get(), sessions);
        w.statement(event(2, end, 1, now).get(), sessions);
        assert!(
            w.statement(event(2, "alter table orders add column b int", 5, now).get(), sessions).is_some(),
            "{end}"
        );
    }
    // A rollback to a savepoint leaves the transaction, and its SET LOCAL, in place.
    let mut w = busy_orders(now);
    w.statement(event(2, "begin", 1, now).get(), sessions);
    w.statement(event(2, "set local lock_timeout = '1s'", 1, now).get(), sessions);
    w.statement(event(2, "rollback work to savepoint s1", 1, now).get(), sessions);
    assert!(w.statement(event(2, "alter table orders add column c int", 5, now).get(), sessions).is_none());
}

#[test]
fn validate_constraint_and_not_valid_are_the_safe_forms() {
    let now = SystemTime::now();
    let mut w = busy_orders(now);
    w.statement(event(2, "set lock_timeout = '2s'", 1, now).get(), sessions);
    let fk = "alter table orders add constraint orders_user foreign key (user_id) references users (id) not valid";
    assert!(w.statement(event(2, fk, 5, now).get(), sessions).is_none());
    assert!(w
        .statement(event(2, "alter table orders validate constraint orders_user", 900, now).get(), sessions)
        .is_none());
    let f = w
        .statement(event(2, "alter table orders add constraint positive check (total > 0)", 5, now).get(), sessions)
        .unwrap();
    assert_eq!(f.evidence["hazards"], json!(["check_without_not_valid"]));
    // A failed DDL did nothing.
    let mut failed = event(2, "alter table orders drop column total", 2000, now);
    failed.failed = true;
    assert!(w.statement(failed.get(), sessions).is_none());
}

#[test]
fn names_the_sessions_it_blocked() {
    let now = SystemTime::now();
    let ddl = "ALTER TABLE orders ADD COLUMN c uuid DEFAULT gen_random_uuid()";
    let select = "SELECT id, total FROM orders WHERE user_id = $1";
    let report = BlockingReport { waiter_pid: 101, blockers: vec![102], roots: vec![102], wait_event: None };

    // While the DDL runs: the waiter is remembered and listed when it finishes.
    let mut w = busy_orders(now);
    let running = vec![session(1, SessionState::Active, select, &[]), session(2, SessionState::Active, ddl, &[])];
    assert!(w.blocking(1, select, &report, &running).is_none());
    let f = w.statement(event(2, ddl, 300, now).get(), sessions).unwrap();
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.evidence["blocked_sessions"][0]["session"], 1);
    assert!(f.message.contains("waiting for it"), "{}", f.message);

    // Held in an open transaction after it ran: the advice is updated.
    let mut w = busy_orders(now);
    let f = w.statement(event(2, ddl, 5, now).get(), sessions).unwrap();
    assert_eq!(f.evidence["blocked_sessions"], json!([]));
    let holding = vec![
        session(1, SessionState::Active, select, &[]),
        session(2, SessionState::IdleInTransaction, ddl, &["BEGIN", ddl]),
    ];
    let update = w.blocking(1, select, &report, &holding).expect("an update");
    assert_eq!(update.occurrence, Occurrence::Update);
    assert_eq!(update.key, f.key);
    assert_eq!(update.severity, Severity::Critical);
    assert_eq!(update.evidence["blocked_sessions"][0]["statement"], select);
    // Once that transaction is over, a later block by the same session is not the DDL's doing.
    let later = vec![
        session(3, SessionState::Active, select, &[]),
        session(2, SessionState::IdleInTransaction, "UPDATE x", &["BEGIN", "UPDATE x"]),
    ];
    let mut w2 = w;
    assert!(w2.blocking(3, select, &report, &later).is_none());
}
