//! `slow_query`: a query shape whose 95th percentile latency exceeds `--slow` over at least
//! `--slow-min-calls` calls, or a single call that took `--slow-once` or more.
//!
//! The p95 rule is checked periodically from the per-fingerprint statistics, so it fires while the
//! condition holds. Only shapes that ran since the last check and have had at least one call over
//! the threshold are looked at: a shape that never took `--slow` cannot have its p95 above it.
//!
//! The one-call rule is checked per statement: on a development database a statement that takes
//! seconds often runs once (a report, a page opened once), never reaching `--slow-min-calls`. Its
//! findings merge per fingerprint under their own key; a shape whose p95 finding is in progress
//! gets no one-call findings, which would only repeat it.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::advice::{Finding, Kind, Occurrence, Severity};
use crate::detect::lock_contention::truncate;
use crate::events::StatementEvent;
use crate::fingerprint::Fingerprint;
use crate::sql_shape;
use crate::stats::{FingerprintStats, QueryStats};

/// Thresholds (`--slow`, `--slow-min-calls`, `--slow-once`).
#[derive(Debug, Clone)]
pub struct SlowQueryConfig {
    /// A shape whose p95 is at least this is slow.
    pub threshold: Duration,
    /// Calls needed before the p95 means anything.
    pub min_calls: u64,
    /// One call at least this long is slow on its own; zero turns the one-call rule off.
    pub once: Duration,
}

impl Default for SlowQueryConfig {
    fn default() -> Self {
        Self { threshold: Duration::from_millis(100), min_calls: 5, once: Duration::from_secs(1) }
    }
}

/// Most shapes remembered as having had a slow call; past it the set starts over.
const MAX_CANDIDATES: usize = 10_000;

/// Which shapes may be slow, which ran since the last check, and which are reported now.
#[derive(Debug, Default)]
pub struct SlowQueryWatch {
    candidates: HashSet<Fingerprint>,
    dirty: HashSet<Fingerprint>,
    firing: HashSet<Fingerprint>,
}

impl SlowQueryWatch {
    /// Notes one finished statement; returns the one-call finding when it took `--slow-once` or
    /// more.
    pub fn observe(&mut self, e: &StatementEvent, config: &SlowQueryConfig) -> Option<Finding> {
        let fp = e.statement.fingerprint;
        if e.duration >= config.threshold {
            if self.candidates.len() >= MAX_CANDIDATES && !self.candidates.contains(&fp) {
                self.candidates.clear();
            }
            self.candidates.insert(fp);
        }
        if self.candidates.contains(&fp) {
            self.dirty.insert(fp);
        }
        let once = !config.once.is_zero()
            && e.duration >= config.once
            && !self.firing.contains(&fp)
            && plannable(&e.statement.text);
        once.then(|| one_call(e, config))
    }

    /// Findings for the shapes that ran since the last check and are slow now.
    pub fn check(&mut self, stats: &QueryStats, config: &SlowQueryConfig) -> Vec<Finding> {
        let mut out = Vec::new();
        for fp in std::mem::take(&mut self.dirty) {
            let Some(s) = stats.get(fp) else {
                // Evicted or reset.
                self.candidates.remove(&fp);
                self.firing.remove(&fp);
                continue;
            };
            let threshold_us = u64::try_from(config.threshold.as_micros()).unwrap_or(u64::MAX);
            if s.calls >= config.min_calls && s.quantile_us(0.95) >= threshold_us {
                let occurrence = if self.firing.insert(fp) { Occurrence::New } else { Occurrence::Update };
                out.push(finding(fp, &s, config, occurrence));
            } else {
                self.firing.remove(&fp);
            }
        }
        out
    }
}

fn ms(us: u64) -> f64 {
    (us as f64 / 10.0).round() / 100.0
}

