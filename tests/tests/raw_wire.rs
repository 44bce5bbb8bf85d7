//! Clients that break the protocol get an ErrorResponse 08P01 and a closed connection, while a
//! healthy session beside them keeps working; and the BackendKeyData a client receives is the
//! upstream backend's own.

use std::time::Duration;

use pgvisor_tests::wire::{protocol_version, startup_packet, RawConnection};
use pgvisor_tests::{connect, eventually, shared_cluster, start_proxy, TestProxy};
use tokio_postgres::Client;

/// Sends `bytes` on a fresh connection and expects a FATAL 08P01 followed by the close.
async fn expect_protocol_violation(proxy: &TestProxy, what: &str, bytes: &[u8]) -> String {
    let mut conn = RawConnection::connect(proxy.addr()).await.unwrap();
    conn.send(bytes).await.unwrap();
    let error = conn.expect_error_then_close().await.unwrap_or_else(|e| panic!("{what}: {e:#}"));
    assert_eq!((error.severity.as_str(), error.code.as_str()), ("FATAL", "08P01"), "{what}: {error:?}");
    error.message
}

async fn assert_healthy(client: &Client, step: &str) {
    let row = client.query_one("select $1::text", &[&step]).await.unwrap_or_else(|e| panic!("{step}: {e}"));
    assert_eq!(row.get::<_, &str>(0), step);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_startup_packets_get_08p01_and_others_go_on() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let healthy = connect(&proxy.endpoint()).await.unwrap();
    assert_healthy(&healthy, "before").await;

    let message = expect_protocol_violation(&proxy, "length 3", &[0, 0, 0, 3]).await;
    assert!(message.contains("length"), "the message explains the problem: {message}");
    assert_healthy(&healthy, "after a length-3 startup packet").await;

    expect_protocol_violation(&proxy, "length 2^31-1", &[0x7f, 0xff, 0xff, 0xff]).await;
    assert_healthy(&healthy, "after a huge startup packet").await;

    let v9 = startup_packet(protocol_version(9, 9), b"user\0postgres\0\0");
    let message = expect_protocol_violation(&proxy, "protocol 9.9", &v9).await;
    assert!(!message.is_empty());
    assert_healthy(&healthy, "after an unknown protocol version").await;

    let unterminated = startup_packet(protocol_version(3, 0), b"user\0postgres");
    expect_protocol_violation(&proxy, "unterminated parameters", &unterminated).await;
    let long_ssl_request = startup_packet(80_877_103, &[0, 0, 0, 0]);
    expect_protocol_violation(&proxy, "SSLRequest of length 12", &long_ssl_request).await;
    assert_healthy(&healthy, "after bad startup packets").await;
    assert_eq!(proxy.counter(|s| &s.client_protocol_errors), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_message_length_after_login_gets_08p01_and_closes_its_upstream() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let healthy = connect(&proxy.endpoint()).await.unwrap();
    let observer = connect(&cluster.endpoint()).await.unwrap();
    let endpoint = proxy.endpoint();
    let password = endpoint.password.as_deref().unwrap();

    for (what, frame) in [
        ("Query with length 2", &b"Q\0\0\0\x02"[..]),
        ("Sync with length 0", &b"S\0\0\0\0"[..]),
        ("Query with length 2^31-1", &b"Q\x7f\xff\xff\xff"[..]),
    ] {
        let (mut conn, key) =
            RawConnection::login(proxy.addr(), &endpoint.user, password, &endpoint.dbname).await.unwrap();
        assert_eq!(conn.simple_query("select 41 + 1").await.unwrap(), vec![vec![Some("42".to_string())]]);
        conn.send(frame).await.unwrap();
        let error = conn.expect_error_then_close().await.unwrap_or_else(|e| panic!("{what}: {e:#}"));
        assert_eq!((error.severity.as_str(), error.code.as_str()), ("FATAL", "08P01"), "{what}: {error:?}");
        assert_healthy(&healthy, what).await;
        // The broken session's backend goes away with it.
        let gone = eventually(Duration::from_secs(5), || async {
            let n: i64 = observer
                .query_one("select count(*) from pg_stat_activity where pid = $1", &[&key.pid])
                .await
                .ok()?
                .get(0);
            (n == 0).then_some(())
        })
        .await;
        assert!(gone.is_some(), "{what}: backend {} still there", key.pid);
    }
    assert_eq!(proxy.counter(|s| &s.client_protocol_errors), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_key_data_carries_the_upstream_backend_pid() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let endpoint = proxy.endpoint();
    let password = endpoint.password.as_deref().unwrap();
    let (mut conn, key) = RawConnection::login(proxy.addr(), &endpoint.user, password, &endpoint.dbname).await.unwrap();
    let rows = conn.simple_query("select pg_backend_pid()").await.unwrap();
    assert_eq!(rows, vec![vec![Some(key.pid.to_string())]], "pg_backend_pid() is the pid in BackendKeyData");
}

/// Sends `sql` as a simple Query, shuts down the sending side (a TCP half-close, no Terminate)
/// and reads everything until the server closes: the tags of the messages and the DataRows.
async fn query_then_half_close(endpoint: &pgvisor_tests::Endpoint, sql: &str) -> (String, Vec<Vec<Option<String>>>) {
    let addr = endpoint.address().parse().expect("a socket address");
    let password = endpoint.password.as_deref().unwrap_or_default();
    let (mut conn, _) = RawConnection::login(addr, &endpoint.user, password, &endpoint.dbname).await.unwrap();
    // The test cluster checks for closed clients every 200 ms, which would cancel the query
    // the moment the half-close arrives: not in this session.
    conn.simple_query("set client_connection_check_interval = 0").await.unwrap();
    let mut out = bytes::BytesMut::new();
    postgres_protocol::message::frontend::query(sql, &mut out).unwrap();
    conn.send(&out).await.unwrap();
    conn.shutdown_write().await.unwrap();
    let (mut tags, mut rows) = (String::new(), Vec::new());
    while let Some(message) = conn.read_message().await.unwrap() {
        tags.push(message.tag as char);
        if message.tag == b'D' {
            rows.push(pgvisor_tests::wire::data_row(&message.body).unwrap());
        }
    }
    (tags, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_after_its_query_still_gets_the_results() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    // Long enough that the server is still working when the half-close arrives.
    let sql = "select pg_sleep(0.5)::text || 'x' union all select '42'";
    let direct = query_then_half_close(&cluster.endpoint(), sql).await;
    assert_eq!(direct.0, "TDDCZ", "PostgreSQL answers, then closes: {direct:?}");
    let proxied = query_then_half_close(&proxy.endpoint(), sql).await;
    assert_eq!(proxied, direct, "through pgvisor as directly");
    // The session was observed to its end, and its statement counted.
    let healthy = connect(&proxy.endpoint()).await.unwrap();
    assert_healthy(&healthy, "after a half-closed session").await;
    let stats = eventually(Duration::from_secs(5), || async {
        let body = proxy.admin_get("/api/queries").await;
        let listed = body.to_string();
        listed.contains("pg_sleep").then_some(listed)
    })
    .await;
    assert!(stats.is_some(), "the half-closed session's statement is in /api/queries");
}

/// The `/metrics` line of observation bound `limit`.
async fn limit_line(proxy: &TestProxy, limit: &str) -> String {
    let metrics = pgvisor::cli::report::http_get(proxy.admin_addr(), "/metrics", None).await.unwrap();
    let series = format!("pgvisor_observation_limits_total{{limit=\"{limit}\"}} ");
    metrics.lines().find(|l| l.starts_with(&series)).unwrap_or_else(|| panic!("no {series} in:\n{metrics}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_of_more_statements_than_the_observer_times_are_answered_whole_and_counted() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    assert!(limit_line(&proxy, "query_statements").await.ends_with(" 0"), "no session has reached it yet");
    let endpoint = proxy.endpoint();
    let password = endpoint.password.as_deref().unwrap_or_default();
    let (mut conn, _) = RawConnection::login(proxy.addr(), &endpoint.user, password, &endpoint.dbname).await.unwrap();
    // Two Queries in one write: 11,001 statements await their results at once, past the
    // observer's 10,000. The first starts with a sleep, so the server is still at it when the
    // second has been read and observed, however slowly the proxy reads on a busy machine.
    let mut out = bytes::BytesMut::new();
    for sql in [format!("select pg_sleep(0.5);{}", "select;".repeat(9_000)), "select;".repeat(2_000)] {
        postgres_protocol::message::frontend::query(&sql, &mut out).unwrap();
    }
    conn.send(&out).await.unwrap();
    let (mut completed, mut ready) = (0, 0);
    while ready < 2 {
        let message = conn.read_message().await.unwrap().expect("the session stays open");
        match message.tag {
            b'C' => completed += 1,
            b'Z' => ready += 1,
            b'E' => panic!("{:?}", pgvisor_tests::wire::ErrorFields::parse(&message.body)),
            _ => {}
        }
    }
    assert_eq!(completed, 11_001, "every statement is forwarded and answered");
    let counted = eventually(Duration::from_secs(5), || async {
        let line = limit_line(&proxy, "query_statements").await;
        line.ends_with(" 1").then_some(line)
    })
    .await;
    assert!(counted.is_some(), "the Query cut short is counted: {}", limit_line(&proxy, "query_statements").await);
    for other in ["pending_requests", "prepared_statements", "portals"] {
        assert!(limit_line(&proxy, other).await.ends_with(" 0"), "{other}");
    }
    assert_eq!(conn.simple_query("select 'after'").await.unwrap(), vec![vec![Some("after".to_string())]]);
}
