//! psycopg 3 in pipeline mode (libpq's pipeline: many statements in flight, Syncs only where
//! asked, an error that aborts everything up to the next Sync, then recovery) runs
//! `tests/drivers/psycopg_pipeline.py` directly and through pgvisor: the canonical JSON of
//! everything it saw must be identical byte for byte, and pgvisor's statistics must match what
//! the server really ran (statements the server skipped after an error are not counted).
//!
//! Needs psycopg in the test venv (`tests/python/requirements.txt`, `./dev test` installs it);
//! skipped without it unless `PGVISOR_REQUIRE_ORM` is set.

mod drivers_common;

use drivers_common::{assert_stats_sane, python_with, query_with, repo_root, same_both_ways, step};
use pgvisor_tests::{shared_cluster, start_proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_pipeline_mode_sees_the_same_through_pgvisor() {
    let Some(python) = python_with("psycopg").await else { return };
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let script = repo_root().join("tests/drivers/psycopg_pipeline.py");
    let output = same_both_ways("psycopg pipeline workload", cluster, &proxy, &python, &[script]).await;

    // The workload did what it says (so that "identical" means something).
    assert_eq!(step(&output, "done"), true);
    assert_eq!(step(&output, "libpq_pipeline_supported"), true);
    assert_eq!(step(&output, "in_pipeline_status")[1], "ON", "{output}");
    assert_eq!(step(&output, "many_in_flight").as_array().map(Vec::len), Some(200));
    assert_eq!(step(&output, "error_mid_pipeline")["error"]["sqlstate"], "22012");
    // Recovered after the Sync; the implicit transaction took the insert before the error with it.
    assert_eq!(step(&output, "recovered")[0]["rows"][0][0], "recovered");
    assert_eq!(step(&output, "recovered")[1]["rows"], serde_json::json!([]));
    assert_eq!(step(&output, "error_at_block_exit")["error"]["sqlstate"], "23505");
    assert_eq!(step(&output, "transaction_in_pipeline")["error"]["sqlstate"], "42P01");
    assert_eq!(step(&output, "in_failed_transaction")["error"]["sqlstate"], "25P02");
    assert_eq!(step(&output, "large_result")[0], 30000);
    assert_eq!(step(&output, "executemany_rowcount"), 500);

    let queries = assert_stats_sane(
        &proxy,
        &[
            ("(count(*) - count(*))", 1),
            // The duplicate at the end of a pipeline block, and the one in a savepoint.
            ("insert into fails_unique values", 2),
            ("fails_missing_table", 1),
            ("fails_in_tx", 1),
            ("fails_25p02", 1),
        ],
    )
    .await;
    // What the server skipped after the error (three inserts and a select before the Sync) never
    // ran: pgvisor must not count it.
    let skipped: Vec<_> = queries
        .iter()
        .filter(|q| {
            q["query"].as_str().is_some_and(|t| t.contains("skipped_after_error") || t.contains("events (kind, id)"))
        })
        .collect();
    assert!(skipped.is_empty(), "statements the server skipped are counted: {skipped:#?}");
    // 200 in flight, each counted once.
    let many = query_with(&queries, "|| $");
    assert_eq!((many["calls"].as_u64(), many["rows"].as_u64()), (Some(200), Some(200)), "{many}");
    let bulk = query_with(&queries, "insert into events (id, kind, payload, ");
    assert_eq!((bulk["calls"].as_u64(), bulk["errors"].as_u64()), (Some(500), Some(0)), "{bulk}");
    let big = query_with(&queries, "generate_series");
    assert_eq!((big["calls"].as_u64(), big["rows"].as_u64()), (Some(1), Some(30000)), "{big}");
}
