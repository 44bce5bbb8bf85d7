//! `n_plus_one` through real connection pools, judged on `GET /api/advice`: the per-row loop an
//! application runs concurrently over its pool (`Promise.all` over a node-postgres `Pool`,
//! `asyncio.gather` over an asyncpg pool, Sequelize's lazy loading awaited together) is one
//! parallel N+1 proven against the parent's result; two requests interleaving the same lookup
//! and independent requests spread over the pool are not; a loop over ids the application had
//! itself is an unconfirmed N+1 at severity info.
//!
//! The workloads are `tests/drivers/node/n_plus_one_pools.mjs` and
//! `tests/drivers/python/n_plus_one_pools.py`. Needs `node` with `tests/drivers/node/node_modules`
//! (`npm ci` there) and asyncpg in the test venv; each test is skipped without its driver unless
//! `PGVISOR_REQUIRE_NODE_DRIVERS` / `PGVISOR_REQUIRE_ORM` say it must run (`./dev test` sets both).

mod advice_common;
mod drivers_common;

use std::path::PathBuf;
use std::time::Duration;

use advice_common::{advice_of, create_schema, pretty, setup, wait_for_advice, USERS_AND_ORDERS};
use drivers_common::{python_with, query_with, repo_root, run_workload, skip_or_fail};
use pgvisor_tests::{shared_cluster, start_proxy, TestProxy};
use serde_json::Value;

const LINK: &str = "users.id -> orders.user_id";
const CHILD: &str = "SELECT * FROM orders WHERE user_id = $1";

/// `node` when it and the npm package at `package` (in tests/drivers/node) are there; `None` means
/// skip.
fn node_with(package: &str) -> Option<PathBuf> {
    let mut missing = Vec::new();
    if std::process::Command::new("node").arg("--version").output().map_or(true, |o| !o.status.success()) {
        missing.push("node (apt-get install nodejs)".to_string());
    }
    if !repo_root().join(format!("tests/drivers/node/node_modules/{package}/package.json")).is_file() {
        missing.push(format!("the npm package {package} (run `npm ci` in tests/drivers/node)"));
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

/// A workload script and the program that runs it.
struct Driver {
    program: PathBuf,
    script: PathBuf,
}

impl Driver {
    fn node(package: &str) -> Option<Self> {
        let program = node_with(package)?;
        Some(Self { program, script: repo_root().join("tests/drivers/node/n_plus_one_pools.mjs") })
    }

    async fn asyncpg() -> Option<Self> {
        let program = python_with("asyncpg").await?;
        Some(Self { program, script: repo_root().join("tests/drivers/python/n_plus_one_pools.py") })
    }
}

/// A proxy and a fresh schema holding `users` (ids 1..=20) and `orders` (three per user).
async fn shop() -> (TestProxy, String) {
    let cluster = shared_cluster();
    let schema = create_schema(cluster).await;
    setup(cluster, &schema, USERS_AND_ORDERS).await;
    (start_proxy(cluster).await, schema)
}

/// Runs `scenario` of the driver's script through `proxy` in `schema`; returns what it printed.
async fn run(driver: &Driver, scenario: &str, proxy: &TestProxy, schema: &str) -> Value {
    let args = [driver.script.clone(), scenario.into(), "--schema".into(), schema.into()];
    let what = format!("{} {scenario}", driver.script.display());
    let out = run_workload(&what, &driver.program, &args, &proxy.endpoint()).await;
    serde_json::from_str(out.trim()).expect("run_workload checked it is JSON")
}

/// `/api/queries` once everything the scripts ran is applied.
async fn queries(proxy: &TestProxy) -> Vec<Value> {
    drivers_common::drained(proxy).await;
    let body = proxy.admin_get("/api/queries?sort=calls&limit=1000").await;
    body["queries"].as_array().unwrap_or_else(|| panic!("no queries in {body}")).clone()
}

/// The one n_plus_one advice for 20 children spread over the pool, checked as a user reads it:
/// parallel, confirmed against `users.id`, on several sessions, worded as concurrency.
async fn assert_one_parallel_n_plus_one(proxy: &TestProxy, child: &str) -> Value {
    let found = wait_for_advice(proxy, "n_plus_one", Duration::from_secs(3), |a| a["evidence"]["children"] == 20).await;
    let a = found.unwrap_or_else(|all| panic!("no n_plus_one advice with 20 children; /api/advice:\n{all}"));
    let all = advice_of(proxy, "n_plus_one").await;
    assert_eq!(all.len(), 1, "one loop, one advice:\n{}", pretty(&all));
    assert_eq!(a["count"], 1, "one loop is one occurrence: {a:#}");
    let e = &a["evidence"];
    assert_eq!(e["parallel"], true, "{a:#}");
    assert_eq!(e["confirmed"], true, "{a:#}");
    assert_eq!(e["link"], LINK, "{a:#}");
    assert_eq!(e["child_query"], child, "{a:#}");
    assert_eq!(e["distinct_parameters"], 20, "{a:#}");
    assert_eq!(e["round_trips_saved"], 19, "{a:#}");
    assert!(e["time_saved_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{a:#}");
    let sessions = e["sessions"].as_array().map_or(0, Vec::len);
    assert!(sessions >= 2, "children on {sessions} sessions of the pool: {a:#}");
    let message = a["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("in parallel on") && message.contains("connections of one application's pool"),
        "{message}"
    );
    let suggestion = a["suggestion"].as_str().unwrap_or_default();
    assert!(suggestion.contains("one batched query beats concurrency"), "{suggestion}");
    // The child as written, batched: quoted where the ORM quoted it.
    assert!(suggestion.contains("user_id = ANY($1)") || suggestion.contains("\"user_id\" = ANY($1)"), "{suggestion}");
    assert!(a["title"].as_str().is_some_and(|t| t.contains("in parallel") && t.contains(LINK)), "{a:#}");
    a
}

/// node-postgres: `Promise.all(users.map(u => pool.query(child, [u.id])))` over a Pool of 8 whose
/// connections are open, as a server's are after its first requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres_pool_promise_all_is_a_parallel_n_plus_one() {
    let Some(node) = Driver::node("pg") else { return };
    let (proxy, schema) = shop().await;
    let out = run(&node, "parallel", &proxy, &schema).await;
    assert_eq!((out["users"].as_u64(), out["orders"].as_u64()), (Some(20), Some(60)), "{out}");
    assert_one_parallel_n_plus_one(&proxy, CHILD).await;
}

/// The same on a fresh Pool: it opens its connections while the children queue, so the parent's
/// connection, already open, runs many of them (7 to 14 of the 20 seen). That is still one
/// parallel N+1 of 20 children.
///
/// Fails today: the per-session detector reports the parent's connection's share as a
/// non-parallel N+1 under the same key as the pool's, so the loop counts two occurrences and the
/// per-session final update (written when that session closes, after the pool's) replaces the
/// 20-child parallel evidence with e.g. 11 children, `parallel: false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres_cold_pool_promise_all_is_one_parallel_n_plus_one() {
    let Some(node) = Driver::node("pg") else { return };
    let (proxy, schema) = shop().await;
    let out = run(&node, "parallel_cold", &proxy, &schema).await;
    assert_eq!((out["users"].as_u64(), out["orders"].as_u64()), (Some(20), Some(60)), "{out}");
    assert_one_parallel_n_plus_one(&proxy, CHILD).await;
}

/// asyncpg: `asyncio.gather(*(pool.fetch(child, id) for id in ids))` over a pool of 4 to 8.
/// asyncpg binds and returns integers in binary: the link is made on their values all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncpg_pool_gather_is_a_parallel_n_plus_one() {
    let Some(asyncpg) = Driver::asyncpg().await else { return };
    let (proxy, schema) = shop().await;
    let out = run(&asyncpg, "parallel", &proxy, &schema).await;
    assert_eq!((out["users"].as_u64(), out["orders"].as_u64()), (Some(20), Some(60)), "{out}");
    assert_one_parallel_n_plus_one(&proxy, CHILD).await;
}

