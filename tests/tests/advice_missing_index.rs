//! `missing_index` through pgvisor on real PostgreSQL: a slow statement filtering a large table
//! on an unindexed column gets `CREATE INDEX CONCURRENTLY ...`, from the plan the Inspector's
//! EXPLAIN shows (confirmed with HypoPG when the extension can be created); an indexed lookup
//! does not.

mod advice_common;

use std::time::Duration;

use advice_common::{advice_of, drained, inspector_dsn, wait_for_advice};
use pgvisor_tests::{connect, shared_cluster, unique_name, Cluster};

/// A fresh database holding `sql`: EXPLAIN runs in the session's own database, so the Inspector
/// must find the tables there.
async fn database_with(cluster: &Cluster, sql: &str) -> String {
    let db = unique_name("mi");
    connect(&cluster.endpoint()).await.unwrap().batch_execute(&format!("create database {db}")).await.unwrap();
    connect(&cluster.endpoint().with_dbname(&db)).await.unwrap().batch_execute(sql).await.unwrap();
    db
}

/// 200,000 rows, `val` unindexed with 1,000 distinct values, analysed so the planner knows.
const BIG: &str = "
    create table big (id int primary key, val int not null, note text not null);
    insert into big select g, g % 1000, md5(g::text) from generate_series(1, 200000) g;
    analyze big;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unindexed_filter_on_a_large_table_gets_an_index() {
    let cluster = shared_cluster();
    let db = database_with(cluster, BIG).await;
    let dsn = inspector_dsn(cluster, cluster.password());
    let proxy = pgvisor_tests::start_proxy_with(cluster, |s| s.inspector_dsn = Some(dsn)).await;
    let client = connect(&proxy.endpoint().with_dbname(&db)).await.unwrap();
    // Prepared, as most drivers do: the Inspector plans it generically, with no captured value.
    let stmt = client.prepare("select note from big where val = $1").await.unwrap();
    for v in [7, 8, 9] {
        client.query(&stmt, &[&v]).await.unwrap();
    }
    let advice = wait_for_advice(&proxy, "missing_index", Duration::from_secs(5), |a| a["evidence"]["table"] == "big")
        .await
        .unwrap_or_else(|all| panic!("no missing_index for big:\n{all}"));
    let e = &advice["evidence"];
    assert_eq!(e["columns"], serde_json::json!(["val"]), "{advice:#}");
    assert!(e["table_rows"].as_f64().is_some_and(|r| r > 150_000.0), "{advice:#}");
    assert!(e["estimated_rows"].as_f64().is_some_and(|r| r < 2_000.0), "{advice:#}");
    assert_eq!(e["statement"], "SELECT note FROM big WHERE val = $1");
    let suggestion = advice["suggestion"].as_str().unwrap();
    assert!(suggestion.starts_with("CREATE INDEX CONCURRENTLY ON big (val);"), "{suggestion}");
    assert_eq!(advice["fingerprints"].as_array().map(Vec::len), Some(1));
    // Never a value in the evidence: the plan was generic.
    assert!(
        !advice.to_string().contains("'7'") && !e["filter"].as_str().unwrap_or_default().contains('7'),
        "{advice:#}"
    );
}

/// 50,000 rows, `val` unindexed with 500 distinct values: a development-sized table, whose
/// filtered scan takes a few milliseconds, well under the 10 ms statements once needed.
const DEV_SIZED: &str = "
    create table dev (id int primary key, val int not null, note text not null);
    insert into dev select g, g % 500, md5(g::text) || md5((g + 1)::text) from generate_series(1, 50000) g;
    analyze dev;
";

