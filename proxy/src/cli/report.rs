//! `pgvisor report`: the top queries of a running pgvisor, as a table in the terminal.

use std::fmt::Write as _;
use std::net::SocketAddr;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why the report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The admin port did not answer.
    #[error("cannot reach pgvisor's admin port at {addr}: {source} (is pgvisor running? pass --admin HOST:PORT)")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The admin port answered with an error.
    #[error("admin port answered {status}: {body}")]
    Http {
        /// HTTP status line.
        status: String,
        /// Response body.
        body: String,
    },
    /// The answer was not the expected JSON.
    #[error("unexpected answer from the admin port: {0}")]
    Decode(String),
}

/// One row of `/api/queries`.
#[derive(Debug, Deserialize)]
pub struct QueryRow {
    /// 16 hex digits.
    pub fingerprint: String,
    /// Normalised SQL.
    pub query: String,
    /// Executions.
    pub calls: u64,
    /// Rows.
    pub rows: u64,
    /// Errors.
    pub errors: u64,
    /// Total time.
    pub total_ms: f64,
    /// Mean time.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

#[derive(Debug, Deserialize)]
struct Queries {
    queries: Vec<QueryRow>,
}

/// `GET path` on the admin port, returning the body of a 200 answer.
pub async fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<String, ReportError> {
    http_request(addr, "GET", path, token).await
}

/// `method path` on the admin port (HTTP/1.1, no body), returning the body of a 200 answer.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<String, ReportError> {
    let mut stream = TcpStream::connect(addr).await.map_err(|source| ReportError::Connect { addr, source })?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|source| ReportError::Connect { addr, source })?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.map_err(|source| ReportError::Connect { addr, source })?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| ReportError::Decode("no HTTP header".into()))?;
    let status = head.lines().next().unwrap_or_default().to_string();
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    if !status.contains(" 200 ") {
        return Err(ReportError::Http { status, body });
    }
    Ok(body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Fetches the top queries and renders them as a table.
pub async fn report(addr: SocketAddr, token: Option<&str>, sort: &str, limit: usize) -> Result<String, ReportError> {
    let body = http_get(addr, &format!("/api/queries?sort={sort}&limit={limit}"), token).await?;
    let parsed: Queries = serde_json::from_str(&body).map_err(|e| ReportError::Decode(e.to_string()))?;
    Ok(render(&parsed.queries, sort))
}

/// Renders rows as a fixed-width table.
pub fn render(rows: &[QueryRow], sort: &str) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return "No queries seen yet: point a client at pgvisor and run something.\n".into();
    }
    let _ = writeln!(out, "Top {} queries by {sort}", rows.len());
    let _ = writeln!(
        out,
        "{:<16}  {:>9}  {:>9}  {:>6}  {:>11}  {:>9}  {:>9}  {:>9}  {:>9}  query",
        "fingerprint", "calls", "rows", "errors", "total_ms", "mean_ms", "p50_ms", "p95_ms", "p99_ms"
    );
    for r in rows {
        let query: String = r.query.split_whitespace().collect::<Vec<_>>().join(" ");
        let query = match query.char_indices().nth(100) {
            Some((i, _)) => format!("{}...", &query[..i]),
            None => query,
        };
        let _ = writeln!(
            out,
            "{:<16}  {:>9}  {:>9}  {:>6}  {:>11.1}  {:>9.3}  {:>9.3}  {:>9.3}  {:>9.3}  {}",
            r.fingerprint, r.calls, r.rows, r.errors, r.total_ms, r.mean_ms, r.p50_ms, r.p95_ms, r.p99_ms, query
        );
    }
    out
}
