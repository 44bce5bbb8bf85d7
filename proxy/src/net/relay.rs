//! The forwarding loop: bytes go on as soon as they are read, framed beside the copy.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use pgwire::messages::startup::Authentication as PgAuthentication;
use pgwire::messages::Message;
use protocol::backend::{Authentication, ErrorFields};
use protocol::{parse_message, BackendTag, Frame, FrameScanner, ProtocolError, ScannedMessage, MAX_MESSAGE_LEN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::counters::{Flow, ProxyCounters};
use crate::logging::LogLimiter;
use crate::net::backlog::{Backlog, Messages, Side, OBSERVED_PREFIX};
use crate::net::error::{fatal_error_response, SessionError};
use crate::net::shared::ForceClose;
use crate::net::stream::Conn;

/// Bytes read per system call in each direction.
const READ_BUF: usize = 32 * 1024;
/// First room for the server's authentication-phase messages (it grows when they are longer).
const STARTUP_BUF: usize = 2 * 1024;
/// Longest a session's ending waits to write its error and close a side that stopped reading.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// SASL mechanism that cannot work through a TLS-terminating proxy (channel binding).
const SCRAM_PLUS: &[u8] = b"SCRAM-SHA-256-PLUS";

/// What the relay may change in the authentication exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBinding {
    /// Both legs present the same certificate, so SCRAM-SHA-256-PLUS works end to end: keep it.
    PassThrough,
    /// Remove SCRAM-SHA-256-PLUS from the mechanisms the server offers.
    Strip,
}

/// Relays a session until the server closes, the client closes (or breaks) its receiving side, a
/// side breaks the protocol, or `close` fires. A client that closes its sending side still gets
/// what the server answers, as it would directly.
/// Also returns whether SCRAM-SHA-256-PLUS was removed from the server's offer.
///
/// What is forwarded is queued in `backlog` for the observation worker (`net::backlog`), which
/// also tells the session's registry entry what has been observed, so the admin API can wait for
/// observations a client may already depend on.
pub async fn relay(
    client: Conn,
    upstream: Conn,
    binding: ChannelBinding,
    backlog: &Arc<Backlog>,
    stats: &ProxyCounters,
    close: &ForceClose,
) -> (Result<(), SessionError>, bool) {
    let stripped = AtomicBool::new(false);
    // True while the client has been sent only whole messages: an error of ours may follow.
    let client_at_boundary = AtomicBool::new(true);
    let (mut client_rd, mut client_wr) = client.split();
    let (mut upstream_rd, mut upstream_wr) = upstream.split();
    let to_upstream = Direction { backlog, side: Side::Client, stats };
    let to_client = Direction { backlog, side: Side::Server, stats };
    // Not biased: with a fixed order, a direction that is always ready (a bulk COPY FROM) could
    // spend the task's cooperative budget on every poll and starve the other.
    let outcome = {
        let mut to_client = std::pin::pin!(upstream_to_client(
            &mut upstream_rd,
            &mut client_wr,
            binding,
            &stripped,
            &client_at_boundary,
            to_client
        ));
        tokio::select! {
            r = client_to_upstream(&mut client_rd, &mut upstream_wr, to_upstream) => match r {
                // The client sends nothing more (it closed, or shut down only its sending side)
                // and the server has been told so: what the server still answers goes on to the
                // client, as it would directly, until the server closes.
                Ok(()) => tokio::select! {
                    r = &mut to_client => r,
                    _ = close.closed() => Err(SessionError::ShuttingDown),
                },
                Err(e) => Err(e),
            },
            r = &mut to_client => r,
            _ = close.closed() => Err(SessionError::ShuttingDown),
        }
    };
    // The upstream goes first: its backend is freed even if the client has stopped reading.
    let _ = tokio::time::timeout(CLOSE_WAIT, upstream_wr.shutdown()).await;
    // Inside a half-sent message an ErrorResponse would corrupt the stream: then just close.
    let clean = client_at_boundary.load(Ordering::Relaxed);
    if let Some((sqlstate, message)) = outcome.as_ref().err().filter(|_| clean).and_then(SessionError::user_facing) {
        let _ = tokio::time::timeout(CLOSE_WAIT, client_wr.write_all(&fatal_error_response(sqlstate, &message))).await;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, client_wr.shutdown()).await;
    (outcome, stripped.load(Ordering::Relaxed))
}

/// One direction's observation: the session's backlog, which side this is, the counters.
#[derive(Clone, Copy)]
struct Direction<'a> {
    backlog: &'a Arc<Backlog>,
    side: Side,
    stats: &'a ProxyCounters,
}

impl Direction<'_> {
    /// Counts `n` messages this side sent.
    fn count_messages(&self, n: u64) {
        let flow = match self.side {
            Side::Client => Flow::FrontendMessages,
            Side::Server => Flow::BackendMessages,
        };
        self.stats.traffic.add(flow, n);
    }
}

/// A read buffer that starts small and doubles, up to [`READ_BUF`], whenever a read fills it:
/// an idle session holds 2 KiB, a bulk transfer still reads 32 KiB per system call.
struct ReadBuf(Vec<u8>);

