//! JSON endpoints (DESIGN.md, "Admin API", version 1).

use std::time::SystemTime;

use advisor::sessions::SessionState;
use advisor::stats::SortBy;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::AdminState;

/// Most rows `/api/queries` returns.
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
pub(crate) struct QueriesParams {
    sort: Option<String>,
    limit: Option<String>,
    /// `key:value`: only fingerprints run with that tag.
    tag: Option<String>,
}

#[derive(Debug, Serialize)]
struct QueryRow {
    fingerprint: String,
    /// The first statement seen as written, constants as `$n` (docs/fingerprints.md).
    query: String,
    /// True when `query` was cut at the stored-text cap (it then ends in "...").
    query_truncated: bool,
    calls: u64,
    rows: u64,
    errors: u64,
    total_ms: f64,
    mean_ms: f64,
    min_ms: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Per tag key, the values it ran with and their calls (most first).
    tags: serde_json::Value,
    /// Tag values counted but not listed (past the per-fingerprint bounds).
    tags_cut: u64,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Parses a sort name as the API spells it.
pub(crate) fn parse_sort(s: &str) -> Option<SortBy> {
    match s {
        "total" => Some(SortBy::Total),
        "calls" => Some(SortBy::Calls),
        "mean" => Some(SortBy::Mean),
        "p99" => Some(SortBy::P99),
        _ => None,
    }
}

pub(crate) async fn queries(
    State(state): State<AdminState>,
    params: Result<Query<QueriesParams>, QueryRejection>,
) -> Response {
    // A malformed query string (a repeated parameter, bad escapes) gets the API's JSON error too.
    let params = match params {
        Ok(Query(params)) => params,
        Err(rejection) => return bad_request(format!("bad query string: {}", rejection.body_text())),
    };
    let sort = match params.sort.as_deref().map(parse_sort) {
        None => SortBy::Total,
        Some(Some(sort)) => sort,
        Some(None) => return bad_request("sort must be one of total, calls, mean, p99".into()),
    };
    let limit = match params.limit.as_deref().map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) => n.min(MAX_LIMIT),
        Some(Err(_)) => return bad_request(format!("limit must be a number from 0 to {MAX_LIMIT}")),
    };
    let tag = match params.tag.as_deref().map(|t| t.split_once(':')) {
        None => None,
        Some(Some((key, value))) if !key.is_empty() => Some((key, value)),
        Some(_) => return bad_request("tag must be key:value, for example tag=route:/users/:id".into()),
    };
    let rows: Vec<QueryRow> = state
        .advisor
        .stats
        .top_tagged(sort, limit, tag)
        .into_iter()
        .map(|(fp, s)| QueryRow {
            fingerprint: fp.to_string(),
            query: s.display.to_string(),
            query_truncated: s.display_truncated,
            calls: s.calls,
            rows: s.rows,
            errors: s.errors,
            total_ms: ms(s.total_us),
            mean_ms: s.mean_us() / 1000.0,
            min_ms: ms(s.min_us),
            p50_ms: ms(s.p50_us),
            p95_ms: ms(s.p95_us),
            p99_ms: ms(s.p99_us),
            max_ms: ms(s.max_us),
            tags: s.tags.to_json(),
            tags_cut: s.tags.cut(),
        })
        .collect();
    Json(serde_json::json!({ "queries": rows })).into_response()
}

#[derive(Debug, Serialize)]
struct SessionRow {
    id: u64,
    pid: Option<u32>,
    user: String,
    database: String,
    application_name: String,
    client_addr: String,
    tls: bool,
    state: SessionState,
    connected_at: String,
    transaction_ms: Option<f64>,
    current_statement: Option<String>,
}

/// RFC 3339 with milliseconds, UTC.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub(crate) async fn sessions(State(state): State<AdminState>) -> Json<serde_json::Value> {
    let now = SystemTime::now();
    let rows: Vec<SessionRow> = state
        .advisor
        .sessions
        .snapshot()
        .into_iter()
        // A session whose client sent Terminate has closed, as far as its client knows.
        .filter(|(_, activity)| !activity.terminated)
        .map(|(identity, activity)| SessionRow {
            id: identity.id,
            pid: activity.backend_pid,
            user: identity.user,
            database: identity.database,
            application_name: identity.application_name,
            client_addr: identity.client_addr.to_string(),
            tls: identity.tls,
            state: activity.state,
            connected_at: rfc3339(identity.connected_at),
            transaction_ms: activity
                .transaction_started
                .map(|t| now.duration_since(t).unwrap_or_default().as_secs_f64() * 1000.0),
            current_statement: activity.current_statement.map(|s| s.to_string()),
        })
        .collect();
    Json(serde_json::json!({ "sessions": rows }))
}

pub(crate) async fn reset(State(state): State<AdminState>) -> Json<serde_json::Value> {
    // What finished before the request is applied first, then forgotten with the rest, in the
    // engine's order.
    // `applied: false`: the engine, far behind, did not confirm within 2 s; it resets when it
    // gets to the request.
    let applied = state.advisor.reset().await;
    Json(serde_json::json!({ "reset": true, "applied": applied }))
}

/// `ok`, or `degraded` for a minute after analysis failed somewhere (it was contained: the
/// engine and the other sessions go on), with the failures per stage and the last one.
pub(crate) async fn healthz(State(state): State<AdminState>) -> Json<serde_json::Value> {
    let health = &state.advisor.health;
    let last = health.last_failure();
    let recent = last.as_ref().is_some_and(|f| f.at.elapsed().unwrap_or_default() < std::time::Duration::from_secs(60));
    let failures: serde_json::Map<String, serde_json::Value> =
        advisor::health::Stage::ALL.iter().map(|s| (s.as_str().to_string(), health.failures(*s).into())).collect();
    Json(serde_json::json!({
        "status": if recent { "degraded" } else { "ok" },
        "analysis": { "failures": failures, "last_failure": last, "recovered": last.is_some() },
    }))
}

pub(crate) async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": "no such endpoint; see docs/admin-api.md" })))
        .into_response()
}
