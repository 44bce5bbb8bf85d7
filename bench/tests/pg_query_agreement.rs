//! With `--features pg_query`: pgvisor's fingerprints group the corpus as libpg_query does.
#![cfg(feature = "pg_query")]

#[test]
fn groups_like_pg_query() {
    let agreement = pgvisor_bench::pg_query_agreement();
    println!("grouping agreement with pg_query: {:.2}%", agreement * 100.0);
    assert!(agreement >= 0.99, "only {:.2}% grouped as pg_query does", agreement * 100.0);
}
