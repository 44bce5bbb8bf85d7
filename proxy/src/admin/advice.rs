//! `GET /api/advice`, `GET /api/advice/stream` (Server-Sent Events) and
//! `POST /api/advice/{id}/dismiss`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use super::AdminState;

pub(crate) async fn list(State(state): State<AdminState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "advice": state.advisor.advice.list() }))
}

/// Hides a finding until it gets materially worse (its severity rises or its count doubles).
pub(crate) async fn dismiss(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    if state.advisor.advice.dismiss(&id) {
        Json(serde_json::json!({ "dismissed": id })).into_response()
    } else {
        let body = Json(serde_json::json!({ "error": format!("no advice with id {id:?}") }));
        (StatusCode::NOT_FOUND, body).into_response()
    }
}

/// Every current finding first (oldest first), then each new finding at once and updates at most
/// every few seconds per finding, as `event: advice` with the Advice JSON as `data:`.
pub(crate) async fn stream(State(state): State<AdminState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribe before listing, so nothing recorded in between is missed.
    let live = BroadcastStream::new(state.advisor.advice.subscribe()).filter_map(|item| async move { item.ok() });
    let mut current = state.advisor.advice.list();
    current.reverse();
    let current = stream::iter(current.into_iter().map(std::sync::Arc::new));
    let stopping = state.stopping.clone().cancelled_owned();
    let events = current.chain(live).take_until(stopping).map(|advice| {
        let data = serde_json::to_string(advice.as_ref()).unwrap_or_default();
        Ok(Event::default().event("advice").id(advice.id.clone()).data(data))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
