//! Connecting to the upstream PostgreSQL, with TLS negotiated as libpq's sslmode would.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{UpstreamAddr, UpstreamTlsMode};
use crate::error::SessionError;
use crate::stream::Conn;

/// SSLRequest packet: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Opens upstream connections.
pub struct UpstreamConnector {
    addr: UpstreamAddr,
    mode: UpstreamTlsMode,
    tls: Option<TlsConnector>,
    timeout: Duration,
}

impl UpstreamConnector {
    /// A connector for `addr` with the given TLS policy and connect timeout.
    pub fn new(addr: UpstreamAddr, mode: UpstreamTlsMode, tls: Option<TlsConnector>, timeout: Duration) -> Self {
        Self { addr, mode, tls, timeout }
    }

    /// The upstream address.
    pub fn addr(&self) -> &UpstreamAddr {
        &self.addr
    }

    /// Connects and negotiates TLS; the returned connection is ready for a startup packet.
    pub async fn connect(&self) -> Result<Conn, SessionError> {
        match tokio::time::timeout(self.timeout, self.connect_inner()).await {
            Ok(result) => result,
            Err(_) => Err(self.failure(format!("no answer within {:?}", self.timeout))),
        }
    }

    async fn connect_inner(&self) -> Result<Conn, SessionError> {
        let mut tcp = TcpStream::connect((self.addr.host.as_str(), self.addr.port))
            .await
            .map_err(|e| self.failure(e.to_string()))?;
        tcp.set_nodelay(true).map_err(|e| self.failure(e.to_string()))?;
        let Some(tls) = &self.tls else {
            return Ok(Conn::Plain(tcp));
        };
        tcp.write_all(&SSL_REQUEST).await.map_err(|e| self.failure(e.to_string()))?;
        let answer = tcp.read_u8().await.map_err(|e| self.failure(format!("no answer to SSLRequest: {e}")))?;
        match (answer, self.mode) {
            (b'S', _) => {
                let name = crate::tls::server_name(&self.addr.host)
                    .map_err(|e| self.failure(format!("invalid TLS server name: {e}")))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| self.failure(format!("TLS handshake failed: {e}")))?;
                Ok(Conn::Tls(Box::new(stream.into())))
            }
            (b'N', UpstreamTlsMode::Prefer) => Ok(Conn::Plain(tcp)),
            (b'N', mode) => Err(self.failure(format!(
                "the server does not support TLS, but --upstream-tls is {mode:?}; use --upstream-tls prefer or enable ssl on the server"
            ))),
            (other, _) => Err(self.failure(format!("unexpected answer {other:#04x} to SSLRequest"))),
        }
    }

    fn failure(&self, reason: String) -> SessionError {
        SessionError::UpstreamConnect { addr: self.addr.to_string(), reason }
    }
}
