//! Per-fingerprint statistics: calls, rows, errors by SQLSTATE, latency histogram.
//!
//! Sharded (DashMap) so recording one fingerprint never waits on another; capped in size, with
//! the least recently seen fingerprints evicted and the evictions counted.

use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use dashmap::DashMap;
use hdrhistogram::Histogram;

use crate::events::{SqlState, StatementEvent};
use crate::fingerprint::Fingerprint;
use crate::sync::lock;
use crate::tags::TagCounts;

/// Longest normalised text stored per fingerprint, in bytes.
pub const MAX_STORED_TEXT: usize = 4096;

/// Statistics of one fingerprint.
#[derive(Debug, Clone)]
pub struct FingerprintStats {
    /// Normalised SQL (capped at [`MAX_STORED_TEXT`]).
    pub text: Arc<str>,
    /// The first statement seen as written, constants as `$n` (capped at [`MAX_STORED_TEXT`]).
    pub display: Arc<str>,
    /// True when `display` was cut at [`MAX_STORED_TEXT`].
    pub display_truncated: bool,
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
    /// Who ran it: tag values (sqlcommenter, Marginalia, application_name) with their calls.
    pub tags: TagCounts,
    /// `quantile_us(0.99)` as of the last call recorded: sorting by p99 reads this scalar instead of
    /// walking every histogram again. `None` until asked after a new call.
    p99_us: Option<u64>,
}

impl FingerprintStats {
    fn new(text: Arc<str>, display: &Arc<str>, at: SystemTime) -> Self {
        Self {
            text,
            display: cap_text(display),
            display_truncated: display.len() > MAX_STORED_TEXT,
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
            tags: TagCounts::default(),
            p99_us: None,
        }
    }

    /// Failed executions in total.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Mean duration in µs.
    pub fn mean_us(&self) -> f64 {
        mean_us(self.total_us, self.calls)
    }

    /// Duration at quantile `q` (0..=1) in µs.
    pub fn quantile_us(&self, q: f64) -> u64 {
        self.histogram.value_at_quantile(q).min(self.max_us)
    }

    /// `quantile_us(0.99)`, computed once per new call.
    fn p99_us(&mut self) -> u64 {
        match self.p99_us {
            Some(us) => us,
            None => *self.p99_us.insert(self.quantile_us(0.99)),
        }
    }
}

/// The registry of all fingerprints.
#[derive(Debug)]
pub struct QueryStats {
    map: DashMap<Fingerprint, Mutex<FingerprintStats>, foldhash::fast::RandomState>,
    max_fingerprints: usize,
    evicted: AtomicU64,
    recorded: AtomicU64,
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

impl SortBy {
    /// The value `top` sorts on, descending; a p99 computed is kept until the next call.
    fn key(self, s: &mut FingerprintStats) -> f64 {
        match self {
            SortBy::P99 => s.p99_us() as f64,
            SortBy::Total | SortBy::Calls | SortBy::Mean => self.computed_key(s),
        }
    }

    /// The key if it can be read without walking the histogram, else an upper bound of it: a p99
    /// not computed since the last call is at most the longest call.
    fn key_or_bound(self, s: &FingerprintStats) -> Key {
        match (self, s.p99_us) {
            (SortBy::P99, None) => Key::AtMost(s.max_us as f64),
            (SortBy::P99, Some(us)) => Key::Exact(us as f64),
            (SortBy::Total | SortBy::Calls | SortBy::Mean, _) => Key::Exact(self.computed_key(s)),
        }
    }

