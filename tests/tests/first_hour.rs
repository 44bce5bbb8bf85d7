//! What a new user meets in the first hour, through the real binary: one-line errors that say
//! what to do (no backtrace, even with RUST_BACKTRACE=1), taken ports found before the embedded
//! PostgreSQL starts, flag and config mistakes named with what was expected, the ready banner
//! with the web page, plain-text logs when stderr is not a terminal, and a second Ctrl-C that
//! exits at once.
//!
//! Needs the binary built (`cargo test --workspace` does; else `cargo build -p pgvisor`).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use pgvisor_tests::binary::{pgvisor_binary, PgvisorProcess};
use pgvisor_tests::{connect, shared_cluster, Endpoint};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// `pgvisor ARGS` with RUST_BACKTRACE=1, human logs at info, and no inherited PGVISOR_* variable.
fn command(args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut command = std::process::Command::new(pgvisor_binary());
    command.args(args).env("RUST_BACKTRACE", "1").env("RUST_LOG", "info").env_remove("NO_COLOR");
    for (name, _) in std::env::vars_os().filter(|(n, _)| n.to_string_lossy().starts_with("PGVISOR_")) {
        command.env_remove(name);
    }
    command.envs(env.iter().copied()).stdin(Stdio::null());
    command
}

fn pgvisor(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args, env).output().expect("run pgvisor")
}

/// Asserts that pgvisor exited with `code` after printing exactly `line` on stderr, and nothing
/// else: no log line (so nothing was started), no backtrace, no second copy of a cause.
fn assert_refused(output: &Output, code: i32, line: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr, format!("{line}\n"), "stderr");
    assert_eq!(output.status.code(), Some(code), "exit status; stderr: {stderr}");
    assert!(output.stdout.is_empty(), "stdout: {}", String::from_utf8_lossy(&output.stdout));
}

/// A loopback port that stays taken while the listener lives.
fn taken_port() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

const PORT_HINT: &str =
    "address already in use. Is another pgvisor running? Choose other ports with --listen/--admin (port 0 picks a \
     free one).";

#[test]
fn a_taken_port_is_one_line_with_what_to_do_before_any_postgres_starts() {
    let (_held, taken) = taken_port();
    let listen = taken.to_string();
    // No --upstream: the embedded PostgreSQL would start first, and log that it does.
    let out = pgvisor(&["--listen", &listen, "--admin", "127.0.0.1:0"], &[]);
    assert_refused(&out, 1, &format!("error: cannot listen on {taken}: {PORT_HINT}"));

    let out = pgvisor(&["--listen", "127.0.0.1:0", "--admin", &listen], &[]);
    assert_refused(&out, 1, &format!("error: cannot listen on {taken}: {PORT_HINT}"));

    let out = pgvisor(&["--listen", "127.0.0.1:7001", "--admin", "127.0.0.1:7001", "--upstream", "127.0.0.1:1"], &[]);
    assert_refused(
        &out,
        1,
        "error: --listen 127.0.0.1:7001 and --admin 127.0.0.1:7001 use the same port: give each its own",
    );
}

#[test]
fn a_missing_certificate_is_named_once() {
    let out = pgvisor(
        &[
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_refused(
        &out,
        1,
        "error: cannot set up TLS for clients: cannot read /nonexistent/cert.pem: No such file or directory",
    );
}

#[test]
fn refused_flag_values_name_the_flag_what_it_takes_and_what_was_given() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--n-plus-one-min", "1"],
            "--n-plus-one-min: must be at least 2 (an N+1 needs a parent and several children), got 1",
        ),
        (&["--n-plus-one-min", "-3"], "--n-plus-one-min: must be a positive whole number, got -3"),
        (&["--slow", "fast"], "--slow: expected a duration such as 100ms, 2s or 1.5s, got \"fast\""),
        (&["--lock-wait", "-1s"], "--lock-wait: must not be negative, got \"-1s\""),
        (&["--connect-timeout", "0"], "--connect-timeout: must be at least 1ms, got 0"),
        (&["--connect-timeout", "0s"], "--connect-timeout: must be at least 1ms, got \"0s\""),
        (
            &["--listen", "db.internal:7000"],
            "--listen: expected IP:PORT such as 127.0.0.1:7000 (host names other than localhost are not looked \
             up), got \"db.internal:7000\"",
        ),
        (&["--threads", "0"], "--threads: must be at least 1, got 0"),
        (&["--error-spike-ratio", "2"], "--error-spike-ratio: expected a ratio between 0 and 1 such as 0.5, got 2"),
        (
            &["--unbounded-bytes", "lots"],
            "--unbounded-bytes: expected a size such as 10MB, 512kB or 1048576 (units B, kB, MB, GB), got \"lots\"",
        ),
        (
            &["--upstream-tls", "sometimes"],
            "--upstream-tls: expected one of disable, prefer, require, verify-full, got \"sometimes\"",
        ),
        (&["--upstream", "db:x"], "--upstream: the port must be a number from 1 to 65535, got \"db:x\""),
    ];
    for (args, line) in cases {
        let out = pgvisor(args, &[]);
        assert_refused(&out, 2, &format!("error: {line}"));
    }
    // A value from the environment is named by its variable: the user never typed the flag.
    let out = pgvisor(&[], &[("PGVISOR_SLOW", "fast")]);
    assert_refused(&out, 2, "error: PGVISOR_SLOW: expected a duration such as 100ms, 2s or 1.5s, got \"fast\"");
}

