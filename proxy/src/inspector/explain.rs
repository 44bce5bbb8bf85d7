//! EXPLAIN on the Inspector's side connection, for `missing_index`, with no more rights than the
//! session whose statement it plans.
//!
//! The application's text only ever travels as one extended-protocol Parse
//! (`PREPARE pgvisor_explain AS <sql>`), so PostgreSQL itself refuses a second statement ("cannot
//! insert multiple commands into a prepared statement"); no statement splitter is part of the
//! argument. Everything sent as a simple query is text built here.
//!
//! The planner runs code the session's role may own (IMMUTABLE functions it folds), so planning
//! happens as that role, and out of that code's reach to change role back:
//!
//! ```text
//! BEGIN                                                    simple, ours
//! SELECT pg_catalog.set_config('role', $1, true)           extended, $1 = the session's user
//! CREATE FUNCTION pg_temp.pgvisor_explain() ...            simple, ours: owned by that role,
//!   SECURITY DEFINER; SET TRANSACTION READ ONLY;             SECURITY DEFINER
//!   SET LOCAL plan_cache_mode = force_generic_plan
//! [SELECT hypopg_create_index($1::text)]                   extended, ours (HypoPG runs only)
//! PREPARE pgvisor_explain AS <sql>                         extended: the application's text
//! SELECT pg_temp.pgvisor_explain()                         extended, ours: EXPLAIN EXECUTE
//! ROLLBACK; [SELECT hypopg_reset()]; DISCARD ALL           simple, ours
//! ```
//!
//! `SET ROLE` alone is no boundary: PostgreSQL lets any code RESET ROLE (or `set_config('role',
//! 'none', true)`) back to the session user, the Inspector's own login. Inside a SECURITY DEFINER
//! function it refuses ("cannot set parameter \"role\" within security-definer function"), and
//! `session_authorization` likewise, so the EXPLAIN runs inside one, owned by the session's role.
//!
//! Statements with `$n` parameters get a generic plan (`plan_cache_mode = force_generic_plan`,
//! executed with NULLs), so no captured parameter value is ever used. The same path serves every
//! PostgreSQL version: `EXPLAIN (GENERIC_PLAN)` (16+) takes `$n` without values only when nothing
//! else defines parameters (`transformExplainStmt`), and a Parse message always does.

use advisor::detect::missing_index::{
    filter_columns, seq_scans, total_cost, IndexCandidate, MissingIndexConfig, SeqScan,
};
use advisor::events::{ExplainSample, PlanOutcome, SkipReason};
use advisor::sql_shape;
use serde_json::Value;
use tokio_postgres::Client;

/// The temporary SECURITY DEFINER function the EXPLAIN runs in, created by (so owned by) the
/// session's role; then the transaction turns read-only before any application text arrives.
const WRAPPER: &str = "
CREATE FUNCTION pg_temp.pgvisor_explain() RETURNS text LANGUAGE plpgsql SECURITY DEFINER AS $pgvisor$
DECLARE
    params int := (SELECT pg_catalog.cardinality(parameter_types) FROM pg_catalog.pg_prepared_statements
                   WHERE name = 'pgvisor_explain');
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON, VERBOSE) EXECUTE pgvisor_explain'
        || CASE WHEN params > 0
                THEN '(' || pg_catalog.array_to_string(pg_catalog.array_fill('NULL'::text, ARRAY[params]), ', ') || ')'
                ELSE '' END
        INTO plan;
    RETURN plan::text;
END
$pgvisor$;
SET TRANSACTION READ ONLY;
SET LOCAL plan_cache_mode = force_generic_plan";

/// Why an EXPLAIN gave no plan.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The Inspector cannot act as the session's role.
    #[error("cannot act as role {role:?}: {detail}")]
    Role {
        /// The session's role.
        role: String,
        /// What PostgreSQL said.
        detail: String,
    },
    /// PostgreSQL would not plan the statement (as one statement, under that role).
    #[error("not explainable: {0}")]
    NotExplainable(String),
    /// Worth trying again later: the connection failed, a timeout, a lock.
    #[error("{0}")]
    Transient(String),
    /// The side connection could not be reset after an EXPLAIN: it must not be used again.
    #[error("the side connection could not be reset: {0}")]
    Unclean(String),
}

impl ExplainError {
    /// What the engine is told.
    pub fn outcome(&self) -> PlanOutcome {
        match self {
            Self::Role { .. } => PlanOutcome::Skipped(SkipReason::RoleNotAssumable),
            Self::NotExplainable(_) => PlanOutcome::Skipped(SkipReason::NotExplainable),
            Self::Transient(e) | Self::Unclean(e) => PlanOutcome::Failed(e.clone()),
        }
    }
}

