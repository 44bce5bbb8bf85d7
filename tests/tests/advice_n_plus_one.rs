//! `n_plus_one` through pgvisor against real PostgreSQL, judged on the advice a user sees on
//! `GET /api/advice`: the per-row loop is found (prepared statements and client-side
//! interpolation alike), confirmed against the parent's result, and named with the join and the
//! single query that replaces it; the loops that are not N+1 produce nothing; `POST /api/reset`
//! clears it.

mod advice_common;

use std::time::{Duration, Instant};

use advice_common::{
    advice, advice_of, connect_in, create_schema, drained, pretty, setup, wait_for_advice, USERS_AND_ORDERS,
};
use pgvisor_tests::{shared_cluster, start_proxy, TestProxy};
use serde_json::Value;
use tokio_postgres::{Client, SimpleQueryMessage};

// As the application wrote them (constants as $n): what a user greps their code for.
const PARENT: &str = "select id from users order by id";
const CHILD: &str = "select * from orders where user_id = $1";
const LINK: &str = "users.id -> orders.user_id";

/// A proxy and a session through it, in a fresh schema holding `users` and `orders`.
async fn users_and_orders() -> (TestProxy, Client) {
    let cluster = shared_cluster();
    let schema = create_schema(cluster).await;
    setup(cluster, &schema, USERS_AND_ORDERS).await;
    let proxy = start_proxy(cluster).await;
    let client = connect_in(&proxy.endpoint(), &schema).await;
    (proxy, client)
}

/// Values of the first column of a simple query's rows.
fn first_column(messages: &[SimpleQueryMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect()
}

/// Waits (1 s at most, counted from the last child's answer) for the burst of 20 children and
/// checks the advice a user sees; returns it.
async fn confirmed_burst(proxy: &TestProxy, done: Instant) -> Value {
    let found = wait_for_advice(proxy, "n_plus_one", Duration::from_secs(1), |a| a["evidence"]["children"] == 20).await;
    let waited = done.elapsed();
    let a = found.unwrap_or_else(|all| {
        panic!("no n_plus_one advice with 20 children within 1 s of the last child ({waited:?}); /api/advice:\n{all}")
    });
    let all = advice_of(proxy, "n_plus_one").await;
    assert_eq!(all.len(), 1, "exactly one n_plus_one advice for one loop:\n{}", pretty(&all));
    let e = &a["evidence"];
    assert_eq!(e["confirmed"], true, "the children's parameters are the parent's ids: {a:#}");
    assert_eq!(e["children"], 20, "{a:#}");
    assert_eq!(e["distinct_parameters"], 20, "{a:#}");
    assert_eq!(e["link"], LINK, "{a:#}");
    assert_eq!(e["parent_query"], PARENT, "{a:#}");
    assert_eq!(e["child_query"], CHILD, "{a:#}");
    assert!(e["total_child_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{a:#}");
    assert!(e.get("sample_parameters").is_none(), "parameter values only with --log-params: {a:#}");
    let suggestion = a["suggestion"].as_str().unwrap_or_default();
    assert!(suggestion.contains("select * from orders where user_id = ANY($1)"), "suggestion: {suggestion}");
    assert!(a["title"].as_str().is_some_and(|t| t.contains(LINK)), "{a:#}");
    assert!(a["message"].as_str().is_some_and(|m| m.contains(PARENT) && m.contains(CHILD)), "{a:#}");
    assert_eq!(a["severity"], "warning", "20 quick children: {a:#}");
    assert_eq!(a["count"], 1, "one loop is one occurrence: {a:#}");
    let fingerprints: Vec<&str> = a["fingerprints"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(fingerprints.len(), 2, "parent and child: {a:#}");
    assert!(fingerprints.iter().all(|f| f.len() == 16 && f.chars().all(|c| c.is_ascii_hexdigit())), "{a:#}");
    for key in ["first_seen", "last_seen"] {
        assert!(a[key].as_str().is_some_and(|t| t.len() >= 20 && t.ends_with('Z')), "{key} is RFC 3339: {a:#}");
    }
    a
}

/// After the session ends, the loop is still one advice of 20 children, seen once.
async fn still_one_after_close(proxy: &TestProxy, client: Client, first: &Value) {
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = advice_of(proxy, "n_plus_one").await;
    assert_eq!(all.len(), 1, "{}", pretty(&all));
    assert_eq!(all[0]["id"], first["id"]);
    assert_eq!(all[0]["count"], 1, "{}", pretty(&all));
    assert_eq!(all[0]["evidence"]["children"], 20, "{}", pretty(&all));
}

/// tokio-postgres: the parent query, then one prepared `orders` query per user id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statement_loop_is_a_confirmed_n_plus_one() {
    let (proxy, client) = users_and_orders().await;
    let users = client.query("select id from users order by id", &[]).await.unwrap();
    assert_eq!(users.len(), 20);
    let child = client.prepare("select * from orders where user_id = $1").await.unwrap();
    for user in &users {
        let id: i32 = user.get(0);
        assert_eq!(client.query(&child, &[&id]).await.unwrap().len(), 3);
    }
    let a = confirmed_burst(&proxy, Instant::now()).await;
    still_one_after_close(&proxy, client, &a).await;
}

/// Client-side interpolation (psycopg2, many PHP and Ruby drivers): simple queries with the ids as
/// literals, taken from the text-format result of the parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interpolated_loop_is_a_confirmed_n_plus_one() {
    let (proxy, client) = users_and_orders().await;
    let ids = first_column(&client.simple_query("select id from users order by id").await.unwrap());
    assert_eq!(ids.len(), 20);
    for id in &ids {
        let orders = client.simple_query(&format!("select * from orders where user_id = {id}")).await.unwrap();
        assert_eq!(first_column(&orders).len(), 3);
    }
    let a = confirmed_burst(&proxy, Instant::now()).await;
    still_one_after_close(&proxy, client, &a).await;
}

/// Waits until the engine has applied everything `client` ran, then asserts there is no
/// `n_plus_one` advice.
async fn assert_no_n_plus_one(proxy: &TestProxy, client: &Client, what: &str) {
    drained(proxy, client).await;
    let found = advice_of(proxy, "n_plus_one").await;
    assert!(found.is_empty(), "{what} is not an N+1, yet /api/advice says:\n{}", pretty(&found));
}

/// The eager-loaded form: one `= ANY($1)` query with all the parent's ids, or one `IN (...)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_loaded_children_are_not_an_n_plus_one() {
    let (proxy, client) = users_and_orders().await;
    let users = client.query("select id from users order by id", &[]).await.unwrap();
    let ids: Vec<i32> = users.iter().map(|r| r.get(0)).collect();
    let orders = client.query("select * from orders where user_id = any($1)", &[&ids]).await.unwrap();
    assert_eq!(orders.len(), 60);
    let list = ids.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
    let orders = client.simple_query(&format!("select * from orders where user_id in ({list})")).await.unwrap();
    assert_eq!(first_column(&orders).len(), 60);
    assert_no_n_plus_one(&proxy, &client, "one = ANY($1) query and one IN (...) query").await;
}

