//! `GET /metrics` as Prometheus reads it: every series has a `# HELP` and a `# TYPE` line, and
//! `pgvisor_advice_total{kind,severity}` counts the findings `/api/advice` lists, one series per
//! kind and severity (zeros included), so its label set is fixed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use pgvisor_tests::{connect, eventually, shared_cluster, start_proxy, unique_name};

/// Series name (without labels) -> lines of that name, and the HELP and TYPE lines by name.
struct Exposition {
    samples: BTreeMap<String, Vec<String>>,
    help: BTreeMap<String, String>,
    types: BTreeMap<String, String>,
}

fn parse(text: &str) -> Exposition {
    let mut e = Exposition { samples: BTreeMap::new(), help: BTreeMap::new(), types: BTreeMap::new() };
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            e.help.insert(name.to_string(), help.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            e.types.insert(name.to_string(), kind.to_string());
        } else {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            // A summary's `_sum` and `_count` belong to its family (its HELP and TYPE).
            let family = ["_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix).filter(|base| e.types.get(*base).is_some_and(|t| t == "summary"))
                })
                .unwrap_or(name);
            e.samples.entry(family.to_string()).or_default().push(line.to_string());
        }
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_has_help_and_advice_is_counted_by_kind_and_severity() {
    let cluster = shared_cluster();
    let table = unique_name("metrics_items");
    let direct = connect(&cluster.endpoint()).await.expect("connect directly");
    direct
        .batch_execute(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, owner int NOT NULL);
             INSERT INTO {table} SELECT i, i FROM generate_series(1, 10) i;"
        ))
        .await
        .expect("create the table");
    let proxy = start_proxy(cluster).await;

    // No advice yet: every pair of kind and severity is there, at 0.
    let text = pgvisor::cli::report::http_get(proxy.admin_addr(), "/metrics", None).await.unwrap();
    let before = parse(&text);
    let advice = before.samples.get("pgvisor_advice_total").unwrap_or_else(|| panic!("no advice series:\n{text}"));
    assert_eq!(advice.len(), 14 * 3, "{advice:#?}");
    assert!(advice.iter().all(|l| l.ends_with(" 0")), "{advice:#?}");

    // An N+1 burst of 10 through pgvisor: one n_plus_one finding.
    let client = connect(&proxy.endpoint()).await.expect("connect through pgvisor");
    let parents = client.query(&format!("SELECT id FROM {table} ORDER BY id"), &[]).await.unwrap();
    let child = client.prepare(&format!("SELECT owner FROM {table} WHERE id = $1")).await.unwrap();
    for row in &parents {
        client.query(&child, &[&row.get::<_, i32>(0)]).await.unwrap();
    }
    let listed = eventually(Duration::from_secs(5), || async {
        let list = proxy.admin_get("/api/advice").await;
        let advice = list["advice"].as_array()?.clone();
        advice.iter().any(|a| a["kind"] == "n_plus_one").then_some(advice)
    })
    .await
    .expect("the N+1 burst was reported");

    let text = pgvisor::cli::report::http_get(proxy.admin_addr(), "/metrics", None).await.unwrap();
    let metrics = parse(&text);
    for (name, lines) in &metrics.samples {
        let help = metrics.help.get(name).unwrap_or_else(|| panic!("{name} has no # HELP line:\n{text}"));
        assert!(help.len() > 10, "{name}: HELP {help:?}");
        assert!(metrics.types.contains_key(name), "{name} has no # TYPE line: {lines:?}");
    }
    let expected: BTreeSet<&str> = [
        "pgvisor_connections_total",
        "pgvisor_connections_active",
        "pgvisor_statements_total",
        "pgvisor_analysis_failures_total",
        "pgvisor_observation_limits_total",
        "pgvisor_query_latency_ms",
        "pgvisor_query_calls_total",
        "pgvisor_advice_total",
    ]
    .into();
    for name in expected {
        assert!(metrics.samples.contains_key(name), "{name} missing:\n{text}");
    }
    assert_eq!(metrics.types["pgvisor_advice_total"], "gauge");
    assert_eq!(metrics.types["pgvisor_statements_total"], "counter");

    // Per-fingerprint latency is a summary: quantiles, then _sum and _count, whose count is the
    // fingerprint's calls.
    assert_eq!(metrics.types["pgvisor_query_latency_ms"], "summary");
    let latency = &metrics.samples["pgvisor_query_latency_ms"];
    let calls = &metrics.samples["pgvisor_query_calls_total"];
    for line in calls {
        let (series, n) = line.rsplit_once(' ').unwrap();
        let fingerprint = series.strip_prefix("pgvisor_query_calls_total").unwrap();
        let count = format!("pgvisor_query_latency_ms_count{fingerprint} {n}");
        assert!(latency.contains(&count), "{count} missing:\n{latency:#?}");
        let quantiles =
            latency.iter().filter(|l| l.contains(&fingerprint[..fingerprint.len() - 1]) && l.contains("quantile="));
        assert_eq!(quantiles.count(), 3, "{fingerprint}: {latency:#?}");
    }
    assert!(!calls.is_empty());

    // The traffic counters (one lane per forwarding thread, summed when read) count both ways:
    // the burst alone was 11 queries, each several messages each way.
    let value = |name: &str| -> u64 {
        let lines = metrics.samples.get(name).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        lines[0].rsplit(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("{name}: {lines:?}"))
    };
    assert!(value("pgvisor_frontend_messages_total") >= 11 * 3, "{text}");
    assert!(value("pgvisor_backend_messages_total") >= 11 * 3, "{text}");
    assert!(value("pgvisor_bytes_to_upstream_total") > value("pgvisor_frontend_messages_total") * 4, "{text}");
    assert!(value("pgvisor_bytes_to_client_total") > value("pgvisor_backend_messages_total") * 4, "{text}");

    // The advice series say what /api/advice lists, by kind and severity.
    let mut by_pair: BTreeMap<(String, String), u64> = BTreeMap::new();
    for a in &listed {
        let pair = (a["kind"].as_str().unwrap().to_string(), a["severity"].as_str().unwrap().to_string());
        *by_pair.entry(pair).or_default() += 1;
    }
    let advice = &metrics.samples["pgvisor_advice_total"];
    assert_eq!(advice.len(), 14 * 3, "the label set stays fixed");
    for ((kind, severity), n) in &by_pair {
        let line = format!("pgvisor_advice_total{{kind=\"{kind}\",severity=\"{severity}\"}} {n}");
        assert!(advice.contains(&line), "{line} missing:\n{advice:#?}");
    }
    let total: u64 = advice.iter().map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(total, listed.len() as u64, "{advice:#?}");

    // A reset empties the book, and the gauge follows.
    proxy.admin_json("POST", "/api/reset").await;
    let text = pgvisor::cli::report::http_get(proxy.admin_addr(), "/metrics", None).await.unwrap();
    let after = parse(&text);
    assert!(after.samples["pgvisor_advice_total"].iter().all(|l| l.ends_with(" 0")), "{text}");
    // The per-fingerprint series go with the statistics, not kept at their last values.
    for name in ["pgvisor_query_calls_total", "pgvisor_query_latency_ms", "pgvisor_query_time_ms_total"] {
        assert!(after.samples.get(name).is_none_or(|lines| lines.is_empty()), "{name} after reset:\n{text}");
        assert!(after.help.contains_key(name), "{name} keeps its HELP");
    }
    proxy.shutdown().await;
}
