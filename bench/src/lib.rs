//! Shared inputs for pgvisor's benchmarks: the query corpus the advisor's tests use.

use serde::Deserialize;

/// One corpus entry.
#[derive(Debug, Deserialize)]
pub struct CorpusQuery {
    /// Group id: queries that must share a fingerprint.
    pub group: String,
    /// Where the query comes from (an ORM, pgbench, psql...).
    pub source: String,
    /// The SQL text.
    pub sql: String,
}

/// The query corpus (advisor/tests/corpus/queries.jsonl).
pub fn corpus() -> Vec<CorpusQuery> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../advisor/tests/corpus/queries.jsonl");
    std::fs::read_to_string(path)
        .expect("the corpus file is in the repository")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("corpus lines are JSON"))
        .collect()
}

/// A typical ~200-byte ORM query (Django-style, with a filter, join, order and limit).
pub const TYPICAL_QUERY: &str = "SELECT \"app_order\".\"id\", \"app_order\".\"total\", \"app_order\".\"created_at\" \
FROM \"app_order\" INNER JOIN \"app_user\" ON (\"app_order\".\"user_id\" = \"app_user\".\"id\") \
WHERE \"app_user\".\"email\" = 'alice@example.com' ORDER BY \"app_order\".\"created_at\" DESC LIMIT 21";

#[cfg(feature = "pg_query")]
/// Share of corpus queries that `advisor` and `pg_query` group the same way.
pub fn pg_query_agreement() -> f64 {
    use std::collections::HashMap;
    let corpus = corpus();
    let ours: Vec<u64> = corpus.iter().map(|q| advisor::fingerprint(q.sql.as_bytes()).fingerprint.0).collect();
    let theirs: Vec<u64> = corpus.iter().map(|q| pg_query::fingerprint(&q.sql).map(|f| f.value).unwrap_or(0)).collect();
    let groups = |keys: &[u64]| {
        let mut by: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            by.entry(*k).or_default().push(i);
        }
        keys.iter().map(|k| by[k].clone()).collect::<Vec<_>>()
    };
    let (a, b) = (groups(&ours), groups(&theirs));
    (0..a.len()).filter(|&i| a[i] == b[i]).count() as f64 / a.len() as f64
}

/// One query of the measuring corpus (bench/corpus/), with libpg_query's grouping of it.
#[derive(Debug, Deserialize)]
pub struct MeasuredQuery {
    /// Where its shape comes from (an ORM, a regression test file).
    pub source: String,
    /// The statement it is a variant of.
    pub base: String,
    /// The SQL text.
    pub sql: String,
    /// libpg_query's fingerprint.
    pub pg_query: String,
    /// libpg_query's fingerprint refined by what pgvisor keeps apart on purpose
    /// (bench/corpus/make_corpus.py, docs/fingerprints.md).
    pub adjusted: String,
}

/// Reads a measuring-corpus file (JSON lines).
pub fn measuring_corpus(path: &std::path::Path) -> Result<Vec<MeasuredQuery>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1)))
        .collect()
}

/// How a grouping compares with a reference grouping of the same queries.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// Queries compared.
    pub queries: usize,
    /// Share of queries whose group (the queries sharing its key) is exactly their reference group.
    pub per_query: f64,
    /// Of the pairs grouped together, the share the reference also groups together.
    pub pair_precision: f64,
    /// Of the pairs the reference groups together, the share grouped together.
    pub pair_recall: f64,
    /// Indices of the queries whose group differs from their reference group.
    pub disagreeing: Vec<usize>,
}

/// Compares grouping `ours` (one key per query) with `reference`.
pub fn agreement<A: std::hash::Hash + Eq, B: std::hash::Hash + Eq>(ours: &[A], reference: &[B]) -> Agreement {
    use std::collections::HashMap;
    assert_eq!(ours.len(), reference.len());
    let n = ours.len();
    let mut by_ours: HashMap<&A, usize> = HashMap::new();
    let mut by_ref: HashMap<&B, usize> = HashMap::new();
    let mut by_both: HashMap<(&A, &B), usize> = HashMap::new();
    for (a, b) in ours.iter().zip(reference) {
        *by_ours.entry(a).or_default() += 1;
        *by_ref.entry(b).or_default() += 1;
        *by_both.entry((a, b)).or_default() += 1;
    }
    // A query's group equals its reference group when both have the size of their intersection.
    let disagreeing: Vec<usize> = (0..n)
        .filter(|&i| {
            let both = by_both[&(&ours[i], &reference[i])];
            by_ours[&ours[i]] != both || by_ref[&reference[i]] != both
        })
        .collect();
    let pairs = |counts: &mut dyn Iterator<Item = usize>| counts.map(|c| (c * (c - 1) / 2) as f64).sum::<f64>();
    let (ours_pairs, ref_pairs, both_pairs) = (
        pairs(&mut by_ours.values().copied()),
        pairs(&mut by_ref.values().copied()),
        pairs(&mut by_both.values().copied()),
    );
    let share = |part: f64, whole: f64| if whole == 0.0 { 1.0 } else { part / whole };
    Agreement {
        queries: n,
        per_query: share((n - disagreeing.len()) as f64, n as f64),
        pair_precision: share(both_pairs, ours_pairs),
        pair_recall: share(both_pairs, ref_pairs),
        disagreeing,
    }
}
