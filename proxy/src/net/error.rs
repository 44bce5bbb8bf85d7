//! Session errors, split into what the client may be told and what goes to the log.

use bytes::BytesMut;
use pgwire::messages::response::ErrorResponse;
use pgwire::messages::Message;
use protocol::ProtocolError;

/// SQLSTATE for protocol violations.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// SQLSTATE when the connection could not be established.
pub const CONNECTION_FAILURE: &str = "08006";
/// SQLSTATE when the administrator shut the proxy down.
pub const ADMIN_SHUTDOWN: &str = "57P01";

/// Why a session ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The client's startup packet is malformed or has an unknown code.
    #[error("invalid startup packet from client: {0}")]
    ClientStartup(ProtocolError),
    /// The client sent a message that cannot be framed.
    #[error("invalid message from client: {0}")]
    ClientProtocol(ProtocolError),
    /// The client asked for TLS twice, or after encryption was set up.
    #[error("client sent {0} on an already encrypted connection")]
    DuplicateEncryptionRequest(&'static str),
    /// The client's TLS handshake failed.
    #[error("TLS handshake with client failed: {0}")]
    ClientTls(std::io::Error),
    /// The client started TLS directly (no SSLRequest) while TLS is off.
    #[error("client started a TLS handshake directly, but client TLS is disabled (--no-tls)")]
    DirectTlsRefused,
    /// Reading from or writing to the client failed.
    #[error("client connection: {0}")]
    ClientIo(std::io::Error),
    /// The upstream could not be reached.
    #[error("cannot connect to upstream PostgreSQL at {addr}: {reason}")]
    UpstreamConnect {
        /// Upstream address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Reading from or writing to the upstream failed.
    #[error("upstream connection: {0}")]
    UpstreamIo(std::io::Error),
    /// The upstream sent bytes that cannot be framed.
    #[error("invalid message from upstream: {0}")]
    UpstreamProtocol(ProtocolError),
    /// pgvisor is shutting down and the grace period is over.
    #[error("pgvisor is shutting down")]
    ShuttingDown,
}

impl SessionError {
    /// The SQLSTATE and message the client is sent, or `None` when it cannot be told
    /// (its connection is gone, or it never spoke the protocol).
    pub fn user_facing(&self) -> Option<(&'static str, String)> {
        match self {
            Self::ClientStartup(e) | Self::ClientProtocol(e) => {
                Some((PROTOCOL_VIOLATION, format!("pgvisor: invalid message from client: {e}")))
            }
            Self::DuplicateEncryptionRequest(what) => {
                Some((PROTOCOL_VIOLATION, format!("pgvisor: {what} received on an encrypted connection")))
            }
            Self::UpstreamConnect { .. } => Some((CONNECTION_FAILURE, format!("pgvisor: {self}"))),
            Self::UpstreamProtocol(_) => Some((CONNECTION_FAILURE, format!("pgvisor: {self}"))),
            Self::ShuttingDown => Some((ADMIN_SHUTDOWN, "pgvisor is shutting down; the session was closed".into())),
            Self::ClientTls(_) | Self::DirectTlsRefused | Self::ClientIo(_) | Self::UpstreamIo(_) => None,
        }
    }

    /// True for the ordinary ways a session ends that deserve no warning in the log.
    pub fn is_quiet(&self) -> bool {
        matches!(self, Self::ClientIo(e) | Self::UpstreamIo(e)
            if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::UnexpectedEof))
    }
}

/// Encodes a FATAL ErrorResponse with `sqlstate` and `message`.
pub fn fatal_error_response(sqlstate: &str, message: &str) -> BytesMut {
    let fields = vec![
        (b'S', "FATAL".to_string()),
        (b'V', "FATAL".to_string()),
        (b'C', sqlstate.to_string()),
        (b'M', message.to_string()),
    ];
    let mut buf = BytesMut::new();
    ErrorResponse::new(fields).encode(&mut buf).expect("an ErrorResponse always encodes");
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::backend::ErrorFields;

    #[test]
    fn error_response_round_trips() {
        let bytes = fatal_error_response(CONNECTION_FAILURE, "cannot connect");
        let (frame, used) = protocol::parse_message(&bytes, 1 << 20).unwrap().unwrap();
        assert_eq!((frame.tag, used), (b'E', bytes.len()));
        let fields = ErrorFields::parse(frame.body).unwrap();
        assert_eq!(fields.sqlstate(), Some("08006"));
        assert_eq!(fields.message(), "cannot connect");
        assert_eq!(fields.severity(), "FATAL");
    }
}
