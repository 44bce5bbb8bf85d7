//! junit.xml: one testcase per scope, failing with the new findings and the query counts past the
//! baseline, so CI test views show which test a database problem belongs to. A testcase's time is
//! the scope's time in the database.

use std::fmt::Write;

use super::report::{AdviceReport, Report, Verdict};

/// The JUnit XML of `report`.
pub fn render(report: &Report) -> String {
    let suite = if report.check.is_some() { "pgvisor check" } else { "pgvisor run" };
    let mut cases = String::new();
    let mut failures = 0;
    let mut total_ms = 0.0;
    for (scope, s) in &report.scopes {
        total_ms += s.total_ms;
        let problems = report.check.as_ref().map(|v| problems_of(report, v, scope)).unwrap_or_default();
        let _ = writeln!(
            cases,
            "    <testcase name=\"{}\" classname=\"pgvisor\" time=\"{:.3}\">",
            escape(scope),
            s.total_ms / 1000.0
        );
        if let Some(first) = problems.first() {
            failures += 1;
            let message = match problems.len() {
                1 => first.0.clone(),
                n => format!("{} (and {} more)", first.0, n - 1),
            };
            let body: Vec<&str> = problems.iter().map(|(_, body)| body.as_str()).collect();
            let _ = writeln!(
                cases,
                "      <failure type=\"pgvisor\" message=\"{}\">{}</failure>",
                escape(&message),
                escape(&body.join("\n\n"))
            );
        }
        let quiet: Vec<String> = s
            .advice
            .iter()
            .filter(|a| !problems.iter().any(|(_, body)| body.starts_with(&headline(a))))
            .map(describe)
            .collect();
        if !quiet.is_empty() {
            let _ = writeln!(cases, "      <system-out>{}</system-out>", escape(&quiet.join("\n\n")));
        }
        let _ = writeln!(cases, "    </testcase>");
    }
    let tests = report.scopes.len();
    let time = total_ms / 1000.0;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\">"
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{time:.3}\" \
         timestamp=\"{}\">",
        escape(&report.started_at)
    );
    out.push_str(&cases);
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// The failures of `scope`: (one-line message, full text) for each new finding and regression.
fn problems_of(report: &Report, verdict: &Verdict, scope: &str) -> Vec<(String, String)> {
    let findings = verdict.new_findings.iter().filter(|f| f.scope == scope).map(|f| {
        match report.finding(scope, &f.kind, &f.key) {
            Some(a) => (format!("{}: {}", a.kind, a.title), describe(a)),
            None => (format!("{}: {}", f.kind, f.title), format!("[{}] {}: {}", f.severity, f.kind, f.title)),
        }
    });
    let regressions = verdict.regressions.iter().filter(|r| r.scope == scope).map(|r| {
        let text = format!("query count past the baseline: {}", r.describe());
        (text.clone(), text)
    });
    findings.chain(regressions).collect()
}

fn headline(a: &AdviceReport) -> String {
    format!("[{}] {}: {}", a.severity, a.kind, a.title)
}

/// A finding as plain text: headline, message, evidence, fix.
fn describe(a: &AdviceReport) -> String {
    let mut text = headline(a);
    if !a.message.is_empty() {
        text.push('\n');
        text.push_str(&a.message);
    }
    if !a.evidence.is_null() {
        text.push_str("\nEvidence: ");
        text.push_str(&a.evidence.to_string());
    }
    if !a.suggestion.is_empty() {
        text.push_str("\nFix: ");
        text.push_str(&a.suggestion);
    }
    text
}

/// `s` for XML text and attributes: the five entities escaped, characters XML 1.0 cannot hold
/// (control characters other than tab and newline) replaced by U+FFFD.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(c),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_xml() {
        assert_eq!(escape("a<b & \"c\" 'd'>\u{1}\te"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\u{FFFD}\te");
    }
}
