//! Per-fingerprint statistics: calls, rows, errors by SQLSTATE, latency histogram.
//!
//! Sharded (DashMap) so recording one fingerprint never waits on another; capped in size, with
//! the least recently seen fingerprints evicted and the evictions counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use dashmap::DashMap;
use hdrhistogram::Histogram;

use crate::events::{SqlState, StatementEvent};
use crate::fingerprint::Fingerprint;
use crate::sessions::lock;

/// Longest normalised text stored per fingerprint, in bytes.
pub const MAX_STORED_TEXT: usize = 4096;

/// Statistics of one fingerprint.
#[derive(Debug, Clone)]
pub struct FingerprintStats {
    /// Normalised SQL (capped at [`MAX_STORED_TEXT`]).
    pub text: Arc<str>,
    /// Executions.
    pub calls: u64,
    /// Rows returned or affected.
    pub rows: u64,
    /// Failed executions by SQLSTATE.
    pub errors: BTreeMap<SqlState, u64>,
    /// Sum of durations, µs.
    pub total_us: u64,
    /// Shortest duration, µs.
    pub min_us: u64,
    /// Longest duration, µs.
    pub max_us: u64,
    /// Latency histogram in µs, 3 significant figures.
    pub histogram: Histogram<u32>,
    /// First execution seen.
    pub first_seen: SystemTime,
    /// Last execution seen.
    pub last_seen: SystemTime,
}

impl FingerprintStats {
    fn new(text: Arc<str>, at: SystemTime) -> Self {
        Self {
            text,
            calls: 0,
            rows: 0,
            errors: BTreeMap::new(),
            total_us: 0,
            min_us: u64::MAX,
            max_us: 0,
            // Auto-resizing from 1 µs: memory grows only as far as the slowest call recorded.
            histogram: Histogram::new(3).expect("3 significant figures is valid"),
            first_seen: at,
            last_seen: at,
        }
    }

    /// Failed executions in total.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Mean duration in µs.
    pub fn mean_us(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.total_us as f64 / self.calls as f64
        }
    }

    /// Duration at quantile `q` (0..=1) in µs.
    pub fn quantile_us(&self, q: f64) -> u64 {
        self.histogram.value_at_quantile(q).min(self.max_us)
    }
}

/// The registry of all fingerprints.
#[derive(Debug)]
pub struct QueryStats {
    map: DashMap<Fingerprint, Mutex<FingerprintStats>>,
    max_fingerprints: usize,
    evicted: AtomicU64,
    recorded: AtomicU64,
    /// Statements that finished before the last reset (still queued for the engine when it
    /// happened) are not counted: microseconds since the Unix epoch, 0 before any reset.
    reset_at_us: AtomicU64,
}

/// Sort orders of [`QueryStats::top`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Total time.
    Total,
    /// Calls.
    Calls,
    /// Mean time.
    Mean,
    /// 99th percentile.
    P99,
}

impl QueryStats {
    /// A registry holding at most `max_fingerprints` fingerprints.
    pub fn new(max_fingerprints: usize) -> Self {
        Self {
            map: DashMap::new(),
            max_fingerprints: max_fingerprints.max(1),
            evicted: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            reset_at_us: AtomicU64::new(0),
        }
    }

    /// Records one finished statement.
    pub fn record(&self, event: &StatementEvent) {
        if epoch_us(event.finished_at) < self.reset_at_us.load(Ordering::Relaxed) {
            return;
        }
        let us = u64::try_from(event.duration.as_micros()).unwrap_or(u64::MAX);
        let fp = event.statement.fingerprint;
        {
            let entry = self.map.entry(fp).or_insert_with(|| {
                let text = cap_text(&event.statement.text);
                Mutex::new(FingerprintStats::new(text, event.finished_at))
            });
            let mut s = lock(entry.value());
            s.calls += 1;
            s.rows += event.rows;
            if let Some(state) = event.error {
                *s.errors.entry(state).or_default() += 1;
            }
            s.total_us = s.total_us.saturating_add(us);
            s.min_us = s.min_us.min(us);
            s.max_us = s.max_us.max(us);
            // `record` grows the auto-resizing histogram; `saturating_record` would clamp at its current top.
            let _ = s.histogram.record(us.max(1));
            s.last_seen = event.finished_at;
        }
        self.recorded.fetch_add(1, Ordering::Relaxed);
        if self.map.len() > self.max_fingerprints {
            self.evict();
        }
    }

