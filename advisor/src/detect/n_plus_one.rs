//! `n_plus_one`: one query run once per row of the query before it.
//!
//! Per session: a burst is N or more executions of one read-only fingerprint with N or more
//! distinct parameter sets, each within `gap` of the previous one (other statements may be
//! interleaved). The link to a parent is proven, not guessed: when every child's parameter is a
//! value of one column of a recent result, the advice names that column and the join.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::advice::{Finding, Kind, Occurrence, Severity};
use crate::detect::orm::OrmStyle;
use crate::detect::sql_shape;
use crate::events::Statement;
use crate::fingerprint::Fingerprint;

/// Thresholds.
#[derive(Debug, Clone)]
pub struct NPlusOneConfig {
    /// Children needed to call it a burst (`--n-plus-one-min`).
    pub min_children: usize,
    /// Longest pause between two children of one burst.
    pub gap: Duration,
    /// Include sample parameter values in the evidence (`--log-params`).
    pub log_params: bool,
}

impl Default for NPlusOneConfig {
    fn default() -> Self {
        Self { min_children: 5, gap: Duration::from_secs(1), log_params: false }
    }
}

/// Most recent results kept as possible parents.
const PARENTS: usize = 4;
/// Most fingerprints with an open burst per session.
const MAX_RUNS: usize = 64;
/// Parameter sets kept as values per burst, for `--log-params` evidence.
const SAMPLED_PARAMS: usize = 10;
/// Most distinct parameter sets remembered (as hashes) per burst.
const MAX_DISTINCT: usize = 1024;

/// The values one result column held (capped by the observer).
#[derive(Debug, Clone, Default)]
pub struct ColumnSample {
    /// Column name from RowDescription, when known.
    pub name: Option<String>,
    /// Distinct values, as text.
    pub values: HashSet<String>,
}

/// A finished statement as the detector sees it.
#[derive(Debug, Clone)]
pub struct Execution {
    /// What ran.
    pub statement: Arc<Statement>,
    /// The SQL style of the raw text.
    pub style: OrmStyle,
    /// Parameter values as text (Bind values, or the literals of a simple query), capped.
    pub params: Vec<String>,
    /// Sampled result columns (empty when it returned no rows).
    pub columns: Vec<ColumnSample>,
    /// Rows returned.
    pub rows: u64,
    /// Duration.
    pub duration: Duration,
    /// When it finished.
    pub at: Instant,
}

#[derive(Debug)]
struct Burst {
    child: Execution,
    parent: Option<Arc<Execution>>,
    count: usize,
    /// Hashes of the distinct parameter sets (values themselves are not kept).
    distinct: HashSet<u64>,
    /// The first few parameter sets, for `--log-params`.
    samples: Vec<Vec<String>>,
    total: Duration,
    last: Instant,
    /// Per (parameter index, parent column): children whose parameter was in that column.
    matches: HashMap<(usize, usize), usize>,
    /// Count when this burst was last reported.
    reported_at: usize,
}

/// Per-session N+1 state.
#[derive(Debug, Default)]
pub struct NPlusOneDetector {
    config: NPlusOneConfig,
    parents: VecDeque<Arc<Execution>>,
    bursts: HashMap<Fingerprint, Burst>,
    session_label: String,
}

impl NPlusOneDetector {
    /// A detector for one session (`label` names the session in messages).
    pub fn new(config: NPlusOneConfig, label: String) -> Self {
        Self { config, parents: VecDeque::new(), bursts: HashMap::new(), session_label: label }
    }

