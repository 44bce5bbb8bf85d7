//! pgvisor's advisor: fingerprints, request/response pairing, query statistics and advice.
//!
//! No sockets here: the proxy feeds it the frames it forwards, so everything is unit-testable
//! with byte slices and event sequences.

pub mod advice;
pub mod detect;
pub mod engine;
pub mod events;
pub mod fingerprint;
pub mod health;
pub mod keywords;
pub mod lexer;
pub mod observer;
pub mod scopes;
pub mod sessions;
pub mod stats;
pub mod tags;

pub use fingerprint::{fingerprint, Fingerprint, Fingerprinter, Normalized};
