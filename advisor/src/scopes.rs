//! Statistics and advice per scope (the test that ran them), for `pgvisor check` and
//! `pgvisor run`: a statement belongs to the scope its tags name (`test=...`, `spec=...`), else to
//! its session's application_name, else to "unscoped".
//!
//! Off unless asked for ([`ScopeConfig`] in the advisor's config): a long-running proxy has no
//! use for it. Written by the engine only; bounded in scopes and fingerprints per scope.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::advice::{Finding, Severity};
use crate::events::StatementEvent;
use crate::fingerprint::Fingerprint;
use crate::sync::lock;
use crate::tags::Tags;

/// The scope of statements that name none and whose session has no application_name.
pub const UNSCOPED: &str = "unscoped";
/// Most scopes kept.
pub const MAX_SCOPES: usize = 20_000;
/// Most fingerprints kept per scope.
pub const MAX_FINGERPRINTS_PER_SCOPE: usize = 2_000;
/// Most findings kept per scope.
pub const MAX_ADVICE_PER_SCOPE: usize = 200;

/// Which tags name a scope, in order of preference.
#[derive(Debug, Clone)]
pub struct ScopeConfig {
    /// Tag keys, e.g. `test`, `spec`.
    pub keys: Vec<String>,
}

impl Default for ScopeConfig {
    fn default() -> Self {
        Self { keys: vec!["test".into(), "spec".into(), "scope".into()] }
    }
}

impl ScopeConfig {
    /// The scope of a statement with `tags` run by a session named `application_name`.
    pub fn scope_of(&self, tags: Option<&Tags>, application_name: &str) -> Arc<str> {
        let tagged = tags.and_then(|t| self.keys.iter().find_map(|k| t.get(k)));
        match tagged {
            Some(scope) => scope.into(),
            None if !application_name.is_empty() => application_name.into(),
            None => UNSCOPED.into(),
        }
    }
}

/// One fingerprint's numbers within a scope.
#[derive(Debug, Clone)]
pub struct ScopedQuery {
    /// Display text of the first execution.
    pub query: Arc<str>,
    /// Executions.
    pub calls: u64,
    /// Rows returned or affected.
    pub rows: u64,
    /// Failed executions.
    pub errors: u64,
    /// Sum of durations, µs.
    pub total_us: u64,
    /// Latencies in µs, 2 significant figures (small: there may be many scopes).
    histogram: Histogram<u32>,
}

impl ScopedQuery {
    /// The 95th percentile in µs.
    pub fn p95_us(&self) -> u64 {
        self.histogram.value_at_quantile(0.95)
    }
}

/// A finding seen in a scope, merged by kind and key.
#[derive(Debug, Clone, Serialize)]
pub struct ScopedAdvice {
    /// Advice kind.
    pub kind: &'static str,
    /// Merge key within the kind.
    pub key: String,
    /// Highest severity seen.
    pub severity: Severity,
    /// Title of the latest occurrence.
    pub title: String,
    /// Its message.
    pub message: String,
    /// Its fix.
    pub suggestion: String,
    /// Fingerprints involved.
    pub fingerprints: Vec<Fingerprint>,
    /// Evidence of the latest occurrence.
    pub evidence: serde_json::Value,
    /// Occurrences.
    pub count: u64,
}

/// Everything one scope ran and caused.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Per fingerprint.
    pub queries: BTreeMap<Fingerprint, ScopedQuery>,
    /// Findings, in the order first seen.
    pub advice: Vec<ScopedAdvice>,
    /// Executions not counted per fingerprint because the scope was full.
    pub cut: u64,
}

/// All scopes.
#[derive(Debug, Default)]
pub struct ScopeStats {
    scopes: Mutex<HashMap<Arc<str>, Scope>>,
    /// Executions in scopes not kept (past [`MAX_SCOPES`]).
    cut: std::sync::atomic::AtomicU64,
}

