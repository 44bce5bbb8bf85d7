//! TLS on each leg: `sslmode=require` clients through pgvisor, the upstream leg following
//! `--upstream-tls`, and SCRAM channel binding across the TLS-terminating proxy.

use pgvisor::config::{ClientTls, UpstreamTlsMode};
use pgvisor_tests::cli::psql;
use pgvisor_tests::{connect, connect_tls, shared_cluster, start_proxy, start_proxy_with};
use tokio_postgres::config::{ChannelBinding, SslMode};

const UPSTREAM_SSL: &str = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";

fn require_tls(mut config: tokio_postgres::Config, channel_binding: ChannelBinding) -> tokio_postgres::Config {
    config.ssl_mode(SslMode::Require).channel_binding(channel_binding);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_client_works_through_the_proxy() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    // tokio-postgres's default channel_binding (prefer): see channel_binding_is_declined_not_broken.
    let config = require_tls(proxy.endpoint().config(), ChannelBinding::Prefer);
    let client = connect_tls(&config).await.expect("TLS client leg");
    let row = client.query_one("select 'over tls', $1::int", &[&7i32]).await.unwrap();
    assert_eq!((row.get::<_, &str>(0), row.get::<_, i32>(1)), ("over tls", 7));

    // A proxy with client TLS off answers SSLRequest with 'N': sslmode=require must refuse it.
    let plain = start_proxy_with(cluster, |s| s.client_tls = ClientTls::Off).await;
    let config = require_tls(plain.endpoint().config(), ChannelBinding::Disable);
    assert!(connect_tls(&config).await.is_err(), "sslmode=require accepted a proxy without TLS");
    let out = psql(&plain.endpoint(), &["-c", "select 1"], None, &std::env::temp_dir()).await;
    assert_eq!(out.code(), 2);
    assert!(out.stderr.contains("server does not support SSL"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_leg_follows_the_upstream_tls_mode() {
    let cluster = shared_cluster();
    for (mode, expected) in
        [(UpstreamTlsMode::Require, true), (UpstreamTlsMode::Prefer, true), (UpstreamTlsMode::Disable, false)]
    {
        let proxy = start_proxy_with(cluster, |s| s.upstream_tls = mode).await;
        let client = connect(&proxy.endpoint()).await.unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let ssl: bool = client.query_one(UPSTREAM_SSL, &[]).await.unwrap().get(0);
        assert_eq!(ssl, expected, "upstream TLS with {mode:?}");
    }
}

/// psql (libpq) with `sslmode=require channel_binding=<mode>` and the harness's libpq settings.
async fn psql_login(endpoint: &pgvisor_tests::Endpoint, channel_binding: &str) -> pgvisor_tests::cli::CliOutput {
    let conninfo = format!("sslmode=require channel_binding={channel_binding}");
    psql(endpoint, &["-A", "-t", "-c", UPSTREAM_SSL, &conninfo], None, &std::env::temp_dir()).await
}

// libpq, not tokio-postgres, for channel binding: tokio-postgres-rustls 0.13 never offers it
// (it parses the certificate as a TBSCertificate, which fails), so it always logs in unbound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_binding_is_declined_not_broken() {
    let cluster = shared_cluster();
    // Directly, the server offers SCRAM-SHA-256-PLUS and binding to its certificate succeeds.
    let direct = psql_login(&cluster.endpoint(), "require").await;
    assert_eq!((direct.code(), direct.stdout.as_str()), (0, "t\n"), "{}", direct.stderr);
    // Through the proxy the client's TLS session ends at pgvisor, so binding cannot be required.
    let proxy = start_proxy(cluster).await;
    let required = psql_login(&proxy.endpoint(), "require").await;
    assert_eq!(required.code(), 2, "channel_binding=require cannot work through the proxy");
    assert!(required.stderr.contains("channel binding"), "{}", required.stderr);
    // With TLS only on the client leg the server cannot bind either, so 'prefer' logs in.
    let plain_upstream = start_proxy_with(cluster, |s| s.upstream_tls = UpstreamTlsMode::Disable).await;
    let preferred = psql_login(&plain_upstream.endpoint(), "prefer").await;
    assert_eq!((preferred.code(), preferred.stdout.as_str()), (0, "f\n"), "{}", preferred.stderr);
}

/// libpq defaults to `channel_binding=prefer`. Over TLS, when the server does not offer
/// SCRAM-SHA-256-PLUS, it sends the gs2 flag 'y' ("I could bind, but you did not offer it"), and
/// an upstream that does support binding on its own TLS leg refuses that as a downgrade. Binding
/// hashes the certificate the client sees, so it works end to end when pgvisor presents the
/// server's own certificate: pgvisor then passes SCRAM-SHA-256-PLUS through untouched, and both
/// libpq's default and `channel_binding=require` log in over TLS on both legs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_binding_works_end_to_end_with_the_servers_certificate() {
    let cluster = shared_cluster();
    let (cert, key) = cluster.tls_files();
    let proxy = start_proxy_with(cluster, |s| s.client_tls = ClientTls::Files { cert, key }).await;
    for mode in ["prefer", "require"] {
        let out = psql_login(&proxy.endpoint(), mode).await;
        assert_eq!((out.code(), out.stdout.as_str()), (0, "t\n"), "channel_binding={mode}: {}", out.stderr);
    }
}