/// The statement as pgvisor normalises Sequelize's `SELECT "id", "total", "user_id" FROM "orders"
/// AS "Order" WHERE "Order"."user_id" = 1`: the alias is dropped, its use is not.
const SEQUELIZE_CHILD: &str =
    "SELECT \"id\", \"total\", \"user_id\" FROM \"orders\" AS \"Order\" WHERE \"Order\".\"user_id\" = $1";

/// Sequelize (over node-postgres, a warm pool of 8): `Promise.all(users.map(u => u.getOrders()))`.
/// Sequelize writes the values into the SQL (simple queries with literals), quotes every
/// identifier and aliases each table (`FROM "orders" AS "Order"`). Its lazy loading does run in
/// parallel over the pool (6 to 8 connections seen).
///
/// Fails today, for three reasons. Sequelize's pool hands the parent's connection 5 or more of
/// the children in about half the runs (7 to 14 seen), and then what
/// `node_postgres_cold_pool_promise_all_is_one_parallel_n_plus_one` describes happens. The advice's
/// SQL is the normalised text, which dropped `AS "Order"` but kept `"Order".user_id`, so the
/// batched query it suggests does not run. And its ORM hint is Django's: the style detector takes
/// any `"table"."column"` for Django.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequelize_lazy_loading_awaited_together_is_a_parallel_n_plus_one() {
    let Some(node) = Driver::node("sequelize") else { return };
    let (proxy, schema) = shop().await;
    let out = run(&node, "sequelize", &proxy, &schema).await;
    assert_eq!((out["users"].as_u64(), out["orders"].as_u64()), (Some(20), Some(60)), "{out}");
    let a = assert_one_parallel_n_plus_one(&proxy, SEQUELIZE_CHILD).await;
    let suggestion = a["suggestion"].as_str().unwrap_or_default();
    let batched = suggestion.split("group them in the application: ").nth(1).unwrap_or_default();
    assert!(
        !batched.contains("\"Order\".") || batched.contains("AS \"Order\""),
        "the batched query uses an alias it does not define: {suggestion}"
    );
    assert!(!suggestion.contains("Django"), "Sequelize is not Django: {suggestion}");
}

