//! The lock waits the engine follows. A statement still running after `--lock-wait` is a waiter:
//! the Inspector is asked who blocks it (again each second until it answers), the wait is
//! reported while it lasts, and once more with its whole length when the statement ends.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::time::{Duration, SystemTime};

use super::{blockers, finding, inspector_unavailable, suspects};
use crate::advice::{Finding, Occurrence};
use crate::model::BlockingReport;
use crate::sessions::{SessionActivity, SessionIdentity, SessionState};

/// A session as the published activity shows it.
type Session = (SessionIdentity, SessionActivity);

/// A question for the Inspector: who blocks backend `pid` (session `session`)?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InspectRequest {
    /// pgvisor session id.
    pub session: u64,
    /// Its backend pid.
    pub pid: u32,
    /// When its statement started (identifies the statement).
    pub statement_started: SystemTime,
}

/// How often the Inspector is asked again about a waiter it has not explained: a statement can
/// start waiting late.
const ASK_EVERY: Duration = Duration::from_secs(1);
/// Most statements remembered as having waited for a lock; past it the set starts over.
const MAX_LOCK_WAITED: usize = 1000;

/// A waiter, followed until its statement ends.
#[derive(Debug)]
struct Waiter {
    statement_started: SystemTime,
    /// The statement that waits (the session's next statement may be current by the end).
    statement: String,
    report: Option<BlockingReport>,
    /// Last time the Inspector was asked about this statement.
    asked: SystemTime,
    /// The waiter and the blockers its last report named, as they were then. The final report,
    /// written when the statement finishes, must still name the blocker as it was while it
    /// blocked: by then it has usually committed. (This is what the wait was about, not a
    /// workaround for stale state, so it stays.)
    reported: Option<(Session, Vec<Session>)>,
}

/// Lock waits in progress, and the statements seen waiting.
#[derive(Debug)]
pub struct LockWatch {
    lock_wait: Duration,
    /// There is an Inspector to ask.
    can_ask: bool,
    /// The Inspector is missing or failed: blockers are suspected from the wire.
    inspector_down: bool,
    waiters: HashMap<u64, Waiter>,
    /// Per session, the start of its last statement whose wait ended: a check that read the
    /// sessions just before that statement's event was applied does not start following it again.
    ended: HashMap<u64, SystemTime>,
    /// Sessions that finished a statement of `--lock-wait` or longer since the last check: the
    /// sessions that check reads were published before those events were applied, and may still
    /// show the statement running. Not followed by that check; emptied by it.
    finished_since_check: HashSet<u64>,
    /// Statements seen waiting for a lock (bounded): their slowness is not their plan's.
    lock_waited: HashSet<String>,
}

impl LockWatch {
    /// Follows statements running `lock_wait` or longer; `inspector`: there is an Inspector to ask.
    pub fn new(lock_wait: Duration, inspector: bool) -> Self {
        Self {
            lock_wait,
            can_ask: inspector,
            inspector_down: !inspector,
            waiters: HashMap::new(),
            ended: HashMap::new(),
            finished_since_check: HashSet::new(),
            lock_waited: HashSet::new(),
        }
    }

    /// A statement of `session` finished after `waited`. When it was a waiter that was reported,
    /// returns the final report with its whole wait; `live` is the session as it is now, if it
    /// is still open.
    pub fn statement_finished(
        &mut self,
        session: u64,
        waited: Duration,
        live: impl FnOnce() -> Option<Session>,
        now: SystemTime,
    ) -> Option<Finding> {
        if waited >= self.lock_wait {
            self.finished_since_check.insert(session);
        }
        let w = self.waiters.remove(&session)?;
        self.ended.insert(session, w.statement_started);
        let (then, named) = w.reported?;
        let (identity, mut activity) = live().unwrap_or(then);
        // The statement finished (this is its completion event) even if ReadyForQuery has not
        // been seen yet: the waiter no longer runs it.
        if activity.state == SessionState::Active && activity.statement_started == Some(w.statement_started) {
            activity.state = if activity.transaction_started.is_some() {
                SessionState::IdleInTransaction
            } else {
                SessionState::Idle
            };
        }
        Some(finding(
            (&identity, &activity),
            &w.statement,
            w.report.as_ref().filter(|r| !r.blockers.is_empty()),
            &named,
            waited,
            Occurrence::Update,
            now,
        ))
    }

