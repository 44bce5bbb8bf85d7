//! `pgvisor demo` and `pgvisor watch` as a user runs them: the demo's output names every kind of
//! advice it promises; `watch --json` prints an N+1 burst within 2 s, says clearly when the token
//! or the address is wrong, waits for a pgvisor that is not up yet, and follows it across a restart;
//! `watch` prints a finding found again after a restart in full, and a transaction left open for a
//! minute as two blocks, two `now critical:` lines and a few `updated:` lines, not one every 3 s.
//!
//! Needs the binary built (`cargo test --workspace` does; else `cargo build -p pgvisor`).

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use pgvisor_tests::binary::{pgvisor_binary, PgvisorProcess};
use pgvisor_tests::{connect, shared_cluster, start_proxy, start_proxy_with, unique_name, Endpoint};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The kinds `pgvisor demo` shows: every kind but inspector_unavailable, which needs the
/// Inspector to fail (the demo says so).
const DEMO_KINDS: [&str; 13] = [
    "n_plus_one",
    "repeated_query",
    "select_star",
    "unbounded_result",
    "unparameterized",
    "slow_query",
    "missing_index",
    "lock_hazard_ddl",
    "error_spike",
    "lock_contention",
    "deadlock",
    "idle_in_transaction",
    "long_transaction",
];

/// A `pgvisor` subcommand with its stdout and stderr lines collected; killed when dropped.
struct Cli {
    child: Child,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
    /// Every line read so far, both streams, for failure messages.
    transcript: Vec<String>,
}

impl Cli {
    fn spawn(args: &[&str]) -> Self {
        let mut cmd = Command::new(pgvisor_binary());
        cmd.args(args).env_remove("RUST_LOG").env_remove("NO_COLOR").kill_on_drop(true);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PGVISOR_") {
                cmd.env_remove(name);
            }
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start pgvisor");
        let stdout = lines(child.stdout.take().expect("piped"));
        let stderr = lines(child.stderr.take().expect("piped"));
        Self { child, stdout, stderr, transcript: Vec::new() }
    }

    /// Waits until a stdout line satisfies `pick`; panics with the transcript after `timeout`.
    async fn stdout_line(&mut self, timeout: Duration, pick: impl FnMut(&str) -> bool) -> String {
        let found = next_matching(&mut self.stdout, &mut self.transcript, timeout, pick).await;
        found.unwrap_or_else(|| {
            panic!("no such stdout line within {timeout:?}; output:\n{}", self.transcript.join("\n"))
        })
    }

    /// Waits until a stderr line satisfies `pick`; panics with the transcript after `timeout`.
    async fn stderr_line(&mut self, timeout: Duration, pick: impl FnMut(&str) -> bool) -> String {
        let found = next_matching(&mut self.stderr, &mut self.transcript, timeout, pick).await;
        found.unwrap_or_else(|| {
            panic!("no such stderr line within {timeout:?}; output:\n{}", self.transcript.join("\n"))
        })
    }

    async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.expect("wait for pgvisor"),
            Err(_) => panic!("pgvisor did not exit within {timeout:?}; output:\n{}", self.transcript.join("\n")),
        }
    }

    /// The transcript with everything left on both streams after the process exited.
    async fn rest_of_output(&mut self) -> String {
        while let Some(line) = self.stdout.recv().await {
            self.transcript.push(line);
        }
        while let Some(line) = self.stderr.recv().await {
            self.transcript.push(line);
        }
        self.transcript.join("\n")
    }
}

fn lines(pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

async fn next_matching(
    rx: &mut mpsc::UnboundedReceiver<String>,
    transcript: &mut Vec<String>,
    timeout: Duration,
    mut pick: impl FnMut(&str) -> bool,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let line = tokio::time::timeout_at(deadline, rx.recv()).await.ok()??;
        transcript.push(line.clone());
        if pick(&line) {
            return Some(line);
        }
    }
}

/// A stdout line of `watch --json` that is an n_plus_one Advice whose child query reads `table`.
fn is_n_plus_one_on(line: &str, table: &str) -> bool {
    let Ok(advice) = serde_json::from_str::<serde_json::Value>(line) else { return false };
    advice["kind"] == "n_plus_one" && advice["evidence"]["child_query"].as_str().is_some_and(|q| q.contains(table))
}

/// Creates `<table>` with 20 rows directly on the cluster.
async fn create_table(direct: &Endpoint, table: &str) {
    let client = connect(direct).await.expect("connect directly");
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, owner int NOT NULL);
             INSERT INTO {table} SELECT i, i FROM generate_series(1, 20) i;"
        ))
        .await
        .expect("create the table");
}

