//! Errors found while framing or decoding protocol bytes.

use thiserror::Error;

/// A protocol violation: the bytes cannot be a valid PostgreSQL message.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A length field is smaller than its own header or larger than the allowed maximum.
    #[error("invalid {what} length {len} (allowed {min}..={max})")]
    BadLength {
        /// Which frame the length belongs to.
        what: &'static str,
        /// The length read off the wire.
        len: u64,
        /// The smallest valid length.
        min: usize,
        /// The largest accepted length.
        max: usize,
    },
    /// A startup-phase packet carried a request code nobody defines.
    #[error("unknown startup request code {0} (protocol version {major}.{minor})", major = .0 >> 16, minor = .0 & 0xffff)]
    UnknownStartupCode(u32),
    /// A message body ended before a field it announced.
    #[error("{0} message is truncated")]
    Truncated(&'static str),
    /// A string field is not NUL-terminated.
    #[error("{0} message has an unterminated string")]
    UnterminatedString(&'static str),
    /// A message body holds a field value that cannot be valid.
    #[error("{what} message has an invalid field: {detail}")]
    InvalidField {
        /// The message being decoded.
        what: &'static str,
        /// What is wrong with it.
        detail: &'static str,
    },
}
