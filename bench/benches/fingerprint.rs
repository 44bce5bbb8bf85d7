//! Fingerprint speed: pgvisor's lexer on a typical query and over the corpus, and with the
//! `pg_query` feature, libpg_query's fingerprint on the same inputs in the same run.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn fingerprint(c: &mut Criterion) {
    let typical = pgvisor_bench::TYPICAL_QUERY;
    let corpus: Vec<String> = pgvisor_bench::corpus().into_iter().map(|q| q.sql).collect();
    let bytes: u64 = corpus.iter().map(|q| q.len() as u64).sum();

    let mut group = c.benchmark_group("typical_query");
    group.throughput(Throughput::Bytes(typical.len() as u64));
    let mut f = advisor::Fingerprinter::default();
    group.bench_function("pgvisor", |b| b.iter(|| f.fingerprint(black_box(typical.as_bytes()))));
    #[cfg(feature = "pg_query")]
    group.bench_function("pg_query", |b| b.iter(|| pg_query::fingerprint(black_box(typical)).map(|r| r.value)));
    group.finish();

    let mut group = c.benchmark_group("corpus");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("pgvisor", |b| {
        b.iter(|| corpus.iter().map(|q| f.fingerprint(q.as_bytes()).0).fold(0u64, u64::wrapping_add))
    });
    #[cfg(feature = "pg_query")]
    group.bench_function("pg_query", |b| {
        b.iter(|| {
            corpus.iter().filter_map(|q| pg_query::fingerprint(q).ok()).fold(0u64, |a, r| a.wrapping_add(r.value))
        })
    });
    group.finish();
}

criterion_group!(benches, fingerprint);
criterion_main!(benches);
