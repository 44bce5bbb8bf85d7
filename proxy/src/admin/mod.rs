//! The admin HTTP port: JSON API, Prometheus metrics and the web page.
//!
//! It reads the same shared state the engine writes; nothing here touches the forwarding path.

mod advice;
mod api;
mod metrics;
mod page;

use advisor::health::Stage;
use std::any::Any;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use advisor::engine::Advisor;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::{debug, error, info};

use crate::counters::ProxyCounters;

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
    pub stats: Arc<ProxyCounters>,
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
        stats: Arc<ProxyCounters>,
    ) -> Result<Self, AdminError> {
        let token = token.filter(|t| !t.is_empty());
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(AdminError::TokenRequired(addr));
        }
        let listener = TcpListener::bind(addr).await.map_err(|source| AdminError::Bind { addr, source })?;
        // The port the system picked when `addr` asked for 0: the Origin check needs the real one.
        let bound = listener.local_addr().map_err(|source| AdminError::Bind { addr, source })?;
        let stopping = tokio_util::sync::CancellationToken::new();
        let state = AdminState {
            advisor,
            stats,
            token: token.map(Into::into),
            metrics: Arc::new(metrics::Exporter::new()),
            stopping: stopping.clone(),
        };
        let router = guarded(router(state.clone()), bound, state.advisor.clone());
        Ok(Self { listener, router, stopping })
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
    // Read-your-writes: these answer only once what was forwarded before the request is counted.
    let reads = Router::new()
        .route("/api/queries", get(api::queries))
        .route("/api/sessions", get(api::sessions))
        .route("/api/advice", get(advice::list))
        .route("/metrics", get(metrics::render))
        .route_layer(middleware::from_fn_with_state(state.clone(), caught_up));
    let protected = Router::new()
        .merge(reads)
        .route("/api/reset", post(api::reset))
        .route("/api/advice/stream", get(advice::stream))
        .route("/api/advice/{id}/dismiss", post(advice::dismiss))
        .route("/healthz", get(api::healthz))
        .fallback(api::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state);
    // The page and its static files are merged in after the token layer, so they load without the
    // token: they hold no data, and the browser needs the page to ask the user for the token. Every
    // other path, `/api` and unknown ones included, still goes through `require_token`.
    page::routes().merge(protected)
}

/// Every route, the page included: requests from other sites are refused before anything else
/// runs, and a panicking handler answers 500 instead of dropping the connection.
fn guarded(app: Router, bound: SocketAddr, advisor: Arc<Advisor>) -> Router {
    app.layer(middleware::from_fn_with_state(bound, refuse_other_sites))
        .layer(CatchPanicLayer::custom(move |panic: Box<dyn Any + Send>| answer_panic(&advisor, panic.as_ref())))
}

/// Counted as `pgvisor_analysis_failures_total{stage="admin"}`, logged (rate-limited) and on /healthz.
fn answer_panic(advisor: &Advisor, panic: &(dyn Any + Send)) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    advisor.health.record(Stage::Admin, message.to_string(), || {
        "an admin API handler panicked; it answered 500 and the admin port goes on".into()
    });
    let body =
        Json(serde_json::json!({"error": "internal error in pgvisor's admin API; pgvisor's log has the details"}));
    (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
}

/// Waits until the engine has applied every statement forwarded before this request.
async fn caught_up(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    state.advisor.caught_up().await;
    next.run(request).await
}

/// Checks `Authorization: Bearer <token>` when a token is configured.
async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    let presented = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    // Constant time: how long the comparison takes says nothing about how much of a guess was right.
    if presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(token.as_bytes()))) {
        next.run(request).await
    } else {
        let body =
            Json(serde_json::json!({"error": "missing or wrong bearer token (Authorization: Bearer <--admin-token>)"}));
        (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
    }
}

/// The token of an `Authorization: Bearer <token>` value: the scheme's name in any case and
/// the spaces after it, as HTTP reads them (RFC 9110, 11.1 and 11.4).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_matches(' ')).filter(|t| !t.is_empty())
}

/// Why a request that a web page on another site may have sent was refused (403).
#[derive(Debug, PartialEq, thiserror::Error)]
enum OtherSite {
    /// Sandboxed frames, `data:` pages and some redirects send `Origin: null`: nobody to trust.
    #[error("Origin: null is refused: the admin API answers its own page and clients that send no Origin")]
    NullOrigin,
    /// A page of another site (CSRF), or an origin that is not a plain `http://host[:port]`.
    #[error("Origin {origin} is not this admin port ({expected}): cross-site requests are refused")]
    ForeignOrigin { origin: String, expected: String },
    /// A name that resolved to loopback but is not a loopback name (DNS rebinding).
    #[error("Host {0} is not a loopback name or address: the admin port on loopback answers only localhost, 127.x.x.x and [::1]")]
    ForeignHost(String),
    /// Two values, or one that is not text.
    #[error("unreadable or repeated {0} header")]
    Malformed(HeaderName),
}

