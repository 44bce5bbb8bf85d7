//! One client session: the startup-phase negotiation, the upstream connection, then the relay.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use advisor::observer::SessionObserver;
use advisor::sessions::{SessionEntry, SessionIdentity};

use protocol::parse_startup;
use protocol::startup::{StartupPacket, TLS_HANDSHAKE_RECORD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info, warn, Instrument, Span};

use crate::counters::ProxyCounters;
use crate::logging::LogLimiter;
use crate::net::backlog::Backlog;
use crate::net::error::{fatal_error_response, SessionError};
use crate::net::observation::SessionObservation;
use crate::net::relay::ChannelBinding;
use crate::net::shared::Shared;
use crate::net::stream::Conn;

/// How long a client may take to finish the startup-phase negotiation (as PostgreSQL's
/// `authentication_timeout` default).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Identity the client announced in its StartupMessage.
#[derive(Debug, Clone, Default)]
pub struct ClientIdentity {
    /// `user` parameter.
    pub user: String,
    /// `database` parameter (defaults to the user name, as in PostgreSQL).
    pub database: String,
    /// `application_name` parameter.
    pub application_name: String,
    /// True when the session is a replication connection (forwarded, not analysed).
    pub replication: bool,
}

/// The outcome of the startup-phase negotiation.
enum Negotiated {
    /// A StartupMessage arrived: start a session with this packet.
    Session { packet: Vec<u8>, identity: ClientIdentity },
    /// A CancelRequest arrived: forward it and close.
    Cancel { packet: Vec<u8>, pid: u32 },
}

/// Serves one accepted client connection to its end.
///
/// Log lines name the session through a span. It is entered around the set-up and for each log
/// line of the relay, not on every poll of the relay: entering a span costs the subscriber a
/// thread-local stack push and a filter check, on every read and write of every session.
pub async fn serve(tcp: TcpStream, peer: SocketAddr, id: u64, shared: Arc<Shared>) {
    let span = tracing::info_span!("session", id, client = %peer);
    // The session leaves the registry however this ends, even by a panic.
    let _registered = Registered { id, shared: &shared };
    let result = handle(tcp, peer, id, &shared, &span).await;
    let _in_span = span.enter();
    match result {
        Ok(()) => debug!("session closed"),
        Err(e) if e.is_quiet() => debug!(error = %e, "session closed"),
        Err(e) => {
            // Clients can end sessions badly at will (malformed packets): rate-limited.
            static SESSION_ERRORS: LogLimiter = LogLimiter::per_second();
            if let Some(suppressed) = SESSION_ERRORS.allow() {
                warn!(error = %e, suppressed, "session ended with an error");
            }
        }
    }
}

/// Removes a session from the advisor's registry when dropped.
struct Registered<'a> {
    id: u64,
    shared: &'a Shared,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.shared.advisor.sessions.close(self.id);
    }
}

