//! `idle_in_transaction` and `long_transaction` through pgvisor, judged on `GET /api/advice`
//! while the transaction is still open (they fire while the condition holds, not after).

mod advice_common;

use std::time::{Duration, Instant};

use advice_common::{advice_of, backend_pid, pretty, strings, wait_for_advice};
use pgvisor_tests::{connect_config, shared_cluster, start_proxy, start_proxy_with, TestProxy};
use tokio_postgres::Client;

async fn connect_as(proxy: &TestProxy, application_name: &str) -> Client {
    let mut config = proxy.endpoint().config();
    config.application_name(application_name);
    connect_config(&config).await.expect("connect through pgvisor")
}

/// BEGIN; SELECT 1; then nothing for 3 s: the advice appears after the 2 s default while the
/// transaction is open, names the session and its statements; a session idle outside a
/// transaction, and one that commits at once, are not flagged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_in_transaction_fires_while_the_transaction_is_open() {
    let proxy = start_proxy(shared_cluster()).await;
    let idle = connect_as(&proxy, "advice-idle-tx").await;
    let quiet = connect_as(&proxy, "advice-idle-quiet").await;
    let brief = connect_as(&proxy, "advice-idle-brief").await;
    let pid = backend_pid(&idle).await;
    quiet.simple_query("select 1").await.unwrap();
    brief.simple_query("begin").await.unwrap();
    brief.simple_query("select 1").await.unwrap();
    brief.simple_query("commit").await.unwrap();

    idle.simple_query("begin").await.unwrap();
    idle.simple_query("select 1").await.unwrap();
    let idle_since = Instant::now();
    let found = wait_for_advice(&proxy, "idle_in_transaction", Duration::from_secs(3), |a| {
        a["evidence"]["idle_ms"].as_f64().is_some_and(|ms| ms >= 2000.0)
    })
    .await;
    let seen_after = idle_since.elapsed();
    // Still inside the transaction: the advice came while the condition held.
    let open: bool = idle
        .query_one("select xact_start < query_start from pg_stat_activity where pid = pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(open, "the transaction begun before the wait is still open");
    let a = found.unwrap_or_else(|all| panic!("no idle_in_transaction within 3 s of going idle:\n{all}"));
    assert!(seen_after >= Duration::from_millis(1900), "reported after only {seen_after:?}: {a:#}");
    let e = &a["evidence"];
    assert_eq!(strings(&e["statements"]), vec!["BEGIN", "SELECT $1"], "{a:#}");
    assert_eq!(e["pid"], pid, "{a:#}");
    assert_eq!(e["application_name"], "advice-idle-tx", "{a:#}");
    assert_eq!(e["state"], "idle_in_transaction", "{a:#}");
    assert!(e["transaction_ms"].as_f64().is_some_and(|ms| ms >= 2000.0), "{a:#}");
    assert!(e["client_addr"].as_str().is_some_and(|c| c.starts_with("127.0.0.1:")), "{a:#}");
    assert_eq!(a["severity"], "warning", "{a:#}");
    let message = a["message"].as_str().unwrap_or_default();
    assert!(message.contains("advice-idle-tx") && message.contains("SELECT $1"), "message: {message}");
    assert!(a["suggestion"].as_str().is_some_and(|s| s.contains("idle_in_transaction_session_timeout")), "{a:#}");
    idle.simple_query("commit").await.unwrap();

    let all = advice_of(&proxy, "idle_in_transaction").await;
    assert_eq!(all.len(), 1, "only the idle transaction:\n{}", pretty(&all));
    assert_eq!(all[0]["count"], 1, "{}", pretty(&all));
    assert!(advice_of(&proxy, "long_transaction").await.is_empty(), "10 s default not reached");
}

/// A transaction kept busy (never idle for 2 s) past a 3 s `long_transaction` threshold: the
/// advice appears while it is open; an autocommit statement as long is not a long transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_transaction_fires_while_the_transaction_is_open() {
    let proxy =
        start_proxy_with(shared_cluster(), |s| s.advisor.transactions.long_transaction = Duration::from_secs(3)).await;
    let busy = connect_as(&proxy, "advice-long-tx").await;
    let single = connect_as(&proxy, "advice-long-single").await;
    let pid = backend_pid(&busy).await;
    let autocommit = tokio::spawn(async move { single.simple_query("select pg_sleep(3.5)").await.map(|_| single) });

    busy.simple_query("begin").await.unwrap();
    let began = Instant::now();
    let mut found = None;
    while began.elapsed() < Duration::from_millis(4500) {
        busy.simple_query("select pg_sleep(0.3)").await.unwrap();
        let long = advice_of(&proxy, "long_transaction").await;
        if let Some(a) = long.into_iter().find(|a| a["evidence"]["pid"] == pid) {
            found = Some((a, began.elapsed()));
            break;
        }
    }
    let (a, seen_after) = found.unwrap_or_else(|| panic!("no long_transaction within 4.5 s of BEGIN"));
    assert!(seen_after >= Duration::from_millis(2900), "reported after only {seen_after:?}: {a:#}");
    let e = &a["evidence"];
    let statements = strings(&e["statements"]);
    assert_eq!(statements.first().map(String::as_str), Some("BEGIN"), "{a:#}");
    assert!(statements[1..].iter().all(|s| s == "SELECT pg_sleep($1)") && statements.len() >= 2, "{a:#}");
    assert!(e["transaction_ms"].as_f64().is_some_and(|ms| ms >= 3000.0), "{a:#}");
    assert_eq!(e["application_name"], "advice-long-tx", "{a:#}");
    busy.simple_query("commit").await.unwrap();

    autocommit.await.unwrap().expect("the single statement ends");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let long = advice_of(&proxy, "long_transaction").await;
    assert_eq!(long.len(), 1, "the autocommit pg_sleep(3.5) is not a long transaction:\n{}", pretty(&long));
    let idle = advice_of(&proxy, "idle_in_transaction").await;
    assert!(idle.is_empty(), "never idle for 2 s:\n{}", pretty(&idle));
}
