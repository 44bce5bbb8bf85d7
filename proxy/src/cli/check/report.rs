//! pgvisor-report.json: per scope, each fingerprint's numbers and the advice with its evidence,
//! plus the run's metadata and (for `pgvisor check`) the verdict. `pgvisor diff` reads it back.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use advisor::advice::{advice_id, Kind};
use advisor::scopes::UNSCOPED;
use serde::{Deserialize, Serialize};

use super::run::RunOutcome;
use super::{shorten, CheckError};

/// The report's file name.
pub const REPORT_FILE: &str = "pgvisor-report.json";
/// The format version this pgvisor writes and reads.
pub const REPORT_VERSION: u32 = 1;

/// A run's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Format version ([`REPORT_VERSION`]).
    pub pgvisor_report: u32,
    /// The pgvisor that wrote it.
    #[serde(default)]
    pub pgvisor_version: String,
    /// CMD and its arguments.
    #[serde(default)]
    pub command: Vec<String>,
    /// CMD's exit status as a shell reports it (128 + N for signal N).
    #[serde(default)]
    pub command_status: i32,
    /// True when pgvisor was stopped by SIGINT/SIGTERM before CMD finished.
    #[serde(default)]
    pub interrupted: bool,
    /// When CMD started (RFC 3339).
    #[serde(default)]
    pub started_at: String,
    /// How long CMD ran.
    #[serde(default)]
    pub duration_ms: f64,
    /// What pgvisor forwarded to.
    #[serde(default)]
    pub upstream: String,
    /// Statements executed.
    #[serde(default)]
    pub statements: u64,
    /// Executions not counted per scope because there were too many scopes.
    #[serde(default)]
    pub scopes_cut: u64,
    /// Per scope, by name.
    pub scopes: BTreeMap<String, ScopeReport>,
    /// Every finding of the run, as the admin API's /api/advice lists them.
    #[serde(default)]
    pub advice: Vec<serde_json::Value>,
    /// `pgvisor check`'s verdict; absent for `pgvisor run`.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub check: Option<Verdict>,
}

/// What one scope (a test) ran and caused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScopeReport {
    /// Statements executed.
    pub statements: u64,
    /// Failed executions.
    #[serde(default)]
    pub errors: u64,
    /// Time in the database (including the network to it).
    #[serde(default)]
    pub total_ms: f64,
    /// Per fingerprint, sorted by fingerprint.
    pub queries: Vec<QueryReport>,
    /// Findings, in the order first seen.
    #[serde(default)]
    pub advice: Vec<AdviceReport>,
    /// Executions not counted per fingerprint because the scope had too many fingerprints.
    #[serde(default)]
    pub cut: u64,
}

/// One fingerprint within a scope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryReport {
    /// 16 hex digits.
    pub fingerprint: String,
    /// Display text: constants as `$n`, comments removed.
    #[serde(default)]
    pub query: String,
    /// Executions.
    pub calls: u64,
    /// Rows returned or affected.
    #[serde(default)]
    pub rows: u64,
    /// Failed executions.
    #[serde(default)]
    pub errors: u64,
    /// Sum of durations.
    #[serde(default)]
    pub total_ms: f64,
    /// 95th percentile duration (2 significant figures).
    #[serde(default)]
    pub p95_ms: f64,
}

/// A finding within a scope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdviceReport {
    /// Kind (`n_plus_one`, ...).
    pub kind: String,
    /// Merge key within the kind: with the kind, the finding's identity.
    pub key: String,
    /// info, warning or critical.
    pub severity: String,
    /// One line.
    #[serde(default)]
    pub title: String,
    /// What happened.
    #[serde(default)]
    pub message: String,
    /// The fix.
    #[serde(default)]
    pub suggestion: String,
    /// Fingerprints involved (for `n_plus_one`: the parent when proven, then the repeated query).
    #[serde(default)]
    pub fingerprints: Vec<String>,
    /// Numbers and statements that prove it.
    #[serde(default)]
    pub evidence: serde_json::Value,
    /// Occurrences in this scope.
    #[serde(default)]
    pub count: u64,
}

