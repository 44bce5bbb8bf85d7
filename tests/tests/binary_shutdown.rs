//! The `pgvisor` binary with an embedded PostgreSQL: on SIGTERM it stops accepting, closes the
//! sessions left after the grace period, on every forwarding loop, exits, and removes the
//! embedded data directory.
//!
//! Needs the binary built (`cargo test --workspace` does; else `cargo build -p pgvisor`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use pgvisor_tests::binary::PgvisorProcess;
use pgvisor_tests::{connect_with_messages, eventually, sqlstate, Endpoint};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_closes_sessions_after_grace_and_removes_the_data_dir() {
    let mut pgvisor = PgvisorProcess::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--shutdown-grace",
        "1s",
        "--threads",
        "3",
    ]);
    let data_dir: PathBuf =
        pgvisor.wait_for_log(Duration::from_secs(60), |e| e["data_dir"].as_str().map(PathBuf::from)).await;
    let listen: SocketAddr =
        pgvisor.wait_for_log(Duration::from_secs(30), |e| e["listen"].as_str().and_then(|a| a.parse().ok())).await;
    assert!(data_dir.is_dir(), "the embedded data directory {} exists while running", data_dir.display());

    let endpoint = Endpoint {
        host: listen.ip().to_string(),
        port: listen.port(),
        user: "postgres".into(),
        password: None,
        dbname: "postgres".into(),
    };
    // Three sessions, one on each forwarding loop (a new session goes to the loop with fewest).
    let mut sessions = Vec::new();
    for i in 0..3 {
        let (client, messages) = connect_with_messages(&endpoint.config()).await.expect("connect through pgvisor");
        let got: i32 = client.query_one("select $1::int", &[&i]).await.unwrap().get(0);
        assert_eq!(got, i);
        sessions.push((client, messages));
    }
    let threads = thread_names(pgvisor.pid().as_raw());
    for name in ["pgvisor-fwd-1", "pgvisor-fwd-2"] {
        assert!(threads.iter().any(|t| t == name), "no {name} thread among {threads:?}");
    }
    assert!(!threads.iter().any(|t| t == "pgvisor-fwd-3"), "--threads 3 is three loops in all: {threads:?}");

    pgvisor.signal(Signal::SIGTERM);
    let signalled = Instant::now();

    // It stops accepting at once, while the open session keeps it alive for the grace period.
    let refused = eventually(Duration::from_millis(800), || async {
        tokio::net::TcpStream::connect(listen).await.is_err().then_some(())
    })
    .await;
    assert!(refused.is_some(), "pgvisor still accepts connections after SIGTERM");
    assert!(pgvisor.try_exit_status().is_none(), "pgvisor exited before the grace period was over");

    // After the grace period the idle sessions, whatever their loop, are closed with 57P01
    // (admin shutdown).
    for (_, messages) in &mut sessions {
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match messages.recv().await {
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Some(e),
                    None => return None,
                }
            }
        })
        .await
        .expect("every open session is closed after the grace period");
        let error = ended.expect("the session ends with an error the client can read");
        assert_eq!(sqlstate(&error), Some("57P01"), "{error}");
    }
    assert!(
        signalled.elapsed() >= Duration::from_millis(900),
        "closed before the 1 s grace: {:?}",
        signalled.elapsed()
    );

    let status = pgvisor.wait_exit(Duration::from_secs(10)).await.expect("pgvisor exits after the grace period");
    assert!(status.success(), "exit status {status}");
    eprintln!("pgvisor exited {:?} after SIGTERM", signalled.elapsed());
    assert!(!data_dir.exists(), "the embedded data directory {} is left behind", data_dir.display());
    if let Some(tempdir) = data_dir.parent() {
        assert!(!tempdir.exists(), "the embedded temp directory {} is left behind", tempdir.display());
    }
    assert!(sessions.iter().all(|(client, _)| client.is_closed()));
}

/// The names of process `pid`'s threads.
fn thread_names(pid: i32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process's threads");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}
