//! `GET /metrics`: Prometheus text from the `metrics` crate's exporter, with a recorder owned by
//! this admin server (no global recorder, so several proxies can live in one process).

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics::{counter, gauge, with_local_recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use advisor::stats::SortBy;

use super::AdminState;
use crate::stats::ProxyStats;

/// Fingerprints that get per-query latency series (by total time).
const TOP_FINGERPRINTS: usize = 20;

/// A recorder and the handle that renders it.
pub(crate) struct Exporter {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Exporter {
    pub(crate) fn new() -> Self {
        // Series not refreshed for a while (fingerprints that left the top) disappear.
        let recorder = PrometheusBuilder::new()
            .idle_timeout(metrics_util::MetricKindMask::ALL, Some(std::time::Duration::from_secs(2)))
            .build_recorder();
        let handle = recorder.handle();
        Self { recorder, handle }
    }
}

fn total(name: &'static str, value: &AtomicU64) {
    counter!(name).absolute(ProxyStats::get(value));
}

pub(crate) async fn render(State(state): State<AdminState>) -> impl IntoResponse {
    let s = &state.stats;
    let advisor = &state.advisor;
    with_local_recorder(&state.metrics.recorder, || {
        total("pgvisor_connections_total", &s.connections_total);
        gauge!("pgvisor_connections_active").set(ProxyStats::get(&s.connections_active) as f64);
        total("pgvisor_bytes_to_upstream_total", &s.bytes_to_upstream);
        total("pgvisor_bytes_to_client_total", &s.bytes_to_client);
        total("pgvisor_frontend_messages_total", &s.frontend_messages);
        total("pgvisor_backend_messages_total", &s.backend_messages);
        total("pgvisor_client_protocol_errors_total", &s.client_protocol_errors);
        total("pgvisor_upstream_connect_errors_total", &s.upstream_connect_errors);
        total("pgvisor_cancel_requests_total", &s.cancel_requests);
        for (outcome, value) in s.inspector_explains.by_label() {
            counter!("pgvisor_inspector_explains_total", "outcome" => outcome).absolute(ProxyStats::get(value));
        }
        counter!("pgvisor_statements_total").absolute(advisor.stats.recorded());
        counter!("pgvisor_events_dropped_total").absolute(advisor.events.dropped());
        for stage in advisor::health::Stage::ALL {
            counter!("pgvisor_analysis_failures_total", "stage" => stage.as_str())
                .absolute(advisor.health.failures(stage));
        }
        counter!("pgvisor_fingerprints_evicted_total").absolute(advisor.stats.evicted());
        gauge!("pgvisor_fingerprints_tracked").set(advisor.stats.len() as f64);
        gauge!("pgvisor_sessions_observed").set(advisor.sessions.len() as f64);
        for (fp, q) in advisor.stats.top(SortBy::Total, TOP_FINGERPRINTS) {
            let fp = fp.to_string();
            for (label, us) in [("0.5", q.p50_us), ("0.95", q.p95_us), ("0.99", q.p99_us)] {
                gauge!("pgvisor_query_latency_ms", "fingerprint" => fp.clone(), "quantile" => label)
                    .set(us as f64 / 1000.0);
            }
            counter!("pgvisor_query_calls_total", "fingerprint" => fp.clone()).absolute(q.calls);
            counter!("pgvisor_query_errors_total", "fingerprint" => fp.clone()).absolute(q.errors);
            gauge!("pgvisor_query_time_ms_total", "fingerprint" => fp).set(q.total_us as f64 / 1000.0);
        }
    });
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.handle.render())
}