async fn refuse_other_sites(State(bound): State<SocketAddr>, request: Request, next: Next) -> Response {
    match check_site(bound, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refused) => {
            debug!(%refused, path = %request.uri().path(), "admin request refused");
            (StatusCode::FORBIDDEN, Json(serde_json::json!({ "error": refused.to_string() }))).into_response()
        }
    }
}

/// The admin port answers its own page and clients that send no `Origin` (curl, `pgvisor watch`,
/// `pgvisor report`). Bound to loopback it also answers only loopback `Host` names, so a page whose
/// name was rebound to 127.0.0.1 cannot read it; elsewhere the token keeps such pages out.
fn check_site(bound: SocketAddr, headers: &HeaderMap) -> Result<(), OtherSite> {
    let host = single(headers, header::HOST)?;
    let host_authority = host.and_then(Authority::parse);
    if bound.ip().is_loopback() {
        if let Some(host) = host {
            if !host_authority.as_ref().is_some_and(Authority::is_loopback) {
                return Err(OtherSite::ForeignHost(host.to_string()));
            }
        }
    }
    let Some(origin) = single(headers, header::ORIGIN)? else {
        return Ok(());
    };
    if origin == "null" {
        return Err(OtherSite::NullOrigin);
    }
    let origin_authority = origin.strip_prefix("http://").and_then(Authority::parse);
    let same = origin_authority.as_ref().is_some_and(|o| {
        // The page came from the very address this request was sent to, as the browser names it:
        // any address or name of the machine, or a port forwarded or tunnelled to this one. (On
        // loopback that Host was checked above, so a rebound name never gets here.)
        let as_host = host_authority.as_ref().is_some_and(|h| h.host == o.host && h.port_or_80() == o.port_or_80());
        // On loopback, another spelling of the bound address too: a page on localhost may call 127.0.0.1.
        let loopback_spelling = bound.ip().is_loopback()
            && o.port_or_80() == bound.port()
            && (o.is_loopback_name() || o.ip == Some(bound.ip()));
        as_host || loopback_spelling
    });
    if same {
        return Ok(());
    }
    let expected = if bound.ip().is_loopback() {
        format!("http://{bound} or http://localhost:{}", bound.port())
    } else {
        host.map_or_else(|| "no Host header to compare with".into(), |h| format!("http://{h}"))
    };
    Err(OtherSite::ForeignOrigin { origin: origin.to_string(), expected })
}

/// The header's one value, `None` when absent.
fn single(headers: &HeaderMap, name: HeaderName) -> Result<Option<&str>, OtherSite> {
    let mut values = headers.get_all(&name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => value.to_str().map(Some).map_err(|_| OtherSite::Malformed(name)),
        (Some(_), Some(_)) => Err(OtherSite::Malformed(name)),
    }
}

/// `host[:port]` as `Host` and `Origin` carry it (RFC 9110, section 7.2; IPv6 in brackets).
#[derive(Debug)]
struct Authority {
    /// Lowercased, without brackets or a final dot.
    host: String,
    ip: Option<IpAddr>,
    port: Option<u16>,
}

impl Authority {
    fn parse(s: &str) -> Option<Self> {
        let (host, ip, port) = if let Some(rest) = s.strip_prefix('[') {
            let (v6, after) = rest.split_once(']')?;
            let ip = IpAddr::V6(v6.parse::<Ipv6Addr>().ok()?);
            let port = if after.is_empty() { None } else { Some(after.strip_prefix(':')?.parse().ok()?) };
            (v6, Some(ip), port)
        } else {
            let (host, port) = match s.rsplit_once(':') {
                Some((host, port)) => (host, Some(port.parse().ok()?)),
                None => (s, None),
            };
            (host, host.parse::<Ipv4Addr>().ok().map(IpAddr::V4), port)
        };
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        (!host.is_empty()).then_some(Self { host, ip, port })
    }

    fn port_or_80(&self) -> u16 {
        self.port.unwrap_or(80)
    }

    /// `localhost` and its subdomains, which browsers resolve to loopback themselves.
    fn is_loopback_name(&self) -> bool {
        self.host == "localhost" || self.host.ends_with(".localhost")
    }

