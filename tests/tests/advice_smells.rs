//! The everyday smells through pgvisor against real PostgreSQL, judged on `GET /api/advice`:
//! `slow_query` (over many calls, or one very slow call), `repeated_query`, `unbounded_result`,
//! `select_star`, `unparameterized` and `error_spike` each fire for the pattern they name, and
//! stay quiet for its look-alikes (pgbench's own interpolated texts among them).

mod advice_common;

use std::time::Duration;

use advice_common::{advice_of, connect_in, create_schema, drained, pretty, setup, wait_for_advice};
use pgvisor::ProxySettings;
use pgvisor_tests::cli::pgbench;
use pgvisor_tests::{shared_cluster, start_proxy_with, TestProxy};
use serde_json::Value;
use tokio_postgres::Client;

/// `users` (20 narrow rows), `events` (12,000 rows), `docs` (3 columns, 2 KB per row) and `wide`
/// (25 columns).
const SCHEMA: &str = "
    create table users (id int primary key, name text not null);
    insert into users select i, 'user ' || i from generate_series(1, 20) i;
    create table events (id int primary key, kind text not null);
    insert into events select i, 'click' from generate_series(1, 12000) i;
    create table docs (id int primary key, title text not null, body text not null);
    insert into docs select i, 'doc ' || i, repeat(md5(i::text), 64) from generate_series(1, 10) i;
    create table wide (id int primary key, c1 int, c2 int, c3 int, c4 int, c5 int, c6 int, c7 int, c8 int,
        c9 int, c10 int, c11 int, c12 int, c13 int, c14 int, c15 int, c16 int, c17 int, c18 int, c19 int,
        c20 int, c21 int, c22 int, c23 int, c24 int);
    insert into wide (id) select i from generate_series(1, 5) i;
";

/// A proxy (settings adjusted by `adjust`) and a session through it, in a fresh schema.
async fn session(adjust: impl FnOnce(&mut ProxySettings)) -> (TestProxy, Client) {
    let cluster = shared_cluster();
    let schema = create_schema(cluster).await;
    setup(cluster, &schema, SCHEMA).await;
    let proxy = start_proxy_with(cluster, adjust).await;
    let client = connect_in(&proxy.endpoint(), &schema).await;
    (proxy, client)
}

/// The advice of `kind` that satisfies `check`, within 2 s; panics with everything on the API.
async fn expect(proxy: &TestProxy, kind: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for_advice(proxy, kind, Duration::from_secs(2), check)
        .await
        .unwrap_or_else(|all| panic!("no matching {kind} advice within 2 s; /api/advice:\n{all}"))
}

/// Waits until the engine has applied everything `client` ran and its periodic checks have run,
/// then asserts there is no advice of `kind`.
async fn expect_none(proxy: &TestProxy, client: &Client, kind: &str, what: &str) {
    drained(proxy, client).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let found = advice_of(proxy, kind).await;
    assert!(found.is_empty(), "{what} is not {kind}, yet /api/advice says:\n{}", pretty(&found));
}

