//! `repeated_query`: one session running the same read with the same parameters again and
//! again in a short time, getting the same answer each time.
//!
//! Per session, per (shape, parameter values): at least `--repeated-query-min` (default 10)
//! executions within `--repeated-query-window` (default 2 s). The streak goes on while the
//! repeats keep coming within the window, and is updated each time it doubles. Different
//! parameters are `n_plus_one`'s business; statements that touch no table (`SELECT 1` pool
//! pings, `SELECT now()`) cost nothing to repeat and are left out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt};

use serde_json::json;

use crate::advice::{Finding, Kind, Occurrence, Severity};
use crate::model::FinishedStatement;

/// Thresholds (`--repeated-query-min`, `--repeated-query-window`).
#[derive(Debug, Clone)]
pub struct RepeatedQueryConfig {
    /// Repeats within the window that make the advice.
    pub min_repeats: usize,
    /// The window.
    pub window: Duration,
}

impl Default for RepeatedQueryConfig {
    fn default() -> Self {
        Self { min_repeats: 10, window: Duration::from_secs(2) }
    }
}

/// Most (shape, parameters) pairs followed per session.
const MAX_TRACKED: usize = 256;

#[derive(Debug)]
struct Repeats {
    /// The one execution of a streak that has only one: most keys of a load test are seen once,
    /// and then cost no allocation. `None` once `recent` holds the executions.
    lone: Option<Instant>,
    /// Executions within the window, once there are two or more.
    recent: VecDeque<Instant>,
    /// Executions since the streak started (0: no streak reported).
    streak: usize,
    reported_at: usize,
    started: Instant,
    total: Duration,
    rows: u64,
}

impl Repeats {
    /// A streak starting at `at`.
    fn starting(at: Instant) -> Self {
        Self {
            lone: None,
            recent: VecDeque::new(),
            streak: 0,
            reported_at: 0,
            started: at,
            total: Duration::ZERO,
            rows: 0,
        }
    }

    /// The latest execution.
    fn last(&self) -> Option<Instant> {
        self.recent.back().copied().or(self.lone)
    }

    /// Executions within the window.
    fn within(&self) -> usize {
        self.recent.len() + usize::from(self.lone.is_some())
    }
}

/// Per-session repeat counting.
#[derive(Debug, Default)]
pub struct RepeatedQueryDetector {
    config: RepeatedQueryConfig,
    tracked: HashMap<(u64, u64), Repeats>,
}

impl RepeatedQueryDetector {
    /// A detector with these thresholds.
    pub fn new(config: RepeatedQueryConfig) -> Self {
        Self { config, tracked: HashMap::new() }
    }

    /// Notes one execution; returns a finding when a streak reaches the threshold or doubles.
    pub fn observe(&mut self, s: &FinishedStatement, session: &str) -> Option<Finding> {
        if !s.statement.shape.read || !s.statement.shape.has_table {
            return None;
        }
        // The text, not the fingerprint: the same query on another schema is another answer.
        let key = (s.statement.text_key, s.params.unwrap_or(0));
        let window = self.config.window;
        if self.tracked.len() >= MAX_TRACKED && !self.tracked.contains_key(&key) {
            self.tracked.retain(|_, r| r.last().is_some_and(|t| s.at.duration_since(t) <= window));
            if self.tracked.len() >= MAX_TRACKED {
                self.tracked.clear();
            }
        }
        let r = self.tracked.entry(key).or_insert_with(|| Repeats::starting(s.at));
        while r.recent.front().is_some_and(|t| s.at.duration_since(*t) > window) {
            r.recent.pop_front();
        }
        if r.recent.is_empty() {
            match r.lone.take() {
                // Seen twice within the window: now the executions are worth a list.
                Some(t) if s.at.duration_since(t) <= window => r.recent.extend([t, s.at]),
                // New, or quiet for a whole window: a new streak.
                _ => *r = Repeats { lone: Some(s.at), ..Repeats::starting(s.at) },
            }
        } else {
            r.recent.push_back(s.at);
        }
        r.streak += 1;
        r.total += s.duration;
        r.rows = s.rows;
        if r.recent.len() > self.config.min_repeats {
            // Only the count within the window matters once it is past the threshold.
            r.recent.pop_front();
        }
        let occurrence = match r.reported_at {
            0 if r.within() >= self.config.min_repeats => Occurrence::New,
            n if n > 0 && r.streak >= n * 2 => Occurrence::Update,
            _ => return None,
        };
        r.reported_at = r.streak;
        let (streak, span, total, rows) = (r.streak, s.at.duration_since(r.started), r.total, r.rows);
        Some(self.finding(s, streak, span, total, rows, session, occurrence))
    }