/// The query statistics of `proxy` for statements on `dev`, for failure messages.
async fn dev_timings(proxy: &pgvisor_tests::TestProxy) -> String {
    let queries = proxy.admin_get("/api/queries?sort=calls&limit=1000").await;
    let on_dev: Vec<&serde_json::Value> = queries["queries"]
        .as_array()
        .map(|all| all.iter().filter(|q| q["query"].as_str().is_some_and(|t| t.contains("dev"))).collect())
        .unwrap_or_default();
    format!("{on_dev:#?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_of_a_few_milliseconds_on_a_dev_sized_table_gets_an_index() {
    let cluster = shared_cluster();
    let db = database_with(cluster, DEV_SIZED).await;
    let dsn = inspector_dsn(cluster, cluster.password());
    // The default --explain-min: nothing to tune for a development database.
    let proxy = pgvisor_tests::start_proxy_with(cluster, |s| s.inspector_dsn = Some(dsn)).await;
    let client = connect(&proxy.endpoint().with_dbname(&db)).await.unwrap();
    // Warm the session's backend (its catalog caches and the table's pages), so the lookups
    // below take what they take on a dev database in use: a few milliseconds each. A scan
    // without a filter wants no index.
    client.query_one("select count(*) from dev", &[]).await.unwrap();
    let stmt = client.prepare("select note from dev where val = $1").await.unwrap();
    for v in 1..=10 {
        assert_eq!(client.query(&stmt, &[&v]).await.unwrap().len(), 100);
    }
    let Ok(advice) =
        wait_for_advice(&proxy, "missing_index", Duration::from_secs(5), |a| a["evidence"]["table"] == "dev").await
    else {
        panic!("no missing_index for dev; its statements took:\n{}", dev_timings(&proxy).await);
    };
    let e = &advice["evidence"];
    assert_eq!(e["columns"], serde_json::json!(["val"]), "{advice:#}");
    assert!(e["table_rows"].as_f64().is_some_and(|r| (40_000.0..60_000.0).contains(&r)), "{advice:#}");
    assert_eq!(e["statement"], "SELECT note FROM dev WHERE val = $1", "{advice:#}");
    assert!(advice["suggestion"].as_str().unwrap().starts_with("CREATE INDEX CONCURRENTLY ON dev (val);"));
    assert!(advice["message"].as_str().unwrap().contains("keeps about 100 of them (0.20%)"), "{advice:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_quicker_than_explain_min_are_not_explained() {
    let cluster = shared_cluster();
    let db = database_with(cluster, DEV_SIZED).await;
    let dsn = inspector_dsn(cluster, cluster.password());
    let proxy = pgvisor_tests::start_proxy_with(cluster, |s| {
        s.inspector_dsn = Some(dsn);
        s.advisor.missing_index.explain_min = Duration::from_secs(1);
    })
    .await;
    let client = connect(&proxy.endpoint().with_dbname(&db)).await.unwrap();
    let stmt = client.prepare("select note from dev where val = $1").await.unwrap();
    for v in 1..=10 {
        client.query(&stmt, &[&v]).await.unwrap();
    }
    // Time for the Inspector's one EXPLAIN a second, had it been asked.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drained(&proxy, &client).await;
    let found = advice_of(&proxy, "missing_index").await;
    assert!(found.is_empty(), "--explain-min 1s: nothing was slow enough to explain: {found:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_lookups_and_small_tables_get_no_index_advice() {
    let cluster = shared_cluster();
    let small = "create table small (id int, val int); insert into small select g, g from generate_series(1, 500) g; analyze small;";
    let db = database_with(cluster, &format!("{BIG} {small}")).await;
    let dsn = inspector_dsn(cluster, cluster.password());
    let proxy = pgvisor_tests::start_proxy_with(cluster, |s| s.inspector_dsn = Some(dsn)).await;
    let client = connect(&proxy.endpoint().with_dbname(&db)).await.unwrap();
    // A slow statement that uses the primary key, and a scan of a table too small to matter.
    client.simple_query("select note, pg_sleep(0.02) from big where id = 42").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.simple_query("select *, pg_sleep(0.02) from small where val = 3").await.unwrap();
    // The Inspector explains at most one statement a second: give it time for both.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    drained(&proxy, &client).await;
    let found = advice_of(&proxy, "missing_index").await;
    assert!(found.is_empty(), "no index is missing here: {found:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hypopg_confirms_the_index_when_installed() {
    let cluster = shared_cluster();
    let db = database_with(cluster, BIG).await;
    let direct = connect(&cluster.endpoint().with_dbname(&db)).await.unwrap();
    if let Err(e) = direct.batch_execute("create extension hypopg").await {
        // Debian: apt-get install postgresql-<major>-hypopg. Not a CI requirement.
        eprintln!("HypoPG is not installed ({e}); the unconfirmed path is tested above");
        return;
    }
    let dsn = inspector_dsn(cluster, cluster.password());
    let proxy = pgvisor_tests::start_proxy_with(cluster, |s| s.inspector_dsn = Some(dsn)).await;
    let client = connect(&proxy.endpoint().with_dbname(&db)).await.unwrap();
    client.simple_query("select count(*) from big where val = 42").await.unwrap();
    let advice = wait_for_advice(&proxy, "missing_index", Duration::from_secs(5), |a| a["evidence"]["table"] == "big")
        .await
        .unwrap_or_else(|all| panic!("no missing_index for big:\n{all}"));
    assert_eq!(advice["evidence"]["confirmed"], true, "{advice:#}");
    let before = advice["evidence"]["cost_before"].as_f64().unwrap();
    let after = advice["evidence"]["cost_with_index"].as_f64().unwrap();
    assert!(after * 2.0 <= before, "{advice:#}");
    assert!(advice["suggestion"].as_str().unwrap().contains("HypoPG confirms it"));
}
