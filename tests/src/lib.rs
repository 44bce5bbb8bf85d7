//! Test harness for pgvisor's integration tests: a throwaway PostgreSQL cluster per test binary,
//! in-process proxies in front of it, real clients (tokio-postgres, psql, pgbench, a raw wire
//! client), and helpers that compare what a client sees directly with what it sees through pgvisor.
//!
//! Run the suite with `cargo test --workspace` (or build the binary first with
//! `cargo build -p pgvisor` before `cargo test -p pgvisor-tests`): the shutdown test runs the
//! `pgvisor` binary as a child process and expects it next to the test executables.

pub mod binary;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod compare;
pub mod endpoint;
pub mod proxy;
pub mod recorder;
pub mod tls;
pub mod wait;
pub mod wire;

pub use client::{connect, connect_config, connect_tls, connect_with_messages, sqlstate};
pub use cluster::{shared_cluster, Cluster};
pub use endpoint::Endpoint;
pub use proxy::{start_proxy, start_proxy_with, TestProxy};
pub use wait::eventually;

/// A name unique within this test binary, for tables, databases and application names that
/// concurrent tests must not share.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{prefix}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