    /// The key computed afresh, nothing kept (p99 walks the histogram).
    fn computed_key(self, s: &FingerprintStats) -> f64 {
        match self {
            SortBy::Total => s.total_us as f64,
            SortBy::Calls => s.calls as f64,
            SortBy::Mean => s.mean_us(),
            SortBy::P99 => s.quantile_us(0.99) as f64,
        }
    }
}

/// A sort key as `top` first reads it.
#[derive(Debug, Clone, Copy)]
enum Key {
    Exact(f64),
    AtMost(f64),
}

impl Key {
    fn value(self) -> f64 {
        match self {
            Key::Exact(k) | Key::AtMost(k) => k,
        }
    }
}

/// A key and its fingerprint, ordered by [`rank`]: the best is the least, so a `BinaryHeap` of
/// them keeps its worst on top.
#[derive(Debug, Clone, Copy)]
struct Ranked(f64, Fingerprint);

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        rank((self.0, self.1), (other.0, other.1))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Ranked {}

/// One fingerprint's numbers as `/api/queries` and `/metrics` show them: scalars and the
/// percentiles, without the histogram they come from.
#[derive(Debug, Clone, PartialEq)]
pub struct FingerprintSummary {
    /// Normalised SQL (capped at [`MAX_STORED_TEXT`]).
    pub text: Arc<str>,
    /// The first statement seen as written, constants as `$n` (capped at [`MAX_STORED_TEXT`]).
    pub display: Arc<str>,
    /// True when `display` was cut at [`MAX_STORED_TEXT`].
    pub display_truncated: bool,
    /// Executions.
    pub calls: u64,
    /// Rows returned or affected.
    pub rows: u64,
    /// Failed executions.
    pub errors: u64,
    /// Sum of durations, µs.
    pub total_us: u64,
    /// Shortest duration, µs (0 before the first call).
    pub min_us: u64,
    /// Median duration, µs.
    pub p50_us: u64,
    /// 95th percentile, µs.
    pub p95_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Longest duration, µs.
    pub max_us: u64,
    /// Who ran it.
    pub tags: TagCounts,
}

impl FingerprintSummary {
    fn of(s: &mut FingerprintStats) -> Self {
        Self {
            text: s.text.clone(),
            display: s.display.clone(),
            display_truncated: s.display_truncated,
            calls: s.calls,
            rows: s.rows,
            errors: s.error_count(),
            total_us: s.total_us,
            min_us: if s.calls == 0 { 0 } else { s.min_us },
            p50_us: s.quantile_us(0.5),
            p95_us: s.quantile_us(0.95),
            p99_us: s.p99_us(),
            max_us: s.max_us,
            tags: s.tags.clone(),
        }
    }

    /// Mean duration in µs.
    pub fn mean_us(&self) -> f64 {
        mean_us(self.total_us, self.calls)
    }
}

impl QueryStats {
    /// A registry holding at most `max_fingerprints` fingerprints.
    pub fn new(max_fingerprints: usize) -> Self {
        Self {
            map: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            max_fingerprints: max_fingerprints.max(1),
            evicted: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
        }
    }

