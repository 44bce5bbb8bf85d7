//! The upstream going away: sessions on a restarted server fail, new sessions through the same
//! proxy work once it is back, and while it is down clients get 08006 naming the upstream.

use std::time::Duration;

use pgvisor_tests::{connect, sqlstate, start_proxy_with, Cluster};
use tokio::task::block_in_place;

fn dedicated_cluster() -> Cluster {
    block_in_place(Cluster::start).expect("start a dedicated cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_sessions_work_after_an_upstream_restart() {
    let mut cluster = dedicated_cluster();
    let proxy = start_proxy_with(&cluster, |s| s.connect_timeout = Duration::from_secs(2)).await;
    let before = connect(&proxy.endpoint()).await.unwrap();
    let pid_before: i32 = before.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);

    block_in_place(|| cluster.restart()).expect("restart the upstream");

    // The old session's backend is gone: its client sees an error, not a hang.
    let err = tokio::time::timeout(Duration::from_secs(10), before.simple_query("select 1"))
        .await
        .expect("the old session answers in time")
        .expect_err("the old session cannot survive the restart");
    assert!(before.is_closed(), "the old session is closed: {err}");

    // A new client through the same proxy works, on a new backend.
    let after = connect(&proxy.endpoint()).await.expect("a new session after the restart");
    let pid_after: i32 = after.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_ne!(pid_after, pid_before);
    assert_eq!(proxy.counter(|s| &s.upstream_connect_errors), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_gives_08006_naming_the_upstream_and_the_proxy_keeps_listening() {
    let mut cluster = dedicated_cluster();
    let upstream = cluster.endpoint().address();
    let proxy = start_proxy_with(&cluster, |s| s.connect_timeout = Duration::from_secs(2)).await;
    connect(&proxy.endpoint()).await.expect("works while the upstream is up");

    block_in_place(|| cluster.stop());
    for attempt in 1..=3 {
        let err = connect(&proxy.endpoint()).await.expect_err("no session while the upstream is down");
        assert_eq!(sqlstate(&err), Some("08006"), "attempt {attempt}: {err}");
        let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
        assert!(message.contains(&upstream), "attempt {attempt}: the message names {upstream}: {message}");
    }
    assert_eq!(proxy.counter(|s| &s.upstream_connect_errors), 3);

    block_in_place(|| cluster.restart()).expect("start the upstream again");
    let client = connect(&proxy.endpoint()).await.expect("new sessions work once the upstream is back");
    client.simple_query("select 1").await.unwrap();
}
