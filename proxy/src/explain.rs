//! EXPLAIN on the Inspector's side connection, for `missing_index`.
//!
//! Never EXPLAIN ANALYZE and never a statement with side effects: only SELECT, UPDATE, DELETE
//! and INSERT ... SELECT are explained, inside a READ ONLY transaction that is rolled back.
//! Statements with `$n` parameters get a generic plan (PostgreSQL 16+: `GENERIC_PLAN`; older:
//! PREPARE with `plan_cache_mode = force_generic_plan`, executed with NULLs), so no captured
//! parameter value is ever used.

use advisor::detect::missing_index::{
    filter_columns, seq_scans, total_cost, IndexCandidate, MissingIndexConfig, SeqScan,
};
use advisor::detect::sql_shape;
use advisor::events::ExplainSample;
use advisor::lexer::split_statements;
use serde_json::Value;
use tokio_postgres::{Client, SimpleQueryMessage};

/// Explains `sample` and returns the index candidates its plan shows.
pub async fn explain(
    c: &Client,
    sample: &ExplainSample,
    version: i32,
    hypopg: bool,
    config: &MissingIndexConfig,
) -> Result<Vec<IndexCandidate>, String> {
    let text = &sample.statement.text;
    let sql = sample.sql.trim().trim_end_matches(';').trim();
    let explainable = match sql_shape::verb(text) {
        "SELECT" | "UPDATE" | "DELETE" => true,
        "WITH" => sql_shape::is_read(text),
        "INSERT" => text.contains(" SELECT "),
        _ => false,
    };
    if !explainable || split_statements(sql.as_bytes()).len() != 1 {
        return Ok(Vec::new());
    }
    let explain_sql = plan_sql(sql, max_param(sql), version);
    let plan = run_plan(c, &explain_sql).await?;
    let cost_before = total_cost(&plan).unwrap_or(0.0);
    let mut out = Vec::new();
    for scan in seq_scans(&plan) {
        let Some(table_rows) = table_rows(c, &scan).await else { continue };
        if !config.worth_an_index(table_rows, scan.plan_rows) {
            continue;
        }
        let columns = filter_columns(&scan.filter);
        if columns.is_empty() {
            continue;
        }
        let cost_with_index = if hypopg { hypothetical_cost(c, &scan, &columns, &explain_sql).await } else { None };
        out.push(IndexCandidate { scan, table_rows, columns, cost_before, cost_with_index });
    }
    Ok(out)
}

/// The highest `$n` in a statement (0 when it has no parameters).
fn max_param(sql: &str) -> usize {
    let b = sql.as_bytes();
    let mut max = 0;
    for (i, _) in sql.match_indices('$') {
        let digits: String = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).map(|c| *c as char).collect();
        if let Ok(n) = digits.parse::<usize>() {
            max = max.max(n);
        }
    }
    max
}

fn plan_sql(sql: &str, params: usize, version: i32) -> String {
    if params == 0 {
        format!("BEGIN READ ONLY; EXPLAIN (FORMAT JSON, VERBOSE) {sql}; ROLLBACK")
    } else if version >= 160_000 {
        format!("BEGIN READ ONLY; EXPLAIN (FORMAT JSON, VERBOSE, GENERIC_PLAN) {sql}; ROLLBACK")
    } else {
        let nulls = vec!["NULL"; params].join(", ");
        format!(
            "BEGIN READ ONLY; SET LOCAL plan_cache_mode = force_generic_plan; PREPARE pgvisor_explain AS {sql}; \
             EXPLAIN (FORMAT JSON, VERBOSE) EXECUTE pgvisor_explain({nulls}); DEALLOCATE pgvisor_explain; ROLLBACK"
        )
    }
}

async fn run_plan(c: &Client, explain_sql: &str) -> Result<Value, String> {
    match c.simple_query(explain_sql).await {
        Ok(messages) => {
            let plan = messages.iter().find_map(|m| match m {
                SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            });
            let plan = plan.ok_or("EXPLAIN returned no plan")?;
            serde_json::from_str(&plan).map_err(|e| format!("unreadable plan: {e}"))
        }
        Err(e) => {
            // The batch stopped at the error: leave the side connection clean.
            let _ = c.simple_query("ROLLBACK; DEALLOCATE ALL").await;
            Err(e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string()))
        }
    }
}

/// `pg_class.reltuples` of the scanned table (None when never analysed or not found).
async fn table_rows(c: &Client, scan: &SeqScan) -> Option<f64> {
    let row = c
        .query_opt(
            "SELECT c.reltuples::float8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = $1 AND ($2::text IS NULL OR n.nspname = $2) LIMIT 1",
            &[&scan.table, &scan.schema],
        )
        .await
        .ok()??;
    let rows: f64 = row.get(0);
    (rows >= 0.0).then_some(rows)
}

/// The plan's cost with a hypothetical index (HypoPG), or None when it cannot be tried.
async fn hypothetical_cost(c: &Client, scan: &SeqScan, columns: &[String], explain_sql: &str) -> Option<f64> {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let table = match &scan.schema {
        Some(schema) => format!("{}.{}", quote(schema), quote(&scan.table)),
        None => quote(&scan.table),
    };
    let cols: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let ddl = format!("CREATE INDEX ON {table} ({})", cols.join(", "));
    c.query("SELECT indexrelid FROM hypopg_create_index($1)", &[&ddl]).await.ok()?;
    let cost = run_plan(c, explain_sql).await.ok().and_then(|p| total_cost(&p));
    let _ = c.simple_query("SELECT hypopg_reset()").await;
    cost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_plans_for_parameters() {
        assert_eq!(max_param("select * from t where a = $1 and b = $12"), 12);
        assert_eq!(max_param("select 'x$'"), 0);
        assert!(
            plan_sql("select 1", 0, 150_000).starts_with("BEGIN READ ONLY; EXPLAIN (FORMAT JSON, VERBOSE) select 1")
        );
        assert!(plan_sql("select $1", 1, 160_000).contains("GENERIC_PLAN"));
        let old = plan_sql("select * from t where a = $1 and b = $2", 2, 150_000);
        assert!(old.contains("force_generic_plan") && old.contains("EXECUTE pgvisor_explain(NULL, NULL)"), "{old}");
        assert!(old.ends_with("ROLLBACK"));
    }
}
