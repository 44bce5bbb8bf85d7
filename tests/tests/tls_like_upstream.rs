//! By default pgvisor offers TLS to clients exactly when the upstream does: the answer to a
//! client's SSLRequest through pgvisor is the answer the server gives directly.

use std::net::SocketAddr;

use pgvisor::config::ClientTls;
use pgvisor::embedded::{EmbeddedOptions, EmbeddedPostgres};
use pgvisor_tests::{shared_cluster, start_proxy_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// SSLRequest: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// The one-byte answer to an SSLRequest at `addr`: `S` or `N`.
async fn ssl_answer(addr: SocketAddr) -> char {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&SSL_REQUEST).await.unwrap();
    tcp.read_u8().await.unwrap() as char
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_tls_gets_clients_tls_and_one_without_gets_them_plain_text() {
    // The shared cluster has TLS on.
    let cluster = shared_cluster();
    let proxy = start_proxy_with(cluster, |s| s.client_tls = ClientTls::LikeUpstream).await;
    let direct: SocketAddr = format!("127.0.0.1:{}", cluster.upstream().port).parse().unwrap();
    assert_eq!(ssl_answer(direct).await, 'S');
    assert_eq!(ssl_answer(proxy.addr()).await, 'S', "the server offers TLS, so pgvisor does");
    proxy.shutdown().await;

    // A server of its own with ssl=off, as a fresh initdb or the Docker image.
    let plain = tokio::task::spawn_blocking(|| EmbeddedPostgres::start(EmbeddedOptions::default()))
        .await
        .unwrap()
        .expect("a PostgreSQL without TLS");
    let upstream = pgvisor::config::UpstreamAddr { host: "127.0.0.1".into(), port: plain.port() };
    let settings_for = |client_tls: ClientTls| {
        let upstream = upstream.clone();
        move |s: &mut pgvisor::ProxySettings| {
            s.upstream = upstream;
            s.client_tls = client_tls;
        }
    };
    let direct: SocketAddr = format!("127.0.0.1:{}", plain.port()).parse().unwrap();
    assert_eq!(ssl_answer(direct).await, 'N');
    let like = start_proxy_with(cluster, settings_for(ClientTls::LikeUpstream)).await;
    assert_eq!(ssl_answer(like.addr()).await, 'N', "the server offers no TLS, so pgvisor does not either");
    // A plain-text client still gets through, to that server.
    let mut config = tokio_postgres::Config::new();
    config.host("127.0.0.1").port(like.addr().port()).user("postgres").dbname("postgres");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.expect("plain text through pgvisor");
    tokio::spawn(connection);
    let row = client.query_one("select current_setting('ssl')", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "off");
    like.shutdown().await;
    // --tls offers it anyway.
    let forced = start_proxy_with(cluster, settings_for(ClientTls::SelfSigned)).await;
    assert_eq!(ssl_answer(forced.addr()).await, 'S');
    forced.shutdown().await;
    drop(plain);
}