impl ReadBuf {
    const START: usize = 1024;

    fn new() -> Self {
        Self(vec![0; Self::START])
    }

    async fn read_from<R: AsyncRead + Unpin>(&mut self, from: &mut R) -> std::io::Result<&[u8]> {
        let n = from.read(&mut self.0).await?;
        if n == self.0.len() && self.0.len() < READ_BUF {
            // Grown after this chunk is handed out: the chunk stays where it was read.
            let mut bigger = vec![0; self.0.len() * 2];
            bigger[..n].copy_from_slice(&self.0[..n]);
            self.0 = bigger;
        }
        Ok(&self.0[..n])
    }
}

/// Writes `chunk` to `to` and queues its messages for observation once the write has started
/// (its first poll), so observation neither delays the bytes nor falls behind a response to them:
/// the chunk is queued before the task can yield.
async fn forward<W: AsyncWrite + Unpin>(
    to: &mut W,
    chunk: &[u8],
    scanner: &mut FrameScanner,
    direction: Direction<'_>,
) -> (std::io::Result<()>, Result<(), ProtocolError>) {
    // Numbered before any byte goes out: the admin API waits for every number it has seen.
    let number = direction.backlog.forwarding();
    let mut queued = None;
    let mut write = std::pin::pin!(async {
        to.write_all(chunk).await?;
        to.flush().await
    });
    let written = std::future::poll_fn(|cx| {
        let poll = write.as_mut().poll(cx);
        if queued.is_none() {
            queued = Some(queue(scanner, chunk, direction, number));
        }
        poll
    })
    .await;
    let queued = queued.unwrap_or_else(|| queue(scanner, chunk, direction, number));
    (written, queued)
}

async fn client_to_upstream<R, W>(from: &mut R, to: &mut W, direction: Direction<'_>) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let stats = direction.stats;
    let mut scanner = FrameScanner::new(MAX_MESSAGE_LEN, OBSERVED_PREFIX);
    let mut buf = ReadBuf::new();
    loop {
        let chunk = buf.read_from(from).await.map_err(SessionError::ClientIo)?;
        if chunk.is_empty() {
            // Passed on: the server ends the session once it has answered what it was sent. A
            // shutdown that cannot go out (a TLS leg's close_notify stuck behind a full send
            // buffer) would leave the server waiting for ever: then both legs close at once.
            return match tokio::time::timeout(CLOSE_WAIT, to.shutdown()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(SessionError::UpstreamIo(e)),
                Err(_) => Err(SessionError::UpstreamIo(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the end of the client's requests could not be passed on",
                ))),
            };
        }
        let (written, observed) = forward(to, chunk, &mut scanner, direction).await;
        observed.map_err(SessionError::ClientProtocol)?;
        written.map_err(SessionError::UpstreamIo)?;
        stats.traffic.add(Flow::BytesToUpstream, chunk.len() as u64);
    }
}

async fn upstream_to_client<R, W>(
    from: &mut R,
    to: &mut W,
    binding: ChannelBinding,
    stripped: &AtomicBool,
    at_boundary: &AtomicBool,
    direction: Direction<'_>,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let stats = direction.stats;
    let Some(leftover) = startup_phase(from, to, binding, stripped, direction).await? else {
        return Ok(());
    };
    let mut scanner = FrameScanner::new(MAX_MESSAGE_LEN, OBSERVED_PREFIX);
    let mut buf = ReadBuf::new();
    let mut chunk: &[u8] = &leftover;
    loop {
        if !chunk.is_empty() {
            at_boundary.store(false, Ordering::Relaxed);
            let (written, observed) = forward(to, chunk, &mut scanner, direction).await;
            written.map_err(SessionError::ClientIo)?;
            observed.map_err(SessionError::UpstreamProtocol)?;
            at_boundary.store(scanner.at_boundary(), Ordering::Relaxed);
            stats.traffic.add(Flow::BytesToClient, chunk.len() as u64);
        }
        chunk = buf.read_from(from).await.map_err(SessionError::UpstreamIo)?;
        if chunk.is_empty() {
            return Ok(());
        }
    }
}

/// Frames `chunk` and queues each message in the session's backlog.
fn queue(scanner: &mut FrameScanner, chunk: &[u8], direction: Direction<'_>, number: u64) -> Result<(), ProtocolError> {
    let chunk = Framed { scanner, chunk };
    let (result, messages) = direction.backlog.queue(direction.side, number, Instant::now(), chunk, direction.stats);
    direction.count_messages(messages);
    result
}

/// A chunk of one direction's stream and the scanner that frames it.
struct Framed<'a> {
    scanner: &'a mut FrameScanner,
    chunk: &'a [u8],
}

impl Messages for Framed<'_> {
    type Error = ProtocolError;

    fn scan(self, sink: impl FnMut(ScannedMessage<'_>)) -> Result<(), ProtocolError> {
        self.scanner.feed(self.chunk, sink)
    }
}