/// One execution each of ten different query shapes, each with a parent id as its parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_over_distinct_shapes_is_not_an_n_plus_one() {
    let (proxy, client) = users_and_orders().await;
    let users = client.query("select id from users order by id", &[]).await.unwrap();
    let shapes = [
        "select * from orders where user_id = $1",
        "select * from orders where id = $1",
        "select name from users where id = $1",
        "select count(*) from orders where user_id = $1",
        "select sum(total) from orders where user_id = $1",
        "select max(total) from orders where user_id = $1",
        "select id from orders where user_id = $1 order by id",
        "select u.name, o.total from users u join orders o on o.user_id = u.id where u.id = $1",
        "select exists (select 1 from orders where user_id = $1)",
        "select * from users where id > $1 order by id limit 1",
    ];
    for (shape, user) in shapes.iter().zip(&users) {
        let id: i32 = user.get(0);
        client.query(*shape, &[&id]).await.unwrap_or_else(|e| panic!("{shape}: {e}"));
    }
    assert_no_n_plus_one(&proxy, &client, "a loop over ten distinct query shapes").await;
}

/// The same query with the same parameter 20 times (that is `repeated_query`, another kind).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_query_same_parameter_is_not_an_n_plus_one() {
    let (proxy, client) = users_and_orders().await;
    let users = client.query("select id from users order by id", &[]).await.unwrap();
    let first: i32 = users[0].get(0);
    let child = client.prepare("select * from orders where user_id = $1").await.unwrap();
    for _ in 0..20 {
        client.query(&child, &[&first]).await.unwrap();
    }
    for _ in 0..20 {
        client.simple_query(&format!("select * from orders where user_id = {first}")).await.unwrap();
    }
    assert_no_n_plus_one(&proxy, &client, "the same query with the same parameter 20 times").await;
}

/// Write loops the user asked for: `executemany`-style prepared INSERTs and UPDATEs, and
/// client-side-interpolated INSERTs, one per row of a parent query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_loops_are_not_an_n_plus_one() {
    let (proxy, client) = users_and_orders().await;
    let users = client.query("select id from users order by id", &[]).await.unwrap();
    let insert = client.prepare("insert into orders (id, user_id, total) values ($1, $2, $3::int)").await.unwrap();
    let update = client.prepare("update users set name = $1 where id = $2").await.unwrap();
    for user in &users {
        let id: i32 = user.get(0);
        client.execute(&insert, &[&(100 + id), &id, &id]).await.unwrap();
    }
    for user in &users {
        let id: i32 = user.get(0);
        client.execute(&update, &[&format!("renamed {id}"), &id]).await.unwrap();
    }
    for user in &users {
        let id: i32 = user.get(0);
        client
            .simple_query(&format!("insert into orders (id, user_id, total) values ({}, {id}, 9.5)", 200 + id))
            .await
            .unwrap();
    }
    assert_no_n_plus_one(&proxy, &client, "20 INSERTs, 20 UPDATEs and 20 interpolated INSERTs").await;
}

