//! `pgvisor diff A.json B.json`: how one run's report differs from another's, per scope and
//! fingerprint: new and gone queries, changed calls, p95 changes that matter, new and fixed advice.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;

use super::report::{plural, AdviceReport, QueryReport, Report, ScopeReport};
use super::shorten;

/// A p95 change is shown when it is at least this factor either way...
const P95_FACTOR: f64 = 2.0;
/// ...and at least this many milliseconds: on a shared CI machine fast queries jitter by a few.
const P95_MIN_MS: f64 = 5.0;

/// A value before and after; `None` where the scope or query did not exist.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Change<T> {
    /// In A.
    pub before: Option<T>,
    /// In B.
    pub after: Option<T>,
}

/// What changed in one query of a scope.
#[derive(Debug, Clone, Serialize)]
pub struct QueryDiff {
    /// 16 hex digits.
    pub fingerprint: String,
    /// Display text (from B when it ran there).
    pub query: String,
    /// new, gone, calls (count changed) or p95 (latency changed).
    pub change: &'static str,
    /// Calls.
    pub calls: Change<u64>,
    /// 95th percentile, ms.
    pub p95_ms: Change<f64>,
}

/// A finding that appeared or went away.
#[derive(Debug, Clone, Serialize)]
pub struct AdviceDiff {
    /// Kind.
    pub kind: String,
    /// Merge key.
    pub key: String,
    /// Severity.
    pub severity: String,
    /// One line.
    pub title: String,
}

/// What changed in one scope.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeDiff {
    /// new, gone or changed.
    pub change: &'static str,
    /// Statements.
    pub statements: Change<u64>,
    /// Queries that changed.
    pub queries: Vec<QueryDiff>,
    /// Findings in B, not in A.
    pub new_advice: Vec<AdviceDiff>,
    /// Findings in A, not in B.
    pub fixed_advice: Vec<AdviceDiff>,
}

/// The differences between two reports; scopes without any are left out.
#[derive(Debug, Clone, Serialize)]
pub struct ReportDiff {
    /// Statements in each run.
    pub statements: Change<u64>,
    /// Per scope with a difference, by name.
    pub scopes: BTreeMap<String, ScopeDiff>,
}

/// How `after` differs from `before`.
pub fn diff_reports(before: &Report, after: &Report) -> ReportDiff {
    let names: BTreeSet<&String> = before.scopes.keys().chain(after.scopes.keys()).collect();
    let empty = ScopeReport::default();
    let mut scopes = BTreeMap::new();
    for name in names {
        let (a, b) = (before.scopes.get(name), after.scopes.get(name));
        let change = match (a, b) {
            (None, _) => "new",
            (_, None) => "gone",
            _ => "changed",
        };
        let (a_scope, b_scope) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
        let queries = query_changes(a_scope, b_scope);
        let new_advice = advice_missing_from(&b_scope.advice, &a_scope.advice);
        let fixed_advice = advice_missing_from(&a_scope.advice, &b_scope.advice);
        if change == "changed" && queries.is_empty() && new_advice.is_empty() && fixed_advice.is_empty() {
            continue;
        }
        let statements = Change { before: a.map(|s| s.statements), after: b.map(|s| s.statements) };
        scopes.insert(name.clone(), ScopeDiff { change, statements, queries, new_advice, fixed_advice });
    }
    ReportDiff { statements: Change { before: Some(before.statements), after: Some(after.statements) }, scopes }
}

fn query_changes(a: &ScopeReport, b: &ScopeReport) -> Vec<QueryDiff> {
    let find = |s: &ScopeReport, fp: &str| s.queries.iter().find(|q| q.fingerprint == fp).cloned();
    let fingerprints: BTreeSet<&String> = a.queries.iter().chain(&b.queries).map(|q| &q.fingerprint).collect();
    let mut out = Vec::new();
    for fp in fingerprints {
        let (qa, qb): (Option<QueryReport>, Option<QueryReport>) = (find(a, fp), find(b, fp));
        let change = match (&qa, &qb) {
            (None, Some(_)) => "new",
            (Some(_), None) => "gone",
            (Some(x), Some(y)) if x.calls != y.calls => "calls",
            (Some(x), Some(y)) if p95_changed(x.p95_ms, y.p95_ms) => "p95",
            _ => continue,
        };
        let query = qb.as_ref().or(qa.as_ref()).map(|q| q.query.clone()).unwrap_or_default();
        out.push(QueryDiff {
            fingerprint: fp.clone(),
            query,
            change,
            calls: Change { before: qa.as_ref().map(|q| q.calls), after: qb.as_ref().map(|q| q.calls) },
            p95_ms: Change { before: qa.as_ref().map(|q| q.p95_ms), after: qb.as_ref().map(|q| q.p95_ms) },
        });
    }
    let order = |change: &str| ["new", "gone", "calls", "p95"].iter().position(|c| *c == change);
    out.sort_by_key(|q| order(q.change));
    out
}

fn p95_changed(before: f64, after: f64) -> bool {
    let (low, high) = if before <= after { (before, after) } else { (after, before) };
    high - low >= P95_MIN_MS && high >= low * P95_FACTOR
}

fn advice_missing_from(these: &[AdviceReport], others: &[AdviceReport]) -> Vec<AdviceDiff> {
    these
        .iter()
        .filter(|a| !others.iter().any(|o| o.kind == a.kind && o.key == a.key))
        .map(|a| AdviceDiff {
            kind: a.kind.clone(),
            key: a.key.clone(),
            severity: a.severity.clone(),
            title: a.title.clone(),
        })
        .collect()
}