async fn handle(tcp: TcpStream, peer: SocketAddr, id: u64, shared: &Shared, span: &Span) -> Result<(), SessionError> {
    let _ = tcp.set_nodelay(true);
    let negotiation = tokio::time::timeout(STARTUP_TIMEOUT, negotiate(tcp, shared)).instrument(span.clone()).await;
    let (client, negotiated) = match negotiation {
        Err(_) => return Err(SessionError::ClientIo(std::io::ErrorKind::TimedOut.into())),
        Ok(Ok(pair)) => pair,
        Ok(Err((client, e))) => {
            if matches!(e, SessionError::ClientStartup(_) | SessionError::DuplicateEncryptionRequest(_)) {
                ProxyCounters::add(&shared.stats.client_protocol_errors, 1);
            }
            if let Some(client) = client {
                reply_error(client, &e).await;
            }
            return Err(e);
        }
    };
    match negotiated {
        Negotiated::Cancel { packet, pid } => forward_cancel(&packet, pid, shared).instrument(span.clone()).await,
        Negotiated::Session { packet, identity } => {
            span.in_scope(|| info!(user = %identity.user, database = %identity.database, application_name = %identity.application_name, tls = client.is_tls(), "session started"));
            let mut upstream = match shared.upstream.connect().instrument(span.clone()).await {
                Ok(upstream) => upstream,
                Err(e) => {
                    ProxyCounters::add(&shared.stats.upstream_connect_errors, 1);
                    reply_error(client, &e).await;
                    return Err(e);
                }
            };
            if let Err(e) = upstream.write_all(&packet).await {
                reply_error(
                    client,
                    &SessionError::UpstreamConnect { addr: shared.upstream.addr().to_string(), reason: e.to_string() },
                )
                .await;
                return Err(SessionError::UpstreamIo(e));
            }
            if let Err(e) = upstream.flush().await {
                reply_error(
                    client,
                    &SessionError::UpstreamConnect { addr: shared.upstream.addr().to_string(), reason: e.to_string() },
                )
                .await;
                return Err(SessionError::UpstreamIo(e));
            }
            let (mut tap, progress) = observe(&identity, peer, id, client.is_tls(), shared);
            tap.span = span.clone();
            let backlog = Backlog::new(tap, progress, &shared.observation);
            // Channel binding hashes the certificate the client sees; it only survives the proxy
            // when the upstream presents that very certificate (pgvisor given the server's own).
            let client_tls = client.is_tls();
            let binding = match (&shared.client_leaf, upstream.peer_leaf()) {
                (Some(ours), Some(theirs)) if client_tls && ours.as_slice() == theirs => ChannelBinding::PassThrough,
                _ => ChannelBinding::Strip,
            };
            let (result, stripped) =
                crate::net::relay::relay(client, upstream, binding, &backlog, &shared.stats, &shared.force_close).await;
            backlog.finish();
            if stripped && client_tls && !shared.warned_channel_binding.swap(true, Ordering::Relaxed) {
                let _in_span = span.enter();
                warn!(
                    "the upstream offers SCRAM channel binding over TLS, and pgvisor's client-leg certificate differs \
                     from the server's, so SCRAM-SHA-256-PLUS was hidden from the client. libpq clients with \
                     channel_binding=prefer (the default) over TLS then fail with 'SCRAM channel binding negotiation \
                     error'. Fix: give pgvisor the server's own certificate and key (--tls-cert/--tls-key) so channel \
                     binding works end to end, or use --upstream-tls disable for a loopback upstream, or \
                     channel_binding=disable in the client. See docs/tls.md."
                );
            }
            if let Err(SessionError::ClientProtocol(_)) = &result {
                ProxyCounters::add(&shared.stats.client_protocol_errors, 1);
            }
            result
        }
    }
}

/// Registers the session and builds its observer; replication connections are only forwarded.
fn observe(
    identity: &ClientIdentity,
    peer: SocketAddr,
    id: u64,
    tls: bool,
    shared: &Shared,
) -> (SessionObservation, Option<Arc<SessionEntry>>) {
    if identity.replication {
        return (SessionObservation::default(), None);
    }
    let entry = shared.advisor.sessions.open(SessionIdentity {
        id,
        user: identity.user.clone(),
        database: identity.database.clone(),
        application_name: identity.application_name.clone(),
        client_addr: peer,
        tls,
        connected_at: SystemTime::now(),
    });
    let config = shared.advisor.config.n_plus_one.clone();
    let checks = shared.advisor.config.session_checks.clone();
    let observer = SessionObserver::new(id, entry.clone(), shared.advisor.events.clone(), config)
        .with_checks(checks)
        .with_explain_min(shared.advisor.config.missing_index.explain_min)
        .with_injected_panic(shared.advisor.config.injected_panics.observer.clone());
    (SessionObservation::observing(id, observer, shared.advisor.clone()), Some(entry))
}

async fn reply_error(mut client: Conn, e: &SessionError) {
    if let Some((sqlstate, message)) = e.user_facing() {
        let _ = client.write_all(&fatal_error_response(sqlstate, &message)).await;
        let _ = client.flush().await;
    }
    let _ = client.shutdown().await;
}

type NegotiationError = (Option<Conn>, SessionError);

