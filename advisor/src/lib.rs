//! pgvisor's advisor: fingerprints, request/response pairing, query statistics and advice.
//!
//! No sockets here: the proxy feeds it the frames it forwards, so everything is unit-testable
//! with byte slices and event sequences.

// Every public item has a one-line doc comment (STYLE.md); `./dev test` denies warnings.
#![warn(missing_docs)]

pub mod advice;
pub mod capture;
pub mod detect;
pub mod engine;
pub mod events;
pub mod fingerprint;
pub mod health;
pub mod keywords;
pub mod lexer;
pub mod limits;
pub mod log_limit;
pub mod model;
pub mod observer;
pub mod orm;
pub mod scopes;
pub mod sessions;
pub mod sql_shape;
pub mod stats;
pub mod sync;
pub mod tags;

pub use fingerprint::{fingerprint, Fingerprint, Fingerprinter, Normalized};
