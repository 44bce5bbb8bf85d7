//! Advice for a terminal: one block per finding (severity, title, what happened, the fix, the
//! evidence that matters for its kind), or one JSON line. Which events are printed, and how
//! updates look, is `printer.rs`.

use std::fmt::Write as _;
use std::io::IsTerminal;

use serde::Deserialize;
use serde_json::Value;

/// The Advice JSON of the admin API (docs/admin-api.md), read leniently: fields a newer pgvisor
/// adds are ignored, and every field but the id has a default.
#[derive(Debug, Clone, Deserialize)]
pub struct AdviceView {
    /// 16 hex digits; stable per finding.
    pub id: String,
    /// `n_plus_one`, `lock_contention`...
    #[serde(default)]
    pub kind: String,
    /// `info`, `warning` or `critical`.
    #[serde(default)]
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
    /// Numbers and statements.
    #[serde(default)]
    pub evidence: Value,
    /// Occurrences merged.
    #[serde(default)]
    pub count: u64,
    /// First occurrence (RFC 3339): a finding pgvisor forgot (restart, reset) and found again
    /// has a new one.
    #[serde(default)]
    pub first_seen: String,
    /// Latest occurrence (RFC 3339).
    #[serde(default)]
    pub last_seen: String,
}

/// How output looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours.
    pub color: bool,
    /// Wrap text to this many columns.
    pub width: Option<usize>,
}

impl Style {
    /// Plain text, no wrapping: for pipes, files and tests.
    pub const PLAIN: Style = Style { color: false, width: None };

    /// Colour and wrapping when stdout is a terminal and `NO_COLOR` is not set (no-color.org:
    /// any non-empty value turns colour off).
    pub fn for_stdout() -> Self {
        if !std::io::stdout().is_terminal() {
            return Self::PLAIN;
        }
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let width = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(80usize).clamp(60, 160);
        Self { color: !no_color, width: Some(width) }
    }

