//! pgvisor: a transparent PostgreSQL wire-protocol proxy with live advice.
//!
//! The binary is a thin shell over this library so tests can run many proxies in one process.

pub mod admin;
pub mod advice_log;
pub mod check;
pub mod config;
pub mod config_file;
pub mod demo;
pub mod embedded;
pub mod error;
pub mod explain;
pub mod fingerprint_cli;
pub mod inspector;
pub mod logging;
pub mod relay;
pub mod report;
pub mod server;
pub mod session;
pub mod stats;
pub mod stream;
pub mod summary;
pub mod tap;
pub mod tls;
pub mod upstream;
pub mod watch;

pub use server::{Proxy, ProxyHandle, ProxySettings};
