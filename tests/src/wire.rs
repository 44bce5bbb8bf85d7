//! A raw protocol client over plain TCP: it can log in (SCRAM-SHA-256) and then send bytes no
//! real client would, to test how the proxy treats a misbehaving peer.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context};
use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long to wait for the peer before a read fails the test.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One backend message: its tag and body (the length word removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendMessage {
    /// Message tag, e.g. `b'E'` for ErrorResponse.
    pub tag: u8,
    /// Body after the length word.
    pub body: Vec<u8>,
}

/// The fields of an ErrorResponse or NoticeResponse a test asserts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    /// `S`: ERROR, FATAL...
    pub severity: String,
    /// `C`: the SQLSTATE.
    pub code: String,
    /// `M`: the primary message.
    pub message: String,
}

impl ErrorFields {
    /// Parses an ErrorResponse/NoticeResponse body: `(type byte, C string)*` then a zero byte.
    pub fn parse(body: &[u8]) -> anyhow::Result<Self> {
        let mut fields = Self::default();
        let mut rest = body;
        while let Some((&kind, after)) = rest.split_first() {
            if kind == 0 {
                return Ok(fields);
            }
            let end = after.iter().position(|&b| b == 0).context("unterminated error field")?;
            let value = String::from_utf8_lossy(&after[..end]).into_owned();
            match kind {
                b'S' => fields.severity = value,
                b'C' => fields.code = value,
                b'M' => fields.message = value,
                _ => {}
            }
            rest = &after[end + 1..];
        }
        bail!("error fields without the terminating zero byte")
    }
}

/// The key BackendKeyData announced: what a client holds to cancel its query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendKey {
    /// Backend process id.
    pub pid: i32,
    /// Secret key.
    pub secret: i32,
}

/// A protocol-level connection that reads whole backend messages.
pub struct RawConnection {
    stream: TcpStream,
    buf: BytesMut,
}