    /// The periodic check over `sessions`, read before the engine applied the events queued so
    /// far: follows statements that run `--lock-wait` or longer, returns the questions due for
    /// the Inspector and the updated reports of the waits still going on.
    pub fn check(&mut self, sessions: &[Session], now: SystemTime) -> (Vec<InspectRequest>, Vec<Finding>) {
        let mut ask = Vec::new();
        for (identity, activity) in sessions {
            let Some(started) = running(activity) else { continue };
            if now.duration_since(started).unwrap_or_default() < self.lock_wait
                || self.ended.get(&identity.id) == Some(&started)
                || self.finished_since_check.contains(&identity.id)
            {
                continue;
            }
            let fresh = || Waiter {
                statement_started: started,
                statement: activity.current_statement.as_deref().unwrap_or("?").to_string(),
                report: None,
                asked: SystemTime::UNIX_EPOCH,
                reported: None,
            };
            let waiter = self.waiters.entry(identity.id).or_insert_with(fresh);
            if waiter.statement_started != started {
                *waiter = fresh();
            }
            let due = waiter.report.is_none() && now.duration_since(waiter.asked).unwrap_or_default() >= ASK_EVERY;
            if let (true, Some(pid), true) = (due, activity.backend_pid, self.can_ask) {
                waiter.asked = now;
                ask.push(InspectRequest { session: identity.id, pid, statement_started: started });
            }
        }
        // `sessions` was read before the engine applied the queued events, and a session's
        // observer sends a statement's event before it shows the session idle: a waiter whose
        // session is idle was finished by that event. One still here never gets it (the session
        // closed mid-statement, or the event was dropped).
        let live: HashMap<u64, &SessionActivity> = sessions.iter().map(|(i, a)| (i.id, a)).collect();
        self.waiters.retain(|id, _| live.get(id).is_some_and(|a| running(a).is_some()));
        self.ended.retain(|id, _| live.contains_key(id));
        self.finished_since_check.clear();
        let reports = self.report(None, Occurrence::Update, sessions, now);
        (ask, reports)
    }

    /// The Inspector's answer about the statement of `session` started at `statement_started`.
    /// Returns the waiter's statement when this is the first answer naming a blocker: its wait
    /// is to be reported at once ([`Self::report`]).
    pub fn answer(
        &mut self,
        session: u64,
        statement_started: SystemTime,
        report: Option<BlockingReport>,
    ) -> Option<(String, BlockingReport)> {
        let w = self.waiters.get_mut(&session).filter(|w| w.statement_started == statement_started)?;
        let report = report.filter(|r| !r.blockers.is_empty() && w.report.is_none())?;
        w.report = Some(report.clone());
        Some((w.statement.clone(), report))
    }

    /// Reports every waiter known to be blocked (or just `only`), with its wait so far; without
    /// the Inspector, those with a suspect on the wire.
    pub fn report(
        &mut self,
        only: Option<u64>,
        occurrence: Occurrence,
        sessions: &[Session],
        now: SystemTime,
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        for (id, w) in self.waiters.iter_mut().filter(|(id, _)| only.is_none_or(|o| o == **id)) {
            let Some(me) = sessions.iter().find(|(i, _)| i.id == *id) else { continue };
            let report = w.report.as_ref().filter(|r| !r.blockers.is_empty());
            let reportable = report.is_some()
                || (w.report.is_none() && self.inspector_down && !suspects(*id, &w.statement, sessions).is_empty());
            if !reportable {
                continue;
            }
            if self.lock_waited.len() >= MAX_LOCK_WAITED {
                self.lock_waited.clear();
            }
            self.lock_waited.insert(w.statement.clone());
            let waited = now.duration_since(w.statement_started).unwrap_or_default();
            findings.push(finding((&me.0, &me.1), &w.statement, report, sessions, waited, occurrence, now));
            w.reported = Some((me.clone(), blockers(*id, &w.statement, report, sessions)));
        }
        findings
    }

    /// The Inspector's side connection failed: from now on blockers are suspected from the wire.
    pub fn inspector_unavailable(&mut self, reason: &str) -> Finding {
        self.inspector_down = true;
        inspector_unavailable(reason)
    }

    /// True when `statement` (normalised text) was seen waiting for a lock held by another session.
    pub fn waited_for_locks(&self, statement: &str) -> bool {
        self.lock_waited.contains(statement)
    }
}

