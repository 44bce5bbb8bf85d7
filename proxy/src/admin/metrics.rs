//! `GET /metrics`: Prometheus text from the `metrics` crate's exporter, with a recorder owned by
//! this admin server (no global recorder, so several proxies can live in one process). Every
//! series is described once, so each has its `# HELP` line next to its `# TYPE`.

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics::{counter, describe_counter, describe_gauge, gauge, with_local_recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use advisor::advice::{Kind, Severity};
use advisor::stats::{FingerprintSummary, SortBy};
use advisor::Fingerprint;

use super::AdminState;
use crate::counters::{Flow, ProxyCounters};

/// Fingerprints that get per-query latency series (by total time).
const TOP_FINGERPRINTS: usize = 20;

/// Counters and their `# HELP` text (docs/admin-api.md has the same table).
const COUNTERS: [(&str, &str); 16] = [
    ("pgvisor_connections_total", "Client connections accepted."),
    ("pgvisor_bytes_to_upstream_total", "Bytes forwarded from clients to PostgreSQL."),
    ("pgvisor_bytes_to_client_total", "Bytes forwarded from PostgreSQL to clients."),
    ("pgvisor_frontend_messages_total", "Protocol messages framed from clients."),
    ("pgvisor_backend_messages_total", "Protocol messages framed from PostgreSQL."),
    ("pgvisor_client_protocol_errors_total", "Sessions closed for malformed client input."),
    ("pgvisor_upstream_connect_errors_total", "Failed connections to PostgreSQL."),
    ("pgvisor_cancel_requests_total", "CancelRequests forwarded."),
    ("pgvisor_observed_inline_total", "Times a session's observation backlog was full (the observation thread far behind) and its relay observed it on the forwarding thread."),
    ("pgvisor_inspector_explains_total", "The Inspector's EXPLAINs for missing_index, by outcome."),
    ("pgvisor_statements_total", "Statement executions recorded."),
    ("pgvisor_events_dropped_total", "Observations dropped because the analysis fell behind (forwarding never waits)."),
    ("pgvisor_results_dropped_total", "Sampled results not sent with their statements because the analysis fell behind (the statements are still counted)."),
    ("pgvisor_observation_limits_total", "Times a session reached a bound of its observation and forgot or skipped something, by bound (docs/trust.md); forwarding is unaffected."),
    ("pgvisor_analysis_failures_total", "Failures contained in analysis, by stage; forwarding never stops."),
    ("pgvisor_fingerprints_evicted_total", "Fingerprints evicted to stay under --max-fingerprints."),
];

/// Gauges and their `# HELP` text.
const GAUGES: [(&str, &str); 4] = [
    ("pgvisor_connections_active", "Client connections open now."),
    ("pgvisor_fingerprints_tracked", "Fingerprints tracked now."),
    ("pgvisor_sessions_observed", "Sessions observed now."),
    (
        ADVICE,
        "Findings listed by /api/advice now (dismissed ones excluded), by kind and severity; \
         a gauge: it falls on reset and eviction.",
    ),
];

/// Findings by kind and severity: every pair of the fixed enums is a series, zeros included.
const ADVICE: &str = "pgvisor_advice_total";

/// A recorder and the handle that renders it.
pub(crate) struct Exporter {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Exporter {
    pub(crate) fn new() -> Self {
        // Series not refreshed for a while disappear (every series here is set on each render;
        // the per-fingerprint ones are written apart: `top_fingerprints`).
        let recorder = PrometheusBuilder::new()
            .idle_timeout(metrics_util::MetricKindMask::ALL, Some(std::time::Duration::from_secs(2)))
            .build_recorder();
        with_local_recorder(&recorder, || {
            for (name, help) in COUNTERS {
                describe_counter!(name, help);
            }
            for (name, help) in GAUGES {
                describe_gauge!(name, help);
            }
        });
        let handle = recorder.handle();
        Self { recorder, handle }
    }
}

fn total(name: &'static str, value: &AtomicU64) {
    counter!(name).absolute(ProxyCounters::get(value));
}

pub(crate) async fn render(State(state): State<AdminState>) -> impl IntoResponse {
    let s = &state.stats;
    let advisor = &state.advisor;
    with_local_recorder(&state.metrics.recorder, || {
        total("pgvisor_connections_total", &s.connections_total);
        gauge!("pgvisor_connections_active").set(ProxyCounters::get(&s.connections_active) as f64);
        for (name, flow) in [
            ("pgvisor_bytes_to_upstream_total", Flow::BytesToUpstream),
            ("pgvisor_bytes_to_client_total", Flow::BytesToClient),
            ("pgvisor_frontend_messages_total", Flow::FrontendMessages),
            ("pgvisor_backend_messages_total", Flow::BackendMessages),
        ] {
            counter!(name).absolute(s.traffic.get(flow));
        }
        total("pgvisor_client_protocol_errors_total", &s.client_protocol_errors);
        total("pgvisor_upstream_connect_errors_total", &s.upstream_connect_errors);
        total("pgvisor_cancel_requests_total", &s.cancel_requests);
        total("pgvisor_observed_inline_total", &s.observed_inline);
        for (outcome, value) in s.inspector_explains.by_label() {
            counter!("pgvisor_inspector_explains_total", "outcome" => outcome).absolute(ProxyCounters::get(value));
        }
        counter!("pgvisor_statements_total").absolute(advisor.stats.recorded());
        counter!("pgvisor_events_dropped_total").absolute(advisor.events.dropped());
        counter!("pgvisor_results_dropped_total").absolute(advisor.events.results_dropped());
        for limit in advisor::limits::Limit::ALL {
            counter!("pgvisor_observation_limits_total", "limit" => limit.as_str())
                .absolute(advisor.events.limits().reached(limit));
        }
        for stage in advisor::health::Stage::ALL {
            counter!("pgvisor_analysis_failures_total", "stage" => stage.as_str())
                .absolute(advisor.health.failures(stage));
        }
        counter!("pgvisor_fingerprints_evicted_total").absolute(advisor.stats.evicted());
        gauge!("pgvisor_fingerprints_tracked").set(advisor.stats.len() as f64);
        gauge!("pgvisor_sessions_observed").set(advisor.sessions.len() as f64);
        let mut advice = [[0u64; Severity::ALL.len()]; Kind::ALL.len()];
        for a in advisor.advice.list() {
            let kind = Kind::ALL.iter().position(|k| *k == a.kind);
            let severity = Severity::ALL.iter().position(|s| *s == a.severity);
            if let (Some(k), Some(s)) = (kind, severity) {
                advice[k][s] += 1;
            }
        }
        for (kind, counts) in Kind::ALL.iter().zip(advice) {
            for (severity, n) in Severity::ALL.iter().zip(counts) {
                gauge!(ADVICE, "kind" => kind.as_str(), "severity" => severity.as_str()).set(n as f64);
            }
        }
    });
    let mut text = state.metrics.handle.render();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    top_fingerprints(&mut text, &advisor.stats.top(SortBy::Total, TOP_FINGERPRINTS));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// The per-fingerprint series of the top fingerprints by total time, written as they are now:
/// a reset or a fingerprint leaving the top takes its series away at once (the exporter's
/// counters would keep their highest value), and the latency is a Prometheus summary
/// (quantiles, `_sum` and `_count`), which the exporter cannot make from quantiles computed
/// elsewhere.
fn top_fingerprints(out: &mut String, top: &[(Fingerprint, FingerprintSummary)]) {
    use std::fmt::Write;
    let ms = |us: u64| us as f64 / 1000.0;
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(out, LATENCY, "summary", "Latency of each of the top 20 fingerprints by total time, in ms: quantiles 0.5, 0.95 and 0.99 (HDR histogram), sum and count.");
    for (fp, q) in top {
        for (quantile, us) in [("0.5", q.p50_us), ("0.95", q.p95_us), ("0.99", q.p99_us)] {
            let _ = writeln!(out, "{LATENCY}{{fingerprint=\"{fp}\",quantile=\"{quantile}\"}} {}", ms(us));
        }
        let _ = writeln!(out, "{LATENCY}_sum{{fingerprint=\"{fp}\"}} {}", ms(q.total_us));
        let _ = writeln!(out, "{LATENCY}_count{{fingerprint=\"{fp}\"}} {}", q.calls);
    }
    let series: [(&str, &str, &str, Value); 3] = [
        ("pgvisor_query_calls_total", "counter", "Calls of each of the top 20 fingerprints by total time.", |q| {
            q.calls as f64
        }),
        ("pgvisor_query_errors_total", "counter", "Errors of each of the top 20 fingerprints by total time.", |q| {
            q.errors as f64
        }),
        (
            "pgvisor_query_time_ms_total",
            "gauge",
            "Total time of each of the top 20 fingerprints by total time, in ms (as the summary's _sum).",
            |q| q.total_us as f64 / 1000.0,
        ),
    ];
    for (name, kind, help, value) in series {
        family(out, name, kind, help);
        for (fp, q) in top {
            let _ = writeln!(out, "{name}{{fingerprint=\"{fp}\"}} {}", value(q));
        }
    }
}

/// The per-fingerprint latency summary.
const LATENCY: &str = "pgvisor_query_latency_ms";

/// A per-fingerprint series' value, read from the fingerprint's statistics.
type Value = fn(&FingerprintSummary) -> f64;
