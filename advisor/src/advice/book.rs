//! The AdviceBook: findings merged by key, bounded, broadcast to live streams with a throttle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::broadcast;

use super::{advice_id, Advice, Finding, Kind, Occurrence, Severity};
use crate::sync::lock;

/// A key's first occurrence is streamed at once; after that at most one update per key per
/// this interval.
pub const UPDATE_INTERVAL: Duration = Duration::from_secs(3);

/// Capacity of the live stream; a subscriber that falls this far behind skips ahead.
const STREAM_CAPACITY: usize = 1024;

struct Entry {
    advice: Advice,
    sent_at: Option<Instant>,
    pending: bool,
    /// Set by `POST /api/advice/{id}/dismiss`: hidden until it gets materially worse.
    dismissed: Option<Dismissal>,
}

/// How a finding stood when it was dismissed.
#[derive(Debug, Clone, Copy)]
struct Dismissal {
    count: u64,
    severity: Severity,
}

impl Dismissal {
    /// Materially worse: the severity rose, or the count at least doubled (and by at least 2,
    /// so a finding dismissed at 1 does not come back on its very next occurrence).
    fn outgrown_by(&self, advice: &Advice) -> bool {
        advice.severity > self.severity || advice.count >= 2 * self.count.max(2)
    }
}

/// All advice, newest first on read; at most `max` entries (the least recently seen go first).
pub struct AdviceBook {
    entries: Mutex<HashMap<(Kind, String), Entry>>,
    max: usize,
    stream: broadcast::Sender<Arc<Advice>>,
}

impl std::fmt::Debug for AdviceBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdviceBook").field("len", &self.len()).field("max", &self.max).finish()
    }
}

impl AdviceBook {
    /// A book holding at most `max` findings.
    pub fn new(max: usize) -> Self {
        Self { entries: Mutex::default(), max: max.max(1), stream: broadcast::channel(STREAM_CAPACITY).0 }
    }

