//! asyncpg, a driver that speaks only the extended protocol and leans on every corner of it
//! (Parse/Describe with Flush, binary formats, its prepared statement cache, pipelined
//! executemany, binary COPY, portals fetched in chunks, CancelRequest on a client timeout), runs
//! `tests/drivers/asyncpg_workload.py` directly and through pgvisor: the canonical JSON of
//! everything it saw must be identical byte for byte, and pgvisor's statistics must be sane.
//!
//! Needs asyncpg in the test venv (`tests/python/requirements.txt`, `./dev test` installs it);
//! skipped without it unless `PGVISOR_REQUIRE_ORM` is set.

mod drivers_common;

use drivers_common::{assert_stats_sane, python_with, query_with, repo_root, same_both_ways, step};
use pgvisor_tests::{shared_cluster, start_proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncpg_sees_the_same_through_pgvisor() {
    let Some(python) = python_with("asyncpg").await else { return };
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let script = repo_root().join("tests/drivers/asyncpg_workload.py");
    let output = same_both_ways("asyncpg workload", cluster, &proxy, &python, &[script]).await;

    // The workload did what it says (so that "identical" means something).
    assert_eq!(step(&output, "done"), true);
    assert_eq!(step(&output, "division_by_zero")["error"]["sqlstate"], "22012", "{output}");
    assert_eq!(step(&output, "executemany_unique_violation")["error"]["sqlstate"], "23505");
    assert_eq!(step(&output, "statement_timeout")["error"]["sqlstate"], "57014");
    assert_eq!(step(&output, "client_timeout_cancel")["error"]["class"], "TimeoutError");
    assert_eq!(step(&output, "after_cancel"), "alive");
    assert_eq!(step(&output, "copy_records"), "COPY 5000");
    assert_eq!(step(&output, "large_result")[0], 20000);
    assert_eq!(step(&output, "notifications").as_array().map(Vec::len), Some(4));

    // The client timeout's CancelRequest went through pgvisor.
    assert!(proxy.counter(|s| &s.cancel_requests) >= 1, "no CancelRequest went through the proxy");

    let queries = assert_stats_sane(
        &proxy,
        &[
            // executemany's duplicate, the savepoint's duplicate, the read-only transaction's
            // insert, and the cached `select *` re-run after ALTER TABLE (0A000: asyncpg
            // re-prepares it on its own).
            ("fails_unique", 4),
            ("fails_missing_table", 1),
            ("fails_syntax", 1),
            ("(id - id)", 1),
            ("insert into items (id, name) values", 1),
            // The DO blocks (a dollar-quoted constant: one shape): the raise exception.
            ("do $1", 1),
            // The client timeout's cancel and statement_timeout.
            ("pg_sleep", 2),
        ],
    )
    .await;
    // Not asserted here: the calls of the 20 000-row `generate_series` statement, which the
    // 3 MB Bind right after it is wrongly counted on (see the ignored test below).
    let copy = query_with(&queries, "COPY \"copied\" FROM STDIN (FORMAT binary)");
    assert_eq!((copy["calls"].as_u64(), copy["rows"].as_u64()), (Some(1), Some(5000)), "{copy}");
    let bulk = query_with(&queries, "insert into items (id, name, price) values");
    assert_eq!(bulk["calls"].as_u64(), Some(300), "executemany's 300 executions: {bulk}");
}

/// A Bind or Parse message larger than what pgvisor's observer reads of a message (the first
/// 64 KiB) must still be counted on its own statement. asyncpg binds a 100 kB text parameter,
/// then runs a 110 kB statement text (an ARRAY of 20 000 constants), each right after a small
/// `generate_series` query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_with_a_bind_or_parse_over_64_kib_are_counted_on_their_own_statement() {
    let Some(python) = python_with("asyncpg").await else { return };
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let script = r#"
import asyncio, os, sys, asyncpg
async def main():
    c = await asyncpg.connect(host=sys.argv[1], port=int(sys.argv[2]), user=sys.argv[3], database=sys.argv[4],
                              password=os.environ["PGPASSWORD"])
    assert len(await c.fetch("select g from generate_series(1, 3) g")) == 3
    assert await c.fetchval("select length($1::text)", "x" * 100_000) == 100_000
    assert len(await c.fetch("select g from generate_series(1, 4) g")) == 4
    assert await c.fetchval("select array_length(array[" + ",".join(map(str, range(20_000))) + "], 1)") == 20_000
    await c.close()
asyncio.run(main())
"#;
    let endpoint = proxy.endpoint();
    let out = tokio::process::Command::new(&python)
        .args(["-c", script, &endpoint.host, &endpoint.port.to_string(), &endpoint.user, &endpoint.dbname])
        .env("PGPASSWORD", endpoint.password.as_deref().unwrap_or_default())
        .output()
        .await
        .expect("run python");
    assert!(out.status.success(), "the script failed: {}", String::from_utf8_lossy(&out.stderr));

    let queries = assert_stats_sane(&proxy, &[]).await;
    let listing = || serde_json::to_string_pretty(&queries).unwrap_or_default();
    let series = query_with(&queries, "generate_series");
    assert_eq!(
        (series["calls"].as_u64(), series["rows"].as_u64()),
        (Some(2), Some(7)),
        "generate_series ran twice for 7 rows\n{}",
        listing()
    );
    for marker in ["select length(", "array_length("] {
        let q = query_with(&queries, marker);
        assert_eq!((q["calls"].as_u64(), q["rows"].as_u64()), (Some(1), Some(1)), "{marker}\n{}", listing());
    }
}
