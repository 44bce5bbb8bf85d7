//! `pgvisor check`'s verdict: findings at or above `--fail-on` that the baseline does not know, and
//! per-scope query counts that grew past the baseline's tolerance (the ratchet: counts may shrink,
//! never grow; the repeated query of an N+1 may not grow at all).

use std::collections::HashSet;
use std::fmt;

use super::baseline::Baseline;
use super::report::{severity_rank, AdviceReport, FindingId, Regression, Report, Verdict};

/// The least severity that fails the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Any finding.
    Info,
    /// Warnings and critical findings (the default).
    Warning,
    /// Critical findings only.
    Critical,
}

impl FailOn {
    /// The severity's name.
    pub fn name(self) -> &'static str {
        match self {
            FailOn::Info => "info",
            FailOn::Warning => "warning",
            FailOn::Critical => "critical",
        }
    }
}

/// How much a query's calls in a scope may grow over the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// By this percentage of the baseline's calls, rounded down (`10%`: 10 calls may become 11).
    Percent(f64),
    /// By this many calls (`2`).
    Calls(u64),
}

impl Tolerance {
    /// `10%` (a percentage) or `2` (a number of calls).
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let expected = || format!("expected a percentage such as 10% or a number of calls such as 2, got {s:?}");
        if t.starts_with('-') {
            return Err(format!("must not be negative, got {s:?}"));
        }
        match t.strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(p) if p.is_finite() && p <= 100_000.0 => Ok(Tolerance::Percent(p)),
                Ok(_) => Err(format!("must be at most 100000%, got {s:?}")),
                Err(_) => Err(expected()),
            },
            None => t.parse::<u64>().map(Tolerance::Calls).map_err(|_| expected()),
        }
    }

    /// The most calls allowed where the baseline had `baseline`.
    pub fn allowed(self, baseline: u64) -> u64 {
        match self {
            Tolerance::Percent(p) => baseline.saturating_add((baseline as f64 * p / 100.0 + 1e-9).floor() as u64),
            Tolerance::Calls(n) => baseline.saturating_add(n),
        }
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tolerance::Percent(p) => write!(f, "{p}%"),
            Tolerance::Calls(1) => write!(f, "1 call"),
            Tolerance::Calls(n) => write!(f, "{n} calls"),
        }
    }
}

