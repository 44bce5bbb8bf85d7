//! The admin HTTP port: JSON API, Prometheus metrics and the web page.
//!
//! It reads the same shared state the engine writes; nothing here touches the forwarding path.

mod advice;
mod api;
mod metrics;
mod page;

use std::net::SocketAddr;
use std::sync::Arc;

use advisor::engine::Advisor;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::stats::ProxyStats;

/// A problem setting up the admin port.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Bound to a non-loopback address without a token.
    #[error("--admin {0} is reachable from other machines, so --admin-token (or PGVISOR_ADMIN_TOKEN) is required")]
    TokenRequired(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on admin address {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// State the handlers share.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub advisor: Arc<Advisor>,
    pub stats: Arc<ProxyStats>,
    pub token: Option<Arc<str>>,
    pub metrics: Arc<metrics::Exporter>,
    /// Fires when pgvisor stops: live streams end so the server can shut down gracefully.
    pub stopping: tokio_util::sync::CancellationToken,
}

/// A bound admin port.
pub struct AdminServer {
    listener: TcpListener,
    router: Router,
    stopping: tokio_util::sync::CancellationToken,
}

impl AdminServer {
    /// Binds `addr`; refuses a non-loopback address without a token.
    pub async fn bind(
        addr: SocketAddr,
        token: Option<String>,
        advisor: Arc<Advisor>,
        stats: Arc<ProxyStats>,
    ) -> Result<Self, AdminError> {
        let token = token.filter(|t| !t.is_empty());
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(AdminError::TokenRequired(addr));
        }
        let listener = TcpListener::bind(addr).await.map_err(|source| AdminError::Bind { addr, source })?;
        let stopping = tokio_util::sync::CancellationToken::new();
        let state = AdminState {
            advisor,
            stats,
            token: token.map(Into::into),
            metrics: Arc::new(metrics::Exporter::new()),
            stopping: stopping.clone(),
        };
        Ok(Self { listener, router: router(state), stopping })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// A token that stops the server gracefully: open streams end, then the listener closes.
    pub fn stopper(&self) -> tokio_util::sync::CancellationToken {
        self.stopping.clone()
    }

    /// Serves requests until [`AdminServer::stopper`] fires.
    pub async fn serve(self) {
        info!(admin = %self.local_addr(), "admin API listening");
        let stopping = self.stopping.clone();
        let server = axum::serve(self.listener, self.router).with_graceful_shutdown(stopping.cancelled_owned());
        if let Err(e) = server.await {
            error!(error = %e, "admin server stopped");
        }
    }
}

fn router(state: AdminState) -> Router {
    let protected = Router::new()
        .route("/api/queries", get(api::queries))
        .route("/api/sessions", get(api::sessions))
        .route("/api/reset", post(api::reset))
        .route("/api/advice", get(advice::list))
        .route("/api/advice/stream", get(advice::stream))
        .route("/api/advice/{id}/dismiss", post(advice::dismiss))
        .route("/metrics", get(metrics::render))
        .route("/healthz", get(api::healthz))
        .fallback(api::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state);
    // The page and its static files are merged in after the token layer, so they load without the
    // token: they hold no data, and the browser needs the page to ask the user for the token. Every
    // other path, `/api` and unknown ones included, still goes through `require_token`.
    page::routes().merge(protected)
}

/// Checks `Authorization: Bearer <token>` when a token is configured.
async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes())) {
        next.run(request).await
    } else {
        let body =
            Json(serde_json::json!({"error": "missing or wrong bearer token (Authorization: Bearer <--admin-token>)"}));
        (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