    #[allow(clippy::too_many_arguments)]
    fn finding(
        &self,
        s: &FinishedStatement,
        repeats: usize,
        span: Duration,
        total: Duration,
        rows: u64,
        session: &str,
        occurrence: Occurrence,
    ) -> Finding {
        let text = &s.statement.text;
        let (span_s, total_ms) = (span.as_secs_f64(), (total.as_secs_f64() * 1e5).round() / 100.0);
        let within = if span_s < 1.0 { format!("{:.0} ms", span_s * 1000.0) } else { format!("{span_s:.1} s") };
        let with = if s.params.is_some() { "with the same parameter values" } else { "(it takes no parameters)" };
        Finding {
            kind: Kind::RepeatedQuery,
            key: s.statement.fingerprint.to_string(),
            occurrence,
            severity: if repeats >= 100 { Severity::Critical } else { Severity::Warning },
            title: format!("Same query {repeats} times in {within}, same parameters"),
            message: format!(
                "{session} ran `{text}` {repeats} times in {within} {with}, getting the same answer each time unless \
                 the data changed in between: {total_ms} ms of round trips spent on one answer."
            ),
            suggestion: "Run it once and reuse the result: hoist it out of the loop, or keep it for the duration of \
                         the request (a request-scoped cache or memoized property; an ORM's identity map answers \
                         lookups by primary key without a query, e.g. SQLAlchemy session.get()). If it is reference \
                         data that rarely changes, cache it in the application with a short expiry."
                .into(),
            fingerprints: vec![s.statement.fingerprint],
            evidence: json!({
                "query": text.to_string(),
                "repeats": repeats,
                "span_ms": (span_s * 1e5).round() / 100.0,
                "total_ms": total_ms,
                "rows_per_call": rows,
                "same_parameters": true,
                "session": session,
            }),
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::events::Statement;

    struct Feed {
        d: RepeatedQueryDetector,
        t: Instant,
    }

    impl Feed {
        fn new() -> Self {
            Self { d: RepeatedQueryDetector::new(RepeatedQueryConfig::default()), t: Instant::now() }
        }

        fn run(&mut self, sql: &str, params: Option<u64>, pause: Duration) -> Option<Finding> {
            self.t += pause;
            let s = FinishedStatement {
                statement: Statement::from_sql(sql),
                params,
                rows: 1,
                bytes: 40,
                columns: 2,
                duration: Duration::from_micros(500),
                at: self.t,
            };
            self.d.observe(&s, "Session 1")
        }
    }

    const MS: Duration = Duration::from_millis(10);

    #[test]
    fn same_parameters_again_and_again() {
        let mut f = Feed::new();
        let found: Vec<Finding> =
            (0..40).filter_map(|_| f.run("select * from settings where name = $1", Some(7), MS)).collect();
        assert_eq!(found.len(), 3, "new at 10, updates at 20 and 40");
        assert_eq!((found[0].kind, found[0].occurrence), (Kind::RepeatedQuery, Occurrence::New));
        assert_eq!(found[0].evidence["repeats"], 10);
        assert_eq!(found[0].evidence["query"], "SELECT * FROM settings WHERE name = $1");
        assert_eq!(found[2].evidence["repeats"], 40);
        assert_eq!(found[2].occurrence, Occurrence::Update);
        // No parameters at all counts too.
        let mut f = Feed::new();
        assert_eq!((0..10).filter_map(|_| f.run("select * from flags", None, MS)).count(), 1);
    }

    #[test]
    fn a_pause_longer_than_the_window_starts_a_new_streak() {
        // A key seen once keeps no list; the second execution within the window starts one.
        let mut f = Feed::new();
        f.d.config.min_repeats = 2;
        let sql = "select * from plans where id = $1";
        assert!(f.run(sql, Some(3), MS).is_none());
        assert!(f.run(sql, Some(3), Duration::from_secs(3)).is_none(), "the first one is out of the window");
        let found = f.run(sql, Some(3), MS).expect("two within the window");
        assert_eq!((found.occurrence, found.evidence["repeats"].as_u64()), (Occurrence::New, Some(2)));
        assert!(f.run(sql, Some(3), MS).is_none(), "updated when it doubles");
        assert!(f.run(sql, Some(3), MS).is_some_and(|u| u.occurrence == Occurrence::Update));
        // Quiet again, after a streak with a list: a new streak, counted from one.
        assert!(f.run(sql, Some(3), Duration::from_secs(3)).is_none());
        let found = f.run(sql, Some(3), MS).expect("two within the window again");
        assert_eq!(found.evidence["repeats"].as_u64(), Some(2));
    }

    #[test]
    fn different_parameters_spread_out_or_no_table_are_fine() {
        let mut f = Feed::new();
        for i in 0..50 {
            assert!(f.run("select * from orders where user_id = $1", Some(i), MS).is_none(), "that is n_plus_one");
        }
        for _ in 0..50 {
            assert!(f.run("select * from users where id = $1", Some(1), Duration::from_millis(300)).is_none());
        }
        for _ in 0..50 {
            assert!(f.run("select 1", None, MS).is_none());
            assert!(f.run("update counters set n = n + 1 where id = $1", Some(1), MS).is_none());
        }
    }
}