/// Forwards the server's authentication-phase messages whole, rewriting AuthenticationSASL to
/// drop SCRAM-SHA-256-PLUS, until the first ReadyForQuery. Returns the bytes read past it, or
/// `None` when the server closed first (a failed login).
async fn startup_phase<R, W>(
    from: &mut R,
    to: &mut W,
    binding: ChannelBinding,
    stripped: &AtomicBool,
    direction: Direction<'_>,
) -> Result<Option<Vec<u8>>, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let stats = direction.stats;
    // Logins are a few hundred bytes; the buffer grows if a server says more. Sessions that
    // start together would otherwise each hold 32 KiB at once, which the allocator keeps.
    let mut buf = BytesMut::with_capacity(STARTUP_BUF);
    let mut out = BytesMut::new();
    loop {
        if from.read_buf(&mut buf).await.map_err(SessionError::UpstreamIo)? == 0 {
            to.write_all(&buf).await.map_err(SessionError::ClientIo)?;
            return Ok(None);
        }
        let mut ready = false;
        let at = Instant::now();
        // Numbered once a whole message is read: every number announced is then observed.
        let mut number = None;
        while let Some((frame, used)) = parse_message(&buf, MAX_MESSAGE_LEN).map_err(SessionError::UpstreamProtocol)? {
            let number = *number.get_or_insert_with(|| direction.backlog.forwarding());
            let message = ScannedMessage { tag: frame.tag, body_len: frame.body.len(), body: frame.body };
            let (Ok(()), messages) = direction.backlog.queue(Side::Server, number, at, message, stats);
            direction.count_messages(messages);
            if BackendTag::from_byte(frame.tag) == BackendTag::ErrorResponse {
                direction.backlog.span().in_scope(|| log_refused_login(frame.body));
            }
            match without_channel_binding(frame).filter(|_| binding == ChannelBinding::Strip) {
                Some(rewritten) => {
                    stripped.store(true, Ordering::Relaxed);
                    out.extend_from_slice(&rewritten);
                }
                None => out.extend_from_slice(&buf[..used]),
            }
            ready = BackendTag::from_byte(frame.tag) == BackendTag::ReadyForQuery;
            buf.advance(used);
            if ready {
                break;
            }
        }
        to.write_all(&out).await.map_err(SessionError::ClientIo)?;
        to.flush().await.map_err(SessionError::ClientIo)?;
        stats.traffic.add(Flow::BytesToClient, out.len() as u64);
        out.clear();
        if ready {
            return Ok(Some(buf.to_vec()));
        }
    }
}

/// Refused logins (a wrong password, an unknown database): the server's reason, in pgvisor's log
/// too, at most one line a second (a client can trigger it at will).
fn log_refused_login(body: &[u8]) {
    static REFUSED_LOGINS: LogLimiter = LogLimiter::per_second();
    let Ok(fields) = ErrorFields::parse(body) else { return };
    if let Some(suppressed) = REFUSED_LOGINS.allow() {
        tracing::warn!(
            sqlstate = fields.sqlstate().unwrap_or("?"),
            reason = %fields.message(),
            suppressed,
            "the server refused the login"
        );
    }
}

/// AuthenticationSASL without SCRAM-SHA-256-PLUS, or `None` when the frame needs no change.
///
/// Channel binding ties SCRAM to the TLS session the server sees, which ends at the proxy, so a
/// client choosing -PLUS would always fail; without it the client picks SCRAM-SHA-256.
fn without_channel_binding(frame: Frame<'_>) -> Option<BytesMut> {
    if BackendTag::from_byte(frame.tag) != BackendTag::Authentication {
        return None;
    }
    let Ok(Authentication::Sasl(mechanisms)) = Authentication::parse(frame.body) else {
        return None;
    };
    if !mechanisms.contains(&SCRAM_PLUS) {
        return None;
    }
    let kept =
        mechanisms.into_iter().filter(|m| *m != SCRAM_PLUS).map(|m| String::from_utf8_lossy(m).into_owned()).collect();
    let mut out = BytesMut::new();
    PgAuthentication::SASL(kept).encode(&mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(m: PgAuthentication) -> BytesMut {
        let mut b = BytesMut::new();
        m.encode(&mut b).unwrap();
        b
    }

    #[test]
    fn scram_plus_is_removed() {
        let bytes = encode(PgAuthentication::SASL(vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()]));
        let (frame, _) = parse_message(&bytes, 1024).unwrap().unwrap();
        let rewritten = without_channel_binding(frame).unwrap();
        let (frame, used) = parse_message(&rewritten, 1024).unwrap().unwrap();
        assert_eq!(used, rewritten.len());
        assert_eq!(Authentication::parse(frame.body).unwrap(), Authentication::Sasl(vec![&b"SCRAM-SHA-256"[..]]));
    }

    #[test]
    fn other_messages_are_untouched() {
        let bytes = encode(PgAuthentication::SASL(vec!["SCRAM-SHA-256".into()]));
        let (frame, _) = parse_message(&bytes, 1024).unwrap().unwrap();
        assert!(without_channel_binding(frame).is_none());
        let bytes = encode(PgAuthentication::Ok);
        let (frame, _) = parse_message(&bytes, 1024).unwrap().unwrap();
        assert!(without_channel_binding(frame).is_none());
    }
}