/// Explains `sample` as its session's role and returns the index candidates its plan shows.
///
/// `hypopg` is the schema of the HypoPG extension when it is installed (quoted as an identifier).
pub async fn explain(
    c: &Client,
    sample: &ExplainSample,
    hypopg: Option<&str>,
    config: &MissingIndexConfig,
) -> Result<Vec<IndexCandidate>, ExplainError> {
    let sql = explainable_text(sample)?;
    let role = &*sample.user;
    let planned = plan(c, role, sql, None).await?;
    let cost_before = total_cost(&planned).unwrap_or(0.0);
    let mut out = Vec::new();
    for scan in seq_scans(&planned) {
        let Some(table_rows) = table_rows(c, &scan).await else { continue };
        if !config.worth_an_index(table_rows, scan.plan_rows) {
            continue;
        }
        let columns = filter_columns(&scan.filter);
        if columns.is_empty() {
            continue;
        }
        let cost_with_index = match hypopg {
            Some(schema) => {
                let hypothetical = Hypothetical { schema, ddl: index_ddl(&scan, &columns) };
                match plan(c, role, sql, Some(&hypothetical)).await {
                    Ok(plan) => total_cost(&plan),
                    Err(e @ ExplainError::Unclean(_)) => return Err(e),
                    Err(_) => None,
                }
            }
            None => None,
        };
        out.push(IndexCandidate { scan, table_rows, columns, cost_before, cost_with_index });
    }
    Ok(out)
}

/// The statement text worth sending, or why not: a cheap filter on the verb, not a safety measure.
/// (No statement splitter here: the text is already one statement as far as pgvisor's splitter
/// can tell, and where it is wrong, PostgreSQL's Parse refuses the rest.)
fn explainable_text(sample: &ExplainSample) -> Result<&str, ExplainError> {
    let text = &sample.statement.text;
    let explainable = match sql_shape::verb(text) {
        "SELECT" | "UPDATE" | "DELETE" => true,
        "WITH" => sql_shape::is_read(text),
        "INSERT" => text.contains(" SELECT "),
        _ => false,
    };
    let sql = sample.sql.trim().trim_end_matches(';').trim();
    if !explainable {
        return Err(ExplainError::NotExplainable("not a SELECT, UPDATE, DELETE or INSERT ... SELECT".into()));
    }
    Ok(sql)
}

/// A HypoPG index to plan with.
struct Hypothetical<'a> {
    /// HypoPG's schema, quoted.
    schema: &'a str,
    /// `CREATE INDEX ON ...` built from the plan's own names.
    ddl: String,
}

/// Plans `sql` (one statement, else PostgreSQL refuses it) as `role`, and leaves the connection
/// `c` as it found it: the EXPLAIN (FORMAT JSON) output.
pub async fn plan_as(c: &Client, role: &str, sql: &str) -> Result<Value, ExplainError> {
    plan(c, role, sql, None).await
}

/// [`plan_as`], with a HypoPG index when given.
async fn plan(
    c: &Client,
    role: &str,
    sql: &str,
    hypothetical: Option<&Hypothetical<'_>>,
) -> Result<Value, ExplainError> {
    let planned = plan_in_transaction(c, role, sql, hypothetical).await;
    reset(c, hypothetical.map(|h| h.schema)).await.map_err(ExplainError::Unclean)?;
    planned
}

async fn plan_in_transaction(
    c: &Client,
    role: &str,
    sql: &str,
    hypothetical: Option<&Hypothetical<'_>>,
) -> Result<Value, ExplainError> {
    c.batch_execute("BEGIN").await.map_err(|e| ExplainError::Transient(message(&e)))?;
    assume_role(c, role).await?;
    c.batch_execute(WRAPPER).await.map_err(|e| role_error(role, &e))?;
    if let Some(h) = hypothetical {
        let create = format!("SELECT {}.hypopg_create_index($1::text)", h.schema);
        c.execute(create.as_str(), &[&h.ddl]).await.map_err(|e| not_explainable(&e))?;
    }
    let prepare = format!("PREPARE pgvisor_explain AS {sql}");
    c.execute(prepare.as_str(), &[]).await.map_err(|e| not_explainable(&e))?;
    let row = c.query_one("SELECT pg_temp.pgvisor_explain()", &[]).await.map_err(|e| not_explainable(&e))?;
    let plan: Option<String> = row.get(0);
    let plan = plan.ok_or_else(|| ExplainError::NotExplainable("EXPLAIN returned no plan".into()))?;
    serde_json::from_str(&plan).map_err(|e| ExplainError::NotExplainable(format!("unreadable plan: {e}")))
}