/// Two users' requests at once, each reading its own 4 users and then their orders over the
/// pool: 8 children of one shape interleaved on the pool's connections, but no one parent holds
/// all their parameters (and each request's loop is under the threshold).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requests_interleaving_the_same_lookup_are_not_an_n_plus_one() {
    let Some(node) = Driver::node("pg") else { return };
    let (proxy, schema) = shop().await;
    let out = run(&node, "two_requests", &proxy, &schema).await;
    let requests = out["requests"].as_array().expect("two requests");
    assert!(requests.iter().all(|r| r["users"] == 4 && r["orders"] == 12), "{out}");
    // The detector saw them: two parents and eight children.
    let queries = queries(&proxy).await;
    assert_eq!(query_with(&queries, "FROM orders WHERE user_id")["calls"], 8, "{queries:#?}");
    assert_eq!(query_with(&queries, "BETWEEN")["calls"], 2, "{queries:#?}");
    let found = advice_of(&proxy, "n_plus_one").await;
    assert!(found.is_empty(), "two requests with their own parents are not one N+1:\n{}", pretty(&found));
}

/// 20 independent API requests spread over 2 s at random moments, each looking up one user by
/// id on a connection it keeps while it does other work: no parent, and no connection runs a
/// loop (the script reports how many lookups each connection ran).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_requests_on_a_pool_are_not_an_n_plus_one() {
    let Some(node) = Driver::node("pg") else { return };
    let (proxy, schema) = shop().await;
    let out = run(&node, "independent", &proxy, &schema).await;
    assert_eq!((out["lookups"].as_u64(), out["rows"].as_u64()), (Some(20), Some(20)), "{out}");
    let per_connection: Vec<u64> = out["perConnection"].as_array().unwrap().iter().filter_map(Value::as_u64).collect();
    assert!(per_connection.len() >= 3, "spread over the pool: {out}");
    let queries = queries(&proxy).await;
    assert_eq!(query_with(&queries, "FROM users WHERE id = $1")["calls"], 20, "{queries:#?}");
    let found = advice_of(&proxy, "n_plus_one").await;
    assert!(found.is_empty(), "independent requests are not an N+1:\n{}", pretty(&found));
}

/// 30 lookups on one connection with ids from a list the application had, then another
/// statement: a bounded burst with no provable parent, reported unconfirmed at severity info.
async fn assert_unlinked_loop(proxy: &TestProxy) {
    let found = wait_for_advice(proxy, "n_plus_one", Duration::from_secs(3), |a| a["evidence"]["children"] == 30)
        .await
        .unwrap_or_else(|all| panic!("no unconfirmed n_plus_one for the loop; /api/advice:\n{all}"));
    let all = advice_of(proxy, "n_plus_one").await;
    assert_eq!(all.len(), 1, "{}", pretty(&all));
    let e = &found["evidence"];
    assert_eq!(e["confirmed"], false, "{found:#}");
    assert_eq!(e["parallel"], false, "{found:#}");
    assert_eq!(found["severity"], "info", "{found:#}");
    assert_eq!(e["distinct_parameters"], 30, "{found:#}");
    assert_eq!(e["round_trips_saved"], 29, "{found:#}");
    assert_eq!(e["link"], Value::Null, "{found:#}");
    assert!(found["message"].as_str().unwrap().contains("did not come from an earlier result"), "{found:#}");
    assert!(found["suggestion"].as_str().unwrap().contains("SELECT * FROM orders WHERE id = ANY($1)"), "{found:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres_loop_over_a_hard_coded_list_is_an_unconfirmed_n_plus_one() {
    let Some(node) = Driver::node("pg") else { return };
    let (proxy, schema) = shop().await;
    let out = run(&node, "unlinked", &proxy, &schema).await;
    assert_eq!(out["rows"], 30, "{out}");
    assert_unlinked_loop(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncpg_loop_over_a_hard_coded_list_is_an_unconfirmed_n_plus_one() {
    let Some(asyncpg) = Driver::asyncpg().await else { return };
    let (proxy, schema) = shop().await;
    let out = run(&asyncpg, "unlinked", &proxy, &schema).await;
    assert_eq!(out["rows"], 30, "{out}");
    assert_unlinked_loop(&proxy).await;
}
