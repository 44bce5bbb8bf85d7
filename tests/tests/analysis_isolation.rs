//! Analysis never hurts what it watches: a panic in a session's observer or in the engine is
//! contained (the client's connection and every other session go on, analysis of the others
//! too), counted on `/metrics` and `/healthz`; the statements that used to crash analysis now
//! pass through it; the API reads its own writes; a 300 KB statement is counted.

mod advice_common;

use std::sync::Arc;
use std::time::Duration;

use advice_common::{advice_of, connect_in, create_schema, setup};
use advisor::health::Stage;
use pgvisor_tests::{connect, eventually, shared_cluster, start_proxy, start_proxy_with, TestProxy};
use serde_json::Value;
use tokio_postgres::{Client, SimpleQueryMessage};

const OBSERVER_MARKER: &str = "pgvisor_test_observer_panic";
const ENGINE_MARKER: &str = "pgvisor_test_engine_panic";

async fn proxy_with_injected_panics() -> TestProxy {
    start_proxy_with(shared_cluster(), |s| {
        s.advisor.injected_panics.observer = Some(Arc::from(OBSERVER_MARKER));
        s.advisor.injected_panics.engine = Some(Arc::from(ENGINE_MARKER));
    })
    .await
}

/// Calls of `sql` on `/api/queries`, found by the text pgvisor shows for it.
fn calls_of(queries: &Value, sql: &str) -> u64 {
    let text = advisor::fingerprint(sql.as_bytes()).display;
    queries["queries"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["query"] == text))
        .and_then(|q| q["calls"].as_u64())
        .unwrap_or(0)
}

async fn one_value(client: &Client, sql: &str) -> String {
    let rows = client.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in /metrics:\n{text}"))
}

async fn metrics(proxy: &TestProxy) -> String {
    pgvisor::cli::report::http_request(proxy.admin_addr(), "GET", "/metrics", None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_panic_leaves_the_connection_and_other_sessions_alone() {
    let proxy = proxy_with_injected_panics().await;
    let victim = connect(&proxy.endpoint()).await.unwrap();
    let other = connect(&proxy.endpoint()).await.unwrap();
    let victim_pid = one_value(&victim, "select pg_backend_pid()").await;

    let answer = one_value(&victim, &format!("select 'ok' as {OBSERVER_MARKER}")).await;
    assert_eq!(answer, "ok", "the statement that broke analysis still got its result");
    // The same connection keeps working, with the same backend, for every later statement.
    for i in 0..20 {
        assert_eq!(one_value(&victim, &format!("select {i} + 1")).await, (i + 1).to_string());
    }
    assert_eq!(one_value(&victim, "select pg_backend_pid()").await, victim_pid);

    // Other sessions are still analysed.
    let stmt = other.prepare("select $1::int + 100").await.unwrap();
    for i in 0..7 {
        other.query_one(&stmt, &[&i]).await.unwrap();
    }
    let queries = proxy.admin_get("/api/queries?sort=calls&limit=1000").await;
    assert_eq!(calls_of(&queries, "select $1::int + 100"), 7, "{queries:#}");

    assert_eq!(proxy_health(&proxy).failures(Stage::Observer), 1);
    let health = proxy.admin_get("/healthz").await;
    assert_eq!(health["status"], "degraded", "{health:#}");
    assert_eq!(health["analysis"]["failures"]["observer"], 1, "{health:#}");
    assert!(health["analysis"]["last_failure"]["what"].as_str().unwrap().contains("injected"), "{health:#}");
    let text = metrics(&proxy).await;
    assert_eq!(metric(&text, "pgvisor_analysis_failures_total{stage=\"observer\"}"), 1.0);
    // The unobserved session is not listed with a state that can no longer be kept current.
    let sessions = proxy.admin_get("/api/sessions").await;
    let listed: Vec<String> = sessions["sessions"].as_array().unwrap().iter().map(|s| s["pid"].to_string()).collect();
    assert!(!listed.contains(&victim_pid), "{sessions:#}");
    assert_eq!(listed.len(), 1, "{sessions:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_panic_loses_one_event_and_the_engine_goes_on() {
    let proxy = proxy_with_injected_panics().await;
    let client = connect(&proxy.endpoint()).await.unwrap();
    one_value(&client, &format!("select {ENGINE_MARKER} from (select 1 as {ENGINE_MARKER}) s")).await;
    let stmt = client.prepare("select $1::int + 200").await.unwrap();
    for i in 0..5 {
        client.query_one(&stmt, &[&i]).await.unwrap();
    }
    let queries = proxy.admin_get("/api/queries?sort=calls&limit=1000").await;
    assert_eq!(calls_of(&queries, "select $1::int + 200"), 5, "the engine kept going: {queries:#}");
    assert_eq!(proxy_health(&proxy).failures(Stage::Engine), 1);
    assert_eq!(proxy_health(&proxy).failures(Stage::Observer), 0);
}

fn proxy_health(proxy: &TestProxy) -> &advisor::health::AnalysisHealth {
    &proxy.advisor().health
}

/// The two statements that used to panic analysis (issue 10): Unicode spaces between DDL
/// keywords (the engine), and an N+1 loop over a non-ASCII column (the session's observer, which
/// dropped the application's connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_that_crashed_analysis_are_analysed() {
    let cluster = shared_cluster();
    let schema = create_schema(cluster).await;
    setup(cluster, &schema, "create table ptab (id int primary key, \"w€\" int); insert into ptab select g, g from generate_series(1, 10) g;").await;
    let proxy = start_proxy(cluster).await;
    let client = connect_in(&proxy.endpoint(), &schema).await;

    let err = client.simple_query("alter\u{a0}\u{3000}\u{a0}table ptab add x int").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42601"), "{err}");
    let ids = client.simple_query("SELECT id FROM ptab ORDER BY id").await.unwrap();
    let ids: Vec<String> = ids
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .collect();
    for id in &ids {
        client.simple_query(&format!("SELECT id FROM ptab WHERE w€ = {id}")).await.unwrap();
    }
    client.simple_query("select 'still here'").await.expect("the connection survived");

    let found = eventually(Duration::from_secs(5), || async {
        let all = advice_of(&proxy, "n_plus_one").await;
        (!all.is_empty()).then_some(all)
    })
    .await
    .expect("the N+1 over a non-ASCII column is reported");
    assert!(found[0]["evidence"]["children"].as_u64().unwrap() >= 5, "{found:#?}");
    for stage in Stage::ALL {
        assert_eq!(proxy_health(&proxy).failures(stage), 0, "{stage:?}: fixed, not merely contained");
    }
    let queries = proxy.admin_get("/api/queries?sort=calls&limit=1000").await;
    assert!(calls_of(&queries, "SELECT id FROM ptab WHERE w€ = $1") >= 10, "{queries:#}");
}

/// A statement whose result reached the client before an API request was received is in that
/// request's answer, without waiting or retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reads_its_own_writes() {
    let proxy = start_proxy(shared_cluster()).await;
    let client = connect(&proxy.endpoint()).await.unwrap();
    for round in 1..=5u64 {
        let sql = format!("select c{round} from (select $1::int as c{round}) s");
        let stmt = client.prepare(&sql).await.unwrap();
        for i in 0..(round * 40) {
            client.query_one(&stmt, &[&(i as i32)]).await.unwrap();
        }
        let queries = proxy.admin_get("/api/queries?sort=calls&limit=1000").await;
        assert_eq!(calls_of(&queries, &sql), round * 40, "round {round}: {queries:#}");
        let text = metrics(&proxy).await;
        assert!(metric(&text, "pgvisor_statements_total") >= (round * 40) as f64);
    }
    // A session that is mid-statement shows as active.
    let sessions = proxy.admin_get("/api/sessions").await;
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 1, "{sessions:#}");
    // Reset, then statements that finish after it are all counted.
    proxy.admin_json("POST", "/api/reset").await;
    let stmt = client.prepare("select $1::int - 7").await.unwrap();
    for i in 0..30 {
        client.query_one(&stmt, &[&i]).await.unwrap();
    }
    let queries = proxy.admin_get("/api/queries?sort=calls&limit=1000").await;
    assert_eq!(calls_of(&queries, "select $1::int - 7"), 30, "{queries:#}");
}

