//! `pgvisor report`: the top queries of a running pgvisor, as a table in the terminal.

pub mod callers;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde::Deserialize;

use crate::cli::admin_client::{self, RequestError};

/// Time allowed to read a whole response body once its head arrived.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Nothing answered HTTP at the admin address.
    #[error("cannot reach pgvisor's admin port at {addr}: {source} (is pgvisor running? pass --admin HOST:PORT)")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: RequestError,
    },
    /// The request could not be made (a token or path that HTTP cannot carry).
    #[error("cannot ask pgvisor's admin port at {addr}: {source}")]
    Request {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: RequestError,
    },
    /// The admin port answered with an error.
    #[error("{}", http_error_message(status, body))]
    Http {
        /// HTTP status, e.g. `401 Unauthorized`.
        status: String,
        /// Response body.
        body: String,
    },
    /// The answer was not the expected JSON.
    #[error("unexpected answer from the admin port: {0}")]
    Decode(String),
}

/// What a non-200 answer means to the person who ran the command.
fn http_error_message(status: &str, body: &str) -> String {
    let reason = admin_client::error_text(body.as_bytes());
    let code = status.split_whitespace().next().unwrap_or_default();
    match code {
        "401" => format!(
            "admin port answered {status}: the admin token is missing or wrong; pass the token pgvisor was \
             started with as --admin-token T (or set PGVISOR_ADMIN_TOKEN)"
        ),
        "403" => format!("admin port answered {status}: the request was refused ({reason})"),
        _ => format!("admin port answered {status}: {reason}"),
    }
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
    /// Who ran it: per tag key, its values by calls (absent from pgvisors before tags).
    #[serde(default)]
    pub tags: callers::TagCounts,
}

#[derive(Debug, Deserialize)]
struct Queries {
    queries: Vec<QueryRow>,
}

/// `GET path` on the admin port, returning the body of a 200 answer.
pub async fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<String, ReportError> {
    http_request(addr, "GET", path, token).await
}

/// `method path` on the admin port (no request body), returning the body of a 200 answer.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<String, ReportError> {
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|e| ReportError::Request { addr, source: RequestError::Invalid(format!("method {method:?}: {e}")) })?;
    let response = admin_client::send(addr, method, path, token, None).await.map_err(|source| {
        if matches!(source, RequestError::Invalid(_)) {
            ReportError::Request { addr, source }
        } else {
            ReportError::Connect { addr, source }
        }
    })?;
    let status = response.status();
    let body = match tokio::time::timeout(BODY_TIMEOUT, response.into_body().collect()).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(e)) => return Err(ReportError::Connect { addr, source: RequestError::Http(e) }),
        Err(_) => return Err(ReportError::Decode(format!("the answer did not end within {BODY_TIMEOUT:?}"))),
    };
    let body = String::from_utf8_lossy(&body).into_owned();
    if status != StatusCode::OK {
        return Err(ReportError::Http { status: status.to_string(), body });
    }
    Ok(body)
}

/// Fetches the top queries (only those run with `tag`, `key:value`, when given) and renders
/// them as a table.
pub async fn report(
    addr: SocketAddr,
    token: Option<&str>,
    sort: &str,
    limit: usize,
    tag: Option<&str>,
) -> Result<String, ReportError> {
    let body = http_get(addr, &queries_path(sort, limit, tag), token).await?;
    let parsed: Queries = serde_json::from_str(&body).map_err(|e| ReportError::Decode(e.to_string()))?;
    Ok(render(&parsed.queries, sort, tag))
}

/// `/api/queries` with its query string escaped (a route holds `/` and `:`, a value may hold `&`).
fn queries_path(sort: &str, limit: usize, tag: Option<&str>) -> String {
    let limit = limit.to_string();
    let mut params = vec![("sort", sort), ("limit", limit.as_str())];
    params.extend(tag.map(|t| ("tag", t)));
    let query = serde_urlencoded::to_string(params).expect("string pairs always encode");
    format!("/api/queries?{query}")
}

