//! Proxy-wide counters, updated with relaxed atomics from every session.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what went through the proxy since start.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub connections_total: AtomicU64,
    /// Client connections open now.
    pub connections_active: AtomicU64,
    /// Bytes forwarded from clients to the upstream.
    pub bytes_to_upstream: AtomicU64,
    /// Bytes forwarded from the upstream to clients.
    pub bytes_to_client: AtomicU64,
    /// Messages clients sent after the startup phase.
    pub frontend_messages: AtomicU64,
    /// Messages the upstream sent.
    pub backend_messages: AtomicU64,
    /// Sessions closed because a client broke the protocol.
    pub client_protocol_errors: AtomicU64,
    /// Upstream connection attempts that failed.
    pub upstream_connect_errors: AtomicU64,
    /// Cancel requests forwarded.
    pub cancel_requests: AtomicU64,
}

impl ProxyStats {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
