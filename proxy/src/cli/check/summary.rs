//! summary.md: short enough for a CI job summary or a pull-request comment. The verdict line, the
//! new findings (scope, evidence, fix), the query counts past the baseline, and what was fixed.

use std::fmt::Write;

use super::report::{plural, AdviceReport, FindingId, Report, Verdict};
use super::{shorten, REPORT_FILE};

/// Entries shown per section; the rest are counted and left to the JSON report.
const SHOWN: usize = 10;
/// Longest evidence line.
const EVIDENCE_CHARS: usize = 600;

/// The Markdown summary of `report` (judged or not).
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let ran = format!(
        "`{}` exited {}{}; {} statements in {} scopes",
        shorten(&report.command.join(" "), 80).replace('`', "'"),
        report.command_status,
        if report.interrupted { " (interrupted)" } else { "" },
        report.statements,
        report.scopes.len()
    );
    match &report.check {
        Some(verdict) => judged(&mut out, report, verdict, &ran),
        None => unjudged(&mut out, report, &ran),
    }
    busiest_scopes(&mut out, report);
    out
}

fn judged(out: &mut String, report: &Report, verdict: &Verdict, ran: &str) {
    let title = if verdict.passed { "passed" } else { "FAILED" };
    let _ = writeln!(out, "## pgvisor check: {title}\n");
    let baseline = match &verdict.baseline {
        Some(path) => format!("baseline `{path}` (tolerance {})", verdict.tolerance),
        None => "no baseline".to_string(),
    };
    let headline = verdict.headline();
    let mut chars = headline.chars();
    let first = chars.next().map(|c| c.to_uppercase().to_string()).unwrap_or_default();
    let _ = writeln!(out, "**{}{}.**\n", first, text(chars.as_str()));
    let _ = writeln!(out, "{ran}; fail on {} and above, {baseline}.\n", verdict.fail_on);

    if !verdict.new_findings.is_empty() {
        let _ = writeln!(out, "### New findings\n");
        for id in verdict.new_findings.iter().take(SHOWN) {
            finding(out, report, id);
        }
        more(out, verdict.new_findings.len());
    }
    if !verdict.regressions.is_empty() {
        let _ = writeln!(out, "### Query counts past the baseline\n");
        let _ = writeln!(out, "| Scope | Query | Baseline | Now | Allowed |\n|---|---|--:|--:|--:|");
        for r in verdict.regressions.iter().take(SHOWN) {
            let query = match &r.query {
                Some(q) => code(&shorten(q, 100)),
                None => "all statements (new queries)".into(),
            };
            let allowed = if r.n_plus_one_child {
                format!("{} (N+1: no growth)", r.allowed_calls)
            } else {
                r.allowed_calls.to_string()
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&code(&r.scope)),
                cell(&query),
                r.baseline_calls,
                r.calls,
                allowed
            );
        }
        let _ = writeln!(out);
        more(out, verdict.regressions.len());
    }
    if !verdict.fixed_findings.is_empty() {
        let _ = writeln!(out, "### Fixed\n");
        for f in verdict.fixed_findings.iter().take(SHOWN) {
            let _ = writeln!(out, "- {} in {}: {}", f.kind, code(&f.scope), text(&f.title));
        }
        more(out, verdict.fixed_findings.len());
    }
    if verdict.can_tighten() {
        let _ = writeln!(
            out,
            "The baseline can be tightened ({} fixed, {} lower query counts): run `pgvisor check --update-baseline` \
             and commit the file.\n",
            plural(verdict.fixed_findings.len(), "finding", "findings"),
            verdict.lower_counts
        );
    }
    if !verdict.scopes_not_run.is_empty() {
        let _ = writeln!(
            out,
            "{} of the baseline did not run (a partial run, or tests removed).\n",
            plural(verdict.scopes_not_run.len(), "scope", "scopes")
        );
    }
    let quiet: Vec<&FindingId> = verdict.known_findings.iter().chain(&verdict.below_fail_on).collect();
    if !quiet.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>{} known to the baseline or below {}</summary>\n",
            plural(quiet.len(), "finding", "findings"),
            verdict.fail_on
        );
        for f in quiet.iter().take(SHOWN) {
            let _ = writeln!(out, "- [{}] {} in {}: {}", f.severity, f.kind, code(&f.scope), text(&f.title));
        }
        more(out, quiet.len());
        let _ = writeln!(out, "</details>\n");
    }
}

