//! The admin API against real traffic: pgbench through pgvisor, then the numbers on
//! `/api/queries` agree with pgbench's own report; sessions, metrics, reset and the token.

use std::net::SocketAddr;
use std::time::Duration;

use pgvisor::{Proxy, ProxySettings};
use pgvisor_tests::binary::pgvisor_binary;
use pgvisor_tests::cli::{pgbench, CliOutput};
use pgvisor_tests::{connect, eventually, shared_cluster, start_proxy, unique_name};
use serde_json::Value;

const PGBENCH_SELECT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";

fn reported(output: &CliOutput, label: &str) -> Option<u64> {
    let line = output.stdout.lines().find(|l| l.starts_with(label))?;
    line[label.len()..].split_whitespace().next()?.parse().ok()
}

fn query_row<'a>(queries: &'a Value, text: &str) -> Option<&'a Value> {
    queries["queries"].as_array()?.iter().find(|q| q["query"] == text)
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// After `pgbench -S -T 5 -c 2`, the pgbench query's calls equal pgbench's transactions (within
/// 1%), rows equal calls, mean * calls equals total, and the percentiles are ordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_agree_with_pgbench() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let db = unique_name("api");
    connect(&cluster.endpoint()).await.unwrap().batch_execute(&format!("create database {db}")).await.unwrap();
    let target = proxy.endpoint().with_dbname(&db);
    let init = pgbench(&target, &["-i", "-s", "1", "-q"]).await;
    assert_eq!(init.code(), 0, "{}", init.stderr);

    for (mode, seconds) in [("prepared", "5"), ("simple", "3")] {
        assert_eq!(proxy.admin_json("POST", "/api/reset").await["reset"], true);
        let run = pgbench(&target, &["-S", "-M", mode, "-T", seconds, "-c", "2", "-j", "2", "-n"]).await;
        assert_eq!(run.code(), 0, "{}{}", run.stdout, run.stderr);
        let transactions = reported(&run, "number of transactions actually processed:").expect("pgbench report") as f64;
        // The engine drains events asynchronously; give it a moment to catch up.
        let row = eventually(Duration::from_secs(5), || async {
            let queries = proxy.admin_get("/api/queries?sort=calls&limit=20").await;
            let row = query_row(&queries, PGBENCH_SELECT)?.clone();
            ((f(&row, "calls") - transactions).abs() <= transactions * 0.01).then_some(row)
        })
        .await
        .unwrap_or_else(|| panic!("-M {mode}: calls never matched {transactions} transactions"));
        let calls = f(&row, "calls");
        assert_eq!(f(&row, "rows"), calls, "-M {mode}: one row per call: {row}");
        assert_eq!(f(&row, "errors"), 0.0);
        let (total, mean) = (f(&row, "total_ms"), f(&row, "mean_ms"));
        assert!((mean * calls - total).abs() <= total * 1e-9 + 1e-6, "-M {mode}: mean*calls != total: {row}");
        let (min, p50, p95, p99, max) =
            (f(&row, "min_ms"), f(&row, "p50_ms"), f(&row, "p95_ms"), f(&row, "p99_ms"), f(&row, "max_ms"));
        assert!(
            0.0 < min && min <= p50 && p50 <= p95 && p95 <= p99 && p99 <= max,
            "-M {mode}: percentiles out of order: {row}"
        );
        assert!(row["fingerprint"].as_str().is_some_and(|f| f.len() == 16 && f.chars().all(|c| c.is_ascii_hexdigit())));
    }

    // Sorting and limits.
    for sort in ["total", "calls", "mean", "p99"] {
        let queries = proxy.admin_get(&format!("/api/queries?sort={sort}&limit=2")).await;
        assert!(queries["queries"].as_array().unwrap().len() <= 2);
    }
    for query in ["sort=bogus", "limit=-1", "tag=route", "sort=calls&sort=mean", "limit=%zz"] {
        let bad = pgvisor::cli::report::http_get(proxy.admin_addr(), &format!("/api/queries?{query}"), None).await;
        let json_error = |body: &str| serde_json::from_str::<Value>(body).is_ok_and(|v| v["error"].is_string());
        assert!(
            matches!(&bad, Err(pgvisor::cli::report::ReportError::Http { status, body }) if status.contains("400") && json_error(body)),
            "{query}: {bad:?}"
        );
    }

    // The terminal report shows the same query.
    let out = tokio::process::Command::new(pgvisor_binary())
        .args(["report", "--admin", &proxy.admin_addr().to_string(), "--sort", "calls"])
        .output()
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && table.contains(PGBENCH_SELECT), "{table}{}", String::from_utf8_lossy(&out.stderr));

    // Metrics carry the proxy counters and the per-fingerprint latency of the top queries.
    let metrics = pgvisor::cli::report::http_get(proxy.admin_addr(), "/metrics", None).await.unwrap();
    for series in [
        "pgvisor_connections_total",
        "pgvisor_events_dropped_total 0",
        "pgvisor_results_dropped_total 0",
        "pgvisor_query_latency_ms{",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics:\n{metrics}");
    }

    // Reset empties the statistics.
    proxy.admin_json("POST", "/api/reset").await;
    assert_eq!(proxy.admin_get("/api/queries").await["queries"], serde_json::json!([]));
}

