//! In-process pgvisor proxies on `127.0.0.1:0`, each in front of a cluster, running on the
//! calling test's tokio runtime.

use pgvisor::counters::ProxyCounters;
use pgvisor::{Proxy, ProxyHandle, ProxySettings};

use crate::cluster::Cluster;
use crate::endpoint::Endpoint;

/// A running proxy and the login that reaches the cluster through it.
pub struct TestProxy {
    handle: ProxyHandle,
    endpoint: Endpoint,
}

/// Starts a proxy with the test defaults (self-signed client TLS, upstream TLS preferred) in
/// front of `cluster`.
pub async fn start_proxy(cluster: &Cluster) -> TestProxy {
    start_proxy_with(cluster, |_| {}).await
}

/// Starts a proxy in front of `cluster` after `adjust` has changed the test defaults.
pub async fn start_proxy_with(cluster: &Cluster, adjust: impl FnOnce(&mut ProxySettings)) -> TestProxy {
    let mut settings = ProxySettings::for_upstream(cluster.upstream());
    settings.admin = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    adjust(&mut settings);
    let handle = Proxy::bind(settings).await.unwrap_or_else(|e| panic!("cannot start the proxy: {e}")).spawn();
    let addr = handle.addr();
    let endpoint = cluster.endpoint().at(&addr.ip().to_string(), addr.port());
    TestProxy { handle, endpoint }
}

impl TestProxy {
    /// The cluster's superuser login, through the proxy.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.handle.addr()
    }

    /// The admin port's address (the test defaults serve one on a free loopback port).
    pub fn admin_addr(&self) -> std::net::SocketAddr {
        self.handle.admin_addr().expect("this proxy serves an admin port")
    }

    /// `GET path` on the admin port, parsed as JSON; panics unless the answer is 200.
    pub async fn admin_get(&self, path: &str) -> serde_json::Value {
        self.admin_json("GET", path).await
    }

    /// `method path` on the admin port, parsed as JSON; panics unless the answer is 200.
    pub async fn admin_json(&self, method: &str, path: &str) -> serde_json::Value {
        let body = pgvisor::cli::report::http_request(self.admin_addr(), method, path, None)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"))
    }

    /// Runs a statement with a fresh marker on `client` (a session through this proxy) and waits
    /// until `/api/queries` lists it: the engine handles events in order, so everything observed
    /// before the marker has been counted, and any advice from it recorded, by then.
    pub async fn drained_through(&self, client: &tokio_postgres::Client) {
        let marker = crate::unique_name("drained");
        client.simple_query(&format!("select {marker} from (select 1 as {marker}) s")).await.expect("marker statement");
        let seen = crate::eventually(std::time::Duration::from_secs(5), || async {
            let queries = self.admin_get("/api/queries?sort=calls&limit=100000").await;
            queries["queries"]
                .as_array()?
                .iter()
                .any(|q| q["query"].as_str().is_some_and(|t| t.contains(&marker)))
                .then_some(())
        })
        .await;
        if seen.is_none() {
            let queries = self.admin_get("/api/queries?sort=calls&limit=1000").await;
            panic!("the engine never showed the marker statement {marker}: {queries:#}");
        }
    }

    /// Statistics, sessions, advice and analysis health.
    pub fn advisor(&self) -> &advisor::engine::Advisor {
        self.handle.advisor()
    }

    /// The proxy's counters.
    pub fn stats(&self) -> &ProxyCounters {
        self.handle.stats()
    }

    /// Reads one counter, e.g. `proxy.counter(|s| &s.cancel_requests)`.
    pub fn counter(&self, pick: impl FnOnce(&ProxyCounters) -> &std::sync::atomic::AtomicU64) -> u64 {
        ProxyCounters::get(pick(self.stats()))
    }

    /// Stops accepting, lets sessions finish within the grace period, and waits for the stop.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}