/// True for a statement EXPLAIN can show the plan of: a slow migration (CREATE INDEX, ALTER
/// TABLE), VACUUM or COPY has no plan to improve (lock_hazard_ddl covers DDL).
fn plannable(text: &str) -> bool {
    matches!(sql_shape::verb(text), "SELECT" | "VALUES" | "TABLE" | "WITH" | "INSERT" | "UPDATE" | "DELETE" | "MERGE")
}

/// A duration as a sentence reads it: `1.5 s`, `1 s`, or `350.2 ms` under a second.
fn spoken(d: Duration) -> String {
    let (n, unit) = if d >= Duration::from_secs(1) { (d.as_secs_f64(), "s") } else { (d.as_secs_f64() * 1000.0, "ms") };
    let n = format!("{n:.1}");
    format!("{} {unit}", n.strip_suffix(".0").unwrap_or(&n))
}

/// Where the suggestion of either rule starts: how to find where the time goes.
const EXPLAIN_FIRST: &str = "Run EXPLAIN (ANALYZE, BUFFERS) on it with real parameter values to see where the time \
     goes. A sequential scan of a large table that keeps few rows wants an index on the columns of its WHERE clause; \
     a large sort wants an index matching its ORDER BY; a join that loops over many rows wants an index on the inner \
     side's join column.";

/// Longest query text in a title, in characters (cut at a word).
const TITLE_QUERY: usize = 60;

/// The advice for slow shape `fp`.
pub fn finding(fp: Fingerprint, s: &FingerprintStats, config: &SlowQueryConfig, occurrence: Occurrence) -> Finding {
    let (p50, p95, max) = (s.quantile_us(0.5), s.quantile_us(0.95), s.max_us);
    let threshold_ms = config.threshold.as_secs_f64() * 1000.0;
    let rows_per_call = if s.calls == 0 { 0.0 } else { s.rows as f64 / s.calls as f64 };
    let severity = if ms(p95) >= threshold_ms * 10.0 { Severity::Critical } else { Severity::Warning };
    let mut suggestion = String::from(EXPLAIN_FIRST);
    if rows_per_call >= 1000.0 {
        suggestion.push_str(&format!(
            " It returns {rows_per_call:.0} rows per call: fetch only what is shown (LIMIT with keyset pagination) or \
             aggregate in SQL."
        ));
    }
    if p50.saturating_mul(4) <= p95 {
        suggestion.push_str(
            " Most calls are fast (the median is far below the p95): the slow ones may be waiting on locks (see \
             lock_contention advice), reading cold data, or taking parameter values that match many rows.",
        );
    }
    Finding {
        kind: Kind::SlowQuery,
        key: fp.to_string(),
        occurrence,
        severity,
        title: format!(
            "Slow query: p95 {:.1} ms over {} calls of `{}`",
            ms(p95),
            s.calls,
            truncate(&s.text, TITLE_QUERY)
        ),
        message: format!(
            "`{}` has a 95th percentile latency of {:.1} ms over its {} calls (median {:.1} ms, slowest {:.1} ms), over the \
             {threshold_ms:.0} ms threshold. Times are measured at pgvisor, from forwarding the query to its completion, so they include the \
             network to PostgreSQL and the time to send the rows.",
            s.text,
            ms(p95),
            s.calls,
            ms(p50),
            ms(max)
        ),
        suggestion,
        fingerprints: vec![fp],
        evidence: json!({
            "query": s.text.to_string(),
            "calls": s.calls,
            "errors": s.error_count(),
            "rows": s.rows,
            "rows_per_call": (rows_per_call * 10.0).round() / 10.0,
            "mean_ms": ms(s.mean_us().round() as u64),
            "p50_ms": ms(p50),
            "p95_ms": ms(p95),
            "max_ms": ms(max),
            "threshold_ms": threshold_ms,
        }),
    }
}

