//! `missing_index`: a slow statement whose plan (EXPLAIN on the Inspector's side connection,
//! never ANALYZE) scans a large table sequentially and filters away most of its rows; the
//! advice is the index on the filter's columns, confirmed with HypoPG when it is installed.

use std::time::Duration;

use serde_json::{json, Value};

use crate::advice::{Finding, Kind, Occurrence, Severity};
use crate::fingerprint::Fingerprint;
pub use crate::model::{IndexCandidate, SeqScan};

/// Thresholds, in the spirit of PgHero's index suggestions.
#[derive(Debug, Clone)]
pub struct MissingIndexConfig {
    /// A statement at least this slow is offered for an EXPLAIN (`--explain-min`).
    pub explain_min: Duration,
    /// A sequential scan matters on a table with at least this many rows (PgHero: 10,000).
    pub min_table_rows: f64,
    /// ... when the filter keeps at most this share of them (most rows removed).
    pub max_selectivity: f64,
}

/// The default `--explain-min`. A sequential scan of a 50,000-row table takes 2 to 8 ms, and of
/// the smallest table worth an index (10,000 rows) about 0.5 ms, where an indexed lookup takes
/// 0.1 to 0.5 ms through pgvisor: 2 ms lets the scans of dev-sized tables through and keeps an
/// application's everyday indexed statements out. Each fingerprint is explained at most once
/// every ten minutes, so a lower cut-off costs EXPLAINs per query shape, not per statement.
pub const DEFAULT_EXPLAIN_MIN: Duration = Duration::from_millis(2);

impl Default for MissingIndexConfig {
    fn default() -> Self {
        Self { explain_min: DEFAULT_EXPLAIN_MIN, min_table_rows: 10_000.0, max_selectivity: 0.1 }
    }
}

/// Every sequential scan with a filter in an EXPLAIN (FORMAT JSON) plan.
pub fn seq_scans(plan: &Value) -> Vec<SeqScan> {
    let mut out = Vec::new();
    let root = plan.get(0).and_then(|p| p.get("Plan")).unwrap_or(plan);
    walk(root, &mut out);
    out
}

fn walk(node: &Value, out: &mut Vec<SeqScan>) {
    if node.get("Node Type").and_then(Value::as_str) == Some("Seq Scan") {
        if let (Some(table), Some(filter)) =
            (node.get("Relation Name").and_then(Value::as_str), node.get("Filter").and_then(Value::as_str))
        {
            out.push(SeqScan {
                schema: node.get("Schema").and_then(Value::as_str).map(str::to_owned),
                table: table.to_owned(),
                filter: filter.to_owned(),
                plan_rows: node.get("Plan Rows").and_then(Value::as_f64).unwrap_or(0.0),
            });
        }
    }
    if let Some(children) = node.get("Plans").and_then(Value::as_array) {
        for child in children {
            walk(child, out);
        }
    }
}

/// The estimated total cost at the top of a plan.
pub fn total_cost(plan: &Value) -> Option<f64> {
    plan.get(0)?.get("Plan")?.get("Total Cost")?.as_f64()
}

/// Index columns from a filter: columns compared with `=` first, then with a range operator,
/// at most 3, without duplicates. `((status = 'open'::text) AND (created_at > now()))` gives
/// `status, created_at`.
pub fn filter_columns(filter: &str) -> Vec<String> {
    let mut equality = Vec::new();
    let mut range = Vec::new();
    let tokens: Vec<&str> =
        filter.split(|c: char| c == '(' || c == ')' || c.is_whitespace()).filter(|t| !t.is_empty()).collect();
    for pair in tokens.windows(2) {
        let (lhs, op) = (pair[0], pair[1]);
        let column = lhs.rsplit('.').next().unwrap_or(lhs).trim_matches('"');
        let plain = !column.is_empty()
            && column.chars().all(|c| c.is_alphanumeric() || c == '_')
            && !column.chars().next().is_some_and(|c| c.is_ascii_digit())
            && !matches!(column.to_ascii_uppercase().as_str(), "AND" | "OR" | "NOT" | "NULL" | "TRUE" | "FALSE");
        if !plain {
            continue;
        }
        let target = match op {
            "=" => &mut equality,
            "<" | ">" | "<=" | ">=" | "~~" => &mut range,
            _ => continue,
        };
        if !target.iter().any(|c: &String| c == column) {
            target.push(column.to_string());
        }
    }
    let mut columns = equality;
    for c in range {
        if !columns.contains(&c) {
            columns.push(c);
        }
    }
    columns.truncate(3);
    columns
}

