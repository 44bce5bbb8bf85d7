//! The log sink for advice: a readable multi-line block, or one JSON line, for each advice's
//! first occurrence; then one line when it has grown materially (an N+1 burst logged at 5
//! queries that reached 20, a finding seen again and again, a rise in severity), so the log ends
//! with the size a finding reached and not only the size it was found at.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use advisor::advice::{Advice, Severity};
use advisor::engine::AdviceSink;
use advisor::sync::lock;
use tracing::warn;

use crate::config::LogFormat;

/// Evidence fields that measure how big a finding is, besides its count of occurrences.
const SIZES: [&str; 4] = ["children", "repeats", "distinct_texts", "errors_total"];
/// Most advice whose last logged size is remembered; past it they are forgotten (their next
/// update is noted, not logged).
const REMEMBERED: usize = 4096;

/// How an advice stood when it was last logged.
#[derive(Debug, Clone, PartialEq)]
struct Logged {
    /// Identifies the episode: after `POST /api/reset` the same id starts over.
    first_seen: SystemTime,
    severity: Severity,
    count: u64,
    /// The evidence's size fields, in the order of [`SIZES`].
    sizes: [Option<u64>; 4],
}

impl Logged {
    fn of(advice: &Advice) -> Self {
        Self {
            first_seen: advice.first_seen,
            severity: advice.severity,
            count: advice.count,
            sizes: SIZES.map(|field| advice.evidence.get(field).and_then(serde_json::Value::as_u64)),
        }
    }
}

/// Grown materially: by half again and by at least 2 (`children 5 -> 20`).
fn grew(before: u64, now: u64) -> bool {
    now >= before.saturating_add(2) && now.saturating_mul(2) >= before.saturating_mul(3)
}

/// What changed since `before` that is worth a log line (`children 5 -> 20, seen 1x -> 3x`), or
/// `None` when nothing grew materially.
fn growth(before: &Logged, now: &Logged) -> Option<String> {
    let mut changes = Vec::new();
    for (field, (b, n)) in SIZES.iter().zip(before.sizes.iter().zip(now.sizes.iter())) {
        if let (Some(b), Some(n)) = (b, n) {
            if grew(*b, *n) {
                changes.push(format!("{field} {b} -> {n}"));
            }
        }
    }
    if grew(before.count, now.count) {
        changes.push(format!("seen {}x -> {}x", before.count, now.count));
    }
    if now.severity > before.severity {
        changes.push(format!("severity {} -> {}", before.severity.as_str(), now.severity.as_str()));
    }
    (!changes.is_empty()).then(|| changes.join(", "))
}

/// What to log for `advice`: its block when it is new, the changes when it grew materially since
/// it was last logged, nothing otherwise.
#[derive(Debug, PartialEq)]
enum Line {
    First,
    Grown(String),
}

/// The last logged state of each advice, by id.
#[derive(Debug, Default)]
struct LogBook {
    logged: HashMap<String, Logged>,
}

impl LogBook {
    fn line(&mut self, advice: &Advice) -> Option<Line> {
        let now = Logged::of(advice);
        let before = self.logged.get(&advice.id).filter(|b| b.first_seen == advice.first_seen);
        let line = match before {
            // An update of an advice this log never saw begin (forgotten past REMEMBERED): noted.
            None if advice.last_seen > advice.first_seen => None,
            None => Some(Line::First),
            Some(before) => Some(Line::Grown(growth(before, &now)?)),
        };
        if !self.logged.contains_key(&advice.id) && self.logged.len() >= REMEMBERED {
            self.logged.clear();
        }
        self.logged.insert(advice.id.clone(), now);
        line
    }
}

/// Logs each advice's first occurrence in `format`, and a line for each material growth.
pub fn sink(format: LogFormat) -> AdviceSink {
    let book = Mutex::new(LogBook::default());
    Box::new(move |advice: &Advice| {
        let line = lock(&book).line(advice);
        match (line, format) {
            (None, _) => {}
            (Some(Line::First), LogFormat::Human) => warn!("advice\n{}", advice.to_block()),
            (Some(Line::Grown(changes)), LogFormat::Human) => warn!(
                "advice update: [{}] {} ({}, seen {}x; {changes})",
                advice.severity.as_str(),
                advice.title,
                advice.kind.as_str(),
                advice.count
            ),
            (Some(line), LogFormat::Json) => {
                let json = serde_json::to_string(advice).unwrap_or_default();
                match line {
                    Line::First => {
                        warn!(target: "pgvisor::advice", kind = advice.kind.as_str(), id = %advice.id, advice = %json, "{}", advice.title)
                    }
                    Line::Grown(changes) => {
                        warn!(target: "pgvisor::advice", kind = advice.kind.as_str(), id = %advice.id, update = %changes, advice = %json, "{}", advice.title)
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use advisor::advice::Kind;
    use std::time::Duration;

    fn advice(children: u64, count: u64, severity: Severity, at: u64) -> Advice {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        Advice {
            id: "5accc8e79f601ef2".into(),
            kind: Kind::NPlusOne,
            severity,
            title: format!("N+1 queries: {children} queries, one per row"),
            message: String::new(),
            suggestion: String::new(),
            fingerprints: Vec::new(),
            evidence: serde_json::json!({ "children": children }),
            count,
            first_seen: t0,
            last_seen: t0 + Duration::from_secs(at),
        }
    }

    #[test]
    fn a_burst_that_grew_gets_a_line_with_its_final_size() {
        let mut book = LogBook::default();
        assert_eq!(book.line(&advice(5, 1, Severity::Warning, 0)), Some(Line::First));
        assert_eq!(book.line(&advice(5, 1, Severity::Warning, 0)), None, "the same first occurrence again");
        assert_eq!(book.line(&advice(6, 1, Severity::Warning, 3)), None, "5 -> 6 is not material");
        assert_eq!(book.line(&advice(20, 1, Severity::Warning, 6)), Some(Line::Grown("children 5 -> 20".into())));
        assert_eq!(book.line(&advice(24, 1, Severity::Warning, 9)), None, "measured from the last line");
        assert_eq!(
            book.line(&advice(30, 3, Severity::Critical, 12)),
            Some(Line::Grown("children 20 -> 30, seen 1x -> 3x, severity warning -> critical".into()))
        );
    }

    #[test]
    fn after_a_reset_the_same_id_is_new_again() {
        let mut book = LogBook::default();
        book.line(&advice(5, 1, Severity::Warning, 0));
        let mut again = advice(5, 1, Severity::Warning, 100);
        again.first_seen = again.last_seen;
        assert_eq!(book.line(&again), Some(Line::First));
        let mut unknown = advice(9, 1, Severity::Warning, 5);
        unknown.id = "0000000000000001".into();
        assert_eq!(book.line(&unknown), None, "an update of an advice never logged is noted, not logged");
    }

    #[test]
    fn growth_is_by_half_and_by_two() {
        assert!(!grew(1, 2) && grew(1, 3) && !grew(5, 7) && grew(5, 8) && grew(100, 150) && !grew(100, 149));
    }
}