    /// Removes the least recently seen tenth (at least one) of the fingerprints.
    fn evict(&self) {
        let mut seen: Vec<(SystemTime, Fingerprint)> =
            self.map.iter().map(|e| (lock(e.value()).last_seen, *e.key())).collect();
        let excess = self.map.len().saturating_sub(self.max_fingerprints);
        let n = excess.max(self.max_fingerprints / 10).max(1).min(seen.len());
        seen.select_nth_unstable(n - 1);
        for (_, fp) in &seen[..n] {
            if self.map.remove(fp).is_some() {
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The top `limit` fingerprints by `sort`, copied out.
    pub fn top(&self, sort: SortBy, limit: usize) -> Vec<(Fingerprint, FingerprintStats)> {
        let mut all: Vec<(Fingerprint, FingerprintStats)> =
            self.map.iter().map(|e| (*e.key(), lock(e.value()).clone())).collect();
        let key = |s: &FingerprintStats| -> f64 {
            match sort {
                SortBy::Total => s.total_us as f64,
                SortBy::Calls => s.calls as f64,
                SortBy::Mean => s.mean_us(),
                SortBy::P99 => s.quantile_us(0.99) as f64,
            }
        };
        all.sort_by(|a, b| key(&b.1).total_cmp(&key(&a.1)).then(a.0.cmp(&b.0)));
        all.truncate(limit);
        all
    }

    /// One fingerprint's statistics.
    pub fn get(&self, fp: Fingerprint) -> Option<FingerprintStats> {
        self.map.get(&fp).map(|e| lock(e.value()).clone())
    }

    /// Fingerprints tracked now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Fingerprints evicted to stay under the cap since start.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Statement executions recorded since start.
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// Forgets every fingerprint.
    pub fn reset(&self) {
        self.reset_at_us.store(epoch_us(SystemTime::now()), Ordering::Relaxed);
        self.map.clear();
    }
}

fn epoch_us(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn cap_text(text: &Arc<str>) -> Arc<str> {
    if text.len() <= MAX_STORED_TEXT {
        return text.clone();
    }
    let mut end = MAX_STORED_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end]).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn event(sql: &str, us: u64, rows: u64, error: Option<&str>) -> StatementEvent {
        StatementEvent {
            duration: Duration::from_micros(us),
            rows,
            error: error.and_then(SqlState::parse),
            ..StatementEvent::sample(sql)
        }
    }

    #[test]
    fn aggregates_calls_rows_errors_and_percentiles() {
        let stats = QueryStats::new(100);
        for i in 1..=100 {
            stats.record(&event("select * from t where id = 1", i * 10, 1, None));
        }
        stats.record(&event("select * from t where id = 2", 5000, 0, Some("57014")));
        let top = stats.top(SortBy::Calls, 10);
        assert_eq!(top.len(), 1);
        let s = &top[0].1;
        assert_eq!((s.calls, s.rows, s.error_count()), (101, 100, 1));
        assert_eq!((s.min_us, s.max_us), (10, 5000));
        assert!((s.mean_us() * s.calls as f64 - s.total_us as f64).abs() < 1e-6);
        let (p50, p95, p99) = (s.quantile_us(0.5), s.quantile_us(0.95), s.quantile_us(0.99));
        assert!(p50 <= p95 && p95 <= p99 && p99 <= s.max_us, "{p50} {p95} {p99}");
        assert!((495..=515).contains(&p50), "p50 {p50}");
        let slow = stats.top(SortBy::Calls, 10);
        assert_eq!(slow[0].1.quantile_us(1.0), 5000, "a value past the initial range is kept, not clamped");
    }

    #[test]
    fn capped_with_least_recently_seen_evicted() {
        let stats = QueryStats::new(10);
        for i in 0..25 {
            stats.record(&event(&format!("select c{i} from t"), 10, 0, None));
        }
        assert!(stats.len() <= 10);
        assert_eq!(stats.evicted() as usize + stats.len(), 25);
        assert!(stats.top(SortBy::Calls, 100).iter().any(|(_, s)| &*s.text == "SELECT c24 FROM t"), "newest kept");
    }

    #[test]
    fn sorts() {
        let stats = QueryStats::new(10);
        stats.record(&event("select a from t", 1000, 0, None));
        for _ in 0..3 {
            stats.record(&event("select b from t", 100, 0, None));
        }
        assert_eq!(&*stats.top(SortBy::Calls, 1)[0].1.text, "SELECT b FROM t");
        assert_eq!(&*stats.top(SortBy::Mean, 1)[0].1.text, "SELECT a FROM t");
        assert_eq!(&*stats.top(SortBy::Total, 1)[0].1.text, "SELECT a FROM t");
        stats.reset();
        assert!(stats.is_empty());
        // A statement that finished before the reset but reached the registry after it is not
        // counted; one that finished after it is.
        let mut before = event("select a from t", 10, 0, None);
        before.finished_at = SystemTime::now() - std::time::Duration::from_secs(1);
        stats.record(&before);
        assert!(stats.is_empty());
        stats.record(&event("select a from t", 10, 0, None));
        assert_eq!(stats.len(), 1);
    }
}
