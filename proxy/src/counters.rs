//! Proxy-wide counters, updated with relaxed atomics from every session.

use std::sync::atomic::{AtomicU64, Ordering};

use advisor::events::{PlanOutcome, SkipReason};

/// Counters of what went through the proxy since start.
#[derive(Debug, Default)]
pub struct ProxyCounters {
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
    /// Times a session's observation backlog was full and its relay observed it at once.
    pub observed_inline: AtomicU64,
    /// Cancel requests forwarded.
    pub cancel_requests: AtomicU64,
    /// The Inspector's EXPLAINs, by outcome.
    pub inspector_explains: ExplainOutcomes,
}

/// The Inspector's EXPLAINs by outcome (`pgvisor_inspector_explains_total{outcome}`).
#[derive(Debug, Default)]
pub struct ExplainOutcomes {
    /// A plan was read.
    pub explained: AtomicU64,
    /// Skipped: the Inspector cannot act as the session's role.
    pub skipped_role: AtomicU64,
    /// Skipped: PostgreSQL would not plan the statement as one statement under that role.
    pub skipped_unexplainable: AtomicU64,
    /// Failed for now (side connection down, timeout); the engine may ask again later.
    pub failed: AtomicU64,
}

impl ExplainOutcomes {
    /// Counts one EXPLAIN's outcome.
    pub fn count(&self, outcome: &PlanOutcome) {
        let counter = match outcome {
            PlanOutcome::Explained(_) => &self.explained,
            PlanOutcome::Skipped(SkipReason::RoleNotAssumable) => &self.skipped_role,
            PlanOutcome::Skipped(SkipReason::NotExplainable) => &self.skipped_unexplainable,
            PlanOutcome::Failed(_) => &self.failed,
        };
        ProxyCounters::add(counter, 1);
    }

    /// Each counter with its `outcome` label.
    pub fn by_label(&self) -> [(&'static str, &AtomicU64); 4] {
        [
            ("explained", &self.explained),
            ("skipped_role", &self.skipped_role),
            ("skipped_unexplainable", &self.skipped_unexplainable),
            ("failed", &self.failed),
        ]
    }
}

impl ProxyCounters {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
