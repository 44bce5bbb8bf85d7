//! The engine's side of `n_plus_one`, over every session's statements:
//!
//! - **Across a pool's connections.** Children of one fingerprint on several sessions of one
//!   client application (same user, database, application_name and client host), within the
//!   burst window of each other, whose parameters all come from one column of a parent's result
//!   on any of those sessions just before: `Promise.all` over a node-postgres `Pool`,
//!   `asyncio.gather` over an asyncpg pool.
//! - **Bursts with no provable parent.** At least N executions of one fingerprint with distinct
//!   parameters, consecutive in one session, that then end: the session runs another statement
//!   (a COMMIT included) or goes idle. Reported unconfirmed, at severity info.
//!
//! What separates a burst from a steady repetition (pgbench, a load generator, a poller): a
//! burst is bounded, at most [`MAX_BURST`] executions within [`MAX_SPAN`], and it ends while its
//! session lives on. A run that grows past either bound is steady and never reported; a run cut
//! short by its session closing (pgbench's end) is not reported either.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use super::report::{Burst as Described, Proof};
use super::{NPlusOneConfig, ResultDigest, MAX_DISTINCT};
use crate::advice::{Finding, Occurrence};
use crate::events::{Caller, Statement, StatementEvent};
use crate::fingerprint::Fingerprint;
use crate::orm::OrmStyle;

/// A consecutive run longer than this is a steady repetition, not a burst.
pub const MAX_BURST: usize = 1_000;
/// So is a run lasting longer than this.
pub const MAX_SPAN: Duration = Duration::from_secs(2);
/// A parent's result counts for children that start within this of it.
const PARENT_WINDOW: Duration = Duration::from_secs(5);
/// Recent results kept per pool as possible parents.
const POOL_PARENTS: usize = 8;
/// Parents a pool burst is checked against.
const CANDIDATES: usize = 4;
/// Most sessions named in one burst.
const MAX_BURST_SESSIONS: usize = 64;
/// Most sessions and pools followed (past it, the oldest state is dropped).
const MAX_SESSIONS: usize = 10_000;
const MAX_POOLS: usize = 1_000;
/// How long a per-session N+1 keeps its child from being reported again as unlinked.
const CONFIRMED_FOR: Duration = Duration::from_secs(60);

/// A finding and who ran the statements it is about (their tags, the session's name).
pub type Reported = (Finding, Caller);

/// One session's current run of one fingerprint.
struct Run {
    statement: Arc<Statement>,
    label: Arc<str>,
    application_name: Arc<str>,
    count: usize,
    distinct: HashSet<u64>,
    first: SystemTime,
    last: SystemTime,
    total: Duration,
}

impl Run {
    /// Counts one more child.
    fn extend(&mut self, s: &StatementEvent) {
        self.count += 1;
        // A steady run is never reported (and stays steady): its parameters no longer matter.
        if self.distinct.len() < MAX_DISTINCT && self.count <= MAX_BURST {
            self.distinct.insert(s.params.hash());
        }
        self.last = s.finished_at;
        self.total += s.duration;
    }

    fn steady(&self) -> bool {
        self.count > MAX_BURST || self.last.duration_since(self.first).unwrap_or_default() > MAX_SPAN
    }
}

/// A result that may be a parent: kept by value (two shared pointers and a time), so that
/// recording one allocates nothing.
#[derive(Clone)]
struct Parent {
    /// The statement's fingerprint, kept here: candidates are told apart by it on every child,
    /// without reading the statement behind each pointer.
    fingerprint: Fingerprint,
    statement: Arc<Statement>,
    result: Arc<ResultDigest>,
    at: SystemTime,
}

/// Children of one fingerprint across a pool's sessions.
struct PoolBurst {
    statement: Arc<Statement>,
    application_name: Arc<str>,
    style: OrmStyle,
    count: usize,
    distinct: HashSet<u64>,
    total: Duration,
    last: SystemTime,
    sessions: Vec<(u64, Arc<str>)>,
    parents: Vec<Parent>,
    /// Per (candidate parent, parameter, column): children that matched.
    matches: HashMap<(usize, usize, usize), usize>,
    reported_at: usize,
}