impl MissingIndexConfig {
    /// True when a scan of a table with `table_rows` rows expected to return `plan_rows` is worth
    /// an index.
    pub fn worth_an_index(&self, table_rows: f64, plan_rows: f64) -> bool {
        table_rows >= self.min_table_rows && plan_rows <= table_rows * self.max_selectivity
    }
}

/// The `CREATE INDEX CONCURRENTLY` statement for a candidate.
pub fn create_index(c: &IndexCandidate) -> String {
    let table = match &c.scan.schema {
        Some(s) if s != "public" => format!("{}.{}", quote(s), quote(&c.scan.table)),
        _ => quote(&c.scan.table),
    };
    let cols: Vec<String> = c.columns.iter().map(|x| quote(x)).collect();
    format!("CREATE INDEX CONCURRENTLY ON {table} ({});", cols.join(", "))
}

fn quote(ident: &str) -> String {
    if ident.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        ident.to_string()
    } else {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }
}

/// A share of a table as a reader wants it: `less than 0.01%`, `0.08%`, `2.5%`, `40%`.
fn percent(p: f64) -> String {
    match p {
        p if p <= 0.0 => "0%".into(),
        p if p < 0.01 => "less than 0.01%".into(),
        p if p < 1.0 => format!("{p:.2}%"),
        p if p < 10.0 => format!("{p:.1}%"),
        p => format!("{p:.0}%"),
    }
}