impl ScopeStats {
    /// Counts one execution in `scope`.
    pub fn record(&self, scope: &Arc<str>, event: &StatementEvent) {
        let mut scopes = lock(&self.scopes);
        let Some(s) = scope_entry(&mut scopes, scope, &self.cut) else { return };
        let fp = event.statement.fingerprint;
        if !s.queries.contains_key(&fp) && s.queries.len() >= MAX_FINGERPRINTS_PER_SCOPE {
            s.cut += 1;
            return;
        }
        let q = s.queries.entry(fp).or_insert_with(|| ScopedQuery {
            query: event.statement.display.clone(),
            calls: 0,
            rows: 0,
            errors: 0,
            total_us: 0,
            histogram: Histogram::new(2).expect("2 significant figures is valid"),
        });
        let us = u64::try_from(event.duration.as_micros()).unwrap_or(u64::MAX);
        q.calls += 1;
        q.rows += event.rows;
        q.errors += u64::from(event.error.is_some());
        q.total_us = q.total_us.saturating_add(us);
        let _ = q.histogram.record(us.max(1));
    }

    /// Records `finding` in `scope`, or, when it has none (a cross-session finding), in every
    /// scope that ran its first fingerprint.
    pub fn advise(&self, scope: Option<&Arc<str>>, finding: &Finding) {
        let mut scopes = lock(&self.scopes);
        let targets: Vec<Arc<str>> = match scope {
            Some(s) => vec![s.clone()],
            None => match finding.fingerprints.first() {
                Some(fp) => scopes.iter().filter(|(_, s)| s.queries.contains_key(fp)).map(|(k, _)| k.clone()).collect(),
                None => Vec::new(),
            },
        };
        for target in targets {
            let Some(s) = scope_entry(&mut scopes, &target, &self.cut) else { continue };
            let kind = finding.kind.as_str();
            if let Some(a) = s.advice.iter_mut().find(|a| a.kind == kind && a.key == finding.key) {
                a.count += 1;
                a.severity = a.severity.max(finding.severity);
                a.title.clone_from(&finding.title);
                a.message.clone_from(&finding.message);
                a.suggestion.clone_from(&finding.suggestion);
                a.evidence = finding.evidence.clone();
            } else if s.advice.len() < MAX_ADVICE_PER_SCOPE {
                s.advice.push(ScopedAdvice {
                    kind,
                    key: finding.key.clone(),
                    severity: finding.severity,
                    title: finding.title.clone(),
                    message: finding.message.clone(),
                    suggestion: finding.suggestion.clone(),
                    fingerprints: finding.fingerprints.clone(),
                    evidence: finding.evidence.clone(),
                    count: 1,
                });
            }
        }
    }

    /// A copy of every scope, by name.
    pub fn snapshot(&self) -> BTreeMap<Arc<str>, Scope> {
        lock(&self.scopes).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Executions lost because there were too many scopes.
    pub fn cut(&self) -> u64 {
        self.cut.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forgets every scope.
    pub fn reset(&self) {
        lock(&self.scopes).clear();
    }
}

fn scope_entry<'a>(
    scopes: &'a mut HashMap<Arc<str>, Scope>,
    scope: &Arc<str>,
    cut: &std::sync::atomic::AtomicU64,
) -> Option<&'a mut Scope> {
    if !scopes.contains_key(scope) && scopes.len() >= MAX_SCOPES {
        cut.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return None;
    }
    Some(scopes.entry(scope.clone()).or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Statement;

    #[test]
    fn statements_go_to_the_scope_their_tags_or_session_name() {
        let config = ScopeConfig::default();
        let tagged = Statement::from_sql("select * from orders /*test='tests/test_orders.py%3A%3Atest_list'*/");
        assert_eq!(&*config.scope_of(tagged.tags.as_deref(), "pytest"), "tests/test_orders.py::test_list");
        assert_eq!(&*config.scope_of(None, "pytest"), "pytest");
        assert_eq!(&*config.scope_of(None, ""), UNSCOPED);

        let stats = ScopeStats::default();
        let mut event = StatementEvent::sample("select * from orders where id = 1");
        let scope: Arc<str> = "t1".into();
        for _ in 0..3 {
            stats.record(&scope, &event);
        }
        event.error = Some(crate::events::SqlState(*b"23505"));
        stats.record(&"t2".into(), &event);
        let all = stats.snapshot();
        let q = all["t1"].queries.values().next().unwrap();
        assert_eq!((q.calls, q.errors), (3, 0));
        assert!(q.p95_us() >= 1000, "1 ms each: {}", q.p95_us());
        assert_eq!(all["t2"].queries.values().next().unwrap().errors, 1);
    }
}