#[test]
fn localhost_is_accepted_where_an_address_is_bound() {
    // `report` connects to --admin: nobody listens on port 1, and the error names the address used.
    let out = pgvisor(&["report", "--admin", "localhost:1"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the config file");
    path.to_string_lossy().into_owned()
}

#[test]
fn config_file_mistakes_say_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let negative = write(dir.path(), "negative.toml", "n_plus_one_min = -3\n");
    let out = pgvisor(&["--config", &negative], &[]);
    assert_refused(&out, 2, &format!("error: {negative}: n_plus_one_min: must be a positive whole number, got -3"));

    let unquoted = write(dir.path(), "unquoted.toml", "# in front of the shop's database\nupstream = 127.0.0.1:5432\n");
    let out = pgvisor(&["--config", &unquoted], &[]);
    assert_refused(
        &out,
        2,
        &format!("error: {unquoted}: upstream: text must be quoted: upstream = \"127.0.0.1:5432\""),
    );

    let zero = write(dir.path(), "zero.toml", "connect_timeout = \"0ms\"\n");
    let out = pgvisor(&["--config", &zero], &[]);
    assert_refused(&out, 2, &format!("error: {zero}: connect_timeout: must be at least 1ms, got \"0ms\""));
}

/// Reads `stdout` until a line starting with `last`, and returns the lines read.
async fn read_until(stdout: &mut (impl tokio::io::AsyncBufRead + Unpin), last: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let read = async {
        loop {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).await.expect("read stdout");
            assert!(n > 0, "stdout closed before {last:?}; read: {lines:?}");
            let done = line.starts_with(last);
            lines.push(line.trim_end().to_string());
            if done {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read).await.expect("the banner within 30 s");
    lines
}

/// The status line of `GET /` on `addr`.
async fn http_status(addr: SocketAddr) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect to the web page");
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    response.lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banner_says_where_to_point_the_app_and_the_log_has_no_colour_codes() {
    let upstream = shared_cluster().upstream();
    let upstream_arg = upstream.to_string();
    let mut child = tokio::process::Command::from(command(
        &["--upstream", &upstream_arg, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
        &[],
    ))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true)
    .spawn()
    .expect("start pgvisor");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    });

    let banner = read_until(&mut stdout, "Web page: ").await;
    assert_eq!(banner.len(), 3, "{banner:#?}");
    assert_eq!(banner[0], format!("pgvisor is ready, forwarding to {upstream}."));
    let listen_port = banner[1]
        .strip_prefix("Point your application at host 127.0.0.1 port ")
        .and_then(|rest| rest.strip_suffix(" instead (same user, password and database)."))
        .unwrap_or_else(|| panic!("{banner:#?}"));
    let web: SocketAddr = banner[2]
        .strip_prefix("Web page: http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("{banner:#?}"));
    let status = http_status(web).await;
    assert!(status.starts_with("HTTP/1.1 200"), "GET {} answered {status}", banner[2]);

    let endpoint = Endpoint { port: listen_port.parse().unwrap(), ..shared_cluster().endpoint() };
    let client = connect(&endpoint).await.expect("connect at the address the banner gives");
    let one: i32 = client.query_one("select 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(client);

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.expect("exit").unwrap();
    assert!(status.success(), "{status}");
    let log = log.await.unwrap();
    assert!(log.contains("pgvisor is forwarding"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log that is not a terminal:\n{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigint_exits_at_once_and_still_removes_the_embedded_server() {
    let mut pgvisor =
        PgvisorProcess::spawn(&["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--shutdown-grace", "60s"]);
    let data_dir: PathBuf =
        pgvisor.wait_for_log(Duration::from_secs(60), |e| e["data_dir"].as_str().map(PathBuf::from)).await;
    let listen: SocketAddr =
        pgvisor.wait_for_log(Duration::from_secs(30), |e| e["listen"].as_str().and_then(|a| a.parse().ok())).await;
    let endpoint = Endpoint {
        host: listen.ip().to_string(),
        port: listen.port(),
        user: "postgres".into(),
        password: None,
        dbname: "postgres".into(),
    };
    // An open session: the first signal waits for it, for up to the 60 s grace.
    let client = connect(&endpoint).await.expect("connect through pgvisor");
    client.batch_execute("begin; select 1").await.unwrap();

    pgvisor.signal(Signal::SIGINT);
    let message = |e: &serde_json::Value| e["message"].as_str().map(str::to_string);
    pgvisor.wait_for_log(Duration::from_secs(10), |e| message(e).filter(|m| m.starts_with("SIGINT received"))).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(pgvisor.try_exit_status().is_none(), "the first SIGINT waits for the open session");

    pgvisor.signal(Signal::SIGINT);
    let second = Instant::now();
    pgvisor.wait_for_log(Duration::from_secs(2), |e| message(e).filter(|m| m.starts_with("second signal"))).await;
    let status =
        pgvisor.wait_exit(Duration::from_secs(2)).await.expect("pgvisor exits within 2 s of the second SIGINT");
    eprintln!("exited {:?} after the second SIGINT", second.elapsed());
    assert_eq!(status.code(), Some(130), "128 + SIGINT, as a shell reports an interrupted command");
    assert!(!data_dir.exists(), "the embedded data directory {} is left behind", data_dir.display());
    if let Some(tempdir) = data_dir.parent() {
        assert!(!tempdir.exists(), "the embedded temp directory {} is left behind", tempdir.display());
    }
}
