//! `n_plus_one`: one query run once per row of the query before it.
//!
//! Per session ([`NPlusOneDetector`]): a burst is N or more executions of one read-only
//! fingerprint with N or more distinct parameter sets, each within `gap` of the previous one
//! (other statements may be interleaved). The link to a parent is proven, not guessed: when
//! every child's parameter is a value of one column of a recent result, the advice names that
//! column and the join. Across a pool's connections, and for bursts with no provable parent,
//! the engine's [`BurstWatch`] takes over.

mod burst_watch;
mod report;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use crate::advice::{Finding, Occurrence};
use crate::capture::Params;
pub use crate::capture::ResultDigest;
use crate::events::Statement;
use crate::fingerprint::Fingerprint;
use crate::orm::OrmStyle;
pub use burst_watch::BurstWatch;
use report::{Burst as Described, Proof};

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

/// A finished statement as the detector sees it.
#[derive(Debug, Clone)]
pub struct Execution {
    /// What ran.
    pub statement: Arc<Statement>,
    /// The SQL style of the raw text.
    pub style: OrmStyle,
    /// Parameter values as keys (Bind values, or the literals of a simple query), capped.
    pub params: Params,
    /// The same values as text, only with `--log-params`.
    pub param_texts: Option<Arc<[String]>>,
    /// Sampled result values (empty when it returned no rows).
    pub result: Arc<ResultDigest>,
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

impl Burst {
    /// The proof: one (parameter, parent column) pair that every child matched.
    fn link(&self) -> Option<(usize, usize)> {
        self.matches.iter().filter(|(_, n)| **n == self.count).map(|(k, _)| *k).min()
    }
}

/// Per-session N+1 state: reports bursts proven against a parent's result in the same session.
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

    /// Feeds one successful execution; returns a finding when a proven burst crosses the
    /// threshold or grows (doubling), or when a finished one gets its final count.
    pub fn observe(&mut self, e: Execution) -> Vec<Finding> {
        let mut out = Vec::new();
        if !e.statement.shape.read {
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
                child: Execution { result: Arc::default(), ..e.clone() },
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
            if burst.distinct.len() < MAX_DISTINCT
                && burst.distinct.insert(e.params.hash())
                && burst.samples.len() < SAMPLED_PARAMS
            {
                if let Some(texts) = e.param_texts.as_ref().filter(|_| self.config.log_params) {
                    burst.samples.push(texts.to_vec());
                }
            }
            burst.total += e.duration;
            burst.last = e.at;
            if let Some(parent) = &burst.parent {
                for (pi, value) in e.params.iter() {
                    for ci in 0..parent.result.columns() {
                        if parent.result.contains(ci, value) {
                            *burst.matches.entry((pi, ci)).or_default() += 1;
                        }
                    }
                }
            }
            let min = self.config.min_children;
            // Only a proven burst is reported here: a load test repeating one query (pgbench -S)
            // has no parent, and bursts with no provable parent are judged by the engine
            // (BurstWatch), which can tell a bounded burst from a steady repetition.
            let due = burst.parent.is_some()
                && burst.link().is_some()
                && burst.distinct.len() >= min
                && (burst.reported_at == 0 || burst.count >= burst.reported_at * 2);
            if due {
                let occurrence = if burst.reported_at == 0 { Occurrence::New } else { Occurrence::Update };
                burst.reported_at = burst.count;
                out.extend(self.finding(fp, occurrence));
            }
        }
        if !e.result.is_empty() && e.rows > 0 {
            match self.parents.back_mut() {
                // A parent is looked up newest first, by a child of another statement: an older
                // result of the newest parent's statement is never found again. Replaced in
                // place, a statement repeated back to back (a load test) allocates nothing here.
                Some(last) if last.statement.fingerprint == fp => match Arc::get_mut(last) {
                    Some(unshared) => *unshared = e,
                    None => *last = Arc::new(e),
                },
                _ => {
                    if self.parents.len() >= PARENTS {
                        self.parents.pop_front();
                    }
                    self.parents.push_back(Arc::new(e));
                }
            }
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
        (b.reported_at > 0 && b.count > b.reported_at).then(|| self.describe(b, Occurrence::Update)).flatten()
    }

    fn finding(&self, fp: Fingerprint, occurrence: Occurrence) -> Option<Finding> {
        self.describe(&self.bursts[&fp], occurrence)
    }

    /// The finding for a proven burst (`None` if it is no longer proven).
    fn describe(&self, b: &Burst, occurrence: Occurrence) -> Option<Finding> {
        let (param, column) = b.link()?;
        let parent = b.parent.as_ref()?;
        let sessions = [self.session_label.clone()];
        let described = Described {
            child: &b.child.statement,
            style: b.child.style,
            count: b.count,
            distinct: b.distinct.len(),
            total: b.total,
            sessions: &sessions,
            proof: Proof::Linked { parent: &parent.statement, result: &parent.result, param, column },
            samples: self.config.log_params.then_some(b.samples.as_slice()),
        };
        Some(described.finding(occurrence))
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
            let rows = column.map_or(0, |(_, values)| values.len() as u64);
            let result = column
                .map(|(name, values)| {
                    let keys = values.iter().map(|v| crate::capture::text_key(v.as_bytes())).collect();
                    ResultDigest::new(vec![Some(Arc::from(name))].into(), [keys])
                })
                .unwrap_or_default();
            let e = Execution {
                statement: stmt(sql),
                style: OrmStyle::detect(sql.as_bytes()),
                params: Params::from_texts(params.iter().copied()),
                param_texts: Some(params.iter().map(|p| p.to_string()).collect()),
                result: Arc::new(result),
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
    fn an_unproven_burst_is_left_to_the_engine() {
        let mut f = Feed::new();
        f.run("select count(*) from users", &[], Some(("count", &["10"])));
        for id in IDS {
            f.run("select * from orders where user_id = $1", &[id], None);
        }
        assert!(f.finish().is_empty(), "BurstWatch judges bursts with no proven parent");
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