impl RawConnection {
    /// Opens a TCP connection; nothing is sent yet.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, buf: BytesMut::new() })
    }

    /// Connects, sends a protocol 3.0 StartupMessage and completes SCRAM-SHA-256 login, reading
    /// up to the first ReadyForQuery. Returns the connection and its BackendKeyData.
    pub async fn login(
        addr: SocketAddr,
        user: &str,
        password: &str,
        database: &str,
    ) -> anyhow::Result<(Self, BackendKey)> {
        let mut conn = Self::connect(addr).await?;
        let mut out = BytesMut::new();
        frontend::startup_message([("user", user), ("database", database)], &mut out)?;
        conn.send(&out).await?;
        let mut scram = None;
        let mut key = None;
        loop {
            let msg = conn.read_message().await?.context("server closed the connection during login")?;
            match msg.tag {
                b'R' => conn.authenticate(&msg.body, password, &mut scram).await?,
                b'K' => {
                    ensure!(msg.body.len() >= 8, "short BackendKeyData");
                    let mut body = &msg.body[..];
                    key = Some(BackendKey { pid: body.get_i32(), secret: body.get_i32() });
                }
                b'E' => bail!("login failed: {:?}", ErrorFields::parse(&msg.body)?),
                b'Z' => return Ok((conn, key.context("no BackendKeyData before ReadyForQuery")?)),
                _ => {}
            }
        }
    }

    async fn authenticate(
        &mut self,
        body: &[u8],
        password: &str,
        scram: &mut Option<ScramSha256>,
    ) -> anyhow::Result<()> {
        let (code, data) = body.split_at_checked(4).context("short Authentication message")?;
        let mut out = BytesMut::new();
        match u32::from_be_bytes(code.try_into()?) {
            0 => return Ok(()),
            10 => {
                let offered: Vec<&[u8]> = data.split(|&b| b == 0).filter(|m| !m.is_empty()).collect();
                ensure!(offered.contains(&SCRAM_SHA_256.as_bytes()), "SCRAM-SHA-256 not offered");
                let exchange = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, exchange.message(), &mut out)?;
                *scram = Some(exchange);
            }
            11 => {
                let exchange = scram.as_mut().context("SASLContinue before SASL")?;
                exchange.update(data)?;
                frontend::sasl_response(exchange.message(), &mut out)?;
            }
            12 => scram.as_mut().context("SASLFinal before SASL")?.finish(data)?,
            other => bail!("unsupported authentication request {other}"),
        }
        self.send(&out).await
    }

    /// Writes `bytes` as they are.
    pub async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Shuts down the sending side only (a TCP half-close): nothing more is sent, replies are
    /// still read.
    pub async fn shutdown_write(&mut self) -> anyhow::Result<()> {
        self.stream.shutdown().await?;
        Ok(())
    }

    /// Reads one whole backend message, or `None` when the peer closed the connection.
    pub async fn read_message(&mut self) -> anyhow::Result<Option<BackendMessage>> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes(self.buf[1..5].try_into()?) as usize;
                ensure!(len >= 4, "backend message with length {len}");
                if self.buf.len() > len {
                    let tag = self.buf[0];
                    self.buf.advance(5);
                    let body = self.buf.split_to(len - 4).to_vec();
                    return Ok(Some(BackendMessage { tag, body }));
                }
            }
            let read = tokio::time::timeout(READ_TIMEOUT, self.stream.read_buf(&mut self.buf))
                .await
                .map_err(|_| anyhow!("no message from the server within {READ_TIMEOUT:?}"))?;
            match read {
                Ok(0) if self.buf.is_empty() => return Ok(None),
                Ok(0) => bail!("connection closed in the middle of a message ({} bytes)", self.buf.len()),
                Ok(_) => {}
                // A reset after the server's last message is an ordinary way to close.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && self.buf.is_empty() => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads until an ErrorResponse and returns its fields; then the peer must close the
    /// connection without sending anything more.
    pub async fn expect_error_then_close(&mut self) -> anyhow::Result<ErrorFields> {
        let error = loop {
            let msg = self.read_message().await?.context("connection closed without an ErrorResponse")?;
            if msg.tag == b'E' {
                break ErrorFields::parse(&msg.body)?;
            }
        };
        match self.read_message().await? {
            None => Ok(error),
            Some(msg) => bail!("expected the connection to close after {error:?}, got message {:?}", msg.tag as char),
        }
    }

    /// Sends a simple Query and returns the text of every DataRow column, failing on an error.
    pub async fn simple_query(&mut self, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out)?;
        self.send(&out).await?;
        let mut rows = Vec::new();
        loop {
            let msg = self.read_message().await?.context("connection closed during a query")?;
            match msg.tag {
                b'D' => rows.push(data_row(&msg.body)?),
                b'E' => bail!("query failed: {:?}", ErrorFields::parse(&msg.body)?),
                b'Z' => return Ok(rows),
                _ => {}
            }
        }
    }
}

/// The text of every column of a DataRow body (`None` for NULL).
pub fn data_row(body: &[u8]) -> anyhow::Result<Vec<Option<String>>> {
    let mut body = body;
    ensure!(body.len() >= 2, "short DataRow");
    let columns = body.get_i16();
    let mut row = Vec::new();
    for _ in 0..columns {
        ensure!(body.len() >= 4, "short DataRow");
        let len = body.get_i32();
        if len < 0 {
            row.push(None);
            continue;
        }
        let len = len as usize;
        ensure!(body.len() >= len, "short DataRow column");
        row.push(Some(String::from_utf8_lossy(&body[..len]).into_owned()));
        body.advance(len);
    }
    Ok(row)
}

/// A startup-phase packet: length word, then `code`, then `rest`.
pub fn startup_packet(code: u32, rest: &[u8]) -> Vec<u8> {
    let len = u32::try_from(8 + rest.len()).expect("a small test packet");
    let mut packet = len.to_be_bytes().to_vec();
    packet.extend_from_slice(&code.to_be_bytes());
    packet.extend_from_slice(rest);
    packet
}

/// The code of a StartupMessage for protocol `major.minor`.
pub fn protocol_version(major: u16, minor: u16) -> u32 {
    (u32::from(major) << 16) | u32::from(minor)
}