    fn is_loopback(&self) -> bool {
        self.is_loopback_name() || self.ip.is_some_and(|ip| ip.is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn check(bound: &str, host: Option<&str>, origin: Option<&str>) -> Result<(), OtherSite> {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        check_site(bound.parse().unwrap(), &headers)
    }

    #[test]
    fn loopback_answers_its_own_page_and_clients_without_origin() {
        for (host, origin) in [
            (None, None),
            (Some("127.0.0.1:6480"), None),
            (Some("127.0.0.1:6480"), Some("http://127.0.0.1:6480")),
            (Some("localhost:6480"), Some("http://localhost:6480")),
            (Some("LocalHost."), Some("http://app.localhost:6480")),
            (Some("127.1.2.3"), None),
            (Some("[::1]:6480"), None),
            (Some("pgvisor.localhost"), None),
        ] {
            assert_eq!(check("127.0.0.1:6480", host, origin), Ok(()), "{host:?} {origin:?}");
        }
        assert_eq!(check("[::1]:6480", Some("[::1]:6480"), Some("http://[::1]:6480")), Ok(()));
        assert_eq!(check("[::1]:6480", None, Some("http://localhost:6480")), Ok(()));
        // An SSH tunnel or a forwarded port: the page's origin is the address the browser uses.
        assert_eq!(check("127.0.0.1:6480", Some("localhost:16480"), Some("http://localhost:16480")), Ok(()));
        assert_eq!(check("[::1]:6480", Some("localhost:6480"), Some("http://localhost:6480")), Ok(()));
    }

    #[test]
    fn loopback_refuses_other_origins_and_rebound_names() {
        let foreign = |origin: &str| check("127.0.0.1:6480", Some("127.0.0.1:6480"), Some(origin));
        for origin in [
            "http://evil.example",
            "http://evil.example:6480",
            "http://127.0.0.1:8080",
            "http://localhost:16480",
            "http://localhost",
            "https://127.0.0.1:6480",
            "http://127.0.0.1:6480/",
            "http://127.0.0.2:6480",
            "http://[::1]:6480",
            "http://127.0.0.1:6480.evil.example",
        ] {
            assert!(matches!(foreign(origin), Err(OtherSite::ForeignOrigin { .. })), "{origin}");
        }
        assert_eq!(foreign("null"), Err(OtherSite::NullOrigin));
        for host in ["evil.example:6480", "evil.example", "localhost.evil.example", "10.0.0.5:6480", "::1", "[::1"] {
            assert_eq!(check("127.0.0.1:6480", Some(host), None), Err(OtherSite::ForeignHost(host.into())), "{host}");
        }
        let rebound = check("127.0.0.1:6480", Some("evil.example:6480"), Some("http://evil.example:6480"));
        assert_eq!(rebound, Err(OtherSite::ForeignHost("evil.example:6480".into())));
    }

    #[test]
    fn elsewhere_the_origin_must_be_the_host_the_browser_asked() {
        for bound in ["0.0.0.0:6480", "10.0.0.5:6480"] {
            assert_eq!(check(bound, Some("pgvisor.lan:6480"), Some("http://pgvisor.lan:6480")), Ok(()));
            assert_eq!(check(bound, Some("10.0.0.5:16480"), Some("http://10.0.0.5:16480")), Ok(()));
            assert_eq!(check(bound, Some("evil.example:6480"), None), Ok(()), "the token guards this case");
            assert_eq!(check(bound, Some("pgvisor.lan"), Some("http://pgvisor.lan:80")), Ok(()));
            for (host, origin) in [
                (Some("pgvisor.lan:6480"), "http://evil.example"),
                (Some("pgvisor.lan:6480"), "http://pgvisor.lan:6481"),
                (None, "http://pgvisor.lan:6480"),
            ] {
                assert!(matches!(check(bound, host, Some(origin)), Err(OtherSite::ForeignOrigin { .. })), "{origin}");
            }
            assert_eq!(check(bound, Some("pgvisor.lan:6480"), Some("null")), Err(OtherSite::NullOrigin));
        }
    }

    #[test]
    fn repeated_headers_are_refused() {
        let mut headers = HeaderMap::new();
        headers.append(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:6480"));
        headers.append(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        let bound = "127.0.0.1:6480".parse().unwrap();
        assert_eq!(check_site(bound, &headers), Err(OtherSite::Malformed(header::ORIGIN)));
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        assert_eq!(bearer_token("Bearer t0k"), Some("t0k"));
        assert_eq!(bearer_token("bearer t0k"), Some("t0k"));
        assert_eq!(bearer_token("BEARER  t0k "), Some("t0k"));
        assert_eq!(bearer_token("Basic dTpw"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearert0k"), None);
        assert_eq!(bearer_token("Bearer é"), Some("é"));
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_port_goes_on() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (advisor, _inputs) = Advisor::new(Default::default());
        async fn boom() -> &'static str {
            panic!("boom")
        }
        let app = Router::new().route("/boom", get(boom)).route("/fine", get(|| async { "fine" }));
        let router = guarded(app, addr, advisor.clone());
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let boom = crate::cli::report::http_get(addr, "/boom", None).await;
        assert!(
            matches!(&boom, Err(crate::cli::report::ReportError::Http { status, body }) if status.contains("500") && body.contains("internal error")),
            "{boom:?}"
        );
        assert_eq!(advisor.health.failures(Stage::Admin), 1);
        assert_eq!(crate::cli::report::http_get(addr, "/fine", None).await.unwrap(), "fine");
        server.abort();
    }
}
