//! Fingerprint grouping over a corpus of real queries (pgbench, ORMs, psql, pg_dump, migrations).
//!
//! `corpus/queries.jsonl` holds each query with the group it must share a fingerprint with;
//! `corpus/pg_query_fingerprints.jsonl` holds libpg_query's fingerprint of each (computed with
//! pglast), so agreement with pg_query is checked without building it here.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

#[derive(Deserialize)]
struct Entry {
    group: String,
    source: String,
    sql: String,
}

#[derive(Deserialize)]
struct Reference {
    sql: String,
    pg_query: String,
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> Vec<T> {
    let path = format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}: {e}: {l}")))
        .collect()
}

/// Share of entries whose fingerprint group (the other entries with the same fingerprint) is
/// exactly their reference group; returns the share and the entries that disagree.
fn agreement(ours: &[String], reference: &[String], sql: &[&str]) -> (f64, Vec<String>) {
    let members = |keys: &[String]| {
        let mut by: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            by.entry(k).or_default().push(i);
        }
        keys.iter().map(|k| by[k.as_str()].clone()).collect::<Vec<_>>()
    };
    let (a, b) = (members(ours), members(reference));
    let wrong: Vec<String> = (0..ours.len()).filter(|&i| a[i] != b[i]).map(|i| sql[i].to_string()).collect();
    (1.0 - wrong.len() as f64 / ours.len() as f64, wrong)
}

#[test]
fn corpus_groups_as_expected_and_as_pg_query() {
    let entries: Vec<Entry> = load("queries.jsonl");
    let reference: Vec<Reference> = load("pg_query_fingerprints.jsonl");
    assert!(entries.len() >= 300, "corpus has {} queries", entries.len());
    assert_eq!(entries.len(), reference.len());
    let sql: Vec<&str> = entries.iter().map(|e| e.sql.as_str()).collect();
    let ours: Vec<String> =
        entries.iter().map(|e| advisor::fingerprint(e.sql.as_bytes()).fingerprint.to_string()).collect();
    let groups: Vec<String> = entries.iter().map(|e| e.group.clone()).collect();
    for (e, r) in entries.iter().zip(&reference) {
        assert_eq!(e.sql, r.sql, "the two corpus files are in the same order");
    }
    let pg_query: Vec<String> = reference.iter().map(|r| r.pg_query.clone()).collect();

    let (expected, wrong_expected) = agreement(&ours, &groups, &sql);
    let (vs_pg_query, wrong_pg_query) = agreement(&ours, &pg_query, &sql);
    println!("grouping agreement: expected groups {:.2}%, pg_query {:.2}%", expected * 100.0, vs_pg_query * 100.0);
    for q in &wrong_pg_query {
        println!("differs from pg_query: {q}");
    }
    assert!(expected >= 0.99, "{:.2}% match the expected groups; wrong: {wrong_expected:#?}", expected * 100.0);
    assert!(vs_pg_query >= 0.99, "{:.2}% match pg_query; wrong: {wrong_pg_query:#?}", vs_pg_query * 100.0);
}

/// The normalised text of every corpus group, reviewed like code.
#[test]
fn corpus_normalised_text_snapshot() {
    let entries: Vec<Entry> = load("queries.jsonl");
    let mut by_group: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for e in &entries {
        let n = advisor::fingerprint(e.sql.as_bytes());
        let line = format!("{}  {}", n.fingerprint, n.text);
        let lines = by_group.entry((e.source.clone(), e.group.clone())).or_default();
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    let mut out = String::new();
    for ((source, group), lines) in by_group {
        out.push_str(&format!("[{source}] {group}\n"));
        for l in lines {
            out.push_str(&format!("    {l}\n"));
        }
    }
    insta::assert_snapshot!(out);
}