/// Answers SSLRequest/GSSENCRequest (and direct TLS) until a StartupMessage or CancelRequest.
async fn negotiate(tcp: TcpStream, shared: &Shared) -> Result<(Conn, Negotiated), NegotiationError> {
    let mut client = match direct_tls(tcp, shared).await {
        Ok(conn) => conn,
        Err(e) => return Err((None, e)),
    };
    loop {
        let packet = match read_startup_packet(&mut client).await {
            Ok(packet) => packet,
            Err(e) => return Err((Some(client), e)),
        };
        let parsed = match parse_startup(&packet) {
            Ok(Some((parsed, _))) => parsed,
            Ok(None) => unreachable!("read_startup_packet reads the whole packet"),
            Err(e) => return Err((Some(client), SessionError::ClientStartup(e))),
        };
        match parsed {
            StartupPacket::SslRequest if client.is_tls() => {
                return Err((Some(client), SessionError::DuplicateEncryptionRequest("SSLRequest")));
            }
            StartupPacket::SslRequest => match (shared.client_tls(), client) {
                (Some(acceptor), Conn::Plain(mut tcp)) => {
                    if let Err(e) = tcp.write_all(b"S").await {
                        return Err((None, SessionError::ClientIo(e)));
                    }
                    match acceptor.accept(tcp).await {
                        Ok(tls) => client = Conn::Tls(Box::new(tls.into())),
                        Err(e) => return Err((None, SessionError::ClientTls(e))),
                    }
                }
                (_, mut plain) => {
                    if let Err(e) = plain.write_all(b"N").await {
                        return Err((None, SessionError::ClientIo(e)));
                    }
                    client = plain;
                }
            },
            StartupPacket::GssEncRequest if client.is_tls() => {
                return Err((Some(client), SessionError::DuplicateEncryptionRequest("GSSENCRequest")));
            }
            StartupPacket::GssEncRequest => {
                if let Err(e) = client.write_all(b"N").await {
                    return Err((None, SessionError::ClientIo(e)));
                }
            }
            StartupPacket::CancelRequest { pid, .. } => return Ok((client, Negotiated::Cancel { pid, packet })),
            StartupPacket::Startup { params, .. } => {
                let get = |name| params.get(name).map(|v| String::from_utf8_lossy(v).into_owned());
                let user = get("user").unwrap_or_default();
                let identity = ClientIdentity {
                    database: get("database").unwrap_or_else(|| user.clone()),
                    application_name: get("application_name").unwrap_or_default(),
                    replication: get("replication").is_some_and(|r| r != "false" && r != "off" && r != "0"),
                    user,
                };
                return Ok((client, Negotiated::Session { packet, identity }));
            }
        }
    }
}

/// PostgreSQL 17's `sslnegotiation=direct`: the client opens with a TLS ClientHello.
async fn direct_tls(tcp: TcpStream, shared: &Shared) -> Result<Conn, SessionError> {
    let mut first = [0u8; 1];
    let peeked = tcp.peek(&mut first).await.map_err(SessionError::ClientIo)?;
    if peeked == 0 || first[0] != TLS_HANDSHAKE_RECORD {
        return Ok(Conn::Plain(tcp));
    }
    let Some(acceptor) = shared.client_tls() else {
        return Err(SessionError::DirectTlsRefused);
    };
    let tls = acceptor.accept(tcp).await.map_err(SessionError::ClientTls)?;
    Ok(Conn::Tls(Box::new(tls.into())))
}

/// Reads exactly one startup-phase packet, checking its length before reading the body.
/// Reading exactly (never ahead) matters: bytes sent after SSLRequest but before the TLS
/// handshake must not be treated as encrypted data (CVE-2021-23214).
async fn read_startup_packet(client: &mut Conn) -> Result<Vec<u8>, SessionError> {
    let mut head = [0u8; 4];
    client.read_exact(&mut head).await.map_err(SessionError::ClientIo)?;
    parse_startup(&head).map_err(SessionError::ClientStartup)?;
    let len = u32::from_be_bytes(head) as usize;
    let mut packet = vec![0u8; len];
    packet[..4].copy_from_slice(&head);
    client.read_exact(&mut packet[4..]).await.map_err(SessionError::ClientIo)?;
    Ok(packet)
}

/// Sends the client's CancelRequest, key unchanged, to the upstream: the key the client holds is
/// the upstream's own, because BackendKeyData passed through untouched.
async fn forward_cancel(packet: &[u8], pid: u32, shared: &Shared) -> Result<(), SessionError> {
    ProxyCounters::add(&shared.stats.cancel_requests, 1);
    let mut upstream = shared.upstream.connect().await?;
    upstream.write_all(packet).await.map_err(SessionError::UpstreamIo)?;
    upstream.flush().await.map_err(SessionError::UpstreamIo)?;
    // The server closes the connection once it has processed the request.
    let mut sink = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(5), upstream.read(&mut sink)).await;
    info!(backend_pid = pid, "cancel request forwarded");
    Ok(())
}