/// The advice for one call of `e` that took `--slow-once` or more.
pub fn one_call(e: &StatementEvent, config: &SlowQueryConfig) -> Finding {
    let fp = e.statement.fingerprint;
    let text = &e.statement.text;
    let duration_ms = (e.duration.as_secs_f64() * 1e5).round() / 100.0;
    let severity = if e.duration >= config.once.saturating_mul(10) { Severity::Critical } else { Severity::Warning };
    let rows = if e.rows == 1 { "1 row".to_string() } else { format!("{} rows", e.rows) };
    let outcome = match e.error {
        Some(state) => format!(" and then failed with SQLSTATE {}", state.as_str()),
        None if sql_shape::is_read(text) => format!(" and returned {rows}"),
        None if matches!(sql_shape::verb(text), "INSERT" | "UPDATE" | "DELETE" | "MERGE") => {
            format!(" and changed {rows}")
        }
        None => String::new(),
    };
    let mut suggestion = String::from(EXPLAIN_FIRST);
    if e.rows >= 1000 && sql_shape::is_read(text) {
        suggestion.push_str(&format!(
            " It returned {} rows: fetch only what is shown (LIMIT with keyset pagination) or aggregate in SQL.",
            e.rows
        ));
    }
    suggestion.push_str(
        " A one-off (a migration, a backfill, a report) may be allowed to take its time: if so, ignore this \
         fingerprint (--ignore-fingerprints).",
    );
    Finding {
        kind: Kind::SlowQuery,
        key: format!("once:{fp}"),
        occurrence: Occurrence::New,
        severity,
        title: format!("Slow query: {} in one call of `{}`", spoken(e.duration), truncate(text, TITLE_QUERY)),
        message: format!(
            "One call of `{text}` in {} took {}{outcome}, over the {} threshold for a single statement. Times \
             are measured at pgvisor, from forwarding the query to its completion, so they include the network to \
             PostgreSQL and the time to send the rows.",
            e.origin.label,
            spoken(e.duration),
            spoken(config.once)
        ),
        suggestion,
        fingerprints: vec![fp],
        evidence: json!({
            "query": text.to_string(),
            "duration_ms": duration_ms,
            "rows": e.rows,
            "error": e.error.map(|s| s.as_str().to_string()),
            "session": e.origin.label.to_string(),
            "threshold_ms": config.once.as_secs_f64() * 1000.0,
        }),
    }
}

/// The normalised text a slow_query finding is about.
pub fn statement_of(f: &Finding) -> Option<&str> {
    f.evidence["query"].as_str()
}

/// Adds to a finding that some runs of its statement waited for locks held by other sessions
/// (lock_contention saw them wait): that time is not its plan's.
pub fn mention_lock_waits(f: &mut Finding) {
    f.message.push_str(" Some of its runs waited for locks held by other sessions (see the lock_contention advice).");
    f.suggestion = format!(
        "First shorten the transactions that hold the locks it waits for (see lock_contention); then, if it is still \
         slow, look at its plan. {}",
        f.suggestion
    );
    f.evidence["waited_for_locks"] = serde_json::Value::Bool(true);
}

#[cfg(test)]
mod tests {

    use super::*;

    fn event(sql: &str, ms: u64) -> StatementEvent {
        StatementEvent { duration: Duration::from_millis(ms), rows: 3, ..StatementEvent::sample(sql) }
    }

    fn run(watch: &mut SlowQueryWatch, stats: &QueryStats, sql: &str, ms: u64) -> Option<Finding> {
        let e = event(sql, ms);
        stats.record(&e);
        watch.observe(&e, &SlowQueryConfig::default())
    }

    #[test]
    fn fires_while_p95_is_over_the_threshold() {
        let (mut watch, stats, config) = (SlowQueryWatch::default(), QueryStats::new(100), SlowQueryConfig::default());
        for _ in 0..4 {
            run(&mut watch, &stats, "select * from big where x = 1", 150);
        }
        assert!(watch.check(&stats, &config).is_empty(), "4 calls are not enough");
        run(&mut watch, &stats, "select * from big where x = 2", 160);
        let found = watch.check(&stats, &config);
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!((f.kind, f.occurrence, f.severity), (Kind::SlowQuery, Occurrence::New, Severity::Warning));
        assert_eq!(f.evidence["calls"], 5);
        assert_eq!(f.evidence["query"], "SELECT * FROM big WHERE x = $1");
        assert!(f.evidence["p95_ms"].as_f64().unwrap() >= 150.0, "{}", f.evidence);
        assert!(watch.check(&stats, &config).is_empty(), "no new calls, nothing new to say");
        assert!(run(&mut watch, &stats, "select * from big where x = 3", 2000).is_none(), "the p95 advice covers it");
        let again = watch.check(&stats, &config);
        assert_eq!(again[0].occurrence, Occurrence::Update, "still the same episode");
        assert_eq!(again[0].evidence["calls"], 6);
    }