/// Renders rows as a fixed-width table, with a callers column when any query has tags that tell
/// it apart from the others.
pub fn render(rows: &[QueryRow], sort: &str, tag: Option<&str>) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return match tag {
            Some(tag) => format!(
                "No query ran with the tag {}. Tags come from SQL comments (/*route='/users/:id'*/) and \
                 application_name; `pgvisor report` without --tag shows them in its callers column.\n",
                callers::printable(tag)
            ),
            None => "No queries seen yet: point a client at pgvisor and run something.\n".into(),
        };
    }
    let filtered = tag.map(|t| format!(", tagged {}", callers::printable(t))).unwrap_or_default();
    let _ = writeln!(out, "Top {} queries by {sort}{filtered}", rows.len());
    let all_tags: Vec<&callers::TagCounts> = rows.iter().map(|r| &r.tags).collect();
    let common = callers::common(&all_tags);
    if !common.is_empty() {
        let pairs: Vec<String> = common.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "All of them ran with {}", callers::printable(&pairs.join(", ")));
    }
    let cells: Vec<String> = rows.iter().map(|r| callers::cell(&r.tags, r.calls, &common)).collect();
    let callers_column = if cells.iter().any(|c| !c.is_empty()) {
        format!("{:<width$}  ", "callers", width = callers::WIDTH)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{:<16}  {:>9}  {:>9}  {:>6}  {:>11}  {:>9}  {:>9}  {:>9}  {:>9}  {callers_column}query",
        "fingerprint", "calls", "rows", "errors", "total_ms", "mean_ms", "p50_ms", "p95_ms", "p99_ms"
    );
    for (r, cell) in rows.iter().zip(&cells) {
        let query = callers::printable(&r.query.split_whitespace().collect::<Vec<_>>().join(" "));
        let query = callers::cut(&query, 103);
        let cell =
            if callers_column.is_empty() { String::new() } else { format!("{cell:<width$}  ", width = callers::WIDTH) };
        let _ = writeln!(
            out,
            "{:<16}  {:>9}  {:>9}  {:>6}  {:>11.1}  {:>9.3}  {:>9.3}  {:>9.3}  {:>9.3}  {cell}{query}",
            r.fingerprint, r.calls, r.rows, r.errors, r.total_ms, r.mean_ms, r.p50_ms, r.p95_ms, r.p99_ms
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(query: &str, calls: u64, tags: serde_json::Value) -> QueryRow {
        serde_json::from_value(serde_json::json!({
            "fingerprint": "0123456789abcdef", "query": query, "calls": calls, "rows": calls, "errors": 0,
            "total_ms": 1.5, "mean_ms": 0.5, "p50_ms": 0.5, "p95_ms": 0.9, "p99_ms": 1.0, "tags": tags,
        }))
        .unwrap()
    }

    #[test]
    fn the_query_string_is_escaped() {
        assert_eq!(queries_path("calls", 5, None), "/api/queries?sort=calls&limit=5");
        assert_eq!(
            queries_path("total", 20, Some("route:/users/:id?x=1&y")),
            "/api/queries?sort=total&limit=20&tag=route%3A%2Fusers%2F%3Aid%3Fx%3D1%26y"
        );
    }

    #[test]
    fn callers_show_per_query_and_a_shared_application_name_once() {
        let app = |n: u64| serde_json::json!([{"value": "shop-web", "calls": n}]);
        let rows = [
            row(
                "SELECT * FROM users WHERE id = $1",
                7,
                serde_json::json!({
                    "application_name": app(7),
                    "route": [{"value": "/users/:id", "calls": 5}, {"value": "/admin/users", "calls": 2}],
                }),
            ),
            row(
                "SELECT count(*) FROM orders",
                1,
                serde_json::json!({"application_name": app(1), "job": [{"value": "nightly", "calls": 1}]}),
            ),
            row("SELECT 1", 3, serde_json::json!({"application_name": app(3)})),
        ];
        let table = render(&rows, "calls", None);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "Top 3 queries by calls");
        assert_eq!(lines[1], "All of them ran with application_name=shop-web");
        assert!(lines[2].contains("callers") && lines[2].ends_with("query"), "{table}");
        assert!(lines[3].contains("route=/users/:id (5, +1 more)  ") && lines[3].ends_with("WHERE id = $1"), "{table}");
        assert!(lines[4].contains("job=nightly  "), "{table}");
        assert!(!table.contains("application_name=shop-web  "), "said once, not per row:\n{table}");
        let column = lines[2].find("callers").unwrap();
        assert_eq!(lines[3].find("route="), Some(column), "aligned:\n{table}");
    }

    #[test]
    fn no_callers_column_without_tags_and_a_filter_is_named() {
        let table = render(&[row("SELECT 1", 3, serde_json::json!({}))], "total", Some("route:/x"));
        assert!(table.starts_with("Top 1 queries by total, tagged route:/x\n"), "{table}");
        assert!(!table.contains("callers"), "{table}");
        let none = render(&[], "total", Some("route:/nowhere"));
        assert!(none.starts_with("No query ran with the tag route:/nowhere."), "{none}");
        assert!(render(&[], "total", None).starts_with("No queries seen yet"));
    }

    #[test]
    fn refusals_say_what_to_do() {
        let unauthorized = ReportError::Http { status: "401 Unauthorized".into(), body: "{}".into() }.to_string();
        assert!(unauthorized.contains("admin token is missing or wrong") && unauthorized.contains("--admin-token"));
        let bad =
            ReportError::Http { status: "400 Bad Request".into(), body: r#"{"error":"tag must be key:value"}"#.into() };
        assert_eq!(bad.to_string(), "admin port answered 400 Bad Request: tag must be key:value");
    }
}
