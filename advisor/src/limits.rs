//! The per-session bounds past which an observer forgets or skips something: counted (for
//! `/metrics`) and logged, at most once a minute per bound, so a session that reaches one is
//! never analysed less without a trace.
//!
//! They keep memory bounded against clients that never let go (a pool that prepares without
//! ever closing, a pipeline that never syncs, `a;a;a;...`); forwarding is never affected.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::log_limit::LogLimiter;

/// A bound of a session's observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Requests awaiting their response: past it the oldest is forgotten.
    PendingRequests,
    /// Statements of simple Queries awaiting their results: a Query split past it times only
    /// the statements within it (at least its first).
    QueryStatements,
    /// Prepared statements (count or text): past it the session forgets them all.
    PreparedStatements,
    /// Portals (count or text): past it the session forgets them all.
    Portals,
}

impl Limit {
    /// Every bound, in the order of [`ObservationLimits::reached`].
    pub const ALL: [Limit; 4] =
        [Limit::PendingRequests, Limit::QueryStatements, Limit::PreparedStatements, Limit::Portals];

    /// The bound's label in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::PendingRequests => "pending_requests",
            Limit::QueryStatements => "query_statements",
            Limit::PreparedStatements => "prepared_statements",
            Limit::Portals => "portals",
        }
    }

    /// What reaching it costs, for the log.
    fn consequence(self) -> &'static str {
        match self {
            Limit::PendingRequests => {
                "a session has 10,000 requests awaiting responses: the oldest is no longer tracked, \
                 so its statements may be timed against the wrong requests until all it sent is answered"
            }
            Limit::QueryStatements => {
                "a session has 10,000 statements of simple Queries awaiting results: a Query split \
                 past that is timed only for the statements within them (at least its first); all of \
                 it is forwarded and answered"
            }
            Limit::PreparedStatements => {
                "a session prepared 10,000 statements (or 64 MiB of their text) without closing them: \
                 pgvisor forgot them all, so executions of those statements are not timed until they \
                 are prepared again"
            }
            Limit::Portals => {
                "a session holds 10,000 named portals (or 64 MiB of their statements' text): pgvisor \
                 forgot them all, so executions of those portals are not timed"
            }
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How many times every session together reached each bound; shared by all observers.
#[derive(Debug)]
pub struct ObservationLimits {
    reached: [AtomicU64; 4],
    /// Per bound: at most one line a minute (a session held at a bound reaches it per message).
    logged: [LogLimiter; 4],
}

impl Default for ObservationLimits {
    fn default() -> Self {
        Self { reached: Default::default(), logged: [const { LogLimiter::per_minute() }; 4] }
    }
}

impl ObservationLimits {
    /// Session `session` reached `limit`: counted, and logged unless it was in the last minute.
    pub fn reach(&self, limit: Limit, session: u64) {
        self.reached[limit.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.logged[limit.index()].allow() {
            tracing::warn!(session, limit = limit.as_str(), suppressed, "{}", limit.consequence());
        }
    }

    /// How many times `limit` was reached, by every session together.
    pub fn reached(&self, limit: Limit) -> u64 {
        self.reached[limit.index()].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reach_counts_and_labels_are_distinct() {
        let limits = ObservationLimits::default();
        for _ in 0..3 {
            limits.reach(Limit::Portals, 1);
        }
        limits.reach(Limit::PendingRequests, 2);
        assert_eq!(limits.reached(Limit::Portals), 3, "logged once, counted each time");
        assert_eq!(limits.reached(Limit::PendingRequests), 1);
        assert_eq!(limits.reached(Limit::QueryStatements), 0);
        let labels: std::collections::HashSet<_> = Limit::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(labels.len(), Limit::ALL.len());
        assert!(Limit::ALL.iter().enumerate().all(|(i, l)| l.index() == i));
    }
}