    #[test]
    fn fast_queries_and_a_single_slow_call_are_not_slow() {
        let (mut watch, stats, config) = (SlowQueryWatch::default(), QueryStats::new(100), SlowQueryConfig::default());
        for _ in 0..100 {
            run(&mut watch, &stats, "select * from small where id = 1", 2);
        }
        assert!(run(&mut watch, &stats, "select * from small where id = 1", 900).is_none());
        assert!(run(&mut watch, &stats, "select * from once", 900).is_none(), "under --slow-once");
        assert!(watch.check(&stats, &config).is_empty());
        stats.reset();
        run(&mut watch, &stats, "select * from small where id = 1", 900);
        assert!(watch.check(&stats, &config).is_empty(), "after a reset the calls start over");
    }

    #[test]
    fn one_very_slow_call_is_slow_on_its_own() {
        let (mut watch, stats) = (SlowQueryWatch::default(), QueryStats::new(100));
        let f =
            run(&mut watch, &stats, "select * from report where day = '2024-05-01'", 1500).expect("one call of 1.5 s");
        assert_eq!((f.kind, f.occurrence, f.severity), (Kind::SlowQuery, Occurrence::New, Severity::Warning));
        assert_eq!(f.key, format!("once:{}", f.fingerprints[0]), "its own key, per fingerprint");
        assert_eq!(f.evidence["duration_ms"], 1500.0);
        assert_eq!(f.evidence["rows"], 3);
        assert_eq!(f.evidence["threshold_ms"], 1000.0);
        assert_eq!(f.title, "Slow query: 1.5 s in one call of `SELECT * FROM report WHERE day = $1`");
        assert!(f.message.starts_with("One call of `SELECT * FROM report WHERE day = $1`"), "{}", f.message);
        assert!(f.message.contains("took 1.5 s and returned 3 rows"), "{}", f.message);
        let again = run(&mut watch, &stats, "select * from report where day = '2024-05-02'", 12_000).unwrap();
        assert_eq!((again.key, again.severity), (f.key, Severity::Critical), "ten times the threshold");

        let migration = event("create index on orders (created_at)", 4000);
        assert!(watch.observe(&migration, &SlowQueryConfig::default()).is_none(), "no plan to look at");
        let off = SlowQueryConfig { once: Duration::ZERO, ..SlowQueryConfig::default() };
        assert!(watch.observe(&event("select * from other", 5000), &off).is_none(), "0 turns it off");
        let lower = SlowQueryConfig { once: Duration::from_millis(300), ..SlowQueryConfig::default() };
        let f = watch.observe(&event("update t set a = 1", 350), &lower).unwrap();
        assert!(f.message.contains("took 350 ms and changed 3 rows, over the 300 ms threshold"), "{}", f.message);
    }

    #[test]
    fn titles_name_the_query_cut_at_a_word() {
        let (mut watch, stats, config) = (SlowQueryWatch::default(), QueryStats::new(100), SlowQueryConfig::default());
        let sql = "select id, customer_id, status, total, created_at, updated_at from orders where status = 'open'";
        for _ in 0..5 {
            run(&mut watch, &stats, sql, 150);
        }
        let f = &watch.check(&stats, &config)[0];
        assert_eq!(
            f.title,
            "Slow query: p95 150.0 ms over 5 calls of `SELECT id, customer_id, status, total, created_at, ...`"
        );
    }
}
