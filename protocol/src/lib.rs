//! PostgreSQL wire protocol (v3.0 and v3.2) framing and typed views, sans-I/O.
//!
//! Nothing here reads or writes a socket: parsers take byte slices and return `Ok(None)` until a
//! whole frame is present, so the proxy's I/O loop stays elsewhere and every parser is testable
//! with byte slices and fuzzable. Every length read off the wire is checked against a maximum and
//! against the bytes present, with checked arithmetic.

// Every public item has a one-line doc comment (STYLE.md); `./dev test` denies warnings.
#![warn(missing_docs)]

pub mod backend;
pub mod cursor;
pub mod error;
pub mod framing;
pub mod frontend;
pub mod startup;
pub mod tags;

pub use error::ProtocolError;
pub use framing::{parse_message, Frame, FrameScanner, MessageHeader, ScannedMessage};
pub use startup::{parse_startup, StartupPacket};
pub use tags::{BackendTag, FrontendTag};

/// Largest startup-phase packet PostgreSQL accepts (`MAX_STARTUP_PACKET_LENGTH` in pqcomm.h).
pub const MAX_STARTUP_PACKET_LEN: usize = 10_000;

/// Largest tagged message we accept by default: PostgreSQL's `MaxAllocSize` (1 GiB - 1), the
/// most a server will ever send or accept in one message.
pub const MAX_MESSAGE_LEN: usize = 0x3fff_ffff;