fn unjudged(out: &mut String, report: &Report, ran: &str) {
    let _ = writeln!(out, "## pgvisor run\n");
    let count = report.finding_count();
    let _ = writeln!(out, "{ran}; {} (not judged: `pgvisor check` judges).\n", plural(count, "finding", "findings"));
    if count > 0 {
        let _ = writeln!(out, "### Findings\n");
        let all = report.scopes.iter().flat_map(|(scope, s)| s.advice.iter().map(move |a| (scope, a)));
        for (scope, a) in all.take(SHOWN) {
            write_advice(out, scope, a);
        }
        more(out, count);
    }
}

fn finding(out: &mut String, report: &Report, id: &FindingId) {
    match report.finding(&id.scope, &id.kind, &id.key) {
        Some(a) => write_advice(out, &id.scope, a),
        None => {
            let _ = writeln!(out, "- [{}] {} in {}: {}\n", id.severity, id.kind, code(&id.scope), text(&id.title));
        }
    }
}

/// One finding: what, where, the evidence and the fix.
fn write_advice(out: &mut String, scope: &str, a: &AdviceReport) {
    let _ = writeln!(out, "#### {}\n", text(&a.title));
    let _ = writeln!(out, "[{}] `{}` in {}\n", a.severity, a.kind, code(scope));
    if !a.message.is_empty() {
        let _ = writeln!(out, "{}\n", text(&shorten(&a.message, 800)));
    }
    if let Some(evidence) = evidence_line(&a.evidence) {
        let _ = writeln!(out, "- **Evidence:** {evidence}");
    }
    if !a.suggestion.is_empty() {
        let _ = writeln!(out, "- **Fix:** {}", text(&shorten(&a.suggestion, 800)));
    }
    let _ = writeln!(out);
}

/// The evidence's scalar fields, `name value` each, SQL and long text as code.
fn evidence_line(evidence: &serde_json::Value) -> Option<String> {
    let fields = evidence.as_object()?;
    let mut parts = Vec::new();
    for (name, value) in fields {
        let shown = match value {
            serde_json::Value::String(s) if s.len() > 30 || s.contains(' ') => code(&shorten(s, 160)),
            serde_json::Value::String(s) => text(s),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        parts.push(format!("{} {shown}", name.replace('_', " ")));
    }
    let line = parts.join(" · ");
    (!line.is_empty()).then(|| shorten(&line, EVIDENCE_CHARS))
}

fn busiest_scopes(out: &mut String, report: &Report) {
    if report.scopes.is_empty() {
        return;
    }
    let mut scopes: Vec<_> = report.scopes.iter().collect();
    scopes.sort_by(|a, b| b.1.statements.cmp(&a.1.statements).then_with(|| a.0.cmp(b.0)));
    let _ = writeln!(out, "<details><summary>Scopes with the most statements</summary>\n");
    let _ = writeln!(out, "| Scope | Statements | Queries | Time in the database | Findings |\n|---|--:|--:|--:|--:|");
    for (name, s) in scopes.iter().take(SHOWN) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} ms | {} |",
            cell(&code(name)),
            s.statements,
            s.queries.len(),
            s.total_ms,
            s.advice.len()
        );
    }
    let _ = writeln!(out, "\nEvery scope, query and finding: `{REPORT_FILE}`.\n</details>");
}

fn more(out: &mut String, total: usize) {
    if total > SHOWN {
        let _ = writeln!(out, "... and {} more in `{REPORT_FILE}`.\n", total - SHOWN);
    }
}

/// `s` as an inline code span, whatever backticks it holds; on one line.
fn code(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ");
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') || longest > 0 { " " } else { "" };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// Prose from advice (which marks SQL with backticks): `<` outside code spans is escaped, so no
/// text becomes an HTML tag.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_code = false;
    for c in s.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '<' if !in_code => out.push_str("&lt;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A table cell: `|` escaped (GitHub honours `\|` inside code spans in tables too).
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_escaped() {
        assert_eq!(code("SELECT 1"), "`SELECT 1`");
        assert_eq!(code("a`b"), "`` a`b ``");
        assert_eq!(text("x < 1 and `a < b` -> c"), "x &lt; 1 and `a < b` -> c");
        assert_eq!(cell("`a | b`"), "`a \\| b`");
        let evidence =
            serde_json::json!({"children": 10, "link": "users.id -> orders.user_id", "confirmed": true, "x": null});
        assert_eq!(
            evidence_line(&evidence).unwrap(),
            "children 10 · confirmed true · link `users.id -> orders.user_id`"
        );
    }
}
