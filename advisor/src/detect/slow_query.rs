//! `slow_query`: a query shape whose 95th percentile latency exceeds `--slow` over at least
//! `--slow-min-calls` calls.
//!
//! Checked periodically from the per-fingerprint statistics, so it fires while the condition
//! holds. Only shapes that ran since the last check and have had at least one call over the
//! threshold are looked at: a shape that never took `--slow` cannot have its p95 above it.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::advice::{Finding, Kind, Occurrence, Severity};
use crate::events::StatementEvent;
use crate::fingerprint::Fingerprint;
use crate::stats::{FingerprintStats, QueryStats};

/// Thresholds (`--slow`, `--slow-min-calls`).
#[derive(Debug, Clone)]
pub struct SlowQueryConfig {
    /// A shape whose p95 is at least this is slow.
    pub threshold: Duration,
    /// Calls needed before the p95 means anything.
    pub min_calls: u64,
}

impl Default for SlowQueryConfig {
    fn default() -> Self {
        Self { threshold: Duration::from_millis(100), min_calls: 5 }
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
    /// Notes one finished statement.
    pub fn observe(&mut self, e: &StatementEvent, config: &SlowQueryConfig) {
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

/// The advice for slow shape `fp`.
pub fn finding(fp: Fingerprint, s: &FingerprintStats, config: &SlowQueryConfig, occurrence: Occurrence) -> Finding {
    let (p50, p95, max) = (s.quantile_us(0.5), s.quantile_us(0.95), s.max_us);
    let threshold_ms = config.threshold.as_secs_f64() * 1000.0;
    let rows_per_call = if s.calls == 0 { 0.0 } else { s.rows as f64 / s.calls as f64 };
    let severity = if ms(p95) >= threshold_ms * 10.0 { Severity::Critical } else { Severity::Warning };
    let mut suggestion = String::from(
        "Run EXPLAIN (ANALYZE, BUFFERS) on it with real parameter values to see where the time goes. A sequential \
         scan of a large table that keeps few rows wants an index on the columns of its WHERE clause; a large sort \
         wants an index matching its ORDER BY; a join that loops over many rows wants an index on the inner side's \
         join column.",
    );
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
        title: format!("Slow query: p95 {:.1} ms over {} calls", ms(p95), s.calls),
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

#[cfg(test)]
mod tests {

    use super::*;

    fn event(sql: &str, ms: u64) -> StatementEvent {
        StatementEvent { duration: Duration::from_millis(ms), rows: 3, ..StatementEvent::sample(sql) }
    }

    fn run(watch: &mut SlowQueryWatch, stats: &QueryStats, sql: &str, ms: u64) {
        let e = event(sql, ms);
        watch.observe(&e, &SlowQueryConfig::default());
        stats.record(&e);
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
        run(&mut watch, &stats, "select * from big where x = 3", 2000);
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
        run(&mut watch, &stats, "select * from small where id = 1", 900);
        run(&mut watch, &stats, "select * from once", 900);
        assert!(watch.check(&stats, &config).is_empty());
        stats.reset();
        run(&mut watch, &stats, "select * from small where id = 1", 900);
        assert!(watch.check(&stats, &config).is_empty(), "after a reset the calls start over");
    }
}