    /// Feeds one successful execution; returns a finding when a burst crosses the threshold
    /// or grows (doubling), or when a finished burst gets its final count.
    pub fn observe(&mut self, e: Execution) -> Vec<Finding> {
        let mut out = Vec::new();
        if !sql_shape::is_read(&e.statement.text) {
            return out;
        }
        let fp = e.statement.fingerprint;
        // Bursts that went quiet are over, and so are those whose parent runs again (the next
        // page or request started): report their final size.
        let gap = self.config.gap;
        let stale: Vec<Fingerprint> = self
            .bursts
            .iter()
            .filter(|(_, b)| {
                e.at.duration_since(b.last) > gap || b.parent.as_ref().is_some_and(|p| p.statement.fingerprint == fp)
            })
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(b) = self.bursts.remove(&k) {
                out.extend(self.final_report(&b));
            }
        }
        if !e.params.is_empty() {
            if !self.bursts.contains_key(&fp) && self.bursts.len() >= MAX_RUNS {
                self.bursts.clear();
            }
            let parent = self.parents.iter().rev().find(|p| p.statement.fingerprint != fp).cloned();
            let burst = self.bursts.entry(fp).or_insert_with(|| Burst {
                child: Execution { columns: Vec::new(), ..e.clone() },
                parent,
                count: 0,
                distinct: HashSet::new(),
                samples: Vec::new(),
                total: Duration::ZERO,
                last: e.at,
                matches: HashMap::new(),
                reported_at: 0,
            });
            burst.count += 1;
            if burst.distinct.len() < MAX_DISTINCT {
                let mut h = xxhash_rust::xxh3::Xxh3::new();
                for p in &e.params {
                    h.update(p.as_bytes());
                    h.update(&[0]);
                }
                if burst.distinct.insert(h.digest()) && burst.samples.len() < SAMPLED_PARAMS && self.config.log_params {
                    burst.samples.push(e.params.clone());
                }
            }
            burst.total += e.duration;
            burst.last = e.at;
            if let Some(parent) = &burst.parent {
                for (pi, value) in e.params.iter().enumerate() {
                    for (ci, column) in parent.columns.iter().enumerate() {
                        if column.values.contains(value) {
                            *burst.matches.entry((pi, ci)).or_default() += 1;
                        }
                    }
                }
            }
            let min = self.config.min_children;
            // A burst needs a parent: a different query that returned rows right before it. A
            // load test repeating one query (pgbench -S) is not an N+1.
            let due = burst.parent.is_some()
                && burst.distinct.len() >= min
                && (burst.reported_at == 0 || burst.count >= burst.reported_at * 2);
            if due {
                let occurrence = if burst.reported_at == 0 { Occurrence::New } else { Occurrence::Update };
                burst.reported_at = burst.count;
                out.push(self.finding(fp, occurrence));
            }
        }
        if !e.columns.is_empty() && e.rows > 0 {
            if self.parents.len() >= PARENTS {
                self.parents.pop_front();
            }
            self.parents.push_back(Arc::new(e));
        }
        out
    }

    /// Renames the session in messages (once its backend pid is known).
    pub fn set_label(&mut self, label: String) {
        self.session_label = label;
    }

    /// Reports the final size of every open burst (the session ended).
    pub fn finish(&mut self) -> Vec<Finding> {
        let bursts: Vec<Burst> = self.bursts.drain().map(|(_, b)| b).collect();
        bursts.iter().filter_map(|b| self.final_report(b)).collect()
    }

    fn final_report(&self, b: &Burst) -> Option<Finding> {
        (b.reported_at > 0 && b.count > b.reported_at).then(|| self.describe(b, Occurrence::Update))
    }

    fn finding(&self, fp: Fingerprint, occurrence: Occurrence) -> Finding {
        self.describe(&self.bursts[&fp], occurrence)
    }

    fn describe(&self, b: &Burst, occurrence: Occurrence) -> Finding {
        let child = &b.child.statement;
        // The proof: one (parameter, parent column) pair that every child matched.
        let link = b
            .matches
            .iter()
            .filter(|(_, n)| **n == b.count)
            .min_by_key(|((pi, ci), _)| (*pi, *ci))
            .map(|((pi, ci), _)| (*pi, *ci));
        let confirmed = link.is_some() && b.parent.is_some();
        let total_ms = b.total.as_secs_f64() * 1000.0;
        let severity = if b.count >= 50 || total_ms >= 500.0 { Severity::Critical } else { Severity::Warning };
        let child_table = sql_shape::tables(&child.text).into_iter().next();
        let mut join = None;
        let (link_text, batched) = match (link, &b.parent) {
            (Some((pi, ci)), Some(parent)) => {
                let parent_col = parent.columns[ci].name.clone().unwrap_or_else(|| format!("column {}", ci + 1));
                let parent_table =
                    sql_shape::tables(&parent.statement.text).into_iter().next().unwrap_or_else(|| "parent".into());
                let child_col = sql_shape::column_for_param(&child.text, pi + 1)
                    .map(|c| sql_shape::bare_name(&c))
                    .unwrap_or_else(|| format!("${}", pi + 1));
                let child_table = child_table.clone().unwrap_or_else(|| "child".into());
                join = Some(format!(
                    "SELECT ... FROM {parent_table} JOIN {child_table} ON {child_table}.{child_col} = {parent_table}.{parent_col}"
                ));
                (
                    Some(format!("{parent_table}.{parent_col} -> {child_table}.{child_col}")),
                    sql_shape::batched(&child.text, pi + 1),
                )
            }
            _ => (None, sql_shape::batched(&child.text, 1)),
        };
        let parent_text = b.parent.as_ref().filter(|_| confirmed).map(|p| p.statement.text.to_string());
        let title = match (&link_text, &child_table) {
            (Some(link), _) => format!("N+1 queries: {} queries, one per row ({link})", b.count),
            (None, Some(t)) => format!("N+1 queries: {} similar queries on {t} in a burst", b.count),
            (None, None) => format!("N+1 queries: {} similar queries in a burst", b.count),
        };
        let message = match (&parent_text, &link_text) {
            (Some(parent), Some(link)) => format!(
                "{} ran `{}` and then `{}` {} times, once per row of that result: each execution took its parameter from \
                 the first query's result ({link}). That is {} round trips to the database ({total_ms:.1} ms) where one query \
                 would do.",
                self.session_label,
                parent,
                child.text,
                b.count,
                b.count
            ),
            _ => format!(
                "{} ran `{}` {} times in a burst, with {} different parameter values ({total_ms:.1} ms in total). pgvisor \
                 could not tie the values to an earlier result, so they may come from the application's own loop; either \
                 way one query could fetch them all.",
                self.session_label,
                child.text,
                b.count,
                b.distinct.len()
            ),
        };
        let mut suggestion = match &batched {
            Some(q) => format!("Fetch all rows at once and group them in the application: {q} with an array of all the values."),
            None => "Fetch all rows at once (WHERE ... = ANY($1) with an array of the values, or a JOIN) instead of one query per row.".into(),
        };
        if let (Some(_), Some(join)) = (&parent_text, &join) {
            suggestion.push_str(&format!(" Or fetch both in one query: {join}, with the first query's WHERE clause."));
        }
        if let Some(orm) = b.child.style.eager_loading() {
            suggestion.push(' ');
            suggestion.push_str(orm);
        }
        let mut fingerprints = vec![child.fingerprint];
        if let Some(p) = b.parent.as_ref().filter(|_| confirmed) {
            fingerprints.insert(0, p.statement.fingerprint);
        }
        let mut evidence = json!({
            "confirmed": confirmed,
            "parent_query": parent_text,
            "child_query": child.text.to_string(),
            "children": b.count,
            "distinct_parameters": b.distinct.len(),
            "total_child_ms": (total_ms * 1000.0).round() / 1000.0,
            "link": link_text,
            "session": self.session_label,
        });
        if self.config.log_params {
            evidence["sample_parameters"] = json!(b.samples);
        }
        let parent_key =
            b.parent.as_ref().filter(|_| confirmed).map_or("none".to_string(), |p| p.statement.fingerprint.to_string());
        Finding {
            kind: Kind::NPlusOne,
            key: format!("{parent_key}:{}", child.fingerprint),
            occurrence,
            severity,
            title,
            message,
            suggestion,
            fingerprints,
            evidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmt(sql: &str) -> Arc<Statement> {
        Statement::from_sql(sql)
    }

    struct Feed {
        d: NPlusOneDetector,
        t: Instant,
        out: Vec<Finding>,
    }

    impl Feed {
        fn new() -> Self {
            Self {
                d: NPlusOneDetector::new(NPlusOneConfig::default(), "Session 1".into()),
                t: Instant::now(),
                out: Vec::new(),
            }
        }

        fn run(&mut self, sql: &str, params: &[&str], column: Option<(&str, &[&str])>) {
            self.t += Duration::from_millis(1);
            let columns = column
                .map(|(name, values)| {
                    vec![ColumnSample {
                        name: Some(name.into()),
                        values: values.iter().map(|v| v.to_string()).collect(),
                    }]
                })
                .unwrap_or_default();
            let rows = columns.first().map_or(0, |c| c.values.len() as u64);
            let e = Execution {
                statement: stmt(sql),
                style: OrmStyle::detect(sql.as_bytes()),
                params: params.iter().map(|p| p.to_string()).collect(),
                columns,
                rows,
                duration: Duration::from_micros(300),
                at: self.t,
            };
            self.out.extend(self.d.observe(e));
        }

        fn finish(&mut self) -> &[Finding] {
            self.out.extend(self.d.finish());
            &self.out
        }
    }

    const IDS: [&str; 10] = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"];

    #[test]
    fn confirmed_burst_names_the_link() {
        let mut f = Feed::new();
        f.run("select id, name from users", &[], Some(("id", &IDS)));
        for id in IDS {
            f.run("select * from orders where user_id = $1", &[id], Some(("id", &["77"])));
        }
        let found = f.finish();
        assert_eq!(found[0].occurrence, Occurrence::New);
        let last = found.last().unwrap();
        assert_eq!(last.evidence["confirmed"], true);
        assert_eq!(last.evidence["children"], 10);
        assert_eq!(last.evidence["link"], "users.id -> orders.user_id");
        assert!(last.suggestion.contains("orders.user_id = ANY($1)") || last.suggestion.contains("user_id = ANY($1)"));
        assert!(last.evidence.get("sample_parameters").is_none(), "no values without --log-params");
    }

    #[test]
    fn unproven_burst_after_a_parent_is_unconfirmed() {
        let mut f = Feed::new();
        f.run("select count(*) from users", &[], Some(("count", &["10"])));
        for id in IDS {
            f.run("select * from orders where user_id = $1", &[id], None);
        }
        let found = f.finish();
        assert!(!found.is_empty());
        assert_eq!(found.last().unwrap().evidence["confirmed"], false);
    }

    #[test]
    fn negatives() {
        // Same parameters: repeated_query, not N+1.
        let mut f = Feed::new();
        f.run("select id from users", &[], Some(("id", &IDS)));
        for _ in 0..20 {
            f.run("select * from orders where user_id = $1", &["1"], None);
        }
        assert!(f.finish().is_empty());
        // Writes in a loop.
        let mut f = Feed::new();
        f.run("select id from users", &[], Some(("id", &IDS)));
        for id in IDS {
            f.run("insert into audit(user_id) values ($1)", &[id], None);
        }
        assert!(f.finish().is_empty());
        // No parent: a load test repeating one query.
        let mut f = Feed::new();
        for id in IDS {
            f.run("select abalance from pgbench_accounts where aid = $1", &[id], Some(("abalance", &["0"])));
        }
        assert!(f.finish().is_empty());
        // Distinct shapes.
        let mut f = Feed::new();
        f.run("select id from users", &[], Some(("id", &IDS)));
        for (i, id) in IDS.iter().enumerate() {
            f.run(&format!("select * from t{i} where user_id = $1"), &[id], None);
        }
        assert!(f.finish().is_empty());
        // Parent, child, parent, child: one child per request, not a burst.
        let mut f = Feed::new();
        for id in IDS {
            f.run("select user_id from sessions where token = $1", &[id], Some(("user_id", &[id])));
            f.run("select * from users where id = $1", &[id], None);
        }
        assert!(f.finish().is_empty());
    }

    #[test]
    fn with_log_params_the_values_are_evidence() {
        let mut f = Feed::new();
        f.d.config.log_params = true;
        f.run("select id from users", &[], Some(("id", &IDS)));
        for id in IDS {
            f.run("select * from orders where user_id = $1", &[id], None);
        }
        assert!(f.finish()[0].evidence["sample_parameters"].is_array());
    }
}