/// The finding for a statement and its best candidate.
pub fn finding(fingerprint: Fingerprint, statement: &str, c: &IndexCandidate, mean_ms: Option<f64>) -> Finding {
    let ddl = create_index(c);
    let (confirmed, gain) = match c.cost_with_index {
        Some(after) if after > 0.0 && after <= c.cost_before / 2.0 => (Some(true), format!(
            " HypoPG confirms it: with a hypothetical index the estimated cost falls from {:.0} to {:.0}.",
            c.cost_before, after
        )),
        Some(after) => (Some(false), format!(
            " A hypothetical index (HypoPG) did not halve the estimated cost ({:.0} -> {:.0}), so check it with EXPLAIN ANALYZE first.",
            c.cost_before, after
        )),
        None => (None, " The gain is an estimate: install HypoPG (CREATE EXTENSION hypopg) to let pgvisor confirm it with a hypothetical index.".to_string()),
    };
    let share = percent(if c.table_rows > 0.0 { c.scan.plan_rows / c.table_rows * 100.0 } else { 0.0 });
    // A plan of a statement sent with literals shows them in its filter: normalise it like the
    // statement, so no value reaches the log or the API.
    let filter = crate::fingerprint(c.scan.filter.as_bytes()).text;
    let timing = mean_ms.map(|m| format!(" It takes {m:.1} ms on average.")).unwrap_or_default();
    Finding {
        kind: Kind::MissingIndex,
        key: format!("{}:{}", c.scan.table, c.columns.join(",")),
        occurrence: Occurrence::New,
        severity: if c.table_rows >= 1_000_000.0 { Severity::Critical } else { Severity::Warning },
        title: format!("Missing index on {} ({})", c.scan.table, c.columns.join(", ")),
        message: format!(
            "`{statement}` reads all of {} (about {:.0} rows) and keeps about {:.0} of them ({share}) with the filter \
             {filter}: PostgreSQL has no index to find them directly.{timing}",
            c.scan.table, c.table_rows, c.scan.plan_rows
        ),
        suggestion: format!("{ddl}{gain} CONCURRENTLY builds the index without blocking writes."),
        fingerprints: vec![fingerprint],
        evidence: json!({
            "table": c.scan.table,
            "schema": c.scan.schema,
            "table_rows": c.table_rows,
            "estimated_rows": c.scan.plan_rows,
            "filter": filter,
            "columns": c.columns,
            "index": ddl,
            "cost_before": c.cost_before,
            "cost_with_index": c.cost_with_index,
            "confirmed": confirmed,
            "statement": statement,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_filtered_seq_scans_in_nested_plans() {
        let plan = json!([{ "Plan": {
            "Node Type": "Hash Join", "Total Cost": 1900.5,
            "Plans": [
                { "Node Type": "Seq Scan", "Relation Name": "orders", "Schema": "public", "Filter": "(user_id = 42)", "Plan Rows": 5.0 },
                { "Node Type": "Seq Scan", "Relation Name": "users", "Plan Rows": 100.0 }
            ]
        }}]);
        let scans = seq_scans(&plan);
        assert_eq!(scans.len(), 1);
        assert_eq!((scans[0].table.as_str(), scans[0].plan_rows), ("orders", 5.0));
        assert_eq!(total_cost(&plan), Some(1900.5));
    }

    #[test]
    fn columns_equality_first_then_range() {
        assert_eq!(
            filter_columns("((created_at > '2024-01-01'::date) AND (status = 'open'::text))"),
            vec!["status", "created_at"]
        );
        assert_eq!(filter_columns("(o.user_id = 42)"), vec!["user_id"]);
        assert_eq!(filter_columns("((\"userId\" = 7) AND (a = 1) AND (b = 2) AND (c = 3))"), vec!["userId", "a", "b"]);
        assert!(
            filter_columns("(lower(email) = 'x'::text)").is_empty()
                || filter_columns("(lower(email) = 'x'::text)") == vec!["email"]
        );
    }

    #[test]
    fn thresholds_and_statement() {
        let config = MissingIndexConfig::default();
        assert!(config.worth_an_index(50_000.0, 5.0));
        assert!(!config.worth_an_index(5_000.0, 5.0), "small tables scan fast");
        assert!(!config.worth_an_index(50_000.0, 40_000.0), "most rows kept: a scan is right");
        let c = IndexCandidate {
            scan: SeqScan {
                schema: Some("public".into()),
                table: "orders".into(),
                filter: "(user_id = 42)".into(),
                plan_rows: 5.0,
            },
            table_rows: 50_000.0,
            columns: vec!["user_id".into()],
            cost_before: 1000.0,
            cost_with_index: Some(8.3),
        };
        assert_eq!(create_index(&c), "CREATE INDEX CONCURRENTLY ON orders (user_id);");
        let f = finding(Fingerprint(1), "SELECT * FROM orders WHERE user_id = $1", &c, Some(4.2));
        assert_eq!(f.evidence["confirmed"], true);
        assert_eq!(f.evidence["filter"], "(user_id = $1)", "no literal value in the evidence");
        assert!(!f.message.contains("42"));
        assert!(f.suggestion.starts_with("CREATE INDEX CONCURRENTLY ON orders (user_id);"));
        assert!(f.message.contains("keeps about 5 of them (0.01%)"), "{}", f.message);
        let needle =
            IndexCandidate { table_rows: 250_000.0, scan: SeqScan { plan_rows: 12.0, ..c.scan.clone() }, ..c.clone() };
        let m = finding(Fingerprint(1), "q", &needle, None).message;
        assert!(m.contains("keeps about 12 of them (less than 0.01%)"), "{m}");
        assert_eq!(
            (percent(0.0), percent(0.1), percent(2.54), percent(40.0)),
            ("0%".into(), "0.10%".into(), "2.5%".into(), "40%".into())
        );
        let unconfirmed = IndexCandidate { cost_with_index: None, ..c };
        assert_eq!(finding(Fingerprint(1), "q", &unconfirmed, None).evidence["confirmed"], Value::Null);
    }
}