/// A loop with no parent: `select ... where id = $1` 50 times with ids that no earlier result
/// held (a request body, a cache, a list), then another statement. A bounded burst that ended:
/// reported, but unconfirmed and at severity info.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_without_parent_is_an_unconfirmed_n_plus_one() {
    let (proxy, client) = users_and_orders().await;
    let by_id = client.prepare("select * from orders where id = $1").await.unwrap();
    for id in 1..=50i32 {
        assert_eq!(client.query(&by_id, &[&id]).await.unwrap().len(), 1);
    }
    client.simple_query("select 'the loop is over'").await.unwrap();
    let found = wait_for_advice(&proxy, "n_plus_one", Duration::from_secs(2), |a| a["evidence"]["children"] == 50)
        .await
        .unwrap_or_else(|all| panic!("no unconfirmed n_plus_one for the loop; /api/advice:\n{all}"));
    let e = &found["evidence"];
    assert_eq!(e["confirmed"], false, "{found:#}");
    assert_eq!(found["severity"], "info", "{found:#}");
    assert_eq!(e["round_trips_saved"], 49, "{found:#}");
    assert!(found["message"].as_str().unwrap().contains("did not come from an earlier result"), "{found:#}");
    assert!(found["suggestion"].as_str().unwrap().contains("id = ANY($1)"), "{found:#}");
}

/// pgbench -S is a steady repetition of one lookup with varying ids: never an N+1, in either
/// query mode, at one client or several, even though every run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_select_only_is_never_an_n_plus_one() {
    let cluster = pgvisor_tests::shared_cluster();
    let proxy = start_proxy(cluster).await;
    let db = pgvisor_tests::unique_name("nplusone_bench");
    pgvisor_tests::connect(&cluster.endpoint())
        .await
        .unwrap()
        .batch_execute(&format!("create database {db}"))
        .await
        .unwrap();
    let target = proxy.endpoint().with_dbname(&db);
    let init = pgvisor_tests::cli::pgbench(&target, &["-i", "-s", "1", "-q"]).await;
    assert_eq!(init.code(), 0, "{}", init.stderr);
    for args in
        [&["-S", "-M", "prepared", "-c", "1", "-T", "2"][..], &["-S", "-M", "simple", "-c", "4", "-j", "2", "-T", "2"]]
    {
        let run = pgvisor_tests::cli::pgbench(&target, args).await;
        assert_eq!(run.code(), 0, "{}{}", run.stdout, run.stderr);
    }
    // The detector ran: the pgbench statements were counted.
    let queries = proxy.admin_get("/api/queries?sort=calls&limit=5").await;
    assert!(queries["queries"][0]["calls"].as_u64().unwrap() > 500, "{queries:#}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let found = advice_of(&proxy, "n_plus_one").await;
    assert!(found.is_empty(), "pgbench -S is a load test, not an N+1:\n{}", pretty(&found));
}

/// `POST /api/reset` clears the advice; a new loop afterwards is reported again from scratch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_clears_advice() {
    let (proxy, client) = users_and_orders().await;
    let loop_once = |client: Client| async move {
        let users = client.query("select id from users order by id", &[]).await.unwrap();
        let child = client.prepare("select * from orders where user_id = $1").await.unwrap();
        for user in &users {
            let id: i32 = user.get(0);
            client.query(&child, &[&id]).await.unwrap();
        }
        client
    };
    let client = loop_once(client).await;
    let before = wait_for_advice(&proxy, "n_plus_one", Duration::from_secs(2), |a| a["evidence"]["children"] == 20)
        .await
        .unwrap_or_else(|all| panic!("no n_plus_one before the reset:\n{all}"));

    assert_eq!(proxy.admin_json("POST", "/api/reset").await["reset"], true);
    let after = advice(&proxy).await;
    assert!(after.is_empty(), "advice after POST /api/reset:\n{}", pretty(&after));
    drained(&proxy, &client).await;
    let later = advice(&proxy).await;
    assert!(later.is_empty(), "advice came back after the reset without new traffic:\n{}", pretty(&later));

    // The same loop again, in the same session: a fresh advice with a count of one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _client = loop_once(client).await;
    let again = wait_for_advice(&proxy, "n_plus_one", Duration::from_secs(2), |a| a["evidence"]["children"] == 20)
        .await
        .unwrap_or_else(|all| panic!("no n_plus_one for the loop after the reset:\n{all}"));
    assert_eq!(again["count"], 1, "{again:#}");
    assert_eq!(again["id"], before["id"], "the same finding has the same id: {again:#}");
}