    pub(super) fn paint(&self, codes: &str, text: &str) -> String {
        if self.color && !text.is_empty() {
            format!("\x1b[{codes}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

impl AdviceView {
    /// Tells an update from a repeat. Not (count, last_seen) alone: last_seen has millisecond
    /// precision, and an update can follow the first occurrence within the same millisecond.
    pub(super) fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.count, &self.last_seen, &self.severity, &self.title, &self.message).hash(&mut h);
        self.evidence.to_string().hash(&mut h);
        h.finish()
    }
}

/// The advice as one JSON line: the text as received when it is one line already.
pub(super) fn one_line_json(advice: &AdviceView, raw: Option<&str>) -> String {
    if let Some(raw) = raw.filter(|r| !r.contains('\n')) {
        return raw.to_string();
    }
    let value = raw.and_then(|r| serde_json::from_str::<Value>(r).ok()).unwrap_or_else(|| {
        serde_json::json!({
            "id": advice.id, "kind": advice.kind, "severity": advice.severity, "title": advice.title,
            "message": advice.message, "suggestion": advice.suggestion, "evidence": advice.evidence,
            "count": advice.count, "last_seen": advice.last_seen,
        })
    });
    value.to_string()
}

pub(super) fn severity_color(severity: &str) -> &'static str {
    match severity {
        "critical" => "1;31",
        "warning" => "1;33",
        _ => "1;36",
    }
}

/// The full block for one finding.
pub fn block(advice: &AdviceView, style: Style) -> String {
    let mut out = String::new();
    let badge = style.paint(severity_color(&advice.severity), &format!("{:<8}", advice.severity.to_uppercase()));
    let _ = writeln!(out, "{badge} {}", style.paint("1", &advice.title));
    let when = clock_time(&advice.last_seen).map(|t| format!(" · {t} UTC")).unwrap_or_default();
    let _ = writeln!(out, "{}", style.paint("2", &format!("         {} · seen {}x{when}", advice.kind, advice.count)));
    push_wrapped(&mut out, style, "  ", &advice.message);
    if !advice.suggestion.is_empty() {
        push_labelled(&mut out, style, "  ", "Fix: ", &advice.suggestion);
    }
    let evidence = evidence_lines(&advice.kind, &advice.evidence);
    if !evidence.is_empty() {
        let _ = writeln!(out, "  {}", style.paint("2", "Evidence:"));
        for (label, values) in evidence {
            match values.as_slice() {
                [one] => push_labelled(&mut out, style, "    ", &format!("{label}: "), one),
                many => {
                    let _ = writeln!(out, "    {}", style.paint("2", &format!("{label}:")));
                    for (n, value) in many.iter().enumerate() {
                        push_labelled(&mut out, style, "      ", &format!("{}. ", n + 1), value);
                    }
                }
            }
        }
    }
    out.push('\n');
    out
}

/// `HH:MM:SS` of an RFC 3339 time.
fn clock_time(rfc3339: &str) -> Option<&str> {
    rfc3339.split_once('T').and_then(|(_, t)| t.get(..8))
}

fn push_wrapped(out: &mut String, style: Style, indent: &str, text: &str) {
    push_labelled(out, style, indent, "", text);
}

/// `indent label text`, the text wrapped to the style's width and continued under itself.
fn push_labelled(out: &mut String, style: Style, indent: &str, label: &str, text: &str) {
    let hang = " ".repeat(indent.len() + label.chars().count());
    let budget = style.width.map(|w| w.saturating_sub(hang.len()).max(30));
    let mut first = true;
    for paragraph in text.lines() {
        for line in wrap(paragraph, budget) {
            if first {
                let _ = writeln!(out, "{indent}{}{line}", style.paint("2", label));
                first = false;
            } else {
                let _ = writeln!(out, "{hang}{line}");
            }
        }
    }
    if first {
        let _ = writeln!(out, "{indent}{}", style.paint("2", label));
    }
}

/// Greedy word wrap; words longer than the width stay whole.
fn wrap(text: &str, width: Option<usize>) -> Vec<String> {
    let Some(width) = width else { return vec![text.to_string()] };
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

/// Statements are normalised SQL and can be long; a block shows their start.
fn short(sql: &str) -> String {
    let sql: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match sql.char_indices().nth(240) {
        Some((i, _)) => format!("{}...", &sql[..i]),
        None => sql,
    }
}

fn ms_text(v: &Value) -> Option<String> {
    let ms = v.as_f64()?;
    Some(match ms {
        ms if ms >= 1000.0 => format!("{:.1} s", ms / 1000.0),
        ms if ms >= 10.0 => format!("{ms:.0} ms"),
        ms => format!("{ms:.1} ms"),
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(short).collect()).unwrap_or_default()
}

/// `session 3 · app "shop" · alice@db · 127.0.0.1:5555 · pid 123 · transaction open 2.1 s`.
fn session_summary(s: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(id) = s["session"].as_u64() {
        parts.push(format!("session {id}"));
    }
    if let Some(app) = s["application_name"].as_str().filter(|a| !a.is_empty()) {
        parts.push(format!("app \"{app}\""));
    }
    if let (Some(user), Some(db)) = (s["user"].as_str(), s["database"].as_str()) {
        parts.push(format!("{user}@{db}"));
    }
    if let Some(addr) = s["client_addr"].as_str() {
        parts.push(addr.to_string());
    }
    if let Some(pid) = s["pid"].as_u64() {
        parts.push(format!("pid {pid}"));
    }
    if let Some(open) = ms_text(&s["transaction_ms"]) {
        parts.push(format!("transaction open {open}"));
    }
    if let Some(state) = s["state"].as_str() {
        parts.push(state.replace('_', " "));
    }
    parts.join(" · ")
}

type EvidenceLines = Vec<(String, Vec<String>)>;

fn push(lines: &mut EvidenceLines, label: &str, value: Option<String>) {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        lines.push((label.to_string(), vec![value]));
    }
}

fn push_statements(lines: &mut EvidenceLines, label: &str, statements: Vec<String>) {
    if !statements.is_empty() {
        lines.push((label.to_string(), statements));
    }
}

/// The evidence that matters for each kind, in reading order; every scalar for kinds this
/// version does not know.
fn evidence_lines(kind: &str, e: &Value) -> EvidenceLines {
    let mut lines = Vec::new();
    let text = |v: &Value| v.as_str().map(short);
    match kind {
        "n_plus_one" => {
            let link = match (e["link"].as_str(), e["confirmed"].as_bool()) {
                (Some(link), _) => Some(link.to_string()),
                (None, Some(false)) => Some("not proven: the values did not come from an earlier result".into()),
                _ => None,
            };
            push(&mut lines, "link", link);
            let runs = e["children"].as_u64().map(|n| {
                let distinct =
                    e["distinct_parameters"].as_u64().map(|d| format!(", {d} different values")).unwrap_or_default();
                let total = ms_text(&e["total_child_ms"]).map(|t| format!(", {t} in total")).unwrap_or_default();
                format!("{n}{distinct}{total}")
            });
            push(&mut lines, "runs", runs);
            push(&mut lines, "first query", text(&e["parent_query"]));
            push(&mut lines, "repeated query", text(&e["child_query"]));
            push(&mut lines, "session", text(&e["session"]));
            if let Some(sample) = e.get("sample_parameters").filter(|s| !s.is_null()) {
                push(&mut lines, "sample parameters", Some(sample.to_string()));
            }
        }
        "lock_contention" => {
            let waited = ms_text(&e["wait_ms"]).map(|w| match e["wait_event"].as_str() {
                Some(event) => format!("{w} (waiting for {event})"),
                None => w,
            });
            push(&mut lines, "waited", waited);
            push(&mut lines, "waiting statement", text(&e["waiter_statement"]));
            push(&mut lines, "waiter", Some(session_summary(&e["waiter"])));
            let confirmed = e["confirmed"].as_bool().unwrap_or(true);
            let blockers = e["blockers"].as_array().cloned().unwrap_or_default();
            for b in &blockers {
                let label = if confirmed { "blocker" } else { "suspected blocker" };
                push(&mut lines, label, Some(session_summary(b)));
                push_statements(&mut lines, "  its transaction ran", strings(&b["statements"]));
            }
            if blockers.is_empty() {
                let pids =
                    e["root_blocker_pids"].as_array().filter(|p| !p.is_empty()).or(e["blocking_pids"].as_array());
                let pids = pids.map(|p| p.iter().map(Value::to_string).collect::<Vec<_>>().join(", "));
                push(&mut lines, "blocked by backend pid", pids.filter(|p| !p.is_empty()));
            }
        }
        "deadlock" => {
            push(&mut lines, "aborted statement", text(&e["victim_statement"]));
            for p in e["processes"].as_array().into_iter().flatten() {
                let who = match (p["session"].as_str(), p["pid"].as_u64()) {
                    (Some(s), _) => s.to_string(),
                    (None, Some(pid)) => format!("backend pid {pid} (not through pgvisor)"),
                    (None, None) => continue,
                };
                push(&mut lines, "side", Some(who));
                push_statements(&mut lines, "  its transaction ran", strings(&p["statements"]));
            }
        }
        "idle_in_transaction" | "long_transaction" => {
            push(&mut lines, "idle for", ms_text(&e["idle_ms"]));
            push(&mut lines, "session", Some(session_summary(e)));
            push_statements(&mut lines, "statements in the transaction", strings(&e["statements"]));
        }
        _ => {
            for (key, value) in e.as_object().into_iter().flatten() {
                let value = match value {
                    Value::Null => continue,
                    Value::String(s) => short(s),
                    other => short(&other.to_string()),
                };
                push(&mut lines, &key.replace('_', " "), Some(value));
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advice(kind: &str, evidence: Value) -> AdviceView {
        serde_json::from_value(serde_json::json!({
            "id": "00000000000000aa", "kind": kind, "severity": "warning",
            "title": "N+1 queries: 20 queries, one per row (users.id -> orders.user_id)",
            "message": "Session 1 ran `SELECT id FROM users` and then `SELECT * FROM orders WHERE user_id = $1` 20 times.",
            "suggestion": "Fetch all rows at once: SELECT * FROM orders WHERE user_id = ANY($1)",
            "fingerprints": ["0123456789abcdef"], "evidence": evidence, "count": 1,
            "first_seen": "2025-01-02T03:04:05.678Z", "last_seen": "2025-01-02T03:04:05.678Z",
            "a_field_from_the_future": true
        }))
        .unwrap()
    }

    #[test]
    fn n_plus_one_block() {
        let a = advice(
            "n_plus_one",
            serde_json::json!({"confirmed": true, "link": "users.id -> orders.user_id", "children": 20,
                "distinct_parameters": 20, "total_child_ms": 3.25, "parent_query": "SELECT id FROM users",
                "child_query": "SELECT * FROM orders WHERE user_id = $1", "session": "Session 1 (127.0.0.1:5555)"}),
        );
        let text = block(&a, Style::PLAIN);
        assert_eq!(
            text,
            "WARNING  N+1 queries: 20 queries, one per row (users.id -> orders.user_id)\n\
             \x20        n_plus_one · seen 1x · 03:04:05 UTC\n\
             \x20 Session 1 ran `SELECT id FROM users` and then `SELECT * FROM orders WHERE user_id = $1` 20 times.\n\
             \x20 Fix: Fetch all rows at once: SELECT * FROM orders WHERE user_id = ANY($1)\n\
             \x20 Evidence:\n\
             \x20   link: users.id -> orders.user_id\n\
             \x20   runs: 20, 20 different values, 3.2 ms in total\n\
             \x20   first query: SELECT id FROM users\n\
             \x20   repeated query: SELECT * FROM orders WHERE user_id = $1\n\
             \x20   session: Session 1 (127.0.0.1:5555)\n\n"
        );
    }

    #[test]
    fn lock_contention_names_the_blocker_and_its_statements() {
        let a = advice(
            "lock_contention",
            serde_json::json!({"confirmed": true, "wait_ms": 1502.0, "wait_event": "Lock:transactionid",
                "waiter_statement": "UPDATE t SET v = $1 WHERE id = $2",
                "waiter": {"session": 2, "pid": 11, "user": "u", "database": "d", "application_name": "",
                           "client_addr": "127.0.0.1:2", "state": "active", "transaction_ms": null, "statements": []},
                "blockers": [{"session": 1, "pid": 10, "user": "u", "database": "d", "application_name": "app",
                              "client_addr": "127.0.0.1:1", "state": "idle_in_transaction", "transaction_ms": 1700.0,
                              "statements": ["BEGIN", "UPDATE t SET v = v - $1 WHERE id = $2"]}]}),
        );
        let text = block(&a, Style::PLAIN);
        assert!(text.contains("waited: 1.5 s (waiting for Lock:transactionid)"), "{text}");
        assert!(
            text.contains("blocker: session 1 · app \"app\" · u@d · 127.0.0.1:1 · pid 10 · transaction open 1.7 s · idle in transaction"),
            "{text}"
        );
        assert!(text.contains("      2. UPDATE t SET v = v - $1 WHERE id = $2\n"), "{text}");
    }

    #[test]
    fn unknown_kinds_show_their_scalars() {
        let a = advice("slow_query", serde_json::json!({"p95_ms": 120.5, "query": "SELECT 1", "nothing": null}));
        let text = block(&a, Style::PLAIN);
        assert!(text.contains("    p95 ms: 120.5\n    query: SELECT 1\n"), "{text}");
        assert!(!text.contains("nothing"));
    }

    #[test]
    fn colour_and_wrapping() {
        let a = advice("n_plus_one", serde_json::json!({}));
        let text = block(&a, Style { color: true, width: Some(60) });
        assert!(text.starts_with("\x1b[1;33mWARNING \x1b[0m \x1b[1mN+1"), "{text:?}");
        let plain = text.replace("\x1b[0m", "").replace("\x1b[2m", "");
        assert!(plain.lines().skip(1).all(|l| l.chars().count() <= 60), "{plain}");
        assert!(
            plain.contains("\n  Fix: Fetch all rows at once: SELECT * FROM orders WHERE\n       user_id = ANY($1)\n"),
            "{plain}"
        );
        assert!(!block(&a, Style::PLAIN).contains('\x1b'));
    }
}