impl PoolBurst {
    fn link(&self) -> Option<(usize, usize, usize)> {
        self.matches.iter().filter(|(_, n)| **n == self.count).map(|(k, _)| *k).min()
    }

    fn caller(&self) -> Caller {
        Caller { tags: self.statement.tags.clone(), application_name: self.application_name.clone() }
    }

    fn describe(&self, occurrence: Occurrence) -> Option<Reported> {
        let (p, param, column) = self.link()?;
        let parent = self.parents.get(p)?;
        let sessions: Vec<String> = self.sessions.iter().map(|(_, label)| label.to_string()).collect();
        let described = Described {
            child: &self.statement,
            style: self.style,
            count: self.count,
            distinct: self.distinct.len(),
            total: self.total,
            sessions: &sessions,
            proof: Proof::Linked { parent: &parent.statement, result: &parent.result, param, column },
            samples: None,
        };
        Some((described.finding(occurrence), self.caller()))
    }
}

#[derive(Default)]
struct Pool {
    parents: VecDeque<Parent>,
    bursts: HashMap<Fingerprint, PoolBurst>,
}

/// N+1 across sessions and without a parent (see the module documentation).
#[derive(Default)]
pub struct BurstWatch {
    config: NPlusOneConfig,
    runs: HashMap<u64, Run>,
    pools: HashMap<u64, Pool>,
    /// Children some session already proved an N+1 for, and when.
    confirmed: HashMap<Fingerprint, SystemTime>,
    /// Findings (by key) the pool reported as parallel, and when: a session's share of the same
    /// children is part of them, not a finding of its own.
    parallel: HashMap<String, SystemTime>,
}

