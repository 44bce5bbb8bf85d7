//! The forwarding loop: bytes go on as soon as they are read, framed beside the copy.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::{Buf, BytesMut};
use pgwire::messages::startup::Authentication as PgAuthentication;
use pgwire::messages::Message;
use protocol::backend::{Authentication, ErrorFields};
use protocol::{parse_message, BackendTag, Frame, FrameScanner, ProtocolError, ScannedMessage, MAX_MESSAGE_LEN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use advisor::sessions::SessionEntry;

use crate::counters::ProxyCounters;
use crate::logging::LogLimiter;
use crate::net::error::{fatal_error_response, SessionError};
use crate::net::observation::SessionObservation;
use crate::net::stream::Conn;

/// Bytes read per system call in each direction.
const READ_BUF: usize = 32 * 1024;
/// How much of each message body the tap may see.
const OBSERVED_PREFIX: usize = 64 * 1024;
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

/// Relays a session until either side closes, a side breaks the protocol, or `close` fires.
/// Also returns whether SCRAM-SHA-256-PLUS was removed from the server's offer.
///
/// `progress`, when the session is observed, is told before bytes are forwarded and after they
/// were observed, so the admin API can wait for observations a client may already depend on.
pub async fn relay(
    client: Conn,
    upstream: Conn,
    binding: ChannelBinding,
    tap: &Mutex<SessionObservation>,
    progress: Option<&SessionEntry>,
    stats: &ProxyCounters,
    close: &CancellationToken,
) -> (Result<(), SessionError>, bool) {
    let stripped = AtomicBool::new(false);
    // True while the client has been sent only whole messages: an error of ours may follow.
    let client_at_boundary = AtomicBool::new(true);
    let (mut client_rd, mut client_wr) = client.split();
    let (mut upstream_rd, mut upstream_wr) = upstream.split();
    let to_upstream =
        Direction { tap, progress, on_message: SessionObservation::frontend, counter: &stats.frontend_messages };
    let to_client =
        Direction { tap, progress, on_message: SessionObservation::backend, counter: &stats.backend_messages };
    let outcome = tokio::select! {
        r = client_to_upstream(&mut client_rd, &mut upstream_wr, to_upstream, stats) => r,
        r = upstream_to_client(&mut upstream_rd, &mut client_wr, binding, &stripped, &client_at_boundary, to_client, stats) => r,
        _ = close.cancelled() => Err(SessionError::ShuttingDown),
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

/// One direction's observation: the tap both directions share, and what to call on it.
#[derive(Clone, Copy)]
struct Direction<'a> {
    tap: &'a Mutex<SessionObservation>,
    progress: Option<&'a SessionEntry>,
    on_message: fn(&mut SessionObservation, ScannedMessage<'_>),
    counter: &'a AtomicU64,
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
        let full = n == self.0.len();
        let chunk_len = n;
        if full && self.0.len() < READ_BUF {
            // Grown after this chunk is handed out: the chunk stays where it was read.
            let mut bigger = vec![0; self.0.len() * 2];
            bigger[..n].copy_from_slice(&self.0[..n]);
            self.0 = bigger;
        }
        Ok(&self.0[..chunk_len])
    }
}

/// Writes `chunk` to `to` and shows its messages to the tap, normally after the write so that
/// observation never delays the bytes. When the write cannot finish at once (the peer is slow),
/// the chunk is observed before the task yields: a response to these bytes can then never be
/// observed before the request itself.
async fn forward<W: AsyncWrite + Unpin>(
    to: &mut W,
    chunk: &[u8],
    scanner: &mut FrameScanner,
    direction: Direction<'_>,
) -> (std::io::Result<()>, Result<(), ProtocolError>) {
    // `forwarding` and `observed` bracket one stretch with no yield in between (the first poll of
    // the write, then the observation), so the session's sequence is odd only while this task
    // runs: the admin API never waits behind a slow peer, and the two directions (one task) never
    // overlap their brackets.
    if let Some(p) = direction.progress {
        p.forwarding();
    }
    let mut observed = None;
    let observe_now = |scanner: &mut FrameScanner| {
        let result = observe(scanner, chunk, direction);
        if let Some(p) = direction.progress {
            p.observed();
        }
        result
    };
    let mut write = std::pin::pin!(async {
        to.write_all(chunk).await?;
        to.flush().await
    });
    let written = std::future::poll_fn(|cx| {
        let poll = write.as_mut().poll(cx);
        if poll.is_pending() && observed.is_none() {
            observed = Some(observe_now(scanner));
        }
        poll
    })
    .await;
    let observed = observed.unwrap_or_else(|| observe_now(scanner));
    (written, observed)
}

async fn client_to_upstream<R, W>(
    from: &mut R,
    to: &mut W,
    direction: Direction<'_>,
    stats: &ProxyCounters,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scanner = FrameScanner::new(MAX_MESSAGE_LEN, OBSERVED_PREFIX);
    let mut buf = ReadBuf::new();
    loop {
        let chunk = buf.read_from(from).await.map_err(SessionError::ClientIo)?;
        if chunk.is_empty() {
            return Ok(());
        }
        let (written, observed) = forward(to, chunk, &mut scanner, direction).await;
        observed.map_err(SessionError::ClientProtocol)?;
        written.map_err(SessionError::UpstreamIo)?;
        ProxyCounters::add(&stats.bytes_to_upstream, chunk.len() as u64);
    }
}

async fn upstream_to_client<R, W>(
    from: &mut R,
    to: &mut W,
    binding: ChannelBinding,
    stripped: &AtomicBool,
    at_boundary: &AtomicBool,
    direction: Direction<'_>,
    stats: &ProxyCounters,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Some(leftover) = startup_phase(from, to, binding, stripped, direction.tap, stats).await? else {
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
            ProxyCounters::add(&stats.bytes_to_client, chunk.len() as u64);
        }
        chunk = buf.read_from(from).await.map_err(SessionError::UpstreamIo)?;
        if chunk.is_empty() {
            return Ok(());
        }
    }
}

/// Frames `chunk` and shows each message to the tap; one lock per chunk, never held across I/O.
fn observe(scanner: &mut FrameScanner, chunk: &[u8], direction: Direction<'_>) -> Result<(), ProtocolError> {
    let mut tap = direction.tap.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tap.chunk();
    let mut messages = 0;
    let result = scanner.feed(chunk, |m| {
        messages += 1;
        (direction.on_message)(&mut tap, m);
    });
    ProxyCounters::add(direction.counter, messages);
    result
}

/// Forwards the server's authentication-phase messages whole, rewriting AuthenticationSASL to
/// drop SCRAM-SHA-256-PLUS, until the first ReadyForQuery. Returns the bytes read past it, or
/// `None` when the server closed first (a failed login).
async fn startup_phase<R, W>(
    from: &mut R,
    to: &mut W,
    binding: ChannelBinding,
    stripped: &AtomicBool,
    tap: &Mutex<SessionObservation>,
    stats: &ProxyCounters,
) -> Result<Option<Vec<u8>>, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(READ_BUF);
    let mut out = BytesMut::new();
    loop {
        if from.read_buf(&mut buf).await.map_err(SessionError::UpstreamIo)? == 0 {
            to.write_all(&buf).await.map_err(SessionError::ClientIo)?;
            return Ok(None);
        }
        let mut ready = false;
        tap.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).chunk();
        while let Some((frame, used)) = parse_message(&buf, MAX_MESSAGE_LEN).map_err(SessionError::UpstreamProtocol)? {
            {
                let mut tap = tap.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                tap.backend(ScannedMessage { tag: frame.tag, body_len: frame.body.len(), body: frame.body });
            }
            ProxyCounters::add(&stats.backend_messages, 1);
            if BackendTag::from_byte(frame.tag) == BackendTag::ErrorResponse {
                let span = tap.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).span.clone();
                span.in_scope(|| log_refused_login(frame.body));
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
        ProxyCounters::add(&stats.bytes_to_client, out.len() as u64);
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