/// A session in a transaction shows up with its identity and state, and leaves the list when
/// it closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_show_identity_and_transaction_state() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let mut config = proxy.endpoint().config();
    config.application_name("api-test");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    let conn_task = tokio::spawn(connection);
    let pid: i32 = client.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    client.batch_execute("begin; select 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let sessions = proxy.admin_get("/api/sessions").await;
    let list = sessions["sessions"].as_array().unwrap();
    let me = list.iter().find(|s| s["pid"] == pid).unwrap_or_else(|| panic!("pid {pid} not in {sessions}"));
    assert_eq!(me["application_name"], "api-test");
    assert_eq!(me["user"], cluster.endpoint().user.as_str());
    assert_eq!(me["database"], "postgres");
    assert_eq!(me["state"], "idle_in_transaction");
    assert_eq!(me["tls"], false);
    assert!(me["transaction_ms"].as_f64().is_some_and(|ms| ms >= 40.0), "{me}");
    assert_eq!(me["current_statement"], "SELECT $1");
    assert!(me["connected_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{me}");

    client.batch_execute("commit").await.unwrap();
    let idle = proxy.admin_get("/api/sessions").await;
    let me = idle["sessions"].as_array().unwrap().iter().find(|s| s["pid"] == pid).cloned().unwrap();
    assert_eq!(me["state"], "idle");
    assert_eq!(me["transaction_ms"], Value::Null);

    drop(client);
    let _ = conn_task.await;
    let gone = eventually(Duration::from_secs(3), || async {
        let s = proxy.admin_get("/api/sessions").await;
        s["sessions"].as_array().unwrap().iter().all(|s| s["pid"] != pid).then_some(())
    })
    .await;
    assert!(gone.is_some(), "a closed session stays in /api/sessions");
}

/// A non-loopback admin address needs a token; with one, requests without it get 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_is_required_off_loopback() {
    let cluster = shared_cluster();
    let mut settings = ProxySettings::for_upstream(cluster.upstream());
    settings.admin = Some(SocketAddr::from(([0, 0, 0, 0], 0)));
    let refused = Proxy::bind(settings.clone()).await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("--admin-token"), "started without a token: {message}");

    settings.admin_token = Some("s3cret".into());
    let handle = Proxy::bind(settings).await.unwrap().spawn();
    let addr = SocketAddr::from(([127, 0, 0, 1], handle.admin_addr().unwrap().port()));
    let denied = pgvisor::cli::report::http_get(addr, "/api/queries", None).await;
    assert!(
        matches!(denied, Err(pgvisor::cli::report::ReportError::Http { ref status, .. }) if status.contains("401")),
        "{denied:?}"
    );
    let wrong = pgvisor::cli::report::http_get(addr, "/healthz", Some("nope")).await;
    assert!(wrong.is_err());
    let ok = pgvisor::cli::report::http_get(addr, "/healthz", Some("s3cret")).await.unwrap();
    assert!(ok.contains("ok"));
    handle.shutdown().await;
}
