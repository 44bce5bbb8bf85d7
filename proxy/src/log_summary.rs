//! The periodic one-line traffic summary in the log.

use std::sync::Arc;
use std::time::Duration;

use advisor::engine::Advisor;
use advisor::stats::SortBy;
use tracing::info;

use crate::counters::ProxyCounters;

/// Logs a summary every `interval` while there was traffic since the last one.
pub async fn log_periodically(advisor: Arc<Advisor>, counters: Arc<ProxyCounters>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    let mut last = 0;
    loop {
        ticker.tick().await;
        let recorded = advisor.stats.recorded();
        if recorded == last {
            continue;
        }
        let top = advisor.stats.top(SortBy::Total, 1);
        let (top_fp, top_text, top_mean) = top
            .first()
            .map(|(fp, s)| (fp.to_string(), truncate(&s.text, 80), s.mean_us() / 1000.0))
            .unwrap_or_default();
        info!(
            statements = recorded - last,
            sessions = ProxyCounters::get(&counters.connections_active),
            fingerprints = advisor.stats.len(),
            dropped_events = advisor.events.dropped(),
            top_fingerprint = %top_fp,
            top_query = %top_text,
            top_mean_ms = format!("{top_mean:.3}"),
            "traffic summary"
        );
        last = recorded;
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}