impl ReportDiff {
    /// A table for the terminal: per scope, its changed queries and advice.
    pub fn to_table(&self, before: &str, after: &str) -> String {
        let mut out = format!("pgvisor diff: {before} -> {after}\n");
        let count = |change: &str| self.scopes.values().filter(|s| s.change == change).count();
        let queries =
            |change: &str| self.scopes.values().flat_map(|s| &s.queries).filter(|q| q.change == change).count();
        let new_advice: usize = self.scopes.values().map(|s| s.new_advice.len()).sum();
        let fixed_advice: usize = self.scopes.values().map(|s| s.fixed_advice.len()).sum();
        let _ = writeln!(
            out,
            "statements {}; scopes: {} new, {} gone, {} changed; queries: {} new, {} gone, {} with other calls, {} \
             with another p95; advice: {} new, {} fixed\n",
            change_text(self.statements, |n| n.to_string()),
            count("new"),
            count("gone"),
            count("changed"),
            queries("new"),
            queries("gone"),
            queries("calls"),
            queries("p95"),
            new_advice,
            fixed_advice
        );
        if self.scopes.is_empty() {
            out.push_str("no differences\n");
            return out;
        }
        for (name, scope) in &self.scopes {
            let _ = writeln!(
                out,
                "{name}  ({} scope, statements {})",
                scope.change,
                change_text(scope.statements, |n| n.to_string())
            );
            if !scope.queries.is_empty() {
                let _ =
                    writeln!(out, "  {:<6} {:>12} {:>16}  {:<16}  query", "change", "calls", "p95 ms", "fingerprint");
            }
            for q in &scope.queries {
                let _ = writeln!(
                    out,
                    "  {:<6} {:>12} {:>16}  {:<16}  {}",
                    q.change,
                    change_text(q.calls, |n| n.to_string()),
                    change_text(q.p95_ms, |ms| format!("{ms:.2}")),
                    q.fingerprint,
                    shorten(&q.query, 90)
                );
            }
            for a in &scope.new_advice {
                let _ = writeln!(out, "  + advice [{}] {}: {}", a.severity, a.kind, a.title);
            }
            for a in &scope.fixed_advice {
                let _ = writeln!(out, "  - advice [{}] {}: {} (fixed)", a.severity, a.kind, a.title);
            }
            out.push('\n');
        }
        let _ = writeln!(out, "{} with differences", plural(self.scopes.len(), "scope", "scopes"));
        out
    }
}

/// `3 -> 6`, `- -> 10`, or `5` when unchanged.
fn change_text<T: PartialEq + Copy>(change: Change<T>, show: impl Fn(T) -> String) -> String {
    let side = |v: Option<T>| v.map_or_else(|| "-".to_string(), &show);
    if change.before == change.after {
        side(change.after)
    } else {
        format!("{} -> {}", side(change.before), side(change.after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(json: serde_json::Value) -> Report {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn new_gone_and_changed_queries_and_advice() {
        let a = report(serde_json::json!({"pgvisor_report": 1, "statements": 3, "scopes": {
            "t1": {"statements": 2, "queries": [
                {"fingerprint": "00000000000000aa", "query": "SELECT 1", "calls": 1, "p95_ms": 0.1},
                {"fingerprint": "00000000000000bb", "query": "SELECT 2", "calls": 1, "p95_ms": 0.1}
            ]},
            "t2": {"statements": 1, "queries": [{"fingerprint": "00000000000000cc", "query": "SELECT 3", "calls": 1, "p95_ms": 0.2}]},
            "same": {"statements": 1, "queries": [{"fingerprint": "00000000000000dd", "query": "SELECT 4", "calls": 1, "p95_ms": 0.2}]}
        }}));
        let b = report(serde_json::json!({"pgvisor_report": 1, "statements": 13, "scopes": {
            "t1": {"statements": 12, "queries": [
                {"fingerprint": "00000000000000aa", "query": "SELECT 1", "calls": 2, "p95_ms": 0.1},
                {"fingerprint": "00000000000000ee", "query": "SELECT orders", "calls": 10, "p95_ms": 0.3}
            ], "advice": [{"kind": "n_plus_one", "key": "aa:ee", "severity": "warning", "title": "N+1 queries"}]},
            "same": {"statements": 1, "queries": [{"fingerprint": "00000000000000dd", "query": "SELECT 4", "calls": 1, "p95_ms": 0.9}]}
        }}));
        let diff = diff_reports(&a, &b);
        assert_eq!(diff.scopes.keys().collect::<Vec<_>>(), vec!["t1", "t2"], "p95 jitter under 5 ms is no change");
        let t1 = &diff.scopes["t1"];
        let changes: Vec<(&str, &str)> = t1.queries.iter().map(|q| (q.fingerprint.as_str(), q.change)).collect();
        assert_eq!(
            changes,
            vec![("00000000000000ee", "new"), ("00000000000000bb", "gone"), ("00000000000000aa", "calls")]
        );
        assert_eq!(t1.new_advice[0].kind, "n_plus_one");
        assert_eq!(diff.scopes["t2"].change, "gone");
        let table = diff.to_table("a.json", "b.json");
        assert!(table.contains("00000000000000ee  SELECT orders"), "{table}");
        assert!(table.contains("- -> 10"), "{table}");
        assert!(table.contains("+ advice [warning] n_plus_one: N+1 queries"), "{table}");
        assert!(p95_changed(1.0, 7.0) && p95_changed(20.0, 5.0) && !p95_changed(0.1, 4.9) && !p95_changed(10.0, 16.0));
    }
}