    /// Records one finished statement.
    pub fn record(&self, event: &StatementEvent) {
        let us = u64::try_from(event.duration.as_micros()).unwrap_or(u64::MAX);
        let fp = event.statement.fingerprint;
        let mut added = false;
        {
            let entry = self.map.entry(fp).or_insert_with(|| {
                added = true;
                let text = cap_text(&event.statement.text);
                Mutex::new(FingerprintStats::new(text, &event.statement.display, event.finished_at))
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
            s.p99_us = None;
            s.last_seen = event.finished_at;
            s.tags.add(event.statement.tags.as_deref(), &event.application_name);
        }
        self.recorded.fetch_add(1, Ordering::Relaxed);
        // Counting the map locks every shard: only a new fingerprint can make it too big.
        if added && self.map.len() > self.max_fingerprints {
            self.evict();
        }
    }

    /// Removes the least recently seen tenth (at least one) of the fingerprints.
    fn evict(&self) {
        let mut seen: Vec<(SystemTime, Fingerprint)> =
            self.map.iter().map(|e| (lock(e.value()).last_seen, *e.key())).collect();
        // Counted from what was collected: a reset may have emptied the map since `record` looked.
        let excess = seen.len().saturating_sub(self.max_fingerprints);
        let n = excess.max(self.max_fingerprints / 10).max(1).min(seen.len());
        if n == 0 {
            return;
        }
        seen.select_nth_unstable(n - 1);
        for (_, fp) in &seen[..n] {
            if self.map.remove(fp).is_some() {
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The top `limit` fingerprints by `sort`, highest first (ties by fingerprint).
    ///
    /// Only the sort key of every fingerprint is read (a scalar, under its lock, nothing copied);
    /// the histograms are then read for the `limit` chosen ones alone, so a small listing stays
    /// cheap however many fingerprints are tracked.
    pub fn top(&self, sort: SortBy, limit: usize) -> Vec<(Fingerprint, FingerprintSummary)> {
        self.top_tagged(sort, limit, None)
    }

    /// As [`Self::top`], among the fingerprints run with tag `(key, value)` only.
    pub fn top_tagged(
        &self,
        sort: SortBy,
        limit: usize,
        tag: Option<(&str, &str)>,
    ) -> Vec<(Fingerprint, FingerprintSummary)> {
        if limit == 0 {
            return Vec::new();
        }
        let keys: Vec<(Key, Fingerprint)> = self
            .map
            .iter()
            .filter_map(|e| {
                let s = lock(e.value());
                tag.is_none_or(|(k, v)| s.tags.has(k, v)).then(|| (sort.key_or_bound(&s), *e.key()))
            })
            .collect();
        let chosen = if keys.iter().all(|(key, _)| matches!(key, Key::Exact(_))) {
            let mut keys: Vec<(f64, Fingerprint)> = keys.into_iter().map(|(key, fp)| (key.value(), fp)).collect();
            if limit < keys.len() {
                keys.select_nth_unstable_by(limit - 1, |a, b| rank(*a, *b));
                keys.truncate(limit);
            }
            keys.into_iter().map(|(_, fp)| fp).collect()
        } else {
            self.choose_within_bounds(sort, keys, limit)
        };
        // Read again: a fingerprint may have been evicted or reset since, or have moved on.
        let mut chosen: Vec<(f64, Fingerprint, FingerprintSummary)> = chosen
            .into_iter()
            .filter_map(|fp| {
                let entry = self.map.get(&fp)?;
                let mut s = lock(entry.value());
                Some((sort.key(&mut s), fp, FingerprintSummary::of(&mut s)))
            })
            .collect();
        chosen.sort_by(|a, b| rank((a.0, a.1), (b.0, b.1)));
        chosen.into_iter().map(|(_, fp, summary)| (fp, summary)).collect()
    }

    /// The best `limit` by exact key, computing as few exact keys as it can: candidates in order of
    /// their bounds, none after the `limit`-th best exact key beats the next bound (every later key
    /// is at most its bound).
    fn choose_within_bounds(&self, sort: SortBy, mut keys: Vec<(Key, Fingerprint)>, limit: usize) -> Vec<Fingerprint> {
        keys.sort_unstable_by(|a, b| rank((a.0.value(), a.1), (b.0.value(), b.1)));
        let mut best: BinaryHeap<Ranked> = BinaryHeap::with_capacity(limit + 1);
        for (key, fp) in keys {
            if best.len() == limit && best.peek().is_some_and(|worst| *worst < Ranked(key.value(), fp)) {
                break;
            }
            let exact = match key {
                Key::Exact(k) => k,
                Key::AtMost(_) => match self.map.get(&fp) {
                    Some(entry) => sort.key(&mut lock(entry.value())),
                    None => continue,
                },
            };
            best.push(Ranked(exact, fp));
            if best.len() > limit {
                best.pop();
            }
        }
        best.into_iter().map(|Ranked(_, fp)| fp).collect()
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

    /// Forgets every fingerprint. The engine resets in its own order (`Advisor::reset`): what
    /// was queued before the reset is applied first, so nothing from before it is counted after.
    pub fn reset(&self) {
        self.map.clear();
    }
}

/// Highest key first, ties by fingerprint, so equal keys list in the same order every time.
fn rank(a: (f64, Fingerprint), b: (f64, Fingerprint)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

fn mean_us(total_us: u64, calls: u64) -> f64 {
    if calls == 0 {
        0.0
    } else {
        total_us as f64 / calls as f64
    }
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
        assert_eq!((s.calls, s.rows, s.errors), (101, 100, 1));
        assert_eq!((s.min_us, s.max_us), (10, 5000));
        assert!((s.mean_us() * s.calls as f64 - s.total_us as f64).abs() < 1e-6);
        let (p50, p95, p99) = (s.p50_us, s.p95_us, s.p99_us);
        assert!(p50 <= p95 && p95 <= p99 && p99 <= s.max_us, "{p50} {p95} {p99}");
        assert!((495..=515).contains(&p50), "p50 {p50}");
        let full = stats.get(top[0].0).expect("the listed fingerprint");
        assert_eq!(full.quantile_us(0.99), p99, "the summary's percentiles are the histogram's");
        assert_eq!(full.quantile_us(1.0), 5000, "a value past the initial range is kept, not clamped");
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
        stats.record(&event("select a from t", 10, 0, None));
        assert_eq!(stats.len(), 1);
    }

    /// Every fingerprint copied out and fully sorted, keys computed afresh: what `top` did before
    /// it chose first and kept p99.
    fn top_by_full_sort(stats: &QueryStats, sort: SortBy, limit: usize) -> Vec<Fingerprint> {
        let mut all: Vec<(f64, Fingerprint)> =
            stats.map.iter().map(|e| (sort.computed_key(&lock(e.value()).clone()), *e.key())).collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        all.into_iter().take(limit).map(|(_, fp)| fp).collect()
    }

    #[test]
    fn top_of_many_chooses_the_same_rows_as_a_full_sort() {
        let stats = QueryStats::new(10_000);
        // Calls, durations and their spread vary independently, so each key ranks differently,
        // and many fingerprints tie on calls (ties are broken by fingerprint).
        for i in 0..5_000u64 {
            let sql = format!("select c{i} from t");
            let calls = 1 + (i * 7_919) % 13;
            let base = 10 + (i * 104_729) % 5_000;
            for c in 0..calls {
                let spike = if c == 0 && i % 97 == 0 { 40_000 } else { 0 };
                stats.record(&event(&sql, base + c * (i % 11) + spike, 1, None));
            }
        }
        assert_eq!(stats.len(), 5_000);
        for sort in [SortBy::Total, SortBy::Calls, SortBy::Mean, SortBy::P99] {
            let top: Vec<Fingerprint> = stats.top(sort, 10).into_iter().map(|(fp, _)| fp).collect();
            assert_eq!(top, top_by_full_sort(&stats, sort, 10), "{sort:?}");
        }
        let calls: Vec<u64> = stats.top(SortBy::Calls, 10).iter().map(|(_, s)| s.calls).collect();
        assert_eq!(calls, [13; 10], "the most called first: {calls:?}");
        assert!(stats.top(SortBy::Total, 0).is_empty());
        assert_eq!(stats.top(SortBy::Mean, 6_000).len(), 5_000);
        // A new call moves a fingerprint's p99 at once, though p99 was kept from the last listing.
        stats.record(&event("select c1 from t", 1_000_000, 1, None));
        let (fp, slowest) = stats.top(SortBy::P99, 1).remove(0);
        assert_eq!((&*slowest.text, slowest.p99_us), ("SELECT c1 FROM t", stats.get(fp).unwrap().quantile_us(0.99)));
        assert_eq!(top_by_full_sort(&stats, SortBy::P99, 10)[0], fp);
    }

    /// One long call makes a fingerprint's max a loose bound of its p99: the choice stays exact.
    #[test]
    fn p99_ranking_is_exact_when_long_calls_loosen_the_bound() {
        let stats = QueryStats::new(100);
        for _ in 0..200 {
            stats.record(&event("select a from t", 100, 0, None));
            stats.record(&event("select b from t", 1_000, 0, None));
            stats.record(&event("select c from t", 500, 0, None));
            stats.record(&event("select d from t", 2_000, 0, None));
        }
        stats.record(&event("select a from t", 50_000, 0, None));
        stats.record(&event("select c from t", 10_000_000, 0, None));
        for limit in 1..=4 {
            let top: Vec<Fingerprint> = stats.top(SortBy::P99, limit).into_iter().map(|(fp, _)| fp).collect();
            assert_eq!(top, top_by_full_sort(&stats, SortBy::P99, limit), "limit {limit}");
            stats.record(&event("select b from t", 1_000, 0, None));
        }
        let texts: Vec<String> = stats.top(SortBy::P99, 4).iter().map(|(_, s)| s.text.to_string()).collect();
        assert_eq!(texts, ["SELECT d FROM t", "SELECT b FROM t", "SELECT c FROM t", "SELECT a FROM t"]);
    }

    #[test]
    fn summary_matches_the_histogram_it_comes_from() {
        let stats = QueryStats::new(10);
        for us in [100, 200, 300, 10_000] {
            stats.record(&event("select a from t", us, 2, Some("23505")));
        }
        let (fp, summary) = stats.top(SortBy::Total, 1).remove(0);
        let s = stats.get(fp).unwrap();
        let expected = FingerprintSummary {
            text: s.text.clone(),
            display: s.display.clone(),
            display_truncated: false,
            calls: 4,
            rows: 8,
            errors: 4,
            total_us: 10_600,
            min_us: 100,
            p50_us: s.quantile_us(0.5),
            p95_us: s.quantile_us(0.95),
            p99_us: s.quantile_us(0.99),
            max_us: 10_000,
            tags: s.tags.clone(),
        };
        assert_eq!(summary, expected);
        assert_eq!(summary.mean_us(), s.mean_us());
    }

    /// A reset between `record` seeing the map over its cap and `evict` listing it leaves nothing
    /// to evict; that must not panic (it did: `select_nth_unstable(n - 1)` with n = 0).
    #[test]
    fn eviction_after_a_reset_emptied_the_map_is_a_no_op() {
        let stats = QueryStats::new(10);
        stats.record(&event("select a from t", 10, 0, None));
        stats.reset();
        stats.evict();
        assert!(stats.is_empty());
        assert_eq!(stats.evicted(), 0);
    }
}
