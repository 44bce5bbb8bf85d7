//! A client that disappears in the middle of a query takes its upstream backend with it, as it
//! would directly (the cluster runs with client_connection_check_interval = 200ms).

use std::time::{Duration, Instant};

use pgvisor_tests::{connect, eventually, shared_cluster, start_proxy, unique_name, Endpoint};
use tokio_postgres::{Client, NoTls};

/// Starts `select pg_sleep(30)` from `endpoint`, waits until the backend runs it, then drops the
/// client's socket; returns how long the backend took to disappear, or `None` if it stayed.
async fn backend_lifetime_after_client_vanishes(endpoint: &Endpoint, observer: &Client) -> Option<Duration> {
    let app = unique_name("gone");
    let mut config = endpoint.config();
    config.application_name(&app);
    let (client, connection) = config.connect(NoTls).await.expect("connect");
    let connection = tokio::spawn(connection);
    let query = tokio::spawn(async move { client.simple_query("select pg_sleep(30)").await });

    let pid = eventually(Duration::from_secs(5), || async {
        let row = observer
            .query_opt(
                "select pid from pg_stat_activity where application_name = $1 and state = 'active' and query like '%pg_sleep%'",
                &[&app],
            )
            .await
            .ok()??;
        Some(row.get::<_, i32>(0))
    })
    .await
    .expect("the query starts");

    // Dropping the connection future closes the socket; the client never sends Terminate.
    connection.abort();
    query.abort();
    let vanished = Instant::now();
    eventually(Duration::from_secs(10), || async {
        let n: i64 =
            observer.query_one("select count(*) from pg_stat_activity where pid = $1", &[&pid]).await.ok()?.get(0);
        (n == 0).then(|| vanished.elapsed())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_mid_query_ends_its_upstream_backend() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let observer = connect(&cluster.endpoint()).await.unwrap();

    let direct = backend_lifetime_after_client_vanishes(&cluster.endpoint(), &observer).await;
    let direct = direct.expect("directly, PostgreSQL ends the backend of a vanished client");
    let proxied = backend_lifetime_after_client_vanishes(&proxy.endpoint(), &observer).await;
    let proxied = proxied.expect("through the proxy, the backend of a vanished client must end too");
    eprintln!("backend gone after the client vanished: direct {direct:?}, proxied {proxied:?}");
    assert!(proxied < Duration::from_secs(5), "took {proxied:?}");

    let idle = eventually(Duration::from_secs(5), || async {
        (pgvisor::counters::ProxyCounters::get(&proxy.stats().connections_active) == 0).then_some(())
    })
    .await;
    assert!(idle.is_some(), "the proxy still counts the vanished session as open");
}
