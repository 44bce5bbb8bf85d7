//! `unbounded_result`: a read without LIMIT (or FETCH FIRST) that returned many rows or bytes.
//!
//! Checked per execution from what actually came back: `--unbounded-rows` (default 10,000) or
//! `--unbounded-bytes` (default 10 MB) of DataRow messages. A result fetched in chunks through a
//! cursor or the extended protocol's row limit (PortalSuspended) is several executions, each
//! under the threshold: streaming is the fix, not the problem.

use serde_json::json;

use crate::advice::{Finding, Kind, Occurrence, Severity};
use crate::model::FinishedStatement;
use crate::sql_shape;

/// Thresholds (`--unbounded-rows`, `--unbounded-bytes`).
#[derive(Debug, Clone)]
pub struct UnboundedResultConfig {
    /// Rows that make a result large.
    pub rows: u64,
    /// Bytes that make a result large.
    pub bytes: u64,
}

impl Default for UnboundedResultConfig {
    fn default() -> Self {
        Self { rows: 10_000, bytes: 10 * 1024 * 1024 }
    }
}

/// The statement with everything inside parentheses dropped (the parentheses stay, empty), so
/// its words are those of the top level: `SELECT count() FROM t WHERE a IN ()`.
pub fn top_level(text: &str) -> String {
    let (mut out, mut depth, mut quoted) = (String::with_capacity(text.len()), 0usize, false);
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => {
                if depth == 0 {
                    out.push('(');
                }
                depth += 1;
                continue;
            }
            ')' if !quoted => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    out.push(')');
                }
                continue;
            }
            _ => {}
        }
        if depth == 0 {
            out.push(c);
        }
    }
    out
}

/// True when the statement's top level has a LIMIT (other than LIMIT ALL) or FETCH FIRST/NEXT.
pub fn has_limit(text: &str) -> bool {
    let flat = top_level(text);
    let words: Vec<&str> = flat.split_whitespace().collect();
    words.windows(2).any(|w| match w {
        ["LIMIT", n] => *n != "ALL",
        ["FETCH", n] => matches!(*n, "FIRST" | "NEXT"),
        _ => false,
    })
}

/// The finding for one execution, if its result was large and unbounded.
pub fn check(s: &FinishedStatement, config: &UnboundedResultConfig, session: &str) -> Option<Finding> {
    let text = &s.statement.text;
    if (s.rows < config.rows && s.bytes < config.bytes) || !sql_shape::is_read(text) || has_limit(text) {
        return None;
    }
    let mb = s.bytes as f64 / (1024.0 * 1024.0);
    let severity = if s.rows >= config.rows.saturating_mul(10) || s.bytes >= config.bytes.saturating_mul(10) {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let ms = (s.duration.as_secs_f64() * 1e5).round() / 100.0;
    Some(Finding {
        kind: Kind::UnboundedResult,
        key: s.statement.fingerprint.to_string(),
        occurrence: Occurrence::New,
        severity,
        title: format!("Unbounded result: {} rows ({mb:.1} MB) without LIMIT", s.rows),
        message: format!(
            "{session} ran `{text}`, which has no LIMIT, and got {} rows ({mb:.1} MB) back in {ms} ms. The whole result \
             is read, sent and usually held in the application's memory at once, and it grows with the table.",
            s.rows
        ),
        suggestion: "Fetch only what is used: add LIMIT with keyset pagination (WHERE id > $last ORDER BY id LIMIT 100), or \
             aggregate in SQL. If every row is really needed, stream it instead of loading it at once: a server-side \
             cursor (DECLARE ... CURSOR / FETCH 1000, psycopg's named cursors, JDBC setFetchSize, SQLAlchemy \
             yield_per / stream_results), or, for exports, COPY (the query, with its values written in: COPY takes \
             no parameters) TO STDOUT."
            .into(),
        fingerprints: vec![s.statement.fingerprint],
        evidence: json!({
            "query": text.to_string(),
            "rows": s.rows,
            "bytes": s.bytes,
            "duration_ms": ms,
            "session": session,
        }),
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::events::Statement;

    fn finished(sql: &str, rows: u64, bytes: u64) -> FinishedStatement {
        FinishedStatement {
            statement: Statement::from_sql(sql),
            params: None,
            rows,
            bytes,
            columns: 2,
            duration: Duration::from_millis(40),
            at: Instant::now(),
        }
    }

    #[test]
    fn limits_at_the_top_level_only() {
        assert!(has_limit("SELECT * FROM t ORDER BY id LIMIT $1"));
        assert!(has_limit("SELECT * FROM t FETCH FIRST $1 ROWS ONLY"));
        assert!(!has_limit("SELECT * FROM t WHERE a IN (SELECT b FROM u LIMIT $1)"));
        assert!(!has_limit("SELECT * FROM t LIMIT ALL"));
        assert!(!has_limit("SELECT \"limit (\" FROM t"));
        assert_eq!(
            top_level("SELECT count(*) FROM t WHERE a IN (SELECT (1) FROM u)"),
            "SELECT count() FROM t WHERE a IN ()"
        );
    }

    #[test]
    fn many_rows_or_bytes_without_limit() {
        let config = UnboundedResultConfig::default();
        let f = check(&finished("select id, body from events", 20_000, 1_000_000), &config, "Session 1").unwrap();
        assert_eq!((f.kind, f.severity), (Kind::UnboundedResult, Severity::Warning));
        assert_eq!(f.evidence["rows"], 20_000);
        assert_eq!(f.evidence["query"], "SELECT id, body FROM events");
        assert!(f.suggestion.contains("LIMIT") && f.suggestion.contains("cursor"));
        let wide = check(&finished("select body from events", 50, 200 * 1024 * 1024), &config, "Session 1").unwrap();
        assert_eq!(wide.severity, Severity::Critical);
    }

    #[test]
    fn limited_small_or_writes_are_fine() {
        let config = UnboundedResultConfig::default();
        assert!(check(&finished("select id from events limit 50000", 50_000, 1_000_000), &config, "s").is_none());
        assert!(check(&finished("select id from events", 9_999, 100_000), &config, "s").is_none());
        assert!(check(&finished("update events set seen = true", 50_000, 0), &config, "s").is_none());
    }

    #[test]
    fn the_wording_has_no_runs_of_spaces() {
        let f = check(&finished("select id from events", 20_000, 0), &UnboundedResultConfig::default(), "s").unwrap();
        for text in [&f.title, &f.message, &f.suggestion] {
            assert!(!text.contains("  "), "{text}");
        }
    }
}