    /// Merges a finding; returns the advice when it is the key's first occurrence.
    pub fn record(&self, finding: Finding, now: SystemTime) -> Option<Advice> {
        let mut entries = lock(&self.entries);
        let key = (finding.kind, finding.key);
        let first = !entries.contains_key(&key);
        if first && entries.len() >= self.max {
            if let Some(oldest) = entries.iter().min_by_key(|(_, e)| e.advice.last_seen).map(|(k, _)| k.clone()) {
                entries.remove(&oldest);
            }
        }
        let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
            advice: Advice {
                id: advice_id(key.0, &key.1),
                kind: key.0,
                severity: finding.severity,
                title: String::new(),
                message: String::new(),
                suggestion: String::new(),
                fingerprints: Vec::new(),
                evidence: serde_json::Value::Null,
                count: 0,
                first_seen: now,
                last_seen: now,
            },
            sent_at: None,
            pending: false,
            dismissed: None,
        });
        let a = &mut entry.advice;
        if first || finding.occurrence == Occurrence::New {
            a.count += 1;
        }
        a.severity = finding.severity;
        a.title = finding.title;
        a.message = finding.message;
        a.suggestion = finding.suggestion;
        a.fingerprints = finding.fingerprints;
        a.evidence = finding.evidence;
        a.last_seen = now;
        let resurfaced = entry.dismissed.is_some_and(|d| d.outgrown_by(a));
        if resurfaced {
            entry.dismissed = None;
        }
        let due = resurfaced || entry.sent_at.is_none_or(|t| t.elapsed() >= UPDATE_INTERVAL);
        if entry.dismissed.is_some() {
            entry.pending = false;
        } else if due {
            entry.sent_at = Some(Instant::now());
            entry.pending = false;
            let _ = self.stream.send(Arc::new(entry.advice.clone()));
        } else {
            entry.pending = true;
        }
        first.then(|| entry.advice.clone())
    }

    /// Streams the updates held back by the throttle whose interval has passed.
    pub fn flush(&self) {
        let mut entries = lock(&self.entries);
        for entry in entries.values_mut() {
            if entry.pending
                && entry.dismissed.is_none()
                && entry.sent_at.is_none_or(|t| t.elapsed() >= UPDATE_INTERVAL)
            {
                entry.pending = false;
                entry.sent_at = Some(Instant::now());
                let _ = self.stream.send(Arc::new(entry.advice.clone()));
            }
        }
    }

    /// Every finding not dismissed, most recently seen first.
    pub fn list(&self) -> Vec<Advice> {
        let mut all: Vec<Advice> =
            lock(&self.entries).values().filter(|e| e.dismissed.is_none()).map(|e| e.advice.clone()).collect();
        all.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.id.cmp(&b.id)));
        all
    }

    /// One finding by id.
    pub fn get(&self, id: &str) -> Option<Advice> {
        lock(&self.entries).values().find(|e| e.advice.id == id).map(|e| e.advice.clone())
    }

    /// Hides finding `id` from [`list`](Self::list) and the stream until it gets materially worse
    /// (its severity rises or its count doubles); false when there is no such finding.
    pub fn dismiss(&self, id: &str) -> bool {
        let mut entries = lock(&self.entries);
        let Some(entry) = entries.values_mut().find(|e| e.advice.id == id) else { return false };
        entry.dismissed = Some(Dismissal { count: entry.advice.count, severity: entry.advice.severity });
        entry.pending = false;
        true
    }

    /// The live stream of new and updated findings.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Advice>> {
        self.stream.subscribe()
    }

    /// Number of findings.
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    /// True when there is no finding.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every finding (and so every dismissal).
    pub fn reset(&self) {
        lock(&self.entries).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advice::Severity;

    fn finding(key: &str, occurrence: Occurrence, n: u64) -> Finding {
        Finding {
            kind: Kind::NPlusOne,
            key: key.into(),
            occurrence,
            severity: Severity::Warning,
            title: format!("t{n}"),
            message: "m".into(),
            suggestion: "s".into(),
            fingerprints: vec![],
            evidence: serde_json::json!({ "n": n }),
        }
    }

    #[test]
    fn merges_by_key_and_counts_occurrences() {
        let book = AdviceBook::new(10);
        let now = SystemTime::now();
        assert!(book.record(finding("a", Occurrence::New, 1), now).is_some());
        assert!(book.record(finding("a", Occurrence::Update, 2), now).is_none());
        assert!(book.record(finding("a", Occurrence::New, 3), now).is_none());
        book.record(finding("b", Occurrence::New, 1), now);
        let a = book.list().into_iter().find(|x| x.title == "t3").unwrap();
        assert_eq!(a.count, 2);
        assert_eq!(a.evidence["n"], 3);
        assert_eq!(a.id.len(), 16);
        assert_eq!(book.len(), 2);
        book.reset();
        assert!(book.is_empty());
    }

    #[test]
    fn streams_first_at_once_then_throttles() {
        let book = AdviceBook::new(10);
        let mut rx = book.subscribe();
        let now = SystemTime::now();
        book.record(finding("a", Occurrence::New, 1), now);
        book.record(finding("a", Occurrence::New, 2), now);
        assert_eq!(rx.try_recv().unwrap().count, 1);
        assert!(rx.try_recv().is_err(), "the update waits for the interval");
        book.flush();
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn dismissed_until_materially_worse() {
        let book = AdviceBook::new(10);
        let now = SystemTime::now();
        book.record(finding("a", Occurrence::New, 1), now);
        book.record(finding("a", Occurrence::New, 2), now);
        let id = book.list()[0].id.clone();
        assert!(!book.dismiss("0000000000000000"), "unknown id");
        assert!(book.dismiss(&id));
        assert!(book.list().is_empty());
        let mut rx = book.subscribe();
        // Count 2 at dismissal: 3 is not twice as bad, 4 is.
        book.record(finding("a", Occurrence::New, 3), now);
        book.record(finding("a", Occurrence::Update, 4), now);
        book.flush();
        assert!(book.list().is_empty() && rx.try_recv().is_err(), "hidden, not streamed");
        book.record(finding("a", Occurrence::New, 5), now);
        assert_eq!(book.list()[0].count, 4);
        assert_eq!(rx.try_recv().unwrap().count, 4, "streamed at once when it comes back");

        // A rise in severity brings it back too; reset forgets the dismissal.
        book.dismiss(&id);
        let mut worse = finding("a", Occurrence::Update, 6);
        worse.severity = Severity::Critical;
        book.record(worse, now);
        assert_eq!(book.list().len(), 1);
        book.dismiss(&id);
        book.reset();
        book.record(finding("a", Occurrence::New, 7), now);
        assert_eq!(book.list().len(), 1);
    }

    #[test]
    fn bounded() {
        let book = AdviceBook::new(3);
        for i in 0..10 {
            book.record(finding(&i.to_string(), Occurrence::New, i), SystemTime::now() + Duration::from_secs(i));
        }
        assert_eq!(book.len(), 3);
        assert!(book.list().iter().any(|a| a.title == "t9"));
    }
}
