//! pgvisor's grouping of the measuring corpus (bench/corpus/, built by make_corpus.py and never
//! used to tune the rules) against libpg_query's, as committed reference fingerprints: no
//! libpg_query build needed. `PGVISOR_EXTRA_CORPUS=path[:path...]` adds corpus files kept outside
//! the repository (the external one make_corpus.py builds from PostgreSQL's regression suite).
//! Definitions of the numbers: docs/fingerprints.md, "Agreement with pg_query".
//!
//! An extra corpus is split by the hash of each query's `base` (the statement it is a variant
//! of) into a development half, whose disagreements are printed and may be read while writing
//! rules, and a held-out half, which is only counted: its number is the honest one.

use std::path::Path;

use pgvisor_bench::{agreement, measuring_corpus, Agreement, MeasuredQuery};

/// Lowest per-query agreement with the adjusted reference on orm.jsonl before this test fails:
/// a little under what is measured today (docs/fingerprints.md), so a regression shows.
const ORM_FLOOR: f64 = 0.97;

/// Lowest per-query agreement with the adjusted reference on the held-out half of an extra
/// corpus, and lowest pair precision on any part of it: a little under what is measured today.
const EXTRA_HELD_OUT_FLOOR: f64 = 0.97;
const EXTRA_PRECISION_FLOOR: f64 = 0.995;

/// Which half of an extra corpus a query belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Half {
    /// Read while writing rules.
    Development,
    /// Never read: only counted.
    HeldOut,
}

/// The half of `base`: FNV-1a, so the split is the same on every machine and Rust version.
fn half(base: &str) -> Half {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in base.as_bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    if h.is_multiple_of(2) {
        Half::Development
    } else {
        Half::HeldOut
    }
}

/// Prints and returns the agreement of `corpus`; lists up to `show` disagreeing queries.
fn report(name: &str, corpus: &[&MeasuredQuery], show: usize) -> (Agreement, Agreement) {
    let ours: Vec<u64> = corpus.iter().map(|q| advisor::fingerprint(q.sql.as_bytes()).fingerprint.0).collect();
    let raw: Vec<&str> = corpus.iter().map(|q| q.pg_query.as_str()).collect();
    let adjusted: Vec<&str> = corpus.iter().map(|q| q.adjusted.as_str()).collect();
    let (raw, adjusted) = (agreement(&ours, &raw), agreement(&ours, &adjusted));
    println!(
        "{name}: {} queries; per-query agreement with pg_query {:.2}% (adjusted for pgvisor's deliberate \
         differences {:.2}%); pairs vs adjusted: precision {:.2}%, recall {:.2}%",
        raw.queries,
        raw.per_query * 100.0,
        adjusted.per_query * 100.0,
        adjusted.pair_precision * 100.0,
        adjusted.pair_recall * 100.0
    );
    for &i in adjusted.disagreeing.iter().take(show) {
        let n = advisor::fingerprint(corpus[i].sql.as_bytes());
        println!("  differs [{}] {}\n      as {}", corpus[i].base, corpus[i].sql, n.text);
        // One query of the reference group fingerprinted apart, one of ours the reference puts apart.
        let split =
            (0..corpus.len()).find(|&j| adjusted_key(corpus[j]) == adjusted_key(corpus[i]) && ours[j] != ours[i]);
        let merged =
            (0..corpus.len()).find(|&j| ours[j] == ours[i] && adjusted_key(corpus[j]) != adjusted_key(corpus[i]));
        for (what, j) in [("split from", split), ("merged with", merged)] {
            if let Some(j) = j {
                let m = advisor::fingerprint(corpus[j].sql.as_bytes());
                println!("      {what} [{}] {}\n          as {}", corpus[j].base, corpus[j].sql, m.text);
            }
        }
    }
    (raw, adjusted)
}

fn adjusted_key(q: &MeasuredQuery) -> &str {
    &q.adjusted
}

/// How many disagreeing queries to list (`PGVISOR_SHOW`, 40 by default).
fn shown() -> usize {
    std::env::var("PGVISOR_SHOW").ok().and_then(|s| s.parse().ok()).unwrap_or(40)
}

#[test]
fn orm_corpus_groups_as_pg_query_does() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/orm.jsonl");
    let corpus = measuring_corpus(&path).unwrap();
    assert!(corpus.len() >= 500, "{} queries", corpus.len());
    let (_, adjusted) = report("bench/corpus/orm.jsonl", &corpus.iter().collect::<Vec<_>>(), shown());
    assert!(
        adjusted.per_query >= ORM_FLOOR,
        "per-query agreement {:.2}% is under the floor {:.0}%",
        adjusted.per_query * 100.0,
        ORM_FLOOR * 100.0
    );
}

#[test]
fn extra_corpora_are_reported() {
    let Ok(paths) = std::env::var("PGVISOR_EXTRA_CORPUS") else { return };
    for path in std::env::split_paths(&paths) {
        let corpus = measuring_corpus(&path).unwrap();
        let name = path.display().to_string();
        let part = |h: Half| corpus.iter().filter(|q| half(&q.base) == h).collect::<Vec<_>>();
        let (_, development) = report(&format!("{name}, development half"), &part(Half::Development), shown());
        // The held-out half is counted, never listed.
        let (_, held_out) = report(&format!("{name}, held-out half"), &part(Half::HeldOut), 0);
        let (_, whole) = report(&format!("{name}, whole"), &corpus.iter().collect::<Vec<_>>(), 0);
        assert!(
            held_out.per_query >= EXTRA_HELD_OUT_FLOOR,
            "held-out agreement {:.2}% is under the floor {:.0}%",
            held_out.per_query * 100.0,
            EXTRA_HELD_OUT_FLOOR * 100.0
        );
        for (part, a) in [("development", &development), ("held-out", &held_out), ("whole", &whole)] {
            assert!(
                a.pair_precision >= EXTRA_PRECISION_FLOOR,
                "{part}: pair precision {:.2}% is under {:.1}%",
                a.pair_precision * 100.0,
                EXTRA_PRECISION_FLOOR * 100.0
            );
        }
    }
}

/// `PGVISOR_DEVELOPMENT_CORPUS=path[:path...]`: corpus files built for writing rules (a second
/// development set; docs/fingerprints.md says how one was made), reported whole, disagreements
/// listed. Nothing is asserted: they are material, not a measurement.
#[test]
fn development_corpora_are_listed() {
    let Ok(paths) = std::env::var("PGVISOR_DEVELOPMENT_CORPUS") else { return };
    for path in std::env::split_paths(&paths) {
        let corpus = measuring_corpus(&path).unwrap();
        report(&path.display().to_string(), &corpus.iter().collect::<Vec<_>>(), shown());
    }
}

#[test]
fn the_split_is_stable_and_about_even() {
    assert_eq!(half("reg-0"), half("reg-0"));
    let development = (0..2000).filter(|k| half(&format!("reg-{k}")) == Half::Development).count();
    assert!((900..1100).contains(&development), "{development} of 2000");
}

#[test]
fn agreement_counts_groups_and_pairs() {
    // Ours splits the reference group {0, 1, 2} into {0, 1} and {2}, and merges 3 with 4.
    let a = agreement(&[1, 1, 2, 3, 3], &["x", "x", "x", "y", "z"]);
    assert_eq!(a.disagreeing, vec![0, 1, 2, 3, 4]);
    assert_eq!((a.pair_precision, a.pair_recall), (0.5, 1.0 / 3.0));
    let same = agreement(&[7, 7, 8], &["a", "a", "b"]);
    assert_eq!((same.per_query, same.pair_precision, same.pair_recall), (1.0, 1.0, 1.0));
}
