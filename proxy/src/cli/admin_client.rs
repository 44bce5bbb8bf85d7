//! The CLI's HTTP client for a running pgvisor's admin port (`pgvisor report`, `pgvisor watch`,
//! the integration tests): hyper's connection-level HTTP/1.1 client, one TCP connection per
//! request, with the bearer token of `--admin-token` and bounded waits. The admin port is plain
//! HTTP/1.1 on a known address, so there is no pool, no TLS and no redirect to follow.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, HOST};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Time allowed to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed from the request to the response head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The TCP connection failed (refused, unreachable...).
    #[error("{0}")]
    Connect(#[source] std::io::Error),
    /// The TCP connection was not made in time.
    #[error("no connection within {CONNECT_TIMEOUT:?}")]
    ConnectTimeout,
    /// Connected, but no response head came in time.
    #[error("no HTTP answer within {HEAD_TIMEOUT:?}")]
    NoAnswer,
    /// The peer closed the connection without answering.
    #[error("it closed the connection without an HTTP answer")]
    Closed,
    /// The peer answered, but not in HTTP/1.x (PostgreSQL's port, pgvisor's --listen port...).
    #[error("it answered something other than HTTP ({0})")]
    NotHttp(#[source] hyper::Error),
    /// The connection broke after it was made.
    #[error("{0}")]
    Http(#[source] hyper::Error),
    /// The request itself could not be written: a token or path no HTTP header or URI can carry.
    #[error("cannot make the request: {0}")]
    Invalid(String),
}

impl RequestError {
    /// True when nothing was listening or reachable at the address (as opposed to something that
    /// answered, or a request that could not be made).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RequestError::Connect(_) | RequestError::ConnectTimeout)
    }

    /// Sorts a hyper error met before the response head.
    fn before_head(e: hyper::Error) -> Self {
        if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
            RequestError::NotHttp(e)
        } else if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
            RequestError::Closed
        } else {
            RequestError::Http(e)
        }
    }
}

/// Sends `method path` (no body) to the admin port at `addr` on a new connection and returns the
/// response once its head arrived; the body streams from the connection as it is read.
pub async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    accept: Option<&'static str>,
) -> Result<Response<Incoming>, RequestError> {
    let request = build(addr, method, path, token, accept)?;
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(RequestError::Connect(e)),
        Err(_) => return Err(RequestError::ConnectTimeout),
    };
    let exchange = async {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map_err(RequestError::Http)?;
        // The connection task reads and writes the socket; it ends when the response (or its
        // body) and `sender` are dropped, or when the peer closes.
        tokio::spawn(connection);
        sender.send_request(request).await.map_err(RequestError::before_head)
    };
    tokio::time::timeout(HEAD_TIMEOUT, exchange).await.unwrap_or(Err(RequestError::NoAnswer))
}

/// What a refusal says: the `error` of pgvisor's JSON error body, else the body as it came.
pub fn error_text(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
}

fn build(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    accept: Option<&'static str>,
) -> Result<Request<Empty<Bytes>>, RequestError> {
    let mut builder = Request::builder().method(method).uri(path).header(HOST, addr.to_string());
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            RequestError::Invalid("the admin token holds characters an HTTP header cannot carry".into())
        })?;
        builder = builder.header(AUTHORIZATION, value);
    }
    if let Some(accept) = accept {
        builder = builder.header(ACCEPT, accept);
    }
    builder.body(Empty::new()).map_err(|e| RequestError::Invalid(format!("{path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_host_token_and_accept() {
        let addr: SocketAddr = "127.0.0.1:6480".parse().unwrap();
        let request = build(addr, Method::GET, "/api/queries?tag=a%3Ab", Some("s3cret"), Some("text/event-stream"))
            .expect("a valid request");
        assert_eq!(request.uri().path_and_query().unwrap().as_str(), "/api/queries?tag=a%3Ab");
        assert_eq!(request.headers()[HOST], "127.0.0.1:6480");
        assert_eq!(request.headers()[AUTHORIZATION], "Bearer s3cret");
        assert_eq!(request.headers()[ACCEPT], "text/event-stream");
        let anonymous = build(addr, Method::GET, "/healthz", None, None).unwrap();
        assert!(anonymous.headers().get(AUTHORIZATION).is_none());
    }

    #[test]
    fn error_text_prefers_pgvisors_json_error() {
        assert_eq!(error_text(br#"{"error":"sort must be one of total"}"#), "sort must be one of total");
        assert_eq!(error_text(b" plain text\n"), "plain text");
    }

    #[test]
    fn a_token_that_is_no_header_value_is_refused_before_connecting() {
        let addr: SocketAddr = "127.0.0.1:6480".parse().unwrap();
        let refused = build(addr, Method::GET, "/healthz", Some("a\nb"), None);
        assert!(matches!(refused, Err(RequestError::Invalid(ref why)) if why.contains("admin token")), "{refused:?}");
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_and_a_non_http_peer_is_named() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let refused = send(free, Method::GET, "/healthz", None, None).await.unwrap_err();
        assert!(refused.is_unreachable(), "{refused:?}");

        // A PostgreSQL server answers an HTTP request with an ErrorResponse ('E', length...).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp.write_all(b"E\0\0\0\x10SFATAL\0C0A000\0\0").await;
        });
        let not_http = send(addr, Method::GET, "/healthz", None, None).await.unwrap_err();
        assert!(matches!(not_http, RequestError::NotHttp(_)), "{not_http:?}");
        assert!(!not_http.is_unreachable());
    }
}
