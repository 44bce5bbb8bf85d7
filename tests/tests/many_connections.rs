//! 200 clients connected through pgvisor at once, each with its own upstream backend.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::try_join_all;
use pgvisor_tests::{connect, connect_config, eventually, shared_cluster, start_proxy, unique_name};

const CLIENTS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_connections_each_run_a_query() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let app = unique_name("many");
    // Authentication is not the subject here, and 200 SCRAM logins cost ~16 s of client CPU in
    // a debug build; scram_auth.rs covers SCRAM through the proxy.
    let login = cluster.trusted_role("many_clients").await;
    let mut config = login.at(&proxy.addr().ip().to_string(), proxy.addr().port()).config();
    config.application_name(&app).connect_timeout(Duration::from_secs(60));

    let sessions = try_join_all((0..CLIENTS as i32).map(|i| {
        let config = config.clone();
        async move {
            let client = connect_config(&config).await?;
            let row = client.query_one("select pg_backend_pid(), $1::int * 2", &[&i]).await?;
            assert_eq!(row.get::<_, i32>(1), i * 2);
            Ok::<_, tokio_postgres::Error>((client, row.get::<_, i32>(0)))
        }
    }))
    .await
    .expect("every client connects and queries");

    let pids: HashSet<i32> = sessions.iter().map(|(_, pid)| *pid).collect();
    assert_eq!(pids.len(), CLIENTS, "one upstream backend per client (session mode)");
    let direct = connect(&cluster.endpoint()).await.unwrap();
    let open: i64 = direct
        .query_one("select count(*) from pg_stat_activity where application_name = $1", &[&app])
        .await
        .unwrap()
        .get(0);
    assert_eq!(open as usize, CLIENTS);
    assert_eq!(proxy.counter(|s| &s.connections_active), CLIENTS as u64);

    // Every session still answers while all are open.
    try_join_all(sessions.iter().map(|(client, pid)| async move {
        let again: i32 = client.query_one("select pg_backend_pid()", &[]).await?.get(0);
        assert_eq!(again, *pid);
        Ok::<_, tokio_postgres::Error>(())
    }))
    .await
    .unwrap();

    drop(sessions);
    let closed = eventually(Duration::from_secs(10), || async {
        (pgvisor::counters::ProxyCounters::get(&proxy.stats().connections_active) == 0).then_some(())
    })
    .await;
    assert!(closed.is_some(), "sessions stay open after their clients left");
    assert_eq!(proxy.counter(|s| &s.connections_total), CLIENTS as u64);
}
