//! Per-session memory is bounded and small: idle sessions that have each run a few statements
//! add at most 24 KiB of resident memory each to the pgvisor process (1,000 sessions: 24 MiB).
//! Measured with a plain-text upstream leg: TLS on it adds rustls' buffers (about 9 KiB a
//! session, measured the same way), which is the price of encryption, not of analysis.

use std::time::Duration;

use futures_util::future::try_join_all;
use pgvisor_tests::binary::PgvisorProcess;
use pgvisor_tests::{connect_config, shared_cluster};

/// Most resident memory one idle session may add.
const PER_SESSION_LIMIT: u64 = 24 * 1024;

fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_add_at_most_24_kib_each() {
    let cluster = shared_cluster();
    let login = cluster.trusted_role("memory_clients").await;
    let upstream = format!("127.0.0.1:{}", cluster.upstream().port);
    let mut pgvisor = PgvisorProcess::spawn(&[
        "--upstream",
        &upstream,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--upstream-tls",
        "disable",
    ]);
    let listen: std::net::SocketAddr =
        pgvisor.wait_for_log(Duration::from_secs(30), |e| e["listen"].as_str().and_then(|a| a.parse().ok())).await;
    let mut config = login.at(&listen.ip().to_string(), listen.port()).config();
    config.connect_timeout(Duration::from_secs(60));

    // Each session logs in and runs a simple and a prepared statement with a small result, so its
    // observer, buffers and caches are in use, then stays idle.
    let open = |n: usize| {
        let config = config.clone();
        async move {
            try_join_all((0..n).map(|i| {
                let config = config.clone();
                async move {
                    let client = connect_config(&config).await?;
                    client.simple_query("select 1, 'x'").await?;
                    client.query("select $1::int + 1, repeat('y', 100)", &[&(i as i32)]).await?;
                    Ok::<_, tokio_postgres::Error>(client)
                }
            }))
            .await
            .expect("every client connects and queries")
        }
    };
    let warm = open(20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_bytes(pgvisor.pid().as_raw());
    let idle = open(200).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss_bytes(pgvisor.pid().as_raw());
    let per_session = after.saturating_sub(before) / 200;
    eprintln!("RSS {before} -> {after} bytes: {per_session} bytes per idle session");
    assert!(
        per_session <= PER_SESSION_LIMIT,
        "each idle session adds {per_session} bytes of RSS, over the {PER_SESSION_LIMIT} limit"
    );
    drop((warm, idle));
}