/// A simple Query far larger than the prefix pgvisor observes (a bulk INSERT of 300 KB) is
/// counted and timed like any other statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_kb_statement_is_counted() {
    let cluster = shared_cluster();
    let schema = create_schema(cluster).await;
    setup(cluster, &schema, "create table bulk (id int, v text);").await;
    let proxy = start_proxy(cluster).await;
    let client = connect_in(&proxy.endpoint(), &schema).await;
    let rows: Vec<String> = (0..8000).map(|i| format!("({i}, 'value number {i:08} with padding')")).collect();
    let sql = format!("INSERT INTO bulk (id, v) VALUES {}", rows.join(", "));
    assert!(sql.len() > 300_000);
    for _ in 0..2 {
        client.simple_query(&sql).await.unwrap();
    }
    assert_eq!(one_value(&client, "select count(*) from bulk").await, "16000");
    let queries = proxy.admin_get("/api/queries?sort=calls&limit=1000").await;
    let row = queries["queries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["query"].as_str().is_some_and(|t| t.starts_with("INSERT INTO bulk")))
        .unwrap_or_else(|| panic!("the bulk INSERT is not listed: {queries:#}"));
    assert_eq!(row["calls"], 2, "{row:#}");
    assert!(row["query"].as_str().unwrap().len() < 70_000, "its text is bounded: {}", row["query"]);
    assert!(row["total_ms"].as_f64().unwrap() > 0.0, "{row:#}");
}

/// tokio-postgres pipelines a Sync behind a COPY's Execute, and PostgreSQL ignores Sync in
/// copy-in mode: the statements after the COPY are still paired with their own results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_after_copy_from_stdin_are_counted() {
    use futures_util::SinkExt;
    let cluster = shared_cluster();
    let schema = create_schema(cluster).await;
    setup(cluster, &schema, "create table copied (id int);").await;
    let proxy = start_proxy(cluster).await;
    let client = connect_in(&proxy.endpoint(), &schema).await;
    let sink = client.copy_in("copy copied from stdin").await.unwrap();
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"1\n2\n3\n")).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 3);
    let after = "select c.n from (select 42 as n) c where c.n > $1";
    for i in 0..3 {
        client.query_one(after, &[&i]).await.unwrap();
    }
    let queries = proxy.admin_get("/api/queries?sort=calls&limit=1000").await;
    assert_eq!(calls_of(&queries, after), 3, "{queries:#}");
    let sessions = proxy.admin_get("/api/sessions").await;
    assert_eq!(sessions["sessions"][0]["state"], "idle", "{sessions:#}");
}
