//! Fingerprints one typical query many times (for profiling with callgrind or perf).
fn main() {
    let sql = std::env::args().nth(1).unwrap_or_else(|| {
        "SELECT \"app_order\".\"id\", \"app_order\".\"total\", \"app_order\".\"created_at\" FROM \"app_order\" INNER JOIN \"app_user\" ON (\"app_order\".\"user_id\" = \"app_user\".\"id\") WHERE \"app_user\".\"email\" = 'alice@example.com' ORDER BY \"app_order\".\"created_at\" DESC LIMIT 21".into()
    });
    let n: u64 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let mut f = advisor::Fingerprinter::default();
    let mut acc = 0u64;
    for _ in 0..n {
        acc = acc.wrapping_add(f.fingerprint(std::hint::black_box(sql.as_bytes())).0);
    }
    println!("{acc} {}", f.text());
}