impl AdviceReport {
    /// The query an N+1 repeats (its last fingerprint), for `n_plus_one` findings.
    pub fn n_plus_one_child(&self) -> Option<&str> {
        (self.kind == "n_plus_one").then(|| self.fingerprints.last().map(String::as_str)).flatten()
    }
}

/// Microseconds as milliseconds (exact to the microsecond).
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Report {
    /// The report of `outcome`, not yet judged.
    pub fn from_run(outcome: &RunOutcome, command: &[std::ffi::OsString]) -> Self {
        let scopes: BTreeMap<String, ScopeReport> = outcome
            .scopes
            .iter()
            .map(|(name, scope)| {
                let queries: Vec<QueryReport> = scope
                    .queries
                    .iter()
                    .map(|(fp, q)| QueryReport {
                        fingerprint: fp.to_string(),
                        query: q.query.to_string(),
                        calls: q.calls,
                        rows: q.rows,
                        errors: q.errors,
                        total_ms: ms(q.total_us),
                        p95_ms: ms(q.p95_us()),
                    })
                    .collect();
                let advice = scope
                    .advice
                    .iter()
                    .map(|a| AdviceReport {
                        kind: a.kind.to_string(),
                        key: a.key.clone(),
                        severity: a.severity.as_str().into(),
                        title: a.title.clone(),
                        message: a.message.clone(),
                        suggestion: a.suggestion.clone(),
                        fingerprints: a.fingerprints.iter().map(ToString::to_string).collect(),
                        evidence: a.evidence.clone(),
                        count: a.count,
                    })
                    .collect();
                let report = ScopeReport {
                    statements: scope.queries.values().map(|q| q.calls).sum::<u64>() + scope.cut,
                    errors: scope.queries.values().map(|q| q.errors).sum(),
                    total_ms: ms(scope.queries.values().map(|q| q.total_us).sum()),
                    queries,
                    advice,
                    cut: scope.cut,
                };
                (name.to_string(), report)
            })
            .collect();
        let mut scopes = scopes;
        unscoped_findings(outcome, &mut scopes);
        Report {
            pgvisor_report: REPORT_VERSION,
            pgvisor_version: env!("CARGO_PKG_VERSION").to_string(),
            command: command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
            command_status: outcome.status.exit_status(),
            interrupted: matches!(outcome.status, super::CommandStatus::Interrupted(_)),
            started_at: humantime::format_rfc3339_millis(outcome.started_at).to_string(),
            duration_ms: (outcome.duration.as_secs_f64() * 1000.0).round(),
            upstream: outcome.upstream.clone(),
            statements: outcome.statements,
            scopes_cut: outcome.scopes_cut,
            scopes,
            advice: outcome.advice.iter().filter_map(|a| serde_json::to_value(a).ok()).collect(),
            check: None,
        }
    }

    /// Reads a report written by `pgvisor check` or `pgvisor run`.
    pub fn load(path: &Path) -> Result<Self, CheckError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(CheckError::io(format!("cannot read {shown}")))?;
        let bad = |reason: String| CheckError::Io {
            what: format!("{shown} is not a pgvisor report"),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        match value.get("pgvisor_report").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(REPORT_VERSION) => {}
            Some(v) => return Err(bad(format!("format version {v}; this pgvisor reads version {REPORT_VERSION}"))),
            None => return Err(bad("no \"pgvisor_report\" version field (pgvisor-report.json?)".into())),
        }
        serde_json::from_value(value).map_err(|e| bad(e.to_string()))
    }

    /// The report as pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut json = serde_json::to_string_pretty(self).expect("a report serializes");
        json.push('\n');
        json
    }

    /// Findings over all scopes.
    pub fn finding_count(&self) -> usize {
        self.scopes.values().map(|s| s.advice.len()).sum()
    }

    /// The finding `kind`/`key` as seen in `scope`.
    pub fn finding(&self, scope: &str, kind: &str, key: &str) -> Option<&AdviceReport> {
        self.scopes.get(scope)?.advice.iter().find(|a| a.kind == kind && a.key == key)
    }
}

