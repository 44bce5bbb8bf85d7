//! Proxy-wide counters, updated with relaxed atomics from every session.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use advisor::events::{PlanOutcome, SkipReason};
use advisor::sync::OwnLine;

/// Counters of what went through the proxy since start.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    /// Client connections accepted.
    pub connections_total: AtomicU64,
    /// Client connections open now.
    pub connections_active: AtomicU64,
    /// Bytes and messages forwarded: counted on every chunk, by every forwarding loop.
    pub traffic: Traffic,
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

/// What the relays count on every chunk. Each thread adds to a lane of its own (a cache line no
/// other forwarding loop writes), and a reader sums the lanes: with one counter shared by all,
/// every chunk would take the line from the CPU of the loop that counted last.
#[derive(Debug, Default)]
pub struct Traffic {
    lanes: [OwnLine<TrafficLane>; LANES],
}

/// Lanes of [`Traffic`]: more than the forwarding loops of the default `--threads` (at most 4),
/// so every loop has one to itself; with more loops, some share one.
const LANES: usize = 8;

/// One thread's share of [`Traffic`].
#[derive(Debug, Default)]
struct TrafficLane {
    bytes_to_upstream: AtomicU64,
    bytes_to_client: AtomicU64,
    frontend_messages: AtomicU64,
    backend_messages: AtomicU64,
}

/// Which of [`Traffic`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Bytes forwarded from clients to the upstream.
    BytesToUpstream,
    /// Bytes forwarded from the upstream to clients.
    BytesToClient,
    /// Messages clients sent after the startup phase.
    FrontendMessages,
    /// Messages the upstream sent.
    BackendMessages,
}

impl TrafficLane {
    fn counter(&self, flow: Flow) -> &AtomicU64 {
        match flow {
            Flow::BytesToUpstream => &self.bytes_to_upstream,
            Flow::BytesToClient => &self.bytes_to_client,
            Flow::FrontendMessages => &self.frontend_messages,
            Flow::BackendMessages => &self.backend_messages,
        }
    }
}

impl Traffic {
    /// Adds `n` to `flow`, in the calling thread's lane.
    #[inline]
    pub fn add(&self, flow: Flow, n: u64) {
        if n == 0 {
            return;
        }
        let lane = self.lanes.get(this_threads_lane()).unwrap_or(&self.lanes[0]);
        lane.counter(flow).fetch_add(n, Ordering::Relaxed);
    }

    /// The total of `flow` over all lanes.
    pub fn get(&self, flow: Flow) -> u64 {
        self.lanes.iter().fold(0u64, |sum, lane| sum.wrapping_add(lane.counter(flow).load(Ordering::Relaxed)))
    }
}

/// The calling thread's lane: threads take lanes in turn, the first time they count.
fn this_threads_lane() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static LANE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % LANES;
    }
    LANE.try_with(|lane| *lane).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_sums_every_threads_lane() {
        let traffic = std::sync::Arc::new(Traffic::default());
        let threads: Vec<_> = (0..LANES as u64 + 3)
            .map(|i| {
                let traffic = traffic.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        traffic.add(Flow::BytesToClient, i + 1);
                        traffic.add(Flow::FrontendMessages, 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = LANES as u64 + 3;
        assert_eq!(traffic.get(Flow::BytesToClient), 100 * n * (n + 1) / 2);
        assert_eq!(traffic.get(Flow::FrontendMessages), 100 * n);
        assert_eq!(traffic.get(Flow::BytesToUpstream), 0);
        assert_eq!(traffic.get(Flow::BackendMessages), 0);
    }
}