fn shape_of(a: &Value) -> &str {
    a["evidence"]["query"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_query_over_the_default_threshold() {
    let (proxy, client) = session(|_| {}).await;
    for _ in 0..5 {
        client.query("select pg_sleep(0.12)::text", &[]).await.unwrap();
    }
    let a = expect(&proxy, "slow_query", |a| a["evidence"]["calls"] == 5).await;
    let e = &a["evidence"];
    assert_eq!(e["query"], "SELECT pg_sleep($1)::text", "{a:#}");
    assert!(e["p95_ms"].as_f64().is_some_and(|ms| ms >= 100.0), "{a:#}");
    assert!(e["p50_ms"].as_f64().is_some_and(|ms| ms >= 100.0), "{a:#}");
    assert!(e["max_ms"].as_f64().is_some_and(|ms| ms >= 120.0), "{a:#}");
    assert_eq!(e["threshold_ms"], 100.0, "{a:#}");
    assert_eq!(a["severity"], "warning", "{a:#}");
    assert!(a["suggestion"].as_str().is_some_and(|s| s.contains("EXPLAIN")), "{a:#}");
    assert_eq!(a["count"], 1, "one episode: {a:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_queries_and_a_single_slow_call_are_not_slow() {
    let (proxy, client) = session(|_| {}).await;
    let by_id = client.prepare("select * from users where id = $1").await.unwrap();
    for i in 1..=50i32 {
        client.query(&by_id, &[&(i % 20 + 1)]).await.unwrap();
    }
    client.query("select pg_sleep(0.15)::text", &[]).await.unwrap();
    expect_none(&proxy, &client, "slow_query", "50 fast lookups and one slow call").await;
}

/// One statement over `--slow-once` (lowered to 300 ms to keep the test quick) is slow on its
/// own, two calls short of anything a p95 could say; a second such call is a second occurrence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_query_for_one_very_slow_call() {
    let (proxy, client) = session(|s| s.advisor.slow_query.once = Duration::from_millis(300)).await;
    client.query("select pg_sleep(0.35)::text", &[]).await.unwrap();
    let a = expect(&proxy, "slow_query", |_| true).await;
    let e = &a["evidence"];
    assert_eq!(shape_of(&a), "SELECT pg_sleep($1)::text", "{a:#}");
    assert!(e["duration_ms"].as_f64().is_some_and(|ms| ms >= 350.0), "{a:#}");
    assert_eq!((&e["rows"], &e["threshold_ms"]), (&serde_json::json!(1), &serde_json::json!(300.0)), "{a:#}");
    let title = a["title"].as_str().unwrap_or_default();
    assert!(
        title.starts_with("Slow query: 3") && title.ends_with(" in one call of `SELECT pg_sleep($1)::text`"),
        "{a:#}"
    );
    assert!(
        a["message"].as_str().is_some_and(|m| m.starts_with("One call of ") && m.contains("returned 1 row")),
        "{a:#}"
    );
    assert_eq!((&a["severity"], &a["count"]), (&serde_json::json!("warning"), &serde_json::json!(1)), "{a:#}");
    client.query("select pg_sleep(0.31)::text", &[]).await.unwrap();
    let again = expect(&proxy, "slow_query", |a| a["count"] == 2).await;
    assert_eq!(again["id"], a["id"], "merged per fingerprint: {again:#}");
    assert_eq!(advice_of(&proxy, "slow_query").await.len(), 1, "two calls: no p95 advice yet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_under_slow_once_or_with_it_off_are_not_slow() {
    let (proxy, client) = session(|s| s.advisor.slow_query.once = Duration::from_millis(300)).await;
    client.query("select pg_sleep(0.12)::text", &[]).await.unwrap();
    expect_none(&proxy, &client, "slow_query", "one call of 120 ms under a --slow-once of 300 ms").await;
    let (proxy, client) = session(|s| s.advisor.slow_query.once = Duration::ZERO).await;
    client.query("select pg_sleep(0.35)::text", &[]).await.unwrap();
    expect_none(&proxy, &client, "slow_query", "one call of 350 ms with --slow-once 0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_query_with_the_same_parameters() {
    let (proxy, client) = session(|_| {}).await;
    let by_id = client.prepare("select id, name from users where id = $1").await.unwrap();
    for _ in 0..12 {
        client.query(&by_id, &[&7i32]).await.unwrap();
    }
    let a = expect(&proxy, "repeated_query", |a| a["evidence"]["repeats"].as_u64().is_some_and(|n| n >= 10)).await;
    assert_eq!(shape_of(&a), "SELECT id, name FROM users WHERE id = $1", "{a:#}");
    assert_eq!(a["evidence"]["same_parameters"], true, "{a:#}");
    assert!(a["message"].as_str().is_some_and(|m| m.contains("Session")), "{a:#}");
    assert!(advice_of(&proxy, "n_plus_one").await.is_empty(), "same parameters are not an N+1");
    // Interpolated by the client, the same: identical literals.
    for _ in 0..12 {
        client.simple_query("select name from users where id = 3").await.unwrap();
    }
    expect(&proxy, "repeated_query", |a| shape_of(a) == "SELECT name FROM users WHERE id = $1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_parameters_or_spread_out_repeats_are_not_repeated() {
    let (proxy, client) =
        session(|s| s.advisor.session_checks.repeated_query.window = Duration::from_millis(100)).await;
    let by_id = client.prepare("select id, name from users where id = $1").await.unwrap();
    for i in 1..=20i32 {
        client.query(&by_id, &[&i]).await.unwrap();
    }
    for _ in 0..12 {
        client.query(&by_id, &[&7i32]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    expect_none(&proxy, &client, "repeated_query", "20 different ids, then one id every 150 ms").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_result_without_limit() {
    let (proxy, client) = session(|_| {}).await;
    let rows = client.query("select id, kind from events", &[]).await.unwrap();
    assert_eq!(rows.len(), 12_000);
    let a = expect(&proxy, "unbounded_result", |_| true).await;
    assert_eq!(shape_of(&a), "SELECT id, kind FROM events", "{a:#}");
    assert_eq!(a["evidence"]["rows"], 12_000, "{a:#}");
    assert!(a["evidence"]["bytes"].as_u64().is_some_and(|b| b > 12_000 * 10), "{a:#}");
    assert!(a["suggestion"].as_str().is_some_and(|s| s.contains("LIMIT") && s.contains("cursor")), "{a:#}");
    // Bytes alone count too: 1 MB of `docs` bodies with a lowered byte threshold.
    let (proxy, client) = session(|s| s.advisor.session_checks.unbounded_result.bytes = 10 * 1024).await;
    client.simple_query("select id, body from docs").await.unwrap();
    let a = expect(&proxy, "unbounded_result", |_| true).await;
    assert_eq!(a["evidence"]["rows"], 10, "{a:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_or_small_results_are_not_unbounded() {
    let (proxy, client) = session(|_| {}).await;
    assert_eq!(client.query("select id, kind from events order by id limit 12000", &[]).await.unwrap().len(), 12_000);
    assert_eq!(client.query("select id from events where id <= 500", &[]).await.unwrap().len(), 500);
    assert_eq!(client.query("select count(*) from events", &[]).await.unwrap().len(), 1);
    expect_none(&proxy, &client, "unbounded_result", "a LIMITed query, a small result and a count").await;
}

/// A driver streaming a large result through a portal with a row limit (JDBC `setFetchSize`):
/// twelve Executes of 1,000 rows, each ending in PortalSuspended, are one statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_in_chunks_is_neither_unbounded_nor_repeated() {
    let (proxy, mut client) = session(|_| {}).await;
    let tx = client.transaction().await.unwrap();
    let all = tx.prepare("select id, kind from events order by id").await.unwrap();
    let portal = tx.bind(&all, &[]).await.unwrap();
    let mut fetched = 0;
    loop {
        let chunk = tx.query_portal(&portal, 1000).await.unwrap();
        if chunk.is_empty() {
            break;
        }
        fetched += chunk.len();
    }
    assert_eq!(fetched, 12_000);
    tx.commit().await.unwrap();
    expect_none(&proxy, &client, "unbounded_result", "12,000 rows fetched 1,000 at a time").await;
    let repeated = advice_of(&proxy, "repeated_query").await;
    assert!(repeated.is_empty(), "the chunks of one portal are one statement:\n{}", pretty(&repeated));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_star_on_wide_rows() {
    let (proxy, client) = session(|_| {}).await;
    client.query("select * from docs where id < $1", &[&5i32]).await.unwrap();
    let a = expect(&proxy, "select_star", |a| shape_of(a).contains("docs")).await;
    assert_eq!(a["severity"], "info", "{a:#}");
    assert!(a["evidence"]["avg_row_bytes"].as_u64().is_some_and(|b| b >= 2048), "{a:#}");
    assert_eq!(a["evidence"]["star"][0], "*", "{a:#}");
    client.query("select w.* from wide w where w.id = $1", &[&1i32]).await.unwrap();
    let a = expect(&proxy, "select_star", |a| shape_of(a).contains("wide")).await;
    assert_eq!(a["evidence"]["columns"], 25, "{a:#}");
    assert_eq!(a["evidence"]["star"][0], "w.*", "{a:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrow_stars_or_named_columns_are_not_select_star() {
    let (proxy, client) = session(|_| {}).await;
    client.query("select * from users", &[]).await.unwrap();
    client.query("select id, title, body from docs", &[]).await.unwrap();
    client.simple_query("select id, c1, c24 from wide").await.unwrap();
    expect_none(&proxy, &client, "select_star", "SELECT * of a narrow table, and wide rows with named columns").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparameterized_literal_texts() {
    let (proxy, client) = session(|_| {}).await;
    for i in 1..=60 {
        client.simple_query(&format!("select name from users where id = {i}")).await.unwrap();
    }
    let a = expect(&proxy, "unparameterized", |a| a["evidence"]["distinct_texts"] == 50).await;
    assert_eq!(shape_of(&a), "SELECT name FROM users WHERE id = $1", "{a:#}");
    assert_eq!(a["evidence"]["protocol"], "simple", "{a:#}");
    assert!(a["suggestion"].as_str().is_some_and(|s| s.contains("bind parameters")), "{a:#}");
    assert_eq!(a["count"], 1, "{a:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_parameters_or_few_texts_are_not_unparameterized() {
    let (proxy, client) = session(|_| {}).await;
    let by_id = client.prepare("select name from users where id = $1").await.unwrap();
    for i in 1..=60i32 {
        client.query(&by_id, &[&i]).await.unwrap();
    }
    for i in 1..=60 {
        client.simple_query(&format!("select id from users where name = 'user {}'", i % 5)).await.unwrap();
    }
    expect_none(&proxy, &client, "unparameterized", "60 bound parameters, and 5 literal texts again and again").await;
}

/// `pgbench -S -M simple` writes its random account ids into the SQL by design: hundreds of
/// texts of one shape, and no application code to fix. The same shape interpolated by another
/// client (the positive control, through the same proxy) is counted from zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_in_simple_mode_is_not_unparameterized() {
    let cluster = shared_cluster();
    let db = pgvisor_tests::unique_name("bench");
    let admin = pgvisor_tests::connect(&cluster.endpoint()).await.unwrap();
    admin.batch_execute(&format!("create database {db}")).await.unwrap();
    let init = pgbench(&cluster.endpoint().with_dbname(&db), &["-i", "-s", "1", "-q"]).await;
    assert_eq!(init.code(), 0, "pgbench -i:\n{}{}", init.stdout, init.stderr);
    let proxy = start_proxy_with(cluster, |_| {}).await;
    let run =
        pgbench(&proxy.endpoint().with_dbname(&db), &["-S", "-M", "simple", "-c", "2", "-j", "1", "-t", "200", "-n"])
            .await;
    assert_eq!(run.code(), 0, "pgbench -S -M simple:\n{}{}", run.stdout, run.stderr);
    let client = pgvisor_tests::connect(&proxy.endpoint().with_dbname(&db)).await.unwrap();
    expect_none(&proxy, &client, "unparameterized", "pgbench -M simple (400 transactions)").await;
    let pgbench_query = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";
    let calls = proxy.admin_get("/api/queries?sort=calls&limit=1000").await["queries"]
        .as_array()
        .and_then(|all| all.iter().find(|q| q["query"] == pgbench_query).map(|q| q["calls"].clone()));
    assert_eq!(calls, Some(serde_json::json!(400)), "pgbench's statements went through pgvisor");

    for i in 1..=60 {
        client.simple_query(&format!("select abalance from pgbench_accounts where aid = {i}")).await.unwrap();
    }
    let a = expect(&proxy, "unparameterized", |_| true).await;
    assert_eq!(shape_of(&a), pgbench_query, "{a:#}");
    assert_eq!(a["evidence"]["distinct_texts"], 50, "only this client's texts count: {a:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_spike_of_unique_violations() {
    let (proxy, client) = session(|_| {}).await;
    let insert = client.prepare("insert into users (id, name) values ($1, $2)").await.unwrap();
    for _ in 0..12 {
        let e = client.execute(&insert, &[&1i32, &"again"]).await.unwrap_err();
        assert_eq!(e.code().map(|c| c.code()), Some("23505"));
    }
    let a = expect(&proxy, "error_spike", |a| a["evidence"]["sqlstate"] == "23505").await;
    let e = &a["evidence"];
    assert_eq!(e["condition"], "unique_violation", "{a:#}");
    assert!(e["errors_in_window"].as_u64().is_some_and(|n| n >= 10), "{a:#}");
    assert_eq!(e["statements"][0]["query"], "INSERT INTO users(id, name) VALUES ($1, $2)", "{a:#}");
    assert!(a["suggestion"].as_str().is_some_and(|s| s.contains("ON CONFLICT")), "{a:#}");
    assert_eq!(a["severity"], "critical", "every call failed: {a:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occasional_errors_are_not_a_spike() {
    let (proxy, client) = session(|_| {}).await;
    let insert = client.prepare("insert into users (id, name) values ($1, $2)").await.unwrap();
    for i in 100..130i32 {
        client.execute(&insert, &[&i, &"new"]).await.unwrap();
        if i % 10 == 0 {
            assert!(client.execute(&insert, &[&1i32, &"again"]).await.is_err());
        }
    }
    assert!(client.simple_query("select * from no_such_table").await.is_err());
    expect_none(&proxy, &client, "error_spike", "3 unique violations among 30 inserts, and one unknown table").await;
}
