//! node-postgres (npm `pg`, pinned by `tests/drivers/node/package-lock.json`) runs
//! `tests/drivers/node/workload.mjs` directly and through pgvisor: parameterized queries (unnamed
//! statements), named prepared statements, transactions and savepoints, errors with all their
//! fields, notices, LISTEN/NOTIFY between two connections, 50 000-row results. The canonical JSON
//! of everything it saw must be identical byte for byte, and pgvisor's statistics must be sane.
//!
//! Needs `node` and `tests/drivers/node/node_modules` (`npm ci` there; `./dev test` does it).
//! Skipped without them, unless `PGVISOR_REQUIRE_NODE_DRIVERS` is set (`./dev test` sets it):
//! then it fails.

mod drivers_common;

use std::path::PathBuf;

use drivers_common::{assert_stats_sane, query_with, repo_root, same_both_ways, skip_or_fail, step};
use pgvisor_tests::{shared_cluster, start_proxy};

/// `node` when it and the workload's packages are there; `None` means skip.
fn node() -> Option<PathBuf> {
    let mut missing = Vec::new();
    if std::process::Command::new("node").arg("--version").output().map_or(true, |o| !o.status.success()) {
        missing.push("node (apt-get install nodejs)");
    }
    if !repo_root().join("tests/drivers/node/node_modules/pg/package.json").is_file() {
        missing.push("tests/drivers/node/node_modules (run `npm ci` in tests/drivers/node)");
    }
    if missing.is_empty() {
        return Some(PathBuf::from("node"));
    }
    skip_or_fail(
        "PGVISOR_REQUIRE_NODE_DRIVERS",
        &format!("missing {}", missing.join(", ")),
        "`./dev test` installs them",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres_sees_the_same_through_pgvisor() {
    let Some(node) = node() else { return };
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let script = repo_root().join("tests/drivers/node/workload.mjs");
    let output = same_both_ways("node-postgres workload", cluster, &proxy, &node, &[script]).await;

    // The workload did what it says (so that "identical" means something).
    assert_eq!(step(&output, "done"), true);
    assert_eq!(step(&output, "named_prepared")[2]["rowCount"], 0, "{output}");
    assert_eq!(step(&output, "unique_violation_extended")["error"]["code"], "23505");
    assert_eq!(step(&output, "in_failed_transaction")["error"]["code"], "25P02");
    assert_eq!(step(&output, "statement_timeout")["error"]["code"], "57014");
    let notifications = step(&output, "notifications");
    assert_eq!(
        notifications,
        &serde_json::json!([
            ["drv_channel", "one"],
            ["drv_channel", "two"],
            ["drv_channel", "three (committed)"],
            ["drv_channel", "four"]
        ])
    );
    assert_eq!(step(&output, "large_result")[0], 50000);

    let queries = assert_stats_sane(
        &proxy,
        &[
            // The savepoint's duplicate and the extended-protocol one.
            ("insert into fails_unique values", 2),
            ("(count(*) - count(*))", 1),
            ("fails_25p02", 1),
            ("fails_missing_table", 1),
            ("fails_syntax", 1),
            ("insert into users (name) values", 1),
            ("fails_param", 1),
            ("fails_named", 1),
            // The DO blocks (a dollar-quoted constant: one shape): the raise exception.
            ("do $1", 1),
            ("pg_sleep", 1),
        ],
    )
    .await;
    let named = query_with(&queries, "from users where name = $1");
    assert_eq!((named["calls"].as_u64(), named["rows"].as_u64()), (Some(4), Some(3)), "{named}");
    let big = query_with(&queries, "repeat(");
    assert_eq!((big["calls"].as_u64(), big["rows"].as_u64()), (Some(1), Some(50000)), "{big}");
}
