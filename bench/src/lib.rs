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