/// A parent query and one prepared child query per row of it: an N+1 burst of 20, through
/// `endpoint`. Returns when the last child has its answer.
async fn n_plus_one_burst(endpoint: &Endpoint, table: &str) -> Instant {
    let client = connect(endpoint).await.expect("connect through pgvisor");
    let parents = client.query(&format!("SELECT id FROM {table} ORDER BY id"), &[]).await.expect("parent");
    let child = client.prepare(&format!("SELECT id FROM {table} WHERE owner = $1")).await.expect("prepare");
    for row in &parents {
        let id: i32 = row.get(0);
        client.query(&child, &[&id]).await.expect("child");
    }
    Instant::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_each_kind_of_advice_and_exits() {
    let started = Instant::now();
    let mut demo = Cli::spawn(&["demo", "--exit", "--admin", "127.0.0.1:0"]);
    let limit = Duration::from_secs(60);
    let mut missing: Vec<&str> = DEMO_KINDS.to_vec();
    while !missing.is_empty() {
        let left = limit.saturating_sub(started.elapsed());
        let line = demo.stdout_line(left, |_| true).await;
        // Each block's second line is `<kind> · seen Nx · HH:MM:SS UTC`.
        missing.retain(|kind| !line.trim_start().starts_with(&format!("{kind} · seen")));
    }
    eprintln!("every kind shown after {:?}", started.elapsed());
    let status = demo.wait_exit(Duration::from_secs(30)).await;
    let output = demo.rest_of_output().await;
    assert!(status.success(), "pgvisor demo --exit failed ({status}); output:\n{output}");
    assert!(output.contains("13 of 13 kinds of advice shown"), "{output}");
    assert!(output.contains("inspector_unavailable is not part of the demo"), "{output}");
    assert!(!output.contains('\x1b'), "no colour when stdout is not a terminal:\n{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_json_prints_an_n_plus_one_burst_within_two_seconds() {
    let cluster = shared_cluster();
    let table = unique_name("watch_items");
    create_table(&cluster.endpoint(), &table).await;
    let proxy = start_proxy(cluster).await;
    let admin = proxy.admin_addr().to_string();
    let mut watch = Cli::spawn(&["watch", "--json", "--admin", &admin]);
    watch.stderr_line(Duration::from_secs(10), |l| l.starts_with("watching pgvisor at")).await;

    let done = n_plus_one_burst(&proxy.endpoint(), &table).await;
    let line = watch.stdout_line(Duration::from_secs(2), |l| is_n_plus_one_on(l, &table)).await;
    eprintln!("n_plus_one on watch's stdout {:?} after the burst", done.elapsed());
    let advice: serde_json::Value = serde_json::from_str(&line).unwrap();
    for field in ["id", "severity", "title", "message", "suggestion", "fingerprints", "evidence", "count", "first_seen"]
    {
        assert!(advice.get(field).is_some(), "{field} missing from {line}");
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_explains_a_missing_or_wrong_token_and_a_wrong_address() {
    let cluster = shared_cluster();
    let proxy = start_proxy_with(cluster, |s| s.admin_token = Some("s3cret".into())).await;
    let admin = proxy.admin_addr().to_string();

    let mut no_token = Cli::spawn(&["watch", "--admin", &admin]);
    assert!(!no_token.wait_exit(Duration::from_secs(10)).await.success());
    let output = no_token.rest_of_output().await;
    assert!(output.contains("requires an admin token: pass --admin-token"), "{output}");

    let mut wrong_token = Cli::spawn(&["watch", "--admin", &admin, "--admin-token", "nope"]);
    assert!(!wrong_token.wait_exit(Duration::from_secs(10)).await.success());
    let output = wrong_token.rest_of_output().await;
    assert!(output.contains("rejected the admin token"), "{output}");

    // The proxy's client port instead of its admin port: PostgreSQL's protocol, not HTTP.
    let client_port = proxy.addr().to_string();
    let mut wrong_port = Cli::spawn(&["watch", "--admin", &client_port]);
    assert!(!wrong_port.wait_exit(Duration::from_secs(15)).await.success());
    let output = wrong_port.rest_of_output().await;
    assert!(output.contains("does not look like pgvisor's admin port"), "{output}");
    proxy.shutdown().await;
}

/// A loopback port nothing listens on (bound, then released).
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The `pgvisor` binary in front of the shared cluster with its admin port on `admin` (and the
/// `extra` flags); returns it once it forwards, with the endpoint that reaches the cluster through it.
async fn pgvisor_at(admin: SocketAddr, extra: &[&str]) -> (PgvisorProcess, Endpoint) {
    let cluster = shared_cluster();
    let upstream = cluster.upstream().to_string();
    let admin = admin.to_string();
    let mut args = vec!["--upstream", &upstream, "--listen", "127.0.0.1:0", "--admin", &admin];
    args.extend_from_slice(extra);
    let mut pgvisor = PgvisorProcess::spawn(&args);
    let listen: SocketAddr =
        pgvisor.wait_for_log(Duration::from_secs(30), |e| e["listen"].as_str().and_then(|a| a.parse().ok())).await;
    let endpoint = cluster.endpoint().at(&listen.ip().to_string(), listen.port());
    (pgvisor, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_waits_for_pgvisor_and_follows_it_across_a_restart() {
    let cluster = shared_cluster();
    let table = unique_name("watch_restart");
    create_table(&cluster.endpoint(), &table).await;
    let admin = free_port();
    let admin_text = admin.to_string();
    let mut watch = Cli::spawn(&["watch", "--json", "--admin", &admin_text]);
    watch.stderr_line(Duration::from_secs(10), |l| l.contains("not answering") && l.contains("retrying")).await;

    let (mut first, endpoint) = pgvisor_at(admin, &[]).await;
    watch.stderr_line(Duration::from_secs(10), |l| l.starts_with("watching pgvisor at")).await;
    n_plus_one_burst(&endpoint, &table).await;
    watch.stdout_line(Duration::from_secs(2), |l| is_n_plus_one_on(l, &table)).await;

    first.signal(Signal::SIGTERM);
    assert!(first.wait_exit(Duration::from_secs(15)).await.is_some_and(|s| s.success()));
    watch.stderr_line(Duration::from_secs(5), |l| l.starts_with("pgvisor went away, retrying...")).await;

    let (_second, endpoint) = pgvisor_at(admin, &[]).await;
    watch.stderr_line(Duration::from_secs(10), |l| l.starts_with("reconnected to pgvisor at")).await;
    n_plus_one_burst(&endpoint, &table).await;
    watch.stdout_line(Duration::from_secs(2), |l| is_n_plus_one_on(l, &table)).await;
}

/// The second line of a full block: `<kind> · seen Nx · HH:MM:SS UTC`.
fn is_block_of(line: &str, kind: &str) -> bool {
    line.trim_start().starts_with(&format!("{kind} · seen "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_a_finding_in_full_again_after_pgvisor_restarts() {
    let cluster = shared_cluster();
    let table = unique_name("watch_again");
    create_table(&cluster.endpoint(), &table).await;
    let admin = free_port();
    let (mut first, endpoint) = pgvisor_at(admin, &[]).await;
    let mut watch = Cli::spawn(&["watch", "--admin", &admin.to_string()]);
    watch.stderr_line(Duration::from_secs(10), |l| l.starts_with("watching pgvisor at")).await;
    n_plus_one_burst(&endpoint, &table).await;
    watch.stdout_line(Duration::from_secs(3), |l| is_block_of(l, "n_plus_one")).await;

    first.signal(Signal::SIGTERM);
    assert!(first.wait_exit(Duration::from_secs(15)).await.is_some_and(|s| s.success()));
    watch.stderr_line(Duration::from_secs(5), |l| l.starts_with("pgvisor went away, retrying...")).await;
    let (_second, endpoint) = pgvisor_at(admin, &[]).await;
    watch.stderr_line(Duration::from_secs(10), |l| l.starts_with("reconnected to pgvisor at")).await;
    // The same burst has the same advice id, but the new pgvisor found it for the first time.
    n_plus_one_burst(&endpoint, &table).await;
    let line =
        watch.stdout_line(Duration::from_secs(3), |l| is_block_of(l, "n_plus_one") || l.starts_with("updated:")).await;
    assert!(is_block_of(&line, "n_plus_one"), "a full block, not an update line:\n{}", watch.transcript.join("\n"));
}

/// A transaction left open, idle, for a minute: pgvisor sends an update of each finding every
/// 3 s (about 40 in all); watch prints each finding once in full, each escalation to critical
/// (idle for 30 s, open for 60 s: fixed in the detector, not flags), and only a few updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_throttles_updates_of_a_transaction_left_open_and_shows_it_turn_critical() {
    let admin = free_port();
    let flags = ["--idle-in-transaction", "1s", "--long-transaction", "2s"];
    let (_pgvisor, endpoint) = pgvisor_at(admin, &flags).await;
    let mut watch = Cli::spawn(&["watch", "--admin", &admin.to_string()]);
    watch.stderr_line(Duration::from_secs(10), |l| l.starts_with("watching pgvisor at")).await;

    let client = connect(&endpoint).await.expect("connect through pgvisor");
    client.batch_execute("BEGIN").await.unwrap();
    client.batch_execute("SELECT 1").await.unwrap();
    let opened = Instant::now();
    let idle =
        watch.stdout_line(Duration::from_secs(45), |l| l.starts_with("now critical: Transaction idle for")).await;
    eprintln!("{idle:?} after {:?}", opened.elapsed());
    let open =
        watch.stdout_line(Duration::from_secs(45), |l| l.starts_with("now critical: Transaction open for")).await;
    eprintln!("{open:?} after {:?}", opened.elapsed());
    client.batch_execute("COMMIT").await.unwrap();

    let transcript = watch.transcript.join("\n");
    let count = |pick: &dyn Fn(&str) -> bool| watch.transcript.iter().filter(|l| pick(l)).count();
    assert_eq!(count(&|l| is_block_of(l, "idle_in_transaction")), 1, "{transcript}");
    assert_eq!(count(&|l| is_block_of(l, "long_transaction")), 1, "{transcript}");
    // 10 s, then 30 s after the previous line, per finding, and again after each escalation.
    let updates = count(&|l| l.starts_with("updated:"));
    let printed: Vec<&String> =
        watch.transcript.iter().filter(|l| l.starts_with("updated:") || l.starts_with("now ")).collect();
    eprintln!("short lines in {:?}: {printed:#?}", opened.elapsed());
    assert!((1..=6).contains(&updates), "{updates} updated: lines in about 62 s:\n{transcript}");
}
