//! `floor`: the cheapest proxy there is, the benchmark's lower bound for pgvisor's cost.
//!
//! Accepts TCP connections and copies bytes both ways to the upstream, without parsing a single
//! message: no protocol state, no TLS, no observation. What it costs (two extra socket hops and
//! a tokio task per session) is what any proxy in user space pays before doing anything, so
//! `bench/pgbench.sh` reports pgvisor's throughput against it.
//!
//!   floor --listen 127.0.0.1:7000 --upstream 127.0.0.1:5432
//!
//! It forwards on as many loops as pgvisor's default (`default_threads` in
//! proxy/src/config/mod.rs; proxy/src/net/loops.rs): one current-thread runtime per CPU, from 1
//! to 4. Sessions are handed to them in turn (pgvisor picks the loop with the fewest open
//! sessions: the same for a benchmark's connections, all opened at the start and kept). It runs until
//! killed.

use std::io;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;

const USAGE: &str = "usage: floor --listen ADDR --upstream ADDR";

fn main() {
    let (listen, upstream) = match parse_args(std::env::args().skip(1)) {
        Ok(addrs) => addrs,
        Err(message) => {
            eprintln!("floor: {message}\n{USAGE}");
            std::process::exit(2);
        }
    };
    // The same rule as pgvisor's default `--threads`: one forwarding loop per CPU, 1 to 4.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let others: Vec<Handle> = (1..cpus.clamp(1, 4)).map(|_| start_loop()).collect();
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("cannot build the tokio runtime");
    if let Err(e) = runtime.block_on(serve(&listen, upstream, others)) {
        eprintln!("floor: cannot listen on {listen}: {e}");
        std::process::exit(1);
    }
}

/// Another forwarding loop: a current-thread runtime on a thread of its own, as pgvisor's.
fn start_loop() -> Handle {
    let (started, handle) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("cannot build the tokio runtime");
        let _ = started.send(runtime.handle().clone());
        runtime.block_on(std::future::pending::<()>());
    });
    handle.recv().expect("a forwarding loop did not start")
}

/// `--listen ADDR --upstream ADDR`, in any order (also as `--flag=ADDR`).
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(String, String), String> {
    let (mut listen, mut upstream) = (None, None);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (arg, None),
        };
        let slot = match flag.as_str() {
            "--listen" => &mut listen,
            "--upstream" => &mut upstream,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        };
        let value = match inline {
            Some(value) => value,
            None => args.next().ok_or_else(|| format!("{flag} needs an address"))?,
        };
        *slot = Some(value);
    }
    Ok((listen.ok_or("--listen is required")?, upstream.ok_or("--upstream is required")?))
}

/// Accepts clients and hands them to the loops in turn, the listener's own first.
async fn serve(listen: &str, upstream: String, others: Vec<Handle>) -> io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let mut next = 0usize;
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                eprintln!("floor: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let upstream = upstream.clone();
        let on = next % (others.len() + 1);
        next = next.wrapping_add(1);
        match on.checked_sub(1).and_then(|i| others.get(i)) {
            None => drop(tokio::spawn(session(client, upstream))),
            // A socket belongs to one runtime's reactor: it moves as a plain socket.
            Some(other) => match client.into_std() {
                Ok(client) => drop(other.spawn(async move {
                    match TcpStream::from_std(client) {
                        Ok(client) => session(client, upstream).await,
                        Err(e) => eprintln!("floor: session: {e}"),
                    }
                })),
                Err(e) => eprintln!("floor: session: {e}"),
            },
        }
    }
}

async fn session(client: TcpStream, upstream: String) {
    if let Err(e) = forward(client, &upstream).await {
        eprintln!("floor: session: {e}");
    }
}

async fn forward(mut client: TcpStream, upstream: &str) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    match tokio::io::copy_bidirectional(&mut client, &mut server).await {
        Ok(_) => Ok(()),
        // A peer that closes without a clean shutdown ends the session; nothing to report.
        Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => Ok(()),
        Err(e) => Err(e),
    }
}
