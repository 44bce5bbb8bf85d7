//! Connecting to the upstream PostgreSQL, with TLS negotiated as libpq's sslmode would.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{UpstreamAddr, UpstreamTlsMode};
use crate::net::error::SessionError;
use crate::net::stream::Conn;

/// SSLRequest packet: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Opens upstream connections, and remembers whether the upstream offers TLS.
pub struct UpstreamConnector {
    addr: UpstreamAddr,
    mode: UpstreamTlsMode,
    tls: Option<TlsConnector>,
    timeout: Duration,
    /// The upstream's last answer to SSLRequest: [`UNKNOWN`], [`OFFERS_TLS`] or [`NO_TLS`].
    offers_tls: AtomicU8,
}

const UNKNOWN: u8 = 0;
const OFFERS_TLS: u8 = 1;
const NO_TLS: u8 = 2;

impl UpstreamConnector {
    /// A connector for `addr` with the given TLS policy and connect timeout.
    pub fn new(addr: UpstreamAddr, mode: UpstreamTlsMode, tls: Option<TlsConnector>, timeout: Duration) -> Self {
        Self { addr, mode, tls, timeout, offers_tls: AtomicU8::new(UNKNOWN) }
    }

    /// Whether the upstream offered TLS when last asked (`None`: not asked successfully yet).
    pub fn offers_tls(&self) -> Option<bool> {
        match self.offers_tls.load(Ordering::Relaxed) {
            OFFERS_TLS => Some(true),
            NO_TLS => Some(false),
            _ => None,
        }
    }

    /// Asks the upstream whether it offers TLS (an SSLRequest on a connection closed right
    /// after), and remembers the answer: at start-up, to warn early about a wrong address, and
    /// so the client leg can offer what the server offers.
    pub async fn probe(&self) -> Result<bool, SessionError> {
        let asked = async {
            let mut tcp = self.tcp().await?;
            self.ask_for_tls(&mut tcp).await
        };
        match tokio::time::timeout(self.timeout, asked).await {
            Ok(answer) => answer,
            Err(_) => Err(self.failure(format!("no answer within {:?}", self.timeout))),
        }
    }

    async fn tcp(&self) -> Result<TcpStream, SessionError> {
        let tcp = TcpStream::connect((self.addr.host.as_str(), self.addr.port))
            .await
            .map_err(|e| self.failure(e.to_string()))?;
        tcp.set_nodelay(true).map_err(|e| self.failure(e.to_string()))?;
        Ok(tcp)
    }

    /// Sends SSLRequest and reads the one-byte answer: true for 'S'.
    async fn ask_for_tls(&self, tcp: &mut TcpStream) -> Result<bool, SessionError> {
        tcp.write_all(&SSL_REQUEST).await.map_err(|e| self.failure(e.to_string()))?;
        let answer = tcp.read_u8().await.map_err(|e| self.failure(format!("no answer to SSLRequest: {e}")))?;
        let offered = match answer {
            b'S' => true,
            b'N' => false,
            other => return Err(self.failure(format!("unexpected answer {other:#04x} to SSLRequest"))),
        };
        self.offers_tls.store(if offered { OFFERS_TLS } else { NO_TLS }, Ordering::Relaxed);
        Ok(offered)
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
        let mut tcp = self.tcp().await?;
        let Some(tls) = &self.tls else {
            return Ok(Conn::Plain(tcp));
        };
        match (self.ask_for_tls(&mut tcp).await?, self.mode) {
            (true, _) => {
                let name = crate::net::tls::server_name(&self.addr.host)
                    .map_err(|e| self.failure(format!("invalid TLS server name: {e}")))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| self.failure(format!("TLS handshake failed: {e}")))?;
                Ok(Conn::Tls(Box::new(stream.into())))
            }
            (false, UpstreamTlsMode::Prefer) => Ok(Conn::Plain(tcp)),
            (false, mode) => Err(self.failure(format!(
                "the server does not support TLS, but --upstream-tls is {mode:?}; use --upstream-tls prefer or enable ssl on the server"
            ))),
        }
    }

    fn failure(&self, reason: String) -> SessionError {
        SessionError::UpstreamConnect { addr: self.addr.to_string(), reason }
    }
}
