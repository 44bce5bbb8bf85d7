//! Fingerprints the typical query (or the whole corpus) N times with pgvisor or, with the
//! `pg_query` feature, libpg_query: for instruction counts under `valgrind --tool=callgrind`,
//! which, unlike timings, do not depend on what else the machine is doing.
//!
//! `cargo run --release -p pgvisor-bench --features pg_query --example fingerprint_loop -- pgvisor|pg_query typical|corpus N`
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let engine = args.get(1).map(String::as_str).unwrap_or("pgvisor");
    let input = args.get(2).map(String::as_str).unwrap_or("typical");
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let queries: Vec<String> = match input {
        "corpus" => pgvisor_bench::corpus().into_iter().map(|q| q.sql).collect(),
        _ => vec![pgvisor_bench::TYPICAL_QUERY.to_string()],
    };
    let mut acc = 0u64;
    let mut f = advisor::Fingerprinter::default();
    for _ in 0..n {
        for q in &queries {
            acc = acc.wrapping_add(match engine {
                #[cfg(feature = "pg_query")]
                "pg_query" => pg_query::fingerprint(q).map(|r| r.value).unwrap_or(0),
                _ => f.fingerprint(std::hint::black_box(q.as_bytes())).0,
            });
        }
    }
    println!("{acc}");
}