impl BurstWatch {
    /// A watch with these thresholds.
    pub fn new(config: NPlusOneConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// Feeds one finished statement; returns the findings it completes.
    pub fn statement(&mut self, s: &StatementEvent) -> Vec<Reported> {
        let mut out = Vec::new();
        let fp = s.statement.fingerprint;
        let child = s.error.is_none() && !s.params.is_empty() && s.statement.shape.read;
        // The session's run ends when it runs anything else, or after a pause.
        let gap = self.config.gap;
        let goes_on = match self.runs.get_mut(&s.session) {
            Some(run) if run.statement.fingerprint == fp && child && since(run.last, s.finished_at) <= gap => {
                // The run goes on (a load test's every statement).
                run.extend(s);
                true
            }
            Some(_) => {
                if let Some(run) = self.runs.remove(&s.session) {
                    out.extend(self.unlinked(&run));
                }
                false
            }
            None => false,
        };
        if goes_on {
            out.extend(self.pool_child(s));
        } else if child {
            if self.runs.len() >= MAX_SESSIONS {
                self.runs.clear();
            }
            let run = self.runs.entry(s.session).or_insert_with(|| Run {
                statement: s.statement.clone(),
                label: s.origin.label.clone(),
                application_name: s.application_name.clone(),
                count: 0,
                distinct: HashSet::new(),
                first: s.finished_at,
                last: s.finished_at,
                total: Duration::ZERO,
            });
            run.extend(s);
            out.extend(self.pool_child(s));
        }
        if let Some(result) = s.result.as_ref().filter(|r| !r.is_empty()) {
            let pool = pool(&mut self.pools, s.origin.pool);
            if pool.parents.len() >= POOL_PARENTS {
                pool.parents.pop_front();
            }
            pool.parents.push_back(Parent {
                fingerprint: fp,
                statement: s.statement.clone(),
                result: result.clone(),
                at: s.finished_at,
            });
        }
        out
    }

    /// A child across the pool: counted against the parents the pool had when its burst began.
    fn pool_child(&mut self, s: &StatementEvent) -> Option<Reported> {
        let fp = s.statement.fingerprint;
        let gap = self.config.gap;
        let min = self.config.min_children;
        let mut out = None;
        let pool = pool(&mut self.pools, s.origin.pool);
        if pool.bursts.get(&fp).is_some_and(|b| since(b.last, s.finished_at) > gap) {
            if let Some(b) = pool.bursts.remove(&fp) {
                out = final_report(&b);
            }
        }
        if !pool.bursts.contains_key(&fp) {
            let started = s.finished_at.checked_sub(s.duration).unwrap_or(s.finished_at);
            let parents: Vec<Parent> = pool
                .parents
                .iter()
                .rev()
                .filter(|p| p.fingerprint != fp && since(p.at, started) <= PARENT_WINDOW)
                .take(CANDIDATES)
                .cloned()
                .collect();
            // Without a parent there is nothing to prove across sessions (pgbench -S ends here).
            if parents.is_empty() {
                return out;
            }
            pool.bursts.insert(
                fp,
                PoolBurst {
                    statement: s.statement.clone(),
                    application_name: s.application_name.clone(),
                    style: s.statement.style,
                    count: 0,
                    distinct: HashSet::new(),
                    total: Duration::ZERO,
                    last: s.finished_at,
                    sessions: Vec::new(),
                    parents,
                    matches: HashMap::new(),
                    reported_at: 0,
                },
            );
        }
        let burst = pool.bursts.get_mut(&fp)?;
        burst.count += 1;
        if burst.distinct.len() < MAX_DISTINCT {
            burst.distinct.insert(s.params.hash());
        }
        burst.total += s.duration;
        burst.last = s.finished_at;
        if !burst.sessions.iter().any(|(id, _)| *id == s.session) && burst.sessions.len() < MAX_BURST_SESSIONS {
            burst.sessions.push((s.session, s.origin.label.clone()));
        }
        for (p, parent) in burst.parents.iter().enumerate() {
            for (param, value) in s.params.iter() {
                for column in 0..parent.result.columns() {
                    if parent.result.contains(column, value) {
                        *burst.matches.entry((p, param, column)).or_default() += 1;
                    }
                }
            }
        }
        // One session's proven burst is the per-session detector's; this one is the pool's.
        let due = burst.sessions.len() >= 2
            && burst.distinct.len() >= min
            && burst.link().is_some()
            && (burst.reported_at == 0 || burst.count >= burst.reported_at * 2);
        if due {
            // A session that ran part of the children may have reported its share already: this
            // is then the same finding, grown, not a second one.
            let proven = self.confirmed.get(&fp).is_some_and(|t| since(*t, s.finished_at) <= CONFIRMED_FOR);
            let occurrence = if burst.reported_at == 0 && !proven { Occurrence::New } else { Occurrence::Update };
            burst.reported_at = burst.count;
            let reported = burst.describe(occurrence);
            if let Some((finding, _)) = &reported {
                if self.parallel.len() >= MAX_SESSIONS {
                    self.parallel.clear();
                }
                self.parallel.insert(finding.key.clone(), s.finished_at);
            }
            self.confirmed.insert(fp, s.finished_at);
            return reported.or(out);
        }
        out
    }

    /// True when the pool already reported the finding `key` as parallel (recently): a
    /// session's own report of its share must not replace it.
    pub fn is_parallel(&self, key: &str, at: SystemTime) -> bool {
        self.parallel.get(key).is_some_and(|t| since(*t, at) <= CONFIRMED_FOR)
    }

    /// A session's run ended while the session lives on: a bounded burst with no proven parent.
    fn unlinked(&self, run: &Run) -> Option<Reported> {
        let min = self.config.min_children;
        let fp = run.statement.fingerprint;
        let proven_elsewhere = self.confirmed.get(&fp).is_some_and(|t| since(*t, run.last) <= CONFIRMED_FOR);
        if run.steady() || run.count < min || run.distinct.len() < min || proven_elsewhere {
            return None;
        }
        let sessions = [run.label.to_string()];
        let described = Described {
            child: &run.statement,
            style: run.statement.style,
            count: run.count,
            distinct: run.distinct.len(),
            total: run.total,
            sessions: &sessions,
            proof: Proof::Unlinked,
            samples: None,
        };
        let caller = Caller { tags: run.statement.tags.clone(), application_name: run.application_name.clone() };
        Some((described.finding(Occurrence::New), caller))
    }

    /// A session proved an N+1 of `child` itself: it is not reported again as unlinked.
    pub fn confirmed_in_session(&mut self, child: Fingerprint, at: SystemTime) {
        if self.confirmed.len() >= MAX_SESSIONS {
            self.confirmed.retain(|_, t| since(*t, at) <= CONFIRMED_FOR);
        }
        self.confirmed.insert(child, at);
    }

    /// The session closed: its run is dropped unreported (a load test ends this way).
    pub fn session_closed(&mut self, session: u64) {
        self.runs.remove(&session);
    }

    /// Runs and pool bursts that went quiet by `now` are over.
    pub fn check(&mut self, now: SystemTime) -> Vec<Reported> {
        let gap = self.config.gap;
        let idle: Vec<u64> = self.runs.iter().filter(|(_, r)| since(r.last, now) > gap).map(|(id, _)| *id).collect();
        let mut out = Vec::new();
        for id in idle {
            if let Some(run) = self.runs.remove(&id) {
                out.extend(self.unlinked(&run));
            }
        }
        for pool in self.pools.values_mut() {
            let quiet: Vec<Fingerprint> =
                pool.bursts.iter().filter(|(_, b)| since(b.last, now) > gap).map(|(fp, _)| *fp).collect();
            for fp in quiet {
                if let Some(b) = pool.bursts.remove(&fp) {
                    out.extend(final_report(&b));
                }
            }
            pool.parents.retain(|p| since(p.at, now) <= PARENT_WINDOW);
        }
        self.pools.retain(|_, p| !p.parents.is_empty() || !p.bursts.is_empty());
        out
    }
}

/// The pool `key` (a new one, when it has none yet).
fn pool(pools: &mut HashMap<u64, Pool>, key: u64) -> &mut Pool {
    // The length first: below the cap (nearly always) one lookup, not two.
    if pools.len() >= MAX_POOLS && !pools.contains_key(&key) {
        pools.clear();
    }
    pools.entry(key).or_default()
}

fn final_report(b: &PoolBurst) -> Option<Reported> {
    (b.reported_at > 0 && b.count > b.reported_at).then(|| b.describe(Occurrence::Update)).flatten()
}

fn since(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{text_key, Params};
    use crate::events::{SessionOrigin, Statement};

    struct Feed {
        watch: BurstWatch,
        t: SystemTime,
        out: Vec<Finding>,
    }

    fn origin(session: u64, pool: &str) -> Arc<SessionOrigin> {
        Arc::new(SessionOrigin {
            label: format!("Session {session}").into(),
            pool: xxhash_rust::xxh3::xxh3_64(pool.as_bytes()),
        })
    }

    fn column(name: &str, values: &[String]) -> Arc<ResultDigest> {
        let keys = values.iter().map(|v| text_key(v.as_bytes())).collect();
        Arc::new(ResultDigest::new(vec![Some(Arc::from(name))].into(), [keys]))
    }

    impl Feed {
        fn new() -> Self {
            Self { watch: BurstWatch::new(NPlusOneConfig::default()), t: SystemTime::now(), out: Vec::new() }
        }

        fn run(&mut self, session: u64, sql: &str, params: &[&str], result: Option<Arc<ResultDigest>>) {
            self.t += Duration::from_millis(2);
            let mut event = StatementEvent::sample(sql);
            event.session = session;
            event.statement = Statement::from_sql(sql);
            event.finished_at = self.t;
            event.params = Params::from_texts(params.iter().copied());
            event.result = result;
            event.origin = origin(session, "app/shop/web/127.0.0.1");
            self.out.extend(self.watch.statement(&event).into_iter().map(|(f, _)| f));
        }

        fn idle(&mut self, by: Duration) {
            self.t += by;
            self.out.extend(self.watch.check(self.t).into_iter().map(|(f, _)| f));
        }
    }

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| i.to_string()).collect()
    }

    const CHILD: &str = "select * from orders where user_id = $1";

    #[test]
    fn a_bounded_burst_with_no_parent_is_an_unconfirmed_n_plus_one_once_it_ends() {
        for end in ["another statement", "idle"] {
            let mut f = Feed::new();
            for id in ids(30) {
                f.run(1, CHILD, &[&id], None);
            }
            assert!(f.out.is_empty(), "not before it ends");
            match end {
                "idle" => f.idle(Duration::from_secs(2)),
                _ => f.run(1, "commit", &[], None),
            }
            assert_eq!(f.out.len(), 1, "{end}");
            let found = &f.out[0];
            assert_eq!(found.severity, crate::advice::Severity::Info);
            assert_eq!(found.evidence["confirmed"], false);
            assert_eq!(found.evidence["children"], 30);
            assert_eq!(found.evidence["round_trips_saved"], 29);
            assert!(found.message.contains("did not come from an earlier result"), "{}", found.message);
        }
    }

    #[test]
    fn steady_repetition_and_load_tests_are_never_reported() {
        // pgbench -S: one statement for the whole run, then the session closes.
        let mut f = Feed::new();
        for i in 0..3000 {
            f.run(1, "select abalance from pgbench_accounts where aid = $1", &[&i.to_string()], None);
        }
        f.run(1, "select 1", &[], None);
        f.idle(Duration::from_secs(5));
        assert!(f.out.is_empty(), "past MAX_BURST it is steady: {:?}", f.out);
        // A short run cut by the session closing (pgbench -t).
        let mut f = Feed::new();
        for id in ids(10) {
            f.run(1, CHILD, &[&id], None);
        }
        f.watch.session_closed(1);
        f.idle(Duration::from_secs(5));
        assert!(f.out.is_empty());
        // A poller: one execution a second and a half.
        let mut f = Feed::new();
        for id in ids(10) {
            f.run(1, CHILD, &[&id], None);
            f.idle(Duration::from_millis(1500));
        }
        assert!(f.out.is_empty());
        // Interleaved: a parent and a child per request (TPC-B-like), and the same parameters.
        let mut f = Feed::new();
        for id in ids(10) {
            f.run(
                1,
                "select user_id from sessions where token = $1",
                &[&id],
                Some(column("user_id", std::slice::from_ref(&id))),
            );
            f.run(1, CHILD, &[&id], None);
        }
        for _ in 0..10 {
            f.run(2, CHILD, &["1"], None);
        }
        f.idle(Duration::from_secs(2));
        assert!(f.out.is_empty(), "{:?}", f.out);
    }

    #[test]
    fn children_spread_over_a_pool_are_one_n_plus_one_when_a_parent_holds_their_parameters() {
        let mut f = Feed::new();
        f.run(1, "select id from users", &[], Some(column("id", &ids(12))));
        for (i, id) in ids(12).iter().enumerate() {
            f.run(2 + (i % 4) as u64, CHILD, &[id], None);
        }
        let found = f.out.iter().find(|x| x.evidence["parallel"] == true).expect("a parallel N+1");
        assert_eq!(found.evidence["confirmed"], true);
        assert_eq!(found.evidence["link"], "users.id -> orders.user_id");
        assert!(found.title.contains("in parallel"), "{}", found.title);
        assert!(found.suggestion.contains("beats concurrency"), "{}", found.suggestion);
        f.idle(Duration::from_secs(2));
        let last = f.out.last().unwrap();
        assert_eq!(last.evidence["children"], 12, "final size: {:?}", last.evidence);
        assert_eq!(last.evidence["sessions"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn independent_requests_in_a_pool_are_not_one_n_plus_one() {
        // Two users' requests, each with its own parent, interleaving the same lookup.
        let mut f = Feed::new();
        let (a, b) = (ids(6)[..3].to_vec(), ids(6)[3..].to_vec());
        f.run(1, "select id from users where org = $1", &["1"], Some(column("id", &a)));
        f.run(2, "select id from users where org = $1", &["2"], Some(column("id", &b)));
        for (x, y) in a.iter().zip(&b) {
            f.run(1, CHILD, &[x], None);
            f.run(2, CHILD, &[y], None);
        }
        f.run(1, "commit", &[], None);
        f.run(2, "commit", &[], None);
        f.idle(Duration::from_secs(2));
        assert!(f.out.is_empty(), "{:?}", f.out);
    }

    #[test]
    fn a_child_a_session_already_proved_is_not_reported_again_as_unlinked() {
        let mut f = Feed::new();
        f.watch.confirmed_in_session(Statement::from_sql(CHILD).fingerprint, f.t);
        for id in ids(8) {
            f.run(1, CHILD, &[&id], None);
        }
        f.run(1, "commit", &[], None);
        assert!(f.out.is_empty());
    }
}