/// `SET LOCAL ROLE` to the session's user, parameterized; checked, since a role PostgreSQL
/// treats specially (`none`) would leave the Inspector's own.
async fn assume_role(c: &Client, role: &str) -> Result<(), ExplainError> {
    c.query_one("SELECT pg_catalog.set_config('role', $1, true)", &[&role]).await.map_err(|e| role_error(role, &e))?;
    let row = c.query_one("SELECT current_user::text", &[]).await.map_err(|e| ExplainError::Transient(message(&e)))?;
    let current: String = row.get(0);
    if current != role {
        return Err(ExplainError::Role { role: role.into(), detail: format!("current_user is {current:?}") });
    }
    Ok(())
}

/// Ends the transaction and drops whatever the planned code may have left on the session
/// (session advisory locks, prepared statements, temporary objects, settings, HypoPG indexes).
async fn reset(c: &Client, hypopg: Option<&str>) -> Result<(), String> {
    c.batch_execute("ROLLBACK").await.map_err(|e| message(&e))?;
    if let Some(schema) = hypopg {
        c.batch_execute(&format!("SELECT {schema}.hypopg_reset()")).await.map_err(|e| message(&e))?;
    }
    c.batch_execute("DISCARD ALL").await.map_err(|e| message(&e))
}

/// True for errors worth another try later (SQLSTATE classes 08 connection, 40 rollback, 53
/// resources, 55 object state such as a lock, 57 operator intervention such as a timeout, 58
/// system, XX internal), and for errors with no SQLSTATE (the connection itself).
fn transient(sqlstate: Option<&str>) -> bool {
    match sqlstate {
        None => true,
        Some(code) => matches!(code.get(..2), Some("08" | "40" | "53" | "55" | "57" | "58" | "XX")),
    }
}

fn role_error(role: &str, e: &tokio_postgres::Error) -> ExplainError {
    if transient(e.code().map(|s| s.code())) {
        return ExplainError::Transient(message(e));
    }
    ExplainError::Role { role: role.into(), detail: message(e) }
}

fn not_explainable(e: &tokio_postgres::Error) -> ExplainError {
    if transient(e.code().map(|s| s.code())) {
        return ExplainError::Transient(message(e));
    }
    ExplainError::NotExplainable(message(e))
}

/// PostgreSQL's message when it sent one, else the client's error.
fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string())
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

/// `CREATE INDEX ON table (columns)` for HypoPG, every name quoted.
fn index_ddl(scan: &SeqScan, columns: &[String]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let table = match &scan.schema {
        Some(schema) => format!("{}.{}", quote(schema), quote(&scan.table)),
        None => quote(&scan.table),
    };
    let cols: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    format!("CREATE INDEX ON {table} ({})", cols.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_and_capacity_errors_are_worth_a_retry() {
        for code in [None, Some("57014"), Some("08006"), Some("55P03"), Some("53200"), Some("40001")] {
            assert!(transient(code), "{code:?}");
        }
        // Syntax (several statements), permission, a function's own error, unknown parameter type.
        for code in ["42601", "42501", "P0001", "42P18", "22023"] {
            assert!(!transient(Some(code)), "{code}");
        }
    }

    #[test]
    fn skipped_and_failed_outcomes() {
        let role = ExplainError::Role { role: "app".into(), detail: "permission denied to set role".into() };
        assert!(matches!(role.outcome(), PlanOutcome::Skipped(SkipReason::RoleNotAssumable)));
        let syntax = ExplainError::NotExplainable("cannot insert multiple commands".into());
        assert!(matches!(syntax.outcome(), PlanOutcome::Skipped(SkipReason::NotExplainable)));
        assert!(matches!(ExplainError::Unclean("closed".into()).outcome(), PlanOutcome::Failed(_)));
    }

    #[test]
    fn hypothetical_index_names_are_quoted() {
        let scan =
            SeqScan { schema: Some("app".into()), table: "we\"ird".into(), filter: String::new(), plan_rows: 1.0 };
        assert_eq!(index_ddl(&scan, &["val".into()]), "CREATE INDEX ON \"app\".\"we\"\"ird\" (\"val\")");
    }
}