/// Judges `report` against `baseline` (none: every finding at or above `fail_on` is new).
pub fn judge(
    report: &Report,
    baseline: Option<&Baseline>,
    baseline_path: Option<String>,
    fail_on: FailOn,
    tolerance: Tolerance,
) -> Verdict {
    let known: HashSet<(&str, &str)> = baseline
        .into_iter()
        .flat_map(|b| b.scopes.values())
        .flat_map(|s| s.advice.iter().map(|a| (a.kind.as_str(), a.key.as_str())))
        .collect();
    // The repeated queries of N+1s, from this run and from the baseline: they may not grow.
    let children: HashSet<&str> = report
        .scopes
        .values()
        .flat_map(|s| s.advice.iter().filter_map(AdviceReport::n_plus_one_child))
        .chain(baseline.into_iter().flat_map(|b| b.n_plus_one_children()))
        .collect();
    let mut verdict = Verdict {
        passed: false,
        fail_on: fail_on.name(),
        tolerance: tolerance.to_string(),
        baseline: baseline_path.filter(|_| baseline.is_some()),
        new_findings: Vec::new(),
        known_findings: Vec::new(),
        below_fail_on: Vec::new(),
        regressions: Vec::new(),
        fixed_findings: Vec::new(),
        lower_counts: 0,
        scopes_not_run: Vec::new(),
    };
    let fail_rank = severity_rank(fail_on.name());
    for (scope, s) in &report.scopes {
        for a in &s.advice {
            let id = FindingId::of(scope, a);
            if known.contains(&(a.kind.as_str(), a.key.as_str())) {
                verdict.known_findings.push(id);
            } else if severity_rank(&a.severity) >= fail_rank {
                verdict.new_findings.push(id);
            } else {
                verdict.below_fail_on.push(id);
            }
        }
    }
    for (scope, base) in baseline.iter().flat_map(|b| &b.scopes) {
        let Some(now) = report.scopes.get(scope) else {
            verdict.scopes_not_run.push(scope.clone());
            continue;
        };
        for a in &base.advice {
            if !now.advice.iter().any(|n| n.kind == a.kind && n.key == a.key) {
                verdict.fixed_findings.push(FindingId {
                    scope: scope.clone(),
                    kind: a.kind.clone(),
                    key: a.key.clone(),
                    severity: a.severity.clone(),
                    title: a.title.clone(),
                });
            }
        }
        let mut grew = false;
        for q in &base.queries {
            let Some(n) = now.queries.iter().find(|n| n.fingerprint == q.fingerprint) else {
                verdict.lower_counts += 1;
                continue;
            };
            let child = children.contains(q.fingerprint.as_str());
            let allowed = if child { q.calls } else { tolerance.allowed(q.calls) };
            if n.calls > allowed {
                grew = true;
                verdict.regressions.push(Regression {
                    scope: scope.clone(),
                    fingerprint: Some(q.fingerprint.clone()),
                    query: Some(n.query.clone()),
                    baseline_calls: q.calls,
                    calls: n.calls,
                    allowed_calls: allowed,
                    n_plus_one_child: child,
                });
            } else if n.calls < q.calls {
                verdict.lower_counts += 1;
            }
        }
        let base_total: u64 = base.queries.iter().map(|q| q.calls).sum();
        let now_total: u64 = now.queries.iter().map(|q| q.calls).sum();
        let allowed = tolerance.allowed(base_total);
        if !grew && base_total > 0 && now_total > allowed {
            verdict.regressions.push(Regression {
                scope: scope.clone(),
                fingerprint: None,
                query: None,
                baseline_calls: base_total,
                calls: now_total,
                allowed_calls: allowed,
                n_plus_one_child: false,
            });
        }
    }
    verdict.passed = verdict.new_findings.is_empty() && verdict.regressions.is_empty();
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::check::report::{QueryReport, ScopeReport};

    #[test]
    fn tolerances() {
        assert_eq!(Tolerance::parse("10%"), Ok(Tolerance::Percent(10.0)));
        assert_eq!(Tolerance::parse("2"), Ok(Tolerance::Calls(2)));
        assert_eq!(Tolerance::parse(" 0 % "), Ok(Tolerance::Percent(0.0)));
        assert_eq!(
            Tolerance::parse("lots").unwrap_err(),
            "expected a percentage such as 10% or a number of calls such as 2, got \"lots\""
        );
        assert_eq!(Tolerance::parse("-5%").unwrap_err(), "must not be negative, got \"-5%\"");
        assert_eq!(Tolerance::Percent(10.0).allowed(10), 11);
        assert_eq!(Tolerance::Percent(10.0).allowed(9), 9, "rounded down: 9 calls may not become 10");
        assert_eq!(Tolerance::Percent(10.0).allowed(100), 110);
        assert_eq!(Tolerance::Percent(0.0).allowed(7), 7);
        assert_eq!(Tolerance::Calls(2).allowed(1), 3);
        assert_eq!(Tolerance::Percent(10.0).to_string(), "10%");
        assert_eq!(Tolerance::Calls(2).to_string(), "2 calls");
    }

    fn query(fp: &str, calls: u64) -> QueryReport {
        QueryReport {
            fingerprint: fp.into(),
            query: format!("SELECT {fp}"),
            calls,
            rows: 0,
            errors: 0,
            total_ms: 0.0,
            p95_ms: 0.0,
        }
    }

    fn n_plus_one(parent: &str, child: &str) -> AdviceReport {
        AdviceReport {
            kind: "n_plus_one".into(),
            key: format!("{parent}:{child}"),
            severity: "warning".into(),
            title: "N+1 queries".into(),
            message: String::new(),
            suggestion: "selectinload".into(),
            fingerprints: vec![parent.into(), child.into()],
            evidence: serde_json::Value::Null,
            count: 1,
        }
    }

    fn report(scopes: Vec<(&str, Vec<QueryReport>, Vec<AdviceReport>)>) -> Report {
        let mut r: Report = serde_json::from_value(serde_json::json!({"pgvisor_report": 1, "scopes": {}})).unwrap();
        for (name, queries, advice) in scopes {
            let statements = queries.iter().map(|q| q.calls).sum();
            r.scopes.insert(name.into(), ScopeReport { statements, queries, advice, ..ScopeReport::default() });
        }
        r
    }

    #[test]
    fn new_findings_fail_known_ones_pass_and_counts_ratchet() {
        let clean =
            report(vec![("t1", vec![query("a", 1), query("b", 1)], vec![]), ("t2", vec![query("c", 10)], vec![])]);
        let verdict = judge(&clean, None, None, FailOn::Warning, Tolerance::Percent(10.0));
        assert!(verdict.passed, "{verdict:?}");

        let n1 = report(vec![("t1", vec![query("a", 1), query("b", 10)], vec![n_plus_one("a", "b")])]);
        let verdict = judge(&n1, None, None, FailOn::Warning, Tolerance::Percent(10.0));
        assert!(!verdict.passed);
        assert_eq!(verdict.new_findings[0].scope, "t1");
        assert!(judge(&n1, None, None, FailOn::Critical, Tolerance::Percent(10.0)).passed, "below --fail-on");

        // Accepted into the baseline: the same run passes; the N+1's repeated query may not grow.
        let baseline = Baseline::from_report(&n1);
        let verdict = judge(&n1, Some(&baseline), None, FailOn::Warning, Tolerance::Percent(10.0));
        assert!(verdict.passed, "{verdict:?}");
        assert_eq!(verdict.known_findings.len(), 1);
        let grown = report(vec![("t1", vec![query("a", 1), query("b", 11)], vec![n_plus_one("a", "b")])]);
        let verdict = judge(&grown, Some(&baseline), None, FailOn::Warning, Tolerance::Percent(10.0));
        assert!(!verdict.passed);
        assert!(verdict.regressions[0].n_plus_one_child);
        assert!(verdict.regressions[0].describe().contains("may not grow"), "{}", verdict.regressions[0].describe());

        // Fixed: reported, and the baseline can be tightened.
        let fixed = report(vec![("t1", vec![query("a", 1), query("d", 1)], vec![])]);
        let verdict = judge(&fixed, Some(&baseline), None, FailOn::Warning, Tolerance::Percent(10.0));
        assert!(verdict.passed, "{verdict:?}");
        assert_eq!(verdict.fixed_findings.len(), 1);
        assert!(verdict.can_tighten());

        // Doubled: past 10%.
        let base = Baseline::from_report(&clean);
        let doubled =
            report(vec![("t1", vec![query("a", 2), query("b", 2)], vec![]), ("t2", vec![query("c", 11)], vec![])]);
        let verdict = judge(&doubled, Some(&base), None, FailOn::Warning, Tolerance::Percent(10.0));
        assert_eq!(verdict.regressions.len(), 2, "a and b in t1; c within 10% in t2: {verdict:?}");
        assert!(judge(&doubled, Some(&base), None, FailOn::Warning, Tolerance::Calls(2)).passed);

        // New queries spread over new fingerprints: the scope's total.
        let spread = report(vec![
            ("t1", vec![query("a", 1), query("b", 1), query("e", 5)], vec![]),
            ("t2", vec![query("c", 10)], vec![]),
        ]);
        let verdict = judge(&spread, Some(&base), None, FailOn::Warning, Tolerance::Percent(10.0));
        assert_eq!(verdict.regressions.len(), 1);
        assert_eq!(verdict.regressions[0].fingerprint, None);

        // A partial run: missing scopes are not "fixed".
        let partial = report(vec![("t2", vec![query("c", 10)], vec![])]);
        let verdict = judge(&partial, Some(&baseline), None, FailOn::Warning, Tolerance::Percent(10.0));
        assert_eq!(verdict.scopes_not_run, vec!["t1".to_string()]);
        assert!(verdict.fixed_findings.is_empty());
    }
}
