//! Hostile texts cost the fingerprint work in proportion to their length: every rule that reads
//! ahead from a token is bounded, so a long run of what it reads does not make it quadratic.
use super::fingerprint;
use super::tests::{norm, same};

#[test]
fn parentheses_around_a_constant_cost_linear_work() {
    // Each `(` of a run tries the rule: bounded, so a huge run stays linear.
    let deep = format!("SELECT {}5{}", "(".repeat(200_000), ")".repeat(200_000));
    let started = std::time::Instant::now();
    let n = fingerprint(deep.as_bytes());
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(n.text.contains("($1)") && n.text.ends_with("))"));
    assert_eq!(norm("SELECT ((((5))))"), "SELECT $1");
}

#[test]
fn dotted_chains_of_type_names_cost_linear_work() {
    // Every word of `int.int.int...` may start a typed literal (`int '5'`, `pg_catalog.int4 '5'`);
    // a type name has at most two qualifiers, so no word reads the whole chain after it.
    // Reading the whole chain from every word took about 4 s for half this (a debug build),
    // and four times as long for this; bounded, it takes a few hundredths of a second.
    let chain = format!("SELECT {}int", "int.".repeat(32_000));
    let started = std::time::Instant::now();
    let n = fingerprint(chain.as_bytes());
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(n.text.starts_with("SELECT int.int."), "{:?}", n.text.get(..40));
    // Qualified type names still make typed literals.
    assert_eq!(norm("SELECT pg_catalog.int4 '5'"), "SELECT $1");
}

#[test]
fn nested_group_by_clauses_cost_linear_work() {
    // Each GROUP BY's list holds every level inside it: reading each level's whole list when it
    // closes would cost the square of the text.
    // Reading every level took about 3.5 s for half this depth (a debug build); bounded, a few
    // hundredths of a second.
    let depth = 8_000;
    let nested =
        format!("SELECT 1 FROM t GROUP BY {}1{}", "(SELECT 1 FROM t GROUP BY ".repeat(depth), ")".repeat(depth));
    let started = std::time::Instant::now();
    let n = fingerprint(nested.as_bytes());
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(n.text.starts_with("SELECT $1 FROM t GROUP BY"), "{:?}", n.text.get(..40));
    // Shallow nesting is read as before: a constant GROUP BY item does not count.
    same("SELECT a FROM t GROUP BY a, 1", "SELECT a FROM t GROUP BY a, 2");
    same(
        "SELECT (SELECT a FROM u GROUP BY a, 1) FROM t GROUP BY b, 1",
        "SELECT (SELECT a FROM u GROUP BY a, 7) FROM t GROUP BY b, 9",
    );
}

#[test]
fn a_long_statement_leaves_no_large_buffers_once_trimmed() {
    // 64 KiB of `1,1,1,...` is 64 K tokens, spans and constants: megabytes a session would hold
    // for its life. Trimmed, each buffer keeps at most what a typical statement needs.
    let mut f = super::Fingerprinter::default();
    let long = format!("select * from t where a in ({})", "1,".repeat(32 * 1024).trim_end_matches(','));
    f.fingerprint(long.as_bytes());
    assert!(f.tokens.capacity() > 30_000, "the long statement grew the buffers");
    f.trim();
    fn bytes<T>(v: &[T], capacity: usize) -> usize {
        let _ = v;
        capacity * std::mem::size_of::<T>()
    }
    let kept = [
        bytes(&f.tokens, f.tokens.capacity()),
        bytes(&f.spans, f.spans.capacity()),
        bytes(&f.known, f.known.capacity()),
        bytes(&f.constants, f.constants.capacity()),
        bytes(&f.key, f.key.capacity()),
        f.out.capacity(),
        f.display.out.capacity(),
        f.key_text.capacity(),
    ];
    assert!(kept.iter().all(|&b| b <= super::KEPT_BUFFER_BYTES), "{kept:?}");
    // A short statement after it still fingerprints as before.
    assert_eq!(norm("SELECT a FROM t WHERE b = 5"), "SELECT a FROM t WHERE b = $1");
    let short = f.fingerprint(b"select a from t where b = 5");
    assert_eq!(short, super::fingerprint(b"select a from t where b = 5").fingerprint);
}