/// Files the findings no scope holds (cross-session ones without a query: lock waits, deadlocks)
/// under [`UNSCOPED`], keyed by their advice id, so that they are judged too. The Inspector's own
/// trouble (`inspector_unavailable`) is about pgvisor, not the code under test: left out.
fn unscoped_findings(outcome: &RunOutcome, scopes: &mut BTreeMap<String, ScopeReport>) {
    let scoped: HashSet<String> = outcome
        .scopes
        .values()
        .flat_map(|s| &s.advice)
        .filter_map(|a| Kind::parse(a.kind).map(|kind| advice_id(kind, &a.key)))
        .collect();
    for a in &outcome.advice {
        if a.kind == Kind::InspectorUnavailable || scoped.contains(&a.id) {
            continue;
        }
        scopes.entry(UNSCOPED.to_string()).or_default().advice.push(AdviceReport {
            kind: a.kind.as_str().to_string(),
            key: a.id.clone(),
            severity: a.severity.as_str().into(),
            title: a.title.clone(),
            message: a.message.clone(),
            suggestion: a.suggestion.clone(),
            fingerprints: a.fingerprints.iter().map(ToString::to_string).collect(),
            evidence: a.evidence.clone(),
            count: a.count,
        });
    }
}

/// Severities in order, for comparisons on the names the report holds (unknown names rank last).
pub fn severity_rank(name: &str) -> u8 {
    match name {
        "info" => 0,
        "warning" => 1,
        "critical" => 2,
        _ => 3,
    }
}

/// A finding, by scope, kind and key, with what a reader needs to recognise it.
#[derive(Debug, Clone, Serialize)]
pub struct FindingId {
    /// The scope (test) it was seen in.
    pub scope: String,
    /// Kind.
    pub kind: String,
    /// Merge key within the kind.
    pub key: String,
    /// info, warning or critical.
    pub severity: String,
    /// One line.
    pub title: String,
}

impl FindingId {
    pub(super) fn of(scope: &str, advice: &AdviceReport) -> Self {
        Self {
            scope: scope.to_string(),
            kind: advice.kind.clone(),
            key: advice.key.clone(),
            severity: advice.severity.clone(),
            title: advice.title.clone(),
        }
    }
}

/// A query count past the baseline's tolerance.
#[derive(Debug, Clone, Serialize)]
pub struct Regression {
    /// The scope.
    pub scope: String,
    /// The query that grew; `None` when the scope's total grew (spread over new queries).
    pub fingerprint: Option<String>,
    /// Its display text.
    pub query: Option<String>,
    /// Calls in the baseline.
    pub baseline_calls: u64,
    /// Calls in this run.
    pub calls: u64,
    /// The most calls the tolerance allows.
    pub allowed_calls: u64,
    /// The query is the repeated query of an N+1: it may not grow at all.
    pub n_plus_one_child: bool,
}

impl Regression {
    /// One sentence: what grew, from what, to what.
    pub fn describe(&self) -> String {
        let (base, now, allowed) = (self.baseline_calls, self.calls, self.allowed_calls);
        match &self.query {
            Some(query) => format!(
                "`{}` ran {now} times; the baseline has {base}{}",
                shorten(query, 100),
                if self.n_plus_one_child {
                    " and the repeated query of an N+1 may not grow".to_string()
                } else {
                    format!(" and allows {allowed}")
                }
            ),
            None => {
                format!("{now} statements; the baseline has {base} and allows {allowed} (the new ones are new queries)")
            }
        }
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// No new finding at or above `fail_on` and no count past the tolerance.
    pub passed: bool,
    /// `--fail-on`.
    pub fail_on: &'static str,
    /// `--tolerance`.
    pub tolerance: String,
    /// The baseline file, when one was used.
    pub baseline: Option<String>,
    /// Findings at or above `fail_on` the baseline does not know: they fail the check.
    pub new_findings: Vec<FindingId>,
    /// Findings the baseline knows (same kind and key, in any scope).
    pub known_findings: Vec<FindingId>,
    /// New findings below `fail_on`: reported, not failing.
    pub below_fail_on: Vec<FindingId>,
    /// Query counts past the tolerance: they fail the check.
    pub regressions: Vec<Regression>,
    /// Findings of the baseline no longer seen in their scope (which did run).
    pub fixed_findings: Vec<FindingId>,
    /// Queries of the baseline that ran fewer times (or not at all) in their scope.
    pub lower_counts: u64,
    /// Scopes of the baseline that did not run (a partial run, or removed tests).
    pub scopes_not_run: Vec<String>,
}

impl Verdict {
    /// True when `--update-baseline` would make the baseline stricter.
    pub fn can_tighten(&self) -> bool {
        !self.fixed_findings.is_empty() || self.lower_counts > 0
    }

