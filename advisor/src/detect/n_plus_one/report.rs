//! The wording of an N+1 finding, shared by the per-session detector, the pool-wide one and
//! the unlinked bursts: what ran, the proof (or that there is none), what batching saves, the fix.

use std::time::Duration;

use serde_json::json;

use super::ResultDigest;
use crate::advice::{Finding, Kind, Occurrence, Severity};
use crate::events::Statement;
use crate::orm::OrmStyle;
use crate::sql_shape;

/// How the children were tied to their parent.
pub(crate) enum Proof<'a> {
    /// Every child's parameter `param` (0-based) was a value of `column` of `parent`'s result.
    Linked { parent: &'a Statement, result: &'a ResultDigest, param: usize, column: usize },
    /// No earlier result pgvisor saw holds the parameters.
    Unlinked,
}

/// One burst, as the finding describes it.
pub(crate) struct Burst<'a> {
    /// The repeated statement.
    pub child: &'a Statement,
    /// Its ORM style (for the eager-loading hint).
    pub style: OrmStyle,
    /// Executions.
    pub count: usize,
    /// Distinct parameter sets.
    pub distinct: usize,
    /// Their total time.
    pub total: Duration,
    /// Who ran them: one session's label, or several.
    pub sessions: &'a [String],
    /// The proof.
    pub proof: Proof<'a>,
    /// Sample parameter values (`--log-params` only).
    pub samples: Option<&'a [Vec<String>]>,
}

impl Burst<'_> {
    /// The finding for this burst.
    pub(crate) fn finding(&self, occurrence: Occurrence) -> Finding {
        let child = self.child;
        let count = self.count;
        let total_ms = self.total.as_secs_f64() * 1000.0;
        let mean_ms = if count == 0 { 0.0 } else { total_ms / count as f64 };
        // One batched query costs about one child's time: the rest is what batching saves.
        let saved_ms = (total_ms - mean_ms).max(0.0);
        let parallel = self.sessions.len() > 1;
        let who = match self.sessions {
            [one] => one.clone(),
            many => format!("{} connections of one application's pool ({})", many.len(), many.join("; ")),
        };
        let child_table = sql_shape::tables(&child.text).into_iter().next();
        let (severity, title, message, batched, join, link, parent_text) = match &self.proof {
            Proof::Linked { parent, result, param, column } => {
                let parent_col =
                    result.name(*column).map(str::to_string).unwrap_or_else(|| format!("column {}", column + 1));
                let parent_table =
                    sql_shape::tables(&parent.text).into_iter().next().unwrap_or_else(|| "parent".into());
                let child_col = sql_shape::column_for_param(&child.text, param + 1)
                    .map(|c| sql_shape::bare_name(&c))
                    .unwrap_or_else(|| format!("${}", param + 1));
                let child_table = child_table.clone().unwrap_or_else(|| "child".into());
                let link = format!("{parent_table}.{parent_col} -> {child_table}.{child_col}");
                let join = format!(
                    "SELECT ... FROM {parent_table} JOIN {child_table} ON {child_table}.{child_col} = {parent_table}.{parent_col}"
                );
                let severity = if count >= 50 || total_ms >= 500.0 { Severity::Critical } else { Severity::Warning };
                let title = if parallel {
                    format!(
                        "N+1 queries in parallel: {count} queries over {} connections, one per row ({link})",
                        self.sessions.len()
                    )
                } else {
                    format!("N+1 queries: {count} queries, one per row ({link})")
                };
                let how = if parallel {
                    format!(
                        "`{}` returned rows, and then `{}` ran {count} times in parallel on {who}, once per row of that result",
                        parent.display, child.display
                    )
                } else {
                    format!(
                        "{who} ran `{}` and then `{}` {count} times, once per row of that result",
                        parent.display, child.display
                    )
                };
                let message = format!(
                    "{how}: each execution took its parameter from the first query's result ({link}). That is {count} round \
                     trips to the database ({total_ms:.1} ms of database time) where one query would do."
                );
                (
                    severity,
                    title,
                    message,
                    batched(child, param + 1),
                    Some(join),
                    Some(link),
                    Some(parent.display.to_string()),
                )
            }
            Proof::Unlinked => {
                let title = match &child_table {
                    Some(t) => format!("Possible N+1: {count} similar queries on {t} in a burst"),
                    None => format!("Possible N+1: {count} similar queries in a burst"),
                };
                let message = format!(
                    "{who} ran `{}` {count} times in a row with {} different parameter values ({total_ms:.1} ms in total), and \
                     then stopped. The parameters did not come from an earlier result that pgvisor saw, so \
                     they may come from the application's own loop (a request body, a cache, a list); either way one query \
                     could fetch them all.",
                    child.display, self.distinct
                );
                (Severity::Info, title, message, batched(child, 1), None, None, None)
            }
        };
        let saving = format!(
            " Batched, it would save {} round trips and about {saved_ms:.1} ms of the {total_ms:.1} ms of database time \
             measured.",
            count.saturating_sub(1)
        );
        let mut suggestion = match &batched {
            Some(q) => format!("Fetch all rows at once and group them in the application: {q} with an array of all the values."),
            None => "Fetch all rows at once (WHERE ... = ANY($1) with an array of the values, or a JOIN) instead of one query per row.".into(),
        };
        if let Some(join) = &join {
            suggestion.push_str(&format!(" Or fetch both in one query: {join}, with the first query's WHERE clause."));
        }
        if parallel {
            suggestion.push_str(
                " Running the queries concurrently hides the latency but not the cost: the database still runs each one and \
                 the pool gives each a connection; one batched query beats concurrency.",
            );
        }
        if let Some(orm) = self.style.eager_loading() {
            suggestion.push(' ');
            suggestion.push_str(orm);
        }
        let mut fingerprints = vec![child.fingerprint];
        let parent_key = match &self.proof {
            Proof::Linked { parent, .. } => {
                fingerprints.insert(0, parent.fingerprint);
                parent.fingerprint.to_string()
            }
            Proof::Unlinked => "none".to_string(),
        };
        let mut evidence = json!({
            "confirmed": link.is_some(),
            "parallel": parallel,
            "parent_query": parent_text,
            "child_query": child.display.to_string(),
            "children": count,
            "distinct_parameters": self.distinct,
            "total_child_ms": round3(total_ms),
            "round_trips_saved": count.saturating_sub(1),
            "time_saved_ms": round3(saved_ms),
            "link": link,
            "session": self.sessions.first(),
        });
        if parallel {
            evidence["sessions"] = json!(self.sessions);
        }
        if let Some(samples) = self.samples {
            evidence["sample_parameters"] = json!(samples);
        }
        Finding {
            kind: Kind::NPlusOne,
            key: format!("{parent_key}:{}", child.fingerprint),
            occurrence,
            severity,
            title,
            message: message + &saving,
            suggestion,
            fingerprints,
            evidence,
        }
    }
}

/// The child rewritten to take all the values at once (`col = ANY($n)`): from the text as the
/// application wrote it, so it runs as is (aliases kept), else from the normalised text.
fn batched(child: &Statement, param: usize) -> Option<String> {
    sql_shape::batched(&child.display, param).or_else(|| sql_shape::batched(&child.text, param))
}

fn round3(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}
