//! pgvisor: a transparent PostgreSQL wire-protocol proxy with live advice.
//!
//! The binary is a thin shell over this library so tests can run many proxies in one process.
//! Folders by role: `net` (clients to PostgreSQL and back), `inspector` (the side connection),
//! `admin` (the HTTP port), `cli` (the subcommands), `config`, `embedded` (a throwaway PostgreSQL).

pub mod admin;
pub mod advice_log;
pub mod cli;
pub mod config;
pub mod counters;
pub mod embedded;
pub mod inspector;
pub mod log_summary;
pub mod logging;
pub mod net;

pub use net::listener::{Proxy, ProxyHandle, ProxySettings};