    /// A few lines for stderr: the verdict, and what failed.
    pub fn console_lines(&self, report: &Report) -> Vec<String> {
        const SHOWN: usize = 5;
        let verdict = if self.passed { "passed" } else { "FAILED" };
        let mut lines = vec![format!("{verdict}: {}", self.headline())];
        for f in self.new_findings.iter().take(SHOWN) {
            lines.push(format!("  [{}] {} in {}: {}", f.severity, f.kind, f.scope, f.title));
            if let Some(fix) =
                report.finding(&f.scope, &f.kind, &f.key).map(|a| &a.suggestion).filter(|s| !s.is_empty())
            {
                lines.push(format!("      fix: {}", shorten(fix, 300)));
            }
        }
        for r in self.regressions.iter().take(SHOWN) {
            lines.push(format!("  {}: {}", r.scope, r.describe()));
        }
        let more = self.new_findings.len().saturating_sub(SHOWN) + self.regressions.len().saturating_sub(SHOWN);
        if more > 0 {
            lines.push(format!("  ... and {more} more"));
        }
        if self.can_tighten() {
            lines.push(format!(
                "{} fixed findings and {} lower query counts: tighten the baseline with --update-baseline",
                self.fixed_findings.len(),
                self.lower_counts
            ));
        }
        lines
    }

    /// What passed or failed, in one line.
    pub fn headline(&self) -> String {
        let findings = plural(self.new_findings.len(), "new finding", "new findings");
        let counts = plural(self.regressions.len(), "query count past the baseline", "query counts past the baseline");
        if self.passed {
            let known = match self.known_findings.len() {
                0 => String::new(),
                n => format!(" ({} tolerated by the baseline)", plural(n, "known finding", "known findings")),
            };
            format!("no new findings at {} or above, no query count past the baseline{known}", self.fail_on)
        } else {
            format!("{findings}, {counts}")
        }
    }
}

/// `n thing` or `n things`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use advisor::advice::{Advice, Severity};

    use super::*;
    use crate::cli::check::CommandStatus;

    fn advice(kind: Kind, key: &str) -> Advice {
        Advice {
            id: advice_id(kind, key),
            kind,
            severity: Severity::Critical,
            title: format!("{} title", kind.as_str()),
            message: String::new(),
            suggestion: String::new(),
            fingerprints: Vec::new(),
            evidence: serde_json::Value::Null,
            count: 1,
            first_seen: SystemTime::UNIX_EPOCH,
            last_seen: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn findings_no_scope_holds_are_judged_as_unscoped() {
        let outcome = RunOutcome {
            status: CommandStatus::Exited(0),
            started_at: SystemTime::UNIX_EPOCH,
            duration: Duration::from_millis(1500),
            upstream: "embedded".into(),
            scopes: BTreeMap::new(),
            advice: vec![advice(Kind::Deadlock, "update a:a,b"), advice(Kind::InspectorUnavailable, "inspector")],
            statements: 0,
            scopes_cut: 0,
        };
        let report = Report::from_run(&outcome, &["pytest".into()]);
        let unscoped = &report.scopes[UNSCOPED].advice;
        assert_eq!(unscoped.len(), 1, "{unscoped:?}");
        assert_eq!((unscoped[0].kind.as_str(), unscoped[0].severity.as_str()), ("deadlock", "critical"));
        assert_eq!(report.advice.len(), 2, "the run's whole list stays as it was");
        assert_eq!(report.duration_ms, 1500.0);
    }
}
