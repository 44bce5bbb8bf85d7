//! `select_star`: `SELECT *` (or `t.*`) whose rows are wide, so the application reads many bytes
//! or columns per row whether it uses them or not.
//!
//! Checked per execution from the rows that came back: on average at least
//! `--select-star-row-bytes` (default 1 KB) per row, or more than `--select-star-columns`
//! (default 20) columns. A narrow table read with `*` is fine, and so are explicit columns.
//! Information only: it costs bandwidth and memory, rarely correctness.

use serde_json::json;

use crate::advice::{Finding, Kind, Occurrence, Severity};
use crate::detect::unbounded_result::top_level;
use crate::model::FinishedStatement;
use crate::sql_shape;

/// Thresholds (`--select-star-row-bytes`, `--select-star-columns`).
#[derive(Debug, Clone)]
pub struct SelectStarConfig {
    /// Average bytes per row that make a row wide.
    pub row_bytes: u64,
    /// More columns than this make a row wide.
    pub columns: usize,
}

impl Default for SelectStarConfig {
    fn default() -> Self {
        Self { row_bytes: 1024, columns: 20 }
    }
}

/// The `*` and `t.*` items of the statement's top-level select list.
pub fn star_items(text: &str) -> Vec<String> {
    let flat = top_level(text);
    let Some(start) = flat.find("SELECT ") else { return Vec::new() };
    let list = &flat[start + "SELECT ".len()..];
    let end = list.find(" FROM ").unwrap_or(list.len());
    let list =
        list[..end].trim_start_matches("DISTINCT ON () ").trim_start_matches("DISTINCT ").trim_start_matches("ALL ");
    list.split(',').map(str::trim).filter(|item| *item == "*" || item.ends_with(".*")).map(str::to_owned).collect()
}

/// The finding for one execution, if it selected `*` and its rows were wide.
pub fn check(s: &FinishedStatement, config: &SelectStarConfig) -> Option<Finding> {
    if s.rows == 0 || !s.statement.shape.read {
        return None;
    }
    let row_bytes = s.bytes / s.rows;
    if row_bytes < config.row_bytes && s.columns <= config.columns {
        return None;
    }
    let stars = star_items(&s.statement.text);
    if stars.is_empty() {
        return None;
    }
    let text = &s.statement.text;
    let tables = sql_shape::tables(text);
    let on = tables.first().map(|t| format!(" on {t}")).unwrap_or_default();
    Some(Finding {
        kind: Kind::SelectStar,
        key: s.statement.fingerprint.to_string(),
        occurrence: Occurrence::New,
        severity: Severity::Info,
        title: format!("SELECT {}{on}: {} columns, {row_bytes} bytes per row", stars.join(", "), s.columns),
        message: format!(
            "`{text}` reads every column ({}) and its rows are wide: {} columns, {row_bytes} bytes per row on average \
             over {} row{}. Every column is read, sent and decoded on every call, including large text, JSON or bytea \
             values the code may never look at, and the query breaks or changes silently when a column is added.",
            stars.join(", "),
            s.columns,
            s.rows,
            if s.rows == 1 { "" } else { "s" }
        ),
        suggestion: "Name the columns the code uses: SELECT id, name, ... instead of *. With an ORM, load only some \
                     columns (SQLAlchemy load_only() / defer(), Django .only() / .defer() / .values(), Rails \
                     select(...), Hibernate a DTO projection)."
            .into(),
        fingerprints: vec![s.statement.fingerprint],
        evidence: json!({
            "query": text.to_string(),
            "star": stars,
            "columns": s.columns,
            "avg_row_bytes": row_bytes,
            "rows": s.rows,
            "tables": tables,
        }),
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::events::Statement;

    fn finished(sql: &str, rows: u64, bytes: u64, columns: usize) -> FinishedStatement {
        FinishedStatement {
            statement: Statement::from_sql(sql),
            params: None,
            rows,
            bytes,
            columns,
            duration: Duration::from_millis(1),
            at: Instant::now(),
        }
    }

    #[test]
    fn finds_stars_in_the_select_list() {
        assert_eq!(star_items("SELECT * FROM t"), vec!["*"]);
        assert_eq!(star_items("SELECT u.*, o.id FROM users u JOIN orders o ON o.uid = u.id"), vec!["u.*"]);
        assert_eq!(star_items("SELECT DISTINCT * FROM t"), vec!["*"]);
        assert!(star_items("SELECT count(*) FROM t").is_empty());
        assert!(star_items("SELECT id FROM t WHERE id IN (SELECT * FROM u)").is_empty());
        assert_eq!(star_items("WITH x AS (SELECT id FROM t) SELECT * FROM x"), vec!["*"]);
    }

    #[test]
    fn wide_rows_read_with_a_star() {
        let config = SelectStarConfig::default();
        let f = check(&finished("select * from documents where owner = 3", 10, 40_000, 4), &config).unwrap();
        assert_eq!((f.kind, f.severity), (Kind::SelectStar, Severity::Info));
        assert_eq!(f.evidence["avg_row_bytes"], 4000);
        assert_eq!(f.evidence["tables"][0], "documents");
        let many = check(&finished("select p.* from people p", 3, 300, 30), &config).unwrap();
        assert_eq!(many.evidence["columns"], 30);
    }

    #[test]
    fn narrow_rows_or_named_columns_are_fine() {
        let config = SelectStarConfig::default();
        assert!(check(&finished("select * from tags", 100, 2_000, 2), &config).is_none());
        assert!(check(&finished("select id, body from documents", 10, 40_000, 2), &config).is_none());
        assert!(check(&finished("select * from documents", 0, 0, 0), &config).is_none());
    }
}