/// When the session's current statement started, if one is running.
fn running(activity: &SessionActivity) -> Option<SystemTime> {
    activity.statement_started.filter(|_| activity.state == SessionState::Active)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const WAITING: &str = "UPDATE t SET v = $1 WHERE id = $2";

    fn session(id: u64, state: SessionState, started: SystemTime, statements: &[&str]) -> Session {
        let activity = SessionActivity {
            state,
            statement_started: (state == SessionState::Active).then_some(started),
            backend_pid: Some(100 + id as u32),
            current_statement: statements.last().map(|s| Arc::from(*s)),
            transaction_started: Some(started),
            transaction_statements: statements.iter().map(|s| Arc::from(*s)).collect(),
            ..SessionActivity::default()
        };
        (SessionIdentity::sample(id), activity)
    }

    /// Session 1 holds a row it updated; session 2 has waited `waited` for it.
    fn blocked(now: SystemTime, waited: Duration) -> Vec<Session> {
        vec![
            session(1, SessionState::IdleInTransaction, now - Duration::from_secs(5), &["BEGIN", WAITING]),
            session(2, SessionState::Active, now - waited, &[WAITING]),
        ]
    }

    #[test]
    fn a_wait_is_asked_about_reported_and_finished_once() {
        let mut watch = LockWatch::new(Duration::from_millis(200), true);
        let now = SystemTime::now();
        let sessions = blocked(now, Duration::from_millis(300));
        let (ask, reports) = watch.check(&sessions, now);
        assert_eq!(ask.iter().map(|r| (r.session, r.pid)).collect::<Vec<_>>(), vec![(2, 102)]);
        assert!(reports.is_empty(), "not reported before PostgreSQL names a blocker");
        let (ask, _) = watch.check(&sessions, now + Duration::from_millis(100));
        assert!(ask.is_empty(), "asked at most once a second");

        let started = sessions[1].1.statement_started.unwrap();
        let report = BlockingReport { waiter_pid: 102, blockers: vec![101], roots: vec![101], wait_event: None };
        let (statement, _) = watch.answer(2, started, Some(report.clone())).expect("first answer");
        assert_eq!(statement, WAITING);
        assert!(watch.answer(2, started, Some(report)).is_none(), "only the first answer is news");
        let reports = watch.report(Some(2), Occurrence::New, &sessions, now);
        assert_eq!(reports.len(), 1);
        assert!(watch.waited_for_locks(WAITING));

        // Session 1 committed before session 2's statement event came: the final report still
        // names it with the update it held the row with.
        let committed = session(1, SessionState::Idle, now, &[]);
        let fin = watch
            .statement_finished(2, Duration::from_millis(1500), || Some(sessions[1].clone()), now)
            .expect("a reported wait gets its final report");
        assert_eq!(fin.occurrence, Occurrence::Update);
        assert_eq!(fin.evidence["blockers"][0]["statements"][1], WAITING);
        assert_eq!(fin.evidence["waiter"]["state"], "idle_in_transaction");
        assert_eq!(fin.evidence["wait_ms"], 1500.0);

        // A check that read the sessions just before that event was applied does not follow the
        // finished statement again.
        let (ask, reports) = watch.check(&[committed, sessions[1].clone()], now);
        assert!(ask.is_empty() && reports.is_empty());
        assert!(watch.waiters.is_empty());
    }

    #[test]
    fn a_long_statement_that_finished_before_its_first_check_is_not_followed() {
        let mut watch = LockWatch::new(Duration::from_millis(200), true);
        let now = SystemTime::now();
        // Its event is applied after the sessions were read, before the check looks at them.
        let stale = blocked(now, Duration::from_millis(300));
        assert!(watch.statement_finished(2, Duration::from_millis(300), || None, now).is_none());
        let (ask, reports) = watch.check(&stale, now);
        assert!(ask.is_empty() && reports.is_empty(), "no question about a statement that is over");
        assert!(watch.waiters.is_empty());
        // The next check reads the session as it is: a new long statement is followed again.
        let (ask, _) = watch.check(&stale, now + Duration::from_millis(100));
        assert_eq!(ask.len(), 1);
    }

    #[test]
    fn a_waiter_whose_session_went_idle_or_closed_is_dropped() {
        let mut watch = LockWatch::new(Duration::from_millis(200), false);
        let now = SystemTime::now();
        let sessions = blocked(now, Duration::from_millis(300));
        let (ask, reports) = watch.check(&sessions, now);
        assert!(ask.is_empty(), "no Inspector to ask");
        assert_eq!(reports.len(), 1, "without the Inspector, the suspect from the wire is reported");
        assert_eq!(reports[0].evidence["confirmed"], false);

        let idle = vec![sessions[0].clone(), session(2, SessionState::Idle, now, &[])];
        watch.check(&idle, now);
        assert!(watch.waiters.is_empty(), "its statement event never came: nothing to finish");
        assert!(watch.statement_finished(2, Duration::from_secs(1), || None, now).is_none());
    }
}
