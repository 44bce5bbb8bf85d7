//! pgbench through pgvisor: initialisation (COPY) and 8-client runs in each query mode finish
//! with no failed transactions.

use pgvisor_tests::cli::{pgbench, CliOutput};
use pgvisor_tests::{connect, shared_cluster, start_proxy};

/// The number after `label` in pgbench's report, e.g. "number of failed transactions: 0".
fn reported(output: &CliOutput, label: &str) -> Option<u64> {
    let line = output.stdout.lines().find(|l| l.starts_with(label))?;
    line[label.len()..].split_whitespace().next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_runs_in_every_query_mode_without_failures() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let admin = connect(&cluster.endpoint()).await.unwrap();
    admin.batch_execute("create database bench").await.unwrap();
    let target = proxy.endpoint().with_dbname("bench");

    let init = pgbench(&target, &["-i", "-s", "1", "-q"]).await;
    assert_eq!(init.code(), 0, "pgbench -i failed:\n{}{}", init.stdout, init.stderr);
    let direct = connect(&cluster.endpoint().with_dbname("bench")).await.unwrap();
    let accounts: i64 = direct.query_one("select count(*) from pgbench_accounts", &[]).await.unwrap().get(0);
    assert_eq!(accounts, 100_000, "pgbench -i loaded every row through the proxy");

    for mode in ["simple", "extended", "prepared"] {
        let run = pgbench(&target, &["-M", mode, "-c", "8", "-j", "2", "-T", "3", "-n"]).await;
        let report = format!("pgbench -M {mode}:\n{}{}", run.stdout, run.stderr);
        assert_eq!(run.code(), 0, "{report}");
        assert_eq!(reported(&run, "number of failed transactions:"), Some(0), "{report}");
        let processed = reported(&run, "number of transactions actually processed:").unwrap_or(0);
        assert!(processed > 100, "only {processed} transactions: {report}");
        assert!(!run.stderr.contains("error"), "{report}");
    }
    assert_eq!(proxy.counter(|s| &s.client_protocol_errors), 0);
    assert_eq!(proxy.counter(|s| &s.upstream_connect_errors), 0);
}
